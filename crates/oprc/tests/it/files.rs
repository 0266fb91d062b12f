//! Files of objects through a real `oprc serve` and real function
//! processes, on the embedded store and on a real S3 server (`s3s-fs`):
//! round trips, refused URLs, the access modifiers (G7), fail-safe
//! transitions (G3: a failed, timed-out or killed task leaves the old
//! version, and its orphan is collected).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use oprc_blob::conformance::s3s::{KEY, S3sServer, SECRET};
use serde_json::Value;

use crate::proc::{Proc, Start, repo_root};

/// An HTTP answer: status, headers (lower-case names) and body.
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// One HTTP/1.1 request to an absolute URL (`http://host:port/...`).
fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        body = unchunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn unchunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 4 + size..];
    }
}

/// A node-relative request (`/api/...`).
fn call(node: &Proc, method: &str, path: &str, body: &[u8], content_type: &str) -> Answer {
    let url = format!("http://{}{path}", node.addr);
    let headers: &[(&str, &str)] = if body.is_empty() {
        &[]
    } else {
        &[("content-type", content_type)]
    };
    request(method, &url, headers, body)
}

fn post(node: &Proc, path: &str, body: &str) -> Value {
    call(node, "POST", path, body.as_bytes(), "application/json").json()
}

/// The package of these tests: classes `fa.doc` and `fa.doc2` with one key
/// of each modifier and references to objects of the same class, the same
/// package and another package (`fb.doc`).
fn packages() -> (String, String) {
    let script = repo_root().join("crates/oprc/tests/it/fixtures/files.py");
    let keys = "    stateSpec:\n      keySpecs:\n        - {name: text}\n        - {name: dep, access: DEPENDENT}\n        - {name: inner, access: INTERNAL}\n        - {name: own, access: PRIVATE}\n";
    let function = format!(
        "functions:\n  - name: files\n    provision:\n      process:\n        command: [python3, \"{}\"]\n        maxInstances: 1\n        concurrency: 16\n    config: {{timeout: 2s}}\n",
        script.display()
    );
    let bindings = "    functions:\n      - {name: append, function: .files}\n      - {name: writeall, function: .files}\n      - {name: urls, function: .files}\n      - {name: readref, function: .files}\n      - {name: output, function: .files, outputCls: .doc, immutable: true}\n";
    let fb = format!("name: fb\nclasses:\n  - name: doc\n{keys}{bindings}{function}");
    let fa = format!(
        "name: fa\nrequired: [fb]\nclasses:\n  - name: doc\n{keys}    refSpec:\n      - {{name: peer, cls: fb.doc}}\n      - {{name: sib, cls: .doc2}}\n      - {{name: self, cls: .doc}}\n{bindings}  - name: doc2\n{keys}{bindings}{function}"
    );
    (fb, fa)
}

fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let (fb, fa) = packages();
    Proc::start(&Start {
        dir,
        args,
        env,
        packages: &[&fb, &fa],
    })
}

/// Creates `cls/oid` with `text` uploaded through `new`'s URL and
/// committed.
fn create_with_text(node: &Proc, cls: &str, oid: &str, text: &[u8]) {
    let v = post(
        node,
        &format!("/api/classes/{cls}/invokes/new"),
        &format!(r#"{{"id": "{oid}", "keys": ["text"]}}"#),
    );
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    let url = v["body"]["uploadUrls"]["text"].as_str().unwrap();
    let version = v["body"]["version"].as_str().unwrap();
    let put = request(
        "PUT",
        url,
        &[("content-type", "application/octet-stream")],
        text,
    );
    assert_eq!(put.status, 200, "{}", excerpt(&put.body));
    // Not visible before the commit.
    let early = call(
        node,
        "GET",
        &format!("/api/classes/{cls}/objects/{oid}/files/text"),
        b"",
        "",
    );
    assert_eq!(early.status, 404);
    let c = post(
        node,
        &format!("/api/classes/{cls}/objects/{oid}/invokes/file?commit={version}"),
        "",
    );
    assert_eq!(c["body"]["committed"], serde_json::json!(["text"]), "{c}");
}

/// A short excerpt of a body, for messages.
fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

/// The content of `cls/oid`'s `text`, following the redirect (a relay
/// node answers with the bytes).
fn text(node: &Proc, cls: &str, oid: &str) -> Vec<u8> {
    let a = call(
        node,
        "GET",
        &format!("/api/classes/{cls}/objects/{oid}/files/text"),
        b"",
        "",
    );
    if a.status == 200 {
        return a.body;
    }
    assert_eq!(a.status, 303, "{}", excerpt(&a.body));
    let b = request("GET", &a.headers["location"], &[], b"");
    assert_eq!(b.status, 200, "{}", excerpt(&b.body));
    b.body
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

fn round_trip(node: &Proc) {
    let big = pattern(3 * 1024 * 1024 + 5);
    create_with_text(node, "fa.doc", "o", &big);
    assert!(
        text(node, "fa.doc", "o") == big,
        "the file reads back as uploaded"
    );
    // Relayed through the node, whole and by range.
    let relayed = call(
        node,
        "GET",
        "/api/classes/fa.doc/objects/o/files/text?_relay=true",
        b"",
        "",
    );
    assert_eq!((relayed.status, relayed.body.len()), (200, big.len()));
    assert!(relayed.headers.contains_key("etag"));
    let url = format!(
        "http://{}/api/classes/fa.doc/objects/o/files/text?_relay=true",
        node.addr
    );
    let range = request("GET", &url, &[("range", "bytes=10-19")], b"");
    assert_eq!((range.status, range.body.as_slice()), (206, &big[10..20]));
    // A task appends through its URLs; the object switches in its commit.
    let v = post(
        node,
        "/api/classes/fa.doc/objects/o/invokes/append?append=XYZ",
        "",
    );
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    let mut expected = big;
    expected.extend_from_slice(b"XYZ");
    assert!(
        text(node, "fa.doc", "o") == expected,
        "the task's append is committed"
    );
    // A relayed upload commits in one step.
    let put = call(
        node,
        "PUT",
        "/api/classes/fa.doc/objects/o/files/text",
        b"small",
        "application/octet-stream",
    );
    assert_eq!(put.status, 200, "{}", excerpt(&put.body));
    assert_eq!(text(node, "fa.doc", "o"), b"small");
    // A URL for one object does not open another's file, nor another key.
    create_with_text(node, "fa.doc", "p", b"other");
    let v = post(node, "/api/classes/fa.doc/objects/o/invokes/file", "");
    let loc = v["body"]["urls"]["text"].as_str().unwrap();
    for forged in [
        loc.replacen("/o/", "/p/", 1),
        loc.replacen("/text?", "/own?", 1),
    ] {
        assert_ne!(forged, loc);
        assert_eq!(request("GET", &forged, &[], b"").status, 403, "{forged}");
    }
}

#[test]
fn files_round_trip_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &[], &[]);
    round_trip(&node);
}

fn s3_env() -> [(&'static str, &'static str); 2] {
    [
        ("AWS_ACCESS_KEY_ID", KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
    ]
}

#[test]
fn files_round_trip_on_s3() {
    let s3 = S3sServer::start();
    let dir = tempfile::tempdir().unwrap();
    let blobs = s3.blobs_url();
    let node = start(dir.path(), &["--blobs", &blobs], &s3_env());
    round_trip(&node);
    // The redirect goes to the S3 server itself.
    let a = call(
        &node,
        "GET",
        "/api/classes/fa.doc/objects/o/files/text",
        b"",
        "",
    );
    assert!(
        a.headers["location"].starts_with(&s3.endpoint),
        "{:?}",
        a.headers
    );
}

#[test]
fn a_relay_node_hands_out_its_own_urls() {
    let s3 = S3sServer::start();
    let dir = tempfile::tempdir().unwrap();
    // The store, relay mode and credentials from a config file this time.
    let config = dir.path().join("node.yaml");
    std::fs::write(
        &config,
        format!(
            "blobs: '{}'\nblobRelay: true\ns3AccessKeyId: {KEY}\ns3SecretAccessKey: {SECRET}\n",
            s3.blobs_url()
        ),
    )
    .unwrap();
    let node = start(dir.path(), &["--config", config.to_str().unwrap()], &[]);
    round_trip(&node);
    let v = post(&node, "/api/classes/fa.doc/objects/o/invokes/file", "");
    let url = v["body"]["urls"]["text"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://{}/blobs/", node.addr)),
        "{url}"
    );
    // Downloads stream through the node without `_relay`.
    let a = call(
        &node,
        "GET",
        "/api/classes/fa.doc/objects/o/files/text",
        b"",
        "",
    );
    assert_eq!((a.status, a.body.as_slice()), (200, b"small".as_slice()));
}

/// File versions of `cls/oid` on disk (embedded store).
fn versions_on_disk(node: &Proc, cls: &str, oid: &str) -> usize {
    let dir = node.data.join("files").join(cls).join(oid);
    let Ok(versions) = std::fs::read_dir(dir) else {
        return 0;
    };
    versions
        .filter_map(Result::ok)
        .map(|v| std::fs::read_dir(v.path()).map_or(0, |keys| keys.count()))
        .sum()
}

fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A short grace, so that the collector runs within a test.
const QUICK_GC: &[&str] = &[
    "--url-ttl",
    "1s",
    "--file-gc-grace",
    "3s",
    "--file-gc-interval",
    "300ms",
];

#[test]
fn failed_tasks_leave_the_old_version_and_their_orphans_are_collected() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), QUICK_GC, &[]);
    create_with_text(&node, "fa.doc", "o", b"old");
    for (then, code) in [
        ("fail", "function_failed"),
        ("500", "bad_completion"),
        ("noupload", "bad_completion"),
        ("sleep&ms=3000", "function_timeout"),
    ] {
        let v = post(
            &node,
            &format!("/api/classes/fa.doc/objects/o/invokes/append?append=NEW&then={then}"),
            "",
        );
        assert_eq!(v["status"], "FAILED", "{then}: {v}");
        assert_eq!(v["error"]["code"], code, "{then}: {v}");
        assert_eq!(text(&node, "fa.doc", "o"), b"old", "{then} changed nothing");
        // Its upload cannot be made live from outside either.
        let inv = v["invId"].as_str().unwrap();
        let c = post(
            &node,
            &format!("/api/classes/fa.doc/objects/o/invokes/file?commit={inv}"),
            "",
        );
        assert_eq!(c["error"]["code"], "invalid_argument", "{c}");
    }
    let obj = node.get("/api/classes/fa.doc/objects/o").unwrap().1;
    assert_eq!(
        obj["_meta"]["revision"], 2,
        "only the commit of the upload: {obj}"
    );
    // The live version and three orphans (the 500 and the timeout also
    // uploaded), until the collector deletes the orphans.
    assert!(versions_on_disk(&node, "fa.doc", "o") >= 3);
    wait_for("the orphans are collected", Duration::from_secs(20), || {
        versions_on_disk(&node, "fa.doc", "o") == 1
    });
    assert_eq!(
        text(&node, "fa.doc", "o"),
        b"old",
        "the live version is kept"
    );
    let metrics = call(&node, "GET", "/metrics", b"", "");
    let metrics = String::from_utf8_lossy(&metrics.body);
    let deleted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("oprc_file_gc_deleted_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the collector's counter");
    assert!(deleted >= 3, "{metrics}");
    // Deleting the object deletes its files, eventually.
    let (s, v) =
        crate::proc::http(&node.addr, "DELETE", "/api/classes/fa.doc/objects/o", "").unwrap();
    assert!(s == 200 || s == 204, "{s} {v}");
    wait_for(
        "a deleted object's files are collected",
        Duration::from_secs(20),
        || versions_on_disk(&node, "fa.doc", "o") == 0,
    );
}

#[test]
fn a_node_killed_between_upload_and_commit_keeps_the_old_version() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), QUICK_GC, &[]);
    create_with_text(&node, "fa.doc", "o", b"old");
    let addr = node.addr.clone();
    // Uploads, then waits 1.5 s before its completion: the node is killed
    // in that window.
    let call = std::thread::spawn(move || {
        crate::proc::http(
            &addr,
            "POST",
            "/api/classes/fa.doc/objects/o/invokes/append?append=NEW&then=sleep&ms=1500",
            "",
        )
    });
    wait_for("the task uploads", Duration::from_secs(20), || {
        versions_on_disk(&node, "fa.doc", "o") == 2
    });
    node.kill();
    let _ = call.join();
    let node = start(dir.path(), QUICK_GC, &[]);
    assert_eq!(text(&node, "fa.doc", "o"), b"old");
    let obj = node.get("/api/classes/fa.doc/objects/o").unwrap().1;
    assert_eq!(obj["_meta"]["revision"], 2, "{obj}");
    wait_for("the orphan is collected", Duration::from_secs(20), || {
        versions_on_disk(&node, "fa.doc", "o") == 1
    });
    assert_eq!(text(&node, "fa.doc", "o"), b"old");
}

/// `GET` of a file from outside: the status and the error message.
fn outside(node: &Proc, oid: &str, key: &str) -> (u16, String) {
    let a = call(
        node,
        "GET",
        &format!("/api/classes/fa.doc/objects/{oid}/files/{key}"),
        b"",
        "",
    );
    (
        a.status,
        a.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    )
}

#[test]
fn the_access_modifiers_hold_outside_and_in_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &[], &[]);
    for (cls, oid, mark) in [
        ("fb.doc", "p", "P"),
        ("fa.doc2", "s", "S"),
        ("fa.doc", "x", "X"),
    ] {
        let v = post(
            &node,
            &format!("/api/classes/{cls}/invokes/new"),
            &format!(r#"{{"id": "{oid}"}}"#),
        );
        assert_eq!(v["status"], "SUCCEEDED", "{v}");
        let v = post(
            &node,
            &format!("/api/classes/{cls}/objects/{oid}/invokes/writeall?append={mark}"),
            "",
        );
        assert_eq!(v["status"], "SUCCEEDED", "{v}");
    }
    let v = post(
        &node,
        "/api/classes/fa.doc/invokes/new",
        r#"{"id": "a", "refs": {"peer": "p", "sib": "s", "self": "x"}}"#,
    );
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    let v = post(
        &node,
        "/api/classes/fa.doc/objects/a/invokes/writeall?append=A",
        "",
    );
    assert_eq!(v["status"], "SUCCEEDED", "{v}");

    // From outside: only PUBLIC keys, and every refusal names its modifier.
    assert_eq!(outside(&node, "a", "text").0, 303);
    for (key, modifier) in [
        ("dep", "DEPENDENT"),
        ("inner", "INTERNAL"),
        ("own", "PRIVATE"),
    ] {
        let (status, message) = outside(&node, "a", key);
        assert_eq!(status, 403, "{key}: {message}");
        assert!(message.contains(modifier), "{key}: {message}");
        let v = post(
            &node,
            &format!("/api/classes/fa.doc/objects/a/invokes/file?key={key}"),
            "",
        );
        assert_eq!(v["error"]["code"], "forbidden", "file?key={key}: {v}");
        let put = call(
            &node,
            "PUT",
            &format!("/api/classes/fa.doc/objects/a/files/{key}"),
            b"x",
            "application/octet-stream",
        );
        assert_eq!(put.status, 403, "a relayed upload of {key}");
        let v = post(
            &node,
            "/api/classes/fa.doc/invokes/new",
            &format!(r#"{{"keys": ["{key}"]}}"#),
        );
        assert_eq!(v["error"]["code"], "forbidden", "new with {key}: {v}");
    }
    let v = post(&node, "/api/classes/fa.doc/objects/a/invokes/file", "");
    let urls: Vec<&String> = v["body"]["urls"].as_object().unwrap().keys().collect();
    assert_eq!(
        urls,
        ["text"],
        "`file` lists only what the caller may reach"
    );
    let v = post(
        &node,
        "/api/classes/fa.doc/objects/a/invokes/file?put=true",
        "",
    );
    let urls: Vec<&String> = v["body"]["uploadUrls"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(urls, ["text"]);

    // In a task of the class: its own keys, and references' keys as far as
    // the class may reach them.
    let v = post(&node, "/api/classes/fa.doc/objects/a/invokes/urls", "");
    assert_eq!(
        v["body"]["put"],
        serde_json::json!(["dep", "inner", "own", "text"]),
        "{v}"
    );
    assert_eq!(v["body"]["allocMain"], true);
    let v = post(&node, "/api/classes/fa.doc/objects/a/invokes/readref", "");
    let expected = serde_json::json!({
        // Another package's object: PUBLIC and DEPENDENT (a reference).
        "peer.dep": "P", "peer.text": "P",
        // The same package's: INTERNAL too.
        "self.dep": "X", "self.inner": "X", "self.own": "X", "self.text": "X",
        "sib.dep": "S", "sib.inner": "S", "sib.text": "S",
    });
    assert_eq!(v["body"], expected, "{v}");
}

#[test]
fn file_routes_refuse_what_a_web_page_could_send_and_oversized_files() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &["--max-file-bytes", "1000"], &[]);
    create_with_text(&node, "fa.doc", "o", b"old");
    let url = format!(
        "http://{}/api/classes/fa.doc/objects/o/files/text",
        node.addr
    );
    // Bodies a page can send cross-site without a preflight, or none.
    for headers in [
        vec![("content-type", "text/plain")],
        vec![("content-type", "application/x-www-form-urlencoded")],
        vec![("content-type", "multipart/form-data; boundary=x")],
        vec![],
    ] {
        let a = request("PUT", &url, &headers, b"forged");
        assert_eq!(a.status, 415, "{headers:?}: {}", excerpt(&a.body));
    }
    // A cross-site read or write is refused whatever its type.
    let page = [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ];
    assert_eq!(request("GET", &url, &page, b"").status, 403);
    let mut put = page.to_vec();
    put.push(("content-type", "application/octet-stream"));
    assert_eq!(request("PUT", &url, &put, b"forged").status, 403);
    // Another method on the route is not a file upload.
    let a = request(
        "POST",
        &url,
        &[("content-type", "application/octet-stream")],
        b"x",
    );
    assert_eq!(a.status, 405);
    // Above the file limit (declared; streamed bodies are cut off as
    // `oprc-adapter/tests/dir.rs` shows): refused, and nothing changes.
    let big = vec![b'x'; 1001];
    let a = request(
        "PUT",
        &url,
        &[("content-type", "application/octet-stream")],
        &big,
    );
    assert_eq!(a.status, 413, "{}", excerpt(&a.body));
    assert_eq!(text(&node, "fa.doc", "o"), b"old");
}
