//! [`TaskError`]: how a handler fails a task.

use std::fmt;

/// A handler's failure. The SDK answers `success: false` with the message as
/// `errorMsg`, and the platform changes nothing.
///
/// Like `anyhow::Error`, this type deliberately does not implement
/// [`std::error::Error`]: that lets `?` convert any error into it through the
/// blanket [`From`] impl below.
pub struct TaskError {
    message: String,
}

impl TaskError {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message sent as `errorMsg`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TaskError").field(&self.message).finish()
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for TaskError {
    /// The error's message followed by its sources: `outer: inner: root`.
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self { message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_mark_converts_std_errors() {
        fn parse(s: &str) -> Result<i64, TaskError> {
            Ok(s.parse::<i64>()?)
        }
        assert_eq!(
            parse("x").unwrap_err().message(),
            "invalid digit found in string"
        );
    }
}
