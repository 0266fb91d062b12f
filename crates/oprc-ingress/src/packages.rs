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

/// `offset`/`limit` of the catalogue listings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
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
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be between 1 and 1000"));
    }
    let offset = p.offset.unwrap_or(0);
    let total = all.len();
    Ok(Listing {
        items: all.skip(offset).take(limit).collect(),
        offset,
        total,
    })
}

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

pub(crate) async fn list_packages(
    State(state): State<Arc<AppState>>,
    query: Result<Query<Page>, QueryRejection>,
) -> Result<Response, ApiError> {
    let catalog = state.registry.catalog();
    Ok(Json(page(query, catalog.packages())?).into_response())
}

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

pub(crate) async fn delete_package(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.registry.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn list_classes(
    State(state): State<Arc<AppState>>,
    query: Result<Query<Page>, QueryRejection>,
) -> Result<Response, ApiError> {
    let catalog = state.registry.catalog();
    Ok(Json(page(query, catalog.classes())?).into_response())
}

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
