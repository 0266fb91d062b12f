//! Answering calls once their fate is known, and the bookkeeping that goes
//! with it (hot cache, metrics, terminal records of async calls). Every
//! path of the inbox workers and of direct calls ends here.

use std::sync::Arc;
use std::time::Duration;

use oprc_core::{InvocationResponse, InvocationStatus};
use oprc_store::{Durability, ErrorKind, Write, WriteBatch};

use crate::Error;
use crate::context::Shared;
use crate::error::codes;
use crate::retry::backoff;
use crate::step::{Prepared, failure, record_of};
use crate::types::now_ms;
use crate::types::{Call, CallKind};

/// Tries to store the record of an async call that failed for good before
/// giving up on a corrupt store.
const RECORD_ATTEMPTS_ON_INTERNAL: u32 = 3;

/// The call's batch is committed: teach the cache, answer.
pub(crate) fn committed(shared: &Shared, mut call: Call, prepared: Prepared) {
    for (key, obj) in prepared.committed {
        match obj {
            Some(obj) => shared.cache.set(key, obj),
            // No tombstone: a create on another path (`new`) may land right
            // after this delete, and its cache entry must not be buried by
            // this late one. The next read asks the store.
            None => shared.cache.forget(&key),
        }
    }
    observe(shared, &call, &prepared.response);
    call.answer(Ok(prepared.response));
}

/// The call needed nothing (it was applied before): answer.
pub(crate) fn done(shared: &Shared, mut call: Call, resp: InvocationResponse) {
    observe(shared, &call, &resp);
    call.answer(Ok(resp));
}

/// The call was refused when its turn came. A waiting caller gets the
/// error; an async call gets a terminal `FAILED` record with the reason.
pub(crate) fn refused(shared: &Arc<Shared>, mut call: Call, e: Error) {
    if !matches!(call.kind, CallKind::Async { .. }) {
        call.answer(Err(e));
        return;
    }
    if matches!(e, Error::ShuttingDown) {
        // Not run: it stays in the log and runs at the next start.
        tracing::debug!(inv = %call.req.inv_id, "async call left for the next start");
        return;
    }
    let resp = failed(&call, e.code(), e.to_string());
    finish_async(shared, call, resp);
}

/// Storage failed under the call for good; nothing of it was committed.
pub(crate) fn storage_failed(shared: &Arc<Shared>, call: Call, kind: ErrorKind) {
    let (code, message) = match kind {
        ErrorKind::Conflict => (
            codes::CONFLICT,
            "the object kept changing concurrently; nothing was committed",
        ),
        ErrorKind::Unavailable => (
            codes::STORAGE,
            "the new state could not be stored; nothing was committed; retry later",
        ),
        ErrorKind::Timeout => (
            codes::STORAGE,
            "storage did not answer in time: the new state may or may not have been \
             stored; read the object before you retry",
        ),
        ErrorKind::Fenced => (
            codes::STORAGE,
            "the object's partition moved to another node; nothing was committed; retry",
        ),
        ErrorKind::Internal => (
            codes::INTERNAL,
            "stored data could not be read or written (see the node's log); nothing was committed",
        ),
    };
    failed_for_good(shared, call, code, message);
}

/// Answers a call that failed for good with `code`: an async call after
/// its terminal record is stored.
pub(crate) fn failed_for_good(shared: &Arc<Shared>, mut call: Call, code: &str, message: &str) {
    let resp = failed(&call, code, message);
    if matches!(call.kind, CallKind::Async { .. }) {
        finish_async(shared, call, resp);
    } else {
        observe(shared, &call, &resp);
        call.answer(Ok(resp));
    }
}

/// A call that already exists as `FAILED` with this error.
pub(crate) fn failed(call: &Call, code: &str, message: impl Into<String>) -> InvocationResponse {
    let mut resp = InvocationResponse::status(call.req.inv_id.clone(), InvocationStatus::Failed);
    resp.error = Some(failure(code, message));
    resp.stats = Some(oprc_core::InvocationStats {
        que_ts: call.que_ts,
        offload_ts: 0,
        cpt_ts: now_ms(),
    });
    resp
}

/// Stores the terminal record of an async call that failed (retrying
/// while storage heals), then answers the consumer. If the node stops
/// first, the call is not answered: it stays in the log and runs again at
/// the next start.
pub(crate) fn finish_async(shared: &Arc<Shared>, mut call: Call, resp: InvocationResponse) {
    let shared2 = shared.clone();
    shared.tracker.spawn(async move {
        if record_durably(&shared2, &call.req, &resp).await {
            observe(&shared2, &call, &resp);
            call.answer(Ok(resp));
        }
    });
}

/// Writes the call's record; false when the node stopped first.
pub(crate) async fn record_durably(
    shared: &Shared,
    req: &oprc_core::InvocationRequest,
    resp: &InvocationResponse,
) -> bool {
    let mut attempt = 0;
    loop {
        let record = record_of(req, resp, now_ms(), shared.retention_ms());
        let batch = WriteBatch {
            writes: vec![Write::PutInvocation(Box::new(record))],
            durability: Durability::Required,
            fence: None,
        };
        let e = match shared.state.commit(batch).await {
            Ok(()) => return true,
            Err(e) => e,
        };
        attempt += 1;
        if e.kind == ErrorKind::Internal && attempt >= RECORD_ATTEMPTS_ON_INTERNAL {
            tracing::error!(
                inv = %req.inv_id, error = %e,
                "cannot store the failure record of an async call; its result is lost"
            );
            shared.metrics.record_lost();
            return true;
        }
        tracing::warn!(inv = %req.inv_id, error = %e, attempt, "storing a failure record failed; retrying");
        if !pause(shared, backoff(attempt)).await {
            return false;
        }
    }
}

/// Sleeps, unless the node stops first (false).
pub(crate) async fn pause(shared: &Shared, d: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = shared.stopping.cancelled() => false,
    }
}

fn observe(shared: &Shared, call: &Call, resp: &InvocationResponse) {
    let took = Duration::from_millis(u64::try_from(now_ms() - call.que_ts).unwrap_or(0));
    shared
        .metrics
        .observe(&call.req.cls, &call.req.fb, resp.status, took);
}
