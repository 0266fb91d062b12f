//! Handing an accepted call to where it runs: its object's inbox when it
//! mutates, a direct run otherwise. Either way the call runs to its end
//! whatever whoever handed it over does (G10).

use std::sync::Arc;
use std::time::Duration;

use oprc_core::InvocationResponse;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::context::Shared;
use crate::detach::{Work, until_answered};
use crate::inbox::Pushed;
use crate::types::{Call, span_of};
use crate::{Error, direct, worker};

/// How long a refused caller is told to wait.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// For a waiting caller, whose task runs the call (or its object's idle
/// worker) until it has its answer; the rest, or all of it if the caller
/// goes away, goes on detached. Refuses with `Overloaded` when the
/// object's inbox is full.
pub(crate) async fn run(
    shared: &Arc<Shared>,
    call: Call,
    answer: oneshot::Receiver<Result<InvocationResponse, Error>>,
) -> Result<InvocationResponse, Error> {
    let span = span_of(&call.req);
    let answered = if call.plan.mutating {
        let key = call.key().expect("mutating calls have a main object");
        match shared.inboxes.push(&key, call) {
            Pushed::Queued => answer.await,
            Pushed::Opened(rx) => {
                let work = worker_work(shared, key, rx);
                until_answered(&shared.tracker, work, answer).await
            }
            Pushed::Full(_) => {
                return Err(Error::Overloaded {
                    what: "this object's queue",
                    retry_after: RETRY_AFTER,
                });
            }
        }
    } else {
        let work = direct_work(shared, call, span);
        until_answered(&shared.tracker, work, answer).await
    };
    answered.map_err(|_| Error::ShuttingDown)?
}

// Plain functions, so that the futures of the waiting callers hold only the
// box, not the work's state (which would be copied at every layer of the
// HTTP stack).
fn worker_work(
    shared: &Arc<Shared>,
    key: crate::types::ObjectKey,
    rx: tokio::sync::mpsc::Receiver<Call>,
) -> Work {
    Box::pin(worker::run(shared.clone(), key, rx))
}

fn direct_work(shared: &Arc<Shared>, call: Call, span: tracing::Span) -> Work {
    Box::pin(direct::run(shared.clone(), call).instrument(span))
}

/// For the async consumer: waits for room in a full inbox (backpressure;
/// an accepted call is never refused).
pub(crate) async fn dispatch_waiting(shared: &Arc<Shared>, call: Call) {
    if !call.plan.mutating {
        spawn_direct(shared, call);
        return;
    }
    let key = call.key().expect("mutating calls have a main object");
    if let Some(rx) = shared.inboxes.push_waiting(&key, call).await {
        spawn_worker(shared, key, rx);
    }
}

/// Starts the worker of an inbox just opened, in a task of its own.
pub(crate) fn spawn_worker(
    shared: &Arc<Shared>,
    key: crate::types::ObjectKey,
    rx: tokio::sync::mpsc::Receiver<Call>,
) {
    shared.tracker.spawn(worker::run(shared.clone(), key, rx));
}

pub(crate) fn spawn_direct(shared: &Arc<Shared>, call: Call) {
    let span = span_of(&call.req);
    shared
        .tracker
        .spawn(direct::run(shared.clone(), call).instrument(span));
}
