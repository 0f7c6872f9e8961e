//! A panic inside a tool must not cost the caller its answer. rmcp runs
//! each request in a task of its own; a panic there ends the task and the
//! client waits forever. [`catch_panic`] turns the panic into an error the
//! caller gets at once, and the panic hook of [`install_panic_hook`] keeps
//! the log to one line per panic instead of a backtrace.
//!
//! Unwinding drops everything the tool held (a database transaction rolls
//! back, a connection goes back to the pool, a lock is released), so the
//! next call on the same data works.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, PanicHookInfo};
use std::task::Poll;

thread_local! {
    /// How many [`catch_panic`] polls are running on this thread.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
    /// Where the last guarded panic on this thread happened, for the one
    /// line [`catch_panic`]'s caller logs.
    static LAST: RefCell<Option<Caught>> = const { RefCell::new(None) };
}

/// What is known of a caught panic, for the operator's log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caught {
    /// `file:line` of the panic, when the hook saw it.
    pub location: Option<String>,
    /// The panic message, at most 200 characters.
    pub message: String,
}

/// Runs `fut`; a panic in any of its polls ends it and comes back as
/// `Err`. The panic hook stays silent for these (the caller logs one line
/// that can name the tool).
pub async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, Caught> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(move |cx| {
        GUARDED.with(|g| g.set(g.get() + 1));
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx)));
        GUARDED.with(|g| g.set(g.get().saturating_sub(1)));
        match polled {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                // The hook ran on this thread just before unwinding began.
                let caught = LAST.with(|last| last.borrow_mut().take());
                Poll::Ready(Err(caught.unwrap_or_else(|| Caught {
                    location: None,
                    message: short(payload_text(payload.as_ref())),
                })))
            }
        }
    })
    .await
}

/// Replaces the default panic output (a message and, with
/// `RUST_BACKTRACE`, dozens of lines per panic) by one ERROR line through
/// tracing; a panic under [`catch_panic`] is only recorded, for its caller
/// to log with the tool's name.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info: &PanicHookInfo<'_>| {
        let caught = Caught {
            location: info.location().map(Location::to_string),
            message: short(payload_text(info.payload())),
        };
        if GUARDED.with(Cell::get) > 0 {
            LAST.with(|last| *last.borrow_mut() = Some(caught));
        } else {
            tracing::error!(
                at = caught.location.as_deref().unwrap_or("?"),
                message = %caught.message,
                "panic"
            );
        }
    }));
}

/// The text a panic carries (`panic!` makes a `&str` or a `String`).
fn payload_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Panic messages are the program's own text; still, keep them short.
fn short(message: &str) -> String {
    message.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_value_passes_through() {
        assert_eq!(catch_panic(async { 7 }).await, Ok(7));
    }

    #[tokio::test]
    async fn a_panic_after_an_await_is_caught_and_its_lock_released() {
        let lock = Arc::new(tokio::sync::Mutex::new(0));
        let held = lock.clone();
        let out = catch_panic(async move {
            let mut guard = held.lock().await;
            *guard += 1;
            tokio::task::yield_now().await;
            let big = chrono::DateTime::<chrono::Utc>::MAX_UTC;
            // The overflow of issue 9, on purpose: the panic of a tool.
            let _ = big + chrono::TimeDelta::minutes(15);
            *guard += 1;
        })
        .await;
        let caught = out.expect_err("the panic is caught");
        assert!(caught.message.contains("overflow"), "{caught:?}");
        let value = tokio::time::timeout(Duration::from_secs(5), lock.lock())
            .await
            .expect("the lock was released by the unwinding");
        assert_eq!(*value, 1);
    }

    #[tokio::test]
    async fn the_hook_records_where_a_guarded_panic_happened() {
        install_panic_hook();
        let caught = catch_panic(async { panic!("boom {}", 42) })
            .await
            .expect_err("caught");
        let _ = std::panic::take_hook();
        assert_eq!(caught.message, "boom 42");
        let at = caught.location.expect("the hook saw the location");
        assert!(at.starts_with("src/mcp/guard.rs:"), "{at}");
        assert!(LAST.with(|last| last.borrow().is_none()));
    }
}
