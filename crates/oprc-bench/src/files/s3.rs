//! The S3 server of the file benchmark: `s3s-fs` over a temporary
//! directory, on loopback, or (the shaped run) in a network namespace
//! behind a veth pair with a `tbf` bandwidth limit on both ends, reached
//! through the delaying proxy. Everything started here is stopped, and the
//! namespace deleted, when the [`S3Server`] is dropped (also on errors).
//!
//! s3s-fs 0.14 does not set `TCP_NODELAY` on the connections it accepts.
//! A response's body then waits for the ACK of its headers, which a client
//! on a kept-alive connection (the node's S3 client) delays by 40 ms: a
//! relayed 10 KiB download took 45 ms instead of 1 ms. Real S3 servers do
//! not behave so; unless `stock` is asked for, s3s-fs runs with a small
//! `LD_PRELOAD` shim (compiled here with `cc`) that sets `TCP_NODELAY` on
//! every accepted socket.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;

use super::proxy::Proxy;

pub const KEY_ID: &str = "oprcbench";
pub const SECRET: &str = "oprcbench-secret-key";
pub const REGION: &str = "us-east-1";

/// Sets `TCP_NODELAY` on every socket `accept`/`accept4` returns.
const NODELAY_SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
static int nodelay(int fd) {
    int one = 1;
    if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}
int accept4(int s, struct sockaddr *a, socklen_t *l, int f) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real) real = dlsym(RTLD_NEXT, "accept4");
    return nodelay(real(s, a, l, f));
}
int accept(int s, struct sockaddr *a, socklen_t *l) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real) real = dlsym(RTLD_NEXT, "accept");
    return nodelay(real(s, a, l));
}
"#;

/// Compiles the shim into `dir`; `None` (with a warning) without `cc`.
fn nodelay_shim(dir: &Path) -> Option<PathBuf> {
    let src = dir.join("nodelay.c");
    let lib = dir.join("nodelay.so");
    let built = std::fs::write(&src, NODELAY_SHIM).is_ok()
        && std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&lib)
            .arg(&src)
            .arg("-ldl")
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !built {
        eprintln!(
            "oprc-bench files: cannot build the TCP_NODELAY shim for s3s-fs (no `cc`?); its \
             responses on kept-alive connections may wait 40 ms for delayed ACKs"
        );
    }
    built.then_some(lib)
}

/// The path to the S3 server: bandwidth and delay.
#[derive(Debug, Clone)]
pub struct Shape {
    /// A `tc` rate, e.g. `1gbit`.
    pub rate: String,
    /// Held per chunk and direction by the proxy.
    pub delay: Duration,
    /// The first three octets of the veth pair's /24 (`.1` host, `.2` the
    /// namespace).
    pub subnet: String,
}

/// A running S3 server. Fields drop in order: the proxy and the server
/// process go before the namespace.
pub struct S3Server {
    /// Where the nodes, the functions and the plain FaaS service reach it.
    pub endpoint: SocketAddr,
    /// Where the server itself listens (behind the proxy when shaped).
    pub direct: SocketAddr,
    pub pid: Option<u32>,
    proxy: Option<Proxy>,
    child: tokio::process::Child,
    _net: Option<Netns>,
    _dir: tempfile::TempDir,
}

/// `s3s-fs` on PATH or in ~/.cargo/bin.
pub fn find_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_owned());
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("s3s-fs"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/s3s-fs"));
    on_path
        .into_iter()
        .chain(home)
        .find(|p| p.is_file())
        .context("s3s-fs not found (on PATH or in ~/.cargo/bin): run scripts/install-s3s-fs.sh")
}

impl S3Server {
    /// Starts the server with `buckets` (empty) in a new temporary
    /// directory under `tmp`. `Ok(None)`: the shaped path is impossible
    /// here (no network namespaces); the reason was printed.
    /// Its data go to `data` (a tmpfs keeps its disk writes from stalling
    /// the nodes' fsyncs), its log and the shim to `tmp`; `stock` runs
    /// s3s-fs without the shim.
    pub async fn start(
        bin: &Path,
        tmp: &Path,
        data: &Path,
        buckets: &[&str],
        shape: Option<&Shape>,
        stock: bool,
    ) -> anyhow::Result<Option<Self>> {
        let dir = tempfile::Builder::new()
            .prefix("oprc-bench-s3")
            .tempdir_in(data)?;
        for b in buckets {
            std::fs::create_dir(dir.path().join(b))?;
        }
        let net = match shape {
            None => None,
            Some(shape) => match Netns::create(shape) {
                Ok(n) => Some(n),
                Err(e) => {
                    eprintln!(
                        "oprc-bench files: the shaped run needs network namespaces (root, `ip netns`, \
                         `tc`), which are unavailable here: {e:#}; skipping it"
                    );
                    return Ok(None);
                }
            },
        };
        let (listen, mut cmd) = match &net {
            None => {
                let port = std::net::TcpListener::bind("127.0.0.1:0")?
                    .local_addr()?
                    .port();
                (
                    SocketAddr::from(([127, 0, 0, 1], port)),
                    tokio::process::Command::new(bin),
                )
            }
            Some(n) => {
                let mut cmd = tokio::process::Command::new("ip");
                cmd.args(["netns", "exec", &n.name]).arg(bin);
                (n.inner_addr(9000)?, cmd)
            }
        };
        if !stock && let Some(shim) = nodelay_shim(tmp) {
            cmd.env("LD_PRELOAD", shim);
        }
        let log = std::fs::File::create(tmp.join("s3s-fs.log"))?;
        let child = cmd
            .args(["--host", &listen.ip().to_string(), "--port"])
            .arg(listen.port().to_string())
            .args(["--access-key", KEY_ID, "--secret-key", SECRET])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("failed to start {}", bin.display()))?;
        let pid = child.id();
        let mut server = Self {
            endpoint: listen,
            direct: listen,
            pid,
            proxy: None,
            child,
            _net: net,
            _dir: dir,
        };
        super::nodes::wait_for(listen).await?;
        if let Some(shape) = shape {
            let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], 0)), listen, shape.delay)?;
            server.endpoint = proxy.addr;
            server.proxy = Some(proxy);
        }
        Ok(Some(server))
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.endpoint)
    }

    /// The `--blobs` URL of `bucket`.
    pub fn blobs(&self, bucket: &str) -> String {
        format!("s3://{bucket}?endpoint={}&region={REGION}", self.url())
    }

    pub async fn stop(mut self) {
        self.proxy = None;
        let _ = self.child.kill().await;
    }
}

/// A network namespace with a veth pair to it, shaped on both ends;
/// deleted (with the pair) when dropped.
struct Netns {
    name: String,
    host_if: String,
    subnet: String,
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    anyhow::ensure!(
        out.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

impl Netns {
    fn create(shape: &Shape) -> anyhow::Result<Self> {
        let host_ip = format!("{}.1", shape.subnet);
        let addrs = std::process::Command::new("ip")
            .args(["-o", "-4", "addr", "show"])
            .output()
            .context("cannot run ip")?;
        anyhow::ensure!(
            !String::from_utf8_lossy(&addrs.stdout).contains(&format!(" {host_ip}/")),
            "{host_ip} is already in use here: choose another --subnet"
        );
        let id = std::process::id();
        let name = format!("oprcb{id}");
        run("ip", &["netns", "add", &name])?;
        let ns = Self {
            name,
            host_if: format!("ob{id}h"),
            subnet: shape.subnet.clone(),
        };
        let inner_if = format!("ob{id}n");
        let host_cidr = format!("{host_ip}/24");
        let inner_cidr = format!("{}.2/24", shape.subnet);
        let (n, h, i) = (ns.name.as_str(), ns.host_if.as_str(), inner_if.as_str());
        let tbf = |dev: &str| {
            [
                "qdisc",
                "add",
                "dev",
                dev,
                "root",
                "tbf",
                "rate",
                &shape.rate,
                "burst",
                "1mb",
                "latency",
                "10ms",
            ]
            .map(str::to_owned)
        };
        run("ip", &["link", "add", h, "type", "veth", "peer", "name", i])?;
        run("ip", &["link", "set", i, "netns", n])?;
        run("ip", &["addr", "add", &host_cidr, "dev", h])?;
        run("ip", &["link", "set", h, "up"])?;
        let exec = |args: &[&str]| {
            let mut all = vec!["netns", "exec", n];
            all.extend_from_slice(args);
            run("ip", &all)
        };
        exec(&["ip", "addr", "add", &inner_cidr, "dev", i])?;
        exec(&["ip", "link", "set", i, "up"])?;
        exec(&["ip", "link", "set", "lo", "up"])?;
        let host_tbf = tbf(h);
        run(
            "tc",
            &host_tbf.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;
        let inner_tbf = tbf(i);
        let mut inner: Vec<&str> = vec!["tc"];
        inner.extend(inner_tbf.iter().map(String::as_str));
        exec(&inner)?;
        eprintln!(
            "oprc-bench files: s3 in namespace {n} at {}.2, veth {h}/{i}, tbf rate {} on both ends",
            shape.subnet, shape.rate
        );
        Ok(ns)
    }

    fn inner_addr(&self, port: u16) -> anyhow::Result<SocketAddr> {
        format!("{}.2:{port}", self.subnet)
            .parse()
            .context("bad --subnet")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both; the namespace goes
        // when its last process has exited.
        let _ = run("ip", &["link", "del", &self.host_if]);
        if let Err(e) = run("ip", &["netns", "del", &self.name]) {
            eprintln!(
                "oprc-bench files: could not delete namespace {}: {e:#}",
                self.name
            );
        }
    }
}
