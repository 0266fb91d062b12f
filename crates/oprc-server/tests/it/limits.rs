//! Body limits: a declared length above the limit is refused at once,
//! before any of the body is sent; a chunked body is cut off as it streams.

use std::time::Duration;

use crate::harness::Node;
use crate::raw;

#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_it_is_sent() {
    let node = Node::start(&[]).await;
    let host = node.url.trim_start_matches("http://").to_owned();
    for path in [
        "/api/packages",
        "/api/classes/b.doc/objects/o/invokes/update",
        "/healthz",
    ] {
        // Headers only: the node must answer without waiting for 4 GiB.
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
             content-length: 4294967296"
        );
        let a = raw::send(&node.url, &head, b"", Duration::from_secs(5)).await;
        assert_eq!(a.status, 413, "{path}: {a:?}");
        assert_eq!(a.header("content-type"), Some("application/json"), "{path}");
        assert_eq!(a.json()["error"]["code"], "payload_too_large", "{path}");
    }
    node.stop().await;
}

#[tokio::test]
async fn a_chunked_body_is_limited_as_it_streams() {
    let node = Node::start_configured(
        tempfile::tempdir().unwrap(),
        &["name: b\nclasses:\n  - name: doc\n".to_owned()],
        |c| c.api.max_body_bytes = 1024,
    )
    .await;
    node.new_object("b.doc", r#"{"id": "o"}"#).await;
    let host = node.url.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /api/classes/b.doc/objects/o/invokes/update HTTP/1.1\r\nhost: {host}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked"
    );
    let json = format!("{{\"x\": \"{}\"}}", "a".repeat(4096));
    let body = format!("{:x}\r\n{json}\r\n0\r\n\r\n", json.len());
    let a = raw::send(&node.url, &head, body.as_bytes(), Duration::from_secs(10)).await;
    assert_eq!(a.status, 413, "{a:?}");
    assert_eq!(node.object("b.doc", "o").await["_meta"]["revision"], 1);
    node.stop().await;
}
