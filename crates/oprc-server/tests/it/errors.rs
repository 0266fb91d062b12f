//! Each refusal answers the status a client can act on (docs/api.md).

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::{Node, behave_package};

#[tokio::test]
async fn deleting_what_does_not_exist_answers_404() {
    let node = Node::start(&["name: b\nclasses:\n  - name: doc\n".to_owned()]).await;
    let delete = reqwest::Method::DELETE;
    for path in [
        "/api/classes/b.doc/objects/missing",
        "/api/classes/b.nope/objects/o",
        "/api/packages/nope",
    ] {
        let (s, v) = node.request(delete.clone(), path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
    }
    node.new_object("b.doc", r#"{"id": "o"}"#).await;
    let (s, _) = node
        .request(delete.clone(), "/api/classes/b.doc/objects/o", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = node
        .request(delete, "/api/classes/b.doc/objects/o", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "deleted twice: {v}");
    node.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_call_answers_422() {
    let node = Node::start(&["name: b\nclasses:\n  - name: doc\n".to_owned()]).await;
    for id in ["a", "b"] {
        node.new_object("b.doc", &format!(r#"{{"id": "{id}"}}"#))
            .await;
    }
    let key = ("Idempotency-Key", "same");
    let first = node
        .post_with("/api/classes/b.doc/objects/a/invokes/get", key)
        .await;
    assert_eq!(first["status"], "SUCCEEDED", "{first}");
    let resp = node
        .client
        .post(format!(
            "{}/api/classes/b.doc/objects/b/invokes/get",
            node.url
        ))
        .header(key.0, key.1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unprocessable", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("new key"),
        "{v}"
    );
    node.stop().await;
}

#[tokio::test]
async fn an_overloaded_node_answers_429_with_retry_after() {
    let node = Node::start_configured(tempfile::tempdir().unwrap(), &[behave_package()], |c| {
        c.invoker.max_in_flight = 1;
    })
    .await;
    node.new_object("t.thing", r#"{"id": "o"}"#).await;
    // Warm the worker up: its start counts against the 1 s timeout, which
    // a loaded machine (the suite runs in parallel) can pass: try again.
    let mut warm = None;
    for _ in 0..5 {
        let (s, v) = node
            .post("/api/classes/t.thing/objects/o/invokes/slow?ms=0", "")
            .await;
        if s != StatusCode::GATEWAY_TIMEOUT {
            warm = Some((s, v));
            break;
        }
    }
    let (s, v) = warm.expect("the worker answers within 1 s once started");
    assert_eq!(s, StatusCode::OK, "{v}");
    let (client, url) = (node.client.clone(), node.url.clone());
    let slow = tokio::spawn(async move {
        client
            .post(format!(
                "{url}/api/classes/t.thing/objects/o/invokes/slow?ms=800"
            ))
            .send()
            .await
            .map(|r| r.status())
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = node.metrics().await;
        if metrics.contains("oprc_invocations_in_flight 1") {
            break;
        }
        assert!(Instant::now() < deadline, "the slow call never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let resp = node
        .client
        .post(format!(
            "{}/api/classes/t.thing/objects/o/invokes/echo",
            node.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after >= 1);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "too_many_requests", "{v}");
    assert_eq!(slow.await.unwrap().unwrap(), StatusCode::OK);
    node.stop().await;
}
