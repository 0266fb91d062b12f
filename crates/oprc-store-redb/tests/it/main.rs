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
    {
        let store = open(&dir);
        let mut r = ObjectRecord::new(cls.clone(), oid.clone(), serde_json::json!({"a": 1}));
        r.meta.revision = 1;
        store
            .commit(WriteBatch {
                writes: vec![Write::PutObject {
                    record: r,
                    expected_revision: None,
                }],
            })
            .await
            .unwrap();
        store.append(PartitionId(3), "m", "x".into()).await.unwrap();
        store.commit_position(PartitionId(3), 1).await.unwrap();
        store.append(PartitionId(3), "n", "y".into()).await.unwrap();
    }
    // The writer thread exits once the store is dropped; reopening must wait
    // for the file lock, so retry briefly.
    let store = {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Store::open(Options::new(dir.path().join("oprc.redb"))) {
                Ok(s) => break s,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("reopen failed: {e}"),
            }
        }
    };
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
    drop(store);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let store = loop {
        match Store::open(options.clone()) {
            Ok(s) => break s,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("reopen failed: {e}"),
        }
    };
    let names: Vec<String> = store
        .list_packages()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert!(names.contains(&"kept".to_owned()), "{names:?}");
}
