//! What a call did, and the one batch that commits it (G2): pure, no IO.

use std::sync::Arc;

use oprc_core::{
    InvocationError, InvocationRecord, InvocationRequest, InvocationResponse, InvocationStats,
    InvocationStatus, ObjectRecord,
};
use oprc_store::{Durability, Write, WriteBatch};

use crate::types::{CallKind, ObjectKey};

/// What a call did, before it is committed.
#[derive(Debug)]
pub(crate) struct Step {
    pub status: InvocationStatus,
    pub error: Option<InvocationError>,
    pub main: MainChange,
    pub output: Option<ObjectRecord>,
    pub body: Option<serde_json::Value>,
    pub offload_ts: i64,
}

#[derive(Debug)]
pub(crate) enum MainChange {
    Keep,
    Put(ObjectRecord),
    Delete,
}

pub(crate) fn failure(code: &str, message: impl Into<String>) -> InvocationError {
    InvocationError {
        code: code.to_owned(),
        message: message.into(),
    }
}

impl Step {
    pub fn ok(
        main: MainChange,
        output: Option<ObjectRecord>,
        body: Option<serde_json::Value>,
    ) -> Self {
        Self {
            status: InvocationStatus::Succeeded,
            error: None,
            main,
            output,
            body,
            offload_ts: 0,
        }
    }

    pub fn failed(error: InvocationError) -> Self {
        Self {
            status: InvocationStatus::Failed,
            error: Some(error),
            main: MainChange::Keep,
            output: None,
            body: None,
            offload_ts: 0,
        }
    }
}

/// What a worker knows of its object.
#[derive(Debug, Clone, Default)]
pub(crate) enum Current {
    /// Load it (from the hot-object cache or the store).
    #[default]
    Unknown,
    /// It does not exist (or a call in flight deletes it).
    Gone,
    /// As committed, or as computed by a call whose commit is in flight.
    Live(Arc<ObjectRecord>),
}

impl Current {
    pub fn of(obj: Option<Arc<ObjectRecord>>) -> Self {
        obj.map_or(Self::Gone, Self::Live)
    }
}

/// A step turned into writes and the answer they stand for, not yet
/// committed.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub batch: WriteBatch,
    pub response: InvocationResponse,
    /// The main object's state once the batch is committed (`None`: as it
    /// was).
    pub after: Option<Current>,
    /// What the hot-object cache learns once the batch is committed.
    pub committed: Vec<(ObjectKey, Option<Arc<ObjectRecord>>)>,
}

/// What `prepare` needs besides the step.
pub(crate) struct Context<'a> {
    pub req: &'a InvocationRequest,
    pub kind: CallKind,
    pub que_ts: i64,
    pub now_ms: i64,
    pub retention_ms: i64,
    /// The class chose write-behind (`config.persistence: async`).
    pub class_write_behind: bool,
}

/// The record of an invocation, kept for the retention period.
pub(crate) fn record_of(
    req: &InvocationRequest,
    response: &InvocationResponse,
    now_ms: i64,
    retention_ms: i64,
) -> InvocationRecord {
    InvocationRecord {
        request: req.clone(),
        response: response.clone(),
        expires_at: now_ms.saturating_add(retention_ms),
    }
}

/// Turns a step into one batch: main change, output object and (for
/// recorded calls) the invocation record. An async call's offset goes into
/// the main object's `lastOffset` (G5).
pub(crate) fn prepare(cx: &Context<'_>, main: Option<&ObjectRecord>, step: Step) -> Prepared {
    let mut response = InvocationResponse::status(cx.req.inv_id.clone(), step.status);
    response.error = step.error;
    response.body = step.body;
    let mut batch = WriteBatch::new();
    let mut after = None;
    let mut committed = Vec::new();
    if step.status == InvocationStatus::Succeeded {
        match step.main {
            MainChange::Keep => response.main = main.cloned(),
            MainChange::Put(mut next) => {
                if let Some(offset) = cx.kind.offset() {
                    next.meta.last_offset = offset;
                }
                batch.push(Write::PutObject {
                    expected_revision: main.map(|m| m.meta.revision),
                    record: next.clone(),
                });
                let key = (next.meta.cls.clone(), next.meta.id.clone());
                response.main = Some(next.clone());
                let next = Arc::new(next);
                committed.push((key, Some(next.clone())));
                after = Some(Current::Live(next));
            }
            MainChange::Delete => {
                if let Some(m) = main {
                    committed.push(((m.meta.cls.clone(), m.meta.id.clone()), None));
                    batch.push(Write::DeleteObject {
                        cls: m.meta.cls.clone(),
                        oid: m.meta.id.clone(),
                        expected_revision: m.meta.revision,
                    });
                }
                after = Some(Current::Gone);
            }
        }
        if let Some(out) = step.output {
            batch.push(Write::PutObject {
                record: out.clone(),
                expected_revision: None,
            });
            response.output = Some(out.clone());
            committed.push((
                (out.meta.cls.clone(), out.meta.id.clone()),
                Some(Arc::new(out)),
            ));
        }
    }
    response.stats = Some(InvocationStats {
        que_ts: cx.que_ts,
        offload_ts: step.offload_ts,
        cpt_ts: cx.now_ms,
    });
    if cx.kind.records() {
        batch.push(Write::PutInvocation(Box::new(record_of(
            cx.req,
            &response,
            cx.now_ms,
            cx.retention_ms,
        ))));
    }
    // A class may trade durability for speed, but async calls and
    // remembered idempotency keys promise exactly-once, which needs their
    // record and `lastOffset` on disk whatever the node's mode.
    batch.durability = if cx.kind.records() {
        Durability::Required
    } else if cx.class_write_behind {
        Durability::Deferred
    } else {
        Durability::Default
    };
    Prepared {
        batch,
        response,
        after,
        committed,
    }
}

#[cfg(test)]
mod tests {
    use oprc_core::{ClassKey, InvocationId, ObjectId, PartitionId};
    use serde_json::json;

    use super::*;

    fn obj(rev: u64) -> ObjectRecord {
        let mut o = ObjectRecord::new(
            ClassKey::new("t.c").unwrap(),
            ObjectId::new("o").unwrap(),
            json!({"n": rev}),
        );
        o.meta.revision = rev;
        o
    }

    fn check(kind: CallKind, write_behind: bool, step: Step) -> Prepared {
        let mut req = InvocationRequest::new(
            ClassKey::new("t.c").unwrap(),
            Some(ObjectId::new("o").unwrap()),
            "f",
        );
        req.inv_id = InvocationId::new("i").unwrap();
        let cx = Context {
            req: &req,
            kind,
            que_ts: 1,
            now_ms: 10,
            retention_ms: 100,
            class_write_behind: write_behind,
        };
        prepare(&cx, Some(&obj(3)), step)
    }

    #[test]
    fn an_async_call_writes_its_offset_and_record_durably() {
        let kind = CallKind::Async {
            partition: PartitionId(0),
            offset: 7,
        };
        let p = check(kind, true, Step::ok(MainChange::Put(obj(4)), None, None));
        assert_eq!(p.batch.durability, Durability::Required);
        let [
            Write::PutObject {
                record,
                expected_revision,
            },
            Write::PutInvocation(rec),
        ] = p.batch.writes.as_slice()
        else {
            panic!("{:?}", p.batch.writes);
        };
        assert_eq!((record.meta.last_offset, *expected_revision), (7, Some(3)));
        assert_eq!(rec.expires_at, 110);
    }

    #[test]
    fn a_failed_step_writes_only_its_record() {
        let failed = Step::failed(failure("function_failed", "boom"));
        let p = check(CallKind::Sync, false, failed);
        assert!(p.batch.writes.is_empty());
        assert!(p.after.is_none());
        let failed = Step::failed(failure("function_failed", "boom"));
        let p = check(CallKind::Idempotent, false, failed);
        assert!(matches!(
            p.batch.writes.as_slice(),
            [Write::PutInvocation(_)]
        ));
    }

    #[test]
    fn only_unrecorded_calls_of_write_behind_classes_are_deferred() {
        let put = || Step::ok(MainChange::Put(obj(4)), None, None);
        assert_eq!(
            check(CallKind::Sync, true, put()).batch.durability,
            Durability::Deferred
        );
        assert_eq!(
            check(CallKind::Sync, false, put()).batch.durability,
            Durability::Default
        );
        assert_eq!(
            check(CallKind::Idempotent, true, put()).batch.durability,
            Durability::Required
        );
    }
}
