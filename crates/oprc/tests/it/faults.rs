//! The fault-injection suite: real `oprc serve` processes with real Python
//! functions, under storage faults, dropped clients, changed settings,
//! hostile inputs and floods.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::proc::{Proc, Start, create, http_with, seq_node, seq_package, seqs};

/// While loads and commits fail at random (30 % for four seconds), every
/// call that was accepted is applied exactly once, in order; sync calls
/// either commit or answer `storage_unavailable` with nothing committed.
#[test]
fn storage_faults_heal_and_every_accepted_call_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let package = seq_package();
    let node = Proc::start(&Start {
        dir: dir.path(),
        args: &[],
        env: &[("OPRC_FAULT_INJECTION", "unavailable:300:4000")],
        packages: &[&package],
    });
    for oid in ["a", "s"] {
        // Creating may hit a fault too: nothing was committed, try again.
        let body = format!(r#"{{"id": "{oid}"}}"#);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match node.post("/api/classes/crash.log/invokes/new", &body) {
                Some((200, _)) => break,
                Some((409, _)) => break, // created by a try whose answer failed
                Some((status, v)) => assert!(status == 503, "{status} {v}"),
                None => panic!("no answer"),
            }
            assert!(Instant::now() < deadline, "cannot create {oid}");
        }
    }
    let mut accepted = Vec::new();
    let mut accepted_seqs = Vec::new();
    let mut committed_sync = Vec::new();
    for seq in 0..120u64 {
        let path = format!("/api/classes/crash.log/objects/a/invokes/append?_async=true&seq={seq}");
        match node.post(&path, "") {
            Some((202, v)) => {
                accepted.push(v["invId"].as_str().unwrap().to_owned());
                accepted_seqs.push(seq);
            }
            // Refused before it was accepted: a client would retry.
            Some((503, _)) => {}
            other => panic!("submit {seq}: {other:?}"),
        }
        let path = format!("/api/classes/crash.log/objects/s/invokes/append?seq={seq}");
        match node.post(&path, "") {
            Some((200, _)) => committed_sync.push(seq),
            Some((503, v)) => assert_eq!(v["error"]["code"], "storage_unavailable", "{v}"),
            other => panic!("sync call {seq}: {other:?}"),
        }
    }
    assert!(accepted.len() > 40, "most submissions are accepted");
    assert!(committed_sync.len() < 120, "faults were injected");
    for end in node.wait_all(&accepted, Duration::from_secs(120)) {
        assert_eq!(
            end["status"], "SUCCEEDED",
            "a failed commit is not a failed call: {end}"
        );
    }
    assert_eq!(
        seqs(&node, "a"),
        accepted_seqs,
        "each accepted call once, in order"
    );
    assert_eq!(
        seqs(&node, "s"),
        committed_sync,
        "exactly the answered sync calls"
    );
}

/// Async macros while loads and commits fail at random: every accepted
/// macro ends SUCCEEDED, with each of its steps applied exactly once, in
/// order (a step whose commit failed is run again, never skipped).
#[test]
fn async_macros_under_storage_faults_apply_each_step_once() {
    const OBJECTS: usize = 4;
    const STEPS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let package = crate::crash::chain_package(STEPS);
    let node = Proc::start(&Start {
        dir: dir.path(),
        args: &[],
        env: &[("OPRC_FAULT_INJECTION", "unavailable:300:3000")],
        packages: &[&package],
    });
    // Creating and submitting may meet a fault too: try again.
    let retry = |path: &str, body: &str, ok: &[u16]| -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match node.post(path, body) {
                Some((s, v)) if ok.contains(&s) => return v,
                Some((503, _)) => {}
                other => panic!("{path}: {other:?}"),
            }
            assert!(Instant::now() < deadline, "{path} never succeeded");
        }
    };
    let mut accepted = Vec::new();
    for o in 0..OBJECTS {
        let body = format!(r#"{{"id": "m{o}"}}"#);
        retry("/api/classes/crash.log/invokes/new", &body, &[200, 409]);
        let path = format!("/api/classes/crash.log/objects/m{o}/invokes/chain?_async=true");
        let v = retry(&path, "", &[202]);
        accepted.push(v["invId"].as_str().unwrap().to_owned());
    }
    for end in node.wait_all(&accepted, Duration::from_secs(120)) {
        assert_eq!(
            end["status"], "SUCCEEDED",
            "a failed commit is not a failed step: {end}"
        );
    }
    for o in 0..OBJECTS {
        assert_eq!(
            seqs(&node, &format!("m{o}")),
            (0..STEPS as u64).collect::<Vec<u64>>(),
            "each step of m{o}'s macro applied once, in order"
        );
    }
}

/// Data written with one partition count is refused by a node started
/// with another, with a message naming the setting; the original count
/// still works.
#[test]
fn a_restart_with_another_partition_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let package = seq_package();
    let start = |args: &'static [&'static str]| Start {
        dir: dir.path(),
        args,
        env: &[],
        packages: &[],
    };
    let first = Proc::start(&Start {
        packages: &[&package],
        ..start(&["--partitions", "4"])
    });
    let (s, _) = first
        .post("/api/classes/crash.log/invokes/new", r#"{"id": "p"}"#)
        .unwrap();
    assert_eq!(s, 200);
    first.kill();
    let (code, log) = Proc::refused(&start(&["--partitions", "8"]));
    assert_ne!(code, 0);
    assert!(
        log.contains("written with 4 partitions") && log.contains("--partitions 4"),
        "{log}"
    );
    let again = Proc::start(&start(&["--partitions", "4"]));
    let (s, v) = again.get("/api/classes/crash.log/objects/p").unwrap();
    assert_eq!(s, 200, "{v}");
}

/// Sends a call and hangs up after `after`, mid-call.
fn drop_mid_call(addr: &str, path: &str, after: Duration) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    let req = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\n\r\n");
    let _ = s.write_all(req.as_bytes());
    std::thread::sleep(after);
    drop(s);
}

/// Clients that hang up mid-call, under load, never cause a spurious
/// conflict, and reads always show the last committed state (G10).
#[test]
fn dropped_clients_under_load_cause_no_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let node = seq_node(dir.path(), &[]);
    let objects: Vec<String> = (0..16).map(|i| format!("d{i}")).collect();
    for oid in &objects {
        create(&node, oid);
    }
    let addr = Arc::new(node.addr.clone());
    let conflicts = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..24)
        .map(|t| {
            let (addr, objects) = (addr.clone(), objects.clone());
            let (conflicts, completed) = (conflicts.clone(), completed.clone());
            std::thread::spawn(move || {
                for i in 0..40usize {
                    let oid = &objects[(t * 7 + i) % objects.len()];
                    let path =
                        format!("/api/classes/crash.log/objects/{oid}/invokes/append?seq={i}&ms=2");
                    if (t + i) % 3 == 0 {
                        drop_mid_call(
                            &addr,
                            &path,
                            Duration::from_micros(200 + (i as u64 * 331) % 3000),
                        );
                        continue;
                    }
                    match http_with(&addr, "POST", &path, "", &[]) {
                        Some((200, _)) => {
                            completed.fetch_add(1, Ordering::Relaxed);
                        }
                        Some((409, _)) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        other => panic!("unexpected answer {other:?}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(conflicts.load(Ordering::Relaxed), 0, "spurious 409s");
    assert!(completed.load(Ordering::Relaxed) > 300);
    // Afterwards every object answers at once, and a read shows exactly
    // the state the last answer committed.
    for oid in &objects {
        let path =
            format!("/api/classes/crash.log/objects/{oid}/invokes/append?seq=999&_showMain=true");
        let (s, v) = node.post(&path, "").unwrap();
        assert_eq!(s, 200, "{v}");
        let (_, read) = node
            .get(&format!("/api/classes/crash.log/objects/{oid}"))
            .unwrap();
        assert_eq!(
            read["_meta"]["revision"], v["main"]["_meta"]["revision"],
            "{oid}"
        );
        assert_eq!(read["data"], v["main"]["data"], "{oid}");
    }
}

/// Inputs nested 100,000 deep (a package, an invocation body) are refused
/// with 400 and the node lives on.
#[test]
fn deeply_nested_inputs_are_refused_and_the_node_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let node = seq_node(dir.path(), &[]);
    let token = std::fs::read_to_string(node.data.join("admin-token")).ok();
    let auth = token.as_deref().map(|t| format!("Bearer {}", t.trim()));
    let mut headers = vec![("content-type", "application/yaml")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let deep_yaml = format!(
        "name: deep\nclasses:\n  - name: c\n    functions:\n      - name: f\n        function: builtin.update\n        override:\n          x: {}1\n",
        "- ".repeat(100_000)
    );
    let (s, v) =
        http_with(&node.addr, "POST", "/api/packages", &deep_yaml, &headers).expect("an answer");
    assert_eq!(s, 400, "{v}");
    let deep_json = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let (s, v) =
        http_with(&node.addr, "POST", "/api/packages", &deep_json, &headers).expect("an answer");
    assert_eq!(s, 400, "{v}");
    create(&node, "n");
    let body = format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let (s, v) = node
        .post(
            "/api/classes/crash.log/objects/n/invokes/append?seq=1",
            &body,
        )
        .expect("an answer");
    assert_eq!(s, 400, "{v}");
    assert!(
        matches!(node.get("/healthz"), Some((200, _))),
        "the node is alive"
    );
}

/// Reads one HTTP/1.1 response from a keep-alive connection; its status.
fn read_response(r: &mut impl std::io::BufRead) -> u16 {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let mut length = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).unwrap();
    status
}

/// Floods of distinct missing-object reads and of queued calls stay within
/// a stated memory bound: the node's resident memory grows by less than
/// 128 MiB.
#[test]
fn floods_stay_within_a_memory_bound() {
    const BOUND_KIB: u64 = 128 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let node = seq_node(dir.path(), &["--partitions", "2"]);
    create(&node, "m");
    let before = node.rss_kib();
    // 100,000 reads of objects that do not exist, over keep-alive
    // connections, from 4 threads.
    let addr = Arc::new(node.addr.clone());
    let readers: Vec<_> = (0..4)
        .map(|t| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let s = TcpStream::connect(addr.as_str()).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
                let mut s = s;
                for i in 0..25_000 {
                    let req = format!(
                        "GET /api/classes/crash.log/objects/missing-{t}-{i}-{} HTTP/1.1\r\nhost: {addr}\r\n\r\n",
                        "x".repeat(150)
                    );
                    s.write_all(req.as_bytes()).unwrap();
                    let status = read_response(&mut reader);
                    assert_eq!(status, 404);
                }
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    // 3,000 async calls queued on one object behind a slow function.
    for seq in 0..3_000 {
        let path =
            format!("/api/classes/crash.log/objects/m/invokes/append?_async=true&seq={seq}&ms=20");
        let (s, _) = node.post(&path, "").unwrap();
        assert_eq!(s, 202);
    }
    let after = node.rss_kib();
    assert!(
        after.saturating_sub(before) < BOUND_KIB,
        "resident memory grew from {before} KiB to {after} KiB"
    );
}

/// An `Idempotency-Key` is bound to its request: concurrent duplicates run
/// once and share the first answer, and the key used for another request
/// answers 422.
#[test]
fn idempotency_keys_run_once_and_refuse_other_requests() {
    let dir = tempfile::tempdir().unwrap();
    let node = seq_node(dir.path(), &[]);
    for oid in ["i", "j"] {
        create(&node, oid);
    }
    let addr = Arc::new(node.addr.clone());
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let path = "/api/classes/crash.log/objects/i/invokes/append?seq=1&ms=50";
                http_with(&addr, "POST", path, "", &[("idempotency-key", "once")])
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for c in callers {
        let (s, v) = c.join().unwrap().expect("an answer");
        assert_eq!(s, 200, "{v}");
        ids.insert(v["invId"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "every duplicate got the first call's answer");
    assert_eq!(seqs(&node, "i"), [1], "the function ran once");
    for path in [
        "/api/classes/crash.log/objects/j/invokes/append?seq=1&ms=50",
        "/api/classes/crash.log/objects/i/invokes/append?seq=2&ms=50",
    ] {
        let (s, v) =
            http_with(&node.addr, "POST", path, "", &[("idempotency-key", "once")]).unwrap();
        assert_eq!(s, 422, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("already used"),
            "{v}"
        );
    }
    assert_eq!(seqs(&node, "j"), Vec::<u64>::new());
}
