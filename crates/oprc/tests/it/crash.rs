//! Async calls survive a SIGKILL of a real `oprc serve`: nothing accepted is
//! lost, nothing is applied twice, per-object order holds (G5).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{cmd, free_port};

fn package(root: &Path) -> String {
    let script = root.join("crates/oprc/tests/it/fixtures/seq.py");
    let sdk = root.join("sdk/python");
    format!(
        "name: crash\nclasses:\n  - name: log\n    functions:\n      - {{name: append, function: .append}}\n\
         functions:\n  - name: append\n    provision:\n      process:\n        command: [python3, \"{}\"]\n\
         \x20       env: {{PYTHONPATH: \"{}\"}}\n        maxInstances: 1\n",
        script.display(),
        sdk.display()
    )
}

/// One HTTP/1.1 request; answers (status, JSON body).
fn http(addr: &str, method: &str, path: &str, body: &str) -> Option<(u16, Value)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let status = answer.get(9..12)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n")?.1;
    Some((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

fn start(addr: &str, data: &Path, pkg: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = cmd(&["serve", "--listen", addr, "--apply"])
        .arg(pkg)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("oprc serve starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http(addr, "GET", "/readyz", ""), Some((200, _))) {
        assert!(Instant::now() < deadline, "node did not become ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn seqs(addr: &str) -> Vec<u64> {
    let (_, obj) = http(addr, "GET", "/api/classes/crash.log/objects/o", "").expect("get object");
    obj["data"]["seqs"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_u64().unwrap()).collect())
        .unwrap_or_default()
}

#[test]
fn accepted_async_calls_survive_sigkill_exactly_once_in_order() {
    const N: u64 = 150;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg.yaml");
    std::fs::write(&pkg, package(&root)).unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("node.log");
    let addr = format!("127.0.0.1:{}", free_port());

    let mut node = start(&addr, &data, &pkg, &log);
    let (s, _) = http(
        &addr,
        "POST",
        "/api/classes/crash.log/invokes/new",
        r#"{"id": "o"}"#,
    )
    .unwrap();
    assert_eq!(s, 200);
    let mut accepted = Vec::new();
    for seq in 0..N {
        let path =
            format!("/api/classes/crash.log/objects/o/invokes/append?_async=true&seq={seq}&ms=5");
        let (s, v) = http(&addr, "POST", &path, "").expect("submit");
        assert_eq!(s, 202, "{v}");
        accepted.push(v["invId"].as_str().unwrap().to_owned());
    }
    // Kill the node in the middle of applying the log.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seqs(&addr).len() < 20 {
        assert!(Instant::now() < deadline, "async calls are not applied");
        std::thread::sleep(Duration::from_millis(5));
    }
    let at_kill = seqs(&addr).len() as u64;
    assert!(at_kill < N, "the kill must land while calls are pending");
    node.kill().unwrap(); // SIGKILL
    node.wait().unwrap();

    let mut node = start(&addr, &data, &pkg, &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = accepted.iter().all(|id| {
            matches!(http(&addr, "GET", &format!("/api/invocations/{id}"), ""),
                Some((200, v)) if v["status"] == "SUCCEEDED")
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every accepted call ended; seqs so far: {:?}\n{}",
            seqs(&addr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        seqs(&addr),
        (0..N).collect::<Vec<u64>>(),
        "each call applied once, in order"
    );
    node.kill().unwrap();
    node.wait().unwrap();
}
