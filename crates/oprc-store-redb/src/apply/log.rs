//! The log's ops: appends (with the idempotent producer's dedup ids) and
//! consumer positions (trimming applied entries, forgetting old dedup ids
//! in bounded chunks).

use oprc_core::PartitionId;
use oprc_store::{Appended, Error, Result};
use redb::{ReadableTable, WriteTransaction};

use super::Plan;
use crate::db::{DEDUP, DEDUP_BY_TS, LOG, LOG_POSITIONS};
use crate::error::storage;

/// At most this many expired dedup ids are forgotten per `commit_position`,
/// so that call stays a small write however long the consumer was away.
/// Each append adds one id and the consumer commits a position at least
/// once per read batch, so as long as it reads at most this many entries
/// at a time expiry keeps pace; a backlog (e.g. after a long stop) is
/// worked off over the following commits.
pub(crate) const DEDUP_EXPIRY_CHUNK: usize = 1024;

pub(super) struct AppendPlan {
    offset: u64,
    committed: u64,
}

pub(super) fn check_append(
    txn: &WriteTransaction,
    partition: PartitionId,
    dedup_id: &str,
) -> Result<Plan<AppendPlan, Appended>> {
    let dedup = txn.open_table(DEDUP).map_err(storage)?;
    if let Some(v) = dedup.get(dedup_id).map_err(storage)? {
        // One dedup id is one request, in whichever partition it went.
        let (p, offset, _) = v.value();
        return Ok(Plan::Done(Appended {
            partition: PartitionId(p),
            offset,
            duplicate: true,
        }));
    }
    let positions = txn.open_table(LOG_POSITIONS).map_err(storage)?;
    let (head, committed) = positions
        .get(partition.0)
        .map_err(storage)?
        .map_or((0, 0), |v| v.value());
    Ok(Plan::Write(AppendPlan {
        offset: head + 1,
        committed,
    }))
}

pub(super) fn write_append(
    txn: &WriteTransaction,
    partition: PartitionId,
    dedup_id: &str,
    payload: &[u8],
    now_ms: i64,
    p: AppendPlan,
) -> Result<Appended> {
    let mut positions = txn.open_table(LOG_POSITIONS).map_err(storage)?;
    positions
        .insert(partition.0, (p.offset, p.committed))
        .map_err(storage)?;
    let mut log = txn.open_table(LOG).map_err(storage)?;
    log.insert((partition.0, p.offset), payload)
        .map_err(storage)?;
    let mut dedup = txn.open_table(DEDUP).map_err(storage)?;
    dedup
        .insert(dedup_id, (partition.0, p.offset, now_ms))
        .map_err(storage)?;
    let mut by_ts = txn.open_table(DEDUP_BY_TS).map_err(storage)?;
    by_ts.insert((now_ms, dedup_id), ()).map_err(storage)?;
    Ok(Appended {
        partition,
        offset: p.offset,
        duplicate: false,
    })
}

pub(super) struct PositionPlan {
    head: u64,
    committed: u64,
    offset: u64,
    /// Expired dedup index entries, and whether their dedup id goes too
    /// (it stays if it was used again since).
    forget: Vec<(i64, String, bool)>,
}

/// Checks a consumer position move, and picks at most
/// [`DEDUP_EXPIRY_CHUNK`] dedup ids older than `forget_before_ms`.
pub(super) fn check_position(
    txn: &WriteTransaction,
    partition: PartitionId,
    offset: u64,
    forget_before_ms: i64,
) -> Result<Plan<PositionPlan, ()>> {
    let positions = txn.open_table(LOG_POSITIONS).map_err(storage)?;
    let (head, committed) = positions
        .get(partition.0)
        .map_err(storage)?
        .map_or((0, 0), |v| v.value());
    if offset > head {
        return Err(Error::internal(format!(
            "commit position {offset} is past the log head {head} of partition {partition}"
        )));
    }
    if offset <= committed {
        return Ok(Plan::Done(()));
    }
    let by_ts = txn.open_table(DEDUP_BY_TS).map_err(storage)?;
    let dedup = txn.open_table(DEDUP).map_err(storage)?;
    let mut forget = Vec::new();
    for entry in by_ts
        .range(..(forget_before_ms, ""))
        .map_err(storage)?
        .take(DEDUP_EXPIRY_CHUNK)
    {
        let (k, _) = entry.map_err(storage)?;
        let (at, id) = k.value();
        let current = dedup
            .get(id)
            .map_err(storage)?
            .is_some_and(|v| v.value().2 == at);
        forget.push((at, id.to_owned(), current));
    }
    Ok(Plan::Write(PositionPlan {
        head,
        committed,
        offset,
        forget,
    }))
}

/// Moves the consumer position forward, trims the applied entries and
/// forgets the chosen dedup ids.
pub(super) fn write_position(
    txn: &WriteTransaction,
    partition: PartitionId,
    p: PositionPlan,
) -> Result<()> {
    let mut positions = txn.open_table(LOG_POSITIONS).map_err(storage)?;
    positions
        .insert(partition.0, (p.head, p.offset))
        .map_err(storage)?;
    let mut log = txn.open_table(LOG).map_err(storage)?;
    log.retain_in(
        (partition.0, p.committed + 1)..=(partition.0, p.offset),
        |_, _| false,
    )
    .map_err(storage)?;
    if !p.forget.is_empty() {
        let mut by_ts = txn.open_table(DEDUP_BY_TS).map_err(storage)?;
        let mut dedup = txn.open_table(DEDUP).map_err(storage)?;
        for (at, id, current) in &p.forget {
            by_ts.remove((*at, id.as_str())).map_err(storage)?;
            if *current {
                dedup.remove(id.as_str()).map_err(storage)?;
            }
        }
    }
    Ok(())
}
