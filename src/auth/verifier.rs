//! Turns a presented key into a [`Caller`], or says why not.

use super::cache::{CacheOptions, CachedKey, KeyCache};
use super::known_keys::KnownKeys;
use super::limiter::{FailureLimiter, LimiterOptions};
use super::{Caller, UsageRecorder};
use crate::clock::Clock;
use crate::keys::{ApiKey, KeyHash};
use crate::logging::gate::LineGate;
use crate::store::{Db, KeyChange, KeyState};
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why a request was not authenticated. `Unavailable` is ours (503), so
/// clients keep good keys; `Throttled` (429) stops a client guessing keys;
/// the rest are the caller's fault (401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Malformed,
    Unknown,
    Revoked,
    Expired,
    /// Expired because rotation replaced it by `successor_key_id`; stopped
    /// working `at`. Counted as `expired` in the metrics (see
    /// `metrics::refusal_reason`).
    Retired {
        successor_key_id: i64,
        at: DateTime<Utc>,
    },
    /// A header key and a query key that differ.
    Conflicting,
    Unavailable,
    /// Too many unknown keys from this client; retry after this many seconds.
    Throttled {
        retry_after_secs: u64,
    },
}

impl AuthFailure {
    /// A short description for clients and logs (never key material).
    pub fn description(self) -> Cow<'static, str> {
        let text = match self {
            AuthFailure::Missing => "no API key was sent",
            AuthFailure::Malformed => "the API key is malformed",
            AuthFailure::Unknown => "the API key is not known",
            AuthFailure::Revoked => "the API key has been revoked",
            AuthFailure::Expired => "the API key has expired",
            AuthFailure::Retired {
                successor_key_id,
                at,
            } => {
                return Cow::Owned(format!(
                    "the API key was replaced by rotation ({}) and stopped working at {} UTC; \
                     use the new key",
                    successor_name(successor_key_id),
                    at.format("%Y-%m-%d %H:%M")
                ));
            }
            AuthFailure::Conflicting => {
                "two different API keys were sent (header and query string)"
            }
            AuthFailure::Unavailable => "the key store is unavailable",
            AuthFailure::Throttled { .. } => "too many unknown API keys from this client",
        };
        Cow::Borrowed(text)
    }
}

/// How a refusal names the successor key: `key 8`. mcp-remote takes another,
/// slower path when a refusal's body contains "404" or "405" (see
/// `layer::refusal`), so an id holding those digits is not written out.
fn successor_name(key_id: i64) -> String {
    let id = key_id.to_string();
    if id.contains("404") || id.contains("405") {
        "a newer key".to_owned()
    } else {
        format!("key {id}")
    }
}

/// A refused key check: why, and the refused key's display prefix when the
/// key is known (revoked or expired), so that the refusal's log line can say
/// whose key is still in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub failure: AuthFailure,
    pub key_prefix: Option<Arc<str>>,
}

impl From<AuthFailure> for Refusal {
    fn from(failure: AuthFailure) -> Self {
        Self {
            failure,
            key_prefix: None,
        }
    }
}

/// Verifier settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifierOptions {
    pub cache: CacheOptions,
    pub limiter: LimiterOptions,
}

/// Verifies keys: from the cache when it knows the key, else from the store.
pub struct Verifier {
    db: Db,
    usage: UsageRecorder,
    cache: Arc<KeyCache>,
    limiter: FailureLimiter,
    /// Every stored key's hash, so that unknown keys need no lookup and
    /// known ones are never held back by a client's budget.
    known: Arc<KnownKeys>,
    /// Keys found active lately: a throttled client may still have these
    /// looked up (never a reason to accept a key, only to look it up).
    recently_good: moka::sync::Cache<KeyHash, ()>,
    /// Key lookups made in the database (cache misses).
    lookups: AtomicU64,
    /// The log lines of failed lookups (see `logging::gate`).
    lookup_failures: LineGate,
    /// The wall clock key states are judged by.
    clock: Clock,
}

impl Verifier {
    pub fn new(db: Db, usage: UsageRecorder) -> Self {
        Self::with_options(db, usage, VerifierOptions::default())
    }

    pub fn with_options(db: Db, usage: UsageRecorder, options: VerifierOptions) -> Self {
        Self {
            db,
            usage,
            cache: Arc::new(KeyCache::new(options.cache)),
            limiter: FailureLimiter::new(options.limiter),
            known: Arc::new(KnownKeys::new()),
            recently_good: moka::sync::Cache::builder()
                .max_capacity(options.cache.capacity)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            lookups: AtomicU64::new(0),
            lookup_failures: LineGate::new(),
            clock: Clock::system(),
        }
    }

    /// The same verifier judging expiry and grace by `clock` (a test's
    /// manual clock).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Starts the store's change watch, which keeps the cache honest and the
    /// set of known keys current. Until it reports in, cached keys are
    /// trusted for one second only.
    pub fn spawn_watch(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let cache = self.cache.clone();
        let known = self.known.clone();
        let watch = self.db.watch_key_changes(
            Arc::new(move |change: KeyChange| {
                if known.apply(&change) {
                    cache.apply(change);
                }
            }),
            shutdown.clone(),
        );
        let sync = self.known.clone().spawn(self.db.clone(), shutdown);
        tokio::spawn(async move {
            let _ = tokio::join!(watch, sync);
        })
    }

    /// The set of known keys, for tests.
    pub fn known_keys(&self) -> &KnownKeys {
        &self.known
    }

    /// The cache, for tests and benchmarks.
    pub fn cache(&self) -> &KeyCache {
        &self.cache
    }

    /// How many keys were looked up in the database so far.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// Verifies a key with no client address (no per-client limit).
    pub async fn verify(&self, presented: &str) -> Result<Caller, AuthFailure> {
        self.verify_from(presented, || None).await
    }

    /// The shape check first (no query for anything that is not a key), then
    /// the cache, then the set of known keys: a key it holds is looked up by
    /// hash whatever the client's budget; one it does not hold, once a sync
    /// round proves the set current, is refused without a lookup (401, or
    /// 429 past the budget). Only while the set cannot tell (the change watch
    /// is blind) does the budget decide whether to look a key up, as before
    /// the set existed. State and expiry are checked on every request.
    ///
    /// `client` gives the address whose budget counts (`None`: no limit). It
    /// is called once, and only when the key is not cached, so a cache hit
    /// never works out where the request came from.
    pub async fn verify_from(
        &self,
        presented: &str,
        client: impl FnOnce() -> Option<IpAddr>,
    ) -> Result<Caller, AuthFailure> {
        self.check_from(presented, client)
            .await
            .map_err(|refusal| refusal.failure)
    }

    /// [`Verifier::verify_from`], with the refused key's prefix when known.
    pub async fn check_from(
        &self,
        presented: &str,
        client: impl FnOnce() -> Option<IpAddr>,
    ) -> Result<Caller, Refusal> {
        let key = ApiKey::parse(presented).map_err(|_| AuthFailure::Malformed)?;
        self.verify_hash_from(key.hash(), client).await
    }

    /// [`Verifier::verify_from`] for a key known only by its hash: the web
    /// console checks the key a session was opened with on every request
    /// (so a revoked, expired or rotated-out key ends the session at once).
    pub async fn verify_hash_from(
        &self,
        hash: KeyHash,
        client: impl FnOnce() -> Option<IpAddr>,
    ) -> Result<Caller, Refusal> {
        let now = self.clock.now();
        let cached = self.cache.get(&hash, &self.clock);
        crate::metrics::key_cache(cached.is_some());
        if let Some(entry) = cached {
            return self.admit(&entry, now);
        }
        let client = client();
        // A key the set holds is looked up whatever the budget. One it does
        // not hold may have been issued a moment ago: it is unknown only once
        // a round that started after now proves the set current; when no
        // round can, the budget decides, as before the set existed.
        let known = if self.known.contains(&hash) {
            true
        } else if self.known.settle().await {
            if !self.known.contains(&hash) {
                return Err(self.refuse_unknown(client).into());
            }
            true
        } else {
            false
        };
        if !known
            && let Some(ip) = client
            && let Some(wait) = self.limiter.check(ip)
            && !self.recently_good.contains_key(&hash)
        {
            tracing::debug!(client = %ip, "failed-lookup budget spent; key not looked up");
            return Err(AuthFailure::Throttled {
                retry_after_secs: retry_after(wait),
            }
            .into());
        }
        let epoch = self.cache.epoch();
        let asked = self.clock.instant();
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let record = self.db.key_by_hash(&hash).await.map_err(|err| {
            // Every request re-verifies while the database is down: one line
            // a second, with the count, not one per request.
            if let Some(summary) = self.lookup_failures.count() {
                tracing::error!(
                    error = %err,
                    cause = ?std::error::Error::source(&err).map(ToString::to_string),
                    failed = summary.count,
                    "key lookup failed ({} since the last line)",
                    summary.count
                );
            }
            AuthFailure::Unavailable
        })?;
        let Some(record) = record else {
            if let Some(ip) = client {
                tracing::debug!(client = %ip, "unknown key; one failed lookup spent");
                self.limiter.failed(ip);
            }
            return Err(AuthFailure::Unknown.into());
        };
        let entry = Arc::new(CachedKey::read_at(record, asked));
        // Admitted (and its use noted) means active: remembered as good.
        let admitted = self.admit(&entry, self.clock.now());
        if admitted.is_ok() {
            self.recently_good.insert(hash.clone(), ());
        }
        self.cache.insert(hash, entry, epoch);
        admitted
    }

    /// A key the set of known keys does not hold, while it is current:
    /// unknown, no lookup; past the client's budget, throttled instead, so a
    /// flood still meets its 429.
    fn refuse_unknown(&self, client: Option<IpAddr>) -> AuthFailure {
        let Some(ip) = client else {
            return AuthFailure::Unknown;
        };
        if let Some(wait) = self.limiter.check(ip) {
            return AuthFailure::Throttled {
                retry_after_secs: retry_after(wait),
            };
        }
        tracing::debug!(client = %ip, "unknown key; one failure spent");
        self.limiter.failed(ip);
        AuthFailure::Unknown
    }

    /// The cache-only half of [`Verifier::verify_from`]: `None` when the key
    /// is not cached (or malformed). For benchmarks.
    pub fn verify_cached(&self, presented: &str) -> Option<Result<Caller, AuthFailure>> {
        let key = ApiKey::parse(presented).ok()?;
        let entry = self.cache.get(&key.hash(), &self.clock)?;
        Some(
            self.admit(&entry, self.clock.now())
                .map_err(|refusal| refusal.failure),
        )
    }

    fn admit(&self, entry: &CachedKey, now: DateTime<Utc>) -> Result<Caller, Refusal> {
        let failure = match entry.state(now) {
            KeyState::Active => None,
            KeyState::Revoked => Some(AuthFailure::Revoked),
            KeyState::Expired => Some(entry.expiry()),
        };
        if let Some(failure) = failure {
            return Err(Refusal {
                failure,
                key_prefix: Some(Arc::from(entry.caller.key_prefix.as_str())),
            });
        }
        self.usage.record(&entry.usage, now);
        Ok(entry.caller.clone())
    }
}

/// Whole seconds, rounded up, at least one: what `Retry-After` wants.
fn retry_after(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}
