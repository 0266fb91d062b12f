//! What the invoker needs from the outside, as traits: the FaaS engine
//! that runs task functions. (State and the async log are the
//! `oprc-store` traits.) The node's wiring adapts the real engine; the
//! invoker's tests use fakes.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use oprc_core::FunctionKey;

/// Why a task call gave no answer to decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No answer within the timeout; the function may still be running.
    #[error("{0}")]
    Timeout(String),
    /// The function answered, but not with an HTTP 200 completion (another
    /// status, an answer too large).
    #[error("{0}")]
    BadAnswer(String),
    /// The function could not be started or reached.
    #[error("{0}")]
    Unreachable(String),
    /// The function's deployment is not the revision the call was planned
    /// on (a package update); nothing was sent.
    #[error("the function was redeployed since the call was planned")]
    Changed,
    /// The engine is shutting down; the call did not run.
    #[error("the engine is shutting down")]
    Stopped,
}

/// Runs task functions: POSTs the task bytes (JSON) and returns the bytes
/// of the function's HTTP 200 answer.
#[async_trait]
pub trait FunctionEngine: Send + Sync + 'static {
    /// `revision`: the deployment the call was planned on, if known; a
    /// different one answers [`CallError::Changed`] without sending.
    /// `headers` go along (e.g. `traceparent`).
    async fn invoke(
        &self,
        function: &FunctionKey,
        revision: Option<u64>,
        task: Bytes,
        timeout: Duration,
        headers: &http::HeaderMap,
    ) -> Result<Bytes, CallError>;
}
