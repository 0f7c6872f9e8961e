//! The verification cache: what verifying a key needs, by the key's hash, so
//! that a known key costs no database query.
//!
//! It never extends a key's life: the state and `expires_at` of the cached
//! row are checked on every request, and the store's change watch
//! ([`KeyChange`]) drops a key's entry when any process changes its row
//! (revocation, rotation, deletion). While the watch is blind (not yet
//! connected, its connection lost, or not proved alive within the last
//! second: see `store::watch`) an entry is used only for [`BLIND_MAX_AGE`]
//! after its lookup was sent, so a change is still seen within that bound.
//! The watch task flips the flag; a cache hit reads it with one atomic load
//! and no clock.

use super::usage::UsageSlot;
use super::{AuthFailure, Caller};
use crate::clock::Clock;
use crate::keys::KeyHash;
use crate::store::{KeyChange, KeyRecord, KeyState};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long an entry may be trusted while changes cannot be seen: the
/// revocation bound.
pub const BLIND_MAX_AGE: Duration = Duration::from_secs(1);

/// Cache settings.
#[derive(Debug, Clone, Copy)]
pub struct CacheOptions {
    /// Most keys held; the least useful go first.
    pub capacity: u64,
    /// Longest an entry lives even when nothing says it changed.
    pub ttl: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            ttl: Duration::from_secs(300),
        }
    }
}

/// What the cache holds for one key (any state: a revoked key stays
/// refused without a query): its [`Caller`], handed out as it is when the
/// key is admitted, and what admitting it needs.
pub struct CachedKey {
    pub caller: Caller,
    revoked: bool,
    /// The key that replaced this one by rotation: read only to word a
    /// refusal, never on the way to admitting the key.
    successor_key_id: Option<i64>,
    loaded_at: Instant,
    pub(super) usage: Arc<UsageSlot>,
}

impl CachedKey {
    /// A row read just now.
    pub fn from_record(record: KeyRecord) -> Self {
        Self::read_at(record, Instant::now())
    }

    /// A row whose lookup was sent at `asked`: its age counts from then, as
    /// the row may be that old (a slow answer does not make it fresher).
    pub fn read_at(record: KeyRecord, asked: Instant) -> Self {
        let revoked = record.is_revoked();
        let successor_key_id = record.successor_key_id;
        let usage = Arc::new(UsageSlot::new(record.key_id));
        Self {
            caller: Caller::of_record(record),
            revoked,
            successor_key_id,
            loaded_at: asked,
            usage,
        }
    }

    /// The key's state at `now`, by the same rules as [`KeyRecord::state`].
    pub fn state(&self, now: DateTime<Utc>) -> KeyState {
        KeyState::of(self.revoked, self.caller.expires_at, now)
    }

    /// Why an expired key is refused: retired by rotation (into which key,
    /// since when) or plainly expired.
    pub fn expiry(&self) -> AuthFailure {
        match (self.successor_key_id, self.caller.expires_at) {
            (Some(successor_key_id), Some(at)) => AuthFailure::Retired {
                successor_key_id,
                at,
            },
            _ => AuthFailure::Expired,
        }
    }
}

/// Verified keys by hash, bounded in size and age.
pub struct KeyCache {
    entries: moka::sync::Cache<KeyHash, Arc<CachedKey>>,
    /// Moves on every change report; a lookup that raced one is not kept.
    epoch: AtomicU64,
    /// No change watch is known to be live.
    blind: AtomicBool,
}

impl KeyCache {
    pub fn new(options: CacheOptions) -> Self {
        crate::metrics::key_watch_up(false);
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(options.capacity)
                .time_to_live(options.ttl)
                .build(),
            epoch: AtomicU64::new(0),
            // Until the watch reports in, nothing can be trusted for long.
            blind: AtomicBool::new(true),
        }
    }

    /// The cached entry of a key, if it may still be trusted.
    /// An entry's age is read on `clock` (the verifier's: a test's manual
    /// clock ages the entries it loaded), and only while blind.
    pub fn get(&self, hash: &KeyHash, clock: &Clock) -> Option<Arc<CachedKey>> {
        let entry = self.entries.get(hash)?;
        if self.blind.load(Ordering::Acquire)
            && clock.instant().saturating_duration_since(entry.loaded_at) > BLIND_MAX_AGE
        {
            self.entries.invalidate(hash);
            return None;
        }
        Some(entry)
    }

    /// Read before a database lookup and hand to [`KeyCache::insert`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Keeps a row read from the database, unless a change was reported
    /// since `epoch` (the row may predate it).
    pub fn insert(&self, hash: KeyHash, entry: Arc<CachedKey>, epoch: u64) {
        if self.epoch() != epoch {
            return;
        }
        self.entries.insert(hash.clone(), entry);
        // A change reported between the check and the insert may have been
        // applied before the insert landed: undo it.
        if self.epoch() != epoch {
            self.entries.invalidate(&hash);
        }
    }

    /// Applies what the store's change watch saw.
    pub fn apply(&self, change: KeyChange) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match change {
            KeyChange::Key(hash) => self.entries.invalidate(&hash),
            KeyChange::Flush => self.entries.invalidate_all(),
            KeyChange::All => {
                self.entries.invalidate_all();
                self.blind.store(false, Ordering::Release);
                crate::metrics::key_watch_up(true);
            }
            KeyChange::Blind => {
                crate::metrics::key_watch_up(false);
                if !self.blind.swap(true, Ordering::AcqRel) {
                    // Entries older than the bound are dropped as they are read;
                    // dropping all now keeps the bound without waiting for that.
                    self.entries.invalidate_all();
                }
            }
        }
    }

    /// Whether a change watch is live.
    pub fn is_watching(&self) -> bool {
        !self.blind.load(Ordering::Acquire)
    }

    /// How many keys are held (approximate; for tests and metrics).
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scopes::Scopes;
    use crate::store::Identity;
    use crate::tenant::UserId;

    fn record() -> KeyRecord {
        KeyRecord {
            identity: Identity {
                user_id: UserId::new("user_000000000001".to_owned()),
                key_id: 1,
                key_prefix: "fm_test".into(),
                scopes: Scopes::PREDECESSOR_DEFAULT,
                expires_at: None,
                limits: Default::default(),
            },
            email: String::new(),
            name: None,
            created_at: None,
            last_used_at: None,
            revoked_at: None,
            is_active: true,
            created_by: None,
            successor_key_id: None,
        }
    }

    #[test]
    fn while_blind_an_entry_is_dropped_once_the_clock_has_aged_it_past_the_bound() {
        // A new cache is blind: no change watch has reported in.
        let cache = KeyCache::new(CacheOptions::default());
        let clock = Clock::manual(DateTime::UNIX_EPOCH);
        let hash = crate::keys::ApiKey::generate().unwrap().hash();
        let entry = Arc::new(CachedKey::read_at(record(), clock.instant()));
        cache.insert(hash.clone(), entry, cache.epoch());
        clock.advance(BLIND_MAX_AGE);
        assert!(cache.get(&hash, &clock).is_some(), "at the bound: kept");
        clock.advance(Duration::from_micros(1));
        assert!(cache.get(&hash, &clock).is_none(), "past it: dropped");
    }
}
