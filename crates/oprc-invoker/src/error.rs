//! Errors of the invoker: why a call was refused before it ran.
//!
//! A call that ran and failed is not an `Error`: it is an
//! [`InvocationResponse`](oprc_core::InvocationResponse) with status
//! `FAILED` and an [`InvocationError`](oprc_core::InvocationError) code
//! from [`codes`].

/// Stable codes of failed invocations (`error.code` in the response).
pub mod codes {
    /// The function reported `success: false`.
    pub const FUNCTION_FAILED: &str = "function_failed";
    /// The function answered something that is not a completion, or a
    /// non-200 status.
    pub const BAD_COMPLETION: &str = "bad_completion";
    /// The function could not be reached or started.
    pub const FUNCTION_UNREACHABLE: &str = "function_unreachable";
    /// The function did not answer within its timeout.
    pub const FUNCTION_TIMEOUT: &str = "function_timeout";
    /// The call's input was rejected by a builtin.
    pub const INVALID_ARGUMENT: &str = "invalid_argument";
    /// The object (or the one to create) does not exist (or already exists).
    pub const NOT_FOUND: &str = "not_found";
    pub const ALREADY_EXISTS: &str = "already_exists";
    /// Another writer changed the object first.
    pub const CONFLICT: &str = "conflict";
    /// A capability this node does not offer yet.
    pub const UNSUPPORTED: &str = "unsupported";
    /// The state could not be stored.
    pub const STORAGE: &str = "storage_unavailable";
}

/// Why the invoker refused a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("class `{0}` does not exist")]
    ClassNotFound(String),
    #[error("class `{cls}` has no function `{fb}`")]
    FunctionNotFound { cls: String, fb: String },
    #[error("object `{oid}` of class `{cls}` does not exist")]
    ObjectNotFound { cls: String, oid: String },
    #[error("invocation `{0}` does not exist (or its retention has expired)")]
    InvocationNotFound(String),
    #[error("function `{fb}` of class `{cls}` is {modifier}: {why}")]
    Forbidden {
        cls: String,
        fb: String,
        modifier: &'static str,
        why: &'static str,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("storage is unavailable")]
    Storage(#[from] oprc_store::Error),
}
