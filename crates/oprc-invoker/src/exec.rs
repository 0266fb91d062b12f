//! Running one planned call against a known state: a builtin in process,
//! or a task offloaded through the engine port. Gives a [`Step`]; the
//! caller commits it.

use std::time::Duration;

use bytes::Bytes;
use oprc_core::{Completion, InvocationRequest, ObjectId, ObjectRecord};

use crate::Error;
use crate::apply::{self, Outcome, TaskInput};
use crate::builtin::{self, Builtin};
use crate::context::Shared;
use crate::error::codes;
use crate::plan::{self, Action, Plan};
use crate::ports::CallError;
use crate::step::{MainChange, Step, failure};
use crate::types::now_ms;

/// Times a call is planned again when its function was redeployed.
const REPLANS: u64 = 20;

/// Tasks and answers larger than this are encoded and decoded on a
/// blocking thread, not on the async runtime (STYLE: CPU work over
/// ~0.5 ms).
const INLINE_DECODE_BYTES: usize = 64 * 1024;

/// Runs the call. `main` is the main object's state (`None` for
/// class-level calls). A task whose function was redeployed since `plan`
/// was made is planned again on the current catalog (nothing was sent), so
/// it runs whole on one version; a binding gone by then is refused, and a
/// call outside its object's inbox (`in_inbox` false) whose binding now
/// mutates is handed back to go there.
pub(crate) async fn run(
    shared: &Shared,
    plan: &Plan,
    req: &InvocationRequest,
    main: Option<&ObjectRecord>,
    in_inbox: bool,
) -> Result<Step, Refusal> {
    if let Action::Builtin(b) = plan.action {
        return Ok(run_builtin(b, plan, req, main));
    }
    match run_task(shared, plan, req, main).await {
        Ok(step) => return Ok(step),
        Err(Redeployed::Stopped) => return Err(Refusal::Now(Error::ShuttingDown)),
        Err(Redeployed::Changed) => {}
    }
    // The registry deploys a new version before it publishes the catalog
    // that names it: plan again until the two agree (a short window).
    for attempt in 1..=REPLANS {
        let again = plan::plan(&shared.catalog.load(), req).map_err(Refusal::Now)?;
        if again.mutating && !in_inbox {
            return Err(Refusal::Mutating(Box::new(again)));
        }
        if let Action::Builtin(b) = again.action {
            return Ok(run_builtin(b, &again, req, main));
        }
        match run_task(shared, &again, req, main).await {
            Ok(step) => return Ok(step),
            Err(Redeployed::Stopped) => return Err(Refusal::Now(Error::ShuttingDown)),
            Err(Redeployed::Changed) => {}
        }
        tokio::time::sleep(Duration::from_millis(attempt)).await;
    }
    Ok(Step::failed(failure(
        codes::FUNCTION_UNREACHABLE,
        "the function is being redeployed; retry",
    )))
}

fn run_builtin(
    b: Builtin,
    plan: &Plan,
    req: &InvocationRequest,
    main: Option<&ObjectRecord>,
) -> Step {
    let body = req.body.as_ref();
    let result = match (b, main) {
        (Builtin::New, _) => builtin::new_object(plan.class(), body)
            .map(|obj| Step::ok(MainChange::Keep, Some(obj), None)),
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

/// Why a task was not sent.
enum Redeployed {
    /// The function's deployment is not the one the call was planned on.
    Changed,
    /// The engine is stopping: the call did not run (an async call stays in
    /// the log for the next start).
    Stopped,
}

/// Why a call did not run.
pub(crate) enum Refusal {
    /// Planned again, the call is refused.
    Now(Error),
    /// Planned again, the call now mutates its object: it must run in the
    /// object's inbox, not here.
    Mutating(Box<Plan>),
}

async fn run_task(
    shared: &Shared,
    plan: &Plan,
    req: &InvocationRequest,
    main: Option<&ObjectRecord>,
) -> Result<Step, Redeployed> {
    let Action::Task { timeout, revision } = plan.action else {
        return Ok(Step::failed(failure(codes::INTERNAL, "not a task")));
    };
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
    let bytes = match encode(task, main).await {
        Ok(b) => b,
        Err(e) => {
            let mut step = Step::failed(failure(
                codes::INTERNAL,
                format!("cannot encode the task: {e}"),
            ));
            step.offload_ts = offload_ts;
            return Ok(step);
        }
    };
    let answer = shared
        .engine
        .invoke(
            &plan.binding().function,
            revision,
            bytes,
            timeout,
            &trace_headers(req),
        )
        .await;
    let mut step = match answer {
        Err(CallError::Changed) => return Err(Redeployed::Changed),
        Err(CallError::Stopped) => return Err(Redeployed::Stopped),
        Err(e) => Step::failed(engine_failure(&e)),
        Ok(bytes) => match decode(bytes).await {
            Err(e) => Step::failed(failure(codes::BAD_COMPLETION, e)),
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
    Ok(step)
}

/// Encodes a task, off the runtime when its object is large.
async fn encode(task: oprc_core::Task, main: Option<&ObjectRecord>) -> Result<Bytes, String> {
    let large = main.is_some_and(|m| crate::cache::json_size(&m.data) > INLINE_DECODE_BYTES);
    let work = move || {
        serde_json::to_vec(&task)
            .map(Bytes::from)
            .map_err(|e| e.to_string())
    };
    if !large {
        return work();
    }
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(format!("encoding the task failed: {e}")))
}

/// Decodes a completion, off the runtime when it is large.
async fn decode(bytes: Bytes) -> Result<Completion, String> {
    if bytes.len() <= INLINE_DECODE_BYTES {
        return Completion::parse(&bytes).map_err(|e| e.to_string());
    }
    tokio::task::spawn_blocking(move || Completion::parse(&bytes).map_err(|e| e.to_string()))
        .await
        .unwrap_or_else(|e| Err(format!("decoding the answer failed: {e}")))
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

fn engine_failure(e: &CallError) -> oprc_core::InvocationError {
    let code = match e {
        CallError::Timeout(_) => codes::FUNCTION_TIMEOUT,
        CallError::BadAnswer(_) => codes::BAD_COMPLETION,
        CallError::Unreachable(_) | CallError::Changed | CallError::Stopped => {
            codes::FUNCTION_UNREACHABLE
        }
    };
    failure(code, e.to_string())
}
