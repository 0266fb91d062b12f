//! The instances of one process deployment, shared by the call path, the
//! supervisor and the workers: [`PoolState`] (in `state`) decides; [`Pool`]
//! wraps it in a mutex (never held across an `.await`) with the
//! notifications that wake waiting calls and the supervisor.

mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use oprc_core::FunctionKey;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) use state::Exit;
use state::{Limits, PoolState};

use crate::status::{DeploymentStatus, EngineKind, LiveCounters};
use crate::{InvokeError, ProcessSpec};

/// A process deployment shared by the call path, the supervisor and the
/// workers.
pub(crate) struct Pool {
    pub key: FunctionKey,
    pub spec: ProcessSpec,
    pub counters: Arc<LiveCounters>,
    state: Mutex<PoolState>,
    /// Wakes calls waiting for a slot.
    changed: Notify,
    /// Wakes the supervisor.
    supervisor: Arc<Notify>,
}

/// Why no slot was taken.
pub(crate) enum AcquireError {
    /// The pool was replaced or undeployed, or the call was not admitted
    /// (its revision is no longer current): look the function up again.
    Stale,
    Failed(InvokeError),
}

impl Pool {
    pub fn new(
        key: FunctionKey,
        spec: ProcessSpec,
        counters: Arc<LiveCounters>,
        supervisor: Arc<Notify>,
        stop_parent: CancellationToken,
    ) -> Self {
        let state = PoolState::new(Limits::from(&spec), stop_parent);
        Self {
            key,
            spec,
            counters,
            state: Mutex::new(state),
            changed: Notify::new(),
            supervisor,
        }
    }

    /// Takes a slot on a ready instance, waiting (up to `deadline`) for one
    /// to start or free up. `admit` is asked, under the pool's lock, right
    /// before each try: false makes the call give up with `Stale`.
    /// Cancel-safe.
    pub async fn acquire(
        self: &Arc<Self>,
        deadline: Instant,
        timeout: Duration,
        admit: impl Fn() -> bool,
    ) -> Result<Slot, AcquireError> {
        let mut waiter: Option<Waiter<'_>> = None;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            {
                // Declared after `waiter`, so on every return the lock is
                // released before the waiter's drop takes it again.
                let mut st = self.state.lock();
                if st.retired || !admit() {
                    return Err(AcquireError::Stale);
                }
                if st.stop_parent.is_cancelled() {
                    return Err(AcquireError::Failed(InvokeError::Unavailable {
                        reason: "the engine is shutting down".into(),
                    }));
                }
                let now = Instant::now();
                if let Some((id, uri)) = st.pick(now) {
                    return Ok(Slot {
                        pool: Arc::clone(self),
                        id,
                        uri,
                    });
                }
                if let Some(e) = st.refusal(now) {
                    return Err(AcquireError::Failed(e));
                }
                if waiter.is_none() {
                    st.waiting += 1;
                    waiter = Some(Waiter { pool: self });
                }
                // Registered before the lock is released: no wake-up lost.
                notified.as_mut().enable();
                if st.wants_more() {
                    self.supervisor.notify_one();
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(AcquireError::Failed(InvokeError::Timeout {
                    after: timeout,
                }));
            }
        }
    }

    fn release(&self, id: u64) {
        let wake = self.state.lock().release(id, Instant::now());
        if wake {
            self.changed.notify_waiters();
        }
    }

    pub fn reconcile(&self, now: Instant) -> Vec<u64> {
        self.state.lock().reconcile(now)
    }

    pub fn retire(&self) {
        let mut st = self.state.lock();
        st.retired = true;
        st.reconcile(Instant::now());
        drop(st);
        self.changed.notify_waiters();
    }

    /// Wakes waiting calls so they look again (the engine is shutting down,
    /// the revision changed). Taking the lock first orders this after every
    /// waiter that has already looked: none misses the wake-up.
    pub fn wake_waiters(&self) {
        drop(self.state.lock());
        self.changed.notify_waiters();
    }

    pub fn stop_token(&self, id: u64) -> Option<CancellationToken> {
        self.state.lock().stop_token(id)
    }

    pub fn is_broken(&self, id: u64) -> bool {
        self.state.lock().is_broken(id)
    }

    pub fn spawned(&self, id: u64, pid: Option<u32>, port: u16) {
        self.state.lock().spawned(id, pid, port);
    }

    pub fn ready(&self, id: u64, uri: Uri, socket: Option<PathBuf>) {
        self.state.lock().ready(id, uri, socket, Instant::now());
        self.changed.notify_waiters();
    }

    pub fn remove(&self, id: u64, exit: &Exit) {
        self.state.lock().remove(id, exit, Instant::now());
        self.changed.notify_waiters();
        self.supervisor.notify_one();
    }

    pub fn is_empty(&self) -> bool {
        self.state.lock().is_empty()
    }

    pub fn status(&self, draining: bool, revision: u64) -> DeploymentStatus {
        let st = self.state.lock();
        DeploymentStatus {
            function: self.key.clone(),
            engine: EngineKind::Process {
                command: self.spec.command.clone(),
            },
            draining,
            revision,
            instances: st.instance_status(Instant::now()),
            waiting: st.waiting,
            counters: self.counters.snapshot(),
        }
    }
}

/// Counts a call among the pool's waiters until dropped.
struct Waiter<'a> {
    pool: &'a Pool,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut st = self.pool.state.lock();
        st.waiting = st.waiting.saturating_sub(1);
    }
}

/// A call's slot on an instance; given back on drop.
pub(crate) struct Slot {
    pool: Arc<Pool>,
    id: u64,
    pub uri: Uri,
}

impl Slot {
    /// After a broken call (`refused`: the connect failed): if the worker is
    /// dead, no further call goes to it, even before its worker task has
    /// noticed the exit.
    pub fn call_broke(&self, refused: bool) {
        self.pool
            .state
            .lock()
            .call_broke(self.id, refused, crate::worker::has_exited);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pool.release(self.id);
    }
}
