//! Calls to other objects against a local server that plays the node.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oprc_sdk::{App, Call, CallError, Context, Task};
use serde_json::{Value, json};

/// One request the node got.
#[derive(Debug, Clone)]
struct Seen {
    /// The path as sent (still percent-encoded).
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Seen>>>;

struct Node {
    base: String,
    log: Log,
}

impl Node {
    async fn start() -> Self {
        let log = Log::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(answer).with_state(log.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, log }
    }

    fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    fn keys(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|s| s.headers["idempotency-key"].to_str().unwrap().to_owned())
            .collect()
    }

    fn task(&self, call_url: Option<&str>, token: Option<&str>) -> Task {
        let mut t = json!({"id": "T1", "funcKey": "p.f", "fbName": "f", "ts": 1});
        if let Some(url) = call_url {
            t["callUrl"] = json!(url);
        }
        if let Some(token) = token {
            t["callToken"] = json!(token);
        }
        serde_json::from_value(t).unwrap()
    }

    fn ctx(&self) -> Context {
        Context::new(self.task(Some(&self.base), Some("tok-1")))
    }
}

fn invocation(status: &str) -> Value {
    json!({"invId": "inv-9", "status": status})
}

/// Answers by the called function's name (the path's last segment).
async fn answer(State(log): State<Log>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, 1 << 20).await.unwrap();
    log.lock().unwrap().push(Seen {
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body: body.clone(),
    });
    let json = |status: StatusCode, v: Value| (status, axum::Json(v)).into_response();
    match parts.uri.path().rsplit('/').next().unwrap_or_default() {
        "hang" => std::future::pending().await,
        "queued" => json(StatusCode::ACCEPTED, invocation("QUEUE")),
        "failed" => {
            let mut v = invocation("FAILED");
            v["error"] = json!({"code": "function_failed", "message": "count must stay positive"});
            json(StatusCode::UNPROCESSABLE_ENTITY, v)
        }
        "private" => json(
            StatusCode::FORBIDDEN,
            json!({"error": {"code": "forbidden", "message": "binding p.c.private is PRIVATE"}}),
        ),
        "reentrant" => json(
            StatusCode::CONFLICT,
            json!({"error": {"code": "reentrant_call", "message": "object p.c/o1 is held by this call chain"}}),
        ),
        "broken" => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>Bad Gateway</body></html>",
        )
            .into_response(),
        _ => {
            let mut v = invocation("SUCCEEDED");
            let echo: Option<Value> = serde_json::from_slice(&body).ok();
            v["body"] = json!({ "echo": echo });
            json(StatusCode::OK, v)
        }
    }
}

/// The query's pairs, decoded.
fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    let url = reqwest::Url::parse(&format!("http://x/?{}", query.unwrap_or(""))).unwrap();
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn object_call_encodes_path_and_args_and_sends_the_token() {
    let node = Node::start().await;
    let answer = node
        .ctx()
        .invoke(
            Call::object("p.c", "a b/c?", "inc")
                .arg("by", 2)
                .arg("on", true)
                .arg("s", "x y&z=é"),
        )
        .await
        .unwrap();
    assert_eq!(
        answer,
        json!({"invId": "inv-9", "status": "SUCCEEDED", "body": {"echo": null}})
    );
    let [seen] = &node.seen()[..] else {
        panic!("one request expected")
    };
    assert_eq!(
        seen.path,
        "/api/classes/p.c/objects/a%20b%2Fc%3F/invokes/inc"
    );
    assert_eq!(
        pairs(seen.query.as_deref()),
        owned(&[("by", "2"), ("on", "true"), ("s", "x y&z=é")])
    );
    let h = &seen.headers;
    assert_eq!(h["authorization"], "Bearer tok-1");
    assert_eq!(h["idempotency-key"], "T1/1");
    assert_eq!(h["accept"], "application/json");
    assert!(h.get("content-type").is_none());
    assert_eq!(h["content-length"], "0");
    assert!(seen.body.is_empty());
}

#[tokio::test]
async fn class_call_sends_a_json_body() {
    let node = Node::start().await;
    let body = json!({"id": "n1", "data": {"count": 0, "name": "é"}});
    let answer = node
        .ctx()
        .invoke(Call::class("p.c", "new").body(body.clone()))
        .await
        .unwrap();
    assert_eq!(answer["body"]["echo"], body);
    let seen = &node.seen()[0];
    assert_eq!(seen.path, "/api/classes/p.c/invokes/new");
    assert_eq!(seen.query, None);
    assert_eq!(seen.headers["content-type"], "application/json");
    assert_eq!(serde_json::from_slice::<Value>(&seen.body).unwrap(), body);
}

#[tokio::test]
async fn keys_count_the_task_calls_in_the_order_they_are_made() {
    let node = Node::start().await;
    let ctx = node.ctx();
    ctx.invoke(Call::object("p.c", "o1", "a")).await.unwrap();
    ctx.invoke(Call::class("p.c", "new").body(json!({})))
        .await
        .unwrap();
    ctx.invoke(Call::object("p.c", "o1", "private"))
        .await
        .unwrap_err();
    // Joined calls keep the order in which `invoke` was called, whichever
    // is polled (or answered) first.
    let fourth = ctx.invoke(Call::object("p.c", "o2", "b").asynchronous());
    let fifth = ctx.invoke(Call::object("p.c", "o3", "c"));
    let (a, b) = tokio::join!(fifth, fourth);
    a.unwrap();
    b.unwrap();
    let mut keys = node.keys();
    keys[3..].sort();
    assert_eq!(keys, ["T1/1", "T1/2", "T1/3", "T1/4", "T1/5"]);
    let of = |oid: &str| {
        node.seen()
            .into_iter()
            .find(|s| s.path.contains(&format!("/objects/{oid}/")))
            .unwrap()
            .headers["idempotency-key"]
            .clone()
    };
    assert_eq!(
        (of("o2"), of("o3")),
        ("T1/4".parse().unwrap(), "T1/5".parse().unwrap())
    );

    // A replay of the task (a new context for the same task) makes the same
    // keys again; a clone of a context shares its sequence.
    let replay = node.ctx();
    replay.invoke(Call::object("p.c", "o1", "a")).await.unwrap();
    replay
        .clone()
        .invoke(Call::object("p.c", "o1", "a"))
        .await
        .unwrap();
    assert_eq!(node.keys()[5..], ["T1/1", "T1/2"]);
}

#[tokio::test]
async fn async_call_answers_the_queued_invocation() {
    let node = Node::start().await;
    let answer = node
        .ctx()
        .invoke(
            Call::object("p.c", "o1", "queued")
                .arg("k", "v")
                .asynchronous(),
        )
        .await
        .unwrap();
    assert_eq!(answer, invocation("QUEUE"));
    assert_eq!(
        pairs(node.seen()[0].query.as_deref()),
        owned(&[("k", "v"), ("_async", "true")])
    );
}

#[tokio::test]
async fn failed_invocation_is_an_error_with_its_code() {
    let node = Node::start().await;
    let e = node
        .ctx()
        .invoke(Call::object("p.c", "o1", "failed"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str(), e.status),
        ("function_failed", "count must stay positive", Some(422))
    );
    assert_eq!(e.answer.as_deref().unwrap()["status"], "FAILED");
    assert_eq!(
        e.to_string(),
        r#"call of "failed" on p.c object "o1" failed: function_failed (HTTP 422): count must stay positive"#
    );
}

#[tokio::test]
async fn refused_call_is_an_error_with_the_node_code() {
    let node = Node::start().await;
    let ctx = node.ctx();
    let e = ctx
        .invoke(Call::object("p.c", "o1", "private"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str(), e.status),
        ("forbidden", "binding p.c.private is PRIVATE", Some(403))
    );
    assert_eq!(
        e.answer.as_deref(),
        Some(&json!({"error": {"code": "forbidden", "message": "binding p.c.private is PRIVATE"}}))
    );
    let e = ctx
        .invoke(Call::class("p.c", "reentrant"))
        .await
        .unwrap_err();
    assert_eq!((e.code.as_str(), e.status), ("reentrant_call", Some(409)));
}

#[tokio::test]
async fn non_json_answer_is_a_bad_answer() {
    let node = Node::start().await;
    let e = node
        .ctx()
        .invoke(Call::object("p.c", "o1", "broken"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.status, e.answer.as_deref()),
        (CallError::BAD_ANSWER, Some(502), None)
    );
    assert!(
        e.message.contains("<html><body>Bad Gateway</body></html>"),
        "{e}"
    );
}

#[tokio::test]
async fn unreachable_node() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let node = Node::start().await;
    let url = format!("http://127.0.0.1:{port}");
    let ctx = Context::new(node.task(Some(&url), Some("tok-1")));
    let e = ctx
        .invoke(Call::object("p.c", "o1", "a"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.status, e.answer.as_deref()),
        (CallError::UNREACHABLE, None, None)
    );
    assert!(e.message.starts_with("cannot reach the node: "), "{e}");
    assert!(!e.to_string().contains("tok-1"));
}

#[tokio::test]
async fn no_answer_within_the_timeout() {
    let node = Node::start().await;
    let e = node
        .ctx()
        .invoke(Call::object("p.c", "o1", "hang").timeout(Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert_eq!((e.code.as_str(), e.status), (CallError::TIMEOUT, None));
    assert_eq!(e.message, "no answer from the node within 200ms");
}

#[tokio::test]
async fn a_task_without_call_url_cannot_call() {
    let node = Node::start().await;
    for (url, token) in [
        (None, None),
        (Some(node.base.as_str()), None),
        (None, Some("tok-1")),
    ] {
        let ctx = Context::new(node.task(url, token));
        assert!(!ctx.can_invoke());
        let e = ctx
            .invoke(Call::object("p.c", "o1", "a"))
            .await
            .unwrap_err();
        assert_eq!((e.code.as_str(), e.status), (CallError::NO_CALL_URL, None));
        assert!(
            e.message
                .starts_with("the node did not give this task a way to call other objects"),
            "{e}"
        );
    }
    assert!(node.ctx().can_invoke());
    assert!(node.seen().is_empty());
}

#[tokio::test]
async fn underscore_args_are_refused() {
    let node = Node::start().await;
    let e = node
        .ctx()
        .invoke(Call::object("p.c", "o1", "a").arg("_showAll", true))
        .await
        .unwrap_err();
    assert_eq!(e.code, CallError::BAD_ARG);
    assert!(node.seen().is_empty());
}

#[tokio::test]
async fn a_call_error_fails_the_task_through_question_mark() {
    let node = Node::start().await;
    let app = App::new().async_function("f", |mut ctx: Context| async move {
        ctx.main_mut()?.set("touched", true);
        let answer = ctx.invoke(Call::object("p.c", "o2", "private")).await?;
        Ok(ctx.reply(Some(answer)))
    });
    let mut task = node.task(Some(&node.base), Some("tok-1"));
    task.main = Some(
        serde_json::from_value(
            json!({"_meta": {"id": "o1", "cls": "p.c", "revision": 1}, "data": {}}),
        )
        .unwrap(),
    );
    let completion = serde_json::to_value(app.call(task).await).unwrap();
    assert_eq!(
        completion,
        json!({"id": "T1", "success": false, "errorMsg":
            r#"call of "private" on p.c object "o2" failed: forbidden (HTTP 403): binding p.c.private is PRIVATE"#})
    );
}
