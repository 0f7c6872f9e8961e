//! A deadline on every store call, whichever backend is behind it.
//!
//! Pool and server timeouts do not cover a network that silently drops
//! packets: a query already sent waits for an answer that never comes. So
//! the deadline is kept here, by the client: past it the call is abandoned
//! and fails as [`StoreError::TimedOut`], which callers answer with "the
//! database is unavailable, retry" (503 + `Retry-After` for key checks).
//!
//! An abandoned call drops its connection in the middle of a query; the
//! backend's pool must not hand that connection out again unless it proves
//! itself in bounded time (see `postgres.rs`, `after_release`).
//!
//! A write abandoned after its `COMMIT` was sent may still have committed:
//! the caller is told the database is unavailable, as it cannot know more.

use super::console::{ConsoleStore, InviteRow, NewInvite, NewSession, SessionRow};
use super::fleet::FleetStore;
use super::limit_counts::{LimitCount, LimitCountStore};
use super::places::{NewPlace, Place, PlaceStore};
use super::usage::{UsageDelta, UsageFilter, UsageRow, UsageStore};
use super::{
    Db, KeyChangeSink, KeyEvent, KeyHashRow, KeyRecord, KeyStore, LimitsSet, NewKey, PoolOptions,
    RevokeTarget, StoreError,
};
use crate::fleet::choose::Leg;
use crate::fleet::types::*;
use crate::keys::KeyHash;
use crate::limits::LimitsChange;
use crate::tenant::UserId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// When a store call was last abandoned (its deadline passed, or whoever
/// awaited it went away): the connection it held comes back to its pool
/// half-read right after, and must prove itself before it is reused.
#[derive(Clone)]
pub struct Abandoned(Arc<(Instant, AtomicU64)>);

impl Default for Abandoned {
    fn default() -> Self {
        Self(Arc::new((Instant::now(), AtomicU64::new(0))))
    }
}

impl Abandoned {
    fn note(&self) {
        let (base, last) = &*self.0;
        // +1: zero means never.
        let ms = base.elapsed().as_millis() as u64 + 1;
        last.store(ms, Ordering::Release);
    }

    /// Whether a call was abandoned within `window`.
    pub fn within(&self, window: Duration) -> bool {
        let (base, last) = &*self.0;
        match last.load(Ordering::Acquire) {
            0 => false,
            at => {
                let now = base.elapsed().as_millis() as u64 + 1;
                now.saturating_sub(at) <= window.as_millis() as u64
            }
        }
    }
}

/// Notes an abandonment if dropped before the call it guards ended.
struct InFlight<'a> {
    abandoned: &'a Abandoned,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.abandoned.note();
        }
    }
}

/// The store of `inner`, each call bounded in time.
pub struct Deadlines {
    inner: Db,
    query_timeout: Duration,
    ping_timeout: Duration,
    abandoned: Abandoned,
}

impl super::PoolStats for Deadlines {
    fn pool_connections(&self) -> super::PoolConnections {
        self.inner.pool_connections()
    }
}

impl Deadlines {
    pub fn new(inner: Db, options: &PoolOptions, abandoned: Abandoned) -> Self {
        Self {
            inner,
            query_timeout: options.query_timeout,
            ping_timeout: options.ping_timeout,
            abandoned,
        }
    }

    async fn bound<T>(
        &self,
        limit: Duration,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let mut call = std::pin::pin!(call);
        // Declared after `call`, so dropped before it: the abandonment is
        // noted before the connection goes back to its pool.
        let mut in_flight = InFlight {
            abandoned: &self.abandoned,
            done: false,
        };
        let answered = tokio::time::timeout(limit, &mut call).await;
        in_flight.done = answered.is_ok();
        answered.unwrap_or(Err(StoreError::TimedOut))
    }
}

/// Implements `$trait` for [`Deadlines`] by calling `inner` within the
/// query deadline; `$extra` are the methods that need something else.
macro_rules! bounded {
    (
        $trait:ident {
            $( fn $name:ident(&self $(, $arg:ident : $ty:ty)* ) -> $ret:ty; )*
        }
        $($extra:tt)*
    ) => {
        #[async_trait]
        impl $trait for Deadlines {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, StoreError> {
                    self.bound(self.query_timeout, self.inner.$name($($arg),*)).await
                }
            )*
            $($extra)*
        }
    };
}

bounded! {
    KeyStore {
        fn key_by_hash(&self, hash: &KeyHash) -> Option<KeyRecord>;
        fn key_by_id(&self, key_id: i64) -> Option<KeyRecord>;
        fn user_id_for_email(&self, normalized_email: &str) -> Option<String>;
        fn insert_key(&self, key: &NewKey) -> KeyRecord;
        fn insert_first_key(&self, key: &NewKey) -> Option<KeyRecord>;
        fn set_key_limits(
            &self,
            key_id: i64,
            change: &LimitsChange,
            actor: &str,
            now: DateTime<Utc>
        ) -> LimitsSet;
        fn rotate_key(
            &self,
            old_key_id: i64,
            old_expires_at: DateTime<Utc>,
            new: &NewKey
        ) -> KeyRecord;
        fn revoke_keys(
            &self,
            target: &RevokeTarget,
            actor: &str,
            now: DateTime<Utc>
        ) -> Vec<KeyRecord>;
        fn record_denied(
            &self,
            key_id: i64,
            user_id: &UserId,
            actor: &str,
            detail: &str,
            at: DateTime<Utc>
        ) -> ();
        fn list_keys(&self, email: Option<&str>) -> Vec<KeyRecord>;
        fn tenant_keys(&self, user: &UserId) -> Vec<KeyRecord>;
        fn key_hashes_after(&self, after: i64, limit: i64) -> Vec<KeyHashRow>;
        fn send_change_marker(&self, marker: &KeyHash) -> bool;
        fn count_keys(&self) -> i64;
        fn record_key_use(&self, uses: &[(i64, DateTime<Utc>)]) -> ();
        fn key_events(&self, key_id: i64) -> Vec<KeyEvent>;
    }

    /// Migrations may rightly take long (a big table, another replica
    /// holding the migration lock); they run at start, not for a request.
    async fn migrate(&self) -> Result<(), StoreError> {
        self.inner.migrate().await
    }

    /// Shorter than a query's: the health check must answer quickly.
    async fn ping(&self) -> Result<(), StoreError> {
        self.bound(self.ping_timeout, self.inner.ping()).await
    }

    fn watch_key_changes(
        &self,
        sink: KeyChangeSink,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        self.inner.watch_key_changes(sink, shutdown)
    }
}

bounded! {
    FleetStore {
        fn create_order(&self, user: &UserId, new: NewOrder, now: DateTime<Utc>) -> Order;
        fn order(&self, user: &UserId, order_id: &str) -> Order;
        fn orders(&self, user: &UserId, query: &OrderQuery) -> Vec<Order>;
        fn count_orders(&self, user: &UserId, filter: &OrderFilter) -> StatusCounts;
        fn search_orders(&self, user: &UserId, term: &str, limit: i64) -> Vec<Order>;
        fn open_orders(&self, user: &UserId, limit: i64) -> Vec<Order>;
        fn update_order(
            &self,
            user: &UserId,
            order_id: &str,
            patch: OrderPatch,
            now: DateTime<Utc>
        ) -> Order;
        fn delete_order(&self, user: &UserId, order_id: &str) -> ();
        fn delete_all_orders(&self, user: &UserId, status: Option<OrderStatus>) -> u64;
        fn create_driver(&self, user: &UserId, new: NewDriver, now: DateTime<Utc>) -> Driver;
        fn driver(&self, user: &UserId, driver_id: &str) -> Driver;
        fn drivers(&self, user: &UserId, query: &DriverQuery) -> Vec<Driver>;
        fn count_drivers(&self, user: &UserId, filter: &DriverFilter) -> StatusCounts;
        fn search_drivers(&self, user: &UserId, term: &str, limit: i64) -> Vec<Driver>;
        fn update_driver(
            &self,
            user: &UserId,
            driver_id: &str,
            patch: DriverPatch,
            now: DateTime<Utc>
        ) -> Driver;
        fn delete_driver(&self, user: &UserId, driver_id: &str) -> ();
        fn delete_all_drivers(&self, user: &UserId, status: Option<DriverStatus>) -> u64;
        fn assign(
            &self,
            user: &UserId,
            order_id: &str,
            driver_id: &str,
            leg: Option<&Leg>,
            now: DateTime<Utc>
        ) -> Assignment;
        fn assignment(&self, user: &UserId, assignment_id: &str) -> Assignment;
        fn assignments_of_order(&self, user: &UserId, order_id: &str) -> Vec<Assignment>;
        fn assignments_of_driver(&self, user: &UserId, driver_id: &str) -> Vec<Assignment>;
        fn assignments_since(&self, user: &UserId, since: DateTime<Utc>) -> Vec<(String, i64)>;
        fn change_assignment(
            &self,
            user: &UserId,
            assignment_id: &str,
            change: AssignmentChange,
            now: DateTime<Utc>
        ) -> Assignment;
    }
}

bounded! {
    ConsoleStore {
        fn insert_session(&self, session: &NewSession, purge_before: i64) -> ();
        fn session(&self, token_hash: &str) -> Option<SessionRow>;
        fn touch_session(&self, token_hash: &str, at: i64) -> ();
        fn delete_session(&self, token_hash: &str) -> ();
        fn insert_invite(&self, invite: &NewInvite, actor: &str, at: DateTime<Utc>) -> i64;
        fn invite(&self, token_hash: &str) -> Option<InviteRow>;
        fn claim_invite(&self, invite_id: i64, at: i64, key: &NewKey, actor: &str) -> Option<KeyRecord>;
    }
}

bounded! {
    PlaceStore {
        fn save_place(&self, user: &UserId, place: NewPlace, now: DateTime<Utc>) -> Place;
        fn places(&self, user: &UserId) -> Vec<Place>;
        fn place(&self, user: &UserId, name: &str) -> Option<Place>;
        fn delete_place(&self, user: &UserId, name: &str) -> bool;
    }
}

bounded! {
    UsageStore {
        fn add_tool_usage(&self, deltas: &[UsageDelta]) -> ();
        fn tool_usage(&self, filter: &UsageFilter) -> Vec<UsageRow>;
        fn tenant_tool_usage(&self, user: &UserId, since_hour: i64, limit: i64) -> Vec<UsageRow>;
        fn prune_tool_usage(&self, before_hour: i64, batch: i64) -> u64;
    }
}

bounded! {
    LimitCountStore {
        fn add_limit_counts(&self, counts: &[LimitCount]) -> Vec<LimitCount>;
        fn limit_count(&self, key_id: i64, month: i32) -> Option<LimitCount>;
        fn prune_limit_counts(&self, month: i32) -> u64;
    }
}
