//! Handing an accepted call to where it runs: its object's inbox when it
//! mutates, a task of its own otherwise. Either way the call runs to its
//! end detached from whoever handed it over (G10): its caller only waits
//! for the answer.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::context::Shared;
use crate::inbox::Pushed;
use crate::types::{Call, span_of};
use crate::{Error, direct, worker};

/// How long a refused caller is told to wait.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// For a waiting caller: refuses with `Overloaded` when the object's inbox
/// is full.
pub(crate) fn dispatch(shared: &Arc<Shared>, call: Call) -> Result<(), Error> {
    if !call.plan.mutating {
        spawn_direct(shared, call);
        return Ok(());
    }
    let key = call.key().expect("mutating calls have a main object");
    match shared.inboxes.push(&key, call) {
        Pushed::Queued => Ok(()),
        Pushed::Opened(rx) => {
            shared.tracker.spawn(worker::run(shared.clone(), key, rx));
            Ok(())
        }
        Pushed::Full(_) => Err(Error::Overloaded {
            what: "this object's queue",
            retry_after: RETRY_AFTER,
        }),
    }
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
        shared.tracker.spawn(worker::run(shared.clone(), key, rx));
    }
}

pub(crate) fn spawn_direct(shared: &Arc<Shared>, call: Call) {
    let span = span_of(&call.req);
    shared
        .tracker
        .spawn(direct::run(shared.clone(), call).instrument(span));
}
