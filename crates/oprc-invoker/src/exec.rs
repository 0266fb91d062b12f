//! Running one planned call against a known state: a builtin in process,
//! or a task offloaded through the engine port. Gives a [`Step`]; the
//! caller commits it.

use std::time::Duration;

use bytes::Bytes;
use oprc_core::{Completion, InvocationRequest, ObjectId, ObjectRecord, ObjectRef};

use crate::Error;
use std::sync::Arc;

use oprc_package::ResolvedClass;

use crate::apply::{self, Classes, Outcome, TaskInput};
use crate::builtin::{self, Builtin};
use crate::calls::{self, Grant};
use crate::context::Shared;
use crate::error::codes;
use crate::file_calls::{self, FileCall};
use crate::files::{self, Files, TaskFiles};
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

/// How long a task's call token outlives the task's timeout (clock steps
/// between the node and the function's answer).
const TOKEN_GRACE_MS: i64 = 1_000;

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
    match plan.action {
        Action::Builtin(b) => return Ok(run_builtin(shared, b, plan, req, main).await),
        Action::Macro(_) => return Err(Refusal::Now(became_macro())),
        Action::Task { .. } => {}
    }
    match run_task(shared, plan, req, main).await {
        Ok(step) => return Ok(step),
        Err(Redeployed::Stopped) => return Err(Refusal::Now(Error::ShuttingDown)),
        Err(Redeployed::Storage(e)) => return Err(Refusal::Storage(e)),
        Err(Redeployed::Changed) => {}
    }
    // The registry deploys a new version before it publishes the catalog
    // that names it: plan again until the two agree (a short window).
    for attempt in 1..=REPLANS {
        let again = plan::plan(&shared.catalog.load(), req).map_err(Refusal::Now)?;
        if again.mutating && !in_inbox {
            return Err(Refusal::Mutating(Box::new(again)));
        }
        match again.action {
            Action::Builtin(b) => return Ok(run_builtin(shared, b, &again, req, main).await),
            Action::Macro(_) => return Err(Refusal::Now(became_macro())),
            Action::Task { .. } => {}
        }
        match run_task(shared, &again, req, main).await {
            Ok(step) => return Ok(step),
            Err(Redeployed::Stopped) => return Err(Refusal::Now(Error::ShuttingDown)),
            Err(Redeployed::Storage(e)) => return Err(Refusal::Storage(e)),
            Err(Redeployed::Changed) => {}
        }
        tokio::time::sleep(Duration::from_millis(attempt)).await;
    }
    Ok(Step::failed(failure(
        codes::FUNCTION_UNREACHABLE,
        "the function is being redeployed; retry",
    )))
}

/// A package update turned the binding into a macro after the call was
/// accepted as a task: it was not run.
fn became_macro() -> Error {
    Error::BadRequest(
        "the binding became a macro function after this call was accepted; call it again".into(),
    )
}

async fn run_builtin(
    shared: &Shared,
    b: Builtin,
    plan: &Plan,
    req: &InvocationRequest,
    main: Option<&ObjectRecord>,
) -> Step {
    let body = req.body.as_ref();
    let files = &shared.files;
    let version = req.inv_id.as_str();
    let result = match (b, main) {
        (Builtin::New, _) => builtin::new_object(plan.class(), body).and_then(|(obj, keys)| {
            if keys.is_empty() {
                return Ok(Step::ok(MainChange::Keep, Some(obj), None));
            }
            file_calls::check_new_keys(plan.class(), &req.caller, &keys)?;
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let version = file_calls::outside_version(version);
            let urls = file_calls::upload_urls(files, &obj, &version, &keys)?;
            Ok(Step::ok(MainChange::Keep, Some(obj), Some(urls)))
        }),
        (Builtin::Get, Some(_)) => Ok(Step::ok(MainChange::Keep, None, None)),
        (Builtin::Update, Some(m)) => builtin::updated(plan.binding(), m, body)
            .map(|next| Step::ok(next.map_or(MainChange::Keep, MainChange::Put), None, None)),
        (Builtin::Delete, Some(_)) => Ok(Step::ok(MainChange::Delete, None, None)),
        (Builtin::Copy, Some(m)) => match builtin::copy_of(m, body, &req.inv_id) {
            Ok(obj) => copy_files(files, m, obj, version)
                .await
                .map(|obj| Step::ok(MainChange::Keep, Some(obj), None)),
            Err(e) => Err(e),
        },
        (Builtin::Project, Some(m)) => {
            builtin::project(m, &req.args, body).map(|v| Step::ok(MainChange::Keep, None, Some(v)))
        }
        (Builtin::File, Some(m)) => file_call(files, plan, req, m).await,
        (_, None) => Err(failure(
            codes::INVALID_ARGUMENT,
            "this builtin needs a main object",
        )),
    };
    result.unwrap_or_else(Step::failed)
}

/// The builtin `file`: URLs of current versions, URLs for new ones, or the
/// commit of uploaded ones.
async fn file_call(
    files: &Files,
    plan: &Plan,
    req: &InvocationRequest,
    main: &ObjectRecord,
) -> Result<Step, oprc_core::InvocationError> {
    let (call, key) = file_calls::parse(&req.args)?;
    let keys = file_calls::select(plan.class(), &req.caller, key)?;
    let body = match call {
        FileCall::Get => file_calls::download_urls(files, main, &keys, key.is_some())?,
        FileCall::Put => {
            let version = file_calls::outside_version(req.inv_id.as_str());
            file_calls::upload_urls(files, main, &version, &keys)?
        }
        FileCall::Commit(version) => {
            return commit_uploads(files, main, &keys, &version, key.is_some()).await;
        }
    };
    Ok(Step::ok(MainChange::Keep, None, Some(body)))
}

/// Switches `keys` of `main` to `version` where it was uploaded (a commit
/// that finds nothing fails).
async fn commit_uploads(
    files: &Files,
    main: &ObjectRecord,
    keys: &[&str],
    version: &str,
    named: bool,
) -> Result<Step, oprc_core::InvocationError> {
    let mut next = main.clone();
    let mut committed = Vec::new();
    for key in keys {
        if main.meta.ver_ids.get(*key).is_some_and(|v| v == version) {
            committed.push((*key).to_owned());
            continue;
        }
        let Some(path) = files::path_of(main, version, key) else {
            continue;
        };
        match files::check_upload(files, &path).await {
            Ok(()) => {
                next.meta
                    .ver_ids
                    .insert((*key).to_owned(), version.to_owned());
                committed.push((*key).to_owned());
            }
            Err(e) if e.code == codes::NOT_FOUND && !named => {}
            Err(e) => return Err(e),
        }
    }
    if committed.is_empty() {
        return Err(failure(
            codes::NOT_FOUND,
            format!(
                "nothing was uploaded as version `{version}` of object `{}`",
                main.meta.id
            ),
        ));
    }
    let change = if next.meta.ver_ids == main.meta.ver_ids {
        MainChange::Keep
    } else {
        next.meta.revision += 1;
        MainChange::Put(next)
    };
    Ok(Step::ok(
        change,
        None,
        Some(serde_json::json!({ "committed": committed })),
    ))
}

/// The copy's files: each current version of `from`, copied to a version
/// of the copy (files belong to one object, so the collector can tell
/// when they are dead).
async fn copy_files(
    files: &Files,
    from: &ObjectRecord,
    mut to: ObjectRecord,
    version: &str,
) -> Result<ObjectRecord, oprc_core::InvocationError> {
    for (key, v) in &from.meta.ver_ids {
        let (Some(src), Some(dst)) = (
            files::path_of(from, v, key),
            files::path_of(&to, version, key),
        ) else {
            continue;
        };
        files
            .store
            .copy(&src, &dst)
            .await
            .map_err(|e| failure(codes::STORAGE, format!("cannot copy file `{key}`: {e}")))?;
        to.meta.ver_ids.insert(key.clone(), version.to_owned());
    }
    Ok(to)
}

/// Why a task gave no step.
enum Redeployed {
    /// The function's deployment is not the one the call was planned on
    /// (nothing was sent).
    Changed,
    /// The engine is stopping: the call did not run (an async call stays in
    /// the log for the next start).
    Stopped,
    /// The blob store could not tell whether the uploads are there: like a
    /// failed commit, the call's work is lost, not wrong (retried as ADR 6
    /// says).
    Storage(oprc_store::Error),
}

/// Why a call did not run.
pub(crate) enum Refusal {
    /// Planned again, the call is refused.
    Now(Error),
    /// Planned again, the call now mutates its object: it must run in the
    /// object's inbox, not here.
    Mutating(Box<Plan>),
    /// Storage failed under the call; nothing was committed.
    Storage(oprc_store::Error),
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
    let output_class = plan.output_class();
    let refs = match main {
        Some(m) => load_refs(shared, plan, m).await,
        None => Vec::new(),
    };
    let urls = files::task_urls(&TaskFiles {
        files: &shared.files,
        class: plan.class(),
        main,
        writes_main: !plan.binding().immutable,
        output: output.as_ref().zip(output_class.as_deref()),
        refs,
        version: req.inv_id.as_str(),
    });
    let offload_ts = now_ms();
    let call = shared.calls.as_ref().map(|calls| {
        // The task's main object is held while it runs if the call mutates
        // it: the task's own calls must not wait on it.
        let holds = main.filter(|_| plan.mutating).map(|m| ObjectRef {
            cls: m.meta.cls.clone(),
            oid: m.meta.id.clone(),
        });
        let grant = Grant {
            inv: req.inv_id.clone(),
            cls: plan.acting_class().clone(),
            chain: calls::chain_below(req, holds),
            exp: offload_ts
                .saturating_add(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX))
                .saturating_add(TOKEN_GRACE_MS),
        };
        (calls.url.clone(), calls.issue(&grant))
    });
    let task = apply::build_task(TaskInput {
        inv_id: req.inv_id.as_str(),
        binding: plan.binding(),
        args: &req.args,
        body: req.body.as_ref(),
        main,
        output: output.as_ref(),
        now_ms: offload_ts,
        urls,
        call,
    });
    let has_token = task.call_token.is_some();
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
    // The task's call token is good while the task runs.
    let _live = has_token.then(|| shared.live_task(&req.inv_id));
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
                let classes = Classes {
                    main: plan.class(),
                    output: output_class.as_deref(),
                    version: req.inv_id.as_str(),
                };
                match apply::apply_completion(plan.binding(), &classes, main, output, completion) {
                    Outcome::Failed(e) => Step::failed(e),
                    Outcome::Commit {
                        main: next,
                        output,
                        body,
                        files,
                    } => {
                        if !files.ignored.is_empty() {
                            tracing::warn!(
                                inv_id = %req.inv_id,
                                function = %plan.binding().function,
                                keys = ?files.ignored,
                                "the completion reports updated keys the class does not have (or may not write); ignored"
                            );
                        }
                        match files::check_uploads(&shared.files, &files.uploaded).await {
                            Ok(()) => Step::ok(
                                next.map_or(MainChange::Keep, MainChange::Put),
                                output,
                                body,
                            ),
                            Err(e) if e.code == codes::STORAGE => {
                                return Err(Redeployed::Storage(oprc_store::Error::new(
                                    oprc_store::ErrorKind::Unavailable,
                                    e.message,
                                )));
                            }
                            Err(e) => Step::failed(e),
                        }
                    }
                }
            }
        },
    };
    step.offload_ts = offload_ts;
    Ok(step)
}

/// The main object's references (those of its class's `refSpec`), loaded;
/// missing ones and those of unknown classes are left out.
async fn load_refs(
    shared: &Shared,
    plan: &Plan,
    main: &ObjectRecord,
) -> Vec<(String, Arc<ResolvedClass>, Arc<ObjectRecord>)> {
    let mut refs = Vec::new();
    for (name, oid) in &main.meta.refs {
        let Some(spec) = plan.class().refs.get(name) else {
            continue;
        };
        let Some(class) = plan.class_of(&spec.cls) else {
            continue;
        };
        if class.keys.is_empty() {
            continue;
        }
        match shared.load(&spec.cls, oid).await {
            Ok(Some(obj)) => refs.push((name.clone(), class, obj)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(reference = %name, %oid, error = %e, "cannot load a referenced object; its files are left out of the task");
            }
        }
    }
    refs
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
