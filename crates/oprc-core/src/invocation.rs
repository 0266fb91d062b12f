//! Invocation requests, their status and the answer shape of the REST API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ClassKey, InvocationId, ObjectId, ObjectRecord};

/// Lifecycle of an invocation (Oparaca names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvocationStatus {
    /// Accepted and durably enqueued, not started.
    Queue,
    /// Running.
    Doing,
    Succeeded,
    Failed,
    /// A macro step this one depends on failed.
    DependencyFailed,
}

impl InvocationStatus {
    /// Whether the invocation has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::DependencyFailed
        )
    }
}

/// One call of a binding: what the ingress hands to the invoker, and what the
/// async log carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationRequest {
    pub inv_id: InvocationId,
    pub cls: ClassKey,
    /// The main object; `None` for class-level calls (`new`, `noMain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oid: Option<ObjectId>,
    /// Binding (function binding) name on the class.
    pub fb: String,
    /// Query arguments (without platform flags).
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// The POST body, when one was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Caller's `Idempotency-Key`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// When the platform accepted an async call (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<i64>,
    /// The caller's W3C `traceparent`, passed on to the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// Timing of an invocation, milliseconds since the Unix epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationStats {
    /// When the platform accepted the call.
    pub que_ts: i64,
    /// When the task was offloaded to the function (0: not offloaded).
    #[serde(default)]
    pub offload_ts: i64,
    /// When the call ended (0: not ended).
    #[serde(default)]
    pub cpt_ts: i64,
}

/// Why an invocation failed: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvocationError {
    pub code: String,
    pub message: String,
}

/// The answer to an invocation (Oparaca shape plus `error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationResponse {
    pub inv_id: InvocationId,
    pub status: InvocationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<ObjectRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<ObjectRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<InvocationError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<InvocationStats>,
}

impl InvocationResponse {
    /// A response with only an id and a status.
    pub fn status(inv_id: InvocationId, status: InvocationStatus) -> Self {
        Self {
            inv_id,
            status,
            main: None,
            output: None,
            body: None,
            error: None,
            stats: None,
        }
    }
}

/// What the platform remembers about an invocation: the request and, once it
/// has ended, the response. Kept for a retention period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationRecord {
    pub request: InvocationRequest,
    pub response: InvocationResponse,
    /// Milliseconds since the Unix epoch after which the record may be purged.
    pub expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_uses_oparaca_names() {
        let s = serde_json::to_string(&InvocationStatus::DependencyFailed).unwrap();
        assert_eq!(s, "\"DEPENDENCY_FAILED\"");
        assert!(!InvocationStatus::Queue.is_terminal());
        assert!(InvocationStatus::Failed.is_terminal());
    }
}
