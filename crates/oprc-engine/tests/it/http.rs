use std::time::Duration;

use oprc_engine::{Deployment, InvokeError};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::support::{Engine, SCRIPT, call, free_port, key};

#[tokio::test]
async fn http_deployment_is_called_at_its_url() {
    let port = free_port();
    let mut server = Command::new("python3")
        .arg(SCRIPT)
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 starts");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("static");
    let url = format!("http://127.0.0.1:{port}/");
    h.deploy(f.clone(), Deployment::Http { url: url.clone() }, 1)
        .expect("valid deployment");

    let answer = call(h, &f, json!({"x": "1"})).await.expect("answer");
    assert_eq!(answer["body"]["echo"]["args"]["x"], "1");
    assert_eq!(answer["body"]["contentType"], "application/json");

    let err = call(h, &f, json!({"status": "503"})).await.unwrap_err();
    assert!(
        matches!(err, InvokeError::Status { code: 503, .. }),
        "{err}"
    );

    let status = h.status();
    let d = status.deployment(&f).expect("listed");
    assert_eq!(d.engine, oprc_engine::EngineKind::Http { url });
    assert_eq!((d.counters.invocations, d.counters.failures), (2, 1));

    server.kill().await.expect("server stops");
    let err = call(h, &f, json!({})).await.unwrap_err();
    assert!(matches!(err, InvokeError::Unreachable { .. }), "{err}");

    let err = call(h, &key("nothing"), json!({})).await.unwrap_err();
    assert_eq!(err, InvokeError::NotDeployed(key("nothing")));
    engine.stop().await;
}
