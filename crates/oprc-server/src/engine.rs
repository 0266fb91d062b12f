//! The invoker's function-engine port, served by the node's FaaS engine.

use std::time::Duration;

use bytes::Bytes;
use oprc_core::FunctionKey;
use oprc_engine::InvokeError;
use oprc_invoker::CallError;

/// Adapts [`oprc_engine::Handle`] to [`oprc_invoker::FunctionEngine`].
pub(crate) struct Engine(pub oprc_engine::Handle);

#[async_trait::async_trait]
impl oprc_invoker::FunctionEngine for Engine {
    async fn invoke(
        &self,
        function: &FunctionKey,
        revision: Option<u64>,
        task: Bytes,
        timeout: Duration,
        headers: &http::HeaderMap,
    ) -> Result<Bytes, CallError> {
        self.0
            .invoke(function, revision, task, timeout, headers)
            .await
            .map_err(|e| match e {
                InvokeError::Changed { .. } => CallError::Changed,
                InvokeError::Unavailable { .. } if self.0.is_stopping() => CallError::Stopped,
                InvokeError::Timeout { .. } => CallError::Timeout(e.to_string()),
                InvokeError::Status { .. } | InvokeError::ResponseTooLarge { .. } => {
                    CallError::BadAnswer(e.to_string())
                }
                InvokeError::NotDeployed(_)
                | InvokeError::Unreachable { .. }
                | InvokeError::Unavailable { .. } => CallError::Unreachable(e.to_string()),
            })
    }
}
