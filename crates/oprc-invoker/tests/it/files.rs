//! Files in calls when the blob store fails: an async call whose uploads
//! cannot be checked is run again once the store heals, and applies once
//! (G3 with G5); a waiting caller is told to retry and nothing changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use oprc_blob::{
    BlobError, BlobMeta, BlobPath, BlobStore, ByteRange, DirStore, Download, Listed, Method,
    Signer, Upload,
};
use oprc_core::{FunctionKey, InvocationStatus, ObjectId, Task};
use oprc_invoker::{CallError, FunctionEngine, Invoker, LocalRouter, Metrics, Options, Parts};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{catalog, cls, request};

const PACKAGE: &str = r#"
name: t
classes:
  - name: c
    stateSpec: {keySpecs: [{name: text}]}
    functions:
      - {name: write, function: .write}
functions:
  - {name: write, provision: {http: {url: "http://fake/write"}}}
"#;

/// A directory store whose `head` fails while `down` is set.
struct Flaky {
    inner: DirStore,
    down: AtomicBool,
    heads: AtomicU64,
}

#[async_trait]
impl BlobStore for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn presign(&self, m: Method, p: &BlobPath, ttl: Duration) -> Result<String, BlobError> {
        self.inner.presign(m, p, ttl)
    }
    async fn head(&self, p: &BlobPath) -> Result<Option<BlobMeta>, BlobError> {
        self.heads.fetch_add(1, Ordering::Relaxed);
        if self.down.load(Ordering::Relaxed) {
            return Err(BlobError::unavailable("the blob store is down (test)"));
        }
        self.inner.head(p).await
    }
    async fn get(&self, p: &BlobPath, r: Option<ByteRange>) -> Result<Option<Download>, BlobError> {
        self.inner.get(p, r).await
    }
    async fn put(&self, p: &BlobPath, body: Upload) -> Result<BlobMeta, BlobError> {
        self.inner.put(p, body).await
    }
    async fn copy(&self, from: &BlobPath, to: &BlobPath) -> Result<(), BlobError> {
        self.inner.copy(from, to).await
    }
    async fn delete(&self, p: &BlobPath) -> Result<(), BlobError> {
        self.inner.delete(p).await
    }
    async fn list(&self, after: Option<&BlobPath>, limit: usize) -> Result<Vec<Listed>, BlobError> {
        self.inner.list(after, limit).await
    }
}

/// Writes the call's `text` (the invocation id) through its PUT URL's
/// path, as a function would, and reports it; counts its runs.
struct Writer {
    blobs: Arc<Flaky>,
    runs: AtomicU64,
}

#[async_trait]
impl FunctionEngine for Writer {
    async fn invoke(
        &self,
        _: &FunctionKey,
        _: Option<u64>,
        task: Bytes,
        _: Duration,
        _: &http::HeaderMap,
    ) -> Result<Bytes, CallError> {
        self.runs.fetch_add(1, Ordering::Relaxed);
        let task: Task = serde_json::from_slice(&task).unwrap();
        let url = &task.main_put_keys["text"];
        let path = url
            .split_once("/blobs/")
            .unwrap()
            .1
            .split_once('?')
            .unwrap()
            .0;
        let body = futures_util::stream::iter(vec![Ok(Bytes::from(task.id.clone()))]).boxed();
        self.blobs
            .inner
            .put(&BlobPath::parse(path).unwrap(), body)
            .await
            .unwrap();
        let answer = json!({"success": true, "main": {"updatedKeys": ["text"]}});
        Ok(Bytes::from(answer.to_string()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_checks_ride_out_a_blob_store_outage() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new(b"k".to_vec(), "http://127.0.0.1:9");
    let blobs = Arc::new(Flaky {
        inner: DirStore::open(dir.path().join("files"), signer.clone()).unwrap(),
        down: AtomicBool::new(false),
        heads: AtomicU64::new(0),
    });
    let engine = Arc::new(Writer {
        blobs: blobs.clone(),
        runs: AtomicU64::new(0),
    });
    let store =
        oprc_store_redb::Store::open(oprc_store_redb::Options::new(dir.path().join("db.redb")))
            .unwrap();
    let invoker = Invoker::new(
        Options::default(),
        Parts {
            catalog: Arc::new(ArcSwap::from_pointee(catalog(PACKAGE))),
            state: Arc::new(store.clone()),
            log: Arc::new(store.clone()),
            engine: engine.clone(),
            router: Arc::new(LocalRouter),
            files: oprc_invoker::Files {
                store: blobs.clone(),
                signer,
                url_ttl: Duration::from_secs(60),
                max_upload_age: Duration::from_secs(600),
            },
            calls: None,
            metrics: Metrics::unregistered(),
        },
    );
    let handle = invoker.handle();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(invoker.run(cancel.clone()));
    let mut new = request(None, "new");
    new.body = Some(json!({"id": "o"}));
    assert_eq!(
        handle.invoke(new).await.unwrap().status,
        InvocationStatus::Succeeded
    );

    blobs.down.store(true, Ordering::Relaxed);
    // A waiting caller gets a failure it can retry; nothing is switched.
    let resp = handle.invoke(request(Some("o"), "write")).await.unwrap();
    assert_eq!(resp.status, InvocationStatus::Failed, "{resp:?}");
    assert_eq!(resp.error.unwrap().code, "storage_unavailable");
    let oid = ObjectId::new("o").unwrap();
    assert!(
        handle
            .object(&cls(), &oid)
            .await
            .unwrap()
            .meta
            .ver_ids
            .is_empty()
    );
    // An async call waits the outage out.
    let queued = handle.submit(request(Some("o"), "write")).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while blobs.heads.load(Ordering::Relaxed) < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the async call is retried"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    blobs.down.store(false, Ordering::Relaxed);
    let resp = loop {
        let r = handle.invocation(&queued.inv_id).await.unwrap();
        if r.status.is_terminal() {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the async call ends"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(resp.status, InvocationStatus::Succeeded, "{resp:?}");
    let obj = handle.object(&cls(), &oid).await.unwrap();
    assert_eq!(
        obj.meta.ver_ids["text"],
        queued.inv_id.as_str(),
        "switched to its version"
    );
    assert_eq!(obj.meta.revision, 2, "applied once");
    cancel.cancel();
    task.await.unwrap();
}
