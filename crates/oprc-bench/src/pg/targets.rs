//! What the PostgreSQL benchmark calls: a node on its embedded store, the
//! same node binary on a PostgreSQL database (`--state`), both running
//! `fill` of `examples/record/record.py` on Python workers, and the plain
//! FaaS service (`functions/plain_pg.py`) doing the same update in its own
//! PostgreSQL database; the request each one takes for a call and for
//! creating an object, and how an answer is checked.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use crate::external::{self, External};
use crate::files::http::{Http, Req};

/// The node's function, run by both nodes' process engine.
pub const RECORD: &str = "examples/record/record.py";
const SDK: &str = "sdk/python";
/// The plain FaaS service, owned by the benchmark and written next to its
/// other temporary files.
pub const PLAIN: &str = include_str!("../../functions/plain_pg.py");
const CLASS: &str = "bench.record";

/// One of the three ways to run `fill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A node on its embedded store (durable commits, as shipped).
    Embedded,
    /// The same node on a PostgreSQL database (`--state`).
    NodePg,
    /// No platform: the function keeps its state in PostgreSQL itself.
    Faas,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::NodePg => "node-pg",
            Self::Faas => "faas",
        }
    }

    /// Whether the target keeps its state in PostgreSQL.
    pub fn on_pg(self) -> bool {
        self != Self::Embedded
    }
}

/// Where the code is and how it runs.
pub struct Setup {
    pub bin: PathBuf,
    pub python: String,
    /// Function workers of each node, and processes of the FaaS service.
    pub workers: u32,
    /// Connections of each FaaS worker's pool.
    pub faas_pool: u32,
    /// Logs and the FaaS script go here.
    pub dir: PathBuf,
}

enum Proc {
    Node(External),
    Faas(tokio::process::Child),
}

/// One target, running.
pub struct Target {
    pub kind: Kind,
    pub addr: SocketAddr,
    /// Its PostgreSQL database, if any.
    pub db: Option<String>,
    proc: Proc,
}

/// The node's storage counters, from `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreCounters {
    pub commits: f64,
    pub writes: f64,
    /// `oprc_postgres_transaction_seconds` (0 on the embedded store).
    pub txn_seconds: f64,
}

/// The package: `fill` bound on class `record`, run by the process engine
/// on `workers` workers (`minInstances = maxInstances`), with room for
/// every call in flight.
fn package(python: &str, record: &Path, sdk: &Path, workers: u32) -> String {
    let quoted = |p: &Path| Value::String(p.display().to_string()).to_string();
    format!(
        r#"name: bench
classes:
  - name: record
    functions:
      - {{name: fill, function: .fill}}
functions:
  - name: fill
    provision:
      process:
        command: [{python}, {record}]
        env: {{PYTHONPATH: {sdk}}}
        minInstances: {workers}
        maxInstances: {workers}
        concurrency: 1024
"#,
        python = Value::String(python.to_owned()),
        record = quoted(record),
        sdk = quoted(sdk),
    )
}

/// Whether an answer of `kind` to a call of `fill` is a success that
/// filled `pairs` pairs: 200 and `{"size": pairs}` from plain FaaS; 200,
/// `status: SUCCEEDED` and `body.size` from a node.
fn check(kind: Kind, status: StatusCode, body: &[u8], pairs: usize) -> Result<(), String> {
    let shown = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if status != StatusCode::OK {
        return Err(format!("{status}: {}", shown()));
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| format!("not JSON: {}", shown()))?;
    let size = match kind {
        Kind::Faas => v.get("size"),
        _ => {
            if v.get("status").and_then(Value::as_str) != Some("SUCCEEDED") {
                return Err(format!("not SUCCEEDED: {}", shown()));
            }
            v.pointer("/body/size")
        }
    };
    match size.and_then(Value::as_u64) {
        Some(n) if n as usize == pairs => Ok(()),
        _ => Err(format!("answered no size {pairs}: {}", shown())),
    }
}

impl Target {
    /// A node: on the embedded store when `state` is `None`, else on the
    /// PostgreSQL database `db` at URL `state`.
    pub async fn node(s: &Setup, state: Option<(&str, String)>) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir()?;
        anyhow::ensure!(
            cwd.join(RECORD).is_file() && cwd.join(SDK).join("oprc").is_dir(),
            "run from the repository root ({RECORD} not found)"
        );
        let pkg = package(&s.python, &cwd.join(RECORD), &cwd.join(SDK), s.workers);
        let kind = if state.is_some() {
            Kind::NodePg
        } else {
            Kind::Embedded
        };
        let args: Vec<String> = match &state {
            Some((_, url)) => vec!["--state".into(), url.clone()],
            None => Vec::new(),
        };
        let log = s.dir.join(format!("{}.log", kind.name()));
        let env = [("RUST_LOG", "warn")];
        let node = External::spawn(kind.name(), &s.bin, &pkg, &args, &env, Some(&log))
            .await
            .with_context(|| {
                format!(
                    "failed to start the {} node (log: {})",
                    kind.name(),
                    log.display()
                )
            })?;
        Ok(Self {
            kind,
            addr: node.addr,
            db: state.map(|(db, _)| db.to_owned()),
            proc: Proc::Node(node),
        })
    }

    /// The plain FaaS service on database `db` at URL `url`.
    pub async fn faas(s: &Setup, db: &str, url: &str) -> anyhow::Result<Self> {
        let script = s.dir.join("plain_pg.py");
        std::fs::write(&script, PLAIN)?;
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log_path = s.dir.join("faas.log");
        let child = tokio::process::Command::new(&s.python)
            .arg(&script)
            .env("DATABASE_URL", url)
            .env("HOST", "127.0.0.1")
            .env("PORT", addr.port().to_string())
            .env("WORKERS", s.workers.to_string())
            .env("POOL_SIZE", s.faas_pool.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", s.python))?;
        let t = Self {
            kind: Kind::Faas,
            addr,
            db: Some(db.to_owned()),
            proc: Proc::Faas(child),
        };
        let http = Http::new(1);
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.ok(t.get("/healthz")).await.is_err() {
            if let Proc::Faas(c) = &t.proc
                && !c.id().is_some_and(external::alive)
            {
                anyhow::bail!(
                    "the plain FaaS service exited (log: {}; it needs `pip install \
                     \"psycopg[binary]\" psycopg-pool`)",
                    log_path.display()
                );
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the plain FaaS service never answered (log: {})",
                log_path.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(t)
    }

    fn url(&self, path: &str) -> http::Uri {
        format!("http://{}{path}", self.addr)
            .parse()
            .expect("a valid uri")
    }

    fn get(&self, path: &str) -> Req {
        Req::get(self.url(path))
    }

    /// One call of `fill` with `pairs` pairs on client `client`'s object.
    pub fn call(&self, client: usize, pairs: usize) -> Req {
        let path = match self.kind {
            Kind::Faas => format!("/objects/o{client}/fill?n={pairs}"),
            _ => format!("/api/classes/{CLASS}/objects/o{client}/invokes/fill?n={pairs}"),
        };
        Req::post(self.url(&path), Bytes::new())
    }

    /// Whether an answer to [`Self::call`] is a success (see [`check`]).
    pub fn check(&self, status: StatusCode, body: &[u8], pairs: usize) -> Result<(), String> {
        check(self.kind, status, body, pairs)
    }

    /// Creates client `client`'s object with `data`.
    pub async fn create(
        &self,
        http: &Http,
        client: usize,
        data: serde_json::Map<String, Value>,
    ) -> anyhow::Result<()> {
        let oid = format!("o{client}");
        let req = match self.kind {
            Kind::Faas => Req::put(
                self.url(&format!("/objects/{oid}")),
                Value::Object(data).to_string().into(),
            ),
            _ => Req::post(
                self.url(&format!("/api/classes/{CLASS}/invokes/new")),
                serde_json::json!({"id": oid, "data": data})
                    .to_string()
                    .into(),
            ),
        };
        http.ok(req)
            .await
            .with_context(|| format!("failed to create {oid} on {}", self.kind.name()))?;
        Ok(())
    }

    /// CPU ticks so far of the node process (0 for plain FaaS) and of the
    /// function's processes (a node's workers; the FaaS service's parent
    /// and workers).
    pub fn cpu(&self) -> [u64; 2] {
        match &self.proc {
            Proc::Node(n) => {
                let c = n.cpu();
                [c.node, c.children]
            }
            Proc::Faas(c) => c.id().map_or([0, 0], |pid| {
                let all = external::Cpu::of(pid);
                [0, all.node + all.children]
            }),
        }
    }

    /// A node's storage counters; `None` for plain FaaS.
    pub async fn store_counters(&self, http: &Http) -> anyhow::Result<Option<StoreCounters>> {
        if self.kind == Kind::Faas {
            return Ok(None);
        }
        let text = http.ok(self.get("/metrics")).await?;
        let text = String::from_utf8_lossy(&text);
        let read = |name: &str| -> Option<f64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        };
        let need = |name: &str| read(name).with_context(|| format!("/metrics has no {name}"));
        Ok(Some(StoreCounters {
            commits: need("oprc_store_commits_total")?,
            writes: need("oprc_store_write_requests_total")?,
            txn_seconds: read("oprc_postgres_transaction_seconds_total").unwrap_or(0.0),
        }))
    }

    /// Stops the target and waits (up to 10 s) until its processes (the
    /// node's workers, the FaaS workers) are gone.
    pub async fn stop(self) {
        let pid = match &self.proc {
            Proc::Node(n) => n.pid(),
            Proc::Faas(c) => c.id(),
        };
        let family = pid.map(external::family).unwrap_or_default();
        match self.proc {
            Proc::Node(n) => n.stop().await,
            Proc::Faas(mut c) => {
                let _ = c.kill().await;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while family.iter().copied().any(external::alive) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Kind;
    use http::StatusCode;

    fn check(kind: Kind, status: u16, body: &str, expected: bool) {
        let status = StatusCode::from_u16(status).unwrap();
        let got = super::check(kind, status, body.as_bytes(), 10);
        assert_eq!(got.is_ok(), expected, "{kind:?} {status} {body}: {got:?}");
    }

    #[test]
    fn only_a_full_fill_is_a_success() {
        let done = r#"{"id":"x","status":"SUCCEEDED","body":{"size":10}}"#;
        check(Kind::NodePg, 200, done, true);
        check(Kind::Embedded, 200, done, true);
        check(
            Kind::NodePg,
            200,
            r#"{"status":"FAILED","body":{"size":10}}"#,
            false,
        );
        check(
            Kind::NodePg,
            200,
            r#"{"status":"SUCCEEDED","body":{"size":9}}"#,
            false,
        );
        check(Kind::NodePg, 503, done, false);
        check(Kind::Faas, 200, r#"{"size": 10}"#, true);
        check(Kind::Faas, 200, r#"{"size": 3}"#, false);
        check(Kind::Faas, 500, r#"{"error": "deadlock detected"}"#, false);
        check(Kind::Faas, 200, "not json", false);
    }
}
