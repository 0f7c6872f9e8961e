//! The process's log: the operator's filter (`--log` / `FLEETMIND_LOG`),
//! always combined with [`SecretSafe`], so that no filter, `trace` included,
//! can make a library print what it must not.
//!
//! What each library logs, and why it is capped or left alone:
//!
//! - `rmcp` prints whole JSON-RPC messages at DEBUG and TRACE ("received
//!   request", "response message", "new event"): arguments with emails and
//!   tenant data, and the key that `admin_create_api_key` and
//!   `admin_rotate_api_key` return. Its INFO lines ("Service initialized …
//!   peer_info", "input stream terminated") come three per request and carry
//!   what the client sent about itself. So rmcp is capped at WARN, whose
//!   lines name events, never message bodies.
//! - `hyper` logs only when built with `--cfg hyper_unstable_tracing`; `h2`
//!   is not built in (axum here serves HTTP/1 only); `tower_http` logs only
//!   through a `TraceLayer`, which the server does not use. They are capped
//!   at INFO all the same, so that none of those changing prints request
//!   headers (`Authorization`) or bodies.
//! - `sqlx` prints each statement's SQL text at DEBUG, never the values
//!   bound to it, and every query binds its values (keys are looked up by
//!   hash, as a bound parameter). It is left alone: the SQL is useful and
//!   holds no secret. `tests/log_secrets.rs` runs the real binary at `trace`
//!   on both backends and searches the whole log for every key, key hash and
//!   email used, so a new source shows up there.
//!
//! The server's own lines name keys by id or display prefix and tenants by
//! user id, never by key, hash or email.

pub mod gate;

use tracing::Metadata;
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, filter::FilterExt};

/// The filter used when `--log` cannot be parsed.
const FALLBACK_FILTER: &str = "info";

/// Libraries that may print secrets below some level, and the most verbose
/// level each is allowed (see the module documentation).
const CAPS: &[(&str, LevelFilter)] = &[
    ("rmcp", LevelFilter::WARN),
    ("hyper", LevelFilter::INFO),
    ("h2", LevelFilter::INFO),
    ("tower_http", LevelFilter::INFO),
];

/// Installs the process's subscriber: `filter` (tracing syntax), capped by
/// [`SecretSafe`], written to stderr.
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new(FALLBACK_FILTER));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter.and(SecretSafe));
    tracing_subscriber::registry().with(layer).init();
}

/// Drops spans and events of the libraries listed in `CAPS` below their cap,
/// whatever the operator's filter says.
#[derive(Debug, Clone, Copy)]
pub struct SecretSafe;

impl SecretSafe {
    /// Whether a span or event with this metadata may be logged.
    pub fn allows(meta: &Metadata<'_>) -> bool {
        let target = meta.target();
        CAPS.iter()
            .find(|(name, _)| is_within(target, name))
            .is_none_or(|(_, cap)| *meta.level() <= *cap)
    }
}

/// Whether `target` is the module path `name` or inside it (`rmcp::service`
/// is inside `rmcp`; `rmcpx` is not).
fn is_within(target: &str, name: &str) -> bool {
    target
        .strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

impl<S> Filter<S> for SecretSafe {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        Self::allows(meta)
    }

    // The decision depends on the call site only, so it is made once per
    // call site and cached by tracing: nothing is paid per event.
    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if Self::allows(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    // Says "anything may pass", so that the operator's filter alone sets the
    // combined maximum level (`And` takes the lower of the two).
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;
    use tracing::callsite::Identifier;
    use tracing::field::FieldSet;
    use tracing::metadata::Kind;

    struct Site;
    impl tracing::Callsite for Site {
        fn set_interest(&self, _: Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!("not registered")
        }
    }
    static SITE: Site = Site;

    fn meta(target: &'static str, level: Level) -> Metadata<'static> {
        Metadata::new(
            "test",
            target,
            level,
            None,
            None,
            None,
            FieldSet::new(&[], Identifier(&SITE)),
            Kind::EVENT,
        )
    }

    #[test]
    fn rmcp_is_capped_at_warn_whatever_its_module() {
        for target in [
            "rmcp",
            "rmcp::service",
            "rmcp::transport::streamable_http_server::tower",
        ] {
            assert!(SecretSafe::allows(&meta(target, Level::WARN)), "{target}");
            assert!(SecretSafe::allows(&meta(target, Level::ERROR)), "{target}");
            for level in [Level::INFO, Level::DEBUG, Level::TRACE] {
                assert!(
                    !SecretSafe::allows(&meta(target, level)),
                    "{target} {level}"
                );
            }
        }
    }

    #[test]
    fn other_libraries_and_the_server_are_left_to_the_filter() {
        for target in [
            "fleetmind::auth::layer",
            "sqlx::query",
            "rmcpx",
            "hyper_util",
        ] {
            assert!(SecretSafe::allows(&meta(target, Level::TRACE)), "{target}");
        }
        for target in ["hyper::proto::h1", "h2::codec", "tower_http::trace"] {
            assert!(SecretSafe::allows(&meta(target, Level::INFO)), "{target}");
            assert!(!SecretSafe::allows(&meta(target, Level::DEBUG)), "{target}");
        }
    }
}
