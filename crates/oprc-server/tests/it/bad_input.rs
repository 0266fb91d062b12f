//! A catalogue of bad inputs: each gets the documented error and changes
//! nothing (G8, G2).

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Node, behave_package};

async fn apply(node: &Node, source: &str) -> (StatusCode, serde_json::Value) {
    node.post("/api/packages", source).await
}

#[tokio::test]
async fn invalid_packages_are_refused_with_positions_and_nothing_is_stored() {
    let node = Node::start(&[]).await;
    let cases = [
        ("malformed yaml", "name: p\nclasses: [\n  - name: a\n"),
        (
            "unknown field",
            "name: p\nclasses:\n  - name: a\n    colour: red\n",
        ),
        (
            "cycle",
            "name: p\nclasses:\n  - name: a\n    parents: [.b]\n  - name: b\n    parents: [.a]\n",
        ),
        (
            "wrong type",
            "name: p\nclasses:\n  - name: a\n    functions: 7\n",
        ),
        (
            "task with nowhere to run",
            "name: p\nclasses:\n  - name: a\n    functions:\n      - function: .f\nfunctions:\n  - name: f\n",
        ),
        (
            "unknown function",
            "name: p\nclasses:\n  - name: a\n    functions:\n      - function: .nope\n",
        ),
    ];
    for (what, source) in cases {
        let (s, v) = apply(&node, source).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {v}");
        assert_eq!(v["error"]["code"], "invalid_package", "{what}: {v}");
        let details = v["error"]["details"].as_array().expect("details");
        assert!(!details.is_empty(), "{what}");
        for d in details {
            assert!(d["line"].as_u64().unwrap() >= 1, "{what}: {d}");
            assert!(d["column"].as_u64().unwrap() >= 1, "{what}: {d}");
        }
    }
    let (s, _) = node.get("/api/packages/p").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing was stored");
    let (s, _) = node.get("/api/classes/p.a").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    node.stop().await;
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let node = Node::start(&[behave_package()]).await;
    node.new_object("t.thing", r#"{"id": "o", "data": {"count": 7}}"#)
        .await;

    let (s, v) = node
        .post("/api/classes/t.nope/objects/o/invokes/inc", "")
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (s, v) = node
        .post("/api/classes/t.thing/objects/o/invokes/nope", "")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("nope"));
    let (s, _) = node
        .post("/api/classes/t.thing/objects/missing/invokes/inc", "")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = node
        .post(
            "/api/classes/t.thing/objects/missing/invokes/inc?_async=true",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = node
        .post("/api/classes/t.thing/objects/o/invokes/update", "{not json")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "bad_request");
    let (s, v) = node
        .get("/api/classes/t.thing/objects/o/invokes/inc?_async=maybe")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = node.get("/api/nothing/here").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "not_found");

    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(5 * 1024 * 1024));
    let (s, v) = node
        .post("/api/classes/t.thing/objects/o/invokes/update", &big)
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "payload_too_large");

    let obj = node.object("t.thing", "o").await;
    assert_eq!(obj["data"], json!({"count": 7}));
    assert_eq!(obj["_meta"]["revision"], 1);
    node.stop().await;
}

#[tokio::test]
async fn misbehaving_functions_fail_the_call_and_change_nothing() {
    let node = Node::start(&[behave_package()]).await;
    node.new_object("t.thing", r#"{"id": "o", "data": {"count": 7}}"#)
        .await;
    let cases = [
        ("fail", StatusCode::UNPROCESSABLE_ENTITY, "function_failed"),
        ("nomsg", StatusCode::UNPROCESSABLE_ENTITY, "function_failed"),
        ("http500", StatusCode::BAD_GATEWAY, "bad_completion"),
        ("garbage", StatusCode::BAD_GATEWAY, "bad_completion"),
        ("null", StatusCode::BAD_GATEWAY, "bad_completion"),
        ("slow", StatusCode::GATEWAY_TIMEOUT, "function_timeout"),
    ];
    for (fb, status, code) in cases {
        let (s, v) = node
            .post(&format!("/api/classes/t.thing/objects/o/invokes/{fb}"), "")
            .await;
        assert_eq!(s, status, "{fb}: {v}");
        assert_eq!(v["status"], "FAILED", "{fb}: {v}");
        assert_eq!(v["error"]["code"], code, "{fb}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    // The same failures through the async path end as FAILED records.
    let (s, v) = node
        .post(
            "/api/classes/t.thing/objects/o/invokes/fail?_async=true",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let rec = node.wait_invocation(v["invId"].as_str().unwrap()).await;
    assert_eq!(rec["status"], "FAILED");
    assert_eq!(rec["error"]["message"], "failed on purpose");

    let obj = node.object("t.thing", "o").await;
    assert_eq!(obj["data"], json!({"count": 7}));
    assert_eq!(obj["_meta"]["revision"], 1);
    node.stop().await;
}

#[tokio::test]
async fn kubernetes_only_functions_are_accepted_with_a_warning_and_fail_clearly() {
    let node = Node::start(&[]).await;
    let source = "name: k\nclasses:\n  - name: a\n    functions:\n      - function: .f\n\
                  functions:\n  - name: f\n    provision:\n      knative:\n        image: x/f:1\n";
    let (s, v) = apply(&node, source).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let warnings = v["warnings"].to_string();
    assert!(warnings.contains("Kubernetes"), "{v}");
    // Node-level settings in a class are reported, not silently dropped.
    let (s, v) = apply(
        &node,
        "name: q\nclasses:\n  - name: a\n    config: {partitions: 4}\n",
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(v["warnings"].to_string().contains("partitions"), "{v}");
    node.new_object("k.a", r#"{"id": "o"}"#).await;
    let (s, v) = node.post("/api/classes/k.a/objects/o/invokes/f", "").await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{v}");
    assert_eq!(v["error"]["code"], "function_unreachable");
    node.stop().await;
}
