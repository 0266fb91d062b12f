//! Invocation routes: class-level and object calls, sync and async, and
//! invocation lookups. A call that ran answers the invocation shape under
//! the status of its outcome (`status_of`); a refused one, the error shape.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use oprc_core::{
    Caller, ClassKey, InvocationId, InvocationRequest, InvocationResponse, InvocationStatus,
    ObjectId,
};
use oprc_invoker::{Grant, codes};

use crate::AppState;
use crate::body::json_body;
use crate::error::ApiError;
use crate::openapi::{CallResponses, Guarded, Storage};
use crate::schemas;

/// Platform flags of an invocation (query parameters with a leading `_`).
#[derive(Debug, Default)]
struct Flags {
    run_async: bool,
    show_main: Option<bool>,
    show_output: Option<bool>,
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "query flag `{name}` must be true or false, not {v:?}"
        ))),
    }
}

/// Splits the query into platform flags and function `args`.
fn split_query(
    query: Vec<(String, String)>,
) -> Result<(Flags, BTreeMap<String, String>), ApiError> {
    let mut flags = Flags::default();
    let mut args = BTreeMap::new();
    for (k, v) in query {
        match k.as_str() {
            "_async" => flags.run_async = parse_bool(&k, &v)?,
            "_showMain" => flags.show_main = Some(parse_bool(&k, &v)?),
            "_showOutput" => flags.show_output = Some(parse_bool(&k, &v)?),
            "_showAll" => {
                let all = parse_bool(&k, &v)?;
                flags.show_main = Some(all);
                flags.show_output = Some(all);
            }
            _ if k.starts_with('_') => {
                return Err(ApiError::bad_request(format!(
                    "unknown query flag `{k}`; flags are _async, _showMain, _showOutput, _showAll \
                     (arguments must not start with `_`)"
                )));
            }
            _ => {
                args.insert(k, v);
            }
        }
    }
    Ok((flags, args))
}

pub(crate) fn class_key(s: &str) -> Result<ClassKey, ApiError> {
    ClassKey::new(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

pub(crate) fn object_id(s: &str) -> Result<ObjectId, ApiError> {
    ObjectId::new(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?;
            if v.is_empty() || v.len() > 255 {
                return Err(ApiError::bad_request(
                    "Idempotency-Key must be 1 to 255 characters",
                ));
            }
            if v.starts_with(oprc_invoker::RESERVED_KEY_PREFIX) {
                return Err(ApiError::bad_request(format!(
                    "Idempotency-Key must not start with {:?}: the node's own keys (macro \
                     steps, functions' calls) do",
                    oprc_invoker::RESERVED_KEY_PREFIX
                )));
            }
            Ok(Some(v.to_owned()))
        }
    }
}

/// A well-formed W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`);
/// anything else is dropped rather than passed on.
fn traceparent(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("traceparent")?.to_str().ok()?;
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2))
    .then(|| v.to_owned())
}

/// HTTP status of an invocation answer.
pub(crate) fn status_of(resp: &InvocationResponse) -> StatusCode {
    match resp.status {
        InvocationStatus::Succeeded => StatusCode::OK,
        InvocationStatus::Queue | InvocationStatus::Doing => StatusCode::ACCEPTED,
        InvocationStatus::Failed | InvocationStatus::DependencyFailed => {
            match resp.error.as_ref().map(|e| e.code.as_str()) {
                Some(codes::FUNCTION_FAILED | codes::STEP_FAILED | codes::TEMPLATE) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                Some(codes::REENTRANT) => StatusCode::CONFLICT,
                Some(codes::FUNCTION_TIMEOUT) => StatusCode::GATEWAY_TIMEOUT,
                Some(codes::BAD_COMPLETION | codes::FUNCTION_UNREACHABLE) => {
                    StatusCode::BAD_GATEWAY
                }
                Some(codes::CONFLICT | codes::ALREADY_EXISTS) => StatusCode::CONFLICT,
                Some(codes::NOT_FOUND) => StatusCode::NOT_FOUND,
                Some(codes::FORBIDDEN) => StatusCode::FORBIDDEN,
                Some(codes::INVALID_ARGUMENT) => StatusCode::BAD_REQUEST,
                Some(codes::UNSUPPORTED) => StatusCode::NOT_IMPLEMENTED,
                Some(codes::STORAGE) => StatusCode::SERVICE_UNAVAILABLE,
                Some(codes::INTERNAL | codes::UNREADABLE) => StatusCode::INTERNAL_SERVER_ERROR,
                // A code this version does not know: the call ran and failed.
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            }
        }
    }
}

/// Whether the main object is shown by default: for the builtins whose
/// answer is the object itself.
fn main_by_default(fb: &str) -> bool {
    matches!(fb, "get" | "update")
}

/// An invocation answer with its status (and `Retry-After` when storage
/// was unavailable).
pub(crate) fn respond(resp: InvocationResponse) -> Response {
    let status = status_of(&resp);
    let mut http = (status, Json(resp)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        http.headers_mut().insert(
            http::header::RETRY_AFTER,
            crate::error::retry_after_value(crate::error::RETRY_LATER),
        );
    }
    http
}

fn answer(mut resp: InvocationResponse, fb: &str, flags: &Flags) -> Response {
    if !flags.show_main.unwrap_or_else(|| main_by_default(fb)) {
        resp.main = None;
    }
    if !flags.show_output.unwrap_or(true) {
        resp.output = None;
    }
    respond(resp)
}

/// What a call names in its path.
struct Callee<'a> {
    cls: &'a str,
    oid: Option<&'a str>,
    fb: String,
}

async fn call(
    state: &AppState,
    callee: Callee<'_>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    grant: Option<Grant>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Callee { cls, oid, fb } = callee;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (flags, args) = split_query(query)?;
    let mut req = InvocationRequest::new(class_key(cls)?, oid.map(object_id).transpose()?, fb);
    req.args = args;
    req.body = json_body(headers, body)?;
    req.idempotency_key = idempotency_key(headers)?;
    req.traceparent = traceparent(headers);
    if let Some(grant) = grant {
        // A function calling through the node, as its class; its keys are
        // its task's own.
        req.idempotency_key = req
            .idempotency_key
            .map(|k| oprc_invoker::call_key(&grant.inv, &k));
        req.caller = Caller::Function { cls: grant.cls };
        req.chain = Some(grant.chain);
    }
    let fb = req.fb.clone();
    let resp = if flags.run_async {
        state.invoker.submit(req).await?
    } else {
        state.invoker.invoke(req).await?
    };
    Ok(answer(resp, &fb, &flags))
}

/// The body of a POST call.
const CALL_BODY: &str = "the call's `body`: any JSON (for `new`: `{id?, data?, refs?}`)";

/// A class-level call (`new`, `noMain` bindings).
#[utoipa::path(
    get,
    path = "/classes/{cls}/invokes/{fb}",
    tag = "invocations",
    params(schemas::ClassCall, schemas::CallQuery, schemas::CallHeaders),
    responses(
        (status = 200, description = "the call succeeded", body = schemas::InvocationResponse),
        (status = 202, description = "queued (`_async`)", body = schemas::InvocationResponse),
        CallResponses,
    )
)]
pub(crate) async fn invoke_class_get(
    State(state): State<Arc<AppState>>,
    Path((cls, fb)): Path<(String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    grant: Option<Extension<Grant>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let grant = grant.map(|Extension(g)| g);
    let callee = Callee {
        cls: &cls,
        oid: None,
        fb,
    };
    call(&state, callee, query, grant, &headers, body).await
}

/// A class-level call (`new`, `noMain` bindings) with a body.
#[utoipa::path(
    post,
    path = "/classes/{cls}/invokes/{fb}",
    tag = "invocations",
    params(schemas::ClassCall, schemas::CallQuery, schemas::CallHeaders),
    request_body(description = CALL_BODY, content = Option<serde_json::Value>,
                 content_type = "application/json"),
    responses(
        (status = 200, description = "the call succeeded", body = schemas::InvocationResponse),
        (status = 202, description = "queued (`_async`)", body = schemas::InvocationResponse),
        CallResponses,
    )
)]
pub(crate) async fn invoke_class_post(
    state: State<Arc<AppState>>,
    path: Path<(String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    grant: Option<Extension<Grant>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    invoke_class_get(state, path, query, grant, headers, body).await
}

/// A call on an object.
#[utoipa::path(
    get,
    path = "/classes/{cls}/objects/{oid}/invokes/{fb}",
    tag = "invocations",
    params(schemas::ObjectCall, schemas::CallQuery, schemas::CallHeaders),
    responses(
        (status = 200, description = "the call succeeded", body = schemas::InvocationResponse),
        (status = 202, description = "queued (`_async`)", body = schemas::InvocationResponse),
        CallResponses,
    )
)]
pub(crate) async fn invoke_object_get(
    State(state): State<Arc<AppState>>,
    Path((cls, oid, fb)): Path<(String, String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    grant: Option<Extension<Grant>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let grant = grant.map(|Extension(g)| g);
    let callee = Callee {
        cls: &cls,
        oid: Some(&oid),
        fb,
    };
    call(&state, callee, query, grant, &headers, body).await
}

/// A call on an object, with a body.
#[utoipa::path(
    post,
    path = "/classes/{cls}/objects/{oid}/invokes/{fb}",
    tag = "invocations",
    params(schemas::ObjectCall, schemas::CallQuery, schemas::CallHeaders),
    request_body(description = CALL_BODY, content = Option<serde_json::Value>,
                 content_type = "application/json"),
    responses(
        (status = 200, description = "the call succeeded", body = schemas::InvocationResponse),
        (status = 202, description = "queued (`_async`)", body = schemas::InvocationResponse),
        CallResponses,
    )
)]
pub(crate) async fn invoke_object_post(
    state: State<Arc<AppState>>,
    path: Path<(String, String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    grant: Option<Extension<Grant>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    invoke_object_get(state, path, query, grant, headers, body).await
}

/// The status and result of an invocation (async calls, and calls with an
/// `Idempotency-Key`), kept for the retention period.
#[utoipa::path(
    get,
    path = "/invocations/{id}",
    tag = "invocations",
    params(("id" = schemas::InvocationId, Path, description = "invocation id")),
    responses(
        (status = 200, description = "the invocation, whatever its own status",
         body = schemas::InvocationResponse),
        (status = 400, description = "malformed id", body = schemas::ErrorAnswer),
        (status = 404, description = "unknown, or past its retention", body = schemas::ErrorAnswer),
        Guarded,
        Storage,
    )
)]
pub(crate) async fn get_invocation(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = InvocationId::new(id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let resp = state.invoker.invocation(&id).await?;
    // The record answers 200 whatever the invocation's own status.
    Ok(Json(resp).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn failed_calls_answer_the_status_of_their_code() {
        let check = |code: &str, status: StatusCode| {
            let mut resp = InvocationResponse::status(
                InvocationId::new("i").unwrap(),
                InvocationStatus::Failed,
            );
            resp.error = Some(oprc_core::InvocationError {
                code: code.to_owned(),
                message: "m".to_owned(),
            });
            let http = respond(resp);
            assert_eq!(http.status(), status, "{code}");
            let retry = http.headers().get(http::header::RETRY_AFTER).is_some();
            assert_eq!(retry, status == StatusCode::SERVICE_UNAVAILABLE, "{code}");
        };
        check(codes::FUNCTION_FAILED, StatusCode::UNPROCESSABLE_ENTITY);
        check(codes::BAD_COMPLETION, StatusCode::BAD_GATEWAY);
        check(codes::FUNCTION_UNREACHABLE, StatusCode::BAD_GATEWAY);
        check(codes::FUNCTION_TIMEOUT, StatusCode::GATEWAY_TIMEOUT);
        check(codes::INVALID_ARGUMENT, StatusCode::BAD_REQUEST);
        check(codes::NOT_FOUND, StatusCode::NOT_FOUND);
        check(codes::ALREADY_EXISTS, StatusCode::CONFLICT);
        check(codes::FORBIDDEN, StatusCode::FORBIDDEN);
        check(codes::CONFLICT, StatusCode::CONFLICT);
        check(codes::UNSUPPORTED, StatusCode::NOT_IMPLEMENTED);
        check(codes::STORAGE, StatusCode::SERVICE_UNAVAILABLE);
        check(codes::INTERNAL, StatusCode::INTERNAL_SERVER_ERROR);
        check(codes::UNREADABLE, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn flags_are_split_from_args() {
        let (flags, args) =
            split_query(q(&[("_async", "true"), ("n", "5"), ("_showAll", "")])).unwrap();
        assert!(flags.run_async);
        assert_eq!(flags.show_main, Some(true));
        assert_eq!(args.get("n").map(String::as_str), Some("5"));
        assert!(split_query(q(&[("_bogus", "1")])).is_err());
        assert!(split_query(q(&[("_async", "maybe")])).is_err());
    }
}
