//! Exit codes that scripts can rely on, and the error that carries one.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | the request was refused (HTTP 4xx), the invocation FAILED, or a local error (e.g. an unreadable file) |
//! | 2 | usage error: bad flags or arguments (clap's default), or an unparsable `--body`/`--data` file |
//! | 3 | cannot reach the node (or a file's URL), the node failed (HTTP 5xx other than a function's own failure), or a file transfer broke off |
//! | 4 | `--wait` timed out before the invocation finished |

use std::fmt;
use std::process::ExitCode;

/// Why the process ends; the numeric value is the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Refused = 1,
    Usage = 2,
    Unavailable = 3,
    Timeout = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// An error with a chosen exit code. Anything else that ends a command
/// (an `anyhow` error without a `Fail` inside) exits with [`Exit::Refused`].
#[derive(Debug)]
pub struct Fail {
    pub exit: Exit,
    pub message: String,
}

impl Fail {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}

/// The exit code for an error that ended a command.
pub fn code_of(e: &anyhow::Error) -> Exit {
    e.chain()
        .find_map(|c| c.downcast_ref::<Fail>())
        .map_or(Exit::Refused, |f| f.exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fail_keeps_its_code_through_context() {
        let e = anyhow::Error::new(Fail::new(Exit::Timeout, "slow")).context("waiting");
        assert_eq!(code_of(&e), Exit::Timeout);
        assert_eq!(code_of(&anyhow::anyhow!("plain")), Exit::Refused);
    }
}
