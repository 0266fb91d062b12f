//! Mutating calls: the job an object's inbox runs for each of them.

use std::sync::Arc;

use oprc_core::{InvocationRequest, InvocationResponse, InvocationStatus};
use tracing::Instrument;

use crate::exec;
use crate::inbox::{Cached, Job};
use crate::invoker::{Doing, Shared, load, not_found, span_of};
use crate::pipeline::{self, Current, Pending, Reply};
use crate::plan::Plan;

/// A job for the object's inbox: load (or reuse) the state, skip a replayed
/// async call that is already applied, run, then commit (inline, or through
/// the object's pump when calls are queued behind it) and answer.
pub(crate) fn mutating_job(
    shared: Arc<Shared>,
    plan: Plan,
    req: InvocationRequest,
    offset: Option<u64>,
    record: bool,
    que_ts: i64,
    reply: Reply,
) -> Job {
    let span = span_of(&req);
    Box::new(move |state: &mut Cached| {
        Box::pin(
            async move {
                let doing = offset.map(|_| shared.doing(&req.inv_id));
                let call = Call {
                    plan: &plan,
                    offset,
                    record,
                    que_ts,
                };
                run_mutating(&shared, call, req, state, reply, doing).await;
            }
            .instrument(span),
        )
    })
}

/// The parts of a mutating call besides its request.
struct Call<'a> {
    plan: &'a Plan,
    offset: Option<u64>,
    record: bool,
    que_ts: i64,
}

async fn run_mutating(
    shared: &Arc<Shared>,
    call: Call<'_>,
    req: InvocationRequest,
    state: &mut Cached,
    reply: Reply,
    doing: Option<Doing>,
) {
    let oid = req.oid.clone().expect("mutating calls have a main object");
    state.check_poison();
    if matches!(state.current, Current::Unknown) {
        state.current = match load(shared, &req.cls, &oid).await {
            Ok(Some(obj)) => Current::Live(obj),
            Ok(None) => Current::Gone,
            Err(e) => return pipeline::send(reply, Err(e.into())),
        };
    }
    let Current::Live(main) = &state.current else {
        return pipeline::send(reply, Err(not_found(&req.cls, &oid)));
    };
    if let Some(offset) = call.offset {
        // Replayed after a crash: skip what is already applied (G5). The
        // offset covers committed changes, the record covers failures.
        if main.meta.last_offset >= offset || crate::consumer::already_done(shared, &req).await {
            let done = InvocationResponse::status(req.inv_id.clone(), InvocationStatus::Succeeded);
            return pipeline::send(reply, Ok(done));
        }
    }
    let step = exec::run(shared, call.plan, &req, Some(main)).await;
    let prepared = exec::prepare(
        shared,
        &req,
        Some(main),
        step,
        call.offset,
        call.record,
        call.que_ts,
    );
    if state.pipelining() {
        // The next call runs on this state while the commit is in flight.
        prepared.cache.apply_to(&mut state.current);
        let pending = Pending {
            req,
            prepared,
            reply,
            doing,
            generation: 0,
        };
        return state.submit(shared, pending);
    }
    let (resp, after) = exec::commit(shared, &req, prepared).await;
    after.apply_to(&mut state.current);
    drop(doing);
    pipeline::send(reply, Ok(resp));
}
