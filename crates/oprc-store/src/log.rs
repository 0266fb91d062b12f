use async_trait::async_trait;
use bytes::Bytes;
use oprc_core::PartitionId;

use crate::Result;

/// A message of the invocation log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Position in its partition: at least 1 and strictly increasing in
    /// append order, not necessarily by one.
    pub offset: u64,
    pub payload: Bytes,
}

/// The result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Where the message is: the partition appended to, or, for a
    /// duplicate, the earlier message's.
    pub partition: PartitionId,
    pub offset: u64,
    /// The dedup id was seen before, in any partition: nothing was
    /// appended and `partition`/`offset` are the earlier message's
    /// (idempotent producer).
    pub duplicate: bool,
}

/// Durable, partitioned, ordered log of accepted async invocations.
///
/// Offsets are at least 1 and strictly increasing within a partition, in
/// append order, but not necessarily by one: a backend may share one
/// sequence among its partitions (JetStream's stream sequence), so a
/// partition's offsets can have gaps. Readers go on from the last offset
/// they got, plus one. The consumer's committed position survives
/// restarts; entries at or below it may be trimmed.
#[async_trait]
pub trait InvocationLog: Send + Sync + 'static {
    /// Appends durably unless `dedup_id` was appended before, to any
    /// partition, within the backend's dedup window. (Dedup ids are
    /// idempotency keys: one key is one request, wherever it goes.)
    async fn append(
        &self,
        partition: PartitionId,
        dedup_id: &str,
        payload: Bytes,
    ) -> Result<Appended>;

    /// Entries with offset >= `from`, at most `max`, in order, none skipped
    /// (it may answer fewer than exist). Waits until at least one exists;
    /// cancel-safe (drop the future to stop waiting).
    async fn read(&self, partition: PartitionId, from: u64, max: usize) -> Result<Vec<LogEntry>>;

    /// The entry at `offset`, if it is still kept.
    async fn entry(&self, partition: PartitionId, offset: u64) -> Result<Option<LogEntry>>;

    /// Records that every entry up to and including `offset` is applied.
    async fn commit_position(&self, partition: PartitionId, offset: u64) -> Result<()>;

    /// The last committed position (0 if none), or a position above it
    /// that skips no uncommitted entry: with gaps between a partition's
    /// offsets it may stand in the gap after the last commit. Reading from
    /// it plus one never misses an entry not committed.
    async fn committed_position(&self, partition: PartitionId) -> Result<u64>;
}
