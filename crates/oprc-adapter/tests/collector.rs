//! The collector deletes versions no object holds, once past the grace,
//! and never a live one or one whose replacement is recent (a reader may
//! hold a URL for it).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use oprc_adapter::collector::{Collector, Options};
use oprc_blob::{BlobPath, BlobStore, DirStore, Signer};
use oprc_core::{ClassKey, ObjectId, ObjectRecord};
use oprc_store::{StateStore, Write, WriteBatch};

async fn put(store: &DirStore, root: &std::path::Path, path: &str, age: Duration) {
    let p = BlobPath::parse(path).unwrap();
    let body = futures_util::stream::iter(vec![Ok(bytes::Bytes::from_static(b"x"))]).boxed();
    store.put(&p, body).await.unwrap();
    let file = std::fs::File::options()
        .write(true)
        .open(root.join(path))
        .unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

#[tokio::test]
async fn dead_versions_go_after_the_grace_and_live_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("files");
    let blobs = Arc::new(DirStore::open(&root, Signer::new(b"k".to_vec(), "http://n")).unwrap());
    let state =
        oprc_store_redb::Store::open(oprc_store_redb::Options::new(dir.path().join("db"))).unwrap();
    let hour = Duration::from_secs(3600);
    let mut obj = ObjectRecord::new(
        ClassKey::new("a.b").unwrap(),
        ObjectId::new("o").unwrap(),
        serde_json::json!({}),
    );
    obj.meta.ver_ids.insert("k".into(), "v1".into());
    obj.meta.revision = 1;
    let mut batch = WriteBatch::new();
    batch.push(Write::PutObject {
        expected_revision: None,
        record: obj,
    });
    state.commit(batch).await.unwrap();
    // Superseded by a version written just now; the live version; an
    // orphan of a failed task (kept as long as the one it would have
    // superseded: the collector cannot tell the two apart); files of an
    // object that is gone, one old, one recent.
    put(&blobs, &root, "a.b/o/v0/k", 2 * hour).await;
    put(&blobs, &root, "a.b/o/v1/k", Duration::ZERO).await;
    put(&blobs, &root, "a.b/o/v2/k", 2 * hour).await;
    put(&blobs, &root, "a.b/gone/v0/k", 2 * hour).await;
    put(&blobs, &root, "a.b/gone/v1/k", Duration::from_secs(60)).await;
    let collector = Collector::new(
        blobs.clone(),
        Arc::new(state),
        Options {
            interval: Duration::from_secs(60),
            grace: hour,
            page: 2,
        },
    );
    let pass = collector.pass().await.unwrap();
    assert_eq!(
        (pass.scanned, pass.live, pass.deleted, pass.waiting),
        (5, 1, 1, 3)
    );
    let left: Vec<String> = blobs
        .list(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.path.to_string())
        .collect();
    assert_eq!(
        left,
        ["a.b/gone/v1/k", "a.b/o/v0/k", "a.b/o/v1/k", "a.b/o/v2/k"]
    );
    // Once the live version is old too, the others of its key go.
    std::fs::File::options()
        .write(true)
        .open(root.join("a.b/o/v1/k"))
        .unwrap()
        .set_modified(SystemTime::now() - 2 * hour)
        .unwrap();
    let pass = collector.pass().await.unwrap();
    assert_eq!((pass.live, pass.deleted), (1, 2));
    let stats = collector.stats();
    assert_eq!(stats.deleted.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert!(
        blobs
            .head(&BlobPath::parse("a.b/o/v1/k").unwrap())
            .await
            .unwrap()
            .is_some()
    );
}
