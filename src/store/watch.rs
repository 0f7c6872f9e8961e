//! Telling verification caches which keys changed, whichever process changed
//! them: Postgres `LISTEN`s to the trigger of migration `…03_key_notify`;
//! SQLite polls the change counter that migration keeps.

use crate::keys::KeyHash;
use sqlx::postgres::{PgListener, PgPool};
use sqlx::sqlite::SqlitePool;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The Postgres channel the trigger notifies.
pub const PG_CHANNEL: &str = "fleetmind_api_keys";

/// How often a SQLite server reads the change counter.
pub const SQLITE_POLL: Duration = Duration::from_millis(200);

/// What a watcher reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// This key's row changed or went away.
    Key(KeyHash),
    /// Anything may have changed (first contact, or after being blind):
    /// forget every cached key. Changes are seen again from now on.
    All,
    /// Changes may go unseen from now on (the watch connection is lost),
    /// until the next `All`.
    Blind,
    /// This process changed some keys: forget every cached key now, before
    /// the change is even reported by the watch.
    Flush,
}

/// Where a watcher sends what it sees.
pub type KeyChangeSink = Arc<dyn Fn(KeyChange) + Send + Sync>;

/// The sinks of this process, told synchronously when this process revokes
/// or rotates a key, so that its own next request already sees the change
/// (the watch tells every other process within the bound).
#[derive(Default, Clone)]
pub struct LocalChanges(Arc<RwLock<Vec<WeakSink>>>);

/// A sink held only while its watch runs.
type WeakSink = Weak<dyn Fn(KeyChange) + Send + Sync>;

impl LocalChanges {
    /// Tells `sink` of local changes for as long as a watch holds it.
    pub fn subscribe(&self, sink: &KeyChangeSink) {
        if let Ok(mut sinks) = self.0.write() {
            sinks.retain(|s| s.strong_count() > 0);
            sinks.push(Arc::downgrade(sink));
        }
    }

    /// Called after a commit that changed keys.
    pub fn changed(&self) {
        if let Ok(sinks) = self.0.read() {
            for sink in sinks.iter().filter_map(Weak::upgrade) {
                sink(KeyChange::Flush);
            }
        }
    }
}

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Listens on its own connection (from `pool`, a pool of one kept apart from
/// the query pool, so the listener never takes a query connection) and
/// reconnects after any loss.
pub fn watch_postgres(
    pool: PgPool,
    sink: KeyChangeSink,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut retry = RETRY_MIN;
        loop {
            let listener = tokio::select! {
                _ = shutdown.cancelled() => return,
                l = listen(&pool) => l,
            };
            let mut listener = match listener {
                Ok(listener) => listener,
                Err(err) => {
                    sink(KeyChange::Blind);
                    tracing::warn!(error = %err, "key change listener cannot connect; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                    continue;
                }
            };
            // Whatever changed while nobody listened is unknown: start afresh.
            sink(KeyChange::All);
            retry = RETRY_MIN;
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    n = listener.try_recv() => n,
                };
                match next {
                    Ok(Some(note)) => match note.payload() {
                        "*" => sink(KeyChange::All),
                        hex => match KeyHash::from_stored(hex) {
                            Some(hash) => sink(KeyChange::Key(hash)),
                            None => sink(KeyChange::All),
                        },
                    },
                    Ok(None) => {
                        sink(KeyChange::Blind);
                        tracing::warn!("key change listener lost its connection; reconnecting");
                        break;
                    }
                    Err(err) => {
                        sink(KeyChange::Blind);
                        tracing::warn!(error = %err, "key change listener failed; reconnecting");
                        break;
                    }
                }
            }
        }
    })
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Reconnection is this loop's job, so that it can report `Blind` first.
    listener.eager_reconnect(false);
    listener.listen(PG_CHANNEL).await?;
    Ok(listener)
}

/// Polls `api_key_changes.generation` every [`SQLITE_POLL`].
pub fn watch_sqlite(
    pool: SqlitePool,
    sink: KeyChangeSink,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen: Option<i64> = None;
        let mut ticker = tokio::time::interval(SQLITE_POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let generation: Result<i64, _> =
                sqlx::query_scalar("SELECT generation FROM api_key_changes WHERE id = 1")
                    .fetch_one(&pool)
                    .await;
            match generation {
                Ok(now) if seen == Some(now) => {}
                Ok(now) => {
                    seen = Some(now);
                    sink(KeyChange::All);
                }
                Err(err) => {
                    if seen.take().is_some() {
                        tracing::warn!(error = %err, "cannot read the key change counter");
                    }
                    sink(KeyChange::Blind);
                }
            }
        }
    })
}
