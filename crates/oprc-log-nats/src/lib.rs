//! The NATS JetStream invocation log: [`oprc_store::InvocationLog`] on one
//! file-backed work-queue stream, so that the accepted async calls of a
//! node survive it and live beside, not inside, its state store. It passes
//! the same conformance suite as the embedded log. It knows nothing of
//! invocations (an entry is opaque bytes), keeps no state of its own on
//! disk, and never writes a password or token of the server URL into an
//! error or a log line ([`redact_url`]).
//!
//! The mapping (docs/adr/0011-invocation-log-on-jetstream.md):
//! - a partition is the subject `<prefix>.<partition>` of the stream; an
//!   offset is the JetStream stream sequence: strictly increasing within a
//!   partition, with gaps (the partitions share the sequence);
//! - an append is a publish with `Nats-Msg-Id: <dedup id>` (the server's
//!   dedup window; older repeats are caught by the state store's
//!   idempotency index), durable once the server acknowledged it;
//! - each partition has one durable pull consumer with explicit acks; an
//!   entry is acked, and so removed, only when the caller commits a
//!   position at or past it; the committed position is the consumer's ack
//!   floor;
//! - the log's [`NatsLog::identity`] names the stream and its creation
//!   time, so a recreated stream (whose offsets start again) is told apart.
//!
//! Layers: `error.rs` (async-nats errors mapped to the
//! [`oprc_store::ErrorKind`]s callers decide on, URL redaction), `setup.rs`
//! (connecting, checking or creating the stream, the options' checks),
//! `partition.rs` (a partition's session: the pull stream, the entries
//! received and not handed out yet, the ack handles of the entries not
//! committed), `log.rs` (the trait, consumers, recovery after a crash).

mod error;
mod log;
mod partition;
mod setup;

use std::time::Duration;

pub use error::redact_url;
pub use log::{LogStats, NatsLog};

/// Options of the JetStream log (the server URL is passed beside them).
#[derive(Debug, Clone)]
pub struct Options {
    /// The stream's name; created when missing.
    pub stream: String,
    /// Partition `p` is the subject `<subject_prefix>.<p>`; the stream's
    /// subjects are exactly `<subject_prefix>.*`.
    pub subject_prefix: String,
    /// Partition `p`'s durable consumer is `<consumer_prefix><p>`.
    pub consumer_prefix: String,
    /// How long the server remembers a dedup id. A repeat after it is
    /// appended again (the state store's idempotency index answers it).
    pub duplicate_window: Duration,
    /// Copies of the stream in a JetStream cluster (1 on a single server).
    pub replicas: usize,
    /// How long a delivered entry may stay unacked before the server
    /// delivers it again. Acks wait for the commit of the entry's call,
    /// so this is far longer than a call; a crashed node's deliveries come
    /// back at once anyway (its successor recreates the consumer).
    pub ack_wait: Duration,
    /// Entries delivered and not acked at most, per partition; above the
    /// node's in-flight limit of async calls.
    pub max_ack_pending: i64,
    /// Entries asked for by one pull request.
    pub pull_batch: usize,
    /// Bound of every request to the server: publish acks, API requests,
    /// acks. During an outage a caller gets `Unavailable` after this long
    /// at most (at once when the connection is known to be down).
    pub request_timeout: Duration,
    /// Bound of the first connection at start.
    pub connect_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            stream: "OPRC_INVOCATIONS".to_owned(),
            subject_prefix: "oprc.inv".to_owned(),
            consumer_prefix: "oprc-p".to_owned(),
            duplicate_window: Duration::from_secs(120),
            replicas: 1,
            ack_wait: Duration::from_secs(300),
            max_ack_pending: 10_000,
            pull_batch: 256,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }
}
