//! Storage failures answer what a client can do about them: retry later
//! (503 with `Retry-After`) or nothing (500, cause only in the log).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::proc::{Proc, Start};

/// `GET path`: the answer's head and body.
fn get(addr: &str, path: &str) -> (String, serde_json::Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap(),
    )
}

fn node_failing_with(dir: &std::path::Path, kind: &str) -> Proc {
    let spec = format!("{kind}:1000:600000");
    Proc::start(&Start {
        dir,
        args: &[],
        env: &[("OPRC_FAULT_INJECTION", &spec)],
        packages: &[],
    })
}

#[test]
fn unavailable_storage_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_failing_with(dir.path(), "unavailable");
    let (head, v) = get(&node.addr, "/api/classes/builtin.base/objects/x");
    assert!(head.starts_with("http/1.1 503"), "{head}\n{v}");
    assert!(head.contains("\r\nretry-after: 1"), "{head}");
    assert_eq!(v["error"]["code"], "unavailable", "{v}");
    node.kill();
}

#[test]
fn corrupt_storage_answers_500_and_keeps_the_cause_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_failing_with(dir.path(), "internal");
    let (head, v) = get(&node.addr, "/api/classes/builtin.base/objects/x");
    assert!(head.starts_with("http/1.1 500"), "{head}\n{v}");
    assert!(!head.contains("\r\nretry-after:"), "{head}");
    assert_eq!(v["error"]["code"], "internal", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("injected"),
        "the cause stays in the log: {message}"
    );
    let log = node.log_text();
    assert!(log.contains("injected fault"), "{log}");
    node.kill();
}
