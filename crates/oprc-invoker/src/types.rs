//! The invoker's vocabulary: which object, what kind of call, and a call
//! on its way to running.

use std::time::{SystemTime, UNIX_EPOCH};

use oprc_core::{ClassKey, InvocationRequest, InvocationResponse, ObjectId, PartitionId};
use tokio::sync::oneshot;

use crate::Error;
use crate::plan::Plan;

/// Identifies an object across classes.
pub(crate) type ObjectKey = (ClassKey, ObjectId);

/// How a call was accepted, which decides what it promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// A caller waits for the answer; nothing is remembered.
    Sync,
    /// A caller waits, and the answer is remembered under its
    /// `Idempotency-Key` (in a durable record committed with the state).
    Idempotent,
    /// Accepted into the async log at `offset` of `partition`: applied
    /// exactly once in effect, its `lastOffset` and terminal record
    /// committed with the state (G5).
    Async { partition: PartitionId, offset: u64 },
}

impl CallKind {
    /// Whether the call's record is committed with its effect.
    pub fn records(self) -> bool {
        !matches!(self, Self::Sync)
    }

    /// The async-log offset this call applies, if any.
    pub fn offset(self) -> Option<u64> {
        match self {
            Self::Async { offset, .. } => Some(offset),
            _ => None,
        }
    }
}

/// Where the answer of a call goes.
pub(crate) type Reply = oneshot::Sender<Result<InvocationResponse, Error>>;

/// A call that was accepted and is on its way to running.
pub(crate) struct Call {
    pub req: InvocationRequest,
    /// As planned at acceptance; planned again when the call starts.
    pub plan: Plan,
    pub kind: CallKind,
    /// When the platform accepted it (ms since the epoch).
    pub que_ts: i64,
    /// Commit attempts that failed for a reason worth retrying.
    pub attempts: u32,
    pub reply: Option<Reply>,
    /// Holds the call's place in the node's admission bound until the call
    /// is dropped (answered and done).
    pub _admitted: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Call {
    /// Answers the caller (who may have gone away: the call is done
    /// anyway).
    pub fn answer(&mut self, result: Result<InvocationResponse, Error>) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(result);
        }
    }

    /// The call's main object (mutating calls always have one).
    pub fn key(&self) -> Option<ObjectKey> {
        self.req
            .oid
            .as_ref()
            .map(|oid| (self.req.cls.clone(), oid.clone()))
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The span of one invocation (the id links sync answers, async records and
/// function logs).
pub(crate) fn span_of(req: &InvocationRequest) -> tracing::Span {
    tracing::info_span!(
        "invocation",
        inv = %req.inv_id,
        cls = %req.cls,
        oid = req.oid.as_ref().map(|o| o.as_str()),
        fb = %req.fb,
    )
}
