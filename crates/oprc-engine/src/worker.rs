//! One worker process: start it (with `PORT` and `OPRC_SOCKET`), wait until
//! it is ready (`ready`), register where it takes calls, forward its output,
//! notice its exit, stop it.

use std::collections::VecDeque;
use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use oprc_core::FunctionKey;
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::WorkerOutput;
use crate::connector::{Endpoint, Endpoints};
use crate::pool::{Exit, Pool};
use crate::ready::{self, Probe};

/// Stderr lines kept to explain a worker that died.
const TAIL_LINES: usize = 20;
/// Longer output lines are split.
const MAX_LINE: u64 = 16 * 1024;
/// How long output is still read after the worker has exited (a grandchild
/// may hold the pipes open).
const OUTPUT_DRAIN: Duration = Duration::from_millis(500);

pub(crate) struct Worker {
    pub pool: Arc<Pool>,
    pub id: u64,
    pub output: WorkerOutput,
    pub grace: Duration,
    /// Unique among the engine's worker starts: names the socket and the
    /// endpoint.
    pub seq: u64,
    /// `OPRC_SOCKET`: where the worker may listen, in the engine's private
    /// directory. `None` when the engine has no such directory.
    pub socket: Option<PathBuf>,
    pub endpoints: Arc<Endpoints>,
}

/// Runs the worker until it exits or is stopped, then removes its instance
/// from the pool (also when this future is dropped or panics).
pub(crate) async fn run(worker: Worker) {
    let Some(stop) = worker.pool.stop_token(worker.id) else {
        return;
    };
    let mut removal = Removal {
        pool: &worker.pool,
        id: worker.id,
        exit: Exit::Crashed("the engine dropped the worker".into()),
    };
    let exit = supervise(&worker, &stop).await;
    let (key, id) = (&worker.pool.key, worker.id);
    let counters = &worker.pool.counters;
    match &exit {
        Exit::Stopped => debug!(function = %key, instance = id, "worker stopped"),
        Exit::StartFailed(reason) => {
            counters.start_failures.fetch_add(1, Relaxed);
            warn!(function = %key, instance = id, %reason, "worker failed to start");
        }
        Exit::Crashed(reason) => {
            counters.crashes.fetch_add(1, Relaxed);
            warn!(function = %key, instance = id, %reason, "worker crashed");
        }
    }
    removal.exit = exit;
}

struct Removal<'a> {
    pool: &'a Pool,
    id: u64,
    exit: Exit,
}

impl Drop for Removal<'_> {
    fn drop(&mut self) {
        self.pool.remove(self.id, &self.exit);
    }
}

type Tail = Arc<Mutex<VecDeque<String>>>;

async fn supervise(w: &Worker, stop: &CancellationToken) -> Exit {
    let spec = &w.pool.spec;
    let Some((program, args)) = spec.command.split_first() else {
        return Exit::StartFailed("the command is empty".into());
    };
    let port = match free_port() {
        Ok(port) => port,
        Err(e) => return Exit::StartFailed(format!("could not pick a free port: {e}")),
    };
    let _socket = w.socket.as_deref().map(SocketFile::new);
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(&spec.env)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so stopping it reaches its children too;
        // kill_on_drop is the backstop if this task is dropped.
        .process_group(0)
        .kill_on_drop(true);
    match &w.socket {
        Some(path) => cmd.env("OPRC_SOCKET", path),
        None => cmd.env_remove("OPRC_SOCKET"),
    };
    if let Some(dir) = &spec.workdir {
        cmd.current_dir(dir);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return Exit::StartFailed(format!("could not start {program:?}: {e}")),
    };
    let Some(pid) = child.id() else {
        return Exit::StartFailed(format!("{program:?} exited at once"));
    };
    w.pool.spawned(w.id, Some(pid), port);
    w.pool.counters.starts.fetch_add(1, Relaxed);
    debug!(function = %w.pool.key, instance = w.id, pid, port, "worker started");

    let tail: Tail = Arc::default();
    let sink = Sink {
        mode: w.output,
        key: w.pool.key.clone(),
        id: w.id,
    };
    let mut io = JoinSet::new();
    if let Some(out) = child.stdout.take() {
        io.spawn(forward(out, "stdout", sink.clone(), None));
    }
    if let Some(err) = child.stderr.take() {
        io.spawn(forward(err, "stderr", sink, Some(Arc::clone(&tail))));
    }
    let exit = lifecycle(w, stop, &mut child, port, &tail, &mut io).await;
    drain(&mut io).await;
    exit
}

async fn lifecycle(
    w: &Worker,
    stop: &CancellationToken,
    child: &mut Child,
    port: u16,
    tail: &Tail,
    io: &mut JoinSet<()>,
) -> Exit {
    let pid = child.id();
    let timeout = w.pool.spec.readiness_timeout;
    let probe = Probe {
        socket: w.socket.as_deref(),
        port,
        pgid: pid.unwrap_or_default(),
    };
    let ready = tokio::select! {
        biased;
        () = stop.cancelled() => {
            let _ = terminate(child, pid, w.grace).await;
            return Exit::Stopped;
        }
        status = child.wait() => {
            drain(io).await;
            return Exit::StartFailed(format!(
                "worker exited before it was ready ({}){}",
                describe(status),
                tail_text(tail)
            ));
        }
        ready = ready::wait(probe, timeout) => ready,
    };
    let endpoint = match ready {
        Ok(endpoint) => endpoint,
        Err(reason) => {
            let _ = terminate(child, pid, w.grace).await;
            drain(io).await;
            return Exit::StartFailed(format!("{reason}{}", tail_text(tail)));
        }
    };
    let authority = endpoint.authority(w.seq);
    let uri = match format!("http://{authority}/").parse() {
        Ok(uri) => uri,
        Err(e) => {
            let _ = terminate(child, pid, w.grace).await;
            return Exit::StartFailed(format!("invalid worker url: {e}"));
        }
    };
    let socket = match &endpoint {
        Endpoint::Unix(path) => Some(path.clone()),
        Endpoint::Tcp { .. } => None,
    };
    debug!(
        function = %w.pool.key, instance = w.id, pid, port, socket = ?socket, "worker ready"
    );
    w.endpoints.insert(authority.clone(), w.seq, endpoint);
    // Dropped when this returns: no new connection to the worker after that.
    let _registered = Registration {
        endpoints: &w.endpoints,
        authority,
        seq: w.seq,
    };
    w.pool.ready(w.id, uri, socket);

    let status = tokio::select! {
        biased;
        () = stop.cancelled() => match child.try_wait() {
            // It had exited on its own already.
            Ok(Some(status)) => Ok(status),
            _ => {
                let status = terminate(child, pid, w.grace).await;
                // Stopped because a call found it dead: still a crash.
                if !w.pool.is_broken(w.id) {
                    return Exit::Stopped;
                }
                status
            }
        },
        status = child.wait() => status,
    };
    // Whatever it left behind in its group goes too.
    signal_group(pid, Signal::SIGKILL);
    drain(io).await;
    Exit::Crashed(format!(
        "worker exited ({}){}",
        describe(status),
        tail_text(tail)
    ))
}

/// The endpoint of a ready worker, removed on drop.
struct Registration<'a> {
    endpoints: &'a Endpoints,
    authority: String,
    seq: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.endpoints.remove(&self.authority, self.seq);
    }
}

/// A worker's socket path: anything left there is removed before the start
/// and after the end.
struct SocketFile(PathBuf);

impl SocketFile {
    fn new(path: &std::path::Path) -> Self {
        remove_socket(path);
        Self(path.to_owned())
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        remove_socket(&self.0);
    }
}

fn remove_socket(path: &std::path::Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!(path = %path.display(), error = %e, "could not remove a worker socket");
    }
}

/// Whether the child process `pid` has exited, without reaping it (its
/// worker task does that).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn has_exited(pid: u32) -> bool {
    use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(Pid::from_raw(pid)), flags) {
        Ok(WaitStatus::StillAlive) => false,
        // Exited, or already reaped.
        Ok(_) | Err(Errno::ECHILD) => true,
        Err(_) => false,
    }
}

/// Without `waitid`, the worker task alone notices an exit.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn has_exited(_pid: u32) -> bool {
    false
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// SIGTERM to the worker's group, SIGKILL after `grace` to whatever of the
/// group is left (a shell leader may exit at once while its worker child
/// still finishes), then reaps the leader.
async fn terminate(
    child: &mut Child,
    pid: Option<u32>,
    grace: Duration,
) -> std::io::Result<ExitStatus> {
    let deadline = Instant::now() + grace;
    if !signal_group(pid, Signal::SIGTERM) {
        let _ = child.start_kill();
    }
    if tokio::time::timeout_at(deadline, child.wait())
        .await
        .is_err()
    {
        signal_group(pid, Signal::SIGKILL);
        if let Err(e) = child.kill().await {
            warn!(pid, error = %e, "could not kill worker");
        }
    }
    // The rest of the group gets the rest of the grace, polled.
    let mut delay = Duration::from_millis(1);
    while group_alive(pid) && Instant::now() + delay < deadline {
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(50));
    }
    signal_group(pid, Signal::SIGKILL);
    child.wait().await
}

/// Whether a process of the group led by `pid` is left.
fn group_alive(pid: Option<u32>) -> bool {
    pid.and_then(|p| i32::try_from(p).ok())
        .is_some_and(|p| killpg(Pid::from_raw(p), None).is_ok())
}

/// Sends `signal` to the process group led by `pid`. False when it could
/// not be sent (no pid, or an error other than "no such process").
fn signal_group(pid: Option<u32>, signal: Signal) -> bool {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) else {
        return false;
    };
    match killpg(Pid::from_raw(pid), signal) {
        Ok(()) | Err(Errno::ESRCH) => true,
        Err(e) => {
            debug!(pid, %signal, error = %e, "could not signal worker group");
            false
        }
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(e) => format!("wait failed: {e}"),
    }
}

fn tail_text(tail: &Tail) -> String {
    let lines = tail.lock();
    if lines.is_empty() {
        return String::new();
    }
    let mut s = String::from("; last stderr lines:");
    for line in lines.iter() {
        s.push('\n');
        s.push_str(line);
    }
    s
}

/// Lets the output readers finish, for a short while.
async fn drain(io: &mut JoinSet<()>) {
    let all = async { while io.join_next().await.is_some() {} };
    if tokio::time::timeout(OUTPUT_DRAIN, all).await.is_err() {
        io.abort_all();
    }
}

#[derive(Clone)]
struct Sink {
    mode: WorkerOutput,
    key: FunctionKey,
    id: u64,
}

impl Sink {
    fn emit(&self, stream: &'static str, line: &str) {
        match self.mode {
            WorkerOutput::Tracing => info!(
                target: "oprc_engine::worker",
                function = %self.key,
                instance = self.id,
                stream,
                "{line}"
            ),
            WorkerOutput::Prefixed => {
                let (key, id) = (&self.key, self.id);
                let _ = if stream == "stderr" {
                    writeln!(std::io::stderr().lock(), "[{key}#{id}] {line}")
                } else {
                    writeln!(std::io::stdout().lock(), "[{key}#{id}] {line}")
                };
            }
            WorkerOutput::Discard => {}
        }
    }
}

async fn forward(
    pipe: impl AsyncRead + Unpin,
    stream: &'static str,
    sink: Sink,
    tail: Option<Tail>,
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        match (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']);
        sink.emit(stream, line);
        if let Some(tail) = &tail {
            let mut lines = tail.lock();
            if lines.len() == TAIL_LINES {
                lines.pop_front();
            }
            lines.push_back(line.to_owned());
        }
    }
}
