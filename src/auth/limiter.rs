//! Bounds what a flood of unknown keys can cost: each client (by IP address:
//! the TCP peer, or behind a trusted proxy the `X-Forwarded-For` client, see
//! [`super::client_addr`]) has a budget of failures that refills over time.
//! A client past it gets 429 with `Retry-After` for a key that is not known.
//!
//! What "not known" means depends on the set of known keys
//! ([`super::known_keys`]): while it is current, a key it does not hold is
//! refused without a lookup (401 within the budget, 429 past it) and a key
//! it holds is looked up whatever the budget, so the budget never stands in
//! front of a stored key. While it cannot tell (the change watch is blind),
//! the budget decides whether a key is looked up at all, as before the set
//! existed: past it, only keys that verified recently (cached, or remembered
//! as good even after the cache was emptied) get through.
//!
//! The 429 is answered after [`THROTTLED_ANSWER_DELAY`], so that a client
//! looping on refusals cannot spend the server's CPU either.
//!
//! Unknown keys are not cached (random keys never repeat, and a key issued
//! later must work at once).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a throttled request waits for its 429: it costs a sleeping task,
/// not CPU, and holds a flooding connection back.
pub const THROTTLED_ANSWER_DELAY: Duration = Duration::from_millis(250);

/// Limiter settings.
#[derive(Debug, Clone, Copy)]
pub struct LimiterOptions {
    /// Failed lookups a client may make at once.
    pub burst: u32,
    /// Failed lookups a client earns back per second.
    pub per_second: f64,
    /// Most clients tracked; beyond it the ones with a full budget are dropped.
    pub max_clients: usize,
}

impl Default for LimiterOptions {
    fn default() -> Self {
        Self {
            burst: 100,
            per_second: 10.0,
            max_clients: 10_000,
        }
    }
}

struct Budget {
    tokens: f64,
    at: Instant,
}

/// Failed-lookup budgets per client address.
pub struct FailureLimiter {
    options: LimiterOptions,
    clients: Mutex<HashMap<IpAddr, Budget>>,
}

impl FailureLimiter {
    pub fn new(options: LimiterOptions) -> Self {
        Self {
            options,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// What `budget` holds at `now`: what it had plus what it earned since,
    /// at most a full budget.
    fn tokens_at(&self, budget: &Budget, now: Instant) -> f64 {
        let earned = now.duration_since(budget.at).as_secs_f64() * self.options.per_second;
        (budget.tokens + earned).min(f64::from(self.options.burst))
    }

    fn refill(&self, budget: &mut Budget, now: Instant) {
        budget.tokens = self.tokens_at(budget, now);
        budget.at = now;
    }

    /// `Some(wait)` when `client` has spent its budget: refuse without a lookup.
    pub fn check(&self, client: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let mut clients = self.clients.lock().ok()?;
        let budget = clients.get_mut(&client)?;
        self.refill(budget, now);
        if budget.tokens >= 1.0 {
            return None;
        }
        let missing = 1.0 - budget.tokens;
        Some(Duration::from_secs_f64(
            missing / self.options.per_second.max(f64::MIN_POSITIVE),
        ))
    }

    /// Spends one unit of `client`'s budget on a failed lookup.
    pub fn failed(&self, client: IpAddr) {
        let now = Instant::now();
        let Ok(mut clients) = self.clients.lock() else {
            return;
        };
        if clients.len() >= self.options.max_clients && !clients.contains_key(&client) {
            let full = f64::from(self.options.burst);
            clients.retain(|_, b| self.tokens_at(b, now) < full);
            if clients.len() >= self.options.max_clients {
                // Everyone tracked is mid-flood: forget the oldest half rather
                // than grow without bound.
                let mut ages: Vec<Instant> = clients.values().map(|b| b.at).collect();
                ages.sort_unstable();
                let cut = ages[ages.len() / 2];
                clients.retain(|_, b| b.at > cut);
            }
        }
        let budget = clients.entry(client).or_insert(Budget {
            tokens: f64::from(self.options.burst),
            at: now,
        });
        self.refill(budget, now);
        budget.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_runs_out_per_client_and_comes_back() {
        let limiter = FailureLimiter::new(LimiterOptions {
            burst: 3,
            per_second: 20.0,
            max_clients: 10,
        });
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        for _ in 0..3 {
            assert_eq!(limiter.check(a), None);
            limiter.failed(a);
        }
        let wait = limiter.check(a).expect("budget spent");
        assert!(wait <= Duration::from_millis(50), "{wait:?}");
        assert_eq!(limiter.check(b), None, "another client is not affected");
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(limiter.check(a), None, "the budget refills");
    }

    #[test]
    fn tracked_clients_stay_bounded() {
        let limiter = FailureLimiter::new(LimiterOptions {
            burst: 1,
            per_second: 0.001,
            max_clients: 8,
        });
        for i in 0..100u8 {
            limiter.failed([10, 0, 1, i].into());
        }
        assert!(limiter.clients.lock().unwrap().len() <= 8);
    }
}
