//! Object routes: read, list (cursor pagination) and delete.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use oprc_core::{InvocationRequest, InvocationStatus, ObjectRecord};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;
use crate::invoke::{class_key, object_id, respond};
use crate::openapi::{CallResponses, Guarded, Storage};
use crate::schemas;

/// An object: its metadata and data.
#[utoipa::path(
    get,
    path = "/classes/{cls}/objects/{oid}",
    tag = "objects",
    params(
        ("cls" = schemas::ClassKey, Path, description = "class key `<package>.<class>`"),
        ("oid" = schemas::ObjectId, Path, description = "object id"),
    ),
    responses(
        (status = 200, description = "the object", body = schemas::ObjectRecord),
        (status = 400, description = "malformed class key or object id", body = schemas::ErrorAnswer),
        (status = 404, description = "no such class or object", body = schemas::ErrorAnswer),
        Guarded,
        Storage,
    )
)]
pub(crate) async fn get_object(
    State(state): State<Arc<AppState>>,
    Path((cls, oid)): Path<(String, String)>,
) -> Result<Json<ObjectRecord>, ApiError> {
    let obj = state
        .invoker
        .object(&class_key(&cls)?, &object_id(&oid)?)
        .await?;
    Ok(Json(obj))
}

/// Query of an object listing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<usize>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
}

/// A page of objects.
#[derive(Debug, Serialize)]
pub(crate) struct ObjectList {
    items: Vec<ObjectRecord>,
    /// Cursor of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// The objects of a class, ordered by id, a page at a time.
#[utoipa::path(
    get,
    path = "/classes/{cls}/objects",
    tag = "objects",
    params(
        ("cls" = schemas::ClassKey, Path, description = "class key `<package>.<class>`"),
        schemas::ObjectPageQuery,
    ),
    responses(
        (status = 200, description = "a page of objects", body = schemas::ObjectList),
        (status = 400, description = "malformed class key, cursor or limit", body = schemas::ErrorAnswer),
        (status = 404, description = "no such class", body = schemas::ErrorAnswer),
        Guarded,
        Storage,
    )
)]
pub(crate) async fn list_objects(
    State(state): State<Arc<AppState>>,
    Path(cls): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ObjectList>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be between 1 and 1000"));
    }
    let after = q.after.as_deref().map(object_id).transpose()?;
    let page = state
        .invoker
        .list_objects(&class_key(&cls)?, after.as_ref(), limit)
        .await?;
    Ok(Json(ObjectList {
        items: page.objects,
        next: page.next.map(|id| id.into_string()),
    }))
}

/// Deletes an object: runs the class's `delete` binding (the builtin
/// unless the class overrides it), through the object's inbox like any
/// mutation. A failure answers the invocation shape under the status of
/// its error (404 for a missing object, 409 for a conflict, ...).
#[utoipa::path(
    delete,
    path = "/classes/{cls}/objects/{oid}",
    tag = "objects",
    params(
        ("cls" = schemas::ClassKey, Path, description = "class key `<package>.<class>`"),
        ("oid" = schemas::ObjectId, Path, description = "object id"),
    ),
    responses(
        (status = 204, description = "deleted"),
        CallResponses,
    )
)]
pub(crate) async fn delete_object(
    State(state): State<Arc<AppState>>,
    Path((cls, oid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let req = InvocationRequest::new(class_key(&cls)?, Some(object_id(&oid)?), "delete");
    let resp = state.invoker.invoke(req).await?;
    if resp.status == InvocationStatus::Succeeded {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Ok(respond(resp))
    }
}
