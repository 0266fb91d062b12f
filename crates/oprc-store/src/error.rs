use std::fmt;

/// What a caller can do about a storage error. (Absence is not an error:
/// reads answer `None`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A compare-and-swap precondition failed: someone else changed it first.
    Conflict,
    /// The batch's fence failed: its partition has a newer owner (ADR 13).
    /// Nothing was written; the caller must give the partition up, not
    /// retry here.
    Fenced,
    /// The backend cannot be reached now; retrying later may work.
    Unavailable,
    /// The backend did not answer in time; the outcome is unknown.
    Timeout,
    /// Anything else: a bug or corrupt data. Not worth retrying.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Conflict => "conflict",
            Self::Fenced => "fenced",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
        })
    }
}

/// A storage error: a kind to decide on and a message for the logs.
#[derive(Debug, thiserror::Error)]
#[error("storage {kind}: {message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
