//! Conformance and durability tests of the embedded store.

use std::sync::Arc;

use oprc_core::{ClassKey, ObjectId, ObjectRecord, PartitionId};
use oprc_store::{InvocationLog, StateStore, Write, WriteBatch};
use oprc_store_redb::{Options, Store};

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(Options::new(dir.path().join("oprc.redb"))).unwrap()
}

#[tokio::test]
async fn state_store_conformance() {
    let dir = tempfile::tempdir().unwrap();
    oprc_store::conformance::state_store(Arc::new(open(&dir))).await;
}

#[tokio::test]
async fn invocation_log_conformance() {
    let dir = tempfile::tempdir().unwrap();
    oprc_store::conformance::invocation_log(Arc::new(open(&dir))).await;
}

#[tokio::test]
async fn committed_state_and_log_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cls = ClassKey::new("t.c").unwrap();
    let oid = ObjectId::new("o").unwrap();
    let closed = {
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
        store.closed()
    };
    closed.await;
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
async fn write_behind_passes_conformance_and_flushes_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::new(dir.path().join("wb.redb"));
    options.sync = false;
    options.flush_interval = std::time::Duration::from_millis(10);
    let store = Store::open(options.clone()).unwrap();
    oprc_store::conformance::state_store(Arc::new(store.clone())).await;
    store.put_package("kept", "name: kept").await.unwrap();
    let closed = store.closed();
    drop(store);
    closed.await;
    let store = Store::open(options).unwrap();
    let names: Vec<String> = store
        .list_packages()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert!(names.contains(&"kept".to_owned()), "{names:?}");
}

#[tokio::test]
async fn write_behind_batches_are_acknowledged_before_the_fsync_and_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::new(dir.path().join("wb2.redb"));
    options.flush_interval = std::time::Duration::from_secs(3600);
    let store = open_with(options.clone());
    let cls = ClassKey::new("t.c").unwrap();
    for i in 1..=10u64 {
        let mut r = ObjectRecord::new(
            cls.clone(),
            ObjectId::new(format!("o{i}")).unwrap(),
            serde_json::json!(i),
        );
        r.meta.revision = 1;
        let mut batch = WriteBatch::of(vec![Write::PutObject {
            record: r,
            expected_revision: None,
        }]);
        batch.write_behind = true;
        store.commit(batch).await.unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.commits, 10);
    assert_eq!(stats.durable_commits, 0, "nothing forced an fsync");
    // A durable write in between makes everything before it durable too.
    store.put_package("p", "name: p").await.unwrap();
    assert_eq!(store.stats().durable_commits, 1);
    let closed = store.closed();
    drop(store);
    closed.await;
    let store = open_with(options);
    let page = store.list_objects(&cls, None, 100).await.unwrap();
    assert_eq!(page.objects.len(), 10);
}

fn open_with(options: Options) -> Store {
    Store::open(options).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_share_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let cls = ClassKey::new("t.g").unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (store, cls) = (store.clone(), cls.clone());
        tasks.spawn(async move {
            let mut r = ObjectRecord::new(
                cls,
                ObjectId::new(format!("o{i}")).unwrap(),
                serde_json::json!(i),
            );
            r.meta.revision = 1;
            store
                .commit(WriteBatch::of(vec![Write::PutObject {
                    record: r,
                    expected_revision: None,
                }]))
                .await
                .unwrap();
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
