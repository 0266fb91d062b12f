//! Running one checked call against a known state, then committing what it
//! did (all or nothing, G2).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use oprc_core::{
    Completion, InvocationError, InvocationRecord, InvocationRequest, InvocationResponse,
    InvocationStats, InvocationStatus, ObjectId, ObjectRecord,
};
use oprc_store::{ErrorKind, Write, WriteBatch};

use crate::apply::{self, Outcome, TaskInput};
use crate::builtin::{self, Builtin};
use crate::error::codes;
use crate::inbox::ObjectKey;
use crate::invoker::Shared;
use crate::plan::{Action, Plan};

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What a call did, before it is committed.
pub(crate) struct Step {
    pub status: InvocationStatus,
    pub error: Option<InvocationError>,
    pub main: MainChange,
    pub output: Option<ObjectRecord>,
    pub body: Option<serde_json::Value>,
    pub offload_ts: i64,
}

pub(crate) enum MainChange {
    Keep,
    Put(ObjectRecord),
    Delete,
}

impl Step {
    fn ok(main: MainChange, output: Option<ObjectRecord>, body: Option<serde_json::Value>) -> Self {
        Self {
            status: InvocationStatus::Succeeded,
            error: None,
            main,
            output,
            body,
            offload_ts: 0,
        }
    }

    fn failed(error: InvocationError) -> Self {
        Self {
            status: InvocationStatus::Failed,
            error: Some(error),
            main: MainChange::Keep,
            output: None,
            body: None,
            offload_ts: 0,
        }
    }
}

fn failure(code: &str, message: impl Into<String>) -> InvocationError {
    InvocationError {
        code: code.to_owned(),
        message: message.into(),
    }
}

/// Runs the call. `main` is the main object's committed state (`None` for
/// class-level calls).
pub(crate) async fn run(
    shared: &Shared,
    plan: &Plan,
    req: &InvocationRequest,
    main: Option<&ObjectRecord>,
) -> Step {
    match plan.action {
        Action::Builtin(b) => run_builtin(shared, b, plan, req, main),
        Action::Task { timeout } => run_task(shared, plan, req, main, timeout).await,
    }
}

fn run_builtin(
    shared: &Shared,
    b: Builtin,
    plan: &Plan,
    req: &InvocationRequest,
    main: Option<&ObjectRecord>,
) -> Step {
    let body = req.body.as_ref();
    let result = match (b, main) {
        (Builtin::New, _) => {
            let catalog = shared.catalog.load();
            match catalog.class(&req.cls) {
                Some(class) => builtin::new_object(class, body)
                    .map(|obj| Step::ok(MainChange::Keep, Some(obj), None)),
                None => Err(failure(
                    codes::NOT_FOUND,
                    format!("class `{}` does not exist", req.cls),
                )),
            }
        }
        (Builtin::Get, Some(_)) => Ok(Step::ok(MainChange::Keep, None, None)),
        (Builtin::Update, Some(m)) => builtin::updated(plan.binding(), m, body)
            .map(|next| Step::ok(next.map_or(MainChange::Keep, MainChange::Put), None, None)),
        (Builtin::Delete, Some(_)) => Ok(Step::ok(MainChange::Delete, None, None)),
        (Builtin::Copy, Some(m)) => {
            builtin::copy_of(m, body).map(|obj| Step::ok(MainChange::Keep, Some(obj), None))
        }
        (Builtin::Project, Some(m)) => {
            builtin::project(m, &req.args, body).map(|v| Step::ok(MainChange::Keep, None, Some(v)))
        }
        (Builtin::File, Some(_)) => Err(failure(
            codes::UNSUPPORTED,
            "files need the blob store, which this node does not have yet",
        )),
        (_, None) => Err(failure(
            codes::INVALID_ARGUMENT,
            "this builtin needs a main object",
        )),
    };
    result.unwrap_or_else(Step::failed)
}

async fn run_task(
    shared: &Shared,
    plan: &Plan,
    req: &InvocationRequest,
    main: Option<&ObjectRecord>,
    timeout: std::time::Duration,
) -> Step {
    let output = plan.binding().output_cls.as_ref().map(|cls| {
        // The output id is the invocation id: a re-run of the same
        // invocation (async replay) cannot create a second output object.
        let id = ObjectId::new(req.inv_id.as_str()).expect("invocation ids are valid object ids");
        ObjectRecord::new(
            cls.clone(),
            id,
            serde_json::Value::Object(Default::default()),
        )
    });
    let offload_ts = now_ms();
    let task = apply::build_task(&TaskInput {
        inv_id: req.inv_id.as_str(),
        binding: plan.binding(),
        args: &req.args,
        body: req.body.as_ref(),
        main,
        output: output.as_ref(),
        now_ms: offload_ts,
    });
    let bytes = match serde_json::to_vec(&task) {
        Ok(b) => b,
        Err(e) => {
            return Step::failed(failure(
                codes::INVALID_ARGUMENT,
                format!("cannot encode task: {e}"),
            ));
        }
    };
    let answer = shared
        .engine
        .invoke(
            &plan.binding().function,
            bytes.into(),
            timeout,
            &trace_headers(req),
        )
        .await;
    let mut step = match answer {
        Err(e) => Step::failed(engine_failure(e)),
        Ok(bytes) => match Completion::parse(&bytes) {
            Err(e) => Step::failed(failure(codes::BAD_COMPLETION, e.to_string())),
            Ok(completion) => {
                match apply::apply_completion(plan.binding(), main, output, completion) {
                    Outcome::Failed(e) => Step::failed(e),
                    Outcome::Commit { main, output, body } => {
                        Step::ok(main.map_or(MainChange::Keep, MainChange::Put), output, body)
                    }
                }
            }
        },
    };
    step.offload_ts = offload_ts;
    step
}

/// Headers passed to the function: the caller's `traceparent`, if any.
fn trace_headers(req: &InvocationRequest) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    if let Some(tp) = req
        .traceparent
        .as_deref()
        .and_then(|tp| http::HeaderValue::from_str(tp).ok())
    {
        headers.insert("traceparent", tp);
    }
    headers
}

fn engine_failure(e: oprc_engine::InvokeError) -> InvocationError {
    use oprc_engine::InvokeError as E;
    let code = match &e {
        E::Timeout { .. } => codes::FUNCTION_TIMEOUT,
        E::Status { .. } | E::ResponseTooLarge { .. } => codes::BAD_COMPLETION,
        E::NotDeployed(_) | E::Unreachable { .. } | E::Unavailable { .. } => {
            codes::FUNCTION_UNREACHABLE
        }
    };
    failure(code, e.to_string())
}

impl CacheAfter {
    /// Applies this outcome to an inbox worker's view of its object.
    pub(crate) fn apply_to(&self, current: &mut crate::pipeline::Current) {
        use crate::pipeline::Current;
        match self {
            Self::Keep => {}
            Self::Set(next) => *current = next.clone().map_or(Current::Gone, Current::Live),
            Self::Invalidate => *current = Current::Unknown,
        }
    }
}

/// What the object's cached state is after a call.
pub(crate) enum CacheAfter {
    /// Keep what was cached.
    Keep,
    /// The new committed state (`None`: the object is gone), shared with
    /// the hot-object cache.
    Set(Option<Arc<ObjectRecord>>),
    /// Unknown: reload from the store next time.
    Invalidate,
}

/// A step turned into writes and the answer they stand for, not yet
/// committed.
pub(crate) struct Prepared {
    pub batch: WriteBatch,
    pub response: InvocationResponse,
    /// The object's state once the batch is committed.
    pub cache: CacheAfter,
    /// What the hot-object cache learns once the batch is committed.
    committed: Vec<(ObjectKey, Option<Arc<ObjectRecord>>)>,
    writes_main: bool,
    record: bool,
}

/// Turns a step into one batch: main change, output object and (when
/// `record`) the invocation record. `offset` is the async-log offset being
/// applied, stored in the main object's `lastOffset` (G5).
pub(crate) fn prepare(
    shared: &Shared,
    req: &InvocationRequest,
    main: Option<&ObjectRecord>,
    step: Step,
    offset: Option<u64>,
    record: bool,
    que_ts: i64,
) -> Prepared {
    let mut response = InvocationResponse::status(req.inv_id.clone(), step.status);
    response.error = step.error;
    response.body = step.body;
    let mut batch = WriteBatch::new();
    let mut cache = CacheAfter::Keep;
    let mut writes_main = false;
    let mut committed: Vec<(ObjectKey, Option<Arc<ObjectRecord>>)> = Vec::new();
    if step.status == InvocationStatus::Succeeded {
        match step.main {
            MainChange::Keep => response.main = main.cloned(),
            MainChange::Put(mut next) => {
                if let Some(offset) = offset {
                    next.meta.last_offset = offset;
                }
                batch.push(Write::PutObject {
                    expected_revision: main.map(|m| m.meta.revision),
                    record: next.clone(),
                });
                writes_main = true;
                // One copy for the store, one for the answer; the cache and
                // the inbox worker share this one.
                let key = (next.meta.cls.clone(), next.meta.id.clone());
                response.main = Some(next.clone());
                let next = Arc::new(next);
                committed.push((key, Some(next.clone())));
                cache = CacheAfter::Set(Some(next));
            }
            MainChange::Delete => {
                if let Some(m) = main {
                    committed.push(((m.meta.cls.clone(), m.meta.id.clone()), None));
                    batch.push(Write::DeleteObject {
                        cls: m.meta.cls.clone(),
                        oid: m.meta.id.clone(),
                        expected_revision: m.meta.revision,
                    });
                }
                writes_main = true;
                cache = CacheAfter::Set(None);
            }
        }
        if let Some(out) = step.output {
            batch.push(Write::PutObject {
                record: out.clone(),
                expected_revision: None,
            });
            response.output = Some(out.clone());
            committed.push((
                (out.meta.cls.clone(), out.meta.id.clone()),
                Some(Arc::new(out)),
            ));
        }
    }
    response.stats = Some(InvocationStats {
        que_ts,
        offload_ts: step.offload_ts,
        cpt_ts: now_ms(),
    });
    if record {
        batch.push(Write::PutInvocation(Box::new(record_of(
            shared, req, &response,
        ))));
    }
    // A class may trade durability for speed (`persistence: async`), but
    // not for async calls or remembered idempotency keys: those promise
    // exactly-once, which needs their record and `lastOffset` on disk.
    batch.write_behind = !record
        && offset.is_none()
        && shared
            .catalog
            .load()
            .class(&req.cls)
            .is_some_and(|c| c.config.persistence == oprc_package::model::Persistence::Async);
    Prepared {
        batch,
        response,
        cache,
        committed,
        writes_main,
        record,
    }
}

/// Runs a call that needs no inbox (class-level, or not mutating) and
/// commits what it did.
pub(crate) async fn run_direct(
    shared: &Shared,
    plan: &Plan,
    req: &InvocationRequest,
    main: Option<&ObjectRecord>,
    offset: Option<u64>,
    record: bool,
    que_ts: i64,
) -> InvocationResponse {
    let step = run(shared, plan, req, main).await;
    let prepared = prepare(shared, req, main, step, offset, record, que_ts);
    commit(shared, req, prepared).await.0
}

/// Commits a prepared step and answers.
pub(crate) async fn commit(
    shared: &Shared,
    req: &InvocationRequest,
    mut prepared: Prepared,
) -> (InvocationResponse, CacheAfter) {
    let batch = std::mem::take(&mut prepared.batch);
    let result = if batch.writes.is_empty() {
        Ok(())
    } else {
        shared.state.commit(batch).await
    };
    conclude(shared, req, prepared, result).await
}

/// The answer once the commit's outcome is known: the prepared answer, or a
/// `FAILED` one (and a best-effort failure record) when the commit failed.
/// Updates the hot-object cache either way.
pub(crate) async fn conclude(
    shared: &Shared,
    req: &InvocationRequest,
    prepared: Prepared,
    result: oprc_store::Result<()>,
) -> (InvocationResponse, CacheAfter) {
    for (key, obj) in prepared.committed {
        if result.is_ok() {
            shared.cache.set(key, obj);
        } else {
            shared.cache.forget(&key);
        }
    }
    let e = match result {
        Ok(()) => return (prepared.response, prepared.cache),
        Err(e) => e,
    };
    tracing::warn!(inv = %req.inv_id, cls = %req.cls, error = %e, "commit failed");
    let (code, message) = if e.kind == ErrorKind::Conflict && !prepared.writes_main {
        (
            codes::ALREADY_EXISTS,
            "an object with this id already exists",
        )
    } else if e.kind == ErrorKind::Conflict {
        (
            codes::CONFLICT,
            "the object was changed concurrently; nothing was committed",
        )
    } else {
        (
            codes::STORAGE,
            "the new state could not be stored; nothing was committed",
        )
    };
    let mut response = InvocationResponse::status(req.inv_id.clone(), InvocationStatus::Failed);
    response.error = Some(failure(code, message));
    if prepared.record {
        // Best effort: remember the failure so a replay does not run it
        // again. If this fails too, a replay will retry the call.
        let mut batch = WriteBatch::new();
        batch.push(Write::PutInvocation(Box::new(record_of(
            shared, req, &response,
        ))));
        let _ = shared.state.commit(batch).await;
    }
    (response, CacheAfter::Invalidate)
}

pub(crate) fn record_of(
    shared: &Shared,
    req: &InvocationRequest,
    response: &InvocationResponse,
) -> InvocationRecord {
    InvocationRecord {
        request: req.clone(),
        response: response.clone(),
        expires_at: now_ms() + shared.options.retention.as_millis() as i64,
    }
}
