//! A partition's session in this process: its durable consumer, the pull
//! stream, the entries received and not handed out yet, and the ack
//! handles of the entries delivered and not committed.
//!
//! `read` is cancel-safe because everything it receives goes into the
//! session (behind a tokio mutex) before anything is handed out: a read
//! future dropped while it waits loses nothing, the next read hands out
//! what the dropped one had received.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::Subject;
use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::consumer::{
    self, AckPolicy, DeliverPolicy, IntoConsumerConfig, PullConsumer,
};
use async_nats::jetstream::stream::DirectGetErrorKind;
use async_nats::jetstream::{self, ErrorCode};
use bytes::Bytes;
use futures_util::StreamExt;
use oprc_core::PartitionId;
use oprc_store::{LogEntry, Result};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error;
use crate::log::Shared;
use crate::setup::api;

/// Idle heartbeat of a pull request: a stream that hears nothing for twice
/// as long reports an error and is opened again at the next read.
const HEARTBEAT: Duration = Duration::from_secs(5);
const EXPIRES: Duration = Duration::from_secs(30);
/// While the server says more entries follow the last one received, a
/// read waits for them until this long after the last delivery came, then
/// hands out what it has (so a stale count, such as one of a batch lost in
/// flight, cannot hold entries back). Counted from the delivery, not from
/// the read: the invoker drops a read every 100 ms.
const MORE_GRACE: Duration = Duration::from_millis(250);
/// After a reconnection or a new pull stream, once nothing came for this
/// long, a read asks the server how far the consumer delivered: when the
/// deliveries lost in flight were the last ones, no later delivery shows
/// the jump, and they would come back only after their ack_wait. Idle,
/// a read looks this often whether the client reconnected.
const QUIET: Duration = Duration::from_secs(1);
/// Acks in flight at once in a commit.
const ACK_CONCURRENCY: usize = 64;

pub(crate) struct Partition {
    pub(crate) id: PartitionId,
    pub(crate) subject: String,
    pub(crate) consumer: String,
    /// Set once this process has checked the consumer (and recreated it
    /// when a dead process left deliveries unacked).
    ready: tokio::sync::OnceCell<()>,
    reader: tokio::sync::Mutex<Reader>,
    /// Reply subjects (ack handles) of the entries delivered in this
    /// process and not acked yet, by offset. Bounded by the consumer's
    /// `max_ack_pending`.
    unacked: parking_lot::Mutex<BTreeMap<u64, Subject>>,
}

#[derive(Default)]
struct Reader {
    consumer: Option<PullConsumer>,
    messages: Option<pull::Stream>,
    /// Received, not handed out yet; offsets above `handed`, in order.
    buffered: VecDeque<LogEntry>,
    /// The highest offset received from the consumer in this session: a
    /// delivery at or below it is a redelivery.
    received: u64,
    /// The highest offset handed out by `read`.
    handed: u64,
    /// Entries the server had left for the consumer after the last one
    /// received.
    pending: u64,
    /// The consumer sequence of the last delivery received (0: none yet
    /// from this consumer). Every delivery, redeliveries included, takes
    /// the next one, so a jump means deliveries were lost in flight.
    delivered: u64,
    /// Deliveries were lost: the consumer is recreated before the next
    /// pull, so that it starts again at the first entry not acked.
    resync: bool,
    /// When the last delivery came (or the pull stream opened, or the
    /// reconnection was seen): the waits for more entries and for quiet
    /// count from it, so that they survive reads dropped before their end
    /// (the invoker drops one every 100 ms).
    heard: Option<Instant>,
    /// Deliveries may have been lost with nothing after them to show it (a
    /// new pull stream, a reconnection): once quiet, the consumer's
    /// delivered sequence is compared with `delivered`.
    check: bool,
    /// The client's connection count when last looked at.
    connects: u64,
    /// That comparison's request, kept across dropped reads.
    checking: Option<JoinHandle<std::result::Result<consumer::Info, crate::error::ApiError>>>,
}

impl Partition {
    pub(crate) fn new(id: PartitionId, subject_prefix: &str, consumer_prefix: &str) -> Self {
        Self {
            id,
            subject: format!("{subject_prefix}.{}", id.0),
            consumer: format!("{consumer_prefix}{}", id.0),
            ready: tokio::sync::OnceCell::new(),
            reader: tokio::sync::Mutex::new(Reader::default()),
            unacked: parking_lot::Mutex::new(BTreeMap::new()),
        }
    }

    /// Entries with offset >= `from`, at most `max`, waiting for one.
    pub(crate) async fn read(&self, s: &Shared, from: u64, max: usize) -> Result<Vec<LogEntry>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        self.ensure_ready(s).await?;
        let mut guard = self.reader.lock().await;
        let r = &mut *guard;
        // A rewind over what this session handed out: the consumer never
        // delivers it again, so it is read from the stream.
        if from <= r.handed {
            let rewound = self.rewind(s, from, max, r.handed).await?;
            if !rewound.is_empty() {
                return Ok(rewound);
            }
        }
        loop {
            while r.buffered.front().is_some_and(|e| e.offset < from) {
                r.buffered.pop_front();
            }
            let stalled = self.unacked.lock().len() as i64 >= s.options.max_ack_pending;
            if !r.buffered.is_empty() && (r.buffered.len() >= max || r.pending == 0 || stalled) {
                let n = r.buffered.len().min(max);
                let out: Vec<LogEntry> = r.buffered.drain(..n).collect();
                r.handed = out.last().map_or(r.handed, |e| e.offset);
                return Ok(out);
            }
            if r.messages.is_none() {
                if r.resync {
                    self.delete_consumer(s).await?;
                    r.consumer = None;
                    r.delivered = 0;
                    r.resync = false;
                    s.stats.count_recovery();
                }
                if r.consumer.is_none() {
                    let consumer = self.create_consumer(s).await?;
                    // The next delivery is the one after: a first batch
                    // lost whole shows as a jump too.
                    r.delivered = consumer.cached_info().delivered.consumer_sequence;
                    r.consumer = Some(consumer);
                }
                let consumer = r.consumer.as_ref().expect("set above");
                let stream = consumer
                    .stream()
                    .max_messages_per_batch(s.options.pull_batch)
                    .heartbeat(HEARTBEAT)
                    .expires(EXPIRES)
                    .messages()
                    .await
                    .map_err(|e| self.unavailable(s, "opening the pull stream", e))?;
                r.messages = Some(stream);
                // A pull of an earlier stream may have delivered to its
                // inbox, gone now.
                r.check = true;
                r.checking = None;
                r.heard = Some(Instant::now());
            }
            let now = Instant::now();
            let connects = s.client.statistics().connects.load(Ordering::Relaxed);
            if connects != r.connects {
                // Deliveries in flight at the break are lost.
                r.connects = connects;
                r.check = true;
                r.heard = Some(now);
            }
            let heard = *r.heard.get_or_insert(now);
            let wake = if !r.buffered.is_empty() {
                heard + MORE_GRACE
            } else if r.check {
                heard + QUIET
            } else {
                now + QUIET
            };
            let messages = r.messages.as_mut().expect("set above");
            let next = match tokio::time::timeout_at(wake, messages.next()).await {
                Ok(next) => next,
                Err(_) if !r.buffered.is_empty() => {
                    r.pending = 0;
                    continue;
                }
                Err(_) if r.check => {
                    self.check_delivered(s, r).await;
                    continue;
                }
                Err(_) => continue,
            };
            let failure = match next {
                Some(Ok(msg)) => {
                    if !self.accept(r, msg) {
                        // Handing out what follows would skip the lost
                        // entries: start again at the first one not acked.
                        r.messages = None;
                        r.resync = true;
                        r.pending = 0;
                    }
                    continue;
                }
                Some(Err(e)) => {
                    if e.kind() == MessagesErrorKind::ConsumerDeleted {
                        r.consumer = None;
                    }
                    self.unavailable(s, "pulling entries", e)
                }
                None => oprc_store::Error::new(
                    oprc_store::ErrorKind::Unavailable,
                    format!("the pull stream of partition {} ended", self.id),
                ),
            };
            // Opened again at the next read; what was received goes out
            // first.
            r.messages = None;
            if r.buffered.is_empty() {
                return Err(failure);
            }
            tracing::debug!(partition = %self.id, error = %failure, "pull stream failed; handing out what was received");
            r.pending = 0;
        }
    }

    /// Takes a delivery into the session (no await: nothing is lost if the
    /// read is dropped right after). `false`: deliveries before this one
    /// were lost in flight (a connection that broke mid-batch, the server
    /// restarted): it is not taken, and the caller resyncs. Otherwise the
    /// lost entries would come back only after their ack_wait, below
    /// entries already handed out, and be acked by a commit past them
    /// without ever being applied.
    fn accept(&self, r: &mut Reader, msg: jetstream::Message) -> bool {
        let (offset, pending, delivered) = match msg.info() {
            Ok(info) => (info.stream_sequence, info.pending, info.consumer_sequence),
            Err(e) => {
                tracing::warn!(partition = %self.id, error = %e, "a delivery without jetstream metadata is skipped");
                return true;
            }
        };
        if delivered != r.delivered + 1 {
            tracing::warn!(
                partition = %self.id,
                expected = r.delivered + 1,
                got = delivered,
                "deliveries were lost in flight; recreating the consumer to receive them again"
            );
            return false;
        }
        r.delivered = delivered;
        r.heard = Some(Instant::now());
        // An answer asked for before this delivery is stale.
        r.checking = None;
        let Some(reply) = msg.message.reply.clone() else {
            return true;
        };
        r.pending = pending;
        // The newest handle; an older one would ack the same entry.
        self.unacked.lock().insert(offset, reply);
        if offset <= r.received {
            // Delivered again (its ack_wait passed, or the consumer was
            // recreated): it is buffered or handed out already.
            return true;
        }
        r.received = offset;
        r.buffered.push_back(LogEntry {
            offset,
            payload: msg.message.payload,
        });
        true
    }

    /// Compares how far the server says the consumer delivered with the
    /// last delivery received, once nothing came for `QUIET` after a
    /// reconnection or a new pull stream: beyond it, deliveries were lost
    /// in flight with none after them (which `accept` would have caught),
    /// and the consumer is recreated. A delivery on its way while the
    /// server answers makes a needless resync, which loses nothing. The
    /// request is kept in the session, so a read dropped meanwhile does
    /// not start it again; a failed one is retried after another `QUIET`.
    async fn check_delivered(&self, s: &Shared, r: &mut Reader) {
        let request = r.checking.get_or_insert_with(|| {
            let js = s.js.clone();
            let subject = format!("CONSUMER.INFO.{}.{}", s.options.stream, self.consumer);
            tokio::spawn(async move {
                api::<consumer::Info>(&js, subject, &serde_json::json!({})).await
            })
        });
        let answer = request.await;
        r.checking = None;
        r.heard = Some(Instant::now());
        match answer {
            Ok(Ok(info)) if info.delivered.consumer_sequence == r.delivered => r.check = false,
            Ok(Ok(info)) => {
                tracing::warn!(
                    partition = %self.id,
                    received = r.delivered,
                    delivered = info.delivered.consumer_sequence,
                    "deliveries were lost in flight; recreating the consumer to receive them again"
                );
                r.check = false;
                r.messages = None;
                r.resync = true;
                r.pending = 0;
            }
            Ok(Err(e)) if e.code() == Some(ErrorCode::CONSUMER_NOT_FOUND) => {
                // Gone: a new one starts at the first entry not acked.
                r.check = false;
                r.messages = None;
                r.consumer = None;
            }
            Ok(Err(e)) => {
                let e = error::api(e, &self.what("reading the consumer"), &s.url);
                tracing::debug!(partition = %self.id, error = %e, "checking the deliveries; retrying");
            }
            Err(e) => {
                tracing::debug!(partition = %self.id, error = %e, "checking the deliveries; retrying")
            }
        }
    }

    /// This partition's entries in `from..=upto`, at most `max`, by direct
    /// gets.
    async fn rewind(&self, s: &Shared, from: u64, max: usize, upto: u64) -> Result<Vec<LogEntry>> {
        let mut out = Vec::new();
        let mut seq = from.max(1);
        while out.len() < max && seq <= upto {
            match s
                .stream
                .direct_get_next_for_subject(self.subject.clone(), Some(seq))
                .await
            {
                Ok(m) if m.sequence <= upto => {
                    seq = m.sequence + 1;
                    out.push(LogEntry {
                        offset: m.sequence,
                        payload: m.payload,
                    });
                }
                Ok(_) => break,
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => break,
                Err(e) => {
                    let what = format!("reading partition {} from offset {seq}", self.id);
                    return Err(error::direct_get(e, &what, &s.url));
                }
            }
        }
        Ok(out)
    }

    /// Acks every entry delivered in this process at or below `offset`,
    /// each with the server's confirmation. An entry whose ack failed stays
    /// for the next commit (acking twice is harmless), so this is
    /// cancel-safe too.
    pub(crate) async fn commit(&self, s: &Shared, offset: u64) -> Result<()> {
        let due: Vec<(u64, Subject)> = self
            .unacked
            .lock()
            .range(..=offset)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let results: Vec<_> = futures_util::stream::iter(due)
            .map(|(seq, reply)| {
                let client = s.client.clone();
                async move {
                    (
                        seq,
                        client.request(reply, Bytes::from_static(b"+ACK")).await,
                    )
                }
            })
            .buffer_unordered(ACK_CONCURRENCY)
            .collect()
            .await;
        let (mut acked, mut failed, mut first) = (0, 0, None);
        {
            let mut unacked = self.unacked.lock();
            for (seq, result) in results {
                match result {
                    Ok(_) => {
                        unacked.remove(&seq);
                        acked += 1;
                    }
                    Err(e) => {
                        failed += 1;
                        first.get_or_insert(e);
                    }
                }
            }
        }
        s.stats.count_acks(acked);
        match first {
            None => Ok(()),
            Some(e) => Err(self.unavailable(
                s,
                &format!("acknowledging {failed} entries up to offset {offset}"),
                e,
            )),
        }
    }

    /// The consumer's ack floor: every entry of the partition at or below
    /// it is acked (and so removed from the work-queue stream).
    pub(crate) async fn committed(&self, s: &Shared) -> Result<u64> {
        self.ensure_ready(s).await?;
        let info = match self.consumer_info(s).await? {
            Some(info) => info,
            None => self.create_consumer(s).await?.cached_info().clone(),
        };
        Ok(info.ack_floor.stream_sequence)
    }

    /// Entries not delivered plus entries delivered and not acked, or
    /// `None` while the partition has no consumer yet.
    pub(crate) async fn lag(&self, s: &Shared) -> Result<Option<u64>> {
        Ok(self
            .consumer_info(s)
            .await?
            .map(|i| i.num_pending + i.num_ack_pending as u64))
    }

    /// The first time this process touches the partition: a consumer with
    /// deliveries pending ack was left by a process that is gone (one owner
    /// per partition is assumed), so it is deleted, and recreated when
    /// needed: on a work-queue stream a new consumer starts at the first
    /// entry not acked, so those entries come back now rather than after
    /// their ack_wait. One with another config is replaced the same way.
    async fn ensure_ready(&self, s: &Shared) -> Result<()> {
        self.ready
            .get_or_try_init(|| async {
                let Some(info) = self.consumer_info(s).await? else {
                    return Ok(());
                };
                let stale = info.num_ack_pending > 0;
                if !stale && self.fits(s, &info.config) {
                    return Ok(());
                }
                tracing::info!(
                    partition = %self.id,
                    consumer = %self.consumer,
                    unacked = info.num_ack_pending,
                    "recreating the partition's consumer so that entries left unacknowledged are delivered again now"
                );
                self.delete_consumer(s).await?;
                s.stats.count_recovery();
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Deletes the durable consumer (gone already is fine). On a
    /// work-queue stream the next one starts at the first entry not acked.
    async fn delete_consumer(&self, s: &Shared) -> Result<()> {
        let subject = format!("CONSUMER.DELETE.{}.{}", s.options.stream, self.consumer);
        match api::<serde_json::Value>(&s.js, subject, &serde_json::json!({})).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(ErrorCode::CONSUMER_NOT_FOUND) => Ok(()),
            Err(e) => Err(error::api(e, &self.what("deleting the consumer"), &s.url)),
        }
    }

    fn config(&self, s: &Shared) -> pull::Config {
        pull::Config {
            durable_name: Some(self.consumer.clone()),
            description: Some(format!("oparaca invocation log, partition {}", self.id)),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: s.options.ack_wait,
            max_ack_pending: s.options.max_ack_pending,
            filter_subject: self.subject.clone(),
            ..Default::default()
        }
    }

    fn fits(&self, s: &Shared, c: &consumer::Config) -> bool {
        c.filter_subject == self.subject
            && c.ack_policy == AckPolicy::Explicit
            && c.deliver_policy == DeliverPolicy::All
            && c.ack_wait == s.options.ack_wait
            && c.max_ack_pending == s.options.max_ack_pending
    }

    async fn consumer_info(&self, s: &Shared) -> Result<Option<consumer::Info>> {
        let subject = format!("CONSUMER.INFO.{}.{}", s.options.stream, self.consumer);
        match api::<consumer::Info>(&s.js, subject, &serde_json::json!({})).await {
            Ok(info) => Ok(Some(info)),
            Err(e) if e.code() == Some(ErrorCode::CONSUMER_NOT_FOUND) => Ok(None),
            Err(e) => Err(error::api(e, &self.what("reading the consumer"), &s.url)),
        }
    }

    /// Creates the durable consumer, or finds it as it is (creating one
    /// with the same config is idempotent).
    async fn create_consumer(&self, s: &Shared) -> Result<PullConsumer> {
        let config = self.config(s);
        let subject = format!(
            "CONSUMER.CREATE.{}.{}.{}",
            s.options.stream, self.consumer, self.subject
        );
        let body = serde_json::json!({
            "stream_name": s.options.stream,
            "config": (&config).into_consumer_config(),
        });
        let info = api::<consumer::Info>(&s.js, subject, &body)
            .await
            .map_err(|e| error::api(e, &self.what("creating the consumer"), &s.url))?;
        Ok(PullConsumer::new(config, info, s.js.clone()))
    }

    fn what(&self, doing: &str) -> String {
        format!("{doing} {} of partition {}", self.consumer, self.id)
    }

    fn unavailable(
        &self,
        s: &Shared,
        doing: &str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> oprc_store::Error {
        let what = format!("{doing} of partition {} at {}", self.id, s.url);
        error::unavailable(what, e)
    }
}
