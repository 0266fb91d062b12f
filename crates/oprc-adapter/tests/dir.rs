//! The embedded backend passes the blob store conformance suite with its
//! URLs served by the adapter over real HTTP, as a node serves them; the
//! same suite runs against the relay mode over the embedded store. The
//! allocation endpoint answers PUT URLs for exactly the keys it names.

use std::sync::Arc;
use std::time::Duration;

use oprc_adapter::{Adapter, router};
use oprc_blob::{BlobStore, DirStore, Relayed, Signer};
use oprc_core::{ClassKey, ObjectId};

/// An adapter over `store` on a free port; the signer's base is that port.
async fn serve(make: impl FnOnce(Signer) -> Arc<dyn BlobStore>) -> (Arc<dyn BlobStore>, Signer) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let signer = Signer::new(b"adapter-test-key".to_vec(), format!("http://{addr}"));
    let store = make(signer.clone());
    let adapter = Adapter {
        store: store.clone(),
        signer: signer.clone(),
        url_ttl: Duration::from_secs(60),
        max_file_bytes: 8 * 1024 * 1024,
    };
    tokio::spawn(async move { axum::serve(listener, router(adapter)).await.unwrap() });
    (store, signer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let (store, _) = serve(|s| Arc::new(DirStore::open(root, s).unwrap())).await;
    assert_eq!(store.name(), "dir");
    oprc_blob::conformance::run(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let (store, _) = serve(|s| {
        // The inner store signs with another key: only the relay's URLs work.
        let inner = DirStore::open(root, Signer::new(b"inner".to_vec(), "http://unused")).unwrap();
        Arc::new(Relayed::new(inner, s))
    })
    .await;
    oprc_blob::conformance::run(store.as_ref()).await;
}

#[tokio::test]
async fn uploads_above_the_limit_are_refused_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let (store, _) = serve(|s| Arc::new(DirStore::open(root, s).unwrap())).await;
    let path = oprc_blob::BlobPath::parse("a.b/o/v/k").unwrap();
    let url = store
        .presign(oprc_blob::Method::Put, &path, Duration::from_secs(60))
        .unwrap();
    let client = reqwest::Client::new();
    let big = vec![7u8; 8 * 1024 * 1024 + 1];
    let r = client.put(&url).body(big.clone()).send().await.unwrap();
    assert_eq!(r.status(), 413);
    // Without a declared length, the limit holds as the body streams.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(1024 * 1024).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = client.put(&url).body(body).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(store.head(&path).await.unwrap(), None);
}

#[tokio::test]
async fn allocations_answer_urls_for_the_keys_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let (store, signer) = serve(|s| Arc::new(DirStore::open(root, s).unwrap())).await;
    let cls = ClassKey::new("a.b").unwrap();
    let oid = ObjectId::new("o").unwrap();
    let keys = vec!["x".to_owned(), "y".to_owned()];
    let url = signer.alloc_url(&cls, &oid, "v1", &keys, Duration::from_secs(60));
    let client = reqwest::Client::new();
    let all: serde_json::Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(all.as_object().unwrap().len(), 2, "{all}");
    let put = all["y"].as_str().unwrap();
    assert!(put.contains("/blobs/a.b/o/v1/y?m=PUT"), "{put}");
    assert_eq!(
        client.put(put).body("yy").send().await.unwrap().status(),
        200
    );
    let path = oprc_blob::BlobPath::parse("a.b/o/v1/y").unwrap();
    assert_eq!(store.head(&path).await.unwrap().unwrap().size, 2);
    let some: serde_json::Value = client
        .post(&url)
        .json(&["x"])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(some.as_object().unwrap().len(), 1, "{some}");
    let r = client.post(&url).json(&["z"]).send().await.unwrap();
    assert_eq!(r.status(), 400, "a key the allocation does not name");
    let tampered = url.replace("keys=x,y", "keys=x,y,z");
    let r = client.get(&tampered).send().await.unwrap();
    assert_eq!(r.status(), 403);
}
