//! Invocation routes: class-level and object calls, sync and async, and
//! invocation lookups.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use oprc_core::{
    ClassKey, InvocationId, InvocationRequest, InvocationResponse, InvocationStatus, ObjectId,
};
use oprc_invoker::{Caller, codes};

use crate::AppState;
use crate::error::ApiError;

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

/// Reads an optional JSON body, mapping every rejection to our error shape.
pub(crate) fn json_body(
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<serde_json::Value>, ApiError> {
    let bytes = body?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))
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
fn status_of(resp: &InvocationResponse) -> StatusCode {
    match resp.status {
        InvocationStatus::Succeeded => StatusCode::OK,
        InvocationStatus::Queue | InvocationStatus::Doing => StatusCode::ACCEPTED,
        InvocationStatus::Failed | InvocationStatus::DependencyFailed => {
            match resp.error.as_ref().map(|e| e.code.as_str()) {
                Some(codes::FUNCTION_FAILED) => StatusCode::UNPROCESSABLE_ENTITY,
                Some(codes::FUNCTION_TIMEOUT) => StatusCode::GATEWAY_TIMEOUT,
                Some(codes::BAD_COMPLETION | codes::FUNCTION_UNREACHABLE) => {
                    StatusCode::BAD_GATEWAY
                }
                Some(codes::CONFLICT | codes::ALREADY_EXISTS) => StatusCode::CONFLICT,
                Some(codes::NOT_FOUND) => StatusCode::NOT_FOUND,
                Some(codes::INVALID_ARGUMENT) => StatusCode::BAD_REQUEST,
                Some(codes::UNSUPPORTED) => StatusCode::NOT_IMPLEMENTED,
                Some(codes::STORAGE) => StatusCode::SERVICE_UNAVAILABLE,
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

fn answer(mut resp: InvocationResponse, fb: &str, flags: &Flags) -> Response {
    if !flags.show_main.unwrap_or_else(|| main_by_default(fb)) {
        resp.main = None;
    }
    if !flags.show_output.unwrap_or(true) {
        resp.output = None;
    }
    (status_of(&resp), Json(resp)).into_response()
}

async fn call(
    state: &AppState,
    cls: &str,
    oid: Option<&str>,
    fb: String,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (flags, args) = split_query(query)?;
    let req = InvocationRequest {
        inv_id: InvocationId::generate(),
        cls: class_key(cls)?,
        oid: oid.map(object_id).transpose()?,
        fb,
        args,
        body: json_body(body)?,
        idempotency_key: idempotency_key(headers)?,
        accepted_at: None,
        traceparent: traceparent(headers),
    };
    let fb = req.fb.clone();
    let resp = if flags.run_async {
        state.invoker.submit(req, Caller::External).await?
    } else {
        state.invoker.invoke(req, Caller::External).await?
    };
    Ok(answer(resp, &fb, &flags))
}

pub(crate) async fn invoke_class(
    State(state): State<Arc<AppState>>,
    Path((cls, fb)): Path<(String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    call(&state, &cls, None, fb, query, &headers, body).await
}

pub(crate) async fn invoke_object(
    State(state): State<Arc<AppState>>,
    Path((cls, oid, fb)): Path<(String, String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    call(&state, &cls, Some(&oid), fb, query, &headers, body).await
}

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
