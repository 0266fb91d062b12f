//! What `Handle::status` reports, and the counters behind it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use oprc_core::FunctionKey;
use serde::Serialize;

/// A snapshot of every deployment of the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Sorted by function key; a replaced or undeployed process deployment
    /// whose workers are still draining is listed with `draining: true`.
    pub deployments: Vec<DeploymentStatus>,
}

impl Status {
    /// The current (not draining) deployment of `function`.
    pub fn deployment(&self, function: &FunctionKey) -> Option<&DeploymentStatus> {
        self.deployments
            .iter()
            .find(|d| &d.function == function && !d.draining)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    pub function: FunctionKey,
    pub engine: EngineKind,
    /// Replaced or undeployed; its workers stop once their calls are done.
    pub draining: bool,
    /// The revision it was deployed with (the last one, when an equal
    /// deployment was deployed again).
    pub revision: u64,
    /// Live instances (process engine); empty for HTTP.
    pub instances: Vec<InstanceStatus>,
    /// Calls waiting for a free instance slot.
    pub waiting: u32,
    /// Counters since the function was first deployed (kept across
    /// replacements, so they only grow).
    pub counters: Counters,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EngineKind {
    Http { url: String },
    Process { command: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// Unique within the deployment, never reused.
    pub id: u64,
    pub state: InstanceState,
    /// Operating-system process id, once started.
    pub pid: Option<u32>,
    /// The `PORT` the worker was given, once started. It is called there
    /// (on 127.0.0.1 or ::1) when `socket` is `None`.
    pub port: Option<u16>,
    /// The Unix socket (`OPRC_SOCKET`) the worker is called on, when it
    /// listens there.
    pub socket: Option<std::path::PathBuf>,
    pub in_flight: u32,
    /// Calls sent to this instance.
    pub served: u64,
    pub uptime_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Started, not yet accepting connections.
    Starting,
    /// Takes calls.
    Ready,
    /// Takes no new calls; stopped once its in-flight calls are done.
    Draining,
}

/// Counter values (a snapshot), for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Calls finished, successful or not.
    pub invocations: u64,
    /// Calls that ended in an error.
    pub failures: u64,
    /// Calls in progress (waiting for a slot included).
    pub in_flight: u64,
    /// Worker processes started.
    pub starts: u64,
    /// Workers that exited or timed out before they were ready.
    pub start_failures: u64,
    /// Ready workers that exited without being asked to.
    pub crashes: u64,
}

/// Live counters of one function, shared by the call path and the workers.
#[derive(Debug, Default)]
pub(crate) struct LiveCounters {
    invocations: AtomicU64,
    failures: AtomicU64,
    in_flight: AtomicU64,
    pub(crate) starts: AtomicU64,
    pub(crate) start_failures: AtomicU64,
    pub(crate) crashes: AtomicU64,
}

impl LiveCounters {
    /// Counts a call in flight until the guard is finished or dropped.
    pub(crate) fn enter(&self) -> CallCount<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        CallCount {
            counters: self,
            failed: true,
        }
    }

    pub(crate) fn snapshot(&self) -> Counters {
        Counters {
            invocations: self.invocations.load(Relaxed),
            failures: self.failures.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            starts: self.starts.load(Relaxed),
            start_failures: self.start_failures.load(Relaxed),
            crashes: self.crashes.load(Relaxed),
        }
    }
}

/// One call in flight; a call dropped before [`CallCount::succeeded`]
/// (cancelled or failed) counts as a failure.
pub(crate) struct CallCount<'a> {
    counters: &'a LiveCounters,
    failed: bool,
}

impl CallCount<'_> {
    pub(crate) fn succeeded(mut self) {
        self.failed = false;
    }

    /// The call was not made (nothing was sent): not counted at all.
    pub(crate) fn abandoned(self) {
        self.counters.in_flight.fetch_sub(1, Relaxed);
        std::mem::forget(self);
    }
}

impl Drop for CallCount<'_> {
    fn drop(&mut self) {
        let c = self.counters;
        c.in_flight.fetch_sub(1, Relaxed);
        c.invocations.fetch_add(1, Relaxed);
        if self.failed {
            c.failures.fetch_add(1, Relaxed);
        }
    }
}
