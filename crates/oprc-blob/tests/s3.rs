//! The S3 backend against a real S3 server: `s3s-fs`, which checks SigV4
//! fully (tampered, expired and wrong-method presigned URLs get 403). Each
//! test starts its own server on a free port over a temporary directory.
//!
//! Without the server's binary the tests fail (they never skip); see
//! `oprc_blob::conformance::s3s`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use oprc_blob::conformance::s3s::{BUCKET, KEY, S3sServer as Server, SECRET};
use oprc_blob::{BlobErrorKind, BlobPath, BlobStore, ByteRange, S3Store, Upload};

async fn store(server: &Server) -> S3Store {
    S3Store::connect(server.options(BUCKET, KEY, SECRET))
        .await
        .unwrap()
}

/// Names in the server's root that belong to multipart uploads.
fn upload_parts(server: &Server) -> Vec<String> {
    std::fs::read_dir(server.root.path())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.starts_with(".upload"))
        .collect()
}

fn path(s: &str) -> BlobPath {
    BlobPath::parse(s).unwrap()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn upload(bytes: &[u8], chunk: usize) -> Upload {
    let parts: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(parts).boxed()
}

async fn read(store: &S3Store, p: &BlobPath, range: Option<ByteRange>) -> Vec<u8> {
    let mut body = store.get(p, range).await.unwrap().expect("stored").body;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_passes_the_conformance_suite() {
    let server = Server::start();
    let store = store(&server).await;
    assert_eq!(store.name(), "s3");
    oprc_blob::conformance::run(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_puts_go_in_parts_and_a_broken_one_leaves_nothing() {
    let server = Server::start();
    let store = store(&server).await;
    let p = path("big.file/o1/v1/data");
    let part = S3Store::PART_SIZE;
    let bytes = pattern(2 * part + 12_345);
    let meta = store.put(&p, upload(&bytes, 1_000_003)).await.unwrap();
    assert_eq!(meta.size, bytes.len() as u64);
    let etag = meta.etag.expect("an entity tag");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(read(&store, &p, None).await, bytes);
    let across = ByteRange::Bounded(part as u64 - 10, part as u64 + 9);
    assert_eq!(
        read(&store, &p, Some(across)).await,
        &bytes[part - 10..part + 10]
    );

    // Broken after more than one part's worth: aborted, the old version stays.
    let broken: Upload = futures_util::stream::iter(vec![
        Ok(Bytes::from(pattern(part + 1))),
        Ok(Bytes::from(pattern(part + 1))),
        Err(std::io::Error::other("the client went away")),
    ])
    .boxed();
    let err = store.put(&p, broken).await.expect_err("a broken put fails");
    assert_eq!(err.kind, BlobErrorKind::Invalid, "{err}");
    assert_eq!(read(&store, &p, None).await, bytes, "the old version stays");
    let q = path("big.file/o1/v2/data");
    let broken: Upload = futures_util::stream::iter(vec![
        Ok(Bytes::from(pattern(part + 1))),
        Err(std::io::Error::other("gone")),
    ])
    .boxed();
    assert!(store.put(&q, broken).await.is_err());
    assert_eq!(store.head(&q).await.unwrap(), None, "nothing readable");
    assert_eq!(
        upload_parts(&server),
        Vec::<String>::new(),
        "uploads are aborted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_skips_keys_that_are_not_file_paths() {
    let server = Server::start();
    let store = store(&server).await;
    // Written by something else, straight into the bucket's directory.
    let bucket = server.root.path().join(BUCKET);
    for foreign in [
        "a-foreign/x/y/z/too-deep",
        "a-foreign/notes.txt",
        "zz-foreign",
    ] {
        let file = bucket.join(foreign);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, b"not ours").unwrap();
    }
    let ours = [
        path("b.cls/o1/v1/k"),
        path("b.cls/o2/v1/k"),
        path("c.cls/o1/v1/k"),
    ];
    for p in &ours {
        store.put(p, upload(b"x", 1)).await.unwrap();
    }
    // Pages of one: the foreign keys before and between are stepped over.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list(after.as_ref(), 1).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.path.clone());
        seen.extend(page.into_iter().map(|l| l.path));
    }
    assert_eq!(seen, ours);
    assert!(store.list(None, 0).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_says_what_is_wrong() {
    let server = Server::start();

    let err = S3Store::connect(server.options("no-such-bucket", KEY, SECRET))
        .await
        .expect_err("a missing bucket");
    assert_eq!(err.kind, BlobErrorKind::Invalid, "{err}");
    assert!(
        err.message
            .contains("bucket `no-such-bucket` does not exist"),
        "{err}"
    );

    for (key, secret) in [(KEY, "wrong-secret"), ("wrong-key", SECRET)] {
        let err = S3Store::connect(server.options(BUCKET, key, secret))
            .await
            .expect_err("wrong credentials");
        assert_eq!(err.kind, BlobErrorKind::Denied, "{err}");
        assert!(err.message.contains("refused access key"), "{err}");
        assert!(!err.message.contains(secret), "no secret in errors: {err}");
    }

    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut options = server.options(BUCKET, KEY, SECRET);
    options.endpoint = Some(format!("http://{free}"));
    let started = Instant::now();
    let err = S3Store::connect(options).await.expect_err("no server");
    assert_eq!(err.kind, BlobErrorKind::Unavailable, "{err}");
    assert!(err.message.contains("cannot reach the s3 server"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "gives up fast");

    let mut options = server.options(BUCKET, KEY, SECRET);
    options.bucket = "Bad_Bucket".into();
    let err = S3Store::connect(options).await.expect_err("a bad name");
    assert_eq!(err.kind, BlobErrorKind::Invalid, "{err}");
}
