//! File routes of the API: download (a 303 to a presigned URL, or the
//! bytes relayed through the node) and relayed upload (streamed into the
//! blob store, then committed). The bytes move through the storage
//! adapter's transfer functions; access is the invoker's to decide.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use oprc_core::{Caller, InvocationRequest, ObjectRecord};
use serde::Deserialize;

use crate::AppState;
use crate::error::{ApiError, Code};
use crate::invoke::{class_key, object_id, respond};
use crate::openapi::Guarded;
use crate::schemas;

/// Query of a file download.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct FileQuery {
    /// Stream the bytes through the node (200) instead of redirecting to
    /// the blob store (303), for clients that cannot follow redirects. A
    /// node started with `--blob-relay` always relays.
    #[serde(rename = "_relay", default)]
    relay: bool,
}

/// A file of an object: `303 See Other` to a presigned URL of its current
/// version, or with `_relay=true` the bytes (ranges and `ETag` honoured).
#[utoipa::path(
    get,
    path = "/classes/{cls}/objects/{oid}/files/{key}",
    tag = "objects",
    params(
        ("cls" = schemas::ClassKey, Path, description = "class key `<package>.<class>`"),
        ("oid" = schemas::ObjectId, Path, description = "object id"),
        ("key" = String, Path, description = "file key of the class (`stateSpec.keySpecs`)"),
        FileQuery,
    ),
    responses(
        (status = 200, description = "the file's bytes (relay)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "the range asked for (relay)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 303, description = "redirect to a presigned URL of the current version (header `Location`)"),
        (status = 304, description = "not modified (relay, `If-None-Match`)"),
        (status = 400, description = "malformed path or unknown file key", body = schemas::ErrorAnswer),
        (status = 403, description = "the key is not PUBLIC (the message names its modifier)", body = schemas::ErrorAnswer),
        (status = 404, description = "no such class or object, or the file has no content yet", body = schemas::ErrorAnswer),
        (status = 416, description = "the range is outside the file (relay)", body = schemas::ErrorAnswer),
        (status = 503, description = "storage unavailable; retry after `Retry-After` seconds", body = schemas::ErrorAnswer),
        Guarded,
    )
)]
pub(crate) async fn get_file(
    State(state): State<Arc<AppState>>,
    Path((cls, oid, key)): Path<(String, String, String)>,
    query: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(Code::BadRequest, e.body_text()))?;
    let (cls, oid) = (class_key(&cls)?, object_id(&oid)?);
    let path = state
        .invoker
        .file(&cls, &oid, &key, &Caller::External)
        .await?;
    let store = state.invoker.blobs();
    if query.relay || state.relay {
        return Ok(oprc_adapter::transfer::download(store.as_ref(), &path, &headers).await);
    }
    let url = store
        .presign(oprc_blob::Method::Get, &path, state.files.url_ttl)
        .map_err(|e| ApiError::new(Code::Unavailable, format!("cannot make a file URL: {e}")))?;
    let mut r = StatusCode::SEE_OTHER.into_response();
    let location = HeaderValue::from_str(&url)
        .map_err(|_| ApiError::new(Code::Internal, "the file URL is not a header value"))?;
    r.headers_mut().insert(header::LOCATION, location);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Uploads a new version of a file through the node and commits it: the
/// object switches to it in one step, and a failed upload leaves the old
/// version in place. Answers the object.
#[utoipa::path(
    put,
    path = "/classes/{cls}/objects/{oid}/files/{key}",
    tag = "objects",
    params(
        ("cls" = schemas::ClassKey, Path, description = "class key `<package>.<class>`"),
        ("oid" = schemas::ObjectId, Path, description = "object id"),
        ("key" = String, Path, description = "file key of the class (`stateSpec.keySpecs`)"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the file's bytes (any type but text/plain, form encodings or none)"),
    responses(
        (status = 200, description = "the object, on its new version", body = schemas::ObjectRecord),
        (status = 400, description = "malformed path or unknown file key", body = schemas::ErrorAnswer),
        (status = 403, description = "the key is not PUBLIC (the message names its modifier)", body = schemas::ErrorAnswer),
        (status = 404, description = "no such class or object", body = schemas::ErrorAnswer),
        (status = 413, description = "larger than the node's file limit", body = schemas::ErrorAnswer),
        (status = 415, description = "a media type a web page could send cross-site", body = schemas::ErrorAnswer),
        (status = 503, description = "storage unavailable; retry after `Retry-After` seconds", body = schemas::ErrorAnswer),
        Guarded,
    )
)]
pub(crate) async fn put_file(
    State(state): State<Arc<AppState>>,
    Path((cls, oid, key)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (cls, oid) = (class_key(&cls)?, object_id(&oid)?);
    let caller = Caller::External;
    let path = state
        .invoker
        .upload_target(&cls, &oid, &key, &caller)
        .await?;
    let store = state.invoker.blobs();
    if let Err(e) = oprc_adapter::transfer::upload(
        store.as_ref(),
        &path,
        &headers,
        body,
        state.files.max_file_bytes,
    )
    .await
    {
        return Ok(e.into_response());
    }
    let mut req = InvocationRequest::new(cls, Some(oid), "file");
    req.args.insert("commit".into(), path.version.clone());
    req.args.insert("key".into(), key);
    let resp = state.invoker.invoke(req).await?;
    if resp.error.is_some() {
        return Ok(respond(resp));
    }
    match resp.main {
        Some(obj) => Ok(Json::<ObjectRecord>(obj).into_response()),
        None => Err(ApiError::new(
            Code::Internal,
            "the commit answered no object",
        )),
    }
}
