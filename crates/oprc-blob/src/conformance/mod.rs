//! The suite every [`BlobStore`] passes, run by each backend's tests
//! against a real server: `run(store)`. Every test writes under a fresh
//! object id, so runs against one shared bucket do not meet.
//!
//! URLs are fetched with a real HTTP client, so the backend's URL checks
//! (the adapter's HMAC, or the S3 server's SigV4) are what is tested.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use oprc_core::{ClassKey, ObjectId};

use crate::{BlobPath, BlobStore, ByteRange, Method, Upload};

pub mod s3s;

/// Runs every test of the suite.
pub async fn run(store: &dyn BlobStore) {
    round_trip(store).await;
    ranges(store).await;
    missing(store).await;
    interrupted_put(store).await;
    copy_and_delete(store).await;
    listing(store).await;
    presigned_round_trip(store).await;
    refused_urls(store).await;
    expired_urls(store).await;
}

fn fresh(key: &str) -> BlobPath {
    let oid = ObjectId::new(format!("c{}", uuid::Uuid::now_v7().simple())).unwrap();
    BlobPath::new(ClassKey::new("conformance.file").unwrap(), oid, "v1", key).unwrap()
}

fn sibling(p: &BlobPath, version: &str, key: &str) -> BlobPath {
    BlobPath::new(p.cls.clone(), p.oid.clone(), version, key).unwrap()
}

/// `bytes` as an upload of `chunk`-sized pieces.
fn upload(bytes: &[u8], chunk: usize) -> Upload {
    let parts: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(parts).boxed()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn read_all(store: &dyn BlobStore, p: &BlobPath, range: Option<ByteRange>) -> Vec<u8> {
    let d = store.get(p, range).await.unwrap().expect("stored");
    let expected = d.len();
    let mut out = Vec::new();
    let mut body = d.body;
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(
        out.len() as u64,
        expected,
        "a download yields the length it states"
    );
    out
}

async fn round_trip(store: &dyn BlobStore) {
    let p = fresh("data");
    let bytes = pattern(3 * 1024 * 1024 + 17);
    let meta = store.put(&p, upload(&bytes, 100_000)).await.unwrap();
    assert_eq!(meta.size, bytes.len() as u64);
    let head = store.head(&p).await.unwrap().expect("head after put");
    assert_eq!(head.size, bytes.len() as u64);
    assert!(head.etag.is_some(), "an entity tag");
    assert!(head.modified_ms > 0);
    assert_eq!(read_all(store, &p, None).await, bytes);
    // A put replaces the whole version.
    store.put(&p, upload(b"short", 2)).await.unwrap();
    assert_eq!(read_all(store, &p, None).await, b"short");
    // An empty file is a file.
    let empty = sibling(&p, "v1", "empty");
    store.put(&empty, upload(b"", 1)).await.unwrap();
    assert_eq!(store.head(&empty).await.unwrap().map(|m| m.size), Some(0));
    assert!(read_all(store, &empty, None).await.is_empty());
}

async fn ranges(store: &dyn BlobStore) {
    let p = fresh("data");
    let bytes = pattern(10_000);
    store.put(&p, upload(&bytes, 4096)).await.unwrap();
    let cases = [
        (ByteRange::Bounded(0, 9), 0..10),
        (ByteRange::Bounded(9_990, 20_000), 9_990..10_000),
        (ByteRange::From(5_000), 5_000..10_000),
        (ByteRange::Suffix(7), 9_993..10_000),
    ];
    for (range, want) in cases {
        let d = store.get(&p, Some(range)).await.unwrap().unwrap();
        assert_eq!(
            d.range,
            Some((want.start as u64, want.end as u64 - 1)),
            "{range:?}"
        );
        drop(d);
        assert_eq!(
            read_all(store, &p, Some(range)).await,
            &bytes[want],
            "{range:?}"
        );
    }
    let err = store
        .get(&p, Some(ByteRange::From(10_000)))
        .await
        .err()
        .expect("a range past the end is refused");
    assert_eq!(err.kind, crate::BlobErrorKind::Invalid, "{err}");
}

async fn missing(store: &dyn BlobStore) {
    let p = fresh("nothing");
    assert_eq!(store.head(&p).await.unwrap(), None);
    assert!(store.get(&p, None).await.unwrap().is_none());
    store
        .delete(&p)
        .await
        .expect("deleting a missing version is fine");
}

async fn interrupted_put(store: &dyn BlobStore) {
    let p = fresh("data");
    store.put(&p, upload(b"before", 3)).await.unwrap();
    let broken: Upload = futures_util::stream::iter(vec![
        Ok(Bytes::from(pattern(256 * 1024))),
        Err(std::io::Error::other("the client went away")),
    ])
    .boxed();
    assert!(
        store.put(&p, broken).await.is_err(),
        "an interrupted put fails"
    );
    assert_eq!(
        read_all(store, &p, None).await,
        b"before",
        "an interrupted put leaves what was there"
    );
    let q = sibling(&p, "v2", "data");
    let broken: Upload =
        futures_util::stream::iter(vec![Err(std::io::Error::other("gone"))]).boxed();
    assert!(store.put(&q, broken).await.is_err());
    assert_eq!(store.head(&q).await.unwrap(), None, "nothing readable");
}

async fn copy_and_delete(store: &dyn BlobStore) {
    let p = fresh("data");
    store.put(&p, upload(b"content", 3)).await.unwrap();
    let other = BlobPath::new(
        p.cls.clone(),
        ObjectId::new(format!("{}x", p.oid)).unwrap(),
        "v9",
        "data",
    )
    .unwrap();
    store.copy(&p, &other).await.unwrap();
    assert_eq!(read_all(store, &other, None).await, b"content");
    store.delete(&p).await.unwrap();
    assert_eq!(store.head(&p).await.unwrap(), None);
    assert_eq!(
        read_all(store, &other, None).await,
        b"content",
        "a copy outlives its source"
    );
    store.delete(&other).await.unwrap();
}

async fn listing(store: &dyn BlobStore) {
    let base = fresh("a");
    let mut paths: Vec<BlobPath> = ["v1/a", "v1/b", "v2/a", "v3/c", "v3/d"]
        .iter()
        .map(|s| {
            let (v, k) = s.split_once('/').unwrap();
            sibling(&base, v, k)
        })
        .collect();
    for p in &paths {
        store.put(p, upload(b"x", 1)).await.unwrap();
    }
    paths.sort_by_key(ToString::to_string);
    // From just before this object, in pages of two.
    let start = BlobPath::new(
        base.cls.clone(),
        ObjectId::new(&base.oid.as_str()[..base.oid.as_str().len() - 1]).unwrap(),
        "z",
        "z",
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut after = Some(start);
    while seen.len() < paths.len() {
        let page = store.list(after.as_ref(), 2).await.unwrap();
        assert!(!page.is_empty() && page.len() <= 2, "pages of at most two");
        for l in &page {
            if l.path.oid == base.oid {
                assert_eq!(l.size, 1);
                assert!(l.modified_ms > 0);
                seen.push(l.path.clone());
            }
        }
        after = page.last().map(|l| l.path.clone());
        if page.iter().any(|l| l.path.oid > base.oid) {
            break;
        }
    }
    assert_eq!(seen, paths, "every version, in path order");
    for p in &paths {
        store.delete(p).await.unwrap();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn presigned_round_trip(store: &dyn BlobStore) {
    let p = fresh("data");
    let ttl = Duration::from_secs(300);
    let bytes = pattern(1024 * 1024 + 3);
    let put = store.presign(Method::Put, &p, ttl).unwrap();
    let r = client().put(&put).body(bytes.clone()).send().await.unwrap();
    assert!(r.status().is_success(), "PUT {put}: {}", r.status());
    let get = store.presign(Method::Get, &p, ttl).unwrap();
    let r = client().get(&get).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {get}");
    assert_eq!(
        r.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(bytes.len().to_string().as_str())
    );
    assert!(r.headers().contains_key("etag"), "an ETag");
    assert_eq!(r.bytes().await.unwrap(), bytes);
    let r = client()
        .get(&get)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206, "a range request");
    assert_eq!(r.bytes().await.unwrap(), &bytes[10..20]);
    assert_eq!(
        store.head(&p).await.unwrap().unwrap().size,
        bytes.len() as u64
    );
}

/// The URL with one character of its signature changed.
fn tampered(url: &str) -> String {
    let at = ["X-Amz-Signature=", "sig="]
        .iter()
        .find_map(|m| url.find(m).map(|i| i + m.len()))
        .expect("a signature parameter");
    let mut bytes = url.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).unwrap()
}

async fn refused_urls(store: &dyn BlobStore) {
    let p = fresh("data");
    let ttl = Duration::from_secs(300);
    store.put(&p, upload(b"secret", 3)).await.unwrap();
    let get = store.presign(Method::Get, &p, ttl).unwrap();
    let put = store.presign(Method::Put, &p, ttl).unwrap();
    let other_key = get.replacen("/v1/data", "/v1/other", 1);
    let other_object = get.replacen(p.oid.as_str(), &format!("{}x", p.oid), 1);
    assert_ne!(other_key, get);
    for (what, method, url) in [
        ("GET with a PUT URL", reqwest::Method::GET, put.clone()),
        ("PUT with a GET URL", reqwest::Method::PUT, get.clone()),
        ("a tampered GET URL", reqwest::Method::GET, tampered(&get)),
        ("a tampered PUT URL", reqwest::Method::PUT, tampered(&put)),
        ("another key", reqwest::Method::GET, other_key),
        ("another object", reqwest::Method::GET, other_object),
    ] {
        let r = client()
            .request(method, &url)
            .body("overwritten")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{what} is refused: {url}");
    }
    let unsigned = get.split_once('?').unwrap().0.to_owned();
    let r = client().get(&unsigned).send().await.unwrap();
    assert!(
        r.status() == 403 || r.status() == 400,
        "an unsigned URL is refused: {}",
        r.status()
    );
    assert_eq!(
        read_all(store, &p, None).await,
        b"secret",
        "nothing was overwritten"
    );
}

async fn expired_urls(store: &dyn BlobStore) {
    let p = fresh("data");
    store.put(&p, upload(b"x", 1)).await.unwrap();
    let get = store
        .presign(Method::Get, &p, Duration::from_secs(1))
        .unwrap();
    let put = store
        .presign(Method::Put, &p, Duration::from_secs(1))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let r = client().get(&get).send().await.unwrap();
    assert_eq!(r.status(), 403, "an expired GET URL");
    let r = client().put(&put).body("y").send().await.unwrap();
    assert_eq!(r.status(), 403, "an expired PUT URL");
    assert_eq!(read_all(store, &p, None).await, b"x");
}
