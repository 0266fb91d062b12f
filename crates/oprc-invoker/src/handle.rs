//! The invoker's public handle: sync calls, async submission, invocation
//! lookups and object reads. Every call is routed first (the seam the
//! cluster fills), checked (G7), admitted within the node's bounds, and
//! then runs detached from the caller, who only waits for the answer.

use std::sync::Arc;
use std::time::Duration;

use oprc_core::{
    ClassKey, InvocationId, InvocationRequest, InvocationResponse, InvocationStatus, ObjectId,
    ObjectRecord, PartitionId,
};
use oprc_store::{ObjectPage, Write, WriteBatch};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::Error;
use crate::calls::{self, Grant};
use crate::context::Shared;
use crate::keys::{self, Claim};
use crate::plan::{self, Plan};
use crate::router::{Route, Target};
use crate::step::record_of;
use crate::types::{Call, CallKind, now_ms};
use crate::{dispatch, flow, flow_run};

/// A snapshot of what the invoker holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Objects with calls queued or running.
    pub busy_objects: usize,
    /// Calls of waiting callers admitted and not yet answered.
    pub admitted: usize,
    /// Estimated bytes in the hot-object cache.
    pub cache_bytes: u64,
}

/// Cheap-to-clone access to the invoker.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl Handle {
    /// Runs a call and answers when it has ended: a successful answer means
    /// its state is committed (durable, G4). The caller is `req.caller`.
    pub async fn invoke(&self, req: InvocationRequest) -> Result<InvocationResponse, Error> {
        // Boxed, so that the callers' futures (the HTTP stack moves them
        // several times) stay small.
        Box::pin(self.invoke_boxed(req)).await
    }

    async fn invoke_boxed(&self, req: InvocationRequest) -> Result<InvocationResponse, Error> {
        let (plan, permit) = self.accept(&req)?;
        match req.idempotency_key.clone() {
            None => self.run(req, plan, CallKind::Sync, permit).await,
            // Boxed: the common path's future stays small.
            Some(key) => Box::pin(self.run_keyed(key, req, plan, permit)).await,
        }
    }

    /// Accepts a call for later execution: answers `QUEUE` once the call is
    /// durably in the async log. A repeat of an idempotency key answers the
    /// first call's state; the same key for a different request is refused.
    pub async fn submit(&self, req: InvocationRequest) -> Result<InvocationResponse, Error> {
        Box::pin(self.submit_boxed(req)).await
    }

    async fn submit_boxed(&self, mut req: InvocationRequest) -> Result<InvocationResponse, Error> {
        // Nobody waits for a queued call: its chain holds nothing.
        if let Some(chain) = &mut req.chain {
            chain.held.clear();
        }
        let (_plan, permit) = self.accept(&req)?;
        if let Some(oid) = &req.oid
            && self.shared.load(&req.cls, oid).await?.is_none()
        {
            return Err(Error::object_not_found(&req.cls, oid));
        }
        let Some(key) = req.idempotency_key.clone() else {
            return self
                .detached(move |h: Handle| async move { h.enqueue(req, permit).await })
                .await;
        };
        loop {
            match self.shared.keys.claim(&key, &req)? {
                Claim::Follow(answer) => {
                    if let Some(resp) = keys::follow(answer).await {
                        return Ok(resp);
                    }
                }
                Claim::Lead(lead) => {
                    return self
                        .detached(move |h: Handle| async move {
                            let result = match h.remembered(&key, &req).await {
                                Ok(Some(resp)) => Ok(resp),
                                Ok(None) => h.enqueue(req, permit).await,
                                Err(e) => Err(e),
                            };
                            if let Ok(resp) = &result {
                                lead.finish(resp);
                            }
                            result
                        })
                        .await;
                }
            }
        }
    }

    /// Routes, checks and admits a call.
    fn accept(&self, req: &InvocationRequest) -> Result<(Plan, OwnedSemaphorePermit), Error> {
        let shared = &self.shared;
        shared.check_open(req.chain.is_some())?;
        match shared.router.route(self.target(req)) {
            Route::Local => {}
        }
        let plan = plan::plan(&shared.catalog.load(), req)?;
        let macro_fn = plan.dag().map(|_| &plan.binding().function);
        calls::check_chain(req, plan.mutating, macro_fn, shared.options.max_chain_depth)?;
        let permit =
            shared
                .admission
                .clone()
                .try_acquire_owned()
                .map_err(|_| Error::Overloaded {
                    what: "this node's call queue",
                    retry_after: Duration::from_secs(1),
                })?;
        Ok((plan, permit))
    }

    /// Runs `work` in a task of its own and waits for its result: what
    /// was accepted ends whatever the caller does.
    async fn detached<F, Fut>(&self, work: F) -> Result<InvocationResponse, Error>
    where
        F: FnOnce(Handle) -> Fut,
        Fut: Future<Output = Result<InvocationResponse, Error>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let work = work(self.clone());
        self.shared.tracker.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.await.map_err(|_| Error::ShuttingDown)?
    }

    async fn run(
        &self,
        req: InvocationRequest,
        plan: Plan,
        kind: CallKind,
        permit: OwnedSemaphorePermit,
    ) -> Result<InvocationResponse, Error> {
        if plan.dag().is_some() {
            // Runs to its end whatever the caller does (G10).
            return self
                .detached(move |h: Handle| async move {
                    let _permit = permit;
                    flow_run::run(&h, req, plan, kind).await
                })
                .await;
        }
        let (tx, rx) = oneshot::channel();
        let call = Call {
            req,
            plan,
            kind,
            que_ts: now_ms(),
            attempts: 0,
            reply: Some(tx),
            _admitted: Some(permit),
        };
        dispatch::run(&self.shared, call, rx).await
    }

    async fn run_keyed(
        &self,
        key: String,
        req: InvocationRequest,
        plan: Plan,
        permit: OwnedSemaphorePermit,
    ) -> Result<InvocationResponse, Error> {
        loop {
            match self.shared.keys.claim(&key, &req)? {
                Claim::Follow(answer) => {
                    if let Some(resp) = keys::follow(answer).await {
                        return Ok(resp);
                    }
                }
                Claim::Lead(lead) => {
                    let key = key.clone();
                    return self
                        .detached(move |h: Handle| async move {
                            let result = match h.remembered(&key, &req).await {
                                Ok(Some(resp)) => Ok(resp),
                                Ok(None) => h.run(req, plan, CallKind::Idempotent, permit).await,
                                Err(e) => Err(e),
                            };
                            if let Ok(resp) = &result {
                                lead.finish(resp);
                            }
                            result
                        })
                        .await;
                }
            }
        }
    }

    /// The answer remembered for an idempotency key, if the same request
    /// used it before.
    async fn remembered(
        &self,
        key: &str,
        req: &InvocationRequest,
    ) -> Result<Option<InvocationResponse>, Error> {
        let state = &self.shared.state;
        let Some(id) = state.find_idempotency_key(key).await? else {
            return Ok(None);
        };
        let Some(record) = state.get_invocation(&id).await? else {
            return Ok(None);
        };
        if !keys::same_call(&record.request, req) {
            return Err(keys::reused(key, &record.request));
        }
        Ok(Some(self.with_progress(record.response)))
    }

    /// Appends the call to its partition's log and records it as queued.
    async fn enqueue(
        &self,
        mut req: InvocationRequest,
        _permit: OwnedSemaphorePermit,
    ) -> Result<InvocationResponse, Error> {
        let shared = &self.shared;
        let partition = self.partition_of(&req);
        let accepted_at = now_ms();
        req.accepted_at = Some(accepted_at);
        let payload =
            serde_json::to_vec(&req).map_err(|e| Error::Internal(format!("cannot encode: {e}")))?;
        let dedup = req
            .idempotency_key
            .clone()
            .unwrap_or_else(|| req.inv_id.to_string());
        let appended = shared.log.append(partition, &dedup, payload.into()).await?;
        if appended.duplicate {
            return self
                .duplicate(appended.partition, appended.offset, &dedup, &req)
                .await;
        }
        let mut resp = InvocationResponse::status(req.inv_id.clone(), InvocationStatus::Queue);
        resp.stats = Some(oprc_core::InvocationStats {
            que_ts: accepted_at,
            ..Default::default()
        });
        // The call is durably in the log already (whose dedup binds its
        // key): the record is only an aid to lookups while it is queued, and
        // a failure here must not make the client send it again.
        if let Err(e) = self.record_queued(&req, &resp).await {
            tracing::warn!(inv = %req.inv_id, error = %e, "cannot record a queued call");
        }
        shared.metrics.accepted(&req.cls, &req.fb);
        Ok(resp)
    }

    async fn record_queued(
        &self,
        req: &InvocationRequest,
        resp: &InvocationResponse,
    ) -> oprc_store::Result<()> {
        let record = record_of(req, resp, now_ms(), self.shared.retention_ms());
        let batch = WriteBatch::of(vec![Write::PutInvocation(Box::new(record))]);
        self.shared.state.commit(batch).await
    }

    /// The log already had this dedup id: answer the first call's state.
    async fn duplicate(
        &self,
        partition: PartitionId,
        offset: u64,
        dedup: &str,
        req: &InvocationRequest,
    ) -> Result<InvocationResponse, Error> {
        let first = self.shared.log.entry(partition, offset).await?;
        let first =
            first.and_then(|e| serde_json::from_slice::<InvocationRequest>(&e.payload).ok());
        let Some(first) = first else {
            // Applied and trimmed from the log (a JetStream work queue
            // drops an entry once it is applied): its record answers,
            // unless it expired too.
            if let Some(resp) = self.remembered(dedup, req).await? {
                return Ok(resp);
            }
            return Err(Error::KeyExpired(dedup.to_owned()));
        };
        if !first.same_call(req) {
            return Err(keys::reused(dedup, &first));
        }
        match self.invocation(&first.inv_id).await {
            Ok(resp) => Ok(resp),
            Err(Error::InvocationNotFound(_)) => {
                // Its record was never written (the first try failed there).
                let resp =
                    InvocationResponse::status(first.inv_id.clone(), InvocationStatus::Queue);
                if let Err(e) = self.record_queued(&first, &resp).await {
                    tracing::warn!(inv = %first.inv_id, error = %e, "cannot record a queued call");
                }
                Ok(resp)
            }
            Err(e) => Err(e),
        }
    }

    /// The partition whose log carries calls on this object (class-level
    /// calls are spread by invocation id).
    pub fn partition_of(&self, req: &InvocationRequest) -> PartitionId {
        self.target(req).partition()
    }

    fn target<'a>(&self, req: &'a InvocationRequest) -> Target<'a> {
        Target {
            cls: &req.cls,
            oid: req.oid.as_ref(),
            inv_id: &req.inv_id,
            partitions: self.shared.options.partitions,
        }
    }

    /// Status and result of an invocation (kept for the retention period).
    pub async fn invocation(&self, id: &InvocationId) -> Result<InvocationResponse, Error> {
        let resp = self
            .shared
            .state
            .get_invocation(id)
            .await?
            .map(|r| r.response)
            .ok_or_else(|| Error::InvocationNotFound(id.to_string()))?;
        Ok(self.with_progress(resp))
    }

    /// A queued async call that is running reads `DOING`, and a running
    /// macro shows its steps as they are now.
    fn with_progress(&self, mut resp: InvocationResponse) -> InvocationResponse {
        if resp.status == InvocationStatus::Queue && self.shared.doing.lock().contains(&resp.inv_id)
        {
            resp.status = InvocationStatus::Doing;
        }
        if !resp.status.is_terminal()
            && let Some(steps) = self.shared.macros.lock().get(&resp.inv_id)
        {
            resp.macro_ids = Some(flow::macro_ids(steps));
            resp.steps = Some(steps.clone());
        }
        resp
    }

    /// The caller a function's call token grants (the function's class,
    /// within its call chain), or why it is refused.
    pub fn verify_call_token(&self, token: &str) -> Result<Grant, Error> {
        let Some(calls) = &self.shared.calls else {
            return Err(Error::BadCallToken(
                "this node does not accept calls from functions".into(),
            ));
        };
        let grant = calls
            .verify(token, now_ms())
            .map_err(|e| Error::BadCallToken(e.to_string()))?;
        if !self.shared.live_tasks.lock().contains(&grant.inv) {
            return Err(Error::BadCallToken(
                "the call token's task has ended: a token is good only while its task runs".into(),
            ));
        }
        Ok(grant)
    }

    pub async fn object(&self, cls: &ClassKey, oid: &ObjectId) -> Result<ObjectRecord, Error> {
        self.check_class(cls)?;
        self.shared
            .load(cls, oid)
            .await?
            .map(Arc::unwrap_or_clone)
            .ok_or_else(|| Error::object_not_found(cls, oid))
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

    /// What the invoker holds now, for metrics.
    pub fn stats(&self) -> Stats {
        let shared = &self.shared;
        Stats {
            busy_objects: shared.inboxes.busy(),
            admitted: shared
                .options
                .max_in_flight
                .max(1)
                .saturating_sub(shared.admission.available_permits()),
            cache_bytes: shared.cache.weight(),
        }
    }

    fn check_class(&self, cls: &ClassKey) -> Result<(), Error> {
        match self.shared.catalog.load().class(cls) {
            Some(_) => Ok(()),
            None => Err(Error::ClassNotFound(cls.to_string())),
        }
    }
}
