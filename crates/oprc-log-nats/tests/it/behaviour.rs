//! What the conformance suite cannot see: dedup answered by another
//! partition's entry, redelivery after a crash, reads dropped at any
//! point.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use oprc_core::PartitionId;
use oprc_store::InvocationLog;

use crate::support::{eventually, open, payloads, read_until, server_url, with_stream};

const WITHIN: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_duplicate_answers_the_earlier_entrys_partition_even_once_it_is_applied() {
    with_stream("dedup", |options| async move {
        let log = open(&server_url(), &options).await;
        let (p, q) = (PartitionId(3), PartitionId(7));
        let first = log
            .append(p, "key-1", Bytes::from_static(b"a"))
            .await
            .unwrap();
        // Another partition's entry between them: offsets have gaps.
        log.append(q, "key-2", Bytes::from_static(b"b"))
            .await
            .unwrap();
        let dup = log
            .append(q, "key-1", Bytes::from_static(b"c"))
            .await
            .unwrap();
        assert_eq!(
            (dup.partition, dup.offset, dup.duplicate),
            (p, first.offset, true)
        );
        assert!(
            log.entry(q, first.offset).await.unwrap().is_none(),
            "not q's"
        );

        // Applied: acked, so the work-queue stream removes it.
        let got = read_until(&log, p, 1, first.offset, WITHIN).await;
        assert_eq!(payloads(&got), ["a"]);
        log.commit_position(p, first.offset).await.unwrap();
        eventually("the applied entry is removed", WITHIN, || async {
            log.entry(p, first.offset).await.unwrap().is_none()
        })
        .await;
        // The server still knows the dedup id; the entry is gone, so the
        // requested partition answers with the earlier offset.
        let late = log
            .append(q, "key-1", Bytes::from_static(b"d"))
            .await
            .unwrap();
        assert_eq!(
            (late.partition, late.offset, late.duplicate),
            (q, first.offset, true)
        );
        assert!(log.entry(q, late.offset).await.unwrap().is_none());
        assert_eq!(log.stats().duplicates, 2);
        // Dedup ids that are not plain ASCII work too, and stay distinct.
        let odd = log
            .append(p, "kéy 1\r\n", Bytes::from_static(b"e"))
            .await
            .unwrap();
        assert!(!odd.duplicate);
        let again = log
            .append(p, "kéy 1\r\n", Bytes::from_static(b"f"))
            .await
            .unwrap();
        assert_eq!((again.offset, again.duplicate), (odd.offset, true));
        assert!(
            !log.append(p, "kéy 1", Bytes::from_static(b"g"))
                .await
                .unwrap()
                .duplicate
        );
    })
    .await;
}

#[tokio::test]
async fn entries_a_dead_process_left_unacked_come_back_at_once() {
    with_stream("crash", |options| async move {
        let p = PartitionId(0);
        // ack_wait is 5 minutes: anything within seconds is the recovery.
        assert!(options.ack_wait >= Duration::from_secs(300));
        let log = open(&server_url(), &options).await;
        let mut offsets = Vec::new();
        for i in 0..4 {
            let payload = Bytes::from(format!("e{i}"));
            offsets.push(
                log.append(p, &format!("k{i}"), payload)
                    .await
                    .unwrap()
                    .offset,
            );
        }
        assert_eq!(log.consumer_lag(p).await.unwrap(), None, "no consumer yet");
        let got = read_until(&log, p, 1, offsets[3], WITHIN).await;
        assert_eq!(payloads(&got), ["e0", "e1", "e2", "e3"]);
        log.commit_position(p, offsets[0]).await.unwrap();
        assert_eq!(log.consumer_lag(p).await.unwrap(), Some(3));
        eventually("the applied entry is removed", WITHIN, || async {
            log.entry(p, offsets[0]).await.unwrap().is_none()
        })
        .await;
        // The process dies with e1..e3 delivered and not acked.
        drop(log);

        let log = open(&server_url(), &options).await;
        let committed = log.committed_position(p).await.unwrap();
        // (A new consumer reports 0 until its first ack.)
        assert!(committed < offsets[1], "{committed}");
        let got = read_until(&log, p, committed + 1, offsets[3], WITHIN).await;
        assert_eq!(payloads(&got), ["e1", "e2", "e3"]);
        assert_eq!(log.stats().recovered_consumers, 1);
        // A process that acked everything leaves nothing to recover.
        log.commit_position(p, offsets[3]).await.unwrap();
        assert_eq!(log.consumer_lag(p).await.unwrap(), Some(0));
        drop(log);
        let log = open(&server_url(), &options).await;
        assert!(log.committed_position(p).await.unwrap() >= offsets[3]);
        assert_eq!(log.stats().recovered_consumers, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_dropped_at_any_point_lose_nothing_and_repeat_nothing() {
    with_stream("cancel", |options| async move {
        const N: usize = 400;
        let log = open(&server_url(), &options).await;
        let (p, other) = (PartitionId(1), PartitionId(2));
        // The writer appends a batch when the reader asks, so the reader
        // can drop a read right while a batch arrives.
        let (go, mut batches) = tokio::sync::mpsc::channel::<usize>(1);
        let writer = {
            let log = log.clone();
            tokio::spawn(async move {
                let mut i = 0;
                while let Some(k) = batches.recv().await {
                    for _ in 0..k {
                        let payload = Bytes::from(i.to_string());
                        log.append(p, &format!("p{i}"), payload).await.unwrap();
                        if i % 3 == 0 {
                            // Another partition's entries: gaps in p's offsets.
                            log.append(other, &format!("o{i}"), Bytes::new())
                                .await
                                .unwrap();
                        }
                        i += 1;
                    }
                }
            })
        };
        let mut got: Vec<(u64, String)> = Vec::new();
        let (mut next, mut asked) = (1, 0);
        let (mut dropped, mut seed) = (0u32, 7u64);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while got.len() < N {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {N}",
                got.len()
            );
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let max = 1 + (seed >> 40) as usize % 16;
            let mut read = Box::pin(log.read(p, next, max));
            let mut result = match poll_once(&mut read).await {
                Poll::Ready(r) => Some(r),
                Poll::Pending => None,
            };
            if result.is_none() && got.len() == asked && asked < N {
                // Caught up and waiting: the next batch comes now.
                let k = (1 + (seed >> 36) as usize % 6).min(N - asked);
                go.send(k).await.unwrap();
                asked += k;
            }
            // Most reads get 0 to 7 more polls, then are dropped wherever
            // they are (mid-request, mid-pull, mid-wait); one in four gets
            // the time to finish, so the test moves on.
            if result.is_none() && (seed >> 33) % 4 == 0 {
                result = tokio::time::timeout(Duration::from_secs(1), read.as_mut())
                    .await
                    .ok();
            }
            for _ in 0..(seed >> 44) % 8 {
                if result.is_some() {
                    break;
                }
                tokio::task::yield_now().await;
                if let Poll::Ready(r) = poll_once(&mut read).await {
                    result = Some(r);
                }
            }
            drop(read);
            let Some(entries) = result else {
                dropped += 1;
                continue;
            };
            let entries = entries.unwrap();
            assert!(!entries.is_empty());
            for e in &entries {
                assert!(e.offset >= next, "offset {} is below {next}", e.offset);
                let payload = String::from_utf8_lossy(&e.payload).into_owned();
                assert_eq!(
                    payload,
                    got.len().to_string(),
                    "an entry was lost or repeated"
                );
                next = e.offset + 1;
                got.push((e.offset, payload));
            }
            if got.len() % 50 < entries.len() {
                log.commit_position(p, next - 1).await.unwrap();
            }
        }
        drop(go);
        writer.await.unwrap();
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(dropped >= 20, "only {dropped} reads were dropped");
        println!("{N} entries through reads of which {dropped} were dropped");
        // Nothing is left to deliver, nothing delivered is left unacked.
        log.commit_position(p, next - 1).await.unwrap();
        assert_eq!(log.consumer_lag(p).await.unwrap(), Some(0));
    })
    .await;
}

/// Polls `f` once.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *f).poll(cx))).await
}
