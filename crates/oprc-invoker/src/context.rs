//! What the invoker's drivers share: options, the catalog, the ports,
//! inboxes, caches and bookkeeping of running calls.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arc_swap::ArcSwap;
use oprc_core::{ClassKey, InvocationId, ObjectId, ObjectRecord, StepReport};
use oprc_package::Catalog;
use oprc_store::{InvocationLog, StateStore};
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cache::{ObjectCache, Slot};
use crate::inbox::Inboxes;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::plan::Plan;
use crate::ports::FunctionEngine;
use crate::router::Router;
use crate::types::Call;
use crate::types::now_ms;
use crate::{Error, Options};

pub(crate) struct Shared {
    pub options: Options,
    pub catalog: Arc<ArcSwap<Catalog>>,
    pub state: Arc<dyn StateStore>,
    pub log: Arc<dyn InvocationLog>,
    pub engine: Arc<dyn FunctionEngine>,
    pub router: Arc<dyn Router>,
    pub files: crate::Files,
    pub calls: Option<crate::Calls>,
    /// Tasks running now whose call tokens are good (a token dies with its
    /// task, before its expiry).
    pub live_tasks: Mutex<HashSet<InvocationId>>,
    /// Steps of the macro calls running now, for lookups of async ones.
    pub macros: Mutex<HashMap<InvocationId, Vec<StepReport>>>,
    pub inboxes: Inboxes<Call>,
    pub cache: ObjectCache,
    pub keys: Arc<Keys>,
    /// Async calls running now (their record still says `QUEUE`).
    pub doing: Mutex<HashSet<InvocationId>>,
    /// Calls admitted from waiting callers and not yet answered.
    pub admission: Arc<Semaphore>,
    /// Every task the invoker spawns; awaited at shutdown.
    pub tracker: TaskTracker,
    /// Cancelled once the drain is over: retries stop waiting (what they
    /// hold of the async log replays at the next start).
    pub stopping: CancellationToken,
    pub metrics: Metrics,
}

impl Shared {
    /// Marks an async call as running until the guard is dropped.
    pub fn doing(self: &Arc<Self>, id: &InvocationId) -> Doing {
        self.doing.lock().insert(id.clone());
        Doing(self.clone(), id.clone())
    }

    /// Marks a task's call token as good until the guard is dropped.
    pub fn live_task(&self, id: &InvocationId) -> LiveTask<'_> {
        self.live_tasks.lock().insert(id.clone());
        LiveTask(self, id.clone())
    }

    /// An object's committed state: from the hot-object cache, else from
    /// the store (and then cached).
    pub async fn load(
        &self,
        cls: &ClassKey,
        oid: &ObjectId,
    ) -> oprc_store::Result<Option<Arc<ObjectRecord>>> {
        let key = (cls.clone(), oid.clone());
        match self.cache.get(&key) {
            Some(Slot::Live(obj)) => return Ok(Some(obj)),
            Some(Slot::Gone) => return Ok(None),
            None => {}
        }
        let ticket = self.cache.ticket(&key);
        let obj = self.state.get_object(cls, oid).await?.map(Arc::new);
        self.cache.fill(key, obj.clone(), ticket);
        Ok(obj)
    }

    pub fn retention_ms(&self) -> i64 {
        i64::try_from(self.options.retention.as_millis()).unwrap_or(i64::MAX)
    }

    /// The `prepare` context of a call that ran as `plan` says.
    pub fn step_context<'a>(&self, call: &'a Call, plan: &Plan) -> crate::step::Context<'a> {
        crate::step::Context {
            req: &call.req,
            kind: call.kind,
            que_ts: call.que_ts,
            now_ms: now_ms(),
            retention_ms: self.retention_ms(),
            class_write_behind: plan.class().config.persistence
                == oprc_package::model::Persistence::Async,
        }
    }

    /// Whether a new call may start. While the node drains, calls made
    /// by calls already running (`internal`: a function's call, a macro's
    /// step) still start, so that what was accepted can finish; new calls
    /// from clients do not.
    pub fn check_open(&self, internal: bool) -> Result<(), Error> {
        let drained = self.stopping.is_cancelled();
        if self.tracker.is_closed() && (drained || !internal) {
            Err(Error::ShuttingDown)
        } else {
            Ok(())
        }
    }
}

/// Ends a task's call token when dropped.
pub(crate) struct LiveTask<'a>(&'a Shared, InvocationId);

impl Drop for LiveTask<'_> {
    fn drop(&mut self) {
        self.0.live_tasks.lock().remove(&self.1);
    }
}

/// Clears the running mark of an async call when dropped.
pub(crate) struct Doing(Arc<Shared>, InvocationId);

impl Drop for Doing {
    fn drop(&mut self) {
        self.0.doing.lock().remove(&self.1);
    }
}
