//! Log lines for refused requests that a flood cannot multiply: one
//! [`LineGate`] per reason, so each reason writes at most one line per
//! second with the count since its last line:
//! `refused 20871 requests: no API key was sent (last 1 s)`.
//!
//! A line carries the client address of the refusal that wrote it (as worked
//! out with `--trusted-proxies`) and, when the key is known (revoked,
//! expired, retired by rotation), its display prefix: enough to tell whose key is still in use,
//! never the key, its hash or its owner's email. Every refusal is also
//! counted in the metrics, by reason.

use super::client_addr::ClientAddr;
use super::{AuthFailure, Refusal};
use crate::logging::gate::{LineGate, Summary};

/// The refusals of the auth layer, counted per reason.
pub(super) struct RefusalLog {
    reasons: [LineGate; REASONS],
}

/// One gate per failure [`slot`] gives a number to.
const REASONS: usize = 9;

/// Where a failure is counted.
fn slot(failure: AuthFailure) -> usize {
    match failure {
        AuthFailure::Missing => 0,
        AuthFailure::Malformed => 1,
        AuthFailure::Unknown => 2,
        AuthFailure::Revoked => 3,
        AuthFailure::Expired => 4,
        AuthFailure::Conflicting => 5,
        AuthFailure::Unavailable => 6,
        AuthFailure::Throttled { .. } => 7,
        AuthFailure::Retired { .. } => 8,
    }
}

impl RefusalLog {
    pub(super) fn new() -> Self {
        Self {
            reasons: std::array::from_fn(|_| LineGate::new()),
        }
    }

    /// Counts a refusal and writes the line of its reason if one is due;
    /// `client` is asked only then.
    pub(super) fn refused(&self, refusal: &Refusal, client: impl FnOnce() -> ClientAddr) {
        crate::metrics::auth_refused(refusal.failure);
        if let Some(summary) = self.reasons[slot(refusal.failure)].count() {
            write_line(refusal, client(), &summary);
        }
    }
}

fn write_line(refusal: &Refusal, client: ClientAddr, summary: &Summary) {
    let description = refusal.failure.description();
    let reason = &*description;
    let client = client.0.map(tracing::field::display);
    let prefix = refusal.key_prefix.as_deref();
    match (summary.count, summary.window) {
        (1, _) => tracing::info!(
            reason,
            client,
            key.prefix = prefix,
            "request refused: {reason}"
        ),
        (count, Some(window)) => tracing::info!(
            reason,
            count,
            client,
            key.prefix = prefix,
            "refused {count} requests: {reason} (last {} s)",
            window.as_secs().max(1)
        ),
        (count, None) => tracing::info!(
            reason,
            count,
            client,
            key.prefix = prefix,
            "refused {count} requests: {reason}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_has_its_own_gate() {
        let log = RefusalLog::new();
        let failures = [
            AuthFailure::Missing,
            AuthFailure::Malformed,
            AuthFailure::Unknown,
            AuthFailure::Revoked,
            AuthFailure::Expired,
            AuthFailure::Conflicting,
            AuthFailure::Unavailable,
            AuthFailure::Throttled {
                retry_after_secs: 1,
            },
            AuthFailure::Retired {
                successor_key_id: 8,
                at: chrono::DateTime::UNIX_EPOCH,
            },
        ];
        // The first refusal of every reason gets its line, though all come
        // within the same second: no reason waits behind another.
        for failure in failures {
            assert!(log.reasons[slot(failure)].count().is_some(), "{failure:?}");
        }
        let mut slots: Vec<usize> = failures.iter().map(|f| slot(*f)).collect();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), REASONS);
    }
}
