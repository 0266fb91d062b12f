//! Calls from functions to objects (`ctx.invoke` of the Python SDK through
//! the task's `callUrl` and `callToken`): sync and async, access rules,
//! re-entrance, idempotent replays, and what the token does not grant.
//!
//! The `call` behaviour of fixtures/flow.py makes the calls listed in its
//! request body and answers, per call, `{answer}` or `{error: {code,
//! message, status}}` (the `oprc.CallError` it got) with `elapsedMs`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dataflow::Flow;

/// Runs the `call` binding of `cls`/`oid` with `calls`; answers its
/// per-call results.
async fn calls(flow: &Flow, cls: &str, oid: &str, calls: Value) -> Vec<Value> {
    let (s, v) = flow.invoke(cls, oid, "call", "", Some(&calls)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    v["body"]["results"].as_array().expect("results").clone()
}

/// The error code a call got, lowercased (the SDK passes the node's on).
#[track_caller]
fn error_code(result: &Value) -> String {
    result["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("the call did not fail: {result}"))
        .to_lowercase()
}

#[tokio::test]
async fn a_function_calls_other_objects_sync_and_async() {
    let flow = Flow::start(&[]).await;
    flow.node
        .new_object("f.node", r#"{"id": "callee", "data": {"count": 0}}"#)
        .await;
    flow.node.new_object("f.caller", r#"{"id": "c1"}"#).await;
    let results = calls(
        &flow,
        "f.caller",
        "c1",
        json!([
            {"cls": "f.node", "oid": "callee", "fn": "mut", "args": {"tag": "sync1", "num": 9}},
            {"cls": "f.node", "oid": "callee", "fn": "mut", "args": {"tag": "async1"}, "async": true},
            {"cls": "f.node", "new": true, "body": {"id": "made", "data": {"by": "fn"}}},
        ]),
    )
    .await;
    let sync = &results[0]["answer"];
    assert_eq!(sync["status"], "SUCCEEDED", "{results:?}");
    assert_eq!(sync["body"]["num"], 10, "the callee's answer: {sync}");
    assert_eq!(sync["body"]["from"], "callee", "{sync}");

    let queued = &results[1]["answer"];
    let status = queued["status"].as_str().unwrap_or_default();
    assert!(
        matches!(status, "QUEUE" | "DOING" | "SUCCEEDED"),
        "an async call answers once queued: {queued}"
    );
    let inv = queued["invId"].as_str().expect("invId");
    let done = flow.node.wait_invocation(inv).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let callee = flow.node.object("f.node", "callee").await;
    assert_eq!(callee["data"]["count"], 2, "both calls applied: {callee}");
    assert_eq!(
        callee["data"]["args"]["tag"], "async1",
        "in order: {callee}"
    );

    assert_eq!(results[2]["answer"]["output"]["_meta"]["id"], "made");
    let made = flow.node.object("f.node", "made").await;
    assert_eq!(made["data"], json!({"by": "fn"}));
    flow.node.stop().await;
}

/// Package `g`: a class of another package whose function makes calls.
const STRANGER: &str = r#"name: g
classes:
  - name: stranger
    functions:
      - {name: call, function: .work}
functions:
  - name: work
    provision:
      process: @PROC@
"#;

#[tokio::test]
async fn calls_reach_private_bindings_from_their_class_and_internal_ones_from_their_package() {
    let flow = Flow::start(&[STRANGER]).await;
    flow.node
        .new_object("f.node", r#"{"id": "callee", "data": {"count": 0}}"#)
        .await;
    flow.node.new_object("f.node", r#"{"id": "n2"}"#).await;
    flow.node.new_object("f.caller", r#"{"id": "c1"}"#).await;
    flow.node.new_object("g.stranger", r#"{"id": "g1"}"#).await;
    let secret =
        json!({"cls": "f.node", "oid": "callee", "fn": "secret", "args": {"tag": "denied"}});
    let hidden =
        json!({"cls": "f.node", "oid": "callee", "fn": "hidden", "args": {"tag": "denied"}});

    // Another class of the same package: INTERNAL yes, PRIVATE no.
    let results = calls(
        &flow,
        "f.caller",
        "c1",
        json!([secret, {"cls": "f.node", "oid": "callee", "fn": "hidden", "args": {"tag": "pkg"}}]),
    )
    .await;
    assert_eq!(error_code(&results[0]), "forbidden", "{results:?}");
    assert_eq!(results[0]["error"]["status"], 403, "{results:?}");
    assert_eq!(results[1]["answer"]["status"], "SUCCEEDED", "{results:?}");

    // The same class: PRIVATE too.
    let results = calls(
        &flow,
        "f.node",
        "n2",
        json!([{"cls": "f.node", "oid": "callee", "fn": "secret", "args": {"tag": "cls"}}]),
    )
    .await;
    assert_eq!(results[0]["answer"]["status"], "SUCCEEDED", "{results:?}");

    // Another package: neither.
    let results = calls(&flow, "g.stranger", "g1", json!([secret, hidden])).await;
    for r in &results {
        assert_eq!(error_code(r), "forbidden", "{results:?}");
        assert_eq!(r["error"]["status"], 403, "{results:?}");
    }

    assert!(flow.tagged("denied").is_empty(), "a refused call ran");
    assert_eq!(
        flow.node.object("f.node", "callee").await["data"]["count"],
        2
    );
    flow.node.stop().await;
}

#[tokio::test]
async fn a_reentrant_sync_call_is_refused_at_once_while_reads_and_async_calls_work() {
    let flow = Flow::start(&[]).await;
    flow.node
        .new_object("f.node", r#"{"id": "self1", "data": {"count": 0}}"#)
        .await;
    let started = Instant::now();
    let results = calls(
        &flow,
        "f.node",
        "self1",
        json!([
            {"cls": "f.node", "oid": "@", "fn": "mut", "args": {"tag": "reentrant"}},
            {"cls": "f.node", "oid": "@", "fn": "peek", "args": {"tag": "read"}},
            {"cls": "f.node", "oid": "@", "fn": "mut", "args": {"tag": "later"}, "async": true},
        ]),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(error_code(&results[0]), "reentrant_call", "{results:?}");
    assert_eq!(results[0]["error"]["status"], 409, "{results:?}");
    let refused_in = results[0]["elapsedMs"].as_u64().expect("elapsedMs");
    assert!(
        refused_in < 2000,
        "the re-entrant call took {refused_in} ms to be refused"
    );
    assert!(
        took < Duration::from_secs(15),
        "the whole call took {took:?}"
    );
    assert_eq!(results[1]["answer"]["status"], "SUCCEEDED", "{results:?}");
    assert_eq!(results[1]["answer"]["body"]["from"], "self1");
    let inv = results[2]["answer"]["invId"]
        .as_str()
        .unwrap_or_else(|| panic!("the async call on its own main failed: {results:?}"));
    let done = flow.node.wait_invocation(inv).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");

    assert!(flow.tagged("reentrant").is_empty(), "the refused call ran");
    let obj = flow.node.object("f.node", "self1").await;
    assert_eq!(
        obj["data"]["count"], 1,
        "only the async call mutated: {obj}"
    );
    assert_eq!(obj["data"]["calls"], 1, "the caller committed too: {obj}");
    flow.node.stop().await;
}

#[tokio::test]
async fn a_call_repeated_with_the_same_idempotency_key_is_applied_once() {
    let flow = Flow::start(&[]).await;
    for id in ["callee", "callee2"] {
        flow.node
            .new_object(
                "f.node",
                &format!(r#"{{"id": "{id}", "data": {{"count": 0}}}}"#),
            )
            .await;
    }
    flow.node.new_object("f.caller", r#"{"id": "c1"}"#).await;
    let results = calls(
        &flow,
        "f.caller",
        "c1",
        json!([
            // Made again from a fresh Context of the same task: a replayed
            // task sends the same `{task id}/{seq}` key.
            {"cls": "f.node", "oid": "callee", "fn": "mut", "args": {"tag": "replayed"}, "replay": true},
            // Sent twice by hand with one explicit key.
            {"cls": "f.node", "oid": "callee2", "fn": "mut", "args": {"tag": "raw"}, "rawKey": "fixed-key-1"},
        ]),
    )
    .await;
    let replay = &results[0];
    assert_eq!(replay["answer"]["status"], "SUCCEEDED", "{results:?}");
    assert_eq!(
        replay["answer"]["invId"], replay["again"]["invId"],
        "{replay}"
    );
    let raw = results[1]["raw"].as_array().expect("raw answers");
    for r in raw {
        assert_eq!(r["status"], 200, "{results:?}");
        assert_eq!(r["answer"]["status"], "SUCCEEDED", "{results:?}");
    }
    assert_eq!(
        raw[0]["answer"]["invId"], raw[1]["answer"]["invId"],
        "{raw:?}"
    );

    for (id, tag) in [("callee", "replayed"), ("callee2", "raw")] {
        assert_eq!(flow.tagged(tag).len(), 1, "{tag} ran twice");
        let obj = flow.node.object("f.node", id).await;
        assert_eq!(obj["data"]["count"], 1, "{id} applied twice: {obj}");
    }
    flow.node.stop().await;
}

/// The call token and URL of a fresh task of `fb` on `oid`.
async fn token_of(flow: &Flow, oid: &str, fb: &str) -> String {
    let (s, v) = flow.invoke("f.node", oid, fb, "", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = v["body"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no callToken: {v}"));
    assert!(v["body"]["url"].is_string(), "no callUrl: {v}");
    token.to_owned()
}

async fn with_token(
    flow: &Flow,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> (StatusCode, Value) {
    let resp = flow
        .node
        .client
        .request(method, format!("{}{path}", flow.node.url))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("request");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A token of a task that is running: `token?hold=MS` writes it to the
/// runs directory and holds its task; this waits for the file.
async fn held_token(flow: &Flow) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for entry in std::fs::read_dir(flow.runs_dir()).expect("read runs") {
            let path = entry.expect("entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("token-") && name.ends_with(".txt") {
                return std::fs::read_to_string(&path).expect("token file");
            }
        }
        assert!(Instant::now() < deadline, "the task never wrote its token");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_call_token_grants_invocation_routes_only_while_its_task_runs() {
    let flow = Flow::start(&[]).await;
    flow.node.new_object("f.node", r#"{"id": "o1"}"#).await;
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    let task = flow.invoke("f.node", "o1", "token", "hold=3000", None);
    let checks = async {
        let token = held_token(&flow).await;
        let (s, v) = with_token(
            &flow,
            post.clone(),
            "/api/classes/f.node/objects/o1/invokes/peek?tag=tok",
            &token,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "the token opens invocations: {v}");
        assert_eq!(flow.tagged("tok").len(), 1);
        for (method, path) in [
            (get.clone(), "/api/classes/f.node/objects/o1"),
            (get.clone(), "/api/classes/f.node/objects"),
            (get.clone(), "/api/packages"),
            (reqwest::Method::DELETE, "/api/classes/f.node/objects/o1"),
        ] {
            let (s, v) = with_token(&flow, method.clone(), path, &token).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {v}");
            assert_eq!(v["error"]["code"], "forbidden", "{v}");
        }
        token
    };
    let ((s, v), token) = tokio::join!(task, checks);
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"]["token"], token.as_str(), "{v}");
    // Its task has answered: the token is dead, long before its expiry.
    let (s, v) = with_token(
        &flow,
        post,
        "/api/classes/f.node/objects/o1/invokes/peek?tag=after",
        &token,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("task has ended"),
        "{v}"
    );
    assert!(flow.tagged("after").is_empty());
    assert_eq!(
        flow.node.object("f.node", "o1").await["_meta"]["revision"],
        1
    );
    flow.node.stop().await;
}

#[tokio::test]
async fn a_call_token_is_refused_after_its_tasks_timeout() {
    let flow = Flow::start(&[]).await;
    flow.node.new_object("f.node", r#"{"id": "o1"}"#).await;
    // The worker's start counts against the 1 s timeout: warm it up.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, _) = flow.invoke("f.node", "o1", "token1s", "", None).await;
        if s == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "token1s never answered in time");
    }
    let token = token_of(&flow, "o1", "token1s").await;
    let answered = Instant::now();
    tokio::time::sleep(Duration::from_millis(2500).saturating_sub(answered.elapsed())).await;
    let (s, v) = with_token(
        &flow,
        reqwest::Method::POST,
        "/api/classes/f.node/objects/o1/invokes/peek?tag=late",
        &token,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"]["code"], "unauthorized", "{v}");
    assert!(flow.tagged("late").is_empty());
    flow.node.stop().await;
}

/// A function's idempotency keys are its task's own: a client that knows
/// the task's id and sends the key the SDK will use (`{task id}/1`) first
/// takes nothing from it; keys in the node's namespace are refused.
#[tokio::test]
async fn a_client_cannot_take_a_functions_idempotency_keys() {
    let flow = Flow::start(&[]).await;
    flow.node
        .new_object("f.node", r#"{"id": "v2", "data": {"count": 0}}"#)
        .await;
    flow.node.new_object("f.caller", r#"{"id": "v1"}"#).await;
    // Hold v1 so the calling task runs after the client's call.
    let (s, v) = flow
        .send(
            "/api/classes/f.caller/objects/v1/invokes/call?_async=true",
            Some(&json!([{"cls": "f.node", "oid": "v2", "fn": "peek", "args": {"ms": "800"}}])),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let calls = json!([{"cls": "f.node", "oid": "v2", "fn": "mut", "args": {"tag": "by-fn"}}]);
    let (s, v) = flow
        .send(
            "/api/classes/f.caller/objects/v1/invokes/call?_async=true",
            Some(&calls),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let task = v["invId"].as_str().expect("invId").to_owned();
    let (s, v) = flow
        .send(
            "/api/classes/f.node/objects/v2/invokes/peek?tag=client",
            None,
            Some(&format!("{task}/1")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let done = flow.node.wait_invocation(&task).await;
    let result = &done["body"]["results"][0];
    assert!(
        result.get("error").is_none(),
        "the function's call was spoiled: {done}"
    );
    assert_eq!(result["answer"]["status"], "SUCCEEDED", "{done}");
    assert_eq!(flow.tagged("by-fn").len(), 1);
    // The node's own namespace is closed to clients.
    for key in [
        format!("oprc.call/{task}/{task}/1"),
        "oprc.step/x".to_owned(),
    ] {
        let (s, v) = flow
            .send(
                "/api/classes/f.node/objects/v2/invokes/peek",
                None,
                Some(&key),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{key}: {v}");
    }
    flow.node.stop().await;
}
