//! Telling verification caches which keys changed, whichever process changed
//! them: Postgres `LISTEN`s to the trigger of migration `…03_key_notify`;
//! SQLite polls the change counter that migration keeps.

use crate::keys::KeyHash;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::sqlite::SqlitePool;
use std::future::Future;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
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
    /// Changes may go unseen from now on (the watch connection is lost, or
    /// has not proved itself alive within [`PROOF_LASTS`]), until the next
    /// `All`.
    Blind,
    /// Some keys changed (this process changed them, before the watch even
    /// reports it; or the watch cannot say which): forget every cached key.
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

/// How often the Postgres watch proves its connection alive with a round
/// trip on it (SQLite's poll, every [`SQLITE_POLL`], is its own proof).
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);

/// How long a proof lasts: this long after the last one, the watch reports
/// [`KeyChange::Blind`], so a change it may have missed still stops cached
/// keys within this bound. A connection the network silently dropped
/// gives no error; only a missing answer shows it.
pub const PROOF_LASTS: Duration = Duration::from_secs(1);

/// A heartbeat unanswered this long: the connection is given up for a new one.
const HEARTBEAT_GIVE_UP: Duration = Duration::from_secs(3);

/// Where the Postgres watch connects.
#[derive(Clone)]
pub struct ListenTarget {
    pub(super) options: PgConnectOptions,
    pub(super) connect_timeout: Duration,
}

/// The watch's last proof that it sees every change, and what it told the
/// sink about it.
struct Liveness {
    sink: KeyChangeSink,
    proven: Instant,
    blind: bool,
}

impl Liveness {
    fn new(sink: KeyChangeSink) -> Self {
        Self {
            sink,
            proven: Instant::now(),
            // The cache starts blind too.
            blind: true,
        }
    }

    /// Everything committed before `asked` has been seen. After being blind,
    /// what changed meanwhile is unknown: start afresh (`All`).
    fn proven(&mut self, asked: Instant) {
        self.proven = asked;
        if self.blind {
            self.blind = false;
            (self.sink)(KeyChange::All);
        }
    }

    fn lost(&mut self) {
        self.blind = true;
        (self.sink)(KeyChange::Blind);
    }

    /// Runs `work`; if the last proof runs out meanwhile, reports `Blind`
    /// then and keeps waiting for `work` (which has its own limit).
    async fn while_trusted<T>(&mut self, work: impl Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = tokio::time::sleep_until(self.proven + PROOF_LASTS), if !self.blind => {
                    self.lost();
                }
            }
        }
    }
}

/// Listens on a connection of its own (never one of the query pool's) and
/// proves it alive every [`HEARTBEAT_EVERY`]; reconnects after any loss.
pub fn watch_postgres(
    target: ListenTarget,
    sink: KeyChangeSink,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut live = Liveness::new(sink.clone());
        let mut retry = RETRY_MIN;
        loop {
            let asked = Instant::now();
            let listener = tokio::select! {
                _ = shutdown.cancelled() => return,
                l = live.while_trusted(listen(&target)) => l,
            };
            let mut listener = match listener {
                Ok(listener) => listener,
                Err(err) => {
                    live.lost();
                    tracing::warn!(error = %err, "key change listener cannot connect; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                    continue;
                }
            };
            live.proven(asked);
            retry = RETRY_MIN;
            let Err(why) = follow(&mut listener, &mut live, &sink, &shutdown).await else {
                return;
            };
            live.lost();
            tracing::warn!(reason = %why, "key change listener lost; reconnecting");
            // Dropping a listener whose connection no longer answers leaves
            // sqlx's clean-up of it waiting on that connection, holding its
            // pool; each connection has a pool of its own, so the next one
            // is not kept waiting behind it.
            drop(listener);
        }
    })
}

/// Reports what `listener` receives and proves it alive, until shutdown
/// (`Ok`) or until the connection fails or stops answering (`Err`).
async fn follow(
    listener: &mut PgListener,
    live: &mut Liveness,
    sink: &KeyChangeSink,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let heartbeat = format!("LISTEN \"{PG_CHANNEL}\"");
    loop {
        let beat_at = live.proven + HEARTBEAT_EVERY;
        // Cancelling `try_recv` is safe: sqlx consumes a message only once
        // it has all of it.
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(beat_at) => None,
            n = listener.try_recv() => Some(n),
        };
        match next {
            Some(Ok(Some(note))) => {
                sink(match KeyHash::from_stored(note.payload()) {
                    Some(hash) => KeyChange::Key(hash),
                    // "*" (or anything else): every key may have changed.
                    None => KeyChange::Flush,
                });
                continue;
            }
            Some(Ok(None)) => return Err("the connection was closed".into()),
            Some(Err(err)) => return Err(err.to_string()),
            None => {}
        }
        // A round trip on the listening connection itself; notifications
        // that arrive meanwhile are buffered for `try_recv`. Repeating the
        // LISTEN changes nothing (Postgres ignores a second one) and keeps
        // the connection recognisable as the listener in pg_stat_activity.
        let asked = Instant::now();
        let beat = tokio::time::timeout(
            HEARTBEAT_GIVE_UP,
            sqlx::Executor::execute(&mut *listener, heartbeat.as_str()),
        );
        let beat = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            b = live.while_trusted(beat) => b,
        };
        match beat {
            Ok(Ok(_)) => live.proven(asked),
            Ok(Err(err)) => return Err(err.to_string()),
            Err(_) => {
                return Err(format!(
                    "no answer to a heartbeat within {HEARTBEAT_GIVE_UP:?}"
                ));
            }
        }
    }
}

async fn listen(target: &ListenTarget) -> Result<PgListener, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(target.connect_timeout)
        .connect_lazy_with(target.options.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    // Reconnection is this loop's job, so that it can report `Blind` first.
    listener.eager_reconnect(false);
    tokio::time::timeout(target.connect_timeout, listener.listen(PG_CHANNEL))
        .await
        .map_err(|_| {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "LISTEN was not answered in time",
            ))
        })??;
    Ok(listener)
}

/// Polls `api_key_changes.generation` every [`SQLITE_POLL`]; each answer
/// proves the watch alive.
pub fn watch_sqlite(
    pool: SqlitePool,
    sink: KeyChangeSink,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut live = Liveness::new(sink.clone());
        let mut seen: Option<i64> = None;
        let mut ticker = tokio::time::interval(SQLITE_POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = live.while_trusted(ticker.tick()) => {}
            }
            let asked = Instant::now();
            let read = sqlx::query_scalar("SELECT generation FROM api_key_changes WHERE id = 1")
                .fetch_one(&pool);
            let generation: Result<i64, _> = tokio::select! {
                _ = shutdown.cancelled() => return,
                g = live.while_trusted(read) => g,
            };
            match generation {
                Ok(now) => {
                    if seen.replace(now) != Some(now) {
                        sink(KeyChange::Flush);
                    }
                    live.proven(asked);
                }
                Err(err) => {
                    if seen.take().is_some() {
                        tracing::warn!(error = %err, "cannot read the key change counter");
                    }
                    live.lost();
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn without_a_proof_for_a_second_the_watch_goes_blind_and_a_new_proof_starts_afresh() {
        let seen: Arc<Mutex<Vec<(KeyChange, Instant)>>> = Arc::default();
        let log = seen.clone();
        let sink: KeyChangeSink = Arc::new(move |change| {
            if let Ok(mut log) = log.lock() {
                log.push((change, Instant::now()));
            }
        });
        let mut live = Liveness::new(sink);
        let start = Instant::now();
        live.proven(start);
        // Shorter than a proof lasts: nothing to report.
        live.while_trusted(tokio::time::sleep(PROOF_LASTS / 2))
            .await;
        // A round trip that does not come back within the proof's life.
        live.while_trusted(tokio::time::sleep(PROOF_LASTS * 2))
            .await;
        live.proven(Instant::now());
        let seen = seen.lock().expect("log").clone();
        let changes: Vec<_> = seen.iter().map(|(c, _)| c.clone()).collect();
        assert_eq!(
            changes,
            [KeyChange::All, KeyChange::Blind, KeyChange::All],
            "first proof, proof lapsed, proof again"
        );
        let blind_after = seen[1].1 - start;
        assert!(
            blind_after >= PROOF_LASTS && blind_after < PROOF_LASTS * 2,
            "blind {blind_after:?} after the proof; it lasts {PROOF_LASTS:?}"
        );
    }
}
