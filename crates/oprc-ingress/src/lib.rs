//! The HTTP API of a node: the Oparaca-compatible REST paths (packages,
//! classes, functions, object and class invocations) plus our additions
//! (invocation lookups, object listing and deletion, health, readiness,
//! metrics, OpenAPI), as an axum [`Router`].
//!
//! It translates HTTP to calls on the invoker and the registry and back;
//! it never touches storage, engines or packages' internals itself.

mod error;
mod invoke;
mod objects;
mod ops;
mod packages;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

pub use error::{ApiError, Code};

/// Options of the HTTP API.
#[derive(Debug, Clone)]
pub struct Options {
    /// Largest request body accepted, in bytes (413 above).
    pub max_body_bytes: usize,
    /// When set, every `/api` request needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            token: None,
        }
    }
}

/// What the routes work with.
pub struct AppState {
    pub invoker: oprc_invoker::Handle,
    pub registry: oprc_registry::Registry,
    pub metrics: Arc<prometheus_client::registry::Registry>,
    pub options: Options,
    /// Cleared when the node starts shutting down (`/readyz` then fails).
    pub ready: AtomicBool,
}

/// The API router.
pub fn router(state: Arc<AppState>) -> Router {
    use axum::routing::post;
    let api = Router::new()
        .route(
            "/packages",
            post(packages::apply_package).get(packages::list_packages),
        )
        .route(
            "/packages/{name}",
            get(packages::get_package).delete(packages::delete_package),
        )
        .route("/classes", get(packages::list_classes))
        .route("/classes/{cls}", get(packages::get_class))
        .route(
            "/classes/{cls}/invokes/{fb}",
            get(invoke::invoke_class).post(invoke::invoke_class),
        )
        .route("/classes/{cls}/objects", get(objects::list_objects))
        .route(
            "/classes/{cls}/objects/{oid}",
            get(objects::get_object).delete(objects::delete_object),
        )
        .route(
            "/classes/{cls}/objects/{oid}/invokes/{fb}",
            get(invoke::invoke_object).post(invoke::invoke_object),
        )
        .route("/functions", get(packages::list_functions))
        .route("/functions/{key}", get(packages::get_function))
        .route("/invocations/{id}", get(invoke::get_invocation))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::authorize,
        ));
    Router::new()
        .nest("/api", api)
        .route("/api/openapi.json", get(ops::openapi))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
