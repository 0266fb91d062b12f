//! [`InvocationLog`] for [`Store`]: appends through the writer thread
//! (always durable before they return), scans on a snapshot off the
//! runtime, and `read` waits for new entries on the partition's head watch.

use async_trait::async_trait;
use bytes::Bytes;
use oprc_core::PartitionId;
use oprc_store::{Appended, Error, ErrorKind, InvocationLog, LogEntry, Result};

use crate::db::{LOG, LOG_POSITIONS, Store, now_ms};
use crate::error::storage;
use crate::writer::Op;

#[async_trait]
impl InvocationLog for Store {
    async fn append(
        &self,
        partition: PartitionId,
        dedup_id: &str,
        payload: Bytes,
    ) -> Result<Appended> {
        let dedup_id = dedup_id.to_owned();
        self.call(|reply| Op::Append {
            partition,
            dedup_id,
            payload,
            now_ms: now_ms(),
            reply,
        })
        .await
    }

    async fn read(&self, partition: PartitionId, from: u64, max: usize) -> Result<Vec<LogEntry>> {
        // Subscribe before looking, so an append in between still wakes us.
        let mut head = self.head(partition);
        loop {
            let entries = self
                .snapshot(move |txn| {
                    let t = txn.open_table(LOG).map_err(storage)?;
                    let mut out = Vec::new();
                    for entry in t
                        .range((partition.0, from)..=(partition.0, u64::MAX))
                        .map_err(storage)?
                        .take(max)
                    {
                        let (k, v) = entry.map_err(storage)?;
                        out.push(LogEntry {
                            offset: k.value().1,
                            payload: Bytes::copy_from_slice(v.value()),
                        });
                    }
                    Ok(out)
                })
                .await?;
            if !entries.is_empty() {
                return Ok(entries);
            }
            head.changed()
                .await
                .map_err(|_| Error::new(ErrorKind::Unavailable, "store closed"))?;
        }
    }

    async fn entry(&self, partition: PartitionId, offset: u64) -> Result<Option<LogEntry>> {
        self.snapshot(move |txn| {
            let t = txn.open_table(LOG).map_err(storage)?;
            Ok(t.get((partition.0, offset))
                .map_err(storage)?
                .map(|v| LogEntry {
                    offset,
                    payload: Bytes::copy_from_slice(v.value()),
                }))
        })
        .await
    }

    async fn commit_position(&self, partition: PartitionId, offset: u64) -> Result<()> {
        self.call(|reply| Op::CommitPosition {
            partition,
            offset,
            now_ms: now_ms(),
            reply,
        })
        .await
    }

    async fn committed_position(&self, partition: PartitionId) -> Result<u64> {
        self.snapshot(move |txn| {
            let t = txn.open_table(LOG_POSITIONS).map_err(storage)?;
            Ok(t.get(partition.0)
                .map_err(storage)?
                .map_or(0, |v| v.value().1))
        })
        .await
    }
}
