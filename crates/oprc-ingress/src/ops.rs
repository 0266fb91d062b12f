//! Operational routes (health, readiness, metrics, the OpenAPI document)
//! and the JSON fallbacks for unknown routes and methods.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};

use crate::AppState;
use crate::error::{ApiError, Code};
use crate::openapi::Unauthenticated;
use crate::schemas;

/// The OpenAPI document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "this document", content_type = "application/json"),
        Unauthenticated,
    )
)]
pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
        .into_response()
}

/// Liveness: answers while the process runs.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "the process runs", body = String, content_type = "text/plain"))
)]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: fails while the node shuts down or while a storage engine
/// it uses does not answer (the body names each one).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "ready", body = String, content_type = "text/plain"),
        (status = 503, description = "shutting down, or a storage engine does not answer; \
            one line per reason", body = String, content_type = "text/plain"),
    )
)]
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.health.check() {
        Ok(()) => "ready".into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            why,
        )
            .into_response(),
    }
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "the node's metrics", body = String,
         content_type = "application/openmetrics-text"),
        Unauthenticated,
        (status = 500, description = "the metrics could not be encoded", body = schemas::ErrorAnswer),
    )
)]
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &state.metrics) {
        return ApiError::internal(&e).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see /api/openapi.json")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(Code::MethodNotAllowed, "method not allowed on this route")
}
