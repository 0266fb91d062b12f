//! The invocation-log checks of the conformance suite.
//!
//! They hold a backend to the trait's contract, not to one layout of
//! offsets: offsets strictly increase within a partition but need not be
//! dense or start at 1 (a backend may share one sequence among its
//! partitions), so the checks use the offsets appends return.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use oprc_core::PartitionId;

use crate::{InvocationLog, LogEntry};

/// Reads from `from` until an entry at or past `until` came, in as many
/// reads as the backend needs (a read may return fewer entries than there
/// are), and checks that each read answers in order from `from` on.
async fn read_through(log: &dyn InvocationLog, p: PartitionId, from: u64, until: u64) -> Vec<u64> {
    let mut offsets = Vec::new();
    let mut next = from;
    while offsets.last().is_none_or(|&last| last < until) {
        let got: Vec<LogEntry> = log.read(p, next, 10).await.unwrap();
        assert!(!got.is_empty(), "read waits until an entry exists");
        assert!(got[0].offset >= next, "{} is below {next}", got[0].offset);
        assert!(
            got.windows(2).all(|w| w[0].offset < w[1].offset),
            "in order"
        );
        next = got[got.len() - 1].offset + 1;
        offsets.extend(got.iter().map(|e| e.offset));
    }
    offsets
}

/// Runs every invocation-log check against an empty log.
pub async fn invocation_log(log: Arc<dyn InvocationLog>) {
    let p = PartitionId(0);
    let q = PartitionId(1);
    let a = log
        .append(p, "m1", Bytes::from_static(b"one"))
        .await
        .unwrap();
    assert_eq!((a.partition, a.duplicate), (p, false));
    assert!(a.offset >= 1, "offsets start at 1 or later");
    let b = log
        .append(p, "m2", Bytes::from_static(b"two"))
        .await
        .unwrap();
    assert!(!b.duplicate);
    assert!(b.offset > a.offset, "offsets increase within a partition");
    // Partitions are independent.
    let in_q = log.append(q, "m3", Bytes::from_static(b"q")).await.unwrap();
    assert_eq!((in_q.partition, in_q.duplicate), (q, false));
    assert!(in_q.offset >= 1);
    // Idempotent producer: the same dedup id appends nothing.
    let dup = log
        .append(p, "m1", Bytes::from_static(b"again"))
        .await
        .unwrap();
    assert_eq!(
        (dup.partition, dup.offset, dup.duplicate),
        (p, a.offset, true)
    );
    // A dedup id is one request whatever the partition: the earlier
    // message answers.
    let elsewhere = log
        .append(q, "m1", Bytes::from_static(b"other"))
        .await
        .unwrap();
    assert_eq!(
        (elsewhere.partition, elsewhere.offset, elsewhere.duplicate),
        (p, a.offset, true)
    );
    assert_eq!(
        log.entry(p, a.offset).await.unwrap().unwrap().payload,
        Bytes::from_static(b"one")
    );
    assert_eq!(
        log.entry(q, in_q.offset).await.unwrap().unwrap().payload,
        Bytes::from_static(b"q")
    );

    // Every entry of the partition, none of another, in order.
    assert_eq!(
        read_through(&*log, p, a.offset, b.offset).await,
        vec![a.offset, b.offset]
    );
    let got = log.read(p, a.offset, 10).await.unwrap();
    let offsets: Vec<u64> = got.iter().map(|e| e.offset).collect();
    assert_eq!(
        offsets,
        vec![a.offset, b.offset],
        "a read again from the start"
    );
    assert_eq!(got[1].payload, Bytes::from_static(b"two"));
    assert_eq!(log.read(p, b.offset, 10).await.unwrap().len(), 1);
    assert_eq!(
        log.read(p, a.offset + 1, 10).await.unwrap()[0].offset,
        b.offset
    );
    assert_eq!(log.read(p, a.offset, 1).await.unwrap().len(), 1);

    // read waits for a new entry.
    let reader = {
        let log = log.clone();
        tokio::spawn(async move { log.read(p, b.offset + 1, 10).await })
    };
    tokio::task::yield_now().await;
    let c = log
        .append(p, "m4", Bytes::from_static(b"three"))
        .await
        .unwrap();
    assert!(c.offset > b.offset);
    let got = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("read wakes up on append")
        .unwrap()
        .unwrap();
    assert_eq!(got[0].offset, c.offset);
    assert_eq!(got[0].payload, Bytes::from_static(b"three"));

    // The committed position: at or above the last commit (0 before any),
    // never past an entry not committed: reading from it + 1 skips
    // nothing. (With gaps between a partition's offsets it may stand in a
    // gap past the last commit.)
    assert!(log.committed_position(p).await.unwrap() < a.offset);
    log.commit_position(p, b.offset).await.unwrap();
    let committed = log.committed_position(p).await.unwrap();
    assert!(
        (b.offset..c.offset).contains(&committed),
        "{committed} is not in {}..{}",
        b.offset,
        c.offset
    );
    // Per partition.
    assert!(log.committed_position(q).await.unwrap() < in_q.offset);
    // Entries after the committed position are still there.
    let got = log.read(p, committed + 1, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].offset, c.offset);
    assert_eq!(log.read(p, c.offset, 10).await.unwrap().len(), 1);
}
