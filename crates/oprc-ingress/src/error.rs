//! API errors: one code enum mapped to HTTP status, answered as
//! `{"error": {"code", "message"}}`. 5xx messages stay generic; the cause is
//! logged in the request's span.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

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
    PayloadTooLarge,
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
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
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
            Self::PayloadTooLarge => "payload_too_large",
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
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// A 5xx whose cause is logged, not shown.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(Code::Internal, "internal error; see the node's log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code.as_str(), "message": self.message});
        if let Some(details) = self.details {
            error["details"] = details;
        }
        (self.code.status(), Json(json!({ "error": error }))).into_response()
    }
}

impl From<oprc_invoker::Error> for ApiError {
    fn from(e: oprc_invoker::Error) -> Self {
        use oprc_invoker::Error as E;
        let code = match &e {
            E::ClassNotFound(_)
            | E::FunctionNotFound { .. }
            | E::ObjectNotFound { .. }
            | E::InvocationNotFound(_) => Code::NotFound,
            E::Forbidden { .. } => Code::Forbidden,
            E::BadRequest(_) => Code::BadRequest,
            E::Unsupported(_) => Code::Unsupported,
            E::ShuttingDown => Code::Unavailable,
            E::Storage(s) => {
                tracing::error!(error = %s, "storage failed");
                return Self::new(Code::Unavailable, "storage is unavailable; retry later");
            }
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
            E::Storage(s) => {
                tracing::error!(error = %s, "storage failed");
                Self::new(Code::Unavailable, "storage is unavailable; retry later")
            }
        }
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(
                Code::PayloadTooLarge,
                "request body is larger than the node's limit (--max-body-bytes)",
            )
        } else {
            Self::bad_request(format!("cannot read request body: {r}"))
        }
    }
}
