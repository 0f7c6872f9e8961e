//! `last_used_at` without a write per request: a request notes its time in
//! the key's [`UsageSlot`] (two atomic operations, no lock); the flusher
//! writes the latest time of every used key in one batch per interval, off
//! the request path, and once more on shutdown. A failed write is retried by
//! the next flush; requests never wait for it.

use crate::store::Db;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The last use of one key, shared by the cache entry and the flusher.
pub struct UsageSlot {
    key_id: i64,
    /// Microseconds since the epoch; 0 = never.
    last_used: AtomicI64,
    /// Waiting in the recorder's queue for the next flush.
    queued: AtomicBool,
}

impl UsageSlot {
    pub fn new(key_id: i64) -> Self {
        Self {
            key_id,
            last_used: AtomicI64::new(0),
            queued: AtomicBool::new(false),
        }
    }
}

/// Key ids with the time of their last use, as the store writes them.
type Uses = Vec<(i64, DateTime<Utc>)>;

/// The slots used since the last flush.
#[derive(Clone, Default)]
pub struct UsageRecorder {
    pending: Arc<Mutex<Vec<Arc<UsageSlot>>>>,
}

impl UsageRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes a use; cheap, never touches the database. The queue's lock is
    /// taken once per key per flush interval, not per request.
    pub fn record(&self, slot: &Arc<UsageSlot>, at: DateTime<Utc>) {
        slot.last_used
            .fetch_max(at.timestamp_micros(), Ordering::SeqCst);
        if !slot.queued.load(Ordering::SeqCst)
            && !slot.queued.swap(true, Ordering::SeqCst)
            && let Ok(mut pending) = self.pending.lock()
        {
            pending.push(slot.clone());
        }
    }

    /// The latest use per key since the last flush, and the slots it came from.
    fn take(&self) -> (Vec<Arc<UsageSlot>>, Uses) {
        let slots = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => Vec::new(),
        };
        let mut latest: HashMap<i64, i64> = HashMap::with_capacity(slots.len());
        for slot in &slots {
            // Cleared before reading, so a use noted after the read queues
            // the slot again.
            slot.queued.store(false, Ordering::SeqCst);
            let at = slot.last_used.load(Ordering::SeqCst);
            let best = latest.entry(slot.key_id).or_insert(at);
            *best = (*best).max(at);
        }
        let uses = latest
            .into_iter()
            .filter_map(|(id, micros)| Some((id, DateTime::from_timestamp_micros(micros)?)))
            .collect();
        (slots, uses)
    }

    /// Writes what was noted; on failure the uses wait for the next flush.
    pub async fn flush(&self, db: &Db) {
        let (slots, uses) = self.take();
        if uses.is_empty() {
            return;
        }
        if let Err(err) = db.record_key_use(&uses).await {
            tracing::warn!(error = %err, keys = uses.len(), "could not record key use; will retry");
            for slot in &slots {
                let at = slot.last_used.load(Ordering::SeqCst);
                if let Some(at) = DateTime::from_timestamp_micros(at) {
                    self.record(slot, at);
                }
            }
        }
    }

    /// Flushes every `interval` until `shutdown`, then once more.
    pub fn spawn_flusher(
        &self,
        db: Db,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let recorder = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => recorder.flush(&db).await,
                    _ = shutdown.cancelled() => break,
                }
            }
            recorder.flush(&db).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn one_entry_per_key_with_the_latest_time() {
        let recorder = UsageRecorder::new();
        let a = Arc::new(UsageSlot::new(1));
        let a_again = Arc::new(UsageSlot::new(1));
        let b = Arc::new(UsageSlot::new(2));
        for t in [5, 9, 7] {
            recorder.record(&a, at(t));
        }
        recorder.record(&a_again, at(8));
        recorder.record(&b, at(3));
        let (slots, mut uses) = recorder.take();
        uses.sort();
        assert_eq!(
            slots.len(),
            3,
            "a slot is queued once however often it is used"
        );
        assert_eq!(uses, vec![(1, at(9)), (2, at(3))]);
        assert!(recorder.take().1.is_empty(), "taken uses are gone");
        recorder.record(&a, at(10));
        assert_eq!(
            recorder.take().1,
            vec![(1, at(10))],
            "a later use queues again"
        );
    }
}
