//! The decisions of a process pool, without IO: calls take and give back
//! slots ([`PoolState::pick`], [`PoolState::release`]), the supervisor asks
//! [`PoolState::reconcile`] which instances to add or drain, workers report
//! their lifecycle. Time is a parameter, so tests need no clock.

use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::status::{InstanceState, InstanceStatus};
use crate::{InvokeError, ProcessSpec};

/// Wait before starting again after a second failed start in a row (the
/// first is retried at once: a port taken in between is not worth a
/// failed call); doubles per further failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub min: u32,
    pub max: u32,
    pub concurrency: u32,
    pub idle_timeout: Duration,
}

impl From<&ProcessSpec> for Limits {
    fn from(s: &ProcessSpec) -> Self {
        Self {
            min: s.min_instances,
            max: s.max_instances,
            concurrency: s.concurrency,
            idle_timeout: s.idle_timeout,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Instance {
    pub id: u64,
    pub state: InstanceState,
    pub pid: Option<u32>,
    pub port: Option<u16>,
    /// Set when ready.
    pub uri: Option<Uri>,
    /// The Unix socket it takes calls on, when it listens there.
    pub socket: Option<PathBuf>,
    pub in_flight: u32,
    pub served: u64,
    pub started_at: Instant,
    pub last_used: Instant,
    /// Cancelled to stop the worker.
    pub stop: CancellationToken,
    /// Taken out of rotation because a call found it dead.
    pub broken: bool,
}

/// How a worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Stopped on request (scale-down, replacement, shutdown).
    Stopped,
    /// Never became ready.
    StartFailed(String),
    /// Exited on its own after it was ready.
    Crashed(String),
}

#[derive(Debug)]
pub(crate) struct PoolState {
    pub(super) limits: Limits,
    pub(super) instances: Vec<Instance>,
    pub(super) next_id: u64,
    /// Calls waiting for a slot.
    pub(super) waiting: u32,
    /// Replaced or undeployed: drain everything, start nothing.
    pub(super) retired: bool,
    pub(super) consecutive_failures: u32,
    /// No start before this instant (back-off after failed starts).
    pub(super) start_after: Option<Instant>,
    pub(super) last_failure: Option<String>,
    /// Parent of every instance's stop token (the engine's shutdown).
    pub(super) stop_parent: CancellationToken,
}

impl PoolState {
    pub fn new(limits: Limits, stop_parent: CancellationToken) -> Self {
        Self {
            limits,
            instances: Vec::new(),
            next_id: 1,
            waiting: 0,
            retired: false,
            consecutive_failures: 0,
            start_after: None,
            last_failure: None,
            stop_parent,
        }
    }

    fn live(&self) -> u32 {
        let n = self
            .instances
            .iter()
            .filter(|i| i.state != InstanceState::Draining)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn find(&mut self, id: u64) -> Option<&mut Instance> {
        self.instances.iter_mut().find(|i| i.id == id)
    }

    /// Whether the load asks for more instances than are running or
    /// starting, and the pool may still grow.
    pub(super) fn wants_more(&self) -> bool {
        let mut live = 0u32;
        let mut load = self.waiting;
        for inst in self
            .instances
            .iter()
            .filter(|i| i.state != InstanceState::Draining)
        {
            live += 1;
            load = load.saturating_add(inst.in_flight);
        }
        live < self.limits.max && live.saturating_mul(self.limits.concurrency) < load
    }

    fn in_backoff(&self, now: Instant) -> bool {
        self.start_after.is_some_and(|t| now < t)
    }

    /// Takes a slot on the ready instance with the fewest calls in flight
    /// (the oldest on a tie, so light load concentrates and the others go
    /// idle and can be stopped).
    pub fn pick(&mut self, now: Instant) -> Option<(u64, Uri)> {
        let concurrency = self.limits.concurrency;
        let mut best: Option<&mut Instance> = None;
        for inst in &mut self.instances {
            if inst.state == InstanceState::Ready
                && inst.uri.is_some()
                && inst.in_flight < concurrency
                && best.as_ref().is_none_or(|b| inst.in_flight < b.in_flight)
            {
                best = Some(inst);
            }
        }
        let inst = best?;
        let uri = inst.uri.clone()?;
        inst.in_flight += 1;
        inst.served += 1;
        inst.last_used = now;
        Some((inst.id, uri))
    }

    /// Gives a slot back. True when waiting calls should look again.
    pub fn release(&mut self, id: u64, now: Instant) -> bool {
        if let Some(inst) = self.find(id) {
            inst.in_flight = inst.in_flight.saturating_sub(1);
            inst.last_used = now;
            if inst.state == InstanceState::Draining && inst.in_flight == 0 {
                inst.stop.cancel();
            }
        }
        self.waiting > 0
    }

    /// Why a call that found no slot should give up now rather than wait:
    /// nothing is running or starting and starts are backing off after a
    /// failure.
    pub fn refusal(&self, now: Instant) -> Option<InvokeError> {
        (self.live() == 0 && self.in_backoff(now)).then(|| InvokeError::Unavailable {
            reason: self
                .last_failure
                .clone()
                .unwrap_or_else(|| "the worker failed to start".into()),
        })
    }

    /// Decides which instances to start and which to stop. Returns the ids
    /// of the instances it added (state `Starting`, for the caller to start
    /// a worker each); stops are done by cancelling stop tokens.
    pub fn reconcile(&mut self, now: Instant) -> Vec<u64> {
        let mut added = Vec::new();
        if self.retired {
            for inst in &mut self.instances {
                inst.state = InstanceState::Draining;
            }
        } else {
            let Limits {
                min,
                max,
                concurrency,
                idle_timeout,
            } = self.limits;
            let mut live = self.live();
            let load: u32 = self
                .instances
                .iter()
                .filter(|i| i.state != InstanceState::Draining)
                .map(|i| i.in_flight)
                .sum::<u32>()
                .saturating_add(self.waiting);
            let desired = load.div_ceil(concurrency).clamp(min, max);
            if live < desired && !self.in_backoff(now) {
                for _ in live..desired {
                    added.push(self.add(now));
                }
                live = desired;
            }
            // Newest first, so the oldest instances keep the steady load.
            for inst in self.instances.iter_mut().rev() {
                if live <= desired {
                    break;
                }
                if inst.state == InstanceState::Ready
                    && inst.in_flight == 0
                    && now.saturating_duration_since(inst.last_used) >= idle_timeout
                {
                    inst.state = InstanceState::Draining;
                    live -= 1;
                }
            }
        }
        for inst in &self.instances {
            if inst.state == InstanceState::Draining && inst.in_flight == 0 {
                inst.stop.cancel();
            }
        }
        added
    }

    fn add(&mut self, now: Instant) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.instances.push(Instance {
            id,
            state: InstanceState::Starting,
            pid: None,
            port: None,
            uri: None,
            socket: None,
            in_flight: 0,
            served: 0,
            started_at: now,
            last_used: now,
            stop: self.stop_parent.child_token(),
            broken: false,
        });
        id
    }

    pub fn stop_token(&self, id: u64) -> Option<CancellationToken> {
        self.instances
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.stop.clone())
    }

    /// After a call on `id` broke: takes the instance out of rotation when
    /// it surely is broken (`refused`: its listener is gone) or `exited(pid)`
    /// says its process is gone. Its worker then reports a crash.
    pub fn call_broke(&mut self, id: u64, refused: bool, exited: impl Fn(u32) -> bool) {
        if let Some(inst) = self.find(id)
            && inst.state == InstanceState::Ready
            && (refused || inst.pid.is_some_and(exited))
        {
            inst.state = InstanceState::Draining;
            inst.broken = true;
        }
    }

    pub fn is_broken(&self, id: u64) -> bool {
        self.instances.iter().any(|i| i.id == id && i.broken)
    }

    pub fn spawned(&mut self, id: u64, pid: Option<u32>, port: u16) {
        if let Some(inst) = self.find(id) {
            inst.pid = pid;
            inst.port = Some(port);
        }
    }

    pub fn ready(&mut self, id: u64, uri: Uri, socket: Option<PathBuf>, now: Instant) {
        self.consecutive_failures = 0;
        self.start_after = None;
        if let Some(inst) = self.find(id) {
            inst.uri = Some(uri);
            inst.socket = socket;
            inst.last_used = now;
            if inst.state == InstanceState::Starting {
                inst.state = InstanceState::Ready;
            }
        }
    }

    /// Forgets an instance whose worker has ended.
    pub fn remove(&mut self, id: u64, exit: &Exit, now: Instant) {
        self.instances.retain(|i| i.id != id);
        match exit {
            Exit::Stopped => {}
            Exit::Crashed(reason) => self.last_failure = Some(reason.clone()),
            Exit::StartFailed(reason) => {
                self.last_failure = Some(reason.clone());
                self.consecutive_failures += 1;
                if self.consecutive_failures > 1 {
                    let shift = (self.consecutive_failures - 2).min(16);
                    let backoff = FIRST_BACKOFF.saturating_mul(1 << shift).min(MAX_BACKOFF);
                    self.start_after = Some(now + backoff);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    pub(super) fn instance_status(&self, now: Instant) -> Vec<InstanceStatus> {
        self.instances
            .iter()
            .map(|i| InstanceStatus {
                id: i.id,
                state: i.state,
                pid: i.pid,
                port: i.port,
                socket: i.socket.clone(),
                in_flight: i.in_flight,
                served: i.served,
                uptime_ms: u64::try_from(now.saturating_duration_since(i.started_at).as_millis())
                    .unwrap_or(u64::MAX),
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
