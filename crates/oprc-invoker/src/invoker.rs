//! The invoker service and its handle: sync calls, async submission,
//! invocation lookups and object reads.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use oprc_core::{
    ClassKey, InvocationId, InvocationRequest, InvocationResponse, InvocationStatus, ObjectId,
    ObjectRecord, PartitionId,
};
use oprc_package::Catalog;
use oprc_store::{InvocationLog, ObjectPage, StateStore, Write, WriteBatch};
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::cache::{ObjectCache, Slot};
use crate::exec::{self, now_ms};
use crate::inbox::Inboxes;
use crate::metrics::Metrics;
use crate::mutate::mutating_job;
use crate::plan::{self, Caller, Plan};
use crate::{Error, Options, consumer};

/// State shared by the handle, the inbox workers and the consumers.
pub(crate) struct Shared {
    pub options: Options,
    pub catalog: Arc<ArcSwap<Catalog>>,
    pub state: Arc<dyn StateStore>,
    pub log: Arc<dyn InvocationLog>,
    pub engine: oprc_engine::Handle,
    pub inboxes: Arc<Inboxes>,
    pub cache: ObjectCache,
    pub tracker: TaskTracker,
    pub metrics: Metrics,
    /// Sync calls with an idempotency key that are running now: a repeat
    /// waits for the first one's answer.
    idempotent: Mutex<HashMap<String, watch::Receiver<Option<InvocationResponse>>>>,
    /// Async calls running now (their record still says `QUEUE`).
    doing: Mutex<std::collections::HashSet<InvocationId>>,
}

impl Shared {
    /// Marks an async call as running until the guard is dropped.
    pub(crate) fn doing(self: &Arc<Self>, id: &InvocationId) -> Doing {
        self.doing.lock().insert(id.clone());
        Doing(self.clone(), id.clone())
    }
}

/// Clears the running mark of an async call when dropped.
pub(crate) struct Doing(Arc<Shared>, InvocationId);

impl Drop for Doing {
    fn drop(&mut self) {
        self.0.doing.lock().remove(&self.1);
    }
}

/// The invoker: owns the async-log consumers and the record purger.
pub struct Invoker {
    shared: Arc<Shared>,
}

/// Cheap-to-clone access to the invoker.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Invoker {
    pub fn new(
        options: Options,
        catalog: Arc<ArcSwap<Catalog>>,
        state: Arc<dyn StateStore>,
        log: Arc<dyn InvocationLog>,
        engine: oprc_engine::Handle,
        metrics: Metrics,
    ) -> Self {
        let cache = ObjectCache::new(options.object_cache);
        Self {
            shared: Arc::new(Shared {
                options,
                catalog,
                state,
                log,
                engine,
                inboxes: Arc::new(Inboxes::new()),
                cache,
                tracker: TaskTracker::new(),
                metrics,
                idempotent: Mutex::default(),
                doing: Mutex::default(),
            }),
        }
    }

    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    /// Consumes the async log and purges expired records until `cancel`;
    /// then stops consuming, lets the calls already running finish (up to
    /// `options.drain_timeout`) and commits the log positions.
    pub async fn run(self, cancel: CancellationToken) {
        let shared = self.shared;
        let mut tasks = tokio::task::JoinSet::new();
        for p in 0..shared.options.partitions {
            tasks.spawn(consumer::run(
                shared.clone(),
                PartitionId(p),
                cancel.clone(),
            ));
        }
        tasks.spawn(purge(shared.clone(), cancel.clone()));
        cancel.cancelled().await;
        shared.tracker.close();
        if tokio::time::timeout(shared.options.drain_timeout, shared.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                busy_objects = shared.inboxes.busy(),
                "in-flight invocations did not finish before the drain timeout"
            );
        }
        // Consumers commit their final positions once their calls are done.
        while tasks.join_next().await.is_some() {}
    }
}

async fn purge(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(shared.options.purge_interval);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        match shared.state.purge_invocations(now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "expired invocation records purged"),
            Err(e) => tracing::warn!(error = %e, "purging invocation records failed"),
        }
    }
}

impl Handle {
    /// Runs a call and answers when it has ended: a successful answer means
    /// its state is committed (durable, G4).
    pub async fn invoke(
        &self,
        req: InvocationRequest,
        caller: Caller,
    ) -> Result<InvocationResponse, Error> {
        let shared = &self.shared;
        if shared.tracker.is_closed() {
            return Err(Error::ShuttingDown);
        }
        let plan = plan::plan(&shared.catalog.load(), &req, &caller)?;
        let Some(key) = req.idempotency_key.clone() else {
            return self.invoke_planned(plan, req, false).await;
        };
        if let Some(resp) = self.remembered(&key).await? {
            return Ok(resp);
        }
        // Join a running call with the same key, or become the one.
        let joined = {
            let mut running = shared.idempotent.lock();
            match running.get(&key) {
                Some(rx) => Err(rx.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    running.insert(key.clone(), rx);
                    Ok(tx)
                }
            }
        };
        let tx = match joined {
            Ok(tx) => tx,
            Err(mut rx) => {
                return match rx.wait_for(Option::is_some).await {
                    Ok(resp) => Ok(resp.clone().expect("waited for Some")),
                    // The first call was refused or dropped before it answered.
                    Err(_) => Err(Error::BadRequest(format!(
                        "the first call with idempotency key {key:?} did not complete; retry"
                    ))),
                };
            }
        };
        let result = self.invoke_planned(plan, req, true).await;
        if let Ok(resp) = &result {
            tx.send_replace(Some(resp.clone()));
        }
        shared.idempotent.lock().remove(&key);
        result
    }

    async fn remembered(&self, key: &str) -> Result<Option<InvocationResponse>, Error> {
        let Some(id) = self.shared.state.find_idempotency_key(key).await? else {
            return Ok(None);
        };
        Ok(self
            .shared
            .state
            .get_invocation(&id)
            .await?
            .map(|r| r.response))
    }

    async fn invoke_planned(
        &self,
        plan: Plan,
        req: InvocationRequest,
        record: bool,
    ) -> Result<InvocationResponse, Error> {
        let span = span_of(&req);
        self.invoke_planned_in_span(plan, req, record)
            .instrument(span)
            .await
    }

    async fn invoke_planned_in_span(
        &self,
        plan: Plan,
        req: InvocationRequest,
        record: bool,
    ) -> Result<InvocationResponse, Error> {
        let shared = self.shared.clone();
        let _running = shared.metrics.running();
        let que_ts = now_ms();
        let started = std::time::Instant::now();
        let resp = match (&req.oid, plan.mutating) {
            (None, _) => exec::run_direct(&shared, &plan, &req, None, None, record, que_ts).await,
            (Some(oid), false) => {
                let main = load(&shared, &req.cls, oid)
                    .await?
                    .ok_or_else(|| not_found(&req.cls, oid))?;
                exec::run_direct(&shared, &plan, &req, Some(&main), None, record, que_ts).await
            }
            (Some(oid), true) => {
                let (tx, rx) = oneshot::channel();
                let key = (req.cls.clone(), oid.clone());
                let job = mutating_job(
                    shared.clone(),
                    plan.clone(),
                    req.clone(),
                    None,
                    record,
                    que_ts,
                    Some(tx),
                );
                shared.inboxes.run(&shared.tracker, key, job).await;
                rx.await.map_err(|_| Error::ShuttingDown)??
            }
        };
        shared
            .metrics
            .observe(&req.cls, &req.fb, resp.status, started.elapsed());
        Ok(resp)
    }

    /// Accepts a call for later execution: answers `QUEUE` once the call is
    /// durably in the async log. Repeats of an idempotency key (or of a
    /// dedup id the log still knows) answer the first call's state.
    pub async fn submit(
        &self,
        mut req: InvocationRequest,
        caller: Caller,
    ) -> Result<InvocationResponse, Error> {
        let shared = &self.shared;
        if shared.tracker.is_closed() {
            return Err(Error::ShuttingDown);
        }
        plan::plan(&shared.catalog.load(), &req, &caller)?;
        if let Some(key) = &req.idempotency_key
            && let Some(resp) = self.remembered(key).await?
        {
            return Ok(resp);
        }
        if let Some(oid) = &req.oid
            && load(shared, &req.cls, oid).await?.is_none()
        {
            return Err(not_found(&req.cls, oid));
        }
        let partition = self.partition_of(&req);
        let accepted_at = now_ms();
        req.accepted_at = Some(accepted_at);
        let payload = serde_json::to_vec(&req).map_err(|e| Error::BadRequest(e.to_string()))?;
        let dedup = req
            .idempotency_key
            .clone()
            .unwrap_or_else(|| req.inv_id.to_string());
        let appended = shared.log.append(partition, &dedup, payload.into()).await?;
        if appended.duplicate {
            let first = shared.log.entry(partition, appended.offset).await?;
            let first_id = first
                .and_then(|e| serde_json::from_slice::<InvocationRequest>(&e.payload).ok())
                .map(|r| r.inv_id);
            return match first_id {
                Some(id) => self
                    .invocation(&id)
                    .await
                    .or_else(|_| Ok(InvocationResponse::status(id, InvocationStatus::Queue))),
                // Applied, trimmed from the log and its record expired.
                None => Err(Error::BadRequest(format!(
                    "idempotency key {dedup:?} was used before and its result is no longer kept"
                ))),
            };
        }
        let mut resp = InvocationResponse::status(req.inv_id.clone(), InvocationStatus::Queue);
        resp.stats = Some(oprc_core::InvocationStats {
            que_ts: accepted_at,
            ..Default::default()
        });
        let mut batch = WriteBatch::new();
        batch.push(Write::PutInvocation(Box::new(exec::record_of(
            shared, &req, &resp,
        ))));
        shared.state.commit(batch).await?;
        shared.metrics.accepted(&req.cls, &req.fb);
        Ok(resp)
    }

    /// The partition whose log carries calls on this object (class-level
    /// calls are spread by invocation id).
    pub fn partition_of(&self, req: &InvocationRequest) -> PartitionId {
        let n = self.shared.options.partitions;
        match &req.oid {
            Some(oid) => PartitionId::of(&req.cls, oid, n),
            None => PartitionId::of(
                &req.cls,
                &ObjectId::new(req.inv_id.as_str()).expect("invocation ids are valid object ids"),
                n,
            ),
        }
    }

    /// Status and result of an invocation (kept for the retention period).
    pub async fn invocation(&self, id: &InvocationId) -> Result<InvocationResponse, Error> {
        let mut resp = self
            .shared
            .state
            .get_invocation(id)
            .await?
            .map(|r| r.response)
            .ok_or_else(|| Error::InvocationNotFound(id.to_string()))?;
        if resp.status == InvocationStatus::Queue && self.shared.doing.lock().contains(id) {
            resp.status = InvocationStatus::Doing;
        }
        Ok(resp)
    }

    pub async fn object(&self, cls: &ClassKey, oid: &ObjectId) -> Result<ObjectRecord, Error> {
        self.check_class(cls)?;
        load(&self.shared, cls, oid)
            .await?
            .map(Arc::unwrap_or_clone)
            .ok_or_else(|| not_found(cls, oid))
    }

    pub async fn list_objects(
        &self,
        cls: &ClassKey,
        after: Option<&ObjectId>,
        limit: usize,
    ) -> Result<ObjectPage, Error> {
        self.check_class(cls)?;
        Ok(self.shared.state.list_objects(cls, after, limit).await?)
    }

    fn check_class(&self, cls: &ClassKey) -> Result<(), Error> {
        match self.shared.catalog.load().class(cls) {
            Some(_) => Ok(()),
            None => Err(Error::ClassNotFound(cls.to_string())),
        }
    }
}

/// An object's committed state: from the hot-object cache, else from the
/// store (and then cached).
pub(crate) async fn load(
    shared: &Shared,
    cls: &ClassKey,
    oid: &ObjectId,
) -> Result<Option<Arc<ObjectRecord>>, oprc_store::Error> {
    let key = (cls.clone(), oid.clone());
    match shared.cache.get(&key) {
        Some(Slot::Live(obj)) => return Ok(Some(obj)),
        Some(Slot::Gone) => return Ok(None),
        None => {}
    }
    let obj = shared.state.get_object(cls, oid).await?.map(Arc::new);
    shared.cache.fill(key, obj.clone());
    Ok(obj)
}

/// The span of one invocation (the id links sync answers, async records and
/// function logs).
pub(crate) fn span_of(req: &InvocationRequest) -> tracing::Span {
    tracing::info_span!(
        "invocation",
        inv = %req.inv_id,
        cls = %req.cls,
        oid = req.oid.as_ref().map(|o| o.as_str()),
        fb = %req.fb,
    )
}

pub(crate) fn not_found(cls: &ClassKey, oid: &ObjectId) -> Error {
    Error::ObjectNotFound {
        cls: cls.to_string(),
        oid: oid.to_string(),
    }
}
