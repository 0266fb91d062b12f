//! Calls that need no inbox: class-level calls (`new`, `noMain`) and
//! calls that do not change their main object (reads, immutable tasks).
//! They run concurrently, each in a task of its own (spawned by the
//! caller when it may commit, so a caller that goes away cannot cut it
//! short), and commit what they create: output objects, records.

use std::sync::Arc;

use oprc_store::ErrorKind;

use crate::answer;
use crate::context::Shared;
use crate::exec;
use crate::plan;
use crate::retry::{self, Decision};
use crate::step::prepare;
use crate::types::{Call, CallKind};

/// Runs the call to its end and answers it.
pub(crate) async fn run(shared: Arc<Shared>, mut call: Call) {
    let _doing =
        matches!(call.kind, CallKind::Async { .. }).then(|| shared.doing(&call.req.inv_id));
    loop {
        let error;
        (call, error) = match attempt(&shared, call).await {
            Ok(()) => return,
            Err(failed) => failed,
        };
        // A direct call writes no main object: a conflict is an object it
        // creates that exists already, which no retry changes.
        if error.kind == ErrorKind::Conflict {
            let code = crate::error::codes::ALREADY_EXISTS;
            answer::failed_for_good(&shared, call, code, "an object with this id already exists");
            return;
        }
        call.attempts += 1;
        match retry::decide(call.kind, error.kind, call.attempts) {
            Decision::Retry(d) => {
                tracing::warn!(inv = %call.req.inv_id, error = %error, "storage failed; retrying");
                if !answer::pause(&shared, d).await {
                    // Stopping: an async call runs again at the next start.
                    call.answer(Err(crate::Error::ShuttingDown));
                    return;
                }
            }
            Decision::Fail => {
                tracing::warn!(inv = %call.req.inv_id, error = %error, "storage failed");
                answer::storage_failed(&shared, call, error.kind);
                return;
            }
        }
    }
}

type Failed = (Call, oprc_store::Error);

/// One try: check, load, run, commit; the call is answered unless storage
/// failed, which hands it back.
async fn attempt(shared: &Arc<Shared>, call: Call) -> Result<(), Failed> {
    if shared.stopping.is_cancelled() {
        answer::refused(shared, call, crate::Error::ShuttingDown);
        return Ok(());
    }
    let fresh = match plan::again(&shared.catalog.load(), &call.req, &call.plan) {
        Ok(fresh) => fresh,
        Err(e) => {
            answer::refused(shared, call, e);
            return Ok(());
        }
    };
    if let Some(plan) = fresh.as_ref().filter(|p| p.mutating) {
        // A package update made the binding mutating since the call was
        // accepted: it runs in its object's inbox, like any mutation.
        let plan = plan.clone();
        moved(shared, call, plan).await;
        return Ok(());
    }
    let plan = fresh.as_ref().unwrap_or(&call.plan);
    let replayed = matches!(call.kind, CallKind::Async { .. }) || call.attempts > 0;
    if call.kind.records() && replayed {
        match shared.state.get_invocation(&call.req.inv_id).await {
            Ok(Some(r)) if r.response.status.is_terminal() => {
                answer::done(shared, call, r.response);
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => return Err((call, e)),
        }
    }
    let main = match &call.req.oid {
        None => None,
        Some(oid) => match shared.load(&call.req.cls, oid).await {
            Ok(Some(m)) => Some(m),
            Ok(None) => {
                let e = crate::Error::object_not_found(&call.req.cls, oid);
                answer::refused(shared, call, e);
                return Ok(());
            }
            Err(e) => return Err((call, e)),
        },
    };
    let step = match exec::run(shared, plan, &call.req, main.as_deref(), false).await {
        Ok(step) => step,
        Err(exec::Refusal::Now(e)) => {
            answer::refused(shared, call, e);
            return Ok(());
        }
        Err(exec::Refusal::Mutating(plan)) => {
            moved(shared, call, *plan).await;
            return Ok(());
        }
        Err(exec::Refusal::Storage(e)) => return Err((call, e)),
    };
    let mut prepared = prepare(&shared.step_context(&call, plan), main.as_deref(), step);
    let batch = std::mem::take(&mut prepared.batch);
    if !batch.writes.is_empty()
        && let Err(e) = shared.state.commit(batch).await
    {
        for (key, _) in &prepared.committed {
            shared.cache.forget(key);
        }
        return Err((call, e));
    }
    answer::committed(shared, call, prepared);
    Ok(())
}

/// Hands a call whose binding became mutating to its object's inbox.
async fn moved(shared: &Arc<Shared>, mut call: Call, plan: crate::plan::Plan) {
    call.plan = plan;
    if call.key().is_none() {
        let e = crate::Error::Internal("a mutating call without an object".into());
        return answer::refused(shared, call, e);
    }
    crate::dispatch::dispatch_waiting(shared, call).await;
}
