//! Where the tests find NATS, a stream of their own per test, and
//! throwaway servers for the fault tests.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use oprc_core::PartitionId;
use oprc_log_nats::{NatsLog, Options, redact_url};
use oprc_store::{ErrorKind, InvocationLog, LogEntry};

const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// The machine's (shared) server: `OPRC_TEST_NATS`.
pub fn server_url() -> String {
    std::env::var("OPRC_TEST_NATS").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// Options naming a stream, subjects and consumers no other test uses.
pub fn unique_options(tag: &str) -> Options {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_nanos();
    let id = format!(
        "{tag}{}x{}x{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    Options {
        stream: format!("OPRC_TEST_{id}"),
        subject_prefix: format!("oprc.test.{id}"),
        consumer_prefix: format!("{id}-p"),
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        ..Options::default()
    }
}

/// Connects, failing the test with what to run when the server cannot be
/// reached.
pub async fn open(url: &str, options: &Options) -> NatsLog {
    match NatsLog::connect(url, options.clone()).await {
        Ok(log) => log,
        Err(e) if e.kind == ErrorKind::Unavailable => panic!(
            "cannot reach NATS with JetStream at {} ({e}); run scripts/ensure-nats.sh and \
             export the OPRC_TEST_NATS it prints",
            redact_url(url)
        ),
        Err(e) => panic!("cannot open the log: {e}"),
    }
}

/// Deletes a test's stream (its consumers go with it).
pub async fn delete_stream(url: &str, name: &str) {
    let client = async_nats::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach NATS at {url} to clean up: {e}"));
    let js = async_nats::jetstream::new(client);
    // A test may end before it made its stream.
    let _ = js.delete_stream(name).await;
}

/// Runs `test` with options of its own on the shared server, then deletes
/// its stream (also when the test panics).
pub async fn with_stream<F, Fut>(tag: &str, test: F)
where
    F: FnOnce(Options) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let options = unique_options(tag);
    let result = tokio::spawn(test(options.clone())).await;
    delete_stream(&server_url(), &options.stream).await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Polls `check` until it holds, failing the test after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads `p` from `from` until an entry at or past `until` came, retrying
/// reads that fail as `Unavailable` (a server coming back), for `within`.
pub async fn read_until(
    log: &NatsLog,
    p: PartitionId,
    from: u64,
    until: u64,
    within: Duration,
) -> Vec<LogEntry> {
    let deadline = Instant::now() + within;
    let mut out: Vec<LogEntry> = Vec::new();
    let mut next = from;
    while out.last().is_none_or(|e| e.offset < until) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "entries up to {until} did not come within {within:?}"
        );
        match tokio::time::timeout(left, log.read(p, next, 64)).await {
            Ok(Ok(got)) => {
                assert!(got.first().is_some_and(|e| e.offset >= next));
                next = got.last().map_or(next, |e| e.offset + 1);
                out.extend(got);
            }
            Ok(Err(e)) if e.kind == ErrorKind::Unavailable => {
                eprintln!("read failed, retrying: {e}");
            }
            Ok(Err(e)) => panic!("read failed: {e}"),
            Err(_) => {}
        }
    }
    out
}

pub fn payloads(entries: &[LogEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
        .collect()
}

/// The nats-server binary for throwaway servers: `OPRC_NATS_SERVER_BIN`
/// or `nats-server` on the PATH.
fn server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("OPRC_NATS_SERVER_BIN") {
        return bin.into();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no nats-server binary for a throwaway server: set OPRC_NATS_SERVER_BIN or put \
                 nats-server on the PATH (scripts/ensure-nats.sh prints or installs one)"
            )
        })
}

/// A nats-server of the test's own, on a free port, storing in a temp
/// dir; stopped (and its directory removed) when dropped. Fault tests
/// stop and restart it; the machine's shared server is never touched.
pub struct Server {
    bin: PathBuf,
    port: u16,
    jetstream: bool,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl Server {
    pub async fn start(jetstream: bool) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Server {
            bin: server_bin(),
            port,
            jetstream,
            dir: tempfile::Builder::new()
                .prefix("oprc-nats-test")
                .tempdir()
                .expect("a temp dir"),
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, on the same port and store) and waits until it
    /// listens.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the server runs already");
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if self.jetstream {
            cmd.arg("-js").arg("-sd").arg(self.dir.path().join("js"));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("a server log file");
        cmd.stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        eventually(
            "the throwaway nats-server listens",
            Duration::from_secs(20),
            || {
                let addr = addr.clone();
                async move { tokio::net::TcpStream::connect(addr).await.is_ok() }
            },
        )
        .await;
    }

    /// Stops it gracefully (SIGTERM: it flushes its store) and waits for
    /// its exit.
    pub async fn stop(&mut self) {
        let mut child = self.child.take().expect("the server runs");
        let pid = child.id().expect("a running child has a pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("signal the throwaway nats-server");
        tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .expect("the throwaway nats-server stops within 20s")
            .expect("wait for the nats-server");
    }
}
