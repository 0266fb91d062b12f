//! A [`WriteBatch`] turned into the rows of its set-based statements
//! (`sql.rs`), with no IO. Several writes of one object or one invocation
//! in a batch fold into one row each, with the embedded store's meaning:
//! every precondition is checked against the state before the batch, and
//! the last write wins.

use oprc_store::{Error, Result, Write, WriteBatch};

use crate::error::encode;

/// The rows of [`crate::sql::WRITE_OBJECTS`].
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ObjectRows {
    pub cls: Vec<String>,
    pub oid: Vec<String>,
    /// `None`: the object must not exist.
    pub expected: Vec<Option<i64>>,
    /// `None`: delete.
    pub revision: Vec<Option<i64>>,
    pub record: Vec<Vec<u8>>,
}

/// The rows of [`crate::sql::WRITE_INVOCATIONS`].
#[derive(Debug, Default, PartialEq)]
pub(crate) struct InvocationRows {
    pub id: Vec<String>,
    pub record: Vec<Vec<u8>>,
    pub terminal: Vec<bool>,
    pub expires_at: Vec<i64>,
    pub key: Vec<String>,
    pub key_id: Vec<String>,
    /// The key came with a non-terminal write: indexed only if the stored
    /// record is not terminal.
    pub key_conditional: Vec<bool>,
}

#[derive(Debug, Default, PartialEq)]
pub(crate) struct Plan {
    pub objects: ObjectRows,
    pub invocations: InvocationRows,
    /// The batch's fence: partition and epoch.
    pub fence: Option<(i32, i64)>,
}

fn revision(r: u64) -> Result<i64> {
    i64::try_from(r).map_err(|_| Error::internal(format!("revision {r} does not fit in bigint")))
}

/// Plans `batch`. `Err`: the batch cannot succeed whatever is stored (two
/// of its writes expect different revisions of one object) or a record
/// does not encode.
pub(crate) fn plan(batch: &WriteBatch) -> Result<Plan> {
    let mut plan = Plan::default();
    if let Some(f) = batch.fence {
        let epoch = i64::try_from(f.epoch)
            .map_err(|_| Error::internal(format!("epoch {} does not fit in bigint", f.epoch)))?;
        plan.fence = Some((i32::from(f.partition), epoch));
    }
    let o = &mut plan.objects;
    let v = &mut plan.invocations;
    for write in &batch.writes {
        let (cls, oid, expected, new) = match write {
            Write::PutObject {
                record,
                expected_revision,
            } => (
                record.meta.cls.as_str(),
                record.meta.id.as_str(),
                *expected_revision,
                Some((revision(record.meta.revision)?, encode("object", record)?)),
            ),
            Write::DeleteObject {
                cls,
                oid,
                expected_revision,
            } => (cls.as_str(), oid.as_str(), Some(*expected_revision), None),
            Write::PutInvocation(record) => {
                let id = record.request.inv_id.as_str();
                let terminal = record.response.status.is_terminal();
                let earlier = v.id.iter().position(|e| e == id);
                if let Some(i) = earlier
                    && v.terminal[i]
                    && !terminal
                {
                    // A late non-terminal write: the batch's own result wins.
                    continue;
                }
                let bytes = encode("invocation record", record.as_ref())?;
                match earlier {
                    Some(i) => {
                        v.record[i] = bytes;
                        v.terminal[i] = terminal;
                        v.expires_at[i] = record.expires_at;
                    }
                    None => {
                        v.id.push(id.to_owned());
                        v.record.push(bytes);
                        v.terminal.push(terminal);
                        v.expires_at.push(record.expires_at);
                    }
                }
                if let Some(key) = &record.request.idempotency_key
                    && !v.key.contains(key)
                {
                    v.key.push(key.clone());
                    v.key_id.push(id.to_owned());
                    v.key_conditional.push(!terminal);
                }
                continue;
            }
        };
        let expected = expected.map(revision).transpose()?;
        let (rev, record) = match new {
            Some((rev, bytes)) => (Some(rev), bytes),
            None => (None, Vec::new()),
        };
        match o
            .cls
            .iter()
            .zip(&o.oid)
            .position(|(c, i)| c == cls && i == oid)
        {
            Some(i) if o.expected[i] != expected => {
                return Err(Error::conflict(format!(
                    "object {cls}/{oid}: the batch expects both revision {:?} and {expected:?}",
                    o.expected[i]
                )));
            }
            Some(i) => {
                o.revision[i] = rev;
                o.record[i] = record;
            }
            None => {
                o.cls.push(cls.to_owned());
                o.oid.push(oid.to_owned());
                o.expected.push(expected);
                o.revision.push(rev);
                o.record.push(record);
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use oprc_core::{
        ClassKey, InvocationId, InvocationRecord, InvocationRequest, InvocationResponse,
        InvocationStatus, ObjectId, ObjectRecord,
    };
    use oprc_store::ErrorKind;

    use super::*;

    fn put(oid: &str, rev: u64, expected: Option<u64>) -> Write {
        let mut record = ObjectRecord::new(
            ClassKey::new("t.c").unwrap(),
            ObjectId::new(oid).unwrap(),
            serde_json::json!(rev),
        );
        record.meta.revision = rev;
        Write::PutObject {
            record,
            expected_revision: expected,
        }
    }

    fn delete(oid: &str, expected: u64) -> Write {
        Write::DeleteObject {
            cls: ClassKey::new("t.c").unwrap(),
            oid: ObjectId::new(oid).unwrap(),
            expected_revision: expected,
        }
    }

    fn invocation(id: &str, status: InvocationStatus, key: Option<&str>) -> Write {
        let inv_id = InvocationId::new(id).unwrap();
        Write::PutInvocation(Box::new(InvocationRecord {
            request: InvocationRequest {
                inv_id: inv_id.clone(),
                cls: ClassKey::new("t.c").unwrap(),
                oid: None,
                fb: "f".into(),
                args: BTreeMap::new(),
                body: None,
                idempotency_key: key.map(str::to_owned),
                accepted_at: None,
                traceparent: None,
                caller: Default::default(),
                chain: None,
                macro_revision: None,
            },
            response: InvocationResponse::status(inv_id, status),
            expires_at: 7,
        }))
    }

    fn plan_of(writes: Vec<Write>) -> Result<Plan> {
        plan(&WriteBatch::of(writes))
    }

    #[test]
    fn writes_of_one_object_fold_into_its_last() {
        let p = plan_of(vec![
            put("a", 1, None),
            put("b", 3, Some(2)),
            put("a", 2, None),
        ])
        .unwrap();
        assert_eq!(p.objects.oid, ["a", "b"]);
        assert_eq!(p.objects.expected, [None, Some(2)]);
        assert_eq!(p.objects.revision, [Some(2), Some(3)]);
        let p = plan_of(vec![put("a", 2, Some(1)), delete("a", 1)]).unwrap();
        assert_eq!(p.objects.revision, [None]);
        assert_eq!(p.objects.expected, [Some(1)]);
    }

    #[test]
    fn contradicting_preconditions_conflict_before_any_io() {
        let e = plan_of(vec![delete("a", 1), put("a", 1, None)]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert!(e.message.contains("t.c/a"), "{e}");
    }

    #[test]
    fn a_late_non_terminal_write_does_not_hide_the_batch_result() {
        use InvocationStatus::{Queue, Succeeded};
        let p = plan_of(vec![
            invocation("i", Queue, Some("k1")),
            invocation("i", Succeeded, Some("k2")),
            invocation("i", Queue, Some("k3")),
        ])
        .unwrap();
        let v = &p.invocations;
        assert_eq!(v.id, ["i"]);
        assert_eq!(v.terminal, [true]);
        // k3 came with the skipped write; k1 only counts if the stored
        // record is not terminal.
        assert_eq!(v.key, ["k1", "k2"]);
        assert_eq!(v.key_conditional, [true, false]);
    }

    #[test]
    fn the_first_use_of_a_key_in_a_batch_wins() {
        use InvocationStatus::Queue;
        let p = plan_of(vec![
            invocation("i1", Queue, Some("k")),
            invocation("i2", Queue, Some("k")),
        ])
        .unwrap();
        assert_eq!(p.invocations.key_id, ["i1"]);
        assert_eq!(p.invocations.id, ["i1", "i2"]);
    }
}
