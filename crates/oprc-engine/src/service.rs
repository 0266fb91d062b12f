//! The engine service (supervisor loop) and its handle (deploy, invoke,
//! status).
//!
//! Every deployment carries an opaque revision. A call may name the
//! revision it was planned against; it is sent only while that revision is
//! the function's current one, checked when the call starts and again when
//! it gets a worker slot (after any wait), so a call never reaches a worker
//! of another version than the one it was planned for. A call that gets a
//! slot is sent on it, even if the deployment is replaced in that instant:
//! it then runs on the version it started with.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Uri};
use oprc_core::FunctionKey;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use crate::client::{CallFailure, HttpClient, Via};
use crate::deployment::parse_http_url;
use crate::pool::{AcquireError, Pool};
use crate::socket_dir::SocketDir;
use crate::status::{DeploymentStatus, EngineKind, LiveCounters, Status};
use crate::worker::{self, Worker};
use crate::{Deployment, Error, InvokeError, Options};

/// Extra time, past the stop grace, that shutdown waits for workers before
/// it drops them (which SIGKILLs them).
const SHUTDOWN_SLACK: Duration = Duration::from_secs(2);

/// The engine. Owns the supervisor loop and every worker process; get a
/// [`Handle`] before calling [`Service::run`]. Process deployments start
/// workers only while `run` is running.
pub struct Service {
    shared: Arc<Shared>,
}

/// Cheap to clone; deploys functions and calls them.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

struct Shared {
    options: Options,
    client: HttpClient,
    deployments: RwLock<HashMap<FunctionKey, Arc<Deployed>>>,
    /// Replaced or undeployed process deployments whose workers are still
    /// draining.
    retired: Mutex<Vec<Arc<Deployed>>>,
    /// Wakes the supervisor: a call needs an instance, a worker ended, the
    /// deployments changed.
    supervisor: Arc<Notify>,
    /// Cancelled when the service shuts down; parent of every worker's stop
    /// token.
    stopping: CancellationToken,
}

/// Numbers worker starts, across every engine of the process: their socket
/// names and endpoint entries.
static STARTS: AtomicU64 = AtomicU64::new(1);

struct Deployed {
    deployment: Deployment,
    /// Set again in place when an equal deployment is deployed again.
    revision: AtomicU64,
    /// False once replaced or undeployed.
    current: AtomicBool,
    target: Target,
    counters: Arc<LiveCounters>,
}

impl Deployed {
    /// Whether a call planned against `revision` may be sent here (any call
    /// without one may).
    fn accepts(&self, revision: Option<u64>) -> bool {
        revision.is_none_or(|r| {
            self.current.load(Ordering::Acquire) && self.revision.load(Ordering::Acquire) == r
        })
    }

    fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }
}

enum Target {
    Http { uri: Uri },
    Process(Arc<Pool>),
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt_with("Service", f)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt_with("Handle", f)
    }
}

impl Service {
    pub fn new(mut options: Options) -> Self {
        // `tokio::time::interval` panics on zero.
        options.reconcile_interval = options.reconcile_interval.max(Duration::from_millis(1));
        let shared = Shared {
            client: HttpClient::new(&options),
            options,
            deployments: RwLock::default(),
            retired: Mutex::default(),
            supervisor: Arc::new(Notify::new()),
            stopping: CancellationToken::new(),
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    pub fn handle(&self) -> Handle {
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Supervises the process deployments until `cancel`, then stops every
    /// worker (SIGTERM, SIGKILL after `stop_grace`) and reaps it. Calls made
    /// after that fail with `Unavailable`. Workers get their sockets in
    /// `Options::socket_dir`, or in a private directory made here and
    /// removed before this returns.
    pub async fn run(self, cancel: CancellationToken) {
        let shared = &*self.shared;
        let sockets = match SocketDir::prepare(shared.options.socket_dir.as_deref()) {
            Ok(dir) => {
                debug!(dir = %dir.path().display(), "worker sockets");
                Some(dir)
            }
            Err(reason) => {
                error!(
                    %reason,
                    "no private socket directory: workers are called on their PORT only"
                );
                None
            }
        };
        let mut workers = JoinSet::new();
        let mut tick = tokio::time::interval(shared.options.reconcile_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                Some(joined) = workers.join_next() => {
                    if let Err(e) = joined {
                        error!(error = %e, "worker task failed");
                    }
                }
                () = shared.supervisor.notified() => {}
                _ = tick.tick() => {}
            }
            shared.reconcile(&mut workers, sockets.as_ref());
        }

        debug!(workers = workers.len(), "engine shutting down");
        shared.stopping.cancel();
        for pool in shared.pools() {
            pool.wake_waiters();
        }
        let all = async { while workers.join_next().await.is_some() {} };
        let limit = shared.options.stop_grace + SHUTDOWN_SLACK;
        if tokio::time::timeout(limit, all).await.is_err() {
            warn!(
                workers = workers.len(),
                "workers did not stop in time; killing them"
            );
            // Dropping a worker task drops its child, which SIGKILLs it.
            workers.shutdown().await;
        }
        drop(sockets);
        debug!("engine stopped");
    }
}

impl Shared {
    fn fmt_with(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("deployments", &self.deployments.read().len())
            .field("stopping", &self.stopping.is_cancelled())
            .finish_non_exhaustive()
    }

    /// Starts and stops instances as the pools decide.
    fn reconcile(&self, workers: &mut JoinSet<()>, sockets: Option<&SocketDir>) {
        if self.stopping.is_cancelled() {
            return;
        }
        let now = Instant::now();
        self.retired
            .lock()
            .retain(|d| pool_of(d).is_some_and(|p| !p.is_empty()));
        for pool in self.pools() {
            for id in pool.reconcile(now) {
                let seq = STARTS.fetch_add(1, Ordering::Relaxed);
                workers.spawn(worker::run(Worker {
                    pool: Arc::clone(&pool),
                    id,
                    output: self.options.worker_output,
                    grace: self.options.stop_grace,
                    seq,
                    socket: sockets.map(|dir| dir.socket(seq)),
                    endpoints: Arc::clone(self.client.endpoints()),
                }));
            }
        }
    }

    /// Every process pool, current and retired.
    fn pools(&self) -> Vec<Arc<Pool>> {
        let mut pools: Vec<Arc<Pool>> = self
            .deployments
            .read()
            .values()
            .filter_map(|d| pool_of(d).cloned())
            .collect();
        pools.extend(
            self.retired
                .lock()
                .iter()
                .filter_map(|d| pool_of(d).cloned()),
        );
        pools
    }

    fn lookup(&self, key: &FunctionKey) -> Option<Arc<Deployed>> {
        self.deployments.read().get(key).cloned()
    }

    fn retire(&self, old: Option<Arc<Deployed>>) {
        if let Some(old) = old {
            old.current.store(false, Ordering::Release);
            if let Some(pool) = pool_of(&old) {
                pool.retire();
                self.retired.lock().push(old);
            }
        }
        self.supervisor.notify_one();
    }
}

fn pool_of(d: &Deployed) -> Option<&Arc<Pool>> {
    match &d.target {
        Target::Process(pool) => Some(pool),
        Target::Http { .. } => None,
    }
}

impl Handle {
    /// Creates or replaces the deployment of `function`, at `revision` (an
    /// opaque number the caller picks, e.g. a fingerprint of the function's
    /// definition; see [`Handle::invoke`]). Replacing a process deployment
    /// stops its workers once their in-flight calls are done; deploying an
    /// equal deployment again only sets its revision (its workers keep
    /// running). Returns at once: workers start in the background
    /// (`min_instances` now, others on demand).
    pub fn deploy(
        &self,
        function: FunctionKey,
        deployment: Deployment,
        revision: u64,
    ) -> Result<(), Error> {
        let shared = &*self.shared;
        if shared.stopping.is_cancelled() {
            return Err(Error::ShutDown);
        }
        let invalid = |reason| Error::InvalidDeployment {
            function: function.clone(),
            reason,
        };
        let uri = match &deployment {
            Deployment::Http { url } => Some(parse_http_url(url).map_err(invalid)?),
            Deployment::Process(spec) => {
                spec.validate().map_err(invalid)?;
                None
            }
        };
        let mut map = shared.deployments.write();
        let counters = match map.get(&function) {
            Some(old) if old.deployment == deployment => {
                if old.revision.swap(revision, Ordering::AcqRel) != revision
                    && let Some(pool) = pool_of(old)
                {
                    // Calls waiting with the old revision give up now.
                    pool.wake_waiters();
                }
                return Ok(());
            }
            Some(old) => Arc::clone(&old.counters),
            None => Arc::default(),
        };
        let target = match (&deployment, uri) {
            (Deployment::Process(spec), _) => Target::Process(Arc::new(Pool::new(
                function.clone(),
                spec.clone(),
                Arc::clone(&counters),
                Arc::clone(&shared.supervisor),
                shared.stopping.clone(),
            ))),
            (Deployment::Http { .. }, Some(uri)) => Target::Http { uri },
            (Deployment::Http { url }, None) => {
                return Err(invalid(format!("invalid url {url:?}")));
            }
        };
        let deployed = Deployed {
            deployment,
            revision: AtomicU64::new(revision),
            current: AtomicBool::new(true),
            target,
            counters,
        };
        let old = map.insert(function, Arc::new(deployed));
        drop(map);
        shared.retire(old);
        Ok(())
    }

    /// Removes the deployment of `function`; its workers stop once their
    /// in-flight calls are done. False when it was not deployed.
    pub fn undeploy(&self, function: &FunctionKey) -> bool {
        let old = self.shared.deployments.write().remove(function);
        let found = old.is_some();
        self.shared.retire(old);
        found
    }

    /// POSTs `task` (JSON) to `function` and returns the body of its 200
    /// answer. `timeout` bounds the whole call, waiting for a worker to start
    /// or free up included. `headers` are sent along (e.g. `traceparent`);
    /// `content-type: application/json` is always set.
    ///
    /// With `revision: Some(r)`, the call is sent only while `r` is the
    /// revision of the function's current deployment; otherwise (also when
    /// it changed while the call waited for a worker) it fails with
    /// [`InvokeError::Changed`] and nothing is sent. `None` skips the check.
    pub async fn invoke(
        &self,
        function: &FunctionKey,
        revision: Option<u64>,
        task: Bytes,
        timeout: Duration,
        headers: &HeaderMap,
    ) -> Result<Bytes, InvokeError> {
        let shared = &*self.shared;
        if shared.stopping.is_cancelled() {
            return Err(InvokeError::Unavailable {
                reason: "the engine is shutting down".into(),
            });
        }
        let deadline = Instant::now() + timeout;
        let mut deployed = shared
            .lookup(function)
            .ok_or_else(|| InvokeError::NotDeployed(function.clone()))?;
        let changed = || InvokeError::Changed {
            function: function.clone(),
        };
        if !deployed.accepts(revision) {
            return Err(changed());
        }
        let counters = Arc::clone(&deployed.counters);
        let count = counters.enter();
        let mut resent = false;
        let result = loop {
            let pool = match &deployed.target {
                Target::Http { uri } => {
                    break shared
                        .client
                        .post(Via::Http, uri.clone(), task, headers, deadline, timeout)
                        .await
                        .map_err(|f| f.error);
                }
                Target::Process(pool) => pool,
            };
            let admit = || deployed.accepts(revision);
            let slot = match pool.acquire(deadline, timeout, admit).await {
                Ok(slot) => slot,
                Err(AcquireError::Failed(e)) => break Err(e),
                // Replaced, undeployed or given another revision while the
                // call waited: go on with the current deployment if the
                // call's revision is still current, else send nothing.
                Err(AcquireError::Stale) => match shared.lookup(function) {
                    Some(d) if d.accepts(revision) => {
                        deployed = d;
                        continue;
                    }
                    Some(_) => {
                        count.abandoned();
                        return Err(changed());
                    }
                    None => break Err(InvokeError::NotDeployed(function.clone())),
                },
            };
            let sent = shared
                .client
                .post(
                    Via::Worker,
                    slot.uri.clone(),
                    task.clone(),
                    headers,
                    deadline,
                    timeout,
                )
                .await;
            if let Err(CallFailure {
                error: InvokeError::Unreachable { .. },
                not_sent,
            }) = &sent
            {
                slot.call_broke(*not_sent);
            }
            drop(slot);
            match sent {
                // Nothing reached the worker (it is probably dying): one
                // more try, likely on another instance.
                Err(f) if f.not_sent && !resent => {
                    resent = true;
                    debug!(function = %function, error = %f.error, "connect failed, trying again");
                }
                other => break other.map_err(|f| f.error),
            }
        };
        if result.is_ok() {
            count.succeeded();
        }
        result
    }

    /// Whether the engine is shutting down (calls fail with `Unavailable`).
    pub fn is_stopping(&self) -> bool {
        self.shared.stopping.is_cancelled()
    }

    /// Every deployment, its instances and counters.
    pub fn status(&self) -> Status {
        let shared = &*self.shared;
        let mut deployments: Vec<DeploymentStatus> = shared
            .deployments
            .read()
            .iter()
            .map(|(key, d)| match &d.target {
                Target::Http { .. } => DeploymentStatus {
                    function: key.clone(),
                    engine: EngineKind::Http {
                        url: match &d.deployment {
                            Deployment::Http { url } => url.clone(),
                            Deployment::Process(_) => String::new(),
                        },
                    },
                    draining: false,
                    revision: d.revision(),
                    instances: Vec::new(),
                    waiting: 0,
                    counters: d.counters.snapshot(),
                },
                Target::Process(pool) => pool.status(false, d.revision()),
            })
            .collect();
        deployments.extend(
            shared
                .retired
                .lock()
                .iter()
                .filter_map(|d| Some(pool_of(d)?.status(true, d.revision()))),
        );
        deployments.sort_by(|a, b| (&a.function, a.draining).cmp(&(&b.function, b.draining)));
        Status { deployments }
    }
}
