//! What the benchmark runs against: nodes in this process, the function as
//! a separate process, and a no-op handler.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::load::Request;

const FUNCTION: &str = "examples/record/record.py";

pub(crate) fn package() -> String {
    // One worker, as for the direct calls, so both sides run the same code
    // on the same amount of CPU.
    format!(
        "name: bench\nclasses:\n  - name: record\n    functions:\n      - {{name: fill, function: .fill}}\n\
         functions:\n  - name: fill\n    provision:\n      process:\n        command: python3 {FUNCTION}\n\
         \x20       env: {{PYTHONPATH: sdk/python}}\n        minInstances: 1\n        maxInstances: 1\n\
         \x20       concurrency: 1024\n"
    )
}

/// A node in this process.
pub struct Node {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start(sync: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let pkg = dir.path().join("bench.yaml");
        std::fs::write(&pkg, package())?;
        let config = oprc_server::Config {
            data_dir: dir.path().join("data"),
            apply: vec![pkg],
            sync,
            ..Default::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(oprc_server::run(config, listener, async move {
            let _ = stopped.await;
        }));
        wait_for(addr).await?;
        Ok(Self {
            addr,
            stop,
            task,
            _dir: dir,
        })
    }
}

/// Creates objects `o0..o{clients}` with `pairs` random pairs each.
pub(crate) async fn create_objects(
    addr: SocketAddr,
    clients: usize,
    pairs: usize,
    seed: &mut u64,
) -> anyhow::Result<()> {
    for c in 0..clients {
        let body = serde_json::json!({"id": format!("o{c}"), "data": random_pairs(pairs, seed)});
        post(
            addr,
            "/api/classes/bench.record/invokes/new",
            body.to_string(),
        )
        .await?;
    }
    Ok(())
}

pub struct Env {
    pub node: Node,
    pub nosync: Option<Node>,
    direct: SocketAddr,
    noop: SocketAddr,
    direct_task: Bytes,
    function: tokio::process::Child,
}

pub(crate) fn random_pairs(n: usize, seed: &mut u64) -> serde_json::Map<String, serde_json::Value> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut next = |len: usize| -> String {
        (0..len)
            .map(|_| {
                // xorshift: reproducible, no dependency.
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                ALPHABET[(*seed % ALPHABET.len() as u64) as usize] as char
            })
            .collect()
    };
    (0..n)
        .map(|_| (next(10), serde_json::Value::String(next(40))))
        .collect()
}

/// Waits until a node at `addr` answers `/readyz`.
pub(crate) async fn wait_ready(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if get_ok(addr, "/readyz").await {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "no node became ready on {addr}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get_ok(addr: SocketAddr, path: &str) -> bool {
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let Ok((mut send, conn)) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
    else {
        return false;
    };
    tokio::spawn(conn);
    let Ok(req) = hyper::Request::get(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
    else {
        return false;
    };
    matches!(send.send_request(req).await, Ok(r) if r.status().is_success())
}

async fn wait_for(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "nothing listens on {addr}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn noop_server() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let _ = req.into_body().collect().await;
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            br#"{"ok":true}"#,
                        ))))
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(addr)
}

pub(crate) async fn post(addr: SocketAddr, path: &str, body: String) -> anyhow::Result<()> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let resp = send.send_request(req).await?;
    anyhow::ensure!(resp.status().is_success(), "POST {path}: {}", resp.status());
    Ok(())
}

impl Env {
    pub async fn start(clients: usize, pairs: usize, with_nosync: bool) -> anyhow::Result<Self> {
        anyhow::ensure!(
            std::path::Path::new(FUNCTION).exists(),
            "run from the repository root ({FUNCTION} not found)"
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let function = tokio::process::Command::new("python3")
            .arg(FUNCTION)
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("PYTHONPATH", "sdk/python")
            .env("OPRC_NODE_PID", std::process::id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start python3")?;
        let direct = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for(direct).await?;
        let node = Node::start(true).await?;
        let nosync = if with_nosync {
            Some(Node::start(false).await?)
        } else {
            None
        };
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for n in std::iter::once(&node).chain(nosync.as_ref()) {
            create_objects(n.addr, clients, pairs, &mut seed).await?;
        }
        let mut main = oprc_core::ObjectRecord::new(
            oprc_core::ClassKey::new("bench.record")?,
            oprc_core::ObjectId::new("o0")?,
            serde_json::Value::Object(random_pairs(pairs, &mut seed)),
        );
        main.meta.revision = 1;
        let task = oprc_core::Task {
            id: "bench".into(),
            func_key: "bench.fill".into(),
            fb_name: "fill".into(),
            args: [("n".to_owned(), pairs.to_string())].into(),
            req_body: None,
            immutable: false,
            ts: 0,
            main: Some(main),
            output: None,
            main_get_keys: Default::default(),
            main_put_keys: Default::default(),
            output_keys: Default::default(),
            main_keys: Default::default(),
            alloc_main_url: None,
            alloc_output_url: None,
            call_url: None,
            call_token: None,
        };
        Ok(Self {
            node,
            nosync,
            direct,
            noop: noop_server().await?,
            direct_task: serde_json::to_vec(&task)?.into(),
            function,
        })
    }

    fn uri(addr: SocketAddr, path: &str) -> http::Uri {
        format!("http://{addr}{path}").parse().expect("valid uri")
    }

    pub fn direct_task(&self) -> Request {
        Request {
            method: http::Method::POST,
            uri: Self::uri(self.direct, "/"),
            body: self.direct_task.clone(),
        }
    }

    pub fn node_fill(&self, node: SocketAddr, client: usize) -> Request {
        Request {
            method: http::Method::POST,
            uri: Self::uri(
                node,
                &format!("/api/classes/bench.record/objects/o{client}/invokes/fill"),
            ),
            body: Bytes::new(),
        }
    }

    pub fn noop(&self) -> Request {
        Request {
            method: http::Method::GET,
            uri: Self::uri(self.noop, "/"),
            body: Bytes::new(),
        }
    }

    pub fn builtin_get(&self, node: SocketAddr, client: usize) -> Request {
        Request {
            method: http::Method::GET,
            uri: Self::uri(
                node,
                &format!("/api/classes/bench.record/objects/o{client}/invokes/get"),
            ),
            body: Bytes::new(),
        }
    }

    pub fn builtin_update(&self, node: SocketAddr, client: usize, n: u64) -> Request {
        Request {
            method: http::Method::POST,
            uri: Self::uri(
                node,
                &format!("/api/classes/bench.record/objects/o{client}/invokes/update"),
            ),
            body: Bytes::from(format!(r#"{{"v": {n}}}"#)),
        }
    }

    pub async fn stop(mut self) {
        for n in std::iter::once(self.node).chain(self.nosync) {
            let _ = n.stop.send(());
            let _ = n.task.await;
        }
        let _ = self.function.kill().await;
    }
}
