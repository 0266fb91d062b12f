//! Early lock release for hot objects.
//!
//! When calls queue up on one object, the inbox does not wait for each
//! call's commit (an fsync) before running the next: the next call runs on
//! the state the previous one computed, and the commits go, in order, to a
//! per-object pump that merges whatever has queued into one batch. Answers
//! still leave only after their commit (G4), and all-or-nothing holds
//! per call (G2): a call's writes are in one batch, and a failed commit
//! fails every call whose state built on it (their compare-and-swap could
//! not succeed anyway); the worker then reloads the object.
//!
//! An object without a queue commits inline, with no extra hop.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use oprc_core::{InvocationRequest, InvocationResponse, ObjectRecord};
use oprc_store::{Write, WriteBatch};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::Error;
use crate::exec::{self, Prepared};
use crate::inbox::ObjectKey;
use crate::invoker::Shared;

/// Where the answer of a call goes.
pub(crate) type Reply = Option<oneshot::Sender<Result<InvocationResponse, Error>>>;

pub(crate) fn send(reply: Reply, result: Result<InvocationResponse, Error>) {
    if let Some(reply) = reply {
        // The caller may have gone away; the call is done anyway.
        let _ = reply.send(result);
    }
}

/// What a worker knows of its object.
#[derive(Debug, Clone, Default)]
pub(crate) enum Current {
    /// Load it (from the hot-object cache or the store).
    #[default]
    Unknown,
    /// It does not exist (or a call in flight deletes it).
    Gone,
    /// As committed, or as computed by a call whose commit is in flight.
    Live(Arc<ObjectRecord>),
}

/// The state an inbox worker keeps between jobs.
pub(crate) struct WorkerState {
    pub current: Current,
    /// More jobs are queued behind the one running.
    pub contended: bool,
    /// Bumped each time the worker reloads after a failed commit: calls
    /// computed before a reload (on the failed state) carry an older one.
    generation: u64,
    pump: Option<Pump>,
}

struct Pump {
    tx: mpsc::UnboundedSender<Pending>,
    counters: Arc<PumpCounters>,
}

#[derive(Default)]
struct PumpCounters {
    /// Calls submitted and not yet answered.
    pending: AtomicUsize,
    idle: Notify,
    /// A commit failed: the worker's state is not what the store has.
    poisoned: AtomicBool,
    /// Calls of this generation or older built on a failed commit.
    failed_generation: AtomicU64,
}

/// A call computed and waiting for its commit.
pub(crate) struct Pending {
    pub req: InvocationRequest,
    pub prepared: Prepared,
    pub reply: Reply,
    /// An async call is shown as running until it is answered.
    pub doing: Option<crate::invoker::Doing>,
    /// Set by [`WorkerState::submit`].
    pub generation: u64,
}

impl Default for WorkerState {
    fn default() -> Self {
        Self {
            current: Current::Unknown,
            contended: false,
            // Generation 0 means "no failure yet" in `failed_generation`.
            generation: 1,
            pump: None,
        }
    }
}

impl WorkerState {
    /// Whether this call's commit should go through the pump: calls are
    /// queued behind it, or commits of earlier calls are still in flight
    /// (which it must not overtake).
    pub fn pipelining(&self) -> bool {
        self.contended || self.has_pending()
    }

    pub fn has_pending(&self) -> bool {
        self.pump
            .as_ref()
            .is_some_and(|p| p.counters.pending.load(Ordering::SeqCst) > 0)
    }

    /// Forgets a state that a failed commit made wrong.
    pub fn check_poison(&mut self) {
        if let Some(p) = &self.pump
            && p.counters.poisoned.swap(false, Ordering::SeqCst)
        {
            self.current = Current::Unknown;
            self.generation += 1;
        }
    }

    /// Hands a computed call to the pump, which commits it after every
    /// call submitted before it.
    pub fn submit(&mut self, shared: &Arc<Shared>, mut pending: Pending) {
        pending.generation = self.generation;
        let pump = self.pump.get_or_insert_with(|| {
            // Unbounded: it holds at most the calls of this object's inbox,
            // which its callers bound.
            let (tx, rx) = mpsc::unbounded_channel();
            let counters = Arc::new(PumpCounters::default());
            shared
                .tracker
                .spawn(run(shared.clone(), rx, counters.clone()));
            Pump { tx, counters }
        });
        pump.counters.pending.fetch_add(1, Ordering::SeqCst);
        if let Err(mpsc::error::SendError(p)) = pump.tx.send(pending) {
            // The pump is gone (shutdown): answer without committing.
            pump.counters.pending.fetch_sub(1, Ordering::SeqCst);
            send(p.reply, Err(Error::ShuttingDown));
        }
    }

    /// Waits until every submitted call is answered.
    pub async fn settle(&self) {
        let Some(pump) = &self.pump else { return };
        loop {
            let idle = pump.counters.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if pump.counters.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// Commits queued calls in order, merging whatever has queued into one
/// batch, and answers them.
async fn run(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    counters: Arc<PumpCounters>,
) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while let Ok(p) = rx.try_recv() {
            group.push(p);
        }
        // Calls computed on the state of a failed commit fail too, even
        // those that write nothing: their answers came from that state.
        let failed_generation = counters.failed_generation.load(Ordering::SeqCst);
        let (doomed, mut group): (Vec<Pending>, Vec<Pending>) = group
            .into_iter()
            .partition(|p| p.generation <= failed_generation && failed_generation > 0);
        answer(&shared, doomed, &counters, |_| {
            Err(oprc_store::Error::conflict(
                "an earlier call on this object failed to commit",
            ))
        })
        .await;
        if group.is_empty() {
            continue;
        }
        let newest = group.iter().map(|p| p.generation).max().unwrap_or(0);
        let batch = merge(
            group
                .iter_mut()
                .map(|p| std::mem::take(&mut p.prepared.batch)),
        );
        let result = if batch.writes.is_empty() {
            Ok(())
        } else {
            shared.state.commit(batch).await
        };
        let failed = result.as_ref().err().map(|e| (e.kind, e.message.clone()));
        answer(&shared, group, &counters, |_| {
            failed.as_ref().map_or(Ok(()), |(kind, msg)| {
                Err(oprc_store::Error::new(*kind, msg.clone()))
            })
        })
        .await;
        if failed.is_some() {
            // Everything computed so far built on the failed state; the
            // worker reloads and computes later calls in a new generation.
            counters
                .failed_generation
                .fetch_max(newest.max(1), Ordering::SeqCst);
            counters.poisoned.store(true, Ordering::SeqCst);
        }
    }
}

async fn answer(
    shared: &Shared,
    group: Vec<Pending>,
    counters: &PumpCounters,
    result: impl Fn(&Pending) -> oprc_store::Result<()>,
) {
    for p in group {
        let outcome = result(&p);
        let (resp, _) = exec::conclude(shared, &p.req, p.prepared, outcome).await;
        drop(p.doing);
        send(p.reply, Ok(resp));
        if counters.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            counters.idle.notify_waiters();
        }
    }
}

fn key_of(w: &Write) -> Option<ObjectKey> {
    match w {
        Write::PutObject { record, .. } => Some((record.meta.cls.clone(), record.meta.id.clone())),
        Write::DeleteObject { cls, oid, .. } => Some((cls.clone(), oid.clone())),
        Write::PutInvocation(_) => None,
    }
}

/// Merges consecutive batches into one: for an object written several
/// times, the last write with the first write's expected revision (the
/// chain of revisions in between never reaches the store).
pub(crate) fn merge(batches: impl Iterator<Item = WriteBatch>) -> WriteBatch {
    let mut writes: Vec<Option<Write>> = Vec::new();
    let mut at: HashMap<ObjectKey, usize> = HashMap::new();
    // Write-behind only if every merged batch allows it.
    let mut write_behind = true;
    let all = batches.flat_map(|b| {
        write_behind &= b.write_behind;
        b.writes
    });
    for w in all {
        let Some(key) = key_of(&w) else {
            writes.push(Some(w));
            continue;
        };
        let Some(&i) = at.get(&key) else {
            at.insert(key, writes.len());
            writes.push(Some(w));
            continue;
        };
        let first = match &writes[i] {
            Some(Write::PutObject {
                expected_revision, ..
            }) => *expected_revision,
            Some(Write::DeleteObject {
                expected_revision, ..
            }) => Some(*expected_revision),
            _ => None,
        };
        writes[i] = match (w, first) {
            (Write::PutObject { record, .. }, expected_revision) => Some(Write::PutObject {
                record,
                expected_revision,
            }),
            (Write::DeleteObject { cls, oid, .. }, Some(expected_revision)) => {
                Some(Write::DeleteObject {
                    cls,
                    oid,
                    expected_revision,
                })
            }
            // Created and deleted within the group: nothing to write.
            (Write::DeleteObject { .. }, None) => {
                at.remove(&key);
                None
            }
            (w @ Write::PutInvocation(_), _) => Some(w),
        };
    }
    WriteBatch {
        writes: writes.into_iter().flatten().collect(),
        write_behind,
    }
}

#[cfg(test)]
mod tests {
    use oprc_core::{ClassKey, ObjectId};
    use serde_json::json;

    use super::*;

    fn put(id: &str, rev: u64, expected: Option<u64>) -> Write {
        let mut r = ObjectRecord::new(
            ClassKey::new("t.c").unwrap(),
            ObjectId::new(id).unwrap(),
            json!(rev),
        );
        r.meta.revision = rev;
        Write::PutObject {
            record: r,
            expected_revision: expected,
        }
    }

    fn summary(b: &WriteBatch) -> Vec<String> {
        b.writes
            .iter()
            .map(|w| match w {
                Write::PutObject {
                    record,
                    expected_revision,
                } => format!(
                    "put {} r{} if {:?}",
                    record.meta.id, record.meta.revision, expected_revision
                ),
                Write::DeleteObject {
                    oid,
                    expected_revision,
                    ..
                } => format!("delete {oid} if {expected_revision}"),
                Write::PutInvocation(_) => "record".into(),
            })
            .collect()
    }

    #[test]
    fn chained_writes_collapse_to_the_last_state_with_the_first_precondition() {
        let b = WriteBatch::of;
        let merged = merge(
            vec![
                b(vec![put("o", 4, Some(3))]),
                b(vec![put("o", 5, Some(4)), put("out", 1, None)]),
                b(vec![put("o", 6, Some(5))]),
            ]
            .into_iter(),
        );
        assert_eq!(
            summary(&merged),
            vec!["put o r6 if Some(3)", "put out r1 if None"]
        );
        let deleted = merge(
            vec![
                b(vec![put("o", 4, Some(3))]),
                b(vec![Write::DeleteObject {
                    cls: ClassKey::new("t.c").unwrap(),
                    oid: ObjectId::new("o").unwrap(),
                    expected_revision: 4,
                }]),
            ]
            .into_iter(),
        );
        assert_eq!(summary(&deleted), vec!["delete o if 3"]);
    }
}
