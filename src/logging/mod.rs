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
//!   is not built in (axum here serves HTTP/1 only); `tower_http` is not a
//!   dependency of the server (only the tests' HTTP client pulls it in), and
//!   would log only through a `TraceLayer`. They are capped
//!   at INFO all the same, so that none of those changing prints request
//!   headers (`Authorization`) or bodies.
//! - `sqlx` prints each statement's SQL text at DEBUG, never the values
//!   bound to it, and every query binds its values (keys are looked up by
//!   hash, as a bound parameter). It is left alone: the SQL is useful and
//!   holds no secret. `tests/it/log_secrets.rs` runs the real binary at `trace`
//!   on both backends and searches the whole log for every key, key hash and
//!   email used, so a new source shows up there.
//!
//! The server's own lines name keys by id or display prefix and tenants by
//! user id, never by key, hash or email.
//!
//! Lines are written as text or as one JSON object each (`--log-format`),
//! with colours only when stderr is a terminal and `NO_COLOR` is unset. They
//! are formatted on the thread that logs but written to stderr by a thread
//! of their own ([`tracing_appender::non_blocking()`]), so a slow stderr (a
//! pipe to journald, a full disk) never holds up a request.

pub mod access;
pub mod gate;

use std::io::IsTerminal;
use tracing::Metadata;
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing_appender::non_blocking::WorkerGuard;
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

/// How each line is written (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`.
    Json,
}

/// Lines that may wait for the writer thread; past that, new lines are
/// dropped (and counted by tracing-appender) rather than making requests
/// wait for stderr.
const BUFFERED_LINES: usize = 128_000;

/// Installs the process's subscriber: `filter` (tracing syntax), capped by
/// [`SecretSafe`], written to stderr by a writer thread. Keep the guard
/// until the process ends: dropping it writes the lines still buffered.
pub fn init(filter: &str, format: LogFormat) -> WorkerGuard {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new(FALLBACK_FILTER));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("fleetmind-log")
        .finish(std::io::stderr());
    let ansi = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let layer = match format {
        LogFormat::Text => layer.with_filter(filter.and(SecretSafe)).boxed(),
        LogFormat::Json => layer
            .json()
            .flatten_event(false)
            .with_current_span(false)
            .with_span_list(false)
            .with_filter(filter.and(SecretSafe))
            .boxed(),
    };
    tracing_subscriber::registry().with(layer).init();
    guard
}

/// Colours only for a person at a terminal, and never when `NO_COLOR` is set
/// to anything but the empty string (<https://no-color.org>).
fn use_colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty())
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
    fn colour_only_at_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some(OsStr::new("1"))));
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
