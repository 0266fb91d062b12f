//! The macro orchestrator: runs a macro call's steps in dependency order,
//! every ready step at once, each as a call of its own on its target
//! object (so through that object's inbox when it mutates: G1 per object).
//! The macro holds no inbox itself while it waits.
//!
//! Steps have invocation ids derived from the macro's (or from its
//! `Idempotency-Key`), run under idempotency keys of their own, and so have
//! their records committed with their state: a re-run of the macro (an
//! async replay after a crash, a retry with the same key) finds the steps
//! that ran and runs only the others. A failed step marks its dependents
//! DEPENDENCY_FAILED; steps that succeeded stay committed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use oprc_core::{
    Caller, InvocationError, InvocationId, InvocationRequest, InvocationResponse, InvocationStats,
    InvocationStatus, ObjectId, ObjectRecord, ObjectRef, StepReport,
};
use oprc_package::dataflow::{Budget, Dag, Kind, Progress, StepStatus, Target};
use oprc_store::ErrorKind;

use crate::Error;
use crate::answer;
use crate::calls;
use crate::context::Shared;
use crate::error::codes;
use crate::flow::{self, Data};
use crate::handle::Handle;
use crate::plan::Plan;
use crate::retry::backoff;
use crate::types::{CallKind, now_ms};

/// Tries of a sync macro's step that meets a full node or unavailable
/// storage before it counts as failed (async macros retry until the node
/// stops: they are never skipped).
const SYNC_STEP_ATTEMPTS: u32 = 8;

/// Runs a macro call to its end. A sync call's refusals (its main object
/// does not exist, the node is stopping) are errors; an async call ends
/// with a terminal record unless the node stops first (then it replays).
///
/// Type-erased: a step may be a macro itself, so this future contains
/// itself.
pub(crate) fn run(
    h: &Handle,
    req: InvocationRequest,
    plan: Plan,
    kind: CallKind,
) -> BoxFuture<'_, Result<InvocationResponse, Error>> {
    Box::pin(run_macro(h, req, plan, kind))
}

async fn run_macro(
    h: &Handle,
    req: InvocationRequest,
    plan: Plan,
    kind: CallKind,
) -> Result<InvocationResponse, Error> {
    let shared = &h.shared;
    let is_async = matches!(kind, CallKind::Async { .. });
    if is_async
        && let Some(record) = shared.state.get_invocation(&req.inv_id).await?
        && record.response.status.is_terminal()
    {
        // Replayed after it ended.
        return Ok(record.response);
    }
    let que_ts = req.accepted_at.unwrap_or_else(now_ms);
    let started = now_ms();
    let main = match &req.oid {
        None => None,
        Some(oid) => match shared.load(&req.cls, oid).await {
            Ok(Some(obj)) => Some(obj),
            Ok(None) if is_async => {
                let e = Error::object_not_found(&req.cls, oid);
                return finish(shared, &req, kind, refused(&req, que_ts, &e)).await;
            }
            Ok(None) => return Err(Error::object_not_found(&req.cls, oid)),
            Err(e) => return Err(e.into()),
        },
    };
    let mut resp = Run::new(h, &req, &plan, main.as_deref(), kind).go().await?;
    resp.stats = Some(InvocationStats {
        que_ts,
        offload_ts: started,
        cpt_ts: now_ms(),
    });
    finish(shared, &req, kind, resp).await
}

/// Records the answer when the call is recorded (async, or keyed), and
/// observes it.
async fn finish(
    shared: &Arc<Shared>,
    req: &InvocationRequest,
    kind: CallKind,
    resp: InvocationResponse,
) -> Result<InvocationResponse, Error> {
    if kind.records() && !answer::record_durably(shared, req, &resp).await {
        return Err(Error::ShuttingDown);
    }
    let took = resp
        .stats
        .as_ref()
        .map_or(0, |s| (s.cpt_ts - s.que_ts).max(0));
    let took = Duration::from_millis(u64::try_from(took).unwrap_or(0));
    shared.metrics.observe(&req.cls, &req.fb, resp.status, took);
    Ok(resp)
}

fn refused(req: &InvocationRequest, que_ts: i64, e: &Error) -> InvocationResponse {
    let mut resp = InvocationResponse::status(req.inv_id.clone(), InvocationStatus::Failed);
    resp.error = Some(InvocationError {
        code: e.code().to_owned(),
        message: e.to_string(),
    });
    resp.stats = Some(InvocationStats {
        que_ts,
        offload_ts: 0,
        cpt_ts: now_ms(),
    });
    resp
}

/// One macro call on its way.
struct Run<'a> {
    h: &'a Handle,
    req: &'a InvocationRequest,
    plan: &'a Plan,
    dag: Arc<Dag>,
    main: Option<&'a ObjectRecord>,
    is_async: bool,
    /// The macro's answer is recorded (async, or keyed): so are its steps.
    recorded: bool,
    reports: Vec<StepReport>,
    /// The object each step left (its output, else its target).
    objects: Vec<Option<ObjectRecord>>,
    data: Data,
    progress: Progress,
}

impl<'a> Run<'a> {
    fn new(
        h: &'a Handle,
        req: &'a InvocationRequest,
        plan: &'a Plan,
        main: Option<&'a ObjectRecord>,
        kind: CallKind,
    ) -> Self {
        let dag = plan.dag().expect("a macro plan has steps").clone();
        let classes = flow::step_classes(&dag, plan.class(), |c| plan.class_of(c));
        let base = flow::base_of(req);
        let reports = dag
            .steps
            .iter()
            .zip(&classes)
            .map(|(step, class)| {
                let inv_id = flow::step_id(&base, &step.name);
                // The output id is the step's invocation id, known now.
                let output = class
                    .as_ref()
                    .and_then(|c| c.output.as_ref())
                    .map(|_| ObjectId::new(inv_id.as_str()).expect("step ids are object ids"));
                StepReport {
                    name: step.name.clone(),
                    status: InvocationStatus::Queue,
                    inv_id,
                    target: None,
                    output,
                    error: None,
                }
            })
            .collect();
        Self {
            h,
            req,
            plan,
            data: Data::new(&dag, req, &plan.binding().default_args, main),
            progress: Progress::new(&dag),
            objects: vec![None; dag.steps.len()],
            dag,
            main,
            is_async: matches!(kind, CallKind::Async { .. }),
            recorded: kind.records(),
            reports,
        }
    }

    async fn go(mut self) -> Result<InvocationResponse, Error> {
        let live = self
            .is_async
            .then(|| Live::new(&self.h.shared, &self.req.inv_id));
        let mut running = FuturesUnordered::new();
        loop {
            for i in self.progress.start_ready() {
                match self.request(i) {
                    Ok(step_req) => {
                        self.reports[i].status = InvocationStatus::Doing;
                        self.reports[i].target = step_req.oid.clone().map(|oid| ObjectRef {
                            cls: step_req.cls.clone(),
                            oid,
                        });
                        self.data
                            .keep(i, Kind::Args, || Some(flow::args_value(&step_req.args)));
                        let h = self.h.clone();
                        let is_async = self.is_async;
                        running.push(async move { (i, call_step(&h, step_req, is_async).await) });
                    }
                    Err(e) => self.fail(i, e),
                }
            }
            if let Some(live) = &live {
                live.show(&self.reports);
            }
            let Some((i, result)) = running.next().await else {
                break;
            };
            match result {
                Ok(resp) if resp.status == InvocationStatus::Succeeded => self.succeeded(i, resp),
                Ok(resp) => {
                    let e = resp.error.unwrap_or_else(|| InvocationError {
                        code: codes::INTERNAL.into(),
                        message: "the step failed without a reason".into(),
                    });
                    self.fail(i, e);
                }
                // The node is stopping: an async macro replays at the next
                // start (its steps that ran are found again).
                Err(Error::ShuttingDown) => return Err(Error::ShuttingDown),
                Err(Error::KeyReused { first, .. }) => {
                    let name = &self.reports[i].name;
                    self.fail(
                        i,
                        InvocationError {
                            code: codes::INVALID_ARGUMENT.into(),
                            message: format!(
                                "step `{name}` already ran as another call ({first}) in an \
                                 earlier version of this macro: its package changed while the \
                                 macro was running; nothing of this version's `{name}` ran"
                            ),
                        },
                    );
                }
                Err(e) => self.fail(
                    i,
                    InvocationError {
                        code: e.code().to_owned(),
                        message: e.to_string(),
                    },
                ),
            }
        }
        Ok(self.answer())
    }

    /// The call of step `i`, its inputs rendered from the data so far.
    fn request(&self, i: usize) -> Result<InvocationRequest, InvocationError> {
        let step = &self.dag.steps[i];
        let template = |e: oprc_package::dataflow::RenderError| InvocationError {
            code: codes::TEMPLATE.into(),
            message: format!("step `{}`: {e}", step.name),
        };
        let (cls, oid) = self.target(i)?;
        // One budget for all of a step's inputs.
        let budget = Budget::default();
        let mut args = std::collections::BTreeMap::new();
        for (k, t) in &step.args {
            let arg = t
                .render_string_within(&self.data, &budget)
                .map_err(template)?;
            args.insert(k.clone(), arg);
        }
        let body = match &step.body {
            Some(b) => Some(b.render_within(&self.data, &budget).map_err(template)?),
            None => None,
        };
        let inv_id = self.reports[i].inv_id.clone();
        let mut req = InvocationRequest::new(cls, Some(oid), step.function.clone());
        if self.recorded {
            // Its record commits with its state: a re-run of the macro
            // finds it. (A macro nobody can re-run needs no step records.)
            req.idempotency_key = Some(flow::step_key(&inv_id));
        }
        req.inv_id = inv_id;
        req.macro_revision = self.plan.function_revision();
        req.args = args;
        req.body = body;
        req.traceparent.clone_from(&self.req.traceparent);
        req.caller = Caller::Macro {
            cls: self.plan.acting_class().clone(),
            fb: self.req.fb.clone(),
        };
        // The macro waits on no inbox: its chain holds what its caller's
        // does, one call deeper, and names the macro (which must not run
        // inside itself).
        let mut chain = calls::chain_below(self.req, None);
        let function = &self.plan.binding().function;
        if !chain.macros.contains(function) {
            chain.macros.push(function.clone());
        }
        req.chain = Some(chain);
        Ok(req)
    }

    /// The object step `i` runs on.
    fn target(&self, i: usize) -> Result<(oprc_core::ClassKey, ObjectId), InvocationError> {
        let step = &self.dag.steps[i];
        let missing = |message: String| InvocationError {
            code: codes::NOT_FOUND.into(),
            message,
        };
        match &step.target {
            Target::Main => match &self.req.oid {
                Some(oid) => Ok((self.req.cls.clone(), oid.clone())),
                None => Err(missing(format!(
                    "step `{}` targets `@`, but the macro was called without a main object",
                    step.name
                ))),
            },
            // Its object: its output, else the object it ran on (also when
            // its answer shows none, e.g. a nested macro without output).
            Target::Step(j) => match (&self.objects[*j], &self.reports[*j].target) {
                (Some(obj), _) => Ok((obj.meta.cls.clone(), obj.meta.id.clone())),
                (None, Some(ran_on)) => Ok((ran_on.cls.clone(), ran_on.oid.clone())),
                (None, None) => Err(missing(format!(
                    "step `{}` targets step `{}`, which left no object",
                    step.name, self.dag.steps[*j].name
                ))),
            },
            Target::Ref(r) => {
                let spec = self.plan.class().refs.get(r).ok_or_else(|| {
                    missing(format!(
                        "step `{}` targets `@.{r}`, which class `{}` does not declare",
                        step.name, self.req.cls
                    ))
                })?;
                let oid = self.main.and_then(|m| m.meta.refs.get(r)).ok_or_else(|| {
                    missing(format!(
                        "step `{}` targets `@.{r}`, which the main object does not set",
                        step.name
                    ))
                })?;
                Ok((spec.cls.clone(), oid.clone()))
            }
        }
    }

    fn succeeded(&mut self, i: usize, resp: InvocationResponse) {
        self.progress.succeeded(i);
        let report = &mut self.reports[i];
        report.status = InvocationStatus::Succeeded;
        // A later step targeting this one runs on its output object, or
        // on the object it ran on when it has none.
        let obj = match resp.output {
            Some(output) => {
                report.output = Some(output.meta.id.clone());
                Some(output)
            }
            None => resp.main,
        };
        let body = resp.body;
        self.data.keep(i, Kind::Body, || body);
        self.data
            .keep(i, Kind::Output, || obj.as_ref().map(flow::record_value));
        self.objects[i] = obj;
    }

    fn fail(&mut self, i: usize, e: InvocationError) {
        let report = &mut self.reports[i];
        report.status = InvocationStatus::Failed;
        report.error = Some(e);
        for j in self.progress.failed(i) {
            self.reports[j].status = InvocationStatus::DependencyFailed;
            self.reports[j].error = Some(InvocationError {
                code: "dependency_failed".into(),
                message: format!("step `{}`, which it needs, failed", self.reports[i].name),
            });
        }
    }

    fn answer(self) -> InvocationResponse {
        let mut resp =
            InvocationResponse::status(self.req.inv_id.clone(), InvocationStatus::Failed);
        let all_ok =
            (0..self.dag.steps.len()).all(|i| self.progress.status(i) == StepStatus::Succeeded);
        if all_ok {
            let body = match &self.dag.body {
                Some(b) => b.render(&self.data).map(Some),
                None => Ok(None),
            };
            match body {
                Ok(body) => {
                    resp.status = InvocationStatus::Succeeded;
                    resp.body = body;
                    resp.output = self.dag.output.and_then(|o| self.objects[o].clone());
                }
                Err(e) => {
                    resp.error = Some(InvocationError {
                        code: codes::TEMPLATE.into(),
                        message: format!("the macro's bodyTemplate: {e}"),
                    });
                }
            }
        } else {
            resp.error = flow::failure_of(&self.reports);
        }
        resp.macro_ids = Some(flow::macro_ids(&self.reports));
        resp.steps = Some(self.reports);
        resp
    }
}

/// Calls one step, waiting out a full node or a storage outage: a few
/// times for a sync macro, until the node stops for an async one. A keyed
/// step whose commit failed for storage (`storage_unavailable`: nothing,
/// or perhaps something, was stored) runs again under its key, which says
/// whether it was; an async macro never skips a step for it.
async fn call_step(
    h: &Handle,
    req: InvocationRequest,
    is_async: bool,
) -> Result<InvocationResponse, Error> {
    let keyed = req.idempotency_key.is_some();
    let mut attempt = 0;
    loop {
        let wait = match h.invoke(req.clone()).await {
            Ok(resp)
                if keyed
                    && resp.status == InvocationStatus::Failed
                    && resp
                        .error
                        .as_ref()
                        .is_some_and(|e| e.code == codes::STORAGE) =>
            {
                if !is_async && attempt + 1 >= SYNC_STEP_ATTEMPTS {
                    return Ok(resp);
                }
                backoff(attempt)
            }
            Err(Error::Overloaded { retry_after, .. }) => retry_after.min(Duration::from_secs(1)),
            Err(Error::Storage(e))
                if matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Timeout) =>
            {
                if !is_async && attempt + 1 >= SYNC_STEP_ATTEMPTS {
                    return Err(Error::Storage(e));
                }
                backoff(attempt)
            }
            other => return other,
        };
        attempt += 1;
        if !is_async && attempt >= SYNC_STEP_ATTEMPTS {
            return Err(Error::Overloaded {
                what: "this node's call queue",
                retry_after: Duration::from_secs(1),
            });
        }
        tracing::debug!(inv = %req.inv_id, attempt, "macro step waits to be retried");
        if !answer::pause(&h.shared, wait).await {
            return Err(Error::ShuttingDown);
        }
    }
}

/// The steps of a running async macro, shown by invocation lookups; gone
/// when the macro ends (its record has them then).
struct Live {
    shared: Arc<Shared>,
    id: InvocationId,
}

impl Live {
    fn new(shared: &Arc<Shared>, id: &InvocationId) -> Self {
        Self {
            shared: shared.clone(),
            id: id.clone(),
        }
    }

    fn show(&self, reports: &[StepReport]) {
        self.shared
            .macros
            .lock()
            .insert(self.id.clone(), reports.to_vec());
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.shared.macros.lock().remove(&self.id);
    }
}
