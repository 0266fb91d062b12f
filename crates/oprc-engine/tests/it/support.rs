//! Test helpers: an engine on a background task, the test function, polling.

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use oprc_core::FunctionKey;
use oprc_engine::{Handle, InstanceState, InvokeError, Options, ProcessSpec, Service, Status};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/fn_server.py");
pub const SQUAT_WORKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/squat_worker.py");
pub const UNLISTEN_SERVER: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/unlisten_server.py");
/// The Python SDK of this repository.
pub const PYTHON_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sdk/python");

/// An engine service running on a background task.
pub struct Engine {
    pub handle: Handle,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Engine {
    pub fn start() -> Self {
        Self::start_with(options())
    }

    pub fn start_with(options: Options) -> Self {
        let service = Service::new(options);
        let handle = service.handle();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(service.run(cancel.clone()));
        Self {
            handle,
            cancel,
            task,
        }
    }

    /// Shuts the engine down and waits until every worker is reaped.
    pub async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("engine stops within 10 s")
            .expect("engine task does not panic");
    }
}

/// The engine options of the tests: a fast supervisor, a short grace.
pub fn options() -> Options {
    Options {
        reconcile_interval: Duration::from_millis(20),
        stop_grace: Duration::from_secs(2),
        ..Options::default()
    }
}

pub fn key(name: &str) -> FunctionKey {
    FunctionKey::new(format!("test.{name}")).expect("valid function key")
}

/// The test function as a process deployment: 0..=1 instances.
pub fn spec() -> ProcessSpec {
    ProcessSpec {
        min_instances: 0,
        max_instances: 1,
        concurrency: 4,
        idle_timeout: Duration::from_secs(60),
        readiness_timeout: Duration::from_secs(10),
        ..ProcessSpec::new(vec!["python3".into(), SCRIPT.into()])
    }
}

pub fn task(args: Value) -> Bytes {
    let task =
        json!({"id": "inv-1", "funcKey": "test.fn", "args": args, "main": {"data": {"n": 1}}});
    Bytes::from(serde_json::to_vec(&task).expect("json"))
}

/// Invokes with `args` and parses the answer as JSON.
pub async fn call(h: &Handle, f: &FunctionKey, args: Value) -> Result<Value, InvokeError> {
    call_within(h, f, args, Duration::from_secs(10)).await
}

pub async fn call_within(
    h: &Handle,
    f: &FunctionKey,
    args: Value,
    timeout: Duration,
) -> Result<Value, InvokeError> {
    let answer = h
        .invoke(f, None, task(args), timeout, &HeaderMap::new())
        .await?;
    Ok(serde_json::from_slice(&answer).expect("the function answers json"))
}

/// Polls `check` every 10 ms until it gives a value; panics after `within`.
pub async fn eventually<T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Pids of the ready instances of `f`'s current deployment.
pub fn ready_pids(status: &Status, f: &FunctionKey) -> Vec<u32> {
    status
        .deployment(f)
        .map(|d| {
            d.instances
                .iter()
                .filter(|i| i.state == InstanceState::Ready)
                .filter_map(|i| i.pid)
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `f` has `n` ready instances; their pids.
pub async fn wait_ready(h: &Handle, f: &FunctionKey, n: usize) -> Vec<u32> {
    eventually(
        &format!("{f} has {n} ready instances"),
        Duration::from_secs(10),
        || {
            let pids = ready_pids(&h.status(), f);
            (pids.len() == n).then_some(pids)
        },
    )
    .await
}

/// The instances of `f`'s current deployment.
pub fn instances(h: &Handle, f: &FunctionKey) -> Vec<oprc_engine::InstanceStatus> {
    h.status()
        .deployment(f)
        .map(|d| d.instances.clone())
        .unwrap_or_default()
}

/// The test function, listening on its Unix socket.
pub fn unix_spec() -> ProcessSpec {
    let mut s = spec();
    s.env.insert("FN_TRANSPORT".into(), "unix".into());
    s
}

/// Whether a process runs (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub fn pid_of(answer: &Value) -> u32 {
    answer["body"]["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .expect("the answer names the worker pid")
}
