//! The node on PostgreSQL and NATS JetStream while the engines themselves
//! go away: throwaway servers of this test's own (never the machine's
//! shared services) are stopped as a crash would (PostgreSQL with `-m
//! immediate`, nats-server with SIGKILL) in the middle of sync and async
//! load, then started again; and a PostgreSQL frozen with SIGSTOP, its
//! connections open and silent, as on a hung host.
//!
//! What must hold: while an engine is down, `/readyz` says which one and a
//! call is answered `503` with `Retry-After` (it does not hang); the node
//! reconnects by itself; and afterwards every acknowledged sync write and
//! every accepted async call is present exactly once, in each client's
//! order. Clients retry every unanswered or refused call with its
//! `Idempotency-Key`, as a careful client does.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use oprc_testenv::{ThrowawayNats, ThrowawayPostgres};

use crate::proc::{Proc, Start, create, seq_package, seqs};

/// One request; `(status, headers and body as text)`.
fn raw(addr: &str, method: &str, path: &str, key: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         idempotency-key: {key}\r\ncontent-length: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).ok()?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.get(9..12)?.parse().ok()?;
    Some((status, text))
}

/// A client on object `oid` that appends 1, 2, 3, ... until `stop`, each
/// call retried under its key until it is acknowledged (`200`, or `202`
/// for `async`). Answers the last acknowledged number and the async
/// calls' invocation ids.
fn client(
    addr: String,
    oid: String,
    async_: bool,
    stop: Arc<AtomicBool>,
) -> JoinHandle<(u64, Vec<String>)> {
    std::thread::spawn(move || {
        let mut acked = 0;
        let mut ids = Vec::new();
        let flag = if async_ { "&_async=true" } else { "" };
        while !stop.load(Ordering::Relaxed) {
            let seq = acked + 1;
            let path =
                format!("/api/classes/crash.log/objects/{oid}/invokes/append?seq={seq}{flag}");
            let key = format!("{oid}-{seq}");
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let ok = if async_ { 202 } else { 200 };
                match raw(&addr, "POST", &path, &key) {
                    Some((s, text)) if s == ok => {
                        if async_ {
                            let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
                            let v: serde_json::Value = serde_json::from_str(body).unwrap();
                            ids.push(v["invId"].as_str().unwrap().to_owned());
                        }
                        break;
                    }
                    _ => {
                        assert!(
                            Instant::now() < deadline,
                            "{oid}: call {seq} never acknowledged"
                        );
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
            acked = seq;
        }
        (acked, ids)
    })
}

/// Waits until `/readyz` answers `status` with `part` in its body.
fn wait_ready(node: &Proc, status: u16, part: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some((s, text)) = raw(&node.addr, "GET", "/readyz", "r")
            && s == status
            && text.contains(part)
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never answered {status} with {part:?}\n{}",
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// While an engine is down, a call is refused at once with `Retry-After`.
fn refused_quickly(node: &Proc, oid: &str, key: &str) {
    let started = Instant::now();
    let path = format!("/api/classes/crash.log/objects/{oid}/invokes/append?seq=0");
    let (status, text) = raw(&node.addr, "POST", &path, key).expect("an answer");
    assert_eq!(status, 503, "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after:"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the refusal took {:?}",
        started.elapsed()
    );
}

#[test]
fn engine_restarts_under_load_lose_no_acknowledged_write_and_no_accepted_call() {
    let pg = ThrowawayPostgres::start();
    let mut nats = ThrowawayNats::start();
    let state = oprc_testenv::database_on(&pg.url(), "oprc");
    let dir = tempfile::tempdir().unwrap();
    let package = seq_package();
    let args = ["--state", state.as_str(), "--invocation-log", &nats.url()];
    let node = Proc::start(&Start {
        dir: dir.path(),
        args: &args,
        env: &[],
        packages: &[&package],
    });
    let objects = ["s1", "s2", "s3", "a1", "a2"];
    for oid in objects {
        create(&node, oid);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = objects
        .iter()
        .map(|oid| {
            client(
                node.addr.clone(),
                (*oid).to_owned(),
                oid.starts_with('a'),
                stop.clone(),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    pg.down();
    let why = wait_ready(
        &node,
        503,
        "state store (postgresql",
        Duration::from_secs(10),
    );
    assert!(why.contains("127.0.0.1"), "{why}");
    // A sync call (the async ones are in the log, which still answers).
    refused_quickly(&node, "s1", "probe-pg");
    std::thread::sleep(Duration::from_secs(2));
    pg.up();
    wait_ready(&node, 200, "ready", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));

    nats.down();
    wait_ready(&node, 503, "invocation log (nats", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    nats.up();
    wait_ready(&node, 200, "ready", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);

    for (oid, handle) in objects.iter().zip(clients) {
        let (acked, ids) = handle.join().expect("client thread");
        assert!(acked > 0, "{oid}: nothing was acknowledged");
        if !ids.is_empty() {
            let ended = node.wait_all(&ids, Duration::from_secs(120));
            for v in &ended {
                assert_eq!(v["status"], "SUCCEEDED", "{oid}: {v}");
            }
        }
        let want: Vec<u64> = (1..=acked).collect();
        assert_eq!(seqs(&node, oid), want, "{oid}: each call once, in order");
        eprintln!(
            "{oid}: {acked} {} calls acknowledged, each applied once, in order",
            if ids.is_empty() { "sync" } else { "async" }
        );
    }
    // The probe refused during the outage was never applied.
    assert!(!seqs(&node, "s1").contains(&0));
}

/// A PostgreSQL that stops answering without closing its connections (a
/// hung host, SIGSTOP): calls are refused with `503` and `Retry-After`
/// within seconds rather than hanging, `/readyz` says why, and once it
/// thaws the node serves again with every acknowledged write in place.
#[test]
fn a_frozen_postgresql_gets_calls_refused_not_hung() {
    let pg = ThrowawayPostgres::start();
    let state = oprc_testenv::database_on(&pg.url(), "oprc");
    let dir = tempfile::tempdir().unwrap();
    let package = seq_package();
    let args = ["--state", state.as_str()];
    let node = Proc::start(&Start {
        dir: dir.path(),
        args: &args,
        env: &[],
        packages: &[&package],
    });
    create(&node, "f1");
    let stop = Arc::new(AtomicBool::new(false));
    let load = client(node.addr.clone(), "f1".to_owned(), false, stop.clone());
    std::thread::sleep(Duration::from_secs(1));

    pg.pause();
    let started = Instant::now();
    wait_ready(
        &node,
        503,
        "state store (postgresql",
        Duration::from_secs(10),
    );
    eprintln!("not ready {:?} after the freeze", started.elapsed());
    // A call on another object: its read and its commit meet the freeze.
    let started = Instant::now();
    refused_quickly(&node, "f2", "probe-frozen-1");
    eprintln!("a call refused {:?} into the freeze", started.elapsed());
    let started = Instant::now();
    refused_quickly(&node, "f1", "probe-frozen-2");
    eprintln!("another refused after {:?}", started.elapsed());
    pg.resume();
    wait_ready(&node, 200, "ready", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let (acked, _) = load.join().expect("client thread");
    assert!(acked > 0, "nothing was acknowledged");
    let want: Vec<u64> = (1..=acked).collect();
    assert_eq!(seqs(&node, "f1"), want, "each call once, in order");
}
