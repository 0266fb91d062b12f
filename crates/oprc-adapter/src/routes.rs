//! The adapter's routes: signed file URLs and allocations.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, Method as HttpMethod, StatusCode, Uri};
use oprc_blob::{ALLOC_ROUTE, BLOBS_ROUTE, BlobPath, Method, UrlError};
use serde_json::json;

use crate::Adapter;
use crate::transfer::{self, error};

/// The adapter's routes, to merge into the node's router.
pub fn router(adapter: Adapter) -> Router {
    Router::new()
        .route(
            &format!("{BLOBS_ROUTE}{{*path}}"),
            get(get_blob).put(put_blob),
        )
        .route(
            &format!("{ALLOC_ROUTE}{{*resource}}"),
            get(alloc).post(alloc),
        )
        .with_state(Arc::new(adapter))
}

fn refused(e: &UrlError) -> Response {
    let status = match e {
        UrlError::Malformed(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::FORBIDDEN,
    };
    error(status, e.code(), e.to_string())
}

/// The path after `prefix` and the query of a request.
fn target<'a>(uri: &'a Uri, prefix: &str) -> (&'a str, &'a str) {
    let path = uri.path().strip_prefix(prefix).unwrap_or_default();
    (path, uri.query().unwrap_or_default())
}

fn verify(adapter: &Adapter, method: Method, uri: &Uri) -> Result<BlobPath, UrlError> {
    let (path, query) = target(uri, BLOBS_ROUTE);
    adapter.signer.verify_blob(method, path, query)
}

async fn get_blob(State(adapter): State<Arc<Adapter>>, uri: Uri, headers: HeaderMap) -> Response {
    match verify(&adapter, Method::Get, &uri) {
        Ok(path) => transfer::download(adapter.store.as_ref(), &path, &headers).await,
        Err(e) => refused(&e),
    }
}

async fn put_blob(
    State(adapter): State<Arc<Adapter>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = match verify(&adapter, Method::Put, &uri) {
        Ok(p) => p,
        Err(e) => return refused(&e),
    };
    match transfer::upload(
        adapter.store.as_ref(),
        &path,
        &headers,
        body,
        adapter.max_file_bytes,
    )
    .await
    {
        Ok(meta) => {
            let mut r = StatusCode::OK.into_response();
            if let Some(v) = meta
                .etag
                .as_deref()
                .and_then(|t| http::HeaderValue::from_str(t).ok())
            {
                r.headers_mut().insert(http::header::ETAG, v);
            }
            r
        }
        Err(e) => e.into_response(),
    }
}

/// GET: a PUT URL for every key the allocation names; POST with a JSON
/// list of keys: for those (a key it does not name is a 400).
async fn alloc(
    State(adapter): State<Arc<Adapter>>,
    method: HttpMethod,
    uri: Uri,
    body: Bytes,
) -> Response {
    let (resource, query) = target(&uri, ALLOC_ROUTE);
    let allowed = match adapter.signer.verify_alloc(resource, query) {
        Ok(v) => v,
        Err(e) => return refused(&e),
    };
    let keys: Vec<String> = if method == HttpMethod::POST {
        match serde_json::from_slice::<Vec<String>>(&body) {
            Ok(keys) => keys,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("the body must be a JSON list of file keys: {e}"),
                );
            }
        }
    } else {
        allowed.keys.clone()
    };
    let mut urls = serde_json::Map::new();
    for key in keys {
        if !allowed.keys.contains(&key) {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!(
                    "`{key}` is not a file key of this object (its keys: {:?})",
                    allowed.keys
                ),
            );
        }
        let path = match BlobPath::new(
            allowed.cls.clone(),
            allowed.oid.clone(),
            allowed.version.clone(),
            key.clone(),
        ) {
            Ok(p) => p,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
        };
        match adapter.store.presign(Method::Put, &path, adapter.url_ttl) {
            Ok(url) => {
                urls.insert(key, url.into());
            }
            Err(e) => {
                tracing::warn!(%path, error = %e, "cannot presign an allocation");
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "cannot make URLs now; retry",
                );
            }
        }
    }
    axum::Json(json!(urls)).into_response()
}
