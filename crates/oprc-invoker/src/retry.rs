//! What to do when storage fails under a call (pure).
//!
//! A failed commit is not a failed function: the function's work is only
//! lost, not wrong. An async call was promised exactly once, so it is run
//! again on reloaded state, with backoff, for as long as the failure may
//! heal; its log entry is never skipped. A caller waiting for a sync call
//! gets an answer it can act on instead of waiting for storage to heal.

use std::time::Duration;

use oprc_store::ErrorKind;

use crate::types::CallKind;

/// Longest pause between two attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Re-runs a waiting caller's call gets after concurrent changes.
const SYNC_CONFLICT_ATTEMPTS: u32 = 3;
/// Re-runs an async call gets after conflicts (about 10 s of backoff): one
/// node is its object's only writer, so conflicts that persist are not
/// concurrency but a write that can never succeed.
const ASYNC_CONFLICT_ATTEMPTS: u32 = 10;
/// Re-runs a waiting caller's idempotent call gets while storage times out.
const SYNC_TIMEOUT_ATTEMPTS: u32 = 3;

/// What happens to a call whose load or commit failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Reload the object and run the call again after this pause.
    Retry(Duration),
    /// Answer the failure; nothing was committed.
    Fail,
}

/// The pause before attempt number `attempt` (1 = the first retry).
pub(crate) fn backoff(attempt: u32) -> Duration {
    let ms = 10u64.saturating_mul(1 << attempt.min(16));
    Duration::from_millis(ms).min(MAX_BACKOFF)
}

/// Decides after storage failed with `error` on a call's `attempts`-th try
/// (1 = its first).
///
/// - Corrupt data and bugs (`Internal`) do not heal: every kind fails,
///   an async call with a terminal record.
/// - A conflict means the state moved under the call: running it again on
///   the new state is what compare-and-swap asks for. A waiting caller gets
///   a few tries, an async call ten (a conflict that persists that long is a
///   write that can never succeed).
/// - `Unavailable` may heal: an async call waits for it; a waiting caller
///   is told to retry (`503`).
/// - `Timeout` leaves the outcome unknown. A recorded call (async,
///   idempotent) can tell on reload whether it landed, so it is retried (a
///   waiting caller a few times); a plain sync call cannot, so it fails
///   rather than risk applying twice, and its answer says so.
pub(crate) fn decide(kind: CallKind, error: ErrorKind, attempts: u32) -> Decision {
    let retry = Decision::Retry(backoff(attempts));
    match (error, kind) {
        (ErrorKind::Internal, _) => Decision::Fail,
        (ErrorKind::Conflict, CallKind::Async { .. }) if attempts < ASYNC_CONFLICT_ATTEMPTS => {
            retry
        }
        (ErrorKind::Conflict, CallKind::Async { .. }) => Decision::Fail,
        (ErrorKind::Conflict, _) if attempts < SYNC_CONFLICT_ATTEMPTS => {
            // The first re-run after a conflict goes at once.
            Decision::Retry(if attempts <= 1 {
                Duration::ZERO
            } else {
                backoff(attempts)
            })
        }
        (ErrorKind::Conflict, _) => Decision::Fail,
        (ErrorKind::Unavailable, CallKind::Async { .. }) => retry,
        (ErrorKind::Unavailable, _) => Decision::Fail,
        (ErrorKind::Timeout, CallKind::Async { .. }) => retry,
        (ErrorKind::Timeout, CallKind::Idempotent) if attempts < SYNC_TIMEOUT_ATTEMPTS => retry,
        (ErrorKind::Timeout, CallKind::Idempotent) => Decision::Fail,
        (ErrorKind::Timeout, CallKind::Sync) => Decision::Fail,
        // Never commits here again; an async entry waits for the
        // partition's consumer to move to the new owner (ADR 13), a sync
        // caller is told to retry.
        (ErrorKind::Fenced, CallKind::Async { .. }) => retry,
        (ErrorKind::Fenced, _) => Decision::Fail,
    }
}

#[cfg(test)]
mod tests {
    use oprc_core::PartitionId;

    use super::*;

    const ASYNC: CallKind = CallKind::Async {
        partition: PartitionId(0),
        offset: 1,
    };

    #[test]
    fn async_calls_wait_out_every_failure_that_may_heal() {
        for kind in [ErrorKind::Unavailable, ErrorKind::Timeout] {
            for attempt in [1, 5, 100] {
                assert!(matches!(decide(ASYNC, kind, attempt), Decision::Retry(_)));
            }
        }
        assert!(matches!(
            decide(ASYNC, ErrorKind::Conflict, 9),
            Decision::Retry(_)
        ));
        assert_eq!(
            decide(ASYNC, ErrorKind::Conflict, ASYNC_CONFLICT_ATTEMPTS),
            Decision::Fail,
            "a conflict that persists is not concurrency"
        );
        assert_eq!(decide(ASYNC, ErrorKind::Internal, 1), Decision::Fail);
    }

    #[test]
    fn waiting_callers_get_an_answer() {
        assert_eq!(
            decide(CallKind::Sync, ErrorKind::Unavailable, 1),
            Decision::Fail
        );
        assert_eq!(
            decide(CallKind::Sync, ErrorKind::Timeout, 1),
            Decision::Fail
        );
        assert_eq!(
            decide(CallKind::Idempotent, ErrorKind::Timeout, 1),
            Decision::Retry(backoff(1))
        );
        assert_eq!(
            decide(
                CallKind::Idempotent,
                ErrorKind::Timeout,
                SYNC_TIMEOUT_ATTEMPTS
            ),
            Decision::Fail
        );
        assert_eq!(
            decide(CallKind::Sync, ErrorKind::Conflict, 1),
            Decision::Retry(Duration::ZERO)
        );
        assert_eq!(
            decide(CallKind::Sync, ErrorKind::Conflict, SYNC_CONFLICT_ATTEMPTS),
            Decision::Fail
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(20));
        assert!(backoff(3) > backoff(2));
        assert_eq!(backoff(60), MAX_BACKOFF);
    }
}
