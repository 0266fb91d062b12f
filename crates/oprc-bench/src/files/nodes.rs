//! What the file benchmark calls: two nodes on the S3 backend (one handing
//! out presigned S3 URLs, one relaying with `--blob-relay`) and the plain
//! FaaS service, all running the same `concat` script; the requests each
//! one takes to call the function, to reset an object's file and to create
//! it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;

use super::http::{Http, Req};
use super::s3::{self, S3Server};
use crate::external::{Cpu, External};

/// The function, owned by the benchmark and written next to its other
/// temporary files.
pub const SCRIPT: &str = include_str!("../../functions/concat.py");
const CLASS: &str = "bench.file";

/// How a call reaches the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Through a node whose tasks get presigned S3 URLs.
    Redirect,
    /// Through a node started with `--blob-relay`: the URLs are the node's.
    Relay,
    /// No platform: the script as a plain HTTP service over S3.
    Faas,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Redirect => "redirect",
            Self::Relay => "relay",
            Self::Faas => "faas",
        }
    }
}

enum Proc {
    Node(External),
    Faas(tokio::process::Child),
}

/// One of the three ways in, running.
pub struct Target {
    pub mode: Mode,
    pub addr: SocketAddr,
    proc: Proc,
}

fn package(script: &Path, python: &str) -> String {
    // One worker with many threads, as the plain FaaS service is one
    // process: the same code on the same amount of CPU.
    format!(
        "name: bench\nclasses:\n  - name: file\n    stateSpec:\n      keySpecs: [{{name: text}}]\n\
         \x20   functions:\n      - {{name: concat, function: .concat}}\n\
         functions:\n  - name: concat\n    provision:\n      process:\n        command: [{python}, {}]\n\
         \x20       minInstances: 1\n        maxInstances: 1\n        concurrency: 1024\n",
        script.display()
    )
}

pub(crate) async fn wait_for(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "nothing listens on {addr}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

impl Target {
    /// A node on bucket `mode.name()` of `s3`; logs go to `dir`.
    pub async fn node(
        mode: Mode,
        bin: &Path,
        s3: &S3Server,
        script: &Path,
        python: &str,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let mut args: Vec<String> = [
            "--blobs",
            &s3.blobs(mode.name()),
            // Every call leaves a dead version behind: collect them soon so
            // that a run does not fill the S3 server's tmpfs.
            "--url-ttl",
            "10s",
            "--file-gc-grace",
            "20s",
            "--file-gc-interval",
            "2s",
        ]
        .map(str::to_owned)
        .to_vec();
        if mode == Mode::Relay {
            args.push("--blob-relay".into());
        }
        let log = dir.join(format!("node-{}.log", mode.name()));
        let env = [
            ("AWS_ACCESS_KEY_ID", s3::KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", s3::SECRET),
            ("RUST_LOG", "warn"),
        ];
        let node = External::spawn(
            mode.name(),
            bin,
            &package(script, python),
            &args,
            &env,
            Some(&log),
        )
        .await
        .with_context(|| {
            format!(
                "failed to start the {} node (log: {})",
                mode.name(),
                log.display()
            )
        })?;
        Ok(Self {
            mode,
            addr: node.addr,
            proc: Proc::Node(node),
        })
    }

    /// The script as a plain HTTP service on bucket `faas` of `s3`.
    pub async fn faas(
        s3: &S3Server,
        script: &Path,
        python: &str,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = std::fs::File::create(dir.join("faas.log"))?;
        let child = tokio::process::Command::new(python)
            .arg(script)
            .arg("--faas")
            .env("HOST", "127.0.0.1")
            .env("PORT", addr.port().to_string())
            .env("S3_ENDPOINT", s3.url())
            .env("S3_BUCKET", "faas")
            .env("S3_REGION", s3::REGION)
            .env("AWS_ACCESS_KEY_ID", s3::KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", s3::SECRET)
            .env("OPRC_BENCH_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {python}"))?;
        wait_for(addr).await?;
        Ok(Self {
            mode: Mode::Faas,
            addr,
            proc: Proc::Faas(child),
        })
    }

    /// CPU so far: `node` is the node process (0 for plain FaaS),
    /// `children` the function's processes.
    pub fn cpu(&self) -> Cpu {
        match &self.proc {
            Proc::Node(n) => n.cpu(),
            Proc::Faas(c) => c.id().map_or_else(Cpu::default, |pid| {
                let all = Cpu::of(pid);
                Cpu {
                    node: 0,
                    children: all.node + all.children,
                }
            }),
        }
    }

    fn oid(client: usize) -> String {
        format!("o{client}")
    }

    fn url(&self, path: &str) -> http::Uri {
        format!("http://{}{path}", self.addr)
            .parse()
            .expect("a valid uri")
    }

    /// One call of `concat` on client `client`'s object.
    pub fn call(&self, client: usize, append: &str) -> Req {
        let oid = Self::oid(client);
        let path = match self.mode {
            Mode::Faas => format!("/objects/{oid}/concat?append={append}"),
            _ => format!("/api/classes/{CLASS}/objects/{oid}/invokes/concat?append={append}"),
        };
        Req::post(self.url(&path), Bytes::new())
    }

    /// Sets client `client`'s file to `data` (through the node, one step).
    pub fn reset(&self, client: usize, data: Bytes) -> Req {
        let oid = Self::oid(client);
        let path = match self.mode {
            Mode::Faas => format!("/objects/{oid}"),
            _ => format!("/api/classes/{CLASS}/objects/{oid}/files/text"),
        };
        Req::put(self.url(&path), data)
    }

    /// Creates client `client`'s object with `data` as its file: on a node
    /// `new` with the key, a PUT to the upload URL it answers, then the
    /// commit (`file?commit=VERSION`).
    pub async fn create(&self, http: &Http, client: usize, data: Bytes) -> anyhow::Result<()> {
        if self.mode == Mode::Faas {
            return http.ok(self.reset(client, data)).await.map(drop);
        }
        let oid = Self::oid(client);
        let body = serde_json::json!({"id": oid, "keys": ["text"]}).to_string();
        let new = http
            .ok(Req::post(
                self.url(&format!("/api/classes/{CLASS}/invokes/new")),
                Bytes::from(body),
            ))
            .await?;
        let new: serde_json::Value =
            serde_json::from_slice(&new).context("`new` answered no JSON")?;
        let (Some(upload), Some(version)) = (
            new.pointer("/body/uploadUrls/text")
                .and_then(|v| v.as_str()),
            new.pointer("/body/version").and_then(|v| v.as_str()),
        ) else {
            anyhow::bail!("`new` answered no body.uploadUrls.text and body.version: {new}");
        };
        let upload: http::Uri = upload.parse().context("the upload URL")?;
        http.ok(Req::put(upload, data)).await?;
        http.ok(Req::post(
            self.url(&format!(
                "/api/classes/{CLASS}/objects/{oid}/invokes/file?commit={version}"
            )),
            Bytes::new(),
        ))
        .await?;
        Ok(())
    }

    pub async fn stop(self) {
        match self.proc {
            Proc::Node(n) => n.stop().await,
            Proc::Faas(mut c) => {
                let _ = c.kill().await;
            }
        }
    }
}
