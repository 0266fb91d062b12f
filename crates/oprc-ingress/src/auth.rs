//! Bearer tokens. With `--token`, every `/api` route but the OpenAPI
//! document needs it. Without, only the routes that change packages do
//! (they are how a node gets to start processes), and they need the admin
//! token the server keeps in its data directory.
//!
//! A function calling other objects presents its task's call token
//! instead: it grants invocations only, as the function's class and within
//! its call chain, until the task's timeout.

use axum::extract::Request;
use http::{Method, header};
use oprc_invoker::{Grant, TOKEN_PREFIX};

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

/// Whether a request is an invocation (the only routes a call token
/// opens): `/api/classes/{cls}/invokes/{fb}` or
/// `/api/classes/{cls}/objects/{oid}/invokes/{fb}`.
fn is_invocation_route(method: &Method, path: &str) -> bool {
    if !matches!(*method, Method::GET | Method::POST) {
        return false;
    }
    let Some(rest) = path.strip_prefix("/api/classes/") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let named = |s: &&str| !s.is_empty();
    match parts.as_slice() {
        [cls, "invokes", fb] => named(cls) && named(fb),
        [cls, "objects", oid, "invokes", fb] => named(cls) && named(oid) && named(fb),
        _ => false,
    }
}

/// Refuses a request without the token its route needs. A valid call
/// token of a task answers its grant (the caller the request acts as).
pub(crate) fn check(state: &AppState, req: &Request) -> Result<Option<Grant>, ApiError> {
    let path = req.uri().path();
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let Some(token) = given.filter(|t| t.starts_with(TOKEN_PREFIX)) {
        let grant = state.invoker.verify_call_token(token).map_err(|e| {
            tracing::info!(path, error = %e, "call token refused");
            ApiError::from(e)
        })?;
        if !is_invocation_route(req.method(), path) {
            return Err(ApiError::new(
                Code::Forbidden,
                "a function's call token grants invocations only \
                 (/api/classes/{cls}[/objects/{oid}]/invokes/{fb})",
            ));
        }
        return Ok(Some(grant));
    }
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
        _ => return Ok(None),
    };
    if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
        tracing::info!(path, "request without the right bearer token refused");
        return Err(ApiError::new(Code::Unauthorized, message));
    }
    Ok(None)
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
    fn call_tokens_open_invocation_routes_only() {
        let post = Method::POST;
        assert!(is_invocation_route(&post, "/api/classes/p.c/invokes/new"));
        assert!(is_invocation_route(
            &post,
            "/api/classes/p.c/objects/o/invokes/f"
        ));
        assert!(is_invocation_route(
            &Method::GET,
            "/api/classes/p.c/objects/o/invokes/f"
        ));
        assert!(!is_invocation_route(
            &Method::DELETE,
            "/api/classes/p.c/objects/o/invokes/f"
        ));
        assert!(!is_invocation_route(&post, "/api/classes/p.c/objects/o"));
        assert!(!is_invocation_route(
            &post,
            "/api/classes/p.c/objects/o/files/k"
        ));
        assert!(!is_invocation_route(&post, "/api/classes//invokes/f"));
        assert!(!is_invocation_route(&post, "/api/packages"));
        assert!(!is_invocation_route(
            &post,
            "/api/classes/p.c/objects/o/invokes/f/x"
        ));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"ab", b"abc"));
    }
}
