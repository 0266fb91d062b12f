//! Health, readiness, metrics, OpenAPI and the bearer token.

use reqwest::StatusCode;

use crate::harness::{Node, behave_package};

#[tokio::test]
async fn operational_endpoints_answer() {
    let node = Node::start(&[behave_package()]).await;
    let text = |path: &'static str| {
        let (client, url) = (node.client.clone(), node.url.clone());
        async move {
            let r = client.get(format!("{url}{path}")).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    assert_eq!(text("/healthz").await, (StatusCode::OK, "ok".to_owned()));
    assert_eq!(text("/readyz").await.0, StatusCode::OK);
    let (s, doc) = text("/api/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert!(doc["paths"]["/api/invocations/{id}"].is_object());

    node.new_object("t.thing", r#"{"id": "o"}"#).await;
    let (s, _) = node
        .post("/api/classes/t.thing/objects/o/invokes/inc", "")
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, f) = node.get("/api/functions/t.behave").await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(f["deployment"]["engine"]["kind"], "process", "{f}");
    assert_eq!(
        f["deployment"]["instances"].as_array().unwrap().len(),
        1,
        "{f}"
    );
    assert_eq!(f["deployment"]["counters"]["invocations"], 1, "{f}");
    let (_, metrics) = text("/metrics").await;
    for expected in [
        r#"oprc_invocations_total{cls="t.thing",function="inc",status="SUCCEEDED"} 1"#,
        "oprc_invocation_duration_seconds_bucket",
        "oprc_invocations_in_flight 0",
        "oprc_store_commits_total",
        "oprc_store_write_requests_total",
        r#"oprc_function_instances{function="t.behave"} 1"#,
        r#"oprc_function_calls_total{function="t.behave"} 1"#,
    ] {
        assert!(metrics.contains(expected), "missing {expected}:\n{metrics}");
    }
    node.stop().await;
}

#[tokio::test]
async fn a_token_protects_the_api_but_not_health() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_configured(dir, &[], |c| c.api.token = Some("s3cret".into())).await;
    let none = node
        .client
        .get(format!("{}/api/classes", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let v: serde_json::Value = none.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");
    // With --token there is no admin token file: the token is the admin's.
    assert!(!oprc_server::admin_token_path(&node.data_dir.path().join("data")).exists());
    let (s, v) = node.post("/api/packages", "name: p\n").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let ok = node
        .client
        .get(format!("{}/api/classes", node.url))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let wrong = node
        .client
        .get(format!("{}/api/classes", node.url))
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(node.get("/healthz").await.0, StatusCode::OK);
    node.stop().await;
}

fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
}

#[tokio::test]
async fn a_write_behind_class_skips_the_fsync_and_still_keeps_its_state() {
    let node = Node::start(&[behave_package()]).await;
    node.new_object("t.fast", r#"{"id": "f"}"#).await;
    let metrics = || async {
        let r = node
            .client
            .get(format!("{}/metrics", node.url))
            .send()
            .await
            .unwrap();
        r.text().await.unwrap()
    };
    let before = counter(&metrics().await, "oprc_store_durable_commits_total");
    for n in 1..=20 {
        let (s, v) = node
            .post(
                "/api/classes/t.fast/objects/f/invokes/update",
                &format!(r#"{{"n": {n}}}"#),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let after = counter(&metrics().await, "oprc_store_durable_commits_total");
    assert!(
        after - before < 20,
        "write-behind commits were fsynced: {before} -> {after}"
    );
    // Durable on a clean stop (the store flushes when it closes).
    let dir = node.stop().await;
    let node = Node::start_in(dir, &[behave_package()]).await;
    let obj = node.object("t.fast", "f").await;
    assert_eq!(obj["data"], serde_json::json!({"n": 20}));
    assert_eq!(obj["_meta"]["revision"], 21);
    node.stop().await;
}

/// Files live in one blob store, and objects name their versions there:
/// data written with the embedded store is refused by a node started with
/// another one (`--blobs`), with a message naming both and what to do, and
/// before that store is reached; the original setting still starts, relay
/// mode included, and its files are there.
#[tokio::test]
async fn a_restart_with_another_blob_store_is_refused() {
    let package = "name: b\nclasses:\n  - name: doc\n    stateSpec: {keySpecs: [{name: text}]}\n";
    let node = Node::start(&[package.to_owned()]).await;
    node.new_object("b.doc", r#"{"id": "d"}"#).await;
    let file = |node: &Node| format!("{}/api/classes/b.doc/objects/d/files/text", node.url);
    let put = node
        .client
        .put(file(&node))
        .bearer_auth(&node.token)
        .header("content-type", "application/octet-stream")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let dir = node.stop().await;

    // Nothing listens there: the refusal comes before the store is reached.
    let s3 = "s3://oprc-files?endpoint=http://127.0.0.1:9";
    let why = Node::refused(&dir, |c| c.files.blobs = Some(s3.into())).await;
    for part in [
        "are in the embedded store in the data directory (`dir:files`)",
        &format!("started with the S3 store (`{s3}`)"),
        "start it again with no --blobs",
        "an empty store",
    ] {
        assert!(why.contains(part), "{part:?} in {why}");
    }
    // A refused start records nothing: the same one is refused again.
    let again = Node::refused(&dir, |c| {
        c.files.blobs = Some("s3://other?endpoint=http://127.0.0.1:9".into());
    })
    .await;
    assert!(again.contains("(`dir:files`)"), "{again}");

    let node = Node::start_configured(dir, &[], |c| c.files.relay = true).await;
    let got = node
        .client
        .get(format!("{}?_relay=true", file(&node)))
        .bearer_auth(&node.token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.text().await.unwrap(), "hello");
    node.stop().await;
}
