//! Remembers how the last completion went, so `/health` can report it without I/O.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::HealthStatus;

#[derive(Debug, Clone, Copy)]
struct Outcome {
    at: Instant,
    /// Error code when the completion failed.
    error: Option<&'static str>,
}

#[derive(Debug, Default)]
pub(crate) struct OutcomeTracker {
    last: Mutex<Option<Outcome>>,
}

/// What the tracker knows, ready for a [`super::ProviderHealth`].
pub(crate) struct OutcomeSnapshot {
    pub status: HealthStatus,
    pub last_error: Option<String>,
    pub age_secs: Option<u64>,
}

impl OutcomeTracker {
    pub fn record_success(&self) {
        self.record(None);
    }

    pub fn record_failure(&self, code: &'static str) {
        self.record(Some(code));
    }

    pub fn snapshot(&self) -> OutcomeSnapshot {
        let last = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match last {
            None => OutcomeSnapshot {
                status: HealthStatus::Unknown,
                last_error: None,
                age_secs: None,
            },
            Some(outcome) => OutcomeSnapshot {
                status: if outcome.error.is_some() {
                    HealthStatus::Degraded
                } else {
                    HealthStatus::Ok
                },
                last_error: outcome.error.map(str::to_owned),
                age_secs: Some(outcome.at.elapsed().as_secs()),
            },
        }
    }

    fn record(&self, error: Option<&'static str>) {
        // A poisoned lock only means another thread panicked mid-update of a Copy value.
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(Outcome {
            at: Instant::now(),
            error,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_unknown_then_last_outcome() {
        let tracker = OutcomeTracker::default();
        assert_eq!(tracker.snapshot().status, HealthStatus::Unknown);
        tracker.record_failure("upstream_timeout");
        let snapshot = tracker.snapshot();
        assert_eq!(snapshot.status, HealthStatus::Degraded);
        assert_eq!(snapshot.last_error.as_deref(), Some("upstream_timeout"));
        tracker.record_success();
        assert_eq!(tracker.snapshot().status, HealthStatus::Ok);
        assert_eq!(tracker.snapshot().last_error, None);
    }
}
