//! Real `oprc serve` processes for the crash and fault suites: start with
//! flags and environment, talk raw HTTP/1.1, SIGKILL, restart on the same
//! data.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{cmd, free_port};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A package `crash` with class `log` whose `append` binding runs
/// `fixtures/seq.py` (appends arg `seq` to `data.seqs` after `ms`).
pub fn seq_package() -> String {
    let root = repo_root();
    let script = root.join("crates/oprc/tests/it/fixtures/seq.py");
    let sdk = root.join("sdk/python");
    format!(
        "name: crash\nclasses:\n  - name: log\n    functions:\n      - {{name: append, function: .append}}\n\
         functions:\n  - name: append\n    provision:\n      process:\n        command: [python3, \"{}\"]\n\
         \x20       env: {{PYTHONPATH: \"{}\"}}\n        maxInstances: 2\n        concurrency: 32\n",
        script.display(),
        sdk.display()
    )
}

/// One HTTP/1.1 request on a new connection: `(status, JSON body)`, or
/// `None` when the node did not answer.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> Option<(u16, Value)> {
    http_with(addr, method, path, body, &[])
}

pub fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, Value)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("content-type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body.as_bytes()).ok()?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.get(9..12)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n")?.1;
    Some((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// A node process on a fixed address and data directory.
pub struct Proc {
    pub child: Child,
    pub addr: String,
    pub data: PathBuf,
    pub log: PathBuf,
}

/// How to start a node.
pub struct Start<'a> {
    pub dir: &'a Path,
    pub args: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
    pub packages: &'a [&'a str],
}

impl Proc {
    /// Starts `oprc serve` and waits until it is ready.
    pub fn start(s: &Start<'_>) -> Proc {
        Self::start_at(s, &format!("127.0.0.1:{}", free_port()))
    }

    pub fn start_at(s: &Start<'_>, addr: &str) -> Proc {
        let child = Self::spawn(s, addr);
        let mut p = Proc {
            child,
            addr: addr.to_owned(),
            data: s.dir.join("data"),
            log: s.dir.join("node.log"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(http(&p.addr, "GET", "/readyz", ""), Some((200, _))) {
            if let Some(status) = p.child.try_wait().unwrap() {
                panic!(
                    "the node exited ({status}) before it was ready:\n{}",
                    p.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "node did not become ready:\n{}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    /// Starts `oprc serve` and waits for it to exit (a refused start).
    pub fn refused(s: &Start<'_>) -> (i32, String) {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut child = Self::spawn(s, &addr);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(s.dir.join("node.log")).unwrap_or_default();
                return (status.code().unwrap_or(-1), log);
            }
            if matches!(http(&addr, "GET", "/readyz", ""), Some((200, _))) {
                let _ = child.kill();
                panic!("the node started although it should have refused");
            }
            assert!(Instant::now() < deadline, "node neither started nor exited");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn(s: &Start<'_>, addr: &str) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(s.dir.join("node.log"))
            .unwrap();
        let mut c = cmd(&["serve", "--listen", addr, "--data-dir"]);
        c.arg(s.dir.join("data"));
        for (i, source) in s.packages.iter().enumerate() {
            let path = s.dir.join(format!("pkg{i}.yaml"));
            std::fs::write(&path, source).unwrap();
            c.arg("--apply").arg(path);
        }
        c.args(s.args);
        // OPRC_TEST_BACKENDS=shared: PostgreSQL and JetStream, per data
        // directory (a test's own settings come after and win).
        if let Some(b) = oprc_testenv::node_backends_blocking(s.dir) {
            c.env("OPRC_STATE", b.state);
            c.env("OPRC_INVOCATION_LOG", b.invocation_log);
        }
        for (k, v) in s.env {
            c.env(k, v);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("oprc serve starts")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Resident memory of the node process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    pub fn get(&self, path: &str) -> Option<(u16, Value)> {
        http(&self.addr, "GET", path, "")
    }

    pub fn post(&self, path: &str, body: &str) -> Option<(u16, Value)> {
        http(&self.addr, "POST", path, body)
    }

    /// Polls until every invocation has ended; answers their final states.
    pub fn wait_all(&self, ids: &[String], within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut done: Vec<Option<Value>> = vec![None; ids.len()];
        loop {
            for (i, id) in ids.iter().enumerate() {
                if done[i].is_some() {
                    continue;
                }
                if let Some((200, v)) = self.get(&format!("/api/invocations/{id}"))
                    && matches!(v["status"].as_str(), Some("SUCCEEDED" | "FAILED"))
                {
                    done[i] = Some(v);
                }
            }
            if done.iter().all(Option::is_some) {
                return done.into_iter().flatten().collect();
            }
            assert!(
                Instant::now() < deadline,
                "{} of {} invocations did not end\n{}",
                done.iter().filter(|d| d.is_none()).count(),
                ids.len(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node in `dir` with the [`seq_package`] applied, started with `args`.
pub fn seq_node(dir: &Path, args: &[&str]) -> Proc {
    let package = seq_package();
    Proc::start(&Start {
        dir,
        args,
        env: &[],
        packages: &[&package],
    })
}

/// Creates `crash.log/{oid}`.
pub fn create(p: &Proc, oid: &str) {
    let (s, v) = p
        .post(
            "/api/classes/crash.log/invokes/new",
            &format!(r#"{{"id": "{oid}"}}"#),
        )
        .expect("an answer");
    assert_eq!(s, 200, "{v}");
}

/// `data.seqs` of `crash.log/{oid}` (read again while storage answers 503,
/// as it does under fault injection).
pub fn seqs(p: &Proc, oid: &str) -> Vec<u64> {
    let path = format!("/api/classes/crash.log/objects/{oid}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let obj = loop {
        match p.get(&path).expect("get object") {
            (503, _) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            (_, obj) => break obj,
        }
    };
    obj["data"]["seqs"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_u64().unwrap()).collect())
        .unwrap_or_default()
}
