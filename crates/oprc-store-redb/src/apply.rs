//! What each [`Op`] does to the tables inside its group's transaction, in
//! two phases: `check_*` reads, validates and encodes everything the op
//! could fail on and writes nothing; `write_*` then only inserts and
//! removes. A failed check is the op's own answer and leaves the
//! transaction untouched; a failed write is returned to the writer, which
//! drops the op from its group (see `writer.rs`).

use oprc_core::{InvocationRecord, InvocationStatus};
use oprc_store::{Error, Layout, Result, Write, WriteBatch};
use redb::{ReadableTable, Table, WriteTransaction};

use crate::db::{
    IDEMPOTENCY, INV_EXPIRY, INVOCATIONS, LAYOUT_KEY, META, OBJECTS, PACKAGES, object_key,
};
use crate::error::{decode, encode, storage};
use crate::writer::{Op, Reply};

mod log;

#[cfg(test)]
pub(crate) use log::DEDUP_EXPIRY_CHUNK;
use log::{check_append, check_position, write_append, write_position};

/// The outcome of a check: the answer already (nothing to write), or what
/// to write.
enum Plan<P, T> {
    Done(T),
    Write(P),
}

/// Applies `op` to `txn` and keeps its answer in its reply. `Err`: the op
/// failed after its first write, so `txn` holds part of it.
pub(crate) fn apply(txn: &WriteTransaction, op: &mut Op, dedup_window_ms: i64) -> Result<()> {
    match op {
        Op::Commit(batch, reply) => {
            // Tables are opened once per batch, only when it touches them
            // (opening one costs more than a small write).
            let mut tables = BatchTables::new(txn);
            let checked = check_batch(&mut tables, batch);
            run(reply, checked, |p| write_batch(&mut tables, p))
        }
        Op::Append {
            partition,
            dedup_id,
            payload,
            now_ms,
            reply,
        } => run(reply, check_append(txn, *partition, dedup_id), |p| {
            write_append(txn, *partition, dedup_id, payload, *now_ms, p)
        }),
        Op::CommitPosition {
            partition,
            offset,
            now_ms,
            reply,
        } => {
            let forget_before = now_ms.saturating_sub(dedup_window_ms);
            let checked = check_position(txn, *partition, *offset, forget_before);
            run(reply, checked, |p| write_position(txn, *partition, p))
        }
        Op::PutPackage {
            name,
            source,
            reply,
        } => run(reply, Ok(Plan::Write(())), |()| {
            let mut t = txn.open_table(PACKAGES).map_err(storage)?;
            t.insert(name.as_str(), source.as_str()).map_err(storage)?;
            Ok(())
        }),
        Op::DeletePackage { name, reply } => run(reply, Ok(Plan::Write(())), |()| {
            let mut t = txn.open_table(PACKAGES).map_err(storage)?;
            let existed = t.remove(name.as_str()).map_err(storage)?.is_some();
            Ok(existed)
        }),
        Op::Purge { now_ms, max, reply } => run(reply, check_purge(txn, *now_ms, *max), |p| {
            write_purge(txn, p)
        }),
        Op::Layout { proposed, reply } => {
            run(reply, check_layout(txn, proposed), |(bytes, layout)| {
                let mut t = txn.open_table(META).map_err(storage)?;
                t.insert(LAYOUT_KEY, bytes.as_slice()).map_err(storage)?;
                Ok(layout)
            })
        }
        Op::Flush => Ok(()),
        #[cfg(test)]
        Op::FailAfterWrite { name, .. } => {
            let mut t = txn.open_table(PACKAGES).map_err(storage)?;
            t.insert(name.as_str(), "").map_err(storage)?;
            Err(Error::internal("injected failure after a write"))
        }
    }
}

/// Runs the write phase after a successful check and keeps the answer; a
/// failed check is the answer.
fn run<P, T>(
    reply: &mut Reply<T>,
    checked: Result<Plan<P, T>>,
    write: impl FnOnce(P) -> Result<T>,
) -> Result<()> {
    match checked {
        Ok(Plan::Write(plan)) => reply.set(Ok(write(plan)?)),
        Ok(Plan::Done(answer)) => reply.set(Ok(answer)),
        Err(e) => reply.set(Err(e)),
    }
    Ok(())
}

/// What a batch writes, once every precondition held.
#[derive(Default)]
struct BatchPlan<'b> {
    /// Object key → new JSON, or `None` to delete.
    objects: Vec<(String, Option<Vec<u8>>)>,
    invocations: Vec<InvocationPlan<'b>>,
    /// New idempotency keys → invocation id.
    keys: Vec<(&'b str, &'b str)>,
}

struct InvocationPlan<'b> {
    id: &'b str,
    /// The expiry index entry of the stored record this one replaces.
    old_expiry: Option<i64>,
    terminal: bool,
    expires_at: i64,
    bytes: Vec<u8>,
}

/// The fields of a stored invocation record the writer needs, without
/// decoding the objects in its response.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredInvocation {
    request: StoredRequest,
    response: StoredResponse,
    expires_at: i64,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredRequest {
    #[serde(default)]
    idempotency_key: Option<String>,
}

#[derive(serde::Deserialize)]
struct StoredResponse {
    status: InvocationStatus,
}

/// Reads only the revision of a stored object.
fn decode_revision(key: &str, bytes: &[u8]) -> Result<u64> {
    #[derive(serde::Deserialize)]
    struct Meta {
        revision: u64,
    }
    #[derive(serde::Deserialize)]
    struct Rev {
        #[serde(rename = "_meta")]
        meta: Meta,
    }
    Ok(decode::<Rev>("objects", key, bytes)?.meta.revision)
}

/// The tables of a batch, opened on first use and kept for its write.
struct BatchTables<'t> {
    txn: &'t WriteTransaction,
    objects: Option<Table<'t, &'static str, &'static [u8]>>,
    invocations: Option<Table<'t, &'static str, &'static [u8]>>,
    idempotency: Option<Table<'t, &'static str, &'static str>>,
    expiry: Option<Table<'t, (i64, &'static str), ()>>,
}

/// Opens `def` into `slot` unless it is open.
fn open<'t, 's, K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &'t WriteTransaction,
    slot: &'s mut Option<Table<'t, K, V>>,
    def: redb::TableDefinition<'static, K, V>,
) -> Result<&'s mut Table<'t, K, V>> {
    if slot.is_none() {
        *slot = Some(txn.open_table(def).map_err(storage)?);
    }
    Ok(slot.as_mut().expect("opened above"))
}

impl<'t> BatchTables<'t> {
    fn new(txn: &'t WriteTransaction) -> Self {
        Self {
            txn,
            objects: None,
            invocations: None,
            idempotency: None,
            expiry: None,
        }
    }

    fn objects(&mut self) -> Result<&mut Table<'t, &'static str, &'static [u8]>> {
        open(self.txn, &mut self.objects, OBJECTS)
    }

    fn invocations(&mut self) -> Result<&mut Table<'t, &'static str, &'static [u8]>> {
        open(self.txn, &mut self.invocations, INVOCATIONS)
    }

    fn idempotency(&mut self) -> Result<&mut Table<'t, &'static str, &'static str>> {
        open(self.txn, &mut self.idempotency, IDEMPOTENCY)
    }

    fn expiry(&mut self) -> Result<&mut Table<'t, (i64, &'static str), ()>> {
        open(self.txn, &mut self.expiry, INV_EXPIRY)
    }
}

/// Checks every precondition of the batch against the stored state and
/// encodes every record, so that the batch lands whole or not at all.
fn check_batch<'b>(
    tables: &mut BatchTables<'_>,
    batch: &'b WriteBatch,
) -> Result<Plan<BatchPlan<'b>, ()>> {
    let mut plan = BatchPlan::default();
    for w in &batch.writes {
        match w {
            Write::PutObject {
                record,
                expected_revision,
            } => {
                let key = object_key(&record.meta.cls, &record.meta.id);
                check_revision(tables.objects()?, &key, *expected_revision)?;
                plan.objects.push((key, Some(encode("object", record)?)));
            }
            Write::DeleteObject {
                cls,
                oid,
                expected_revision,
            } => {
                let key = object_key(cls, oid);
                check_revision(tables.objects()?, &key, Some(*expected_revision))?;
                plan.objects.push((key, None));
            }
            Write::PutInvocation(record) => {
                plan_invocation(tables, &mut plan, record)?;
            }
        }
    }
    Ok(Plan::Write(plan))
}

fn check_revision(
    objects: &Table<'_, &'static str, &'static [u8]>,
    key: &str,
    expected: Option<u64>,
) -> Result<()> {
    let current = match objects.get(key).map_err(storage)? {
        Some(v) => Some(decode_revision(key, v.value())?),
        None => None,
    };
    if current != expected {
        return Err(Error::conflict(format!(
            "object {key:?} is at revision {current:?}, expected {expected:?}"
        )));
    }
    Ok(())
}

/// Plans one `PutInvocation`, as if the batch's earlier writes of the same
/// record had been applied before it.
fn plan_invocation<'b>(
    tables: &mut BatchTables<'_>,
    plan: &mut BatchPlan<'b>,
    record: &'b InvocationRecord,
) -> Result<()> {
    let id = record.request.inv_id.as_str();
    let terminal = record.response.status.is_terminal();
    let earlier = plan.invocations.iter().position(|p| p.id == id);
    // (whether the replaced record is terminal, its expiry index entry)
    let (old_terminal, old_expiry) = match earlier {
        Some(i) => (plan.invocations[i].terminal, plan.invocations[i].old_expiry),
        None => match tables.invocations()?.get(id).map_err(storage)? {
            None => (false, None),
            Some(v) => match decode::<StoredInvocation>("invocations", id, v.value()) {
                Ok(old) => (old.response.status.is_terminal(), Some(old.expires_at)),
                // A terminal record may replace any record, so a corrupt one
                // does not stop it (this is how a caller settles an
                // invocation whose record is lost). Its expiry entry is
                // unknown and stays behind; the purge drops it on its own.
                Err(e) if terminal => {
                    tracing::warn!(error = %e, invocation = id, "replacing a corrupt invocation record");
                    (false, None)
                }
                // A non-terminal one might hide a result.
                Err(e) => return Err(e),
            },
        },
    };
    if old_terminal && !terminal {
        return Ok(());
    }
    let entry = InvocationPlan {
        id,
        old_expiry,
        terminal,
        expires_at: record.expires_at,
        bytes: encode("invocation record", record)?,
    };
    match earlier {
        Some(i) => plan.invocations[i] = entry,
        None => plan.invocations.push(entry),
    }
    if let Some(key) = &record.request.idempotency_key
        && !plan.keys.iter().any(|(k, _)| k == key)
        && tables
            .idempotency()?
            .get(key.as_str())
            .map_err(storage)?
            .is_none()
    {
        plan.keys.push((key, id));
    }
    Ok(())
}

fn write_batch(tables: &mut BatchTables<'_>, plan: BatchPlan<'_>) -> Result<()> {
    if !plan.objects.is_empty() {
        let objects = tables.objects()?;
        for (key, bytes) in &plan.objects {
            match bytes {
                Some(bytes) => objects.insert(key.as_str(), bytes.as_slice()).map(drop),
                None => objects.remove(key.as_str()).map(drop),
            }
            .map_err(storage)?;
        }
    }
    if !plan.invocations.is_empty() {
        for p in &plan.invocations {
            if let Some(old) = p.old_expiry {
                tables.expiry()?.remove((old, p.id)).map_err(storage)?;
            }
            tables
                .invocations()?
                .insert(p.id, p.bytes.as_slice())
                .map_err(storage)?;
            tables
                .expiry()?
                .insert((p.expires_at, p.id), ())
                .map_err(storage)?;
        }
    }
    if !plan.keys.is_empty() {
        let idempotency = tables.idempotency()?;
        for (key, id) in &plan.keys {
            idempotency.insert(*key, *id).map_err(storage)?;
        }
    }
    Ok(())
}

struct PurgeEntry {
    expires_at: i64,
    id: String,
    /// Delete the record (else the index entry is stale: the record was
    /// replaced with another expiry, or is gone).
    record: bool,
    /// The idempotency key it owns, deleted with it.
    key: Option<String>,
}

/// Picks the `max` oldest expired records, and the idempotency keys they
/// own. Each expiry index entry counts, stale ones too (left by a record
/// that replaced a corrupt one), so that fewer than `max` still means none
/// is left.
fn check_purge(
    txn: &WriteTransaction,
    now_ms: i64,
    max: usize,
) -> Result<Plan<Vec<PurgeEntry>, u64>> {
    if max == 0 {
        return Ok(Plan::Done(0));
    }
    let expiry = txn.open_table(INV_EXPIRY).map_err(storage)?;
    let invocations = txn.open_table(INVOCATIONS).map_err(storage)?;
    let idempotency = txn.open_table(IDEMPOTENCY).map_err(storage)?;
    let mut out = Vec::new();
    for entry in expiry.range(..(now_ms, "")).map_err(storage)?.take(max) {
        let (k, _) = entry.map_err(storage)?;
        let (expires_at, id) = k.value();
        let (record, key) = match invocations.get(id).map_err(storage)? {
            None => (false, None),
            Some(v) => match decode::<StoredInvocation>("invocations", id, v.value()) {
                Ok(stored) if stored.expires_at != expires_at => (false, None),
                Ok(stored) => match stored.request.idempotency_key {
                    Some(key)
                        if idempotency
                            .get(key.as_str())
                            .map_err(storage)?
                            .is_some_and(|owner| owner.value() == id) =>
                    {
                        (true, Some(key))
                    }
                    _ => (true, None),
                },
                // Expired anyway: a corrupt record is deleted too, or the
                // purge would stop at it for ever.
                Err(e) => {
                    tracing::warn!(error = %e, invocation = id, "purging a corrupt invocation record; its idempotency key, if any, is kept");
                    (true, None)
                }
            },
        };
        out.push(PurgeEntry {
            expires_at,
            id: id.to_owned(),
            record,
            key,
        });
    }
    if out.is_empty() {
        return Ok(Plan::Done(0));
    }
    Ok(Plan::Write(out))
}

fn write_purge(txn: &WriteTransaction, entries: Vec<PurgeEntry>) -> Result<u64> {
    let mut expiry = txn.open_table(INV_EXPIRY).map_err(storage)?;
    let mut invocations = txn.open_table(INVOCATIONS).map_err(storage)?;
    let mut idempotency = txn.open_table(IDEMPOTENCY).map_err(storage)?;
    for e in &entries {
        expiry
            .remove((e.expires_at, e.id.as_str()))
            .map_err(storage)?;
        if e.record {
            invocations.remove(e.id.as_str()).map_err(storage)?;
        }
        if let Some(key) = &e.key {
            idempotency.remove(key.as_str()).map_err(storage)?;
        }
    }
    Ok(entries.len() as u64)
}

/// The stored layout; else, or when it adopts settings it lacks from the
/// proposed one ([`Layout::adopt`]), the layout to store, encoded.
fn check_layout(
    txn: &WriteTransaction,
    proposed: &Layout,
) -> Result<Plan<(Vec<u8>, Layout), Layout>> {
    let meta = txn.open_table(META).map_err(storage)?;
    let layout = match meta.get(LAYOUT_KEY).map_err(storage)? {
        None => proposed.clone(),
        Some(v) => {
            let stored: Layout = decode("meta", LAYOUT_KEY, v.value())?;
            match stored.adopt(proposed) {
                Some(adopted) => adopted,
                None => return Ok(Plan::Done(stored)),
            }
        }
    };
    Ok(Plan::Write((encode("layout", &layout)?, layout)))
}
