//! The single writer thread: group commit.
//!
//! Callers send [`Op`]s over a channel and await a oneshot answer. The
//! thread takes the first op, drains whatever else is already queued (up to
//! `max_batch`), applies all of them in one write transaction and commits
//! once. Each op's precondition is checked on its own, so one conflicting
//! batch fails alone; a failed commit fails every op of that group.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use oprc_core::{InvocationRecord, PartitionId};
use oprc_store::{Appended, Error, ErrorKind, Result, Write, WriteBatch};
use redb::{Database, Durability, ReadableTable, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use crate::db::{
    self, DEDUP, DEDUP_BY_TS, IDEMPOTENCY, INV_EXPIRY, INVOCATIONS, LOG, LOG_POSITIONS, OBJECTS,
    PACKAGES, internal, object_key,
};

pub(crate) enum Op {
    Commit(WriteBatch, oneshot::Sender<Result<()>>),
    Append {
        partition: PartitionId,
        dedup_id: String,
        payload: Bytes,
        now_ms: i64,
        reply: oneshot::Sender<Result<Appended>>,
    },
    CommitPosition {
        partition: PartitionId,
        offset: u64,
        now_ms: i64,
        reply: oneshot::Sender<Result<()>>,
    },
    PutPackage(String, String, oneshot::Sender<Result<()>>),
    DeletePackage(String, oneshot::Sender<Result<bool>>),
    Purge(i64, oneshot::Sender<Result<u64>>),
    /// Makes the next commit durable (write-behind mode).
    Flush,
}

/// Called after each successful commit with the partitions that got new
/// entries, so waiting readers wake up.
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

impl Op {
    /// Whether the group this op is in must be durable before anyone is
    /// answered. `sync`: the store's own mode (false: write-behind for all).
    fn needs_durability(&self, sync: bool) -> bool {
        match self {
            Op::Flush => true,
            Op::Commit(batch, _) => sync && !batch.write_behind,
            _ => sync,
        }
    }
}

/// A reply to send once the group's commit outcome is known.
enum Pending {
    Unit(oneshot::Sender<Result<()>>, Result<()>),
    Appended(oneshot::Sender<Result<Appended>>, Result<Appended>),
    Bool(oneshot::Sender<Result<bool>>, Result<bool>),
    Count(oneshot::Sender<Result<u64>>, Result<u64>),
    None,
}

impl Pending {
    fn send(self, commit: &Result<(), String>) {
        // A caller that gave up waiting dropped its receiver; nothing to do.
        match (self, commit) {
            (Pending::Unit(tx, r), Ok(())) => drop(tx.send(r)),
            (Pending::Appended(tx, r), Ok(())) => drop(tx.send(r)),
            (Pending::Bool(tx, r), Ok(())) => drop(tx.send(r)),
            (Pending::Count(tx, r), Ok(())) => drop(tx.send(r)),
            (Pending::Unit(tx, _), Err(e)) => drop(tx.send(Err(internal(e)))),
            (Pending::Appended(tx, _), Err(e)) => drop(tx.send(Err(internal(e)))),
            (Pending::Bool(tx, _), Err(e)) => drop(tx.send(Err(internal(e)))),
            (Pending::Count(tx, _), Err(e)) => drop(tx.send(Err(internal(e)))),
            (Pending::None, _) => {}
        }
    }
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

    fn apply_group(&self, ops: &mut Vec<Op>) {
        let mut pending = Vec::with_capacity(ops.len());
        let mut appended: Vec<(PartitionId, u64)> = Vec::new();
        let durable = ops.iter().any(|op| op.needs_durability(self.sync));
        let outcome = (|| -> Result<(), String> {
            let mut txn = self.db.begin_write().map_err(|e| e.to_string())?;
            if !durable {
                // Every op of the group allows write-behind: kept in memory
                // until the next durable commit (the flusher asks for one
                // every `flush_interval`).
                txn.set_durability(Durability::None);
            }
            for op in ops.drain(..) {
                pending.push(self.apply_one(&txn, op, &mut appended));
            }
            txn.commit().map_err(|e| e.to_string())
        })();
        if let Err(e) = &outcome {
            tracing::error!(error = %e, ops = pending.len(), "storage commit failed");
        } else {
            self.dirty.store(!durable, Ordering::Relaxed);
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
            if durable {
                self.stats.durable_commits.fetch_add(1, Ordering::Relaxed);
            }
            self.stats
                .requests
                .fetch_add(pending.len() as u64, Ordering::Relaxed);
            for (p, offset) in appended {
                (self.on_append)(p, offset);
            }
        }
        for p in pending {
            p.send(&outcome);
        }
        // Ops drained into `pending` before an early error above have
        // already been answered; any left were never applied.
        for op in ops.drain(..) {
            fail(op, "storage transaction could not start");
        }
    }

    fn apply_one(
        &self,
        txn: &WriteTransaction,
        op: Op,
        appended: &mut Vec<(PartitionId, u64)>,
    ) -> Pending {
        match op {
            Op::Commit(batch, reply) => Pending::Unit(reply, apply_batch(txn, batch)),
            Op::Append {
                partition,
                dedup_id,
                payload,
                now_ms,
                reply,
            } => {
                let r = append(txn, partition, &dedup_id, &payload, now_ms);
                if let Ok(a) = &r
                    && !a.duplicate
                {
                    appended.push((partition, a.offset));
                }
                Pending::Appended(reply, r)
            }
            Op::CommitPosition {
                partition,
                offset,
                now_ms,
                reply,
            } => Pending::Unit(
                reply,
                commit_position(txn, partition, offset, now_ms - self.dedup_window_ms),
            ),
            Op::PutPackage(name, source, reply) => Pending::Unit(
                reply,
                (|| {
                    let mut t = txn.open_table(PACKAGES).map_err(internal)?;
                    t.insert(name.as_str(), source.as_str()).map_err(internal)?;
                    Ok(())
                })(),
            ),
            Op::DeletePackage(name, reply) => Pending::Bool(
                reply,
                (|| {
                    let mut t = txn.open_table(PACKAGES).map_err(internal)?;
                    Ok(t.remove(name.as_str()).map_err(internal)?.is_some())
                })(),
            ),
            Op::Purge(now_ms, reply) => Pending::Count(reply, purge(txn, now_ms)),
            Op::Flush => Pending::None,
        }
    }
}

fn fail(op: Op, msg: &str) {
    let e = || internal(msg);
    match op {
        Op::Commit(_, tx) => drop(tx.send(Err(e()))),
        Op::Append { reply, .. } => drop(reply.send(Err(e()))),
        Op::CommitPosition { reply, .. } => drop(reply.send(Err(e()))),
        Op::PutPackage(_, _, tx) => drop(tx.send(Err(e()))),
        Op::DeletePackage(_, tx) => drop(tx.send(Err(e()))),
        Op::Purge(_, tx) => drop(tx.send(Err(e()))),
        Op::Flush => {}
    }
}

/// Checks every precondition of the batch first, then applies it, so a
/// batch lands whole or not at all.
fn apply_batch(txn: &WriteTransaction, batch: WriteBatch) -> Result<()> {
    let mut objects = txn.open_table(OBJECTS).map_err(internal)?;
    for w in &batch.writes {
        let (key, expected) = match w {
            Write::PutObject {
                record,
                expected_revision,
            } => (
                object_key(&record.meta.cls, &record.meta.id),
                *expected_revision,
            ),
            Write::DeleteObject {
                cls,
                oid,
                expected_revision,
            } => (object_key(cls, oid), Some(*expected_revision)),
            Write::PutInvocation(_) => continue,
        };
        let current = match objects.get(key.as_str()).map_err(internal)? {
            Some(v) => Some(db::decode_revision(v.value())?),
            None => None,
        };
        if current != expected {
            return Err(Error::conflict(format!(
                "object {key:?} is at revision {current:?}, expected {expected:?}"
            )));
        }
    }
    for w in batch.writes {
        match w {
            Write::PutObject { record, .. } => {
                let key = object_key(&record.meta.cls, &record.meta.id);
                let bytes = serde_json::to_vec(&record).map_err(internal)?;
                objects
                    .insert(key.as_str(), bytes.as_slice())
                    .map_err(internal)?;
            }
            Write::DeleteObject { cls, oid, .. } => {
                objects
                    .remove(object_key(&cls, &oid).as_str())
                    .map_err(internal)?;
            }
            Write::PutInvocation(record) => put_invocation(txn, &record)?,
        }
    }
    Ok(())
}

fn put_invocation(txn: &WriteTransaction, record: &InvocationRecord) -> Result<()> {
    let mut invocations = txn.open_table(INVOCATIONS).map_err(internal)?;
    let mut expiry = txn.open_table(INV_EXPIRY).map_err(internal)?;
    let id = record.request.inv_id.as_str();
    let old = match invocations.get(id).map_err(internal)? {
        Some(v) => Some(db::decode::<InvocationRecord>(v.value())?),
        None => None,
    };
    if let Some(old) = &old {
        if old.response.status.is_terminal() && !record.response.status.is_terminal() {
            return Ok(());
        }
        expiry.remove((old.expires_at, id)).map_err(internal)?;
    }
    let bytes = serde_json::to_vec(record).map_err(internal)?;
    invocations.insert(id, bytes.as_slice()).map_err(internal)?;
    expiry
        .insert((record.expires_at, id), ())
        .map_err(internal)?;
    if let Some(key) = &record.request.idempotency_key {
        let mut idem = txn.open_table(IDEMPOTENCY).map_err(internal)?;
        if idem.get(key.as_str()).map_err(internal)?.is_none() {
            idem.insert(key.as_str(), id).map_err(internal)?;
        }
    }
    Ok(())
}

fn purge(txn: &WriteTransaction, now_ms: i64) -> Result<u64> {
    let mut invocations = txn.open_table(INVOCATIONS).map_err(internal)?;
    let mut expiry = txn.open_table(INV_EXPIRY).map_err(internal)?;
    let mut idem = txn.open_table(IDEMPOTENCY).map_err(internal)?;
    let expired: Vec<(i64, String)> = expiry
        .range(..(now_ms, ""))
        .map_err(internal)?
        .map(|r| r.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
        .collect::<Result<_, _>>()
        .map_err(internal)?;
    for (ts, id) in &expired {
        expiry.remove((*ts, id.as_str())).map_err(internal)?;
        let old = invocations.remove(id.as_str()).map_err(internal)?;
        if let Some(old) = old {
            let rec = db::decode::<InvocationRecord>(old.value())?;
            if let Some(key) = &rec.request.idempotency_key {
                let owner = idem
                    .get(key.as_str())
                    .map_err(internal)?
                    .map(|v| v.value().to_owned());
                if owner.as_deref() == Some(id.as_str()) {
                    idem.remove(key.as_str()).map_err(internal)?;
                }
            }
        }
    }
    Ok(expired.len() as u64)
}

fn append(
    txn: &WriteTransaction,
    partition: PartitionId,
    dedup_id: &str,
    payload: &[u8],
    now_ms: i64,
) -> Result<Appended> {
    let mut dedup = txn.open_table(DEDUP).map_err(internal)?;
    if let Some(v) = dedup.get(dedup_id).map_err(internal)? {
        let (p, offset, _) = v.value();
        if p == partition.0 {
            return Ok(Appended {
                offset,
                duplicate: true,
            });
        }
    }
    let mut positions = txn.open_table(LOG_POSITIONS).map_err(internal)?;
    let (head, committed) = positions
        .get(partition.0)
        .map_err(internal)?
        .map_or((0, 0), |v| v.value());
    let offset = head + 1;
    positions
        .insert(partition.0, (offset, committed))
        .map_err(internal)?;
    txn.open_table(LOG)
        .map_err(internal)?
        .insert((partition.0, offset), payload)
        .map_err(internal)?;
    dedup
        .insert(dedup_id, (partition.0, offset, now_ms))
        .map_err(internal)?;
    txn.open_table(DEDUP_BY_TS)
        .map_err(internal)?
        .insert((now_ms, dedup_id), ())
        .map_err(internal)?;
    Ok(Appended {
        offset,
        duplicate: false,
    })
}

/// Moves the consumer position forward, trims applied entries, and forgets
/// dedup ids older than `forget_before_ms`.
fn commit_position(
    txn: &WriteTransaction,
    partition: PartitionId,
    offset: u64,
    forget_before_ms: i64,
) -> Result<()> {
    let mut positions = txn.open_table(LOG_POSITIONS).map_err(internal)?;
    let (head, committed) = positions
        .get(partition.0)
        .map_err(internal)?
        .map_or((0, 0), |v| v.value());
    if offset > head {
        return Err(Error::new(
            ErrorKind::Internal,
            format!(
                "commit position {offset} is past the log head {head} of partition {partition}"
            ),
        ));
    }
    if offset <= committed {
        return Ok(());
    }
    positions
        .insert(partition.0, (head, offset))
        .map_err(internal)?;
    let mut log = txn.open_table(LOG).map_err(internal)?;
    log.retain_in(
        (partition.0, committed + 1)..=(partition.0, offset),
        |_, _| false,
    )
    .map_err(internal)?;
    let mut by_ts = txn.open_table(DEDUP_BY_TS).map_err(internal)?;
    let mut dedup = txn.open_table(DEDUP).map_err(internal)?;
    let old: Vec<(i64, String)> = by_ts
        .range(..(forget_before_ms, ""))
        .map_err(internal)?
        .map(|r| r.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
        .collect::<Result<_, _>>()
        .map_err(internal)?;
    for (ts, id) in old {
        by_ts.remove((ts, id.as_str())).map_err(internal)?;
        dedup.remove(id.as_str()).map_err(internal)?;
    }
    Ok(())
}
