//! `last_used_at` without a write per request: uses are noted in memory and
//! written in batches off the request path (and once more on shutdown).

use crate::store::Db;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Notes the last use of each key until the next flush.
#[derive(Clone, Default)]
pub struct UsageRecorder {
    pending: Arc<Mutex<HashMap<i64, DateTime<Utc>>>>,
}

impl UsageRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes a use; cheap, never touches the database.
    pub fn record(&self, key_id: i64, at: DateTime<Utc>) {
        if let Ok(mut pending) = self.pending.lock() {
            let slot = pending.entry(key_id).or_insert(at);
            if *slot < at {
                *slot = at;
            }
        }
    }

    fn take(&self) -> Vec<(i64, DateTime<Utc>)> {
        match self.pending.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Writes what was noted; on failure puts it back for the next flush.
    pub async fn flush(&self, db: &Db) {
        let uses = self.take();
        if uses.is_empty() {
            return;
        }
        if let Err(err) = db.record_key_use(&uses).await {
            tracing::warn!(error = %err, keys = uses.len(), "could not record key use; will retry");
            for (key_id, at) in uses {
                self.record(key_id, at);
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
