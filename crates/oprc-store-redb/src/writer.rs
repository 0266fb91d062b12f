//! The single writer thread: group commit.
//!
//! Callers send [`Op`]s over a channel and await a oneshot answer. The
//! thread takes the first op, drains whatever else is already queued (up to
//! `max_batch`), applies all of them in one write transaction and commits
//! once, with one fsync when any op of the group needs it
//! ([`Op::needs_sync`]); then it answers every caller. A failed commit fails
//! every op of that group.
//!
//! Batch isolation (G2). Each op is applied in two phases (`apply.rs`): a
//! check phase reads, validates and encodes everything the op can fail on
//! (preconditions, the records it replaces) and writes nothing; a write
//! phase then only inserts and removes. A failed check is that op's own
//! answer and leaves the shared transaction as it was, so the other ops
//! commit. A failed write (a storage error: the transaction now holds part
//! of the op) aborts the group's transaction, answers that op with its
//! error, and re-runs the group without it; an `Unavailable` error (the
//! disk) fails the whole group at once, as nothing else would succeed.
//!
//! Why this and not the alternatives: redb's savepoints can only be taken
//! before a transaction opens its first table, so they cannot mark the
//! start of each batch inside a shared transaction; re-running the group on
//! every failure would make one conflicting caller cost the whole group a
//! second pass (a conflict is an ordinary answer, a write-phase error is
//! practically never seen). Validating first keeps the common path at one
//! pass, and the re-run makes the guarantee hold for the errors a check
//! cannot foresee.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use oprc_core::PartitionId;
use oprc_store::{Appended, Durability, Error, ErrorKind, Layout, Result, WriteBatch};
use redb::Database;
use tokio::sync::{mpsc, oneshot};

use crate::apply;
use crate::error::{copy, storage};

pub(crate) enum Op {
    Commit(WriteBatch, Reply<()>),
    Append {
        partition: PartitionId,
        dedup_id: String,
        payload: Bytes,
        now_ms: i64,
        reply: Reply<Appended>,
    },
    CommitPosition {
        partition: PartitionId,
        offset: u64,
        now_ms: i64,
        reply: Reply<()>,
    },
    PutPackage {
        name: String,
        source: String,
        reply: Reply<()>,
    },
    DeletePackage {
        name: String,
        reply: Reply<bool>,
    },
    Purge {
        now_ms: i64,
        max: usize,
        reply: Reply<u64>,
    },
    Layout {
        proposed: Layout,
        reply: Reply<Layout>,
    },
    /// Makes the group durable (write-behind mode).
    Flush,
    /// Writes a package named `name`, then fails as a storage error would:
    /// the only way to reach the write-phase failure path on purpose.
    #[cfg(test)]
    FailAfterWrite {
        name: String,
        reply: Reply<()>,
    },
}

/// Where an op's answer goes, and the answer of its current attempt.
pub(crate) struct Reply<T> {
    tx: oneshot::Sender<Result<T>>,
    /// The op's outcome in this attempt of its group; sent only once the
    /// group has committed.
    result: Option<Result<T>>,
}

impl<T> Reply<T> {
    pub(crate) fn new() -> (Self, oneshot::Receiver<Result<T>>) {
        let (tx, rx) = oneshot::channel();
        (Self { tx, result: None }, rx)
    }

    pub(crate) fn set(&mut self, result: Result<T>) {
        self.result = Some(result);
    }

    /// Answers with the op's own outcome if its group committed, else with
    /// the group's error.
    fn send(self, group: Result<(), &Error>) {
        let result = match group {
            Ok(()) => self
                .result
                .unwrap_or_else(|| Err(Error::internal("the write was not applied"))),
            Err(e) => Err(copy(e)),
        };
        // A caller that gave up waiting dropped its receiver; nothing to do.
        let _ = self.tx.send(result);
    }
}

impl Op {
    /// Whether the group this op is in must be durable before anyone is
    /// answered. `sync`: the store's own mode (false: write-behind).
    pub(crate) fn needs_sync(&self, sync: bool) -> bool {
        match self {
            Op::Commit(batch, _) => match batch.durability {
                Durability::Required => true,
                Durability::Default => sync,
                Durability::Deferred => false,
            },
            // A 202 promises a durable enqueue; packages and the layout are
            // rare admin writes; a flush is what it asks for.
            Op::Append { .. }
            | Op::PutPackage { .. }
            | Op::DeletePackage { .. }
            | Op::Layout { .. }
            | Op::Flush => true,
            // Losing these in a crash only repeats them.
            Op::CommitPosition { .. } | Op::Purge { .. } => sync,
            #[cfg(test)]
            Op::FailAfterWrite { .. } => sync,
        }
    }

    fn send(self, group: Result<(), &Error>) {
        match self {
            Op::Commit(_, reply) => reply.send(group),
            Op::Append { reply, .. } => reply.send(group),
            Op::CommitPosition { reply, .. } => reply.send(group),
            Op::PutPackage { reply, .. } => reply.send(group),
            Op::DeletePackage { reply, .. } => reply.send(group),
            Op::Purge { reply, .. } => reply.send(group),
            Op::Layout { reply, .. } => reply.send(group),
            Op::Flush => {}
            #[cfg(test)]
            Op::FailAfterWrite { reply, .. } => reply.send(group),
        }
    }
}

/// Called after each successful commit for each new log entry, so waiting
/// readers wake up.
pub(crate) type OnAppend = Arc<dyn Fn(PartitionId, u64) + Send + Sync>;

pub(crate) struct Writer {
    pub db: Arc<Database>,
    pub rx: mpsc::Receiver<Op>,
    pub max_batch: usize,
    pub sync: bool,
    pub dedup_window_ms: i64,
    pub on_append: OnAppend,
    /// Write-behind: set when a commit was not made durable yet.
    pub dirty: Arc<AtomicBool>,
    pub stats: Arc<Counters>,
}

/// What the writer has done, for metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Transactions committed (one per group).
    pub commits: AtomicU64,
    /// Requests served by those transactions.
    pub requests: AtomicU64,
    /// Transactions made durable (fsync) before they were acknowledged.
    pub durable_commits: AtomicU64,
}

/// Why an attempt at a group did not commit.
enum Abort {
    /// Op `i` failed after its first write; the others may still commit.
    Op(usize, Error),
    /// Nothing of the group can commit.
    Group(Error),
}

impl Writer {
    /// Runs until every sender is dropped.
    pub fn run(mut self) {
        let mut ops = Vec::with_capacity(self.max_batch);
        while let Some(first) = self.rx.blocking_recv() {
            ops.push(first);
            while ops.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            self.apply_group(&mut ops);
        }
        if self.dirty.load(Ordering::Relaxed) {
            // Write-behind: make the last writes durable before closing.
            ops.push(Op::Flush);
            self.apply_group(&mut ops);
        }
    }

    /// Commits `ops` as one transaction (see the module docs for what
    /// happens when one fails) and answers each; leaves `ops` empty.
    pub(crate) fn apply_group(&self, ops: &mut Vec<Op>) {
        loop {
            match self.attempt(ops) {
                Ok(durable) => {
                    self.committed(ops, durable);
                    for op in ops.drain(..) {
                        op.send(Ok(()));
                    }
                    return;
                }
                Err(Abort::Op(i, e)) => {
                    tracing::warn!(
                        error = %e,
                        group = ops.len(),
                        "storage write failed midway; committing its group without it"
                    );
                    ops.remove(i).send(Err(&e));
                    if ops.is_empty() {
                        return;
                    }
                }
                Err(Abort::Group(e)) => {
                    tracing::error!(error = %e, ops = ops.len(), "storage commit failed");
                    for op in ops.drain(..) {
                        op.send(Err(&e));
                    }
                    return;
                }
            }
        }
    }

    /// Applies every op in one transaction and commits it. `Ok(durable)`:
    /// committed, with an fsync if `durable`.
    fn attempt(&self, ops: &mut [Op]) -> Result<bool, Abort> {
        let durable = ops.iter().any(|op| op.needs_sync(self.sync));
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| Abort::Group(storage(e)))?;
        if !durable {
            // Every op of the group allows write-behind: kept in memory
            // until the next durable commit (the flusher asks for one every
            // `flush_interval`).
            txn.set_durability(redb::Durability::None);
        }
        for (i, op) in ops.iter_mut().enumerate() {
            if let Err(e) = apply::apply(&txn, op, self.dedup_window_ms) {
                if let Err(abort) = txn.abort() {
                    tracing::warn!(error = %abort, "aborting a storage transaction failed");
                }
                return Err(if e.kind == ErrorKind::Unavailable {
                    Abort::Group(e)
                } else {
                    Abort::Op(i, e)
                });
            }
        }
        txn.commit().map_err(|e| Abort::Group(storage(e)))?;
        Ok(durable)
    }

    /// Bookkeeping after a group committed: counters, and wakes the readers
    /// of the partitions that got entries.
    fn committed(&self, ops: &[Op], durable: bool) {
        self.dirty.store(!durable, Ordering::Relaxed);
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        if durable {
            self.stats.durable_commits.fetch_add(1, Ordering::Relaxed);
        }
        let requests = ops.iter().filter(|op| !matches!(op, Op::Flush)).count();
        self.stats
            .requests
            .fetch_add(requests as u64, Ordering::Relaxed);
        for op in ops {
            if let Op::Append {
                partition,
                reply:
                    Reply {
                        result: Some(Ok(a)),
                        ..
                    },
                ..
            } = op
                && !a.duplicate
            {
                (self.on_append)(*partition, a.offset);
            }
        }
    }
}

#[cfg(test)]
mod tests;
