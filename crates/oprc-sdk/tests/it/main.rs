//! The SDK over real HTTP: an app on port 0, tasks POSTed with reqwest;
//! file helpers against a local server (`files`); calls of other objects
//! against a local server that plays the node (`calls`).

mod calls;
mod files;

use std::net::SocketAddr;

use oprc_sdk::{App, Context, TaskError};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(app: App) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let done = tokio::spawn(app.serve_with_shutdown(listener, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            stop: Some(tx),
            done,
        }
    }

    async fn post(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(format!("http://{}/", self.addr))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    async fn task(&self, task: Value) -> (u16, Value) {
        self.post(task.to_string()).await
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.done.await.unwrap().unwrap();
    }
}

fn counter() -> App {
    App::new()
        .function("increment", |ctx: &mut Context| {
            let by: i64 = ctx.parse_arg("by", 1)?;
            let main = ctx.main_mut()?;
            let count = main.get("count").and_then(Value::as_i64).unwrap_or(0) + by;
            main.set("count", count);
            Ok(Some(json!({ "count": count })))
        })
        .function("get", |ctx: &mut Context| {
            Ok(ctx.main()?.get("count").cloned())
        })
        .function("fail", |ctx: &mut Context| {
            ctx.main_mut()?.set("count", -1);
            Err(TaskError::new("count must stay positive"))
        })
        .async_function("copy", |mut ctx: Context| async move {
            let data = ctx.main()?.data().clone();
            let out = ctx
                .output_mut()
                .ok_or_else(|| TaskError::new("no output object"))?;
            out.set_data(data);
            Ok(ctx.reply(None))
        })
}

fn task(fb: &str, data: Option<Value>) -> Value {
    let mut t = json!({
        "id": "inv-1", "funcKey": format!("example.{fb}"), "fbName": fb,
        "args": {}, "immutable": false, "ts": 1_700_000_000_000_i64,
        "mainGetKeys": {}, "mainPutKeys": {}, "outputKeys": {},
    });
    if let Some(data) = data {
        t["main"] = json!({
            "_meta": {"id": "o1", "cls": "example.counter", "revision": 3,
                      "verIds": {}, "refs": {}, "lastOffset": 0},
            "data": data,
        });
    }
    t
}

#[tokio::test]
async fn counter_over_http() {
    let server = Server::start(counter()).await;

    let mut t = task("increment", Some(json!({"count": 1, "other": "x"})));
    t["args"] = json!({"by": "5"});
    assert_eq!(
        server.task(t).await,
        (
            200,
            json!({"id": "inv-1", "success": true,
                   "main": {"data": {"count": 6, "other": "x"}}, "body": {"count": 6}})
        )
    );

    // A read-only call sends no `main`.
    assert_eq!(
        server.task(task("get", Some(json!({"count": 4})))).await,
        (200, json!({"id": "inv-1", "success": true, "body": 4}))
    );

    assert_eq!(
        server.task(task("fail", Some(json!({})))).await,
        (
            200,
            json!({"id": "inv-1", "success": false, "errorMsg": "count must stay positive"})
        )
    );

    let (status, c) = server.task(task("nope", Some(json!({})))).await;
    assert_eq!(status, 200);
    assert_eq!(c["success"], json!(false));
    assert_eq!(
        c["errorMsg"],
        json!(
            "no handler for function \"example.nope\" (binding \"nope\"); this worker serves: copy, fail, get, increment"
        )
    );

    let mut t = task("copy", Some(json!({"a": 1})));
    t["immutable"] = json!(true);
    t["output"] =
        json!({"_meta": {"id": "o2", "cls": "example.counter", "revision": 0}, "data": {}});
    assert_eq!(
        server.task(t).await,
        (
            200,
            json!({"id": "inv-1", "success": true, "output": {"data": {"a": 1}}})
        )
    );

    server.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let server = Server::start(counter()).await;
    for body in ["{not json", "null", r#"{"id": "i"}"#] {
        let (status, c) = server.post(body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(c["success"], json!(false));
        assert!(
            c["errorMsg"]
                .as_str()
                .unwrap()
                .starts_with("malformed task: "),
            "{c}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn healthz_answers_ok() {
    let server = Server::start(counter()).await;
    let resp = reqwest::get(format!("http://{}/healthz", server.addr))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    server.stop().await;
}

/// Tasks over a Unix socket (what `App::run` listens on when the node sets
/// `OPRC_SOCKET`), two on one keep-alive connection.
#[cfg(unix)]
#[tokio::test]
async fn counter_over_a_unix_socket() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    let dir = std::env::temp_dir().join(format!("oprc-sdk-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(counter().serve_unix_with_shutdown(listener, async {
        let _ = rx.await;
    }));

    let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let mut stream = BufReader::new(stream);
    for by in [2, 3] {
        let mut t = task("increment", Some(json!({"count": 1})));
        t["args"] = json!({"by": by.to_string()});
        let body = t.to_string();
        let request = format!(
            "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let mut length = 0;
        let mut status = String::new();
        stream.read_line(&mut status).await.unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut answer = vec![0; length];
        stream.read_exact(&mut answer).await.unwrap();
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(answer["body"], json!({"count": 1 + by}));
    }
    drop(stream);
    let _ = tx.send(());
    done.await.unwrap().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
