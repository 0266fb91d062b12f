//! The file commands against a local server that plays the node and the
//! presigned URLs (`/blobs/...`), recording every request it gets.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing;
use reqwest::Url;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::client::{Client, Token};

const TOKEN: &str = "tok";

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Path and query.
    uri: String,
    authorization: Option<String>,
    content_length: Option<String>,
    chunked: bool,
}

#[derive(Default)]
struct Node {
    seen: Vec<Seen>,
    /// Uploaded, not committed yet.
    pending: HashMap<String, Vec<u8>>,
    /// Committed: the object's files.
    files: HashMap<String, Vec<u8>>,
}

type Shared = Arc<Mutex<Node>>;

struct Server {
    url: Url,
    node: Shared,
}

impl Server {
    async fn start() -> Self {
        let node = Shared::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let app = Router::new()
            .route("/api/classes/{cls}/invokes/new", routing::post(new_object))
            .route("/api/classes/{cls}/objects/{oid}", routing::get(get_object))
            .route(
                "/api/classes/{cls}/objects/{oid}/invokes/file",
                routing::post(file_call),
            )
            .route(
                "/api/classes/{cls}/objects/{oid}/files/{key}",
                routing::get(get_file).put(relay_put),
            )
            .route("/blobs/{key}", routing::put(blob_put).get(blob_get))
            .layer(middleware::from_fn_with_state(node.clone(), record))
            .with_state(node.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, node }
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            client: Client::new(self.url.clone(), Token::Given(TOKEN.into())).unwrap(),
            output: None,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.node.lock().unwrap().seen.clone()
    }

    fn file(&self, key: &str) -> Option<Vec<u8>> {
        self.node.lock().unwrap().files.get(key).cloned()
    }
}

async fn record(State(node): State<Shared>, req: Request, next: Next) -> Response {
    let seen = seen_of(&req);
    node.lock().unwrap().seen.push(seen);
    next.run(req).await
}

fn seen_of(req: &Request) -> Seen {
    let h = |name| {
        req.headers()
            .get(name)
            .map(|v: &header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    Seen {
        method: req.method().to_string(),
        uri: req.uri().to_string(),
        authorization: h(header::AUTHORIZATION),
        content_length: h(header::CONTENT_LENGTH),
        chunked: h(header::TRANSFER_ENCODING).is_some(),
    }
}

fn object(node: &Node, cls: &str, oid: &str) -> Value {
    let ver_ids: serde_json::Map<String, Value> = node
        .files
        .keys()
        .map(|k| (k.clone(), json!("v1")))
        .collect();
    json!({"_meta": {"id": oid, "cls": cls, "revision": 1, "verIds": ver_ids}, "data": {}})
}

fn upload_urls(headers: &HeaderMap, keys: &[&str]) -> Value {
    let host = headers[header::HOST].to_str().unwrap();
    let urls: serde_json::Map<String, Value> = keys
        .iter()
        .map(|k| {
            (
                k.to_string(),
                json!(format!("http://{host}/blobs/{k}?sig=s3cret")),
            )
        })
        .collect();
    Value::Object(urls)
}

async fn new_object(
    State(node): State<Shared>,
    UrlPath(cls): UrlPath<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let keys: Vec<&str> = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let oid = body["id"].as_str().unwrap_or("generated");
    let node = node.lock().unwrap();
    axum::Json(json!({
        "invId": "i1", "status": "SUCCEEDED",
        "output": object(&node, &cls, oid),
        "body": {"uploadUrls": upload_urls(&headers, &keys), "version": "v1"},
    }))
    .into_response()
}

async fn get_object(
    State(node): State<Shared>,
    UrlPath((cls, oid)): UrlPath<(String, String)>,
) -> Response {
    axum::Json(object(&node.lock().unwrap(), &cls, &oid)).into_response()
}

fn not_found(key: &str) -> Response {
    let body = json!({"error": {"code": "not_found", "message": format!("no file key `{key}`")}});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

async fn file_call(
    State(node): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let key = q.get("key").map(String::as_str);
    if q.contains_key("put") {
        let key = key.unwrap();
        if key == "nope" {
            return not_found(key);
        }
        let body = json!({"uploadUrls": upload_urls(&headers, &[key]), "version": 7});
        return axum::Json(json!({"invId": "i2", "status": "SUCCEEDED", "body": body}))
            .into_response();
    }
    assert!(q.contains_key("commit"), "{q:?}");
    let mut node = node.lock().unwrap();
    let ready: Vec<String> = node
        .pending
        .keys()
        .filter(|k| key.is_none_or(|want| want == k.as_str()))
        .cloned()
        .collect();
    if ready.is_empty() {
        let body = json!({"invId": "i3", "status": "FAILED",
                          "error": {"code": "bad_request", "message": "no upload found to commit"}});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    for k in &ready {
        let bytes = node.pending.remove(k).unwrap();
        node.files.insert(k.clone(), bytes);
    }
    axum::Json(json!({"invId": "i3", "status": "SUCCEEDED", "body": {"committed": ready}}))
        .into_response()
}

async fn blob_put(
    State(node): State<Shared>,
    UrlPath(key): UrlPath<String>,
    body: Body,
) -> Response {
    if key == "denied" {
        let xml = "<?xml version=\"1.0\"?>\n<Error><Code>SignatureDoesNotMatch</Code></Error>";
        return (StatusCode::FORBIDDEN, xml).into_response();
    }
    let bytes = to_bytes(body, usize::MAX).await.unwrap();
    node.lock().unwrap().pending.insert(key, bytes.to_vec());
    StatusCode::OK.into_response()
}

async fn blob_get(State(node): State<Shared>, UrlPath(key): UrlPath<String>) -> Response {
    match node.lock().unwrap().files.get(&key) {
        Some(b) => b.clone().into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "<Error><Code>NoSuchKey</Code></Error>",
        )
            .into_response(),
    }
}

async fn get_file(
    State(node): State<Shared>,
    UrlPath((_, _, key)): UrlPath<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let node = node.lock().unwrap();
    let Some(bytes) = node.files.get(&key) else {
        return not_found(&key);
    };
    if q.get("_relay").is_some_and(|v| v == "true") {
        return bytes.clone().into_response();
    }
    // Relative, as a node behind a proxy may answer.
    let location = format!("/blobs/{key}?sig=s3cret");
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

async fn relay_put(
    State(node): State<Shared>,
    UrlPath((cls, oid, key)): UrlPath<(String, String, String)>,
    body: Body,
) -> Response {
    let bytes = to_bytes(body, usize::MAX).await.unwrap();
    let mut node = node.lock().unwrap();
    node.files.insert(key, bytes.to_vec());
    axum::Json(object(&node, &cls, &oid)).into_response()
}

/// Bytes that are not all alike, so a shifted or repeated chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 4096) as u8).collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn args(target: &str, key: &str, path: &Path, relay: bool) -> FileArgs {
    FileArgs {
        target: crate::cli::parse_object_target(target).unwrap(),
        key: key.into(),
        path: path.to_owned(),
        relay,
    }
}

fn fail_of(e: &anyhow::Error) -> &Fail {
    e.chain()
        .find_map(|c| c.downcast_ref::<Fail>())
        .unwrap_or_else(|| panic!("not a Fail: {e:#}"))
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
async fn new_uploads_every_file_streamed_then_commits_them() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let big = pattern(20 << 20);
    let files = vec![
        ("video".to_owned(), write(dir.path(), "v.bin", &big)),
        ("thumb".to_owned(), write(dir.path(), "t.png", b"png")),
    ];
    let mut body = Map::new();
    body.insert("id".into(), json!("o1"));
    let object = new_with_files(&server.ctx(), "ex.media", body, files)
        .await
        .unwrap();

    assert_eq!(server.file("video").as_deref(), Some(&big[..]));
    assert_eq!(server.file("thumb").as_deref(), Some(&b"png"[..]));
    // The object printed is the one read after the commit.
    assert_eq!(
        object["_meta"]["verIds"],
        json!({"video": "v1", "thumb": "v1"})
    );
    let seen = server.seen();
    let calls: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {}", s.method, s.uri))
        .collect();
    assert_eq!(
        calls,
        [
            "POST /api/classes/ex.media/invokes/new",
            "PUT /blobs/video?sig=s3cret",
            "PUT /blobs/thumb?sig=s3cret",
            "POST /api/classes/ex.media/objects/o1/invokes/file?commit=v1",
            "GET /api/classes/ex.media/objects/o1",
        ]
    );
    for s in &seen {
        if s.uri.starts_with("/blobs/") {
            assert_eq!(s.authorization, None, "token sent to a file URL: {s:?}");
            assert!(!s.chunked, "{s:?}");
        } else {
            assert_eq!(s.authorization.as_deref(), Some("Bearer tok"), "{s:?}");
        }
    }
    assert_eq!(seen[1].content_length.as_deref(), Some("20971520"));
    assert_eq!(seen[2].content_length.as_deref(), Some("3"));
}

#[tokio::test]
async fn a_missing_local_file_fails_before_anything_is_created() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let files = vec![
        ("a".to_owned(), write(dir.path(), "a", b"a")),
        ("b".to_owned(), dir.path().join("missing.bin")),
    ];
    let e = new_with_files(&server.ctx(), "c", Map::new(), files)
        .await
        .unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.contains("missing.bin") && text.contains("No such file"),
        "{text}"
    );
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn put_allocates_uploads_then_commits_one_key() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "x", &pattern(3 << 20));
    let object = put(&server.ctx(), &args("c/o/1", "img", &path, false))
        .await
        .unwrap();
    assert_eq!(object["_meta"]["verIds"], json!({"img": "v1"}));
    assert_eq!(server.file("img"), Some(pattern(3 << 20)));
    let calls: Vec<String> = server.seen().iter().map(|s| s.uri.clone()).collect();
    assert_eq!(
        calls,
        [
            "/api/classes/c/objects/o%2F1/invokes/file?put=true&key=img",
            "/blobs/img?sig=s3cret",
            "/api/classes/c/objects/o%2F1/invokes/file?commit=7&key=img",
            "/api/classes/c/objects/o%2F1",
        ]
    );
}

#[tokio::test]
async fn relay_put_is_one_streamed_request_to_the_node() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "x", &pattern(100_000));
    let object = put(&server.ctx(), &args("c/o", "img", &path, true))
        .await
        .unwrap();
    assert_eq!(object["_meta"]["verIds"], json!({"img": "v1"}));
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].uri, "/api/classes/c/objects/o/files/img");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer tok"));
    assert_eq!(seen[0].content_length.as_deref(), Some("100000"));
    assert_eq!(server.file("img"), Some(pattern(100_000)));
}

#[tokio::test]
async fn get_follows_the_redirect_without_the_token() {
    let server = Server::start().await;
    let bytes = pattern(5 << 20);
    server
        .node
        .lock()
        .unwrap()
        .files
        .insert("img".into(), bytes.clone());
    let dir = tempfile::tempdir().unwrap();
    // An existing file is replaced; a directory means DIR/KEY.
    let dest = write(dir.path(), "out.bin", b"old");
    get(&server.ctx(), &args("c/o", "img", &dest, false))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
    get(&server.ctx(), &args("c/o", "img", dir.path(), true))
        .await
        .unwrap();
    assert_eq!(std::fs::read(dir.path().join("img")).unwrap(), bytes);
    assert_eq!(names_in(dir.path()), ["img", "out.bin"]);

    let seen = server.seen();
    let calls: Vec<(&str, Option<&str>)> = seen
        .iter()
        .map(|s| (s.uri.as_str(), s.authorization.as_deref()))
        .collect();
    assert_eq!(
        calls,
        [
            ("/api/classes/c/objects/o/files/img", Some("Bearer tok")),
            ("/blobs/img?sig=s3cret", None),
            (
                "/api/classes/c/objects/o/files/img?_relay=true",
                Some("Bearer tok")
            ),
        ]
    );
}

#[tokio::test]
async fn refusals_name_the_nodes_message_or_the_urls_answer() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "x", b"bytes");

    let e = get(
        &server.ctx(),
        &args("c/o", "nope", &dir.path().join("d"), false),
    )
    .await
    .unwrap_err();
    let f = fail_of(&e);
    assert_eq!(f.exit, Exit::Refused);
    assert_eq!(f.message, "no file key `nope` (not_found, HTTP 404)");
    assert_eq!(names_in(dir.path()), ["x"]);

    let e = put(&server.ctx(), &args("c/o", "nope", &path, false))
        .await
        .unwrap_err();
    assert_eq!(
        fail_of(&e).message,
        "no file key `nope` (not_found, HTTP 404)"
    );

    let e = put(&server.ctx(), &args("c/o", "denied", &path, false))
        .await
        .unwrap_err();
    let f = fail_of(&e);
    assert_eq!(f.exit, Exit::Refused);
    let origin = server.url.as_str().trim_end_matches('/');
    assert_eq!(
        f.message,
        format!(
            "upload of denied of c/o: {origin}/blobs/denied answered HTTP 403 Forbidden: \
             <?xml version=\"1.0\"?> <Error><Code>SignatureDoesNotMatch</Code></Error>"
        )
    );
    assert!(!f.message.contains("s3cret"));
}

#[tokio::test]
async fn a_commit_that_commits_nothing_is_refused() {
    let server = Server::start().await;
    let e = commit(
        &server.ctx(),
        &crate::cli::parse_object_target("c/o").unwrap(),
        "1",
        Some("k"),
        &["k".to_owned()],
    )
    .await
    .unwrap_err();
    assert_eq!(e.exit, Exit::Refused);
    assert_eq!(
        e.message,
        "no upload found to commit (bad_request, HTTP 400)"
    );
}

/// A node whose `/files/KEY` answers `Content-Length: 100000`, sends
/// `sent` bytes, then closes the connection (`close`) or stalls.
async fn short_body_node(sent: usize, close: bool) -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n";
            conn.write_all(head.as_bytes()).await.unwrap();
            conn.write_all(&vec![b'x'; sent]).await.unwrap();
            if close {
                drop(conn);
            } else {
                tokio::spawn(async move {
                    let _ = conn.read(&mut buf).await;
                });
            }
        }
    });
    url
}

fn ctx_at(url: Url) -> Ctx {
    Ctx {
        client: Client::new(url, Token::None).unwrap(),
        output: None,
    }
}

#[tokio::test]
async fn a_download_that_breaks_off_leaves_no_file() {
    let url = short_body_node(1000, true).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let e = get(&ctx_at(url), &args("c/o", "k", &dest, true))
        .await
        .unwrap_err();
    let f = fail_of(&e);
    assert_eq!(f.exit, Exit::Unavailable);
    assert!(
        f.message
            .starts_with("the download broke off after 1000 of 100000 bytes")
            && f.message.ends_with("out.bin was not written"),
        "{}",
        f.message
    );
    assert!(names_in(dir.path()).is_empty());
}

#[tokio::test]
async fn a_download_dropped_midway_leaves_no_file() {
    let url = short_body_node(1000, false).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let task = {
        let dest = dest.clone();
        tokio::spawn(async move { get(&ctx_at(url), &args("c/o", "k", &dest, true)).await })
    };
    // The temporary file beside the destination shows the download is under way.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while names_in(dir.path()).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no download started"
        );
        tokio::task::yield_now().await;
    }
    let names = names_in(dir.path());
    assert!(
        names[0].starts_with(".out.bin.") && names[0].ends_with(".oprc-part"),
        "{names:?}"
    );
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(names_in(dir.path()).is_empty());
}
