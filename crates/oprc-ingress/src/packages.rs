//! Package, class and function routes.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use oprc_core::FunctionKey;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;
use crate::error::{ApiError, diagnostics_json};
use crate::invoke::class_key;
use crate::openapi::{Guarded, Storage, WithBody};
use crate::schemas;

/// `offset`/`limit` of the catalogue listings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page {
    /// At most `u32::MAX`, as documented.
    offset: Option<u32>,
    limit: Option<u32>,
}

/// A page of a listing.
#[derive(Debug, Serialize)]
pub(crate) struct Listing<T> {
    items: Vec<T>,
    offset: usize,
    total: usize,
}

fn page<T>(
    query: Result<Query<Page>, QueryRejection>,
    all: impl ExactSizeIterator<Item = T>,
) -> Result<Listing<T>, ApiError> {
    let Query(p) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = p.limit.unwrap_or(100) as usize;
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be between 1 and 1000"));
    }
    let offset = p.offset.unwrap_or(0) as usize;
    let total = all.len();
    Ok(Listing {
        items: all.skip(offset).take(limit).collect(),
        offset,
        total,
    })
}

/// Creates or replaces a package (YAML or JSON) and answers it resolved,
/// with its warnings. Needs the admin token (or `--token`).
#[utoipa::path(
    post,
    path = "/packages",
    tag = "packages",
    request_body(
        description = "a package document (YAML or JSON)",
        content(
            (schemas::Package = "application/json"),
            (schemas::Package = "application/yaml"),
            (schemas::Package = "application/x-yaml"),
            (schemas::Package = "text/yaml"),
            (schemas::Package = "text/x-yaml"),
        )
    ),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "created", body = schemas::Applied),
        (status = 200, description = "updated", body = schemas::Applied),
        (status = 400, description = "the package is invalid (`invalid_package`, every problem \
                                      in `details`) or not UTF-8; nothing was stored",
         body = schemas::ErrorAnswer),
        WithBody,
        Guarded,
        Storage,
    )
)]
pub(crate) async fn apply_package(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body?;
    let source = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::bad_request("package must be UTF-8 text (YAML or JSON)"))?;
    let applied = state.registry.apply(source).await?;
    let status = if applied.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let warnings = diagnostics_json(&applied.warnings);
    Ok((
        status,
        Json(json!({"package": applied.package, "warnings": warnings})),
    )
        .into_response())
}

/// The packages, resolved.
#[utoipa::path(
    get,
    path = "/packages",
    tag = "packages",
    params(schemas::PageQuery),
    responses(
        (status = 200, description = "a page of packages", body = schemas::PackageListing),
        (status = 400, description = "malformed query", body = schemas::ErrorAnswer),
        Guarded,
    )
)]
pub(crate) async fn list_packages(
    State(state): State<Arc<AppState>>,
    query: Result<Query<Page>, QueryRejection>,
) -> Result<Response, ApiError> {
    let catalog = state.registry.catalog();
    Ok(Json(page(query, catalog.packages())?).into_response())
}

/// A package, resolved.
#[utoipa::path(
    get,
    path = "/packages/{name}",
    tag = "packages",
    params(("name" = schemas::PackageName, Path, description = "package name")),
    responses(
        (status = 200, description = "the package", body = schemas::ResolvedPackage),
        (status = 404, description = "no such package", body = schemas::ErrorAnswer),
        Guarded,
    )
)]
pub(crate) async fn get_package(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let catalog = state.registry.catalog();
    let pkg = catalog
        .package(&name)
        .ok_or_else(|| ApiError::not_found(format!("package `{name}` does not exist")))?;
    Ok(Json(pkg).into_response())
}

/// Deletes a package and stops its functions; its objects stay stored.
/// Needs the admin token (or `--token`).
#[utoipa::path(
    delete,
    path = "/packages/{name}",
    tag = "packages",
    params(("name" = schemas::PackageName, Path, description = "package name")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "no such package", body = schemas::ErrorAnswer),
        (status = 409, description = "other packages use it", body = schemas::ErrorAnswer),
        Guarded,
        Storage,
    )
)]
pub(crate) async fn delete_package(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.registry.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The classes, resolved (inherited bindings and keys included).
#[utoipa::path(
    get,
    path = "/classes",
    tag = "classes",
    params(schemas::PageQuery),
    responses(
        (status = 200, description = "a page of classes", body = schemas::ClassListing),
        (status = 400, description = "malformed query", body = schemas::ErrorAnswer),
        Guarded,
    )
)]
pub(crate) async fn list_classes(
    State(state): State<Arc<AppState>>,
    query: Result<Query<Page>, QueryRejection>,
) -> Result<Response, ApiError> {
    let catalog = state.registry.catalog();
    Ok(Json(page(query, catalog.classes())?).into_response())
}

/// A class, resolved.
#[utoipa::path(
    get,
    path = "/classes/{cls}",
    tag = "classes",
    params(("cls" = schemas::ClassKey, Path, description = "class key `<package>.<class>`")),
    responses(
        (status = 200, description = "the class", body = schemas::ResolvedClass),
        (status = 400, description = "malformed class key", body = schemas::ErrorAnswer),
        (status = 404, description = "no such class", body = schemas::ErrorAnswer),
        Guarded,
    )
)]
pub(crate) async fn get_class(
    State(state): State<Arc<AppState>>,
    Path(cls): Path<String>,
) -> Result<Response, ApiError> {
    let key = class_key(&cls)?;
    let catalog = state.registry.catalog();
    let class = catalog
        .class(&key)
        .ok_or_else(|| ApiError::not_found(format!("class `{cls}` does not exist")))?;
    Ok(Json(class).into_response())
}

/// A function with its live deployment (`deployment`: engine, workers,
/// calls), when it has one.
fn with_deployment(
    f: &oprc_package::ResolvedFunction,
    status: &oprc_engine::Status,
) -> Result<serde_json::Value, ApiError> {
    let mut v = serde_json::to_value(f).map_err(|e| ApiError::internal(&e))?;
    if let (Some(d), Some(obj)) = (status.deployment(&f.key), v.as_object_mut()) {
        let d = serde_json::to_value(d).map_err(|e| ApiError::internal(&e))?;
        obj.insert("deployment".into(), d);
    }
    Ok(v)
}

/// The functions, with their live deployments.
#[utoipa::path(
    get,
    path = "/functions",
    tag = "functions",
    params(schemas::PageQuery),
    responses(
        (status = 200, description = "a page of functions", body = schemas::FunctionListing),
        (status = 400, description = "malformed query", body = schemas::ErrorAnswer),
        (status = 500, description = "a deployment could not be shown", body = schemas::ErrorAnswer),
        Guarded,
    )
)]
pub(crate) async fn list_functions(
    State(state): State<Arc<AppState>>,
    query: Result<Query<Page>, QueryRejection>,
) -> Result<Response, ApiError> {
    let catalog = state.registry.catalog();
    let status = state.registry.deployments();
    let listing = page(query, catalog.functions())?;
    let items = listing
        .items
        .iter()
        .map(|f| with_deployment(f, &status))
        .collect::<Result<Vec<_>, _>>()?;
    let listing = Listing {
        items,
        offset: listing.offset,
        total: listing.total,
    };
    Ok(Json(listing).into_response())
}

/// A function, with its live deployment.
#[utoipa::path(
    get,
    path = "/functions/{key}",
    tag = "functions",
    params(("key" = schemas::FunctionKey, Path, description = "function key `<package>.<function>`")),
    responses(
        (status = 200, description = "the function", body = schemas::ResolvedFunction),
        (status = 400, description = "malformed function key", body = schemas::ErrorAnswer),
        (status = 404, description = "no such function", body = schemas::ErrorAnswer),
        (status = 500, description = "its deployment could not be shown", body = schemas::ErrorAnswer),
        Guarded,
    )
)]
pub(crate) async fn get_function(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let key = FunctionKey::new(key).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let catalog = state.registry.catalog();
    let f = catalog
        .function(&key)
        .ok_or_else(|| ApiError::not_found(format!("function `{key}` does not exist")))?;
    Ok(Json(with_deployment(f, &state.registry.deployments())?).into_response())
}
