//! What survives a clean close and reopen, and which commits are synced.

use oprc_core::{ClassKey, ObjectId, ObjectRecord, PartitionId};
use oprc_store::{Durability, InvocationLog, Layout, StateStore, Write, WriteBatch};
use oprc_store_redb::Options;

use crate::{close, create, open, open_with, write_behind};

#[tokio::test]
async fn committed_state_and_log_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cls = ClassKey::new("t.c").unwrap();
    let oid = ObjectId::new("o").unwrap();
    {
        let store = open(&dir);
        let mut r = ObjectRecord::new(cls.clone(), oid.clone(), serde_json::json!({"a": 1}));
        r.meta.revision = 1;
        store
            .commit(WriteBatch::of(vec![Write::PutObject {
                record: r,
                expected_revision: None,
            }]))
            .await
            .unwrap();
        store.append(PartitionId(3), "m", "x".into()).await.unwrap();
        store.commit_position(PartitionId(3), 1).await.unwrap();
        store.append(PartitionId(3), "n", "y".into()).await.unwrap();
        close(store).await;
    }
    let store = open(&dir);
    let got = store.get_object(&cls, &oid).await.unwrap().unwrap();
    assert_eq!(got.data, serde_json::json!({"a": 1}));
    assert_eq!(store.committed_position(PartitionId(3)).await.unwrap(), 1);
    let entries = store.read(PartitionId(3), 1, 10).await.unwrap();
    assert_eq!(entries.len(), 1, "entry 1 was trimmed, entry 2 is kept");
    assert_eq!(entries[0].offset, 2);
    let again = store.append(PartitionId(3), "n", "z".into()).await.unwrap();
    assert!(again.duplicate, "dedup ids survive a restart");
    assert_eq!(
        store
            .append(PartitionId(3), "o", "w".into())
            .await
            .unwrap()
            .offset,
        3
    );
}

#[tokio::test]
async fn write_behind_flushes_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let options = write_behind(dir.path().join("wb.redb"));
    let store = open_with(options.clone());
    let batch = WriteBatch::of(vec![create("t.c", "kept")]);
    store.commit(batch).await.unwrap();
    assert_eq!(store.stats().durable_commits, 0, "write-behind");
    close(store).await;
    let store = open_with(options);
    let cls = ClassKey::new("t.c").unwrap();
    let oid = ObjectId::new("kept").unwrap();
    assert!(store.get_object(&cls, &oid).await.unwrap().is_some());
}

#[tokio::test]
async fn deferred_batches_are_acknowledged_before_the_fsync_and_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::new(dir.path().join("wb2.redb"));
    options.flush_interval = std::time::Duration::from_secs(3600);
    let store = open_with(options.clone());
    for i in 1..=10u64 {
        let mut batch = WriteBatch::of(vec![create("t.c", &format!("o{i}"))]);
        batch.durability = Durability::Deferred;
        store.commit(batch).await.unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.commits, 10);
    assert_eq!(stats.durable_commits, 0, "nothing forced an fsync");
    // A durable write in between makes everything before it durable too.
    store.put_package("p", "name: p").await.unwrap();
    assert_eq!(store.stats().durable_commits, 1);
    close(store).await;
    let store = open_with(options);
    let cls = ClassKey::new("t.c").unwrap();
    let page = store.list_objects(&cls, None, 100).await.unwrap();
    assert_eq!(page.objects.len(), 10);
}

#[tokio::test]
async fn write_behind_still_syncs_appends_packages_and_required_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(write_behind(dir.path().join("wb3.redb")));
    let synced = || store.stats().durable_commits;
    let batch = |oid: &str, durability| WriteBatch {
        writes: vec![create("t.c", oid)],
        durability,
        fence: None,
    };
    store.commit(batch("a", Durability::Default)).await.unwrap();
    store
        .commit(batch("b", Durability::Deferred))
        .await
        .unwrap();
    assert_eq!(synced(), 0, "default follows the store's write-behind mode");
    store
        .commit(batch("c", Durability::Required))
        .await
        .unwrap();
    assert_eq!(synced(), 1, "a required batch is synced");
    store.append(PartitionId(0), "d", "x".into()).await.unwrap();
    assert_eq!(synced(), 2, "an append is synced (a 202 promises it)");
    store.put_package("p", "name: p").await.unwrap();
    store.delete_package("p").await.unwrap();
    assert_eq!(synced(), 4, "package writes are synced");
    let layout = Layout {
        partitions: 4,
        blobs: None,
        log: None,
    };
    store.layout(&layout).await.unwrap();
    assert_eq!(synced(), 5, "the layout is synced");
    assert_eq!(store.stats().commits, 7);
}

#[tokio::test]
async fn the_layout_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let old = Layout {
        partitions: 4,
        blobs: None,
        log: None,
    };
    let store = open(&dir);
    assert_eq!(store.layout(&old).await.unwrap(), old);
    close(store).await;
    // A layout stored without a blob store adopts one, durably.
    let full = Layout {
        blobs: Some("dir:files".into()),
        ..old.clone()
    };
    let store = open(&dir);
    assert_eq!(store.layout(&full).await.unwrap(), full);
    close(store).await;
    let store = open(&dir);
    let other = Layout {
        partitions: 8,
        blobs: Some("s3://files".into()),
        log: None,
    };
    assert_eq!(store.layout(&other).await.unwrap(), full);
    assert_eq!(store.layout(&old).await.unwrap(), full);
}

#[tokio::test]
async fn the_log_identity_is_made_once_per_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let first = store.log_identity().to_owned();
    assert!(first.starts_with("embedded:"), "{first}");
    close(store).await;
    let store = open(&dir);
    assert_eq!(store.log_identity(), first, "kept across a reopen");
    close(store).await;
    let other = tempfile::tempdir().unwrap();
    let store = open(&other);
    assert_ne!(store.log_identity(), first, "another database, another log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_share_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.spawn(async move {
            let batch = WriteBatch::of(vec![create("t.g", &format!("o{i}"))]);
            store.commit(batch).await.unwrap();
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.requests, 200);
    // Each transaction costs an fsync; waiting writers ride along.
    assert!(stats.commits < 200, "no group commit: {stats:?}");
}

/// The embedded store keeps no partition ownership (ADR 13): a fenced
/// batch is refused, never written as if its fence held.
#[tokio::test]
async fn a_fenced_batch_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let batch = WriteBatch {
        fence: Some(oprc_store::Fence {
            partition: 2,
            epoch: 7,
        }),
        ..WriteBatch::of(vec![create("t.c", "fenced")])
    };
    let err = store.commit(batch).await.unwrap_err();
    assert_eq!(err.kind, oprc_store::ErrorKind::Internal, "{err}");
    assert!(err.message.contains("partition 2 epoch 7"), "{err}");
    let cls = ClassKey::new("t.c").unwrap();
    let oid = ObjectId::new("fenced").unwrap();
    assert!(store.get_object(&cls, &oid).await.unwrap().is_none());
    close(store).await;
}
