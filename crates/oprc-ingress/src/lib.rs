//! The HTTP API of a node: the Oparaca-compatible REST paths (packages,
//! classes, functions, object and class invocations) plus our additions
//! (invocation lookups, object listing and deletion, health, readiness,
//! metrics, OpenAPI), as an axum [`Router`].
//!
//! Every request passes, outermost first: tracing; CORS for the allowed
//! origins (`guard`); then one middleware with the `Host` and cross-site
//! checks (`guard`), the early 413 and the body media types (`body`) and
//! the bearer tokens (`auth`); then the route. The OpenAPI document is generated from the handlers
//! (`openapi`, `schemas`).
//!
//! It translates HTTP to calls on the invoker and the registry and back;
//! it never touches storage, engines or packages' internals itself.

mod auth;
mod body;
mod error;
mod files;
mod guard;
mod health;
mod invoke;
mod objects;
mod openapi;
mod ops;
mod packages;
mod schemas;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::is_admin_route;
pub use body::{JSON_TYPES, YAML_TYPES};
pub use error::{ApiError, Code};
pub use guard::{parse_origin, parse_public_host};
pub use health::Health;

/// Options of the HTTP API.
#[derive(Debug, Clone)]
pub struct Options {
    /// Largest request body accepted, in bytes (413 above; at once when
    /// `Content-Length` says so).
    pub max_body_bytes: usize,
    /// When set, every `/api` request needs `Authorization: Bearer <token>`;
    /// it is also the admin token.
    pub token: Option<String>,
    /// When `token` is not set: the token that routes changing packages
    /// need (the server keeps it in its data directory).
    pub admin_token: Option<String>,
    /// Origins (`scheme://host[:port]`, as [`parse_origin`] writes them)
    /// whose pages may call the API; answered with CORS headers.
    pub allowed_origins: Vec<String>,
    /// Host names this node answers to besides its listen address (`NAME`
    /// on any port, or `NAME:PORT`).
    pub public_hosts: Vec<String>,
    /// The address the node listens on (set by the server from its
    /// listener); `None` skips the `Host` check.
    pub listen: Option<SocketAddr>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            token: None,
            admin_token: None,
            allowed_origins: Vec::new(),
            public_hosts: Vec::new(),
            listen: None,
        }
    }
}

/// What the routes work with.
pub struct AppState {
    pub invoker: oprc_invoker::Handle,
    pub registry: oprc_registry::Registry,
    pub metrics: Arc<prometheus_client::registry::Registry>,
    pub options: Options,
    /// The storage adapter (file transfers of the file routes).
    pub files: oprc_adapter::Adapter,
    /// Relay every file download through the node (`--blob-relay`).
    pub relay: bool,
    /// Readiness (`/readyz`): not while shutting down or while a storage
    /// engine does not answer.
    pub health: Arc<Health>,
}

/// Every documented route; the document and the router come from here.
fn routes() -> OpenApiRouter<Arc<AppState>> {
    let api = OpenApiRouter::new()
        .routes(routes!(packages::apply_package, packages::list_packages))
        .routes(routes!(packages::get_package, packages::delete_package))
        .routes(routes!(packages::list_classes))
        .routes(routes!(packages::get_class))
        .routes(routes!(invoke::invoke_class_get, invoke::invoke_class_post))
        .routes(routes!(objects::list_objects))
        .routes(routes!(objects::get_object, objects::delete_object))
        .routes(routes!(files::get_file, files::put_file))
        .routes(routes!(
            invoke::invoke_object_get,
            invoke::invoke_object_post
        ))
        .routes(routes!(packages::list_functions))
        .routes(routes!(packages::get_function))
        .routes(routes!(invoke::get_invocation))
        .routes(routes!(ops::openapi));
    OpenApiRouter::with_openapi(openapi::base())
        .nest("/api", api)
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
}

/// The OpenAPI document the node serves at `/api/openapi.json`.
pub fn openapi_document() -> serde_json::Value {
    serde_json::from_slice(&openapi::document_json()).expect("the document is JSON")
}

/// The API router.
pub fn router(state: Arc<AppState>) -> Router {
    let (router, _) = routes().split_for_parts();
    let router = router
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
        .layer(from_fn_with_state(state.clone(), checks));
    // Without allowed origins, no CORS headers at all.
    let router = match guard::cors(&state.options.allowed_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// The checks every request passes before its route, in order: `Host` and
/// cross-site (`guard`), declared length and media type (`body`), tokens
/// (`auth`). One middleware, so the common case costs one pass.
async fn checks(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let checked = guard::check(&state, &req)
        .and_then(|()| body::check(&state, &req))
        .and_then(|()| auth::check(&state, &req));
    match checked {
        Ok(grant) => {
            if let Some(grant) = grant {
                req.extensions_mut().insert(grant);
            }
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}
