//! End to end: a real node (`oprc serve` on a free port) driven by the
//! client commands.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Run, cmd, finish, free_port, oprc};

/// A node in a temporary data directory, killed on drop.
struct Node {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        // Logs go to a file: an unread pipe could fill up and stall the node.
        let log = std::fs::File::create(dir.path().join("node.log")).unwrap();
        // As in the README: started in a directory, data in ./oprc-data.
        let mut serve = cmd(&["serve", "--listen", &listen]);
        if let Some(b) = oprc_testenv::node_backends_blocking(dir.path()) {
            serve
                .env("OPRC_STATE", b.state)
                .env("OPRC_INVOCATION_LOG", b.invocation_log);
        }
        let child = serve
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("oprc serve starts");
        let mut node = Self {
            child,
            url: format!("http://{listen}"),
            dir,
        };
        node.wait_healthy(&listen);
        node
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    fn wait_healthy(&mut self, addr: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the node exited ({status}) before it was healthy:\n{}",
                    self.log()
                );
            }
            if healthz(addr) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the node never became healthy:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client command run where the node was started (so it finds the
    /// admin token in ./oprc-data with no flag).
    fn run(&self, args: &[&str]) -> Run {
        self.run_in(self.dir.path(), args)
    }

    fn run_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let mut argv = vec!["--url", self.url.as_str()];
        argv.extend_from_slice(args);
        finish(
            cmd(&argv)
                .current_dir(cwd)
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        )
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /healthz` answers 200.
fn healthz(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

fn json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {r:?}"))
}

#[test]
fn a_node_serves_the_client_commands() {
    let node = Node::start();
    let ok = |r: Run| {
        assert_eq!(r.code, 0, "{r:?}\n--- node log\n{}", node.log());
        r
    };

    let pkg = node.file("pkg.yaml", "name: t\nclasses:\n  - name: c\n");
    let r = ok(node.run(&["pkg", "apply", &pkg]));
    assert_eq!(json(&r)["name"], "t");
    assert!(r.stderr.contains("package `t` created"), "{r:?}");
    let r = ok(node.run(&["cls", "list"]));
    assert!(r.stdout.lines().any(|l| l.starts_with("t.c ")), "{r:?}");
    let r = ok(node.run(&["cls", "get", "t.c"]));
    assert_eq!(json(&r)["key"], "t.c");

    let r = ok(node.run(&["obj", "new", "t.c", "--id", "o1", "--data", r#"{"n": 1}"#]));
    assert_eq!(json(&r)["_meta"]["id"], "o1");
    let r = node.run(&["obj", "new", "t.c", "--id", "o1"]);
    assert_eq!(r.code, 1, "creating o1 twice must be refused: {r:?}");
    let r = ok(node.run(&["obj", "get", "t.c", "o1"]));
    assert_eq!(json(&r)["data"]["n"], 1);

    let r = ok(node.run(&["invoke", "t.c/o1", "update", "--body", r#"{"n": 2}"#]));
    assert_eq!(json(&r)["status"], "SUCCEEDED");
    let r = ok(node.run(&[
        "invoke",
        "t.c/o1",
        "get",
        "--async",
        "--wait",
        "--timeout",
        "20s",
    ]));
    assert_eq!(json(&r)["status"], "SUCCEEDED");
    let r = ok(node.run(&["obj", "list", "t.c"]));
    assert!(r.stdout.lines().any(|l| l.starts_with("o1 ")), "{r:?}");

    ok(node.run(&["obj", "delete", "t.c", "o1"]));
    let r = node.run(&["obj", "get", "t.c", "o1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("HTTP 404"), "{r:?}");

    let bad = node.file("bad.yaml", "name: t\nclasses:\n  - nam: c\n");
    let r = node.run(&["pkg", "apply", &bad]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.starts_with(&format!("{bad}:3:")), "{r:?}");
    assert!(r.stderr.contains("(invalid_package, HTTP 400)"), "{r:?}");
}

/// The admin token is picked up from the data directory with no flag;
/// elsewhere, the refusal says where to find it.
#[test]
fn package_changes_find_the_admin_token_in_the_data_dir() {
    let node = Node::start();
    let log = node.log();
    assert!(
        log.contains("admin token in ./oprc-data/admin-token"),
        "{log}"
    );
    let pkg = node.file("pkg.yaml", "name: t\n");
    let elsewhere = tempfile::tempdir().unwrap();
    let r = node.run_in(elsewhere.path(), &["pkg", "apply", &pkg]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("(unauthorized, HTTP 401)"), "{r:?}");
    assert!(
        r.stderr.contains("hint:") && r.stderr.contains("--data-dir"),
        "{r:?}"
    );
    let data = node.dir.path().join("oprc-data");
    let data = data.to_str().unwrap();
    let r = node.run_in(
        elsewhere.path(),
        &["--data-dir", data, "pkg", "apply", &pkg],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let argv = ["--url", node.url.as_str(), "pkg", "delete", "t"];
    let r = finish(
        cmd(&argv)
            .current_dir(elsewhere.path())
            .env("OPRC_DATA_DIR", data)
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = node.run_in(elsewhere.path(), &["cls", "list"]);
    assert_eq!(r.code, 0, "reads need no token: {r:?}");
}

#[test]
#[cfg(unix)]
fn sigterm_stops_the_node_cleanly() {
    let mut node = Node::start();
    let pid = node.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = node.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not stop:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit {status}:\n{}", node.log());
    let log = node.log();
    assert!(log.contains("oprc: node listening on http://"), "{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(Path::new(&node.dir.path().join("oprc-data")).exists());
}

#[test]
fn a_taken_port_is_named_with_a_hint() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let r = oprc(&[
        "serve",
        "--listen",
        &addr,
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&format!("cannot listen on {addr}")),
        "{r:?}"
    );
    assert!(r.stderr.contains("--listen"), "{r:?}");
}
