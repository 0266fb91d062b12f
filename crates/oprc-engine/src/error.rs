//! Errors of the engine.

use std::time::Duration;

use oprc_core::FunctionKey;

/// Why a call did not give a function answer. Nothing is retried here; the
/// variants say what the caller may do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// No deployment for this function: deploy it first.
    #[error("function {0} is not deployed")]
    NotDeployed(FunctionKey),
    /// The connection failed or broke (refused, reset, the worker died
    /// during the call). The function may or may not have run.
    #[error("function is unreachable: {reason}")]
    Unreachable { reason: String },
    /// No complete answer within the call's timeout (waiting for a worker
    /// included). The function may still be running.
    #[error("function did not answer within {after:?}")]
    Timeout { after: Duration },
    /// The function answered, with a status other than 200.
    #[error("function answered with http status {code}: {body_snippet}")]
    Status { code: u16, body_snippet: String },
    /// The answer was larger than `Options::max_response_bytes`.
    #[error("function answer is larger than {limit} bytes")]
    ResponseTooLarge { limit: usize },
    /// No worker could be started (bad command, crash at start, readiness
    /// timeout, engine shutting down). Calls fail fast while the engine backs
    /// off before the next start.
    #[error("function is unavailable: {reason}")]
    Unavailable { reason: String },
    /// The call named a revision of the function's deployment that is not
    /// the current one (it was redeployed, perhaps while the call waited
    /// for a worker). Nothing was sent: plan the call again against the
    /// current package and retry.
    #[error("function {function} was redeployed; the call was not sent")]
    Changed { function: FunctionKey },
}

/// Why a deployment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid deployment of function {function}: {reason}")]
    InvalidDeployment {
        function: FunctionKey,
        reason: String,
    },
    #[error("the engine is shutting down")]
    ShutDown,
}
