//! The set of known keys: the hashes of every key stored in the database
//! (in any state, so that a revoked or expired key is still refused as
//! such), held in memory so that an unknown key is refused without a key
//! lookup, and a known one is looked up whatever its client's failure budget.
//!
//! The finding it answers (issue 9): the failure budget is per address, so a
//! flood of random keys from one address made the server refuse (429) any
//! key from that address it had not verified lately, new or after a restart.
//! With the set, the budget only decides 401 or 429 for keys the set does
//! not hold; it never stands in front of a key the set holds.
//!
//! Kept current by the store's change watch: loaded in full on
//! [`KeyChange::All`] (the watch's first contact, and after it was blind),
//! added to on [`KeyChange::Key`] (Postgres notifies every inserted,
//! updated or deleted key, see migration `…_key_notify_insert`). The set may
//! hold a few keys deleted since the last full load: membership only means
//! "look it up", never "accept".
//!
//! The race: a key committed a moment ago (by the CLI, another replica, an
//! admin tool) may not be in the set yet. So a key the set does not hold is
//! refused only after a *sync round* that started after the request arrived
//! has completed:
//! - Postgres: the round sends a marker on the change channel and waits
//!   until the watch reports it. Notifications arrive in commit order, so
//!   every key committed before the request is in the set by then; the
//!   marker also proves the watch is alive.
//! - SQLite: the round reads the keys stored since the last read (by
//!   `key_id`; writers are serialised and AUTOINCREMENT ids only grow, so
//!   this sees every key committed before it).
//!
//! Rounds are shared: however many requests wait, one round runs at a time,
//! at most one per [`ROUND_SPACING`], so a flood costs the database a few
//! tiny queries per second, not one per request. When no round can prove the
//! set current (the watch is blind, the database does not answer) the
//! verifier falls back to the failure budget alone, as before the set.
//!
//! Memory: a 64-bit tag per key (the first 8 bytes of its SHA-256) in a hash
//! set, about 9 to 19 bytes per key depending on where the table is in its
//! growth: see BENCHMARKS.md for the measurement per million keys. A tag
//! shared by an unknown key and a known one (odds about n / 2^64) costs only
//! a lookup.

use crate::keys::KeyHash;
use crate::store::{Db, KeyChange};
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Least time between the starts of two sync rounds: the most a flood can
/// make the database do for it is one round per this.
pub const ROUND_SPACING: Duration = Duration::from_millis(50);

/// How long a round may wait for its marker (Postgres): past it, the watch
/// is not proven alive and the round proves nothing.
pub const MARKER_DEADLINE: Duration = Duration::from_secs(1);

/// How long a request waits for a round before falling back to the budget.
pub const SETTLE_DEADLINE: Duration = Duration::from_secs(2);

/// Deadline of one page of a load (a query).
const PAGE_DEADLINE: Duration = Duration::from_secs(5);

/// Keys read per query.
const PAGE: i64 = 10_000;

/// A marker is 16 zero bytes (no SHA-256 of a key starts so) followed by the
/// process's instance number and the round number.
const MARKER_PREFIX: &str = "00000000000000000000000000000000";

/// The tags are SHA-256 bits already: hashing them again buys nothing.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Tags = HashSet<u64, BuildHasherDefault<PassThrough>>;

/// The first 64 bits of a hash (64 hex digits by construction).
fn tag(hash: &KeyHash) -> u64 {
    hex_u64(hash.as_hex(), 0).unwrap_or(0)
}

/// The 16 hex digits of `hex` from `at`, as a number.
fn hex_u64(hex: &str, at: usize) -> Option<u64> {
    u64::from_str_radix(hex.get(at..at + 16)?, 16).ok()
}

struct State {
    /// A change watch is live (between `All` and `Blind`).
    watching: bool,
    /// The set must be loaded in full before it can be current again.
    needs_full_load: bool,
    /// Whether changes come through a channel (`None`: not known yet). With
    /// one (Postgres), after the watch was blind only a full load can tell
    /// what was missed. Without one (SQLite), reading on by `key_id` finds
    /// every key stored meanwhile, and keys are never taken out of the set
    /// (revoked ones stay, to be refused as such), so one full load at
    /// start is enough.
    channel: Option<bool>,
    /// A full load has completed.
    loaded: bool,
    /// While a full load runs: the keys reported meanwhile, kept on top of
    /// what it read.
    loading: Option<Vec<u64>>,
    /// The highest `key_id` read (SQLite reads on from there).
    max_key_id: i64,
    /// Counts `All` and `Blind`: a round that saw it move proves nothing.
    turns: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Rounds {
    started: u64,
    done: u64,
    /// Whether round `done` proved the set current.
    current: bool,
}

/// The hashes of stored keys; see the module documentation.
pub struct KnownKeys {
    tags: RwLock<Tags>,
    state: Mutex<State>,
    wake: Notify,
    rounds: watch::Sender<Rounds>,
    /// The last marker of this instance the watch reported.
    marker_seen: watch::Sender<u64>,
    /// Tells this instance's markers from other replicas'.
    instance: u64,
}

impl Default for KnownKeys {
    fn default() -> Self {
        Self::new()
    }
}

impl KnownKeys {
    pub fn new() -> Self {
        Self {
            tags: RwLock::new(Tags::default()),
            state: Mutex::new(State {
                watching: false,
                needs_full_load: true,
                channel: None,
                loaded: false,
                loading: None,
                max_key_id: 0,
                turns: 0,
            }),
            wake: Notify::new(),
            rounds: watch::Sender::new(Rounds::default()),
            marker_seen: watch::Sender::new(0),
            instance: rand::random(),
        }
    }

    /// Whether the set holds `hash` (then it is looked up whatever the budget).
    pub fn contains(&self, hash: &KeyHash) -> bool {
        self.tags
            .read()
            .map(|tags| tags.contains(&tag(hash)))
            .unwrap_or(false)
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.tags.read().map(|tags| tags.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies what the change watch saw. `false` for a sync marker, which
    /// means nothing to anyone else (the key cache need not hear of it).
    pub fn apply(&self, change: &KeyChange) -> bool {
        match change {
            KeyChange::Key(hash) if hash.as_hex().starts_with(MARKER_PREFIX) => {
                let instance = hex_u64(hash.as_hex(), MARKER_PREFIX.len());
                let round = hex_u64(hash.as_hex(), MARKER_PREFIX.len() + 16);
                if let (Some(instance), Some(round)) = (instance, round)
                    && instance == self.instance
                {
                    self.marker_seen.send_if_modified(|seen| {
                        let newer = round > *seen;
                        if newer {
                            *seen = round;
                        }
                        newer
                    });
                }
                return false;
            }
            KeyChange::Key(hash) => {
                let tag = tag(hash);
                // The state lock first, as the full load takes them: a key
                // reported while a load runs survives the load's swap.
                if let Ok(mut state) = self.state.lock()
                    && let Some(loading) = state.loading.as_mut()
                {
                    loading.push(tag);
                }
                if let Ok(mut tags) = self.tags.write() {
                    tags.insert(tag);
                }
            }
            KeyChange::All => {
                if let Ok(mut state) = self.state.lock() {
                    state.watching = true;
                    state.needs_full_load = true;
                    state.turns += 1;
                }
                // Load now, not when the first unknown key waits for it.
                self.wake.notify_one();
            }
            KeyChange::Blind => {
                if let Ok(mut state) = self.state.lock() {
                    state.watching = false;
                    state.turns += 1;
                }
            }
            // This process revoked or rotated keys: a rotation's new key is
            // found like any other (notified, or read by the next round).
            KeyChange::Flush => {}
        }
        true
    }

    /// Waits for a sync round that started after this call to complete.
    /// `true`: the set now holds every key committed before the call, so a
    /// key it does not hold is unknown. `false` (the watch is blind, the
    /// round failed, or `SETTLE_DEADLINE` passed): the set cannot tell.
    pub async fn settle(&self) -> bool {
        let mut rounds = self.rounds.subscribe();
        let needed = rounds.borrow().started + 1;
        if !self.state.lock().is_ok_and(|s| s.watching) {
            return false;
        }
        self.wake.notify_one();
        match tokio::time::timeout(SETTLE_DEADLINE, rounds.wait_for(|r| r.done >= needed)).await {
            Ok(Ok(r)) => r.current,
            _ => false,
        }
    }

    /// Runs sync rounds (when a request waits, or after `All`) until `shutdown`.
    pub fn spawn(self: Arc<Self>, db: Db, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut next_start = Instant::now();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.wake.notified() => {}
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(next_start) => {}
                }
                next_start = Instant::now() + ROUND_SPACING;
                let mut round = 0;
                self.rounds.send_modify(|r| {
                    r.started += 1;
                    round = r.started;
                });
                let current = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    c = self.round(&db, round) => c,
                };
                self.rounds.send_modify(|r| {
                    r.done = round;
                    r.current = current;
                });
            }
        })
    }

    /// One sync round; whether it proved the set current.
    async fn round(&self, db: &Db, round: u64) -> bool {
        let (turns, full) = match self.state.lock() {
            Ok(mut state) if state.watching => {
                if state.loaded && state.channel == Some(false) {
                    state.needs_full_load = false;
                }
                (state.turns, state.needs_full_load)
            }
            _ => return false,
        };
        if full && !self.full_load(db).await {
            return false;
        }
        if !self.catch_up(db, round).await {
            return false;
        }
        // Nothing went blind or started afresh meanwhile.
        self.state
            .lock()
            .is_ok_and(|s| s.watching && s.turns == turns && !s.needs_full_load)
    }

    /// Reads every stored key into a new set, which replaces the old one.
    async fn full_load(&self, db: &Db) -> bool {
        if let Ok(mut state) = self.state.lock() {
            state.needs_full_load = false;
            state.loading = Some(Vec::new());
        }
        // Sized like the set it replaces: a reload does not regrow it step by step.
        let mut fresh = Tags::with_capacity_and_hasher(self.len(), Default::default());
        let read = self.read_after(db, 0, |t| {
            fresh.insert(t);
        });
        let max_key_id = read.await;
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let reported = state.loading.take().unwrap_or_default();
        let Some(max_key_id) = max_key_id else {
            state.needs_full_load = true;
            return false;
        };
        fresh.extend(reported);
        fresh.shrink_to_fit();
        state.max_key_id = max_key_id;
        state.loaded = true;
        if let Ok(mut tags) = self.tags.write() {
            *tags = fresh;
        }
        tracing::debug!(keys = self.len(), "known keys loaded");
        true
    }

    /// Makes sure every key committed before now is in the set: Postgres by
    /// a marker through the watch, SQLite by reading on from `max_key_id`.
    async fn catch_up(&self, db: &Db, round: u64) -> bool {
        let mut seen = self.marker_seen.subscribe();
        let marker = KeyHash::from_stored(&format!(
            "{MARKER_PREFIX}{:016x}{round:016x}",
            self.instance
        ));
        let Some(marker) = marker else {
            return false;
        };
        match tokio::time::timeout(PAGE_DEADLINE, db.send_change_marker(&marker)).await {
            Ok(Ok(true)) => {
                if let Ok(mut state) = self.state.lock() {
                    state.channel = Some(true);
                }
                let arrived = seen.wait_for(|&s| s >= round);
                return matches!(
                    tokio::time::timeout(MARKER_DEADLINE, arrived).await,
                    Ok(Ok(_))
                );
            }
            Ok(Ok(false)) => {
                if let Ok(mut state) = self.state.lock() {
                    state.channel = Some(false);
                }
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "cannot send the key sync marker");
                return false;
            }
            Err(_) => return false,
        }
        let after = match self.state.lock() {
            Ok(state) => state.max_key_id,
            Err(_) => return false,
        };
        let added = self.read_after(db, after, |t| {
            if let Ok(mut tags) = self.tags.write() {
                tags.insert(t);
            }
        });
        match added.await {
            Some(max_key_id) => {
                if let Ok(mut state) = self.state.lock() {
                    state.max_key_id = state.max_key_id.max(max_key_id);
                }
                true
            }
            None => false,
        }
    }

    /// Pages through the keys above `after`, giving each one's tag to `add`; the highest `key_id` read, or `None` if a query failed.
    async fn read_after(&self, db: &Db, after: i64, mut add: impl FnMut(u64)) -> Option<i64> {
        let mut last = after;
        loop {
            let page =
                match tokio::time::timeout(PAGE_DEADLINE, db.key_hashes_after(last, PAGE)).await {
                    Ok(Ok(page)) => page,
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "cannot read the known keys");
                        return None;
                    }
                    Err(_) => {
                        tracing::warn!("reading the known keys timed out");
                        return None;
                    }
                };
            for row in &page {
                last = last.max(row.key_id);
                add(tag(&row.hash));
            }
            if (page.len() as i64) < PAGE {
                return Some(last);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u64) -> KeyHash {
        KeyHash::from_stored(&format!("{n:064x}")).expect("hex")
    }

    fn random_hash() -> KeyHash {
        let bytes: [u8; 32] = rand::random();
        KeyHash::from_stored(&hex::encode(bytes)).expect("hex")
    }

    #[test]
    fn a_reported_key_is_known_and_a_marker_is_not_a_key() {
        let known = KnownKeys::new();
        let key = random_hash();
        assert!(!known.contains(&key));
        assert!(known.apply(&KeyChange::Key(key.clone())));
        assert!(known.contains(&key));
        // Another replica's marker: not a key, and not for the cache.
        assert!(!known.apply(&KeyChange::Key(hash(7))));
        assert_eq!(known.len(), 1);
    }

    #[tokio::test]
    async fn while_no_watch_is_live_the_set_cannot_tell() {
        let known = KnownKeys::new();
        // Never watched: no wait, no verdict.
        assert!(!known.settle().await);
        known.apply(&KeyChange::All);
        known.apply(&KeyChange::Blind);
        assert!(!known.settle().await);
    }
}
