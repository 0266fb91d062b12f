//! The S3 backend against a real S3 server: `s3s-fs`, which checks SigV4
//! fully (tampered, expired and wrong-method presigned URLs get 403). Each
//! test starts its own server on a free port over a temporary directory.
//!
//! The binary is found in `OPRC_S3S_FS`, on `PATH`, in `$CARGO_HOME/bin`
//! or in `~/.cargo/bin`; without it the tests fail (they never skip):
//! `scripts/install-s3s-fs.sh` installs it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use oprc_blob::{BlobErrorKind, BlobPath, BlobStore, ByteRange, S3Options, S3Store, Upload};

const KEY: &str = "oprc-test-key";
const SECRET: &str = "oprc-test-secret";
const BUCKET: &str = "oprc-files";

fn s3s_fs_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("OPRC_S3S_FS") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "OPRC_S3S_FS={} is not a file",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("s3s-fs"));
    let cargo_home = std::env::var_os("CARGO_HOME").map(PathBuf::from);
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo"));
    let in_cargo = cargo_home
        .into_iter()
        .chain(home)
        .map(|c| c.join("bin/s3s-fs"));
    on_path
        .chain(in_cargo)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "s3s-fs (the S3 server these tests run against) is not installed: run \
             scripts/install-s3s-fs.sh (cargo install s3s-fs@0.14.1 --features binary \
             --locked), or point OPRC_S3S_FS at the binary"
            )
        })
}

/// A running `s3s-fs`, killed when dropped.
struct Server {
    child: Child,
    root: tempfile::TempDir,
    endpoint: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts a server with the bucket [`BUCKET`] and waits until it
    /// accepts connections.
    async fn start() -> Self {
        let binary = s3s_fs_binary();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let log = root.path().join("server.log");
        // A port that was free a moment ago can be taken before the server
        // binds it: then it exits, and another port is tried.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(&binary)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", KEY, "--secret-key", SECRET])
                .arg(root.path())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return Self {
                        child,
                        root,
                        endpoint: format!("http://127.0.0.1:{port}"),
                    };
                }
                assert!(
                    Instant::now() < deadline,
                    "s3s-fs did not listen on {port} within 20 s: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!(
            "s3s-fs exited at start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn options(&self, bucket: &str, key: &str, secret: &str) -> S3Options {
        let mut o = S3Options::parse(&format!("s3://{bucket}?endpoint={}", self.endpoint)).unwrap();
        o.access_key_id = Some(key.into());
        o.secret_access_key = Some(secret.into());
        o
    }

    async fn store(&self) -> S3Store {
        S3Store::connect(self.options(BUCKET, KEY, SECRET))
            .await
            .unwrap()
    }

    /// Names in the server's root that belong to multipart uploads.
    fn upload_parts(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path())
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter(|n| n.starts_with(".upload"))
            .collect()
    }
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
    let server = Server::start().await;
    let store = server.store().await;
    assert_eq!(store.name(), "s3");
    oprc_blob::conformance::run(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_puts_go_in_parts_and_a_broken_one_leaves_nothing() {
    let server = Server::start().await;
    let store = server.store().await;
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
        server.upload_parts(),
        Vec::<String>::new(),
        "uploads are aborted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_skips_keys_that_are_not_file_paths() {
    let server = Server::start().await;
    let store = server.store().await;
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
    let server = Server::start().await;

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
