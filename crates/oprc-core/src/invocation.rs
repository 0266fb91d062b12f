//! Invocation requests, their status and the answer shape of the REST API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ClassKey, FunctionKey, InvocationId, ObjectId, ObjectRecord};

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

/// Who is calling: decides what a call may reach (G7). Carried with the call
/// through the async log, so a replay is checked as its original caller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Caller {
    /// A client through the public API.
    #[default]
    External,
    /// A task function of class `cls`, calling through the node.
    Function { cls: ClassKey },
    /// A step of the macro binding `fb` of class `cls`.
    Macro { cls: ClassKey, fb: String },
}

impl Caller {
    pub fn is_external(&self) -> bool {
        matches!(self, Self::External)
    }

    /// The class acting, for a caller inside the platform.
    pub fn class(&self) -> Option<&ClassKey> {
        match self {
            Self::External => None,
            Self::Function { cls } | Self::Macro { cls, .. } => Some(cls),
        }
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
    /// Who called (external when absent).
    #[serde(default, skip_serializing_if = "Caller::is_external")]
    pub caller: Caller,
    /// The chain of calls this one was made from (a function calling
    /// through the node, or a macro step); absent for a client's call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<Chain>,
    /// For a macro step: the revision of the macro it is a step of. A
    /// re-run of the step takes a remembered answer only from a step of
    /// the same revision (a changed macro is not mixed with the old one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_revision: Option<u64>,
}

/// An object named across classes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    pub cls: ClassKey,
    pub oid: ObjectId,
}

/// The calls a call was made from. A call that would wait on an object
/// the chain holds is refused (re-entrancy), and chains are bounded in
/// length, so calls between objects can neither deadlock on their own
/// inboxes nor recurse forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chain {
    /// The invocation id of the client's call the chain started from.
    pub id: InvocationId,
    /// Objects whose inbox a call of the chain holds while it waits for
    /// this one (main objects of mutating sync calls up the chain).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<ObjectRef>,
    /// Calls between the chain's first call and this one.
    #[serde(default)]
    pub depth: u32,
    /// Macro functions running up the chain: a macro never runs inside
    /// itself (its fan-out would multiply at every level).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub macros: Vec<FunctionKey>,
}

impl Chain {
    /// Whether a call of the chain holds `cls`/`oid`.
    pub fn holds(&self, cls: &ClassKey, oid: &ObjectId) -> bool {
        self.held.iter().any(|r| &r.cls == cls && &r.oid == oid)
    }
}

impl InvocationRequest {
    /// A call of binding `fb` of class `cls` (on object `oid`, or at class
    /// level) by an external caller, with a fresh invocation id and no
    /// arguments, body or headers.
    pub fn new(cls: ClassKey, oid: Option<ObjectId>, fb: impl Into<String>) -> Self {
        Self {
            inv_id: InvocationId::generate(),
            cls,
            oid,
            fb: fb.into(),
            args: BTreeMap::new(),
            body: None,
            idempotency_key: None,
            accepted_at: None,
            traceparent: None,
            caller: Caller::External,
            chain: None,
            macro_revision: None,
        }
    }

    /// Whether `other` asks for the same thing: same class, object,
    /// binding, arguments and body (object keys in any order). An
    /// idempotency key may only be repeated for the same request.
    pub fn same_call(&self, other: &Self) -> bool {
        self.cls == other.cls
            && self.oid == other.oid
            && self.fb == other.fb
            && self.args == other.args
            && self.body == other.body
    }
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
    /// A macro's output object ids, by step name (given up front).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_ids: Option<BTreeMap<String, ObjectId>>,
    /// A macro's steps, in declaration order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepReport>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<InvocationStats>,
}

/// Where one step of a macro stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// The step's `as` name (`_N` for the N-th step without one).
    pub name: String,
    /// QUEUE (waiting for its inputs), DOING, SUCCEEDED, FAILED or
    /// DEPENDENCY_FAILED.
    pub status: InvocationStatus,
    /// The step's own invocation id (derived from the macro's).
    pub inv_id: InvocationId,
    /// The object it runs on, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ObjectRef>,
    /// Its output object's id, when its binding has an output class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<ObjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<InvocationError>,
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
            macro_ids: None,
            steps: None,
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
    fn same_call_ignores_key_order_and_ids() {
        let cls = ClassKey::new("p.c").unwrap();
        let mut a = InvocationRequest::new(cls.clone(), None, "f");
        a.body = Some(serde_json::json!({"x": 1, "y": [1, 2]}));
        let mut b = InvocationRequest::new(cls, None, "f");
        b.body = serde_json::from_str(r#"{"y": [1, 2], "x": 1}"#).ok();
        assert_ne!(a.inv_id, b.inv_id);
        assert!(a.same_call(&b));
        b.args.insert("n".into(), "1".into());
        assert!(!a.same_call(&b));
    }

    #[test]
    fn caller_round_trips_and_defaults_to_external() {
        let cls = ClassKey::new("p.c").unwrap();
        let mut r = InvocationRequest::new(cls.clone(), None, "f");
        let v = serde_json::to_value(&r).unwrap();
        assert!(v.get("caller").is_none());
        r.caller = Caller::Macro {
            cls,
            fb: "m".into(),
        };
        let back: InvocationRequest =
            serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn status_uses_oparaca_names() {
        let s = serde_json::to_string(&InvocationStatus::DependencyFailed).unwrap();
        assert_eq!(s, "\"DEPENDENCY_FAILED\"");
        assert!(!InvocationStatus::Queue.is_terminal());
        assert!(InvocationStatus::Failed.is_terminal());
    }
}
