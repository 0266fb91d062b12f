//! API errors: one code enum mapped to HTTP status, answered as
//! `{"error": {"code", "message"}}`. 5xx messages stay generic; the cause is
//! logged in the request's span. Refusals a client should retry later (429,
//! 503) carry `Retry-After`. `docs/api.md` is the contract of this mapping.

use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

/// How long a client should wait before retrying after a storage outage or
/// a shutdown, when nothing better is known.
pub(crate) const RETRY_LATER: Duration = Duration::from_secs(1);

/// What went wrong, as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BadRequest,
    InvalidPackage,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    /// A call would wait on an object its own call chain holds.
    Reentrant,
    /// A chain of calls between objects went too deep.
    ChainTooDeep,
    /// A macro would run inside itself.
    RecursiveMacro,
    PayloadTooLarge,
    UnsupportedMediaType,
    Misdirected,
    Unprocessable,
    TooManyRequests,
    Unsupported,
    Unavailable,
    Internal,
}

impl Code {
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest | Self::InvalidPackage => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict | Self::Reentrant => StatusCode::CONFLICT,
            Self::ChainTooDeep | Self::RecursiveMacro => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            Self::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Unsupported => StatusCode::NOT_IMPLEMENTED,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidPackage => "invalid_package",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::Reentrant => "reentrant_call",
            Self::ChainTooDeep => "call_chain_too_deep",
            Self::RecursiveMacro => "recursive_macro",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Misdirected => "misdirected",
            Self::Unprocessable => "unprocessable",
            Self::TooManyRequests => "too_many_requests",
            Self::Unsupported => "unsupported",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// Extra structured detail (e.g. package diagnostics).
    pub details: Option<serde_json::Value>,
    /// Sent as `Retry-After` (whole seconds, at least 1).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// Adds `Retry-After`.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// A storage failure, by what the client can do about it: retry later
    /// (unavailable, timeout), retry now (conflict), or nothing (corrupt
    /// data or a bug: 500, cause logged).
    pub fn storage(e: &oprc_store::Error) -> Self {
        use oprc_store::ErrorKind as K;
        match e.kind {
            K::Unavailable | K::Timeout | K::Fenced => {
                tracing::warn!(error = %e, kind = ?e.kind, "storage unavailable");
                Self::new(
                    Code::Unavailable,
                    "storage is unavailable; nothing was changed; retry later",
                )
                .retry_after(RETRY_LATER)
            }
            K::Conflict => Self::new(
                Code::Conflict,
                "the state changed concurrently; nothing was changed; retry",
            ),
            K::Internal => Self::internal(e),
        }
    }

    /// A 5xx whose cause is logged, not shown.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(Code::Internal, "internal error; see the node's log")
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
pub(crate) fn retry_after_value(after: Duration) -> HeaderValue {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code.as_str(), "message": self.message});
        if let Some(details) = self.details {
            error["details"] = details;
        }
        let mut resp = (self.code.status(), Json(json!({ "error": error }))).into_response();
        if let Some(after) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, retry_after_value(after));
        }
        resp
    }
}

impl From<oprc_invoker::Error> for ApiError {
    fn from(e: oprc_invoker::Error) -> Self {
        use oprc_invoker::Error as E;
        let code = match &e {
            E::ClassNotFound(_)
            | E::FunctionNotFound { .. }
            | E::ObjectNotFound { .. }
            | E::InvocationNotFound(_)
            | E::FileNotFound { .. } => Code::NotFound,
            E::Forbidden { .. } | E::FileForbidden { .. } => Code::Forbidden,
            E::BadRequest(_) => Code::BadRequest,
            E::KeyReused { .. } | E::KeyExpired(_) => Code::Unprocessable,
            E::Overloaded { retry_after, .. } => {
                let after = *retry_after;
                return Self::new(Code::TooManyRequests, e.to_string()).retry_after(after);
            }
            E::Unsupported(_) => Code::Unsupported,
            E::Reentrant { .. } => Code::Reentrant,
            E::ChainTooDeep { .. } => Code::ChainTooDeep,
            E::RecursiveMacro { .. } => Code::RecursiveMacro,
            E::BadCallToken(_) => Code::Unauthorized,
            E::ShuttingDown => {
                return Self::new(Code::Unavailable, "the node is shutting down; retry later")
                    .retry_after(RETRY_LATER);
            }
            E::Storage(s) => return Self::storage(s),
            E::Internal(_) => return Self::internal(&e),
        };
        Self::new(code, e.to_string())
    }
}

/// Package diagnostics as the API shows them: position, path, message, and
/// the whole line as text.
pub(crate) fn diagnostics_json(diagnostics: &[oprc_package::Diagnostic]) -> serde_json::Value {
    diagnostics
        .iter()
        .map(|d| {
            json!({
                "line": d.line, "column": d.column, "path": d.path,
                "message": d.message, "text": d.to_string(),
            })
        })
        .collect()
}

impl From<oprc_registry::Error> for ApiError {
    fn from(e: oprc_registry::Error) -> Self {
        use oprc_registry::Error as E;
        match e {
            E::Invalid(diagnostics) => {
                let errors = diagnostics.len();
                let mut err = Self::new(
                    Code::InvalidPackage,
                    format!(
                        "the package is invalid ({errors} problem{}); nothing was stored",
                        if errors == 1 { "" } else { "s" }
                    ),
                );
                err.details = Some(diagnostics_json(&diagnostics));
                err
            }
            E::NotFound(name) => Self::not_found(format!("package `{name}` does not exist")),
            E::Refused(msg) => Self::new(Code::Conflict, msg),
            E::Storage(s) => Self::storage(&s),
        }
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            crate::body::too_large()
        } else {
            Self::bad_request(format!("cannot read request body: {r}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(e: oprc_invoker::Error, status: StatusCode, retry_after: Option<&str>) {
        let resp = ApiError::from(e).into_response();
        assert_eq!(resp.status(), status);
        let got = resp
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(got.as_deref(), retry_after);
    }

    #[test]
    fn refusals_map_to_what_a_client_can_do() {
        use oprc_invoker::Error as E;
        use oprc_store::ErrorKind as K;
        let storage = |kind| E::Storage(oprc_store::Error::new(kind, "x"));
        check(
            storage(K::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE,
            Some("1"),
        );
        check(
            storage(K::Timeout),
            StatusCode::SERVICE_UNAVAILABLE,
            Some("1"),
        );
        check(storage(K::Conflict), StatusCode::CONFLICT, None);
        check(
            storage(K::Internal),
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
        );
        check(
            E::Overloaded {
                what: "q",
                retry_after: Duration::from_millis(1500),
            },
            StatusCode::TOO_MANY_REQUESTS,
            Some("2"),
        );
        check(
            E::KeyExpired("k".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        );
        check(
            E::Internal("bug".into()),
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
        );
        check(E::ShuttingDown, StatusCode::SERVICE_UNAVAILABLE, Some("1"));
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = oprc_store::Error::new(oprc_store::ErrorKind::Internal, "page 7 is corrupt");
        let e = ApiError::storage(&e);
        assert_eq!(e.code, Code::Internal);
        assert!(!e.message.contains("corrupt"), "{}", e.message);
    }
}
