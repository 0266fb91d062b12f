//! The invocation-log checks of the conformance suite.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use oprc_core::PartitionId;

use crate::InvocationLog;

/// Runs every invocation-log check against an empty log.
pub async fn invocation_log(log: Arc<dyn InvocationLog>) {
    let p = PartitionId(0);
    let q = PartitionId(1);
    let a = log
        .append(p, "m1", Bytes::from_static(b"one"))
        .await
        .unwrap();
    assert_eq!((a.offset, a.duplicate), (1, false));
    let b = log
        .append(p, "m2", Bytes::from_static(b"two"))
        .await
        .unwrap();
    assert_eq!(b.offset, 2);
    // Partitions are independent.
    assert_eq!(
        log.append(q, "m3", Bytes::from_static(b"q"))
            .await
            .unwrap()
            .offset,
        1
    );
    // Idempotent producer: the same dedup id appends nothing.
    let dup = log
        .append(p, "m1", Bytes::from_static(b"again"))
        .await
        .unwrap();
    assert_eq!((dup.partition, dup.offset, dup.duplicate), (p, 1, true));
    // A dedup id is one request whatever the partition: the earlier
    // message answers.
    let elsewhere = log
        .append(q, "m1", Bytes::from_static(b"other"))
        .await
        .unwrap();
    assert_eq!(
        (elsewhere.partition, elsewhere.offset, elsewhere.duplicate),
        (p, 1, true)
    );
    assert_eq!(
        log.entry(p, 1).await.unwrap().unwrap().payload,
        Bytes::from_static(b"one")
    );

    let got = log.read(p, 1, 10).await.unwrap();
    let offsets: Vec<u64> = got.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, vec![1, 2]);
    assert_eq!(log.read(p, 2, 10).await.unwrap().len(), 1);
    assert_eq!(log.read(p, 1, 1).await.unwrap().len(), 1);

    // read waits for a new entry.
    let reader = {
        let log = log.clone();
        tokio::spawn(async move { log.read(p, 3, 10).await })
    };
    tokio::task::yield_now().await;
    log.append(p, "m4", Bytes::from_static(b"three"))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("read wakes up on append")
        .unwrap()
        .unwrap();
    assert_eq!(got[0].offset, 3);
    assert_eq!(got[0].payload, Bytes::from_static(b"three"));

    assert_eq!(log.committed_position(p).await.unwrap(), 0);
    log.commit_position(p, 2).await.unwrap();
    assert_eq!(log.committed_position(p).await.unwrap(), 2);
    assert_eq!(log.committed_position(q).await.unwrap(), 0);
    // Entries after the committed position are still there.
    assert_eq!(log.read(p, 3, 10).await.unwrap().len(), 1);
}
