//! Merging the batches of calls queued on one object into one batch (pure).

use std::collections::HashMap;

use oprc_store::{Durability, Write, WriteBatch};

use crate::types::ObjectKey;

fn key_of(w: &Write) -> Option<ObjectKey> {
    match w {
        Write::PutObject { record, .. } => Some((record.meta.cls.clone(), record.meta.id.clone())),
        Write::DeleteObject { cls, oid, .. } => Some((cls.clone(), oid.clone())),
        Write::PutInvocation(_) => None,
    }
}

/// Merges consecutive batches into one: for an object written several
/// times, the last write with the first write's expected revision (the
/// chain of revisions in between never reaches the store).
pub(crate) fn merge(batches: impl Iterator<Item = WriteBatch>) -> WriteBatch {
    let mut writes: Vec<Option<Write>> = Vec::new();
    let mut at: HashMap<ObjectKey, usize> = HashMap::new();
    // As durable as the most demanding merged batch.
    let mut durability = Durability::Deferred;
    // One object's batches: one partition, one ownership.
    let mut fence = None;
    let all = batches.flat_map(|b| {
        durability = durability.max(b.durability);
        fence = fence.or(b.fence);
        b.writes
    });
    for w in all {
        let Some(key) = key_of(&w) else {
            writes.push(Some(w));
            continue;
        };
        let Some(&i) = at.get(&key) else {
            at.insert(key, writes.len());
            writes.push(Some(w));
            continue;
        };
        let first = match &writes[i] {
            Some(Write::PutObject {
                expected_revision, ..
            }) => *expected_revision,
            Some(Write::DeleteObject {
                expected_revision, ..
            }) => Some(*expected_revision),
            _ => None,
        };
        writes[i] = match (w, first) {
            (Write::PutObject { record, .. }, expected_revision) => Some(Write::PutObject {
                record,
                expected_revision,
            }),
            (Write::DeleteObject { cls, oid, .. }, Some(expected_revision)) => {
                Some(Write::DeleteObject {
                    cls,
                    oid,
                    expected_revision,
                })
            }
            // Created and deleted within the group: nothing to write.
            (Write::DeleteObject { .. }, None) => {
                at.remove(&key);
                None
            }
            (w @ Write::PutInvocation(_), _) => Some(w),
        };
    }
    WriteBatch {
        writes: writes.into_iter().flatten().collect(),
        durability,
        fence,
    }
}

#[cfg(test)]
mod tests {
    use oprc_core::{ClassKey, ObjectId, ObjectRecord};
    use serde_json::json;

    use super::*;

    fn put(id: &str, rev: u64, expected: Option<u64>) -> Write {
        let mut r = ObjectRecord::new(
            ClassKey::new("t.c").unwrap(),
            ObjectId::new(id).unwrap(),
            json!(rev),
        );
        r.meta.revision = rev;
        Write::PutObject {
            record: r,
            expected_revision: expected,
        }
    }

    fn summary(b: &WriteBatch) -> Vec<String> {
        b.writes
            .iter()
            .map(|w| match w {
                Write::PutObject {
                    record,
                    expected_revision,
                } => format!(
                    "put {} r{} if {:?}",
                    record.meta.id, record.meta.revision, expected_revision
                ),
                Write::DeleteObject {
                    oid,
                    expected_revision,
                    ..
                } => format!("delete {oid} if {expected_revision}"),
                Write::PutInvocation(_) => "record".into(),
            })
            .collect()
    }

    #[test]
    fn chained_writes_collapse_to_the_last_state_with_the_first_precondition() {
        let b = WriteBatch::of;
        let merged = merge(
            vec![
                b(vec![put("o", 4, Some(3))]),
                b(vec![put("o", 5, Some(4)), put("out", 1, None)]),
                b(vec![put("o", 6, Some(5))]),
            ]
            .into_iter(),
        );
        assert_eq!(
            summary(&merged),
            vec!["put o r6 if Some(3)", "put out r1 if None"]
        );
        let deleted = merge(
            vec![
                b(vec![put("o", 4, Some(3))]),
                b(vec![Write::DeleteObject {
                    cls: ClassKey::new("t.c").unwrap(),
                    oid: ObjectId::new("o").unwrap(),
                    expected_revision: 4,
                }]),
            ]
            .into_iter(),
        );
        assert_eq!(summary(&deleted), vec!["delete o if 3"]);
    }

    #[test]
    fn a_merged_batch_is_as_durable_as_its_most_demanding_part() {
        let with = |d| WriteBatch {
            writes: vec![put("o", 1, None)],
            durability: d,
            fence: None,
        };
        let merged = merge([with(Durability::Deferred), with(Durability::Deferred)].into_iter());
        assert_eq!(merged.durability, Durability::Deferred);
        let merged = merge([with(Durability::Deferred), with(Durability::Required)].into_iter());
        assert_eq!(merged.durability, Durability::Required);
        let merged = merge([with(Durability::Default), with(Durability::Deferred)].into_iter());
        assert_eq!(merged.durability, Durability::Default);
    }
}
