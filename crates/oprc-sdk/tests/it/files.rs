//! File helpers against a local server that plays the presigned URLs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use oprc_sdk::{App, Context, Task};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Default)]
struct Blobs {
    files: HashMap<String, Vec<u8>>,
    /// Headers of every PUT, by name.
    puts: HashMap<String, HeaderMap>,
}

type Shared = Arc<Mutex<Blobs>>;

struct BlobServer {
    base: String,
    blobs: Shared,
}

impl BlobServer {
    async fn start() -> Self {
        let blobs = Shared::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/blobs/{name}", get(blob_get).put(blob_put))
            .with_state(blobs.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, blobs }
    }

    fn url(&self, name: &str) -> String {
        format!("{}/blobs/{name}?sig=s3cret", self.base)
    }

    fn holds(&self, name: &str, bytes: &[u8]) {
        let mut b = self.blobs.lock().unwrap();
        b.files.insert(name.into(), bytes.to_vec());
    }

    fn file(&self, name: &str) -> Option<Vec<u8>> {
        self.blobs.lock().unwrap().files.get(name).cloned()
    }

    fn put_headers(&self, name: &str) -> HeaderMap {
        self.blobs.lock().unwrap().puts[name].clone()
    }

    /// A context whose main object has these GET and PUT URLs (key -> blob name).
    fn ctx(&self, get: &[(&str, &str)], put: &[(&str, &str)]) -> Context {
        let urls = |m: &[(&str, &str)]| -> serde_json::Map<String, Value> {
            m.iter()
                .map(|(k, name)| (k.to_string(), json!(self.url(name))))
                .collect()
        };
        let task: Task = serde_json::from_value(json!({
            "id": "i", "funcKey": "p.f", "fbName": "f", "ts": 1,
            "main": {"_meta": {"id": "o", "cls": "p.c", "revision": 2}, "data": {}},
            "mainGetKeys": urls(get), "mainPutKeys": urls(put),
        }))
        .unwrap();
        Context::new(task)
    }
}

async fn blob_get(State(blobs): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    match blobs.lock().unwrap().files.get(&name) {
        Some(b) => b.clone().into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "<Error><Code>NoSuchKey</Code></Error>",
        )
            .into_response(),
    }
}

async fn blob_put(
    State(blobs): State<Shared>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    blobs.lock().unwrap().puts.insert(name.clone(), headers);
    if name == "denied" {
        let xml = "<?xml version=\"1.0\"?>\n<Error><Code>SignatureDoesNotMatch</Code></Error>";
        return (StatusCode::FORBIDDEN, xml).into_response();
    }
    let bytes = to_bytes(body, usize::MAX).await.unwrap();
    blobs.lock().unwrap().files.insert(name, bytes.to_vec());
    StatusCode::OK.into_response()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 4096) as u8).collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn open_file_streams_and_read_file_reads_whole() {
    let blobs = BlobServer::start().await;
    let big = pattern(3 << 20);
    blobs.holds("big", &big);
    blobs.holds("avatar", b"face");
    let ctx = blobs.ctx(&[("video", "big"), ("owner.avatar", "avatar")], &[]);
    let main = ctx.main().unwrap();
    assert_eq!(
        main.file_keys().collect::<Vec<_>>(),
        ["owner.avatar", "video"]
    );
    let mut stream = main.open_file("video").await.unwrap();
    assert_eq!(stream.content_length(), Some(big.len() as u64));
    let (mut got, mut chunks) = (Vec::new(), 0);
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.unwrap());
        chunks += 1;
    }
    assert_eq!(got, big);
    assert!(chunks > 1, "streamed in chunks");
    assert_eq!(&main.read_file("owner.avatar").await.unwrap()[..], b"face");
    // Reading changes nothing.
    let completion = serde_json::to_value(ctx.into_completion(None)).unwrap();
    assert_eq!(completion, json!({"id": "i", "success": true}));
}

#[tokio::test]
async fn keys_without_urls_and_error_answers_fail_clearly() {
    let blobs = BlobServer::start().await;
    let mut ctx = blobs.ctx(&[("doc", "gone")], &[("img", "denied")]);
    let main = ctx.main().unwrap();
    assert_eq!(
        main.read_file("video").await.unwrap_err().message(),
        "no download URL for file key \"video\" of object o (no version yet, or not accessible \
         to this function); readable keys: doc"
    );
    assert_eq!(
        main.read_file("doc").await.unwrap_err().message(),
        format!(
            "download of file \"doc\": {}/blobs/gone answered HTTP 404 Not Found: \
             <Error><Code>NoSuchKey</Code></Error>",
            blobs.base
        )
    );
    let main = ctx.main_mut().unwrap();
    assert_eq!(
        main.write_file("video", "x", 1)
            .await
            .unwrap_err()
            .message(),
        "no upload URL for file key \"video\" of object o; writable keys: img"
    );
    let e = main.write_file("img", "bytes", 5).await.unwrap_err();
    assert_eq!(
        e.message(),
        format!(
            "upload of file \"img\": {}/blobs/denied answered HTTP 403 Forbidden: \
             <?xml version=\"1.0\"?> <Error><Code>SignatureDoesNotMatch</Code></Error>",
            blobs.base
        )
    );
    assert!(
        main.updated_keys().is_empty(),
        "a failed PUT is not recorded"
    );
}

#[tokio::test]
async fn writes_send_content_length_and_record_the_key() {
    let blobs = BlobServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.bin");
    std::fs::write(&path, pattern(3 << 20)).unwrap();
    let mut ctx = blobs.ctx(&[], &[("a", "w-bytes"), ("b", "w-path")]);
    let main = ctx.main_mut().unwrap();
    main.write_file("a", &b"png bytes"[..], 9).await.unwrap();
    assert_eq!(main.upload_file("b", &path).await.unwrap(), 3 << 20);
    assert_eq!(blobs.file("w-bytes").unwrap(), b"png bytes");
    assert_eq!(blobs.file("w-path").unwrap(), pattern(3 << 20));
    for (name, len) in [("w-bytes", "9"), ("w-path", "3145728")] {
        let h = blobs.put_headers(name);
        assert_eq!(h[header::CONTENT_LENGTH], len);
        assert!(h.get(header::TRANSFER_ENCODING).is_none());
        assert!(h.get(header::AUTHORIZATION).is_none());
    }
    let completion = serde_json::to_value(ctx.into_completion(None)).unwrap();
    assert_eq!(
        completion,
        json!({"id": "i", "success": true, "main": {"updatedKeys": ["a", "b"]}})
    );
}

#[tokio::test]
async fn download_file_replaces_the_file_whole() {
    let blobs = BlobServer::start().await;
    blobs.holds("doc", &pattern(200_000));
    let ctx = blobs.ctx(&[("doc", "doc")], &[]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("doc.bin");
    std::fs::write(&dest, b"old").unwrap();
    let n = ctx
        .main()
        .unwrap()
        .download_file("doc", &dest)
        .await
        .unwrap();
    assert_eq!(n, 200_000);
    assert_eq!(std::fs::read(&dest).unwrap(), pattern(200_000));
    assert_eq!(names_in(dir.path()), ["doc.bin"]);
}

#[tokio::test]
async fn a_download_that_breaks_off_leaves_no_file() {
    // Announces 100000 bytes, sends 1000, hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/short?sig=s3cret", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n";
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(&[b'x'; 1000]).await.unwrap();
    });
    let task: Task = serde_json::from_value(json!({
        "id": "i", "funcKey": "p.f", "fbName": "f", "ts": 1,
        "main": {"_meta": {"id": "o", "cls": "p.c", "revision": 2}, "data": {}},
        "mainGetKeys": {"doc": url},
    }))
    .unwrap();
    let ctx = Context::new(task);
    let dir = tempfile::tempdir().unwrap();
    let e = ctx
        .main()
        .unwrap()
        .download_file("doc", dir.path().join("doc.bin"))
        .await
        .unwrap_err();
    assert!(
        e.message()
            .starts_with("download of file \"doc\" from http://")
            && e.message()
                .contains("/short broke off after 1000 of 100000 bytes"),
        "{}",
        e.message()
    );
    assert!(!e.message().contains("s3cret"), "{}", e.message());
    assert!(names_in(dir.path()).is_empty());
}

#[tokio::test]
async fn an_async_handler_reads_and_writes_files() {
    let blobs = BlobServer::start().await;
    blobs.holds("src", b"hello");
    let app = App::new().async_function("upper", |mut ctx: Context| async move {
        let text = ctx.main()?.read_file("in").await?;
        let upper = text.to_ascii_uppercase();
        let len = upper.len() as u64;
        ctx.main_mut()?.write_file("out", upper, len).await?;
        Ok(ctx.reply(None))
    });
    let task: Task = serde_json::from_value(json!({
        "id": "t", "funcKey": "p.upper", "fbName": "upper", "ts": 0,
        "main": {"_meta": {"id": "o", "cls": "p.c", "revision": 1}, "data": {}},
        "mainGetKeys": {"in": blobs.url("src")},
        "mainPutKeys": {"out": blobs.url("w-upper")},
    }))
    .unwrap();
    let completion = serde_json::to_value(app.call(task).await).unwrap();
    assert_eq!(
        completion,
        json!({"id": "t", "success": true, "main": {"updatedKeys": ["out"]}})
    );
    assert_eq!(blobs.file("w-upper").unwrap(), b"HELLO");
}
