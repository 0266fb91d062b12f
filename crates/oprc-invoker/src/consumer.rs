//! Consumers of the async invocation log, one per partition.
//!
//! A consumer reads accepted calls in log order and hands each to the same
//! path as a sync call: mutating calls into their object's inbox (so
//! per-object order is the log order), the others to a task of their own.
//! Each call commits its result with its record and the object's
//! `lastOffset` in one batch; a replay after a crash skips what is applied
//! (G5). An entry counts as done only once it has a terminal effect: a
//! commit, or a terminal `FAILED` record (an entry that can never apply,
//! such as an undecodable payload, included). Storage failures are retried
//! by the call itself, so no entry is ever skipped. The consumer's position
//! is committed lazily up to the oldest entry not done: it only bounds how
//! much a restart replays.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use oprc_core::{ClassKey, InvocationId, InvocationRequest, ObjectId, PartitionId};
use oprc_store::LogEntry;
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::answer;
use crate::context::Shared;
use crate::error::codes;
use crate::handle::Handle;
use crate::inbox::Pushed;
use crate::plan;
use crate::retry::backoff;
use crate::types::now_ms;
use crate::types::{Call, CallKind, ObjectKey};
use crate::{dispatch, flow_run};

/// Offsets dispatched but not done, to know up to where the log is
/// applied.
#[derive(Debug, Default)]
struct Positions {
    in_flight: BTreeSet<u64>,
    dispatched: u64,
    committed: u64,
}

impl Positions {
    /// Every offset at or below this one is done.
    fn watermark(&self) -> u64 {
        self.in_flight
            .first()
            .map_or(self.dispatched, |first| first - 1)
    }
}

pub(crate) async fn run(shared: Arc<Shared>, partition: PartitionId, cancel: CancellationToken) {
    let mut attempt = 0;
    let committed = loop {
        match shared.log.committed_position(partition).await {
            Ok(c) => break c,
            Err(e) => {
                attempt += 1;
                tracing::warn!(%partition, error = %e, "cannot read the log position; retrying");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(backoff(attempt)) => {}
                }
            }
        }
    };
    let positions = Arc::new(Mutex::new(Positions {
        in_flight: BTreeSet::new(),
        dispatched: committed,
        committed,
    }));
    let permits = Arc::new(Semaphore::new(shared.options.async_in_flight.max(1)));
    let mut next = committed + 1;
    let mut flush = tokio::time::interval(shared.options.position_flush);
    let mut failures = 0;
    let mut forwarders = Forwarders::default();
    'outer: loop {
        let entries = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            _ = flush.tick() => {
                flush_position(&shared, partition, &positions).await;
                continue;
            }
            r = shared.log.read(partition, next, 128) => r,
        };
        let entries = match entries {
            Ok(entries) => {
                failures = 0;
                entries
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(%partition, error = %e, "reading the invocation log failed; retrying");
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(backoff(failures)) => continue,
                }
            }
        };
        for entry in entries {
            let permit = tokio::select! {
                () = cancel.cancelled() => break 'outer,
                p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
            };
            next = entry.offset + 1;
            {
                let mut pos = positions.lock();
                pos.in_flight.insert(entry.offset);
                pos.dispatched = entry.offset;
            }
            let done = Done {
                positions: positions.clone(),
                offset: entry.offset,
                _permit: permit,
            };
            dispatch(&shared, partition, entry, done, &mut forwarders);
        }
    }
    // Let the calls already dispatched finish (up to the drain timeout; a
    // call still running then is replayed at the next start), then record
    // how far the log is applied.
    let _ = tokio::time::timeout(shared.options.drain_timeout, shared.tracker.wait()).await;
    flush_position(&shared, partition, &positions).await;
}

/// An entry in flight. `finish` marks it done; dropped without, it stays
/// in flight, so the position never passes an entry that was not applied.
struct Done {
    positions: Arc<Mutex<Positions>>,
    offset: u64,
    _permit: OwnedSemaphorePermit,
}

impl Done {
    fn finish(self) {
        self.positions.lock().in_flight.remove(&self.offset);
    }
}

async fn flush_position(shared: &Shared, partition: PartitionId, positions: &Mutex<Positions>) {
    let (mark, committed) = {
        let p = positions.lock();
        (p.watermark(), p.committed)
    };
    if mark <= committed {
        return;
    }
    match shared.log.commit_position(partition, mark).await {
        Ok(()) => positions.lock().committed = mark,
        Err(e) => tracing::warn!(%partition, error = %e, "committing the log position failed"),
    }
}

/// Calls waiting for room in a full inbox, per object, in log order: the
/// consumer goes on with the partition's other objects meanwhile. Each
/// call forwarded holds a consumer permit until it is done, so what waits
/// here is bounded by `async_in_flight`.
#[derive(Default)]
struct Forwarders {
    by_object: HashMap<ObjectKey, Forwarder>,
}

struct Forwarder {
    tx: mpsc::UnboundedSender<Call>,
    /// Calls sent and not yet in the inbox.
    pending: Arc<AtomicUsize>,
}

impl Forwarders {
    /// Into the object's inbox, behind the calls waiting for room.
    fn push(&mut self, shared: &Arc<Shared>, mut call: Call) {
        let key = call.key().expect("mutating calls have a main object");
        if let Some(f) = self.by_object.get(&key)
            && f.pending.load(Ordering::SeqCst) > 0
        {
            f.pending.fetch_add(1, Ordering::SeqCst);
            match f.tx.send(call) {
                Ok(()) => return,
                // Its task is gone (it cannot be, short of a panic).
                Err(mpsc::error::SendError(back)) => {
                    f.pending.fetch_sub(1, Ordering::SeqCst);
                    call = back;
                }
            }
        }
        let call = match shared.inboxes.push(&key, call) {
            Pushed::Queued => return,
            Pushed::Opened(rx) => return dispatch::spawn_worker(shared, key, rx),
            Pushed::Full(call) => call,
        };
        if self.by_object.len() >= 64 {
            self.by_object
                .retain(|_, f| f.pending.load(Ordering::SeqCst) > 0);
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(1));
        let _ = tx.send(call);
        let (shared2, left) = (shared.clone(), pending.clone());
        shared.tracker.spawn(async move {
            while let Some(call) = rx.recv().await {
                dispatch::dispatch_waiting(&shared2, call).await;
                left.fetch_sub(1, Ordering::SeqCst);
            }
        });
        self.by_object.insert(key, Forwarder { tx, pending });
    }
}

fn dispatch(
    shared: &Arc<Shared>,
    partition: PartitionId,
    entry: LogEntry,
    done: Done,
    forwarders: &mut Forwarders,
) {
    let offset = entry.offset;
    let req = match serde_json::from_slice::<InvocationRequest>(&entry.payload) {
        Ok(req) => req,
        Err(e) => {
            tracing::error!(%partition, offset, error = %e, "an async log entry cannot be decoded");
            let req = unreadable(partition, offset, &entry.payload);
            let message = format!("the async log entry cannot be decoded: {e}");
            return record_failure(shared, req, codes::UNREADABLE, message, done);
        }
    };
    let plan = match plan::plan(&shared.catalog.load(), &req) {
        Ok(plan) => plan,
        Err(e) => return record_failure(shared, req, e.code(), e.to_string(), done),
    };
    if plan.dag().is_some() {
        // A macro holds no inbox: its orchestrator runs on its own, and the
        // entry is done once its terminal record is stored.
        let h = Handle {
            shared: shared.clone(),
        };
        let kind = CallKind::Async { partition, offset };
        shared.tracker.spawn(async move {
            let _doing = h.shared.doing(&req.inv_id);
            match flow_run::run(&h, req, plan, kind).await {
                Ok(_) => done.finish(),
                Err(e) => tracing::debug!(offset, error = %e, "async macro left for a replay"),
            }
        });
        return;
    }
    let (tx, rx) = oneshot::channel();
    let que_ts = req.accepted_at.unwrap_or_else(now_ms);
    let call = Call {
        req,
        plan,
        kind: CallKind::Async { partition, offset },
        que_ts,
        attempts: 0,
        reply: Some(tx),
        _admitted: None,
    };
    if call.plan.mutating {
        forwarders.push(shared, call);
    } else {
        dispatch::spawn_direct(shared, call);
    }
    shared.tracker.spawn(async move {
        match rx.await {
            // Applied, or failed for good with its terminal record.
            Ok(Ok(_)) => done.finish(),
            // Not applied (the node is stopping): replayed at the next start.
            Ok(Err(e)) => tracing::debug!(offset, error = %e, "async call left for a replay"),
            Err(_) => tracing::debug!(offset, "async call left for a replay"),
        }
    });
}

/// Stores a terminal `FAILED` record for an entry that cannot run, then
/// marks it done.
fn record_failure(
    shared: &Arc<Shared>,
    req: InvocationRequest,
    code: &str,
    message: String,
    done: Done,
) {
    let mut resp = oprc_core::InvocationResponse::status(
        req.inv_id.clone(),
        oprc_core::InvocationStatus::Failed,
    );
    resp.error = Some(crate::step::failure(code, message));
    let shared2 = shared.clone();
    shared.tracker.spawn(async move {
        if answer::record_durably(&shared2, &req, &resp).await {
            shared2
                .metrics
                .observe(&req.cls, &req.fb, resp.status, Duration::ZERO);
            done.finish();
        }
    });
}

/// What can be told of an entry that does not decode: its invocation id
/// and target when they are readable, else placeholders naming its place
/// in the log (so its failure can still be looked up).
fn unreadable(partition: PartitionId, offset: u64, payload: &[u8]) -> InvocationRequest {
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
    let text = |k: &str| v.get(k).and_then(|x| x.as_str());
    let inv_id = text("invId")
        .and_then(|s| InvocationId::new(s).ok())
        .or_else(|| InvocationId::new(format!("log-p{partition}-o{offset}")).ok())
        .expect("a placeholder id is valid");
    let cls = text("cls")
        .and_then(|s| ClassKey::new(s).ok())
        .unwrap_or_else(|| ClassKey::new("oprc.unreadable").expect("valid class key"));
    let mut req = InvocationRequest::new(
        cls,
        text("oid").and_then(|s| ObjectId::new(s).ok()),
        text("fb").unwrap_or("unknown"),
    );
    req.inv_id = inv_id;
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_stops_below_the_oldest_running_call() {
        let mut p = Positions {
            dispatched: 5,
            ..Default::default()
        };
        assert_eq!(p.watermark(), 5);
        p.in_flight.extend([3, 5]);
        assert_eq!(p.watermark(), 2);
        p.in_flight.remove(&3);
        assert_eq!(p.watermark(), 4);
    }

    #[test]
    fn an_unreadable_entry_keeps_what_can_be_read() {
        let p = PartitionId(2);
        let partial = br#"{"invId": "abc", "cls": "p.c", "fb": 7}"#;
        let req = unreadable(p, 9, partial);
        assert_eq!(
            (req.inv_id.as_str(), req.cls.as_str(), req.fb.as_str()),
            ("abc", "p.c", "unknown")
        );
        let req = unreadable(p, 9, b"\xff\x00garbage");
        assert_eq!(req.inv_id.as_str(), "log-p2-o9");
        assert_eq!(req.cls.as_str(), "oprc.unreadable");
    }
}
