//! Deliveries lost in flight: the connection breaks in the middle of a
//! pull batch (the proxy drops what it holds of it and closes the
//! connection), so the durable consumer's delivered pointer is past
//! entries this process never received. They must come again at once and
//! in order, before anything that follows them, and never be acked by a
//! commit past them without being handed out (a lost async call); left to
//! the server, they would come back only after `ack_wait` (5 minutes),
//! below entries already handed out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use oprc_core::PartitionId;
use oprc_log_nats::NatsLog;
use oprc_store::{ErrorKind, InvocationLog};
use parking_lot::Mutex;

use crate::proxy::Proxy;
use crate::support::{Server, open, unique_options};

/// Well under `ack_wait`: only the log's own recovery is this quick.
const WITHIN: Duration = Duration::from_secs(20);
const BEFORE: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_lost_mid_batch_come_again_before_what_follows() {
    lost_in_flight(50, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_lost_mid_batch_come_again_when_nothing_follows() {
    lost_in_flight(50, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_consumers_first_deliveries_lost_come_again_before_what_follows() {
    lost_in_flight(0, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_consumers_first_deliveries_lost_come_again_when_nothing_follows() {
    lost_in_flight(0, 0).await;
}

/// Appends `BEFORE` entries to a partition, reads it as the invoker does
/// while the proxy breaks the connection once `forward` deliveries of the
/// first pull batch went through (the rest of the batch is lost in
/// flight), then appends `after` more: every entry must be handed out
/// once, in order, within `WITHIN` of the cut.
async fn lost_in_flight(forward: usize, after: usize) {
    let server = Server::start(true).await;
    let proxy = Proxy::start(server.url().trim_start_matches("nats://")).await;
    let mut options = unique_options("inflight");
    options.pull_batch = 500;
    options.request_timeout = Duration::from_secs(1);
    assert!(options.ack_wait >= Duration::from_secs(300));
    let log = open(&proxy.url(), &options).await;
    let p = PartitionId(4);
    let appended = Arc::new(Mutex::new(Vec::new()));
    append(&log, p, 0..BEFORE, &appended).await;

    let cut = proxy.cut_after(&format!("{}.{}", options.subject_prefix, p.0), forward);
    let total = BEFORE + after;
    let reader = tokio::spawn(consume_as_the_invoker(
        log.clone(),
        p,
        appended.clone(),
        total,
    ));
    let cut = tokio::time::timeout(Duration::from_secs(10), cut)
        .await
        .expect("the proxy cuts within 10s")
        .expect("the proxy reports its cut");
    let cut_at = Instant::now();
    assert_eq!(cut.forwarded, forward);
    assert!(cut.dropped >= 1, "nothing was lost in flight: {cut:?}");
    println!("{cut:?}");
    append(&log, p, BEFORE..total, &appended).await;

    let handed = match reader.await {
        Ok(handed) => handed,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let elapsed = cut_at.elapsed();
    assert_eq!(handed, *appended.lock(), "each entry once, in order");
    assert!(elapsed < WITHIN, "{elapsed:?}");
    println!(
        "all {total} entries handed out {elapsed:?} after the cut; {:?}",
        log.stats()
    );
    // Recovered by recreating the consumer (once, or again if a check
    // raced a delivery), not by a resync loop.
    let recovered = log.stats().recovered_consumers;
    assert!((1..=3).contains(&recovered), "{:?}", log.stats());
    // Nothing is left to deliver, nothing delivered is left unacked.
    let last = *handed.last().expect("entries");
    retry(|| log.commit_position(p, last)).await;
    assert_eq!(retry(|| log.consumer_lag(p)).await, Some(0));
}

/// Appends entries `range`, recording their offsets; waits out a
/// reconnection.
async fn append(
    log: &NatsLog,
    p: PartitionId,
    range: std::ops::Range<usize>,
    appended: &Mutex<Vec<u64>>,
) {
    for i in range {
        let name = format!("e{i}");
        let a = retry(|| log.append(p, &name, Bytes::from(name.clone()))).await;
        assert!(!a.duplicate, "{name}");
        appended.lock().push(a.offset);
    }
}

/// Retries what fails as `Unavailable` (the client reconnecting) for 10s.
async fn retry<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = oprc_store::Result<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if e.kind == ErrorKind::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Reads `p` as the invoker's consumer does (`read(p, next, 128)` with
/// `next` one past the last entry, the read dropped at every 100 ms
/// position tick, the position committed up to what was handed out) until
/// `total` entries came; fails at the first entry out of place, and after
/// `WITHIN` of the cut at the latest.
async fn consume_as_the_invoker(
    log: NatsLog,
    p: PartitionId,
    appended: Arc<Mutex<Vec<u64>>>,
    total: usize,
) -> Vec<u64> {
    let committed = retry(|| log.committed_position(p)).await;
    let mut next = committed + 1;
    let mut handed: Vec<u64> = Vec::new();
    let mut position = committed;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let deadline = Instant::now() + WITHIN + Duration::from_secs(10);
    while handed.len() < total {
        if Instant::now() > deadline {
            let appended = appended.lock();
            panic!(
                "only {} of {total} entries handed out; the next one, {:?}, did not come \
                 (left to the server it comes after ack_wait)",
                handed.len(),
                appended.get(handed.len())
            );
        }
        let entries = tokio::select! {
            biased;
            _ = tick.tick() => {
                if let Some(&last) = handed.last()
                    && last > position
                    && log.commit_position(p, last).await.is_ok()
                {
                    position = last;
                }
                continue;
            }
            r = log.read(p, next, 128) => r,
        };
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) if e.kind == ErrorKind::Unavailable => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(e) => panic!("read: {e}"),
        };
        assert!(!entries.is_empty(), "a read answers at least one entry");
        for e in entries {
            let k = handed.len();
            assert!(k < total, "more entries than appended: {}", e.offset);
            assert!(e.offset >= next, "offset {} is below {next}", e.offset);
            // An append's offset may be recorded after its delivery.
            if let Some(&want) = appended.lock().get(k) {
                assert_eq!(
                    e.offset, want,
                    "entry {k} handed out as offset {} instead of {want}: entries were skipped",
                    e.offset
                );
            }
            assert_eq!(
                String::from_utf8_lossy(&e.payload),
                format!("e{k}"),
                "entry {k}"
            );
            next = e.offset + 1;
            handed.push(e.offset);
        }
    }
    handed
}
