//! Errors of the invoker: why a call was refused before it ran.
//!
//! A call that ran and failed is not an `Error`: it is an
//! [`InvocationResponse`](oprc_core::InvocationResponse) with status
//! `FAILED` and an [`InvocationError`](oprc_core::InvocationError) code
//! from [`codes`].

use std::time::Duration;

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
    /// The object, class or binding does not exist (any more).
    pub const NOT_FOUND: &str = "not_found";
    /// `new` or `copy` with an id that exists.
    pub const ALREADY_EXISTS: &str = "already_exists";
    /// The caller may not call this binding (any more).
    pub const FORBIDDEN: &str = "forbidden";
    /// Another writer kept changing the object first.
    pub const CONFLICT: &str = "conflict";
    /// A capability this node does not offer yet.
    pub const UNSUPPORTED: &str = "unsupported";
    /// The state could not be stored now; nothing was committed. Retrying
    /// later may work.
    pub const STORAGE: &str = "storage_unavailable";
    /// Stored data could not be read (corrupt) or the node failed in a way
    /// retrying will not fix; nothing was committed.
    pub const INTERNAL: &str = "internal";
    /// An async call whose log entry cannot be decoded.
    pub const UNREADABLE: &str = "unreadable_entry";
    /// A macro step failed (the message names it and its reason).
    pub const STEP_FAILED: &str = "step_failed";
    /// A macro step whose input could not be rendered from earlier data.
    pub const TEMPLATE: &str = "template_failed";
    /// A call would wait on an object its own call chain holds.
    pub const REENTRANT: &str = "reentrant_call";
    /// A macro would run inside itself.
    pub const RECURSIVE_MACRO: &str = "recursive_macro";
    /// A call chain went deeper than the node allows.
    pub const CHAIN_TOO_DEEP: &str = "call_chain_too_deep";
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
    #[error("file key `{key}` of class `{cls}` is {modifier}: {why}")]
    FileForbidden {
        cls: String,
        key: String,
        modifier: &'static str,
        why: &'static str,
    },
    #[error("file `{key}` of object `{oid}` of class `{cls}` has no content yet")]
    FileNotFound {
        cls: String,
        oid: String,
        key: String,
    },
    /// The request itself is wrong (the caller can fix it).
    #[error("{0}")]
    BadRequest(String),
    /// An `Idempotency-Key` was used before for a different request.
    #[error(
        "idempotency key {key:?} was already used for another request ({first}); \
         use a new key for a new request"
    )]
    KeyReused { key: String, first: String },
    /// An `Idempotency-Key` was used before, and the first call's result is
    /// no longer kept.
    #[error(
        "idempotency key {0:?} was used before and its result is no longer kept \
         (past the retention); use a new key"
    )]
    KeyExpired(String),
    /// A sync call would wait on an object its own call chain holds (the
    /// chain's caller waits for this call, so this call would wait forever).
    #[error(
        "`{fb}` would wait on object `{oid}` of class `{cls}`, which this call's own chain \
         holds (a function or macro waiting for this call is running on it); calls are not \
         re-entrant: call a read-only function, make the call async, or return the change \
         from the calling function"
    )]
    Reentrant {
        cls: String,
        oid: String,
        fb: String,
    },
    /// A chain of calls from functions and macros went too deep.
    #[error("this call is {depth} calls deep from the client's call; the limit is {limit}")]
    ChainTooDeep { depth: u32, limit: u32 },
    /// A macro would run inside itself (directly or through nested macros).
    #[error(
        "macro `{function}` would run inside itself (a step calls it again, directly or \
         through nested macros); macros do not recurse"
    )]
    RecursiveMacro { function: String },
    /// A function's call token is not valid.
    #[error("{0}")]
    BadCallToken(String),
    /// Too much is queued; retry after a while.
    #[error("{what} is full; retry in {} s", retry_after.as_secs().max(1))]
    Overloaded {
        what: &'static str,
        retry_after: Duration,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("storage failed: {0}")]
    Storage(#[from] oprc_store::Error),
    /// A failure of the node itself (a bug); the message is for the logs.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn object_not_found(cls: &oprc_core::ClassKey, oid: &oprc_core::ObjectId) -> Self {
        Self::ObjectNotFound {
            cls: cls.to_string(),
            oid: oid.to_string(),
        }
    }

    /// The invocation error code of a call refused for this reason.
    pub fn code(&self) -> &'static str {
        use oprc_store::ErrorKind as K;
        match self {
            Self::ClassNotFound(_)
            | Self::FunctionNotFound { .. }
            | Self::ObjectNotFound { .. }
            | Self::InvocationNotFound(_)
            | Self::FileNotFound { .. } => codes::NOT_FOUND,
            Self::Forbidden { .. } | Self::FileForbidden { .. } => codes::FORBIDDEN,
            Self::BadRequest(_) | Self::KeyReused { .. } | Self::KeyExpired(_) => {
                codes::INVALID_ARGUMENT
            }
            Self::Unsupported(_) => codes::UNSUPPORTED,
            Self::Reentrant { .. } => codes::REENTRANT,
            Self::ChainTooDeep { .. } => codes::CHAIN_TOO_DEEP,
            Self::RecursiveMacro { .. } => codes::RECURSIVE_MACRO,
            Self::BadCallToken(_) => codes::FORBIDDEN,
            Self::Overloaded { .. } | Self::ShuttingDown => codes::STORAGE,
            Self::Storage(e) => match e.kind {
                K::Conflict => codes::CONFLICT,
                K::Unavailable | K::Timeout | K::Fenced => codes::STORAGE,
                K::Internal => codes::INTERNAL,
            },
            Self::Internal(_) => codes::INTERNAL,
        }
    }
}
