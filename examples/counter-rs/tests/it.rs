//! The Rust counter as a real process function of a real node: 32 clients
//! times 50 increments on one object end at exactly 1600.

use std::sync::Arc;
use std::time::{Duration, Instant};

fn package() -> String {
    format!(
        "name: crs\nclasses:\n  - name: counter\n    functions:\n      - {{name: increment, function: .counter}}\n\
         \x20     - {{name: count, function: .counter, immutable: true}}\n\
         functions:\n  - name: counter\n    provision:\n      process:\n        command: [\"{}\"]\n\
         \x20       maxInstances: 2\n        concurrency: 64\n",
        env!("CARGO_BIN_EXE_counter-rs")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rust_sdk_counter_keeps_every_increment() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg.yaml");
    std::fs::write(&pkg, package()).unwrap();
    let config = oprc_server::Config {
        data_dir: dir.path().join("data"),
        apply: vec![pkg],
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(oprc_server::run(config, listener, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let created = http
            .post(format!("{url}/api/classes/crs.counter/invokes/new"))
            .header("content-type", "application/json")
            .body(r#"{"id": "c", "data": {"count": 0}}"#)
            .send()
            .await;
        if matches!(&created, Ok(r) if r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "node did not start: {created:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = Arc::new(url);
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (http, url) = (http.clone(), url.clone());
        clients.spawn(async move {
            let mut last = 0;
            for _ in 0..50 {
                let v = call(&http, &url, "increment").await;
                assert_eq!(v["status"], "SUCCEEDED", "{v}");
                let n = v["body"]["count"].as_i64().unwrap();
                assert!(n > last, "this client's calls apply in order");
                last = n;
            }
        });
    }
    while let Some(r) = clients.join_next().await {
        r.unwrap();
    }
    let v = call(&http, &url, "count").await;
    assert_eq!(v["body"]["count"], 1600, "{v}");
    stop.send(()).unwrap();
    node.await.unwrap().unwrap();
}

/// Calls a function of the counter `c`; answers the invocation JSON.
async fn call(http: &reqwest::Client, url: &str, fb: &str) -> serde_json::Value {
    http.post(format!(
        "{url}/api/classes/crs.counter/objects/c/invokes/{fb}"
    ))
    .send()
    .await
    .expect("request")
    .json()
    .await
    .expect("JSON answer")
}
