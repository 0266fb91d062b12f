//! Consumers of the async invocation log, one per partition.
//!
//! A consumer reads accepted calls in log order and hands each to the same
//! path as a sync call: mutating calls into their object's inbox (so
//! per-object order is the log order), the others straight to a task. Each
//! call commits its result with its invocation record, and the object's
//! `lastOffset`, in one batch; a replay after a crash skips calls that are
//! already applied (G5). The consumer's position in the log is committed
//! lazily: it is only an optimisation of how much is replayed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use oprc_core::{InvocationRequest, InvocationResponse, InvocationStatus, PartitionId};
use oprc_store::{LogEntry, Write, WriteBatch};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::codes;
use crate::exec::{self, now_ms};
use crate::invoker::Shared;
use crate::mutate::mutating_job;
use crate::plan::{self, Caller};

/// Offsets dispatched but not finished, to know up to where the log is
/// applied.
#[derive(Debug, Default)]
struct Positions {
    in_flight: BTreeSet<u64>,
    dispatched: u64,
    committed: u64,
}

impl Positions {
    /// Every offset at or below this one has finished.
    fn watermark(&self) -> u64 {
        self.in_flight
            .first()
            .map_or(self.dispatched, |first| first - 1)
    }
}

pub(crate) async fn run(shared: Arc<Shared>, partition: PartitionId, cancel: CancellationToken) {
    let committed = loop {
        match shared.log.committed_position(partition).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(%partition, error = %e, "cannot read log position, retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
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
    'outer: loop {
        let entries = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = flush.tick() => {
                flush_position(&shared, partition, &positions).await;
                continue;
            }
            r = shared.log.read(partition, next, 128) => r,
        };
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(%partition, error = %e, "reading the invocation log failed, retrying");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        for entry in entries {
            let permit = tokio::select! {
                _ = cancel.cancelled() => break 'outer,
                p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
            };
            next = entry.offset + 1;
            {
                let mut pos = positions.lock();
                pos.in_flight.insert(entry.offset);
                pos.dispatched = entry.offset;
            }
            dispatch(&shared, entry, positions.clone(), permit);
        }
    }
    // Let the calls already dispatched finish (up to the drain timeout; a
    // call still running then is replayed at the next start), then record
    // how far the log is applied.
    let _ = tokio::time::timeout(shared.options.drain_timeout, shared.tracker.wait()).await;
    flush_position(&shared, partition, &positions).await;
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

fn dispatch(
    shared: &Arc<Shared>,
    entry: LogEntry,
    positions: Arc<Mutex<Positions>>,
    permit: OwnedSemaphorePermit,
) {
    let offset = entry.offset;
    let running = shared.metrics.running();
    let done = move || {
        drop(running);
        positions.lock().in_flight.remove(&offset);
        drop(permit);
    };
    let req: InvocationRequest = match serde_json::from_slice(&entry.payload) {
        Ok(req) => req,
        Err(e) => {
            tracing::error!(offset, error = %e, "skipping an unreadable log entry");
            done();
            return;
        }
    };
    let que_ts = req.accepted_at.unwrap_or_else(now_ms);
    let plan = plan::plan(&shared.catalog.load(), &req, &Caller::External);
    let shared = shared.clone();
    let tracker = shared.tracker.clone();
    match plan {
        Ok(plan) if plan.mutating => {
            let (tx, rx) = oneshot::channel();
            let oid = req.oid.clone().expect("mutating calls have a main object");
            let key = (req.cls.clone(), oid);
            let job = mutating_job(
                shared.clone(),
                plan,
                req.clone(),
                Some(offset),
                true,
                que_ts,
                Some(tx),
            );
            shared.inboxes.enqueue(&shared.tracker, key, job);
            tracker.spawn(async move {
                match rx.await {
                    Ok(Ok(resp)) => observe(&shared, &req, &resp),
                    // Storage trouble: not recorded, so the call is replayed.
                    Ok(Err(crate::Error::Storage(e))) => {
                        tracing::warn!(inv = %req.inv_id, error = %e, "async call not applied");
                    }
                    Ok(Err(e)) => fail(&shared, &req, e.to_string(), code_of(&e)).await,
                    // Dropped at shutdown: replayed at the next start.
                    Err(_) => {}
                }
                done();
            });
        }
        Ok(plan) => {
            let span = crate::invoker::span_of(&req);
            tracker.spawn(tracing::Instrument::instrument(async move {
                let _doing = shared.doing(&req.inv_id);
                if !already_done(&shared, &req).await {
                    let main = match &req.oid {
                        Some(oid) => match crate::invoker::load(&shared, &req.cls, oid).await {
                            Ok(Some(m)) => Some(m),
                            Ok(None) => {
                                let msg =
                                    format!("object `{oid}` of class `{}` does not exist", req.cls);
                                fail(&shared, &req, msg, codes::NOT_FOUND).await;
                                done();
                                return;
                            }
                            Err(e) => {
                                // Not recorded: the call is replayed later.
                                tracing::warn!(inv = %req.inv_id, error = %e, "cannot load object");
                                done();
                                return;
                            }
                        },
                        None => None,
                    };
                    let resp = exec::run_direct(
                        &shared,
                        &plan,
                        &req,
                        main.as_deref(),
                        Some(offset),
                        true,
                        que_ts,
                    )
                    .await;
                    observe(&shared, &req, &resp);
                }
                done();
            }, span));
        }
        Err(e) => {
            tracker.spawn(async move {
                fail(&shared, &req, e.to_string(), code_of(&e)).await;
                done();
            });
        }
    }
}

fn code_of(e: &crate::Error) -> &'static str {
    match e {
        crate::Error::ObjectNotFound { .. }
        | crate::Error::ClassNotFound(_)
        | crate::Error::FunctionNotFound { .. } => codes::NOT_FOUND,
        crate::Error::Storage(_) => codes::STORAGE,
        _ => codes::INVALID_ARGUMENT,
    }
}

fn observe(shared: &Shared, req: &InvocationRequest, resp: &InvocationResponse) {
    shared.metrics.observe(
        &req.cls,
        &req.fb,
        resp.status,
        Duration::from_millis(
            resp.stats
                .as_ref()
                .map_or(0, |s| (s.cpt_ts - s.que_ts).max(0) as u64),
        ),
    );
}

/// Whether a replayed call already has a final record.
pub(crate) async fn already_done(shared: &Shared, req: &InvocationRequest) -> bool {
    matches!(
        shared.state.get_invocation(&req.inv_id).await,
        Ok(Some(r)) if r.response.status.is_terminal()
    )
}

/// Records a call that could not run at all.
async fn fail(shared: &Shared, req: &InvocationRequest, message: String, code: &str) {
    let mut resp = InvocationResponse::status(req.inv_id.clone(), InvocationStatus::Failed);
    resp.error = Some(oprc_core::InvocationError {
        code: code.to_owned(),
        message,
    });
    let mut batch = WriteBatch::new();
    batch.push(Write::PutInvocation(Box::new(exec::record_of(
        shared, req, &resp,
    ))));
    if let Err(e) = shared.state.commit(batch).await {
        tracing::warn!(inv = %req.inv_id, error = %e, "cannot record a failed invocation");
    }
    observe(shared, req, &resp);
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
}
