//! Task and builtin semantics through the HTTP API.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Node, behave_package};

#[tokio::test]
async fn builtins_create_read_update_copy_project_delete() {
    let node = Node::start(&[behave_package()]).await;
    let oid = node
        .new_object(
            "t.thing",
            r#"{"id": "a1", "data": {"x": {"y": 1}, "n": 2}}"#,
        )
        .await;
    assert_eq!(oid, "a1");
    let obj = node.object("t.thing", "a1").await;
    assert_eq!(obj["_meta"]["revision"], 1);
    assert_eq!(obj["data"], json!({"x": {"y": 1}, "n": 2}));

    // update replaces, `patch` (override.merge) merges; revision grows.
    let (s, v) = node
        .post(
            "/api/classes/t.thing/objects/a1/invokes/update",
            r#"{"x": {"y": 5}}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["main"]["data"], json!({"x": {"y": 5}}));
    assert_eq!(v["main"]["_meta"]["revision"], 2);
    let (s, v) = node
        .post(
            "/api/classes/t.thing/objects/a1/invokes/patch?_showMain=true",
            r#"{"z": 3}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["main"]["data"], json!({"x": {"y": 5}, "z": 3}));
    assert_eq!(v["main"]["_meta"]["revision"], 3);

    // project by JSONPath.
    let (s, v) = node
        .get("/api/classes/t.thing/objects/a1/invokes/project?path=$.x.y")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"], json!([5]));

    // copy creates a new object; the original is untouched.
    let (s, v) = node
        .post(
            "/api/classes/t.thing/objects/a1/invokes/copy",
            r#"{"id": "a2"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["output"]["_meta"]["id"], "a2");
    assert_eq!(
        node.object("t.thing", "a2").await["data"],
        json!({"x": {"y": 5}, "z": 3})
    );

    // creating an existing id is a conflict.
    let (s, v) = node
        .post("/api/classes/t.thing/invokes/new", r#"{"id": "a1"}"#)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "already_exists");

    // listing pages through objects in id order.
    let (s, v) = node.get("/api/classes/t.thing/objects?limit=1").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["_meta"]["id"], "a1");
    assert_eq!(v["next"], "a1");
    let (_, v) = node
        .get("/api/classes/t.thing/objects?limit=1&after=a1")
        .await;
    assert_eq!(v["items"][0]["_meta"]["id"], "a2");
    assert!(v.get("next").is_none());

    // delete.
    let (s, _) = node
        .request(
            reqwest::Method::DELETE,
            "/api/classes/t.thing/objects/a2",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = node.get("/api/classes/t.thing/objects/a2").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");
    node.stop().await;
}

#[tokio::test]
async fn task_changes_state_and_args_overlay_defaults() {
    let node = Node::start(&[behave_package()]).await;
    node.new_object("t.thing", r#"{"id": "o"}"#).await;
    let (s, v) = node
        .post(
            "/api/classes/t.thing/objects/o/invokes/inc?by=5&_showMain=true",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "SUCCEEDED");
    assert_eq!(v["body"], json!({"count": 5}));
    assert_eq!(v["main"]["data"]["count"], 5);
    assert_eq!(v["main"]["_meta"]["revision"], 2);

    let (s, v) = node
        .post(
            "/api/classes/t.thing/objects/o/invokes/echo?b=9",
            r#"{"k": [1]}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["body"],
        json!({"args": {"a": "1", "b": "9"}, "body": {"k": [1]}})
    );
    assert!(v.get("main").is_none(), "main is hidden unless asked: {v}");
    node.stop().await;
}

#[tokio::test]
async fn immutable_call_with_output_class_leaves_main_untouched() {
    let node = Node::start(&[behave_package()]).await;
    node.new_object("t.thing", r#"{"id": "src", "data": {"keep": 1}}"#)
        .await;
    let (s, v) = node
        .post("/api/classes/t.thing/objects/src/invokes/copyout", "")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let out_id = v["output"]["_meta"]["id"].as_str().unwrap().to_owned();
    assert_eq!(v["output"]["data"], json!({"from": "src"}));
    assert_eq!(
        node.object("t.thing", &out_id).await["data"],
        json!({"from": "src"})
    );
    let main = node.object("t.thing", "src").await;
    assert_eq!(main["data"], json!({"keep": 1}));
    assert_eq!(main["_meta"]["revision"], 1);
    node.stop().await;
}

#[tokio::test]
async fn private_and_internal_bindings_are_refused_from_outside() {
    let node = Node::start(&[behave_package()]).await;
    node.new_object("t.thing", r#"{"id": "o"}"#).await;
    for (fb, modifier) in [("secret", "PRIVATE"), ("inside", "INTERNAL")] {
        let (s, v) = node
            .post(&format!("/api/classes/t.thing/objects/o/invokes/{fb}"), "")
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        assert_eq!(v["error"]["code"], "forbidden");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(modifier), "{msg}");
        // async calls are refused the same way, before anything is queued.
        let (s, _) = node
            .post(
                &format!("/api/classes/t.thing/objects/o/invokes/{fb}?_async=true"),
                "",
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    assert_eq!(node.object("t.thing", "o").await["_meta"]["revision"], 1);
    node.stop().await;
}

#[tokio::test]
async fn async_call_is_queued_then_applied_and_idempotency_key_repeats_the_first() {
    let node = Node::start(&[behave_package()]).await;
    node.new_object("t.thing", r#"{"id": "o"}"#).await;
    let (s, v) = node
        .post("/api/classes/t.thing/objects/o/invokes/inc?_async=true", "")
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["status"], "QUEUE");
    let inv = v["invId"].as_str().unwrap().to_owned();
    let done = node.wait_invocation(&inv).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["body"], json!({"count": 1}));
    let obj = node.object("t.thing", "o").await;
    assert_eq!(obj["data"]["count"], 1);
    assert!(obj["_meta"]["lastOffset"].as_u64().unwrap() >= 1);

    // The same key twice: one effect, the first answer.
    let key_call = || {
        node.post_with(
            "/api/classes/t.thing/objects/o/invokes/inc",
            ("Idempotency-Key", "k-1"),
        )
    };
    let first = key_call().await;
    let second = key_call().await;
    assert_eq!(first["invId"], second["invId"]);
    assert_eq!(first["body"], json!({"count": 2}));
    assert_eq!(node.object("t.thing", "o").await["data"]["count"], 2);
    // and the record is there.
    let rec = node.wait_invocation(first["invId"].as_str().unwrap()).await;
    assert_eq!(rec["status"], "SUCCEEDED");
    node.stop().await;
}

#[tokio::test]
async fn no_main_binding_is_a_class_level_call_creating_its_output() {
    let node = Node::start(&[behave_package()]).await;
    let (s, v) = node.post("/api/classes/t.thing/invokes/make?x=1", "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["body"],
        json!({"made": true}),
        "no main object was sent: {v}"
    );
    let out = v["output"]["_meta"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        node.object("t.thing", &out).await["data"],
        json!({"made": true, "args": {"x": "1"}})
    );
    // On an object it is refused: it is class-level.
    node.new_object("t.thing", r#"{"id": "o"}"#).await;
    let (s, v) = node
        .post("/api/classes/t.thing/objects/o/invokes/make", "")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    node.stop().await;
}

#[tokio::test]
async fn async_repeats_of_an_idempotency_key_enqueue_once() {
    let node = Node::start(&[behave_package()]).await;
    node.new_object("t.thing", r#"{"id": "o"}"#).await;
    let submit = || {
        node.post_with(
            "/api/classes/t.thing/objects/o/invokes/inc?_async=true",
            ("Idempotency-Key", "once"),
        )
    };
    let first = submit().await;
    let second = submit().await;
    assert_eq!(first["invId"], second["invId"], "{first} {second}");
    node.wait_invocation(first["invId"].as_str().unwrap()).await;
    let third = submit().await;
    assert_eq!(third["invId"], first["invId"]);
    assert_eq!(
        third["status"], "SUCCEEDED",
        "a later repeat answers the result"
    );
    assert_eq!(node.object("t.thing", "o").await["data"]["count"], 1);
    node.stop().await;
}

#[tokio::test]
async fn traceparent_reaches_the_function() {
    let node = Node::start(&[behave_package()]).await;
    node.new_object("t.thing", r#"{"id": "o"}"#).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let v = node
        .post_with(
            "/api/classes/t.thing/objects/o/invokes/echo",
            ("traceparent", tp),
        )
        .await;
    assert_eq!(v["body"]["traceparent"], tp, "{v}");
    // A malformed one is dropped, not passed on.
    let v = node
        .post_with(
            "/api/classes/t.thing/objects/o/invokes/echo",
            ("traceparent", "garbage"),
        )
        .await;
    assert!(v["body"].get("traceparent").is_none(), "{v}");
    node.stop().await;
}

#[tokio::test]
async fn a_running_async_call_reports_doing() {
    let node = Node::start(&[behave_package()]).await;
    node.new_object("t.thing", r#"{"id": "o"}"#).await;
    // Warm the worker up: its start counts against the 1 s timeout.
    node.post("/api/classes/t.thing/objects/o/invokes/slow?ms=0", "")
        .await;
    let (s, v) = node
        .post(
            "/api/classes/t.thing/objects/o/invokes/slow?ms=500&_async=true",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["invId"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let (_, v) = node.get(&format!("/api/invocations/{id}")).await;
        let status = v["status"].as_str().unwrap().to_owned();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "SUCCEEDED" || status == "FAILED" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{seen:?}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(seen.contains(&"DOING".to_owned()), "{seen:?}");
    assert_eq!(
        seen.last().map(String::as_str),
        Some("SUCCEEDED"),
        "{seen:?}"
    );
    node.stop().await;
}
