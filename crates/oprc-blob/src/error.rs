//! What a blob store call can fail with.

/// What kind of failure, for callers that decide on retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobErrorKind {
    /// The store cannot be reached or answered with a server error: a later
    /// try may work.
    Unavailable,
    /// The request cannot succeed as made (a bad range, a body larger than
    /// allowed, a path the store refuses).
    Invalid,
    /// The store refused the node's credentials.
    Denied,
}

/// A failed blob store call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BlobError {
    pub kind: BlobErrorKind,
    pub message: String,
}

impl BlobError {
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            kind: BlobErrorKind::Unavailable,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            kind: BlobErrorKind::Invalid,
            message: message.into(),
        }
    }

    pub fn denied(message: impl Into<String>) -> Self {
        Self {
            kind: BlobErrorKind::Denied,
            message: message.into(),
        }
    }

    pub(crate) fn io(what: &str, e: &std::io::Error) -> Self {
        Self::unavailable(format!("{what}: {e}"))
    }
}
