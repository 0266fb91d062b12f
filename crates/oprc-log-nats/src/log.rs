//! [`NatsLog`]: the connection, the stream handle, the partitions'
//! sessions and the [`InvocationLog`] implementation.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_nats::connection::State;
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::stream::DirectGetErrorKind;
use async_nats::{Client, HeaderMap, jetstream};
use async_trait::async_trait;
use bytes::Bytes;
use oprc_core::PartitionId;
use oprc_store::{Appended, Error, ErrorKind, InvocationLog, LogEntry, Result};

use crate::partition::Partition;
use crate::{Options, error, setup};

/// The invocation log on a NATS JetStream stream. Cheap to clone.
#[derive(Clone)]
pub struct NatsLog {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) js: jetstream::Context,
    pub(crate) stream: jetstream::stream::Stream<()>,
    pub(crate) options: Options,
    /// The server URL, redacted.
    pub(crate) url: String,
    identity: String,
    partitions: parking_lot::Mutex<HashMap<PartitionId, Arc<Partition>>>,
    pub(crate) stats: Counters,
}

/// Counters of the log since it was opened, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Entries appended (duplicates not counted).
    pub appends: u64,
    /// Appends answered by an earlier entry with the same dedup id.
    pub duplicates: u64,
    /// Entries acked by commits.
    pub acks: u64,
    /// Calls of the log that failed.
    pub errors: u64,
    /// Consumers recreated because a previous process left deliveries
    /// unacked (or their config changed).
    pub recovered_consumers: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    appends: AtomicU64,
    duplicates: AtomicU64,
    acks: AtomicU64,
    errors: AtomicU64,
    recovered: AtomicU64,
}

impl Counters {
    pub(crate) fn count_acks(&self, n: u64) {
        self.acks.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn count_recovery(&self) {
        self.recovered.fetch_add(1, Ordering::Relaxed);
    }

    fn counted<T>(&self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

impl NatsLog {
    /// Connects to `url` (`nats://[user:password@ | token@]host:port`, or a
    /// comma-separated list of them), and finds or creates the stream. A
    /// server that cannot be reached fails here (`Unavailable`, naming the
    /// redacted URL); a stream that exists with a config the log cannot
    /// rely on is refused (`Internal`, saying what differs). Once
    /// connected, the client reconnects by itself, for ever.
    ///
    /// The URL's query may set the stream, subject prefix, consumer prefix
    /// and replicas over `options`:
    /// `nats://host:4222?stream=NAME&subjects=PREFIX&consumers=PREFIX&replicas=N`.
    pub async fn connect(url: &str, mut options: Options) -> Result<NatsLog> {
        let url = setup::apply_query(url, &mut options)?;
        setup::validate(&options)?;
        let redacted = error::redact_url(&url);
        let (client, js) = setup::connect(&url, &options).await?;
        let identity = setup::ensure_stream(&js, &options, &redacted).await?;
        let stream = js
            .get_stream_no_info(&options.stream)
            .await
            .map_err(|e| Error::with_source(ErrorKind::Internal, "invalid stream name", e))?;
        tracing::info!(url = %redacted, %identity, "invocation log on nats jetstream");
        Ok(NatsLog {
            shared: Arc::new(Shared {
                client,
                js,
                stream,
                options,
                url: redacted,
                identity,
                partitions: parking_lot::Mutex::new(HashMap::new()),
                stats: Counters::default(),
            }),
        })
    }

    /// Names the log and its epoch: `nats:<stream>@<stream creation time>`.
    /// A stream deleted and created again (its offsets start again) has
    /// another identity, so state applied from the old one is told apart.
    pub fn identity(&self) -> String {
        self.shared.identity.clone()
    }

    /// Whether the connection is up now (appends fail at once while not).
    pub fn connected(&self) -> bool {
        self.shared.client.connection_state() == State::Connected
    }

    /// Whether JetStream answers for the stream now (a health check):
    /// `Unavailable` at once while disconnected, within the request timeout
    /// otherwise.
    pub async fn ping(&self) -> Result<()> {
        let s = &*self.shared;
        if !self.connected() {
            return Err(self.disconnected());
        }
        let subject = format!("STREAM.INFO.{}", s.options.stream);
        setup::api::<serde_json::Value>(&s.js, subject, &serde_json::json!({}))
            .await
            .map(drop)
            .map_err(|e| {
                let what = format!("reading the stream {}", s.options.stream);
                error::api(e, &what, &s.url)
            })
    }

    pub fn stats(&self) -> LogStats {
        let c = &self.shared.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LogStats {
            appends: get(&c.appends),
            duplicates: get(&c.duplicates),
            acks: get(&c.acks),
            errors: get(&c.errors),
            recovered_consumers: get(&c.recovered),
        }
    }

    /// Entries of the partition not applied yet (not delivered, or
    /// delivered and not committed), from the consumer's info; `None`
    /// while the partition has no consumer yet.
    pub async fn consumer_lag(&self, partition: PartitionId) -> Result<Option<u64>> {
        let s = &*self.shared;
        s.stats.counted(self.partition(partition).lag(s).await)
    }

    fn disconnected(&self) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "not connected to nats at {} (reconnecting)",
                self.shared.url
            ),
        )
    }

    fn partition(&self, id: PartitionId) -> Arc<Partition> {
        let s = &self.shared;
        s.partitions
            .lock()
            .entry(id)
            .or_insert_with(|| {
                Arc::new(Partition::new(
                    id,
                    &s.options.subject_prefix,
                    &s.options.consumer_prefix,
                ))
            })
            .clone()
    }

    /// The partition whose subject this is, if it is one of the log's.
    fn partition_of(&self, subject: &str) -> Option<PartitionId> {
        let rest = subject.strip_prefix(self.shared.options.subject_prefix.as_str())?;
        rest.strip_prefix('.')?.parse().ok().map(PartitionId)
    }

    async fn append_inner(
        &self,
        partition: PartitionId,
        dedup_id: &str,
        payload: Bytes,
    ) -> Result<Appended> {
        let s = &*self.shared;
        if dedup_id.is_empty() {
            return Err(Error::internal("an append needs a non-empty dedup id"));
        }
        if !self.connected() {
            // Published now, it would wait in the client for the
            // reconnection and might land after the caller gave up.
            return Err(self.disconnected());
        }
        let subject = format!("{}.{}", s.options.subject_prefix, partition.0);
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, msg_id(dedup_id).as_str());
        let ack =
            s.js.publish_with_headers(subject.clone(), headers, payload)
                .await
                .map_err(|e| error::publish(e, &subject, &s.url))?
                .await
                .map_err(|e| error::publish(e, &subject, &s.url))?;
        if ack.stream != s.options.stream {
            return Err(Error::internal(format!(
                "the append to {subject} went to the stream {}, not {}",
                ack.stream, s.options.stream
            )));
        }
        if !ack.duplicate {
            s.stats.appends.fetch_add(1, Ordering::Relaxed);
            return Ok(Appended {
                partition,
                offset: ack.sequence,
                duplicate: false,
            });
        }
        s.stats.duplicates.fetch_add(1, Ordering::Relaxed);
        // The ack names the earlier entry's sequence; its subject names its
        // partition. Once applied (acked) it is gone: the requested
        // partition answers, and `entry` finds nothing there.
        let earlier = match s.stream.direct_get(ack.sequence).await {
            Ok(m) => self.partition_of(m.subject.as_str()),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => None,
            Err(e) => {
                let what = format!("reading the entry {} that dedup id answers", ack.sequence);
                return Err(error::direct_get(e, &what, &s.url));
            }
        };
        Ok(Appended {
            partition: earlier.unwrap_or(partition),
            offset: ack.sequence,
            duplicate: true,
        })
    }

    async fn entry_inner(&self, partition: PartitionId, offset: u64) -> Result<Option<LogEntry>> {
        if offset == 0 {
            return Ok(None);
        }
        let s = &*self.shared;
        match s.stream.direct_get(offset).await {
            Ok(m) if self.partition_of(m.subject.as_str()) == Some(partition) => {
                Ok(Some(LogEntry {
                    offset,
                    payload: m.payload,
                }))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => {
                let what = format!("reading the entry {offset} of partition {partition}");
                Err(error::direct_get(e, &what, &s.url))
            }
        }
    }
}

/// The dedup id as a header value: visible ASCII as it is, anything else
/// (and `%`) percent-encoded, so that no id can break the header or be
/// trimmed into another one.
fn msg_id(dedup_id: &str) -> String {
    let mut out = String::with_capacity(dedup_id.len());
    for b in dedup_id.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[async_trait]
impl InvocationLog for NatsLog {
    /// Durable once it returns. A duplicate whose earlier entry is applied
    /// (and so removed) answers the requested partition and the earlier
    /// offset; `entry` answers `None` for it.
    async fn append(
        &self,
        partition: PartitionId,
        dedup_id: &str,
        payload: Bytes,
    ) -> Result<Appended> {
        let r = self.append_inner(partition, dedup_id, payload).await;
        self.shared.stats.counted(r)
    }

    async fn read(&self, partition: PartitionId, from: u64, max: usize) -> Result<Vec<LogEntry>> {
        let s = &*self.shared;
        let r = self.partition(partition).read(s, from, max).await;
        s.stats.counted(r)
    }

    async fn entry(&self, partition: PartitionId, offset: u64) -> Result<Option<LogEntry>> {
        let r = self.entry_inner(partition, offset).await;
        self.shared.stats.counted(r)
    }

    async fn commit_position(&self, partition: PartitionId, offset: u64) -> Result<()> {
        let s = &*self.shared;
        let r = self.partition(partition).commit(s, offset).await;
        s.stats.counted(r)
    }

    async fn committed_position(&self, partition: PartitionId) -> Result<u64> {
        let s = &*self.shared;
        let r = self.partition(partition).committed(s).await;
        s.stats.counted(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_ids_become_safe_header_values() {
        assert_eq!(msg_id("inv-1_a.b~c"), "inv-1_a.b~c");
        assert_eq!(msg_id("a b\r\nc"), "a%20b%0D%0Ac");
        assert_eq!(msg_id("50%"), "50%25");
        assert_eq!(msg_id("é"), "%C3%A9");
        // Distinct ids stay distinct.
        assert_ne!(msg_id("%20"), msg_id(" "));
    }
}
