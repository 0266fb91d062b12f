//! Bearer tokens. With `--token`, every `/api` route but the OpenAPI
//! document needs it. Without, only the routes that change packages do
//! (they are how a node gets to start processes), and they need the admin
//! token the server keeps in its data directory.

use axum::extract::Request;
use http::{Method, header};

use crate::AppState;
use crate::error::{ApiError, Code};

/// Whether a request changes packages (and so needs the admin token).
pub fn is_admin_route(method: &Method, path: &str) -> bool {
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => false,
        _ => path == "/api/packages" || path.starts_with("/api/packages/"),
    }
}

fn needs_token(path: &str) -> bool {
    path.starts_with("/api/") && path != "/api/openapi.json"
}

/// Refuses a request without the token its route needs.
pub(crate) fn check(state: &AppState, req: &Request) -> Result<(), ApiError> {
    let path = req.uri().path();
    let (token, message) = match (&state.options.token, &state.options.admin_token) {
        (Some(t), _) if needs_token(path) => (
            t,
            "this node needs `Authorization: Bearer <token>` on /api (its --token or \
             OPRC_TOKEN)",
        ),
        (None, Some(t)) if is_admin_route(req.method(), path) => (
            t,
            "changing packages needs the node's admin token as `Authorization: Bearer \
             <token>`; it is in the file `admin-token` of the node's data directory, where \
             the oprc CLI finds it (--data-dir or OPRC_DATA_DIR)",
        ),
        _ => return Ok(()),
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !given.is_some_and(|g| constant_time_eq(g.trim().as_bytes(), token.as_bytes())) {
        tracing::info!(path, "request without the right bearer token refused");
        return Err(ApiError::new(Code::Unauthorized, message));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_package_changes_are_admin_routes() {
        assert!(is_admin_route(&Method::POST, "/api/packages"));
        assert!(is_admin_route(&Method::DELETE, "/api/packages/p"));
        assert!(!is_admin_route(&Method::GET, "/api/packages/p"));
        assert!(!is_admin_route(&Method::POST, "/api/classes/c/invokes/new"));
        assert!(!is_admin_route(&Method::POST, "/api/packagesx"));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"ab", b"abc"));
    }
}
