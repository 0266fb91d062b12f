//! The planned batches of one group commit merged into the rows of as few
//! set-based statements as they allow, with no IO.
//!
//! One statement may not write a row twice, and its parts all see the
//! state from before it. So batches that touch the same object, the same
//! invocation record or the same idempotency key go into successive
//! *waves*, in their order: a batch's wave is one past the last wave of an
//! earlier batch it shares a row with. Each wave is one object statement
//! and one invocation statement; batches of different objects (the usual
//! group) make a single wave, whatever their number.

use std::collections::HashMap;

use crate::plan::{InvocationRows, ObjectRows, Plan};

/// The rows of one wave, and whose they are.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Wave {
    pub objects: ObjectRows,
    /// The batch (its index in the group) of each object row.
    pub owner: Vec<usize>,
    pub invocations: InvocationRows,
    /// The batch of each invocation row, and of each key.
    pub invocation_owner: Vec<usize>,
    pub key_owner: Vec<usize>,
}

impl Wave {
    /// Whether no batch has more than one object row: then a batch's
    /// compare-and-swap is one row's, and one statement can write the
    /// whole wave, each batch's invocation rows only if its object row was
    /// written (`sql::WRITE_GROUP`).
    pub fn one_object_per_batch(&self) -> bool {
        self.owner.windows(2).all(|w| w[0] != w[1])
    }
}

/// A row a statement writes, for telling which batches share one.
#[derive(Hash, PartialEq, Eq)]
enum Row<'a> {
    Object(&'a str, &'a str),
    Invocation(&'a str),
    Key(&'a str),
}

fn rows(p: &Plan) -> impl Iterator<Item = Row<'_>> {
    let o = &p.objects;
    let v = &p.invocations;
    (o.cls.iter().zip(&o.oid).map(|(c, i)| Row::Object(c, i)))
        .chain(v.id.iter().map(|i| Row::Invocation(i)))
        .chain(v.key.iter().map(|k| Row::Key(k)))
}

/// The waves of `plans` (a group's batches, `members[i]` being the index
/// of `plans[i]` in the group), in the order they must run.
pub(crate) fn waves(plans: &[&Plan], members: &[usize]) -> Vec<Wave> {
    let mut last: HashMap<Row<'_>, usize> = HashMap::new();
    let mut out: Vec<Wave> = Vec::new();
    for (p, &member) in plans.iter().zip(members) {
        let wave = rows(p)
            .filter_map(|r| last.get(&r).map(|w| w + 1))
            .max()
            .unwrap_or(0);
        for r in rows(p) {
            last.insert(r, wave);
        }
        if out.len() <= wave {
            out.resize_with(wave + 1, Wave::default);
        }
        append(&mut out[wave], p, member);
    }
    out
}

fn append(w: &mut Wave, p: &Plan, member: usize) {
    let (o, from) = (&mut w.objects, &p.objects);
    o.cls.extend_from_slice(&from.cls);
    o.oid.extend_from_slice(&from.oid);
    o.expected.extend_from_slice(&from.expected);
    o.revision.extend_from_slice(&from.revision);
    o.record.extend(from.record.iter().cloned());
    w.owner.extend(std::iter::repeat_n(member, from.cls.len()));
    let (v, from) = (&mut w.invocations, &p.invocations);
    v.id.extend_from_slice(&from.id);
    v.record.extend(from.record.iter().cloned());
    v.terminal.extend_from_slice(&from.terminal);
    v.expires_at.extend_from_slice(&from.expires_at);
    v.key.extend_from_slice(&from.key);
    v.key_id.extend_from_slice(&from.key_id);
    v.key_conditional.extend_from_slice(&from.key_conditional);
    w.invocation_owner
        .extend(std::iter::repeat_n(member, from.id.len()));
    w.key_owner
        .extend(std::iter::repeat_n(member, from.key.len()));
}

/// The batches of `w` with an object row the statement did not write
/// (`written`: the `(cls, oid)`s it returned), each once, with that row.
pub(crate) fn missed(w: &Wave, written: &[(String, String)]) -> Vec<(usize, usize)> {
    let done: std::collections::HashSet<(&str, &str)> = written
        .iter()
        .map(|(c, o)| (c.as_str(), o.as_str()))
        .collect();
    let o = &w.objects;
    let mut out: Vec<(usize, usize)> = Vec::new();
    for row in 0..o.cls.len() {
        let batch = w.owner[row];
        if !done.contains(&(o.cls[row].as_str(), o.oid[row].as_str()))
            && !out.iter().any(|&(b, _)| b == batch)
        {
            out.push((batch, row));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(objects: &[&str], invocations: &[&str], keys: &[&str]) -> Plan {
        let mut p = Plan::default();
        for oid in objects {
            let o = &mut p.objects;
            o.cls.push("c".into());
            o.oid.push((*oid).into());
            o.expected.push(Some(1));
            o.revision.push(Some(2));
            o.record.push(oid.as_bytes().to_vec());
        }
        for id in invocations {
            let v = &mut p.invocations;
            v.id.push((*id).into());
            v.record.push(Vec::new());
            v.terminal.push(true);
            v.expires_at.push(0);
        }
        for key in keys {
            let v = &mut p.invocations;
            v.key.push((*key).into());
            v.key_id.push(invocations[0].into());
            v.key_conditional.push(false);
        }
        p
    }

    #[test]
    fn batches_of_different_rows_make_one_wave() {
        let a = plan(&["a"], &["i1"], &["k1"]);
        let b = plan(&["b", "c"], &["i2"], &["k2"]);
        let w = waves(&[&a, &b], &[0, 3]);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].objects.oid, ["a", "b", "c"]);
        assert_eq!(w[0].owner, [0, 3, 3]);
        assert_eq!(w[0].invocations.id, ["i1", "i2"]);
        assert_eq!(w[0].invocations.key, ["k1", "k2"]);
        assert_eq!(w[0].invocation_owner, [0, 3]);
        assert_eq!(w[0].key_owner, [0, 3]);
        assert!(!w[0].one_object_per_batch());
        let c = plan(&["c"], &["i3", "i4"], &[]);
        let w = waves(&[&a, &c], &[0, 1]);
        assert!(w[0].one_object_per_batch());
        assert_eq!(w[0].invocation_owner, [0, 1, 1]);
    }

    #[test]
    fn a_shared_row_of_any_kind_starts_a_later_wave_in_order() {
        let a = plan(&["a"], &["i1"], &[]);
        let b = plan(&["b"], &["i2"], &["k"]);
        let c = plan(&["a"], &["i3"], &[]); // a's object
        let d = plan(&["d"], &["i2"], &[]); // b's invocation
        let e = plan(&["e"], &["i5"], &["k"]); // b's key
        let f = plan(&["a"], &["i6"], &[]); // c's object: a third wave
        let g = plan(&["g"], &["i7"], &[]);
        let w = waves(&[&a, &b, &c, &d, &e, &f, &g], &[0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].owner, [0, 1, 6]);
        assert_eq!(w[1].owner, [2, 3, 4]);
        assert_eq!(w[2].owner, [5]);
    }

    #[test]
    fn a_batch_misses_once_whatever_the_number_of_its_rows() {
        let a = plan(&["a"], &[], &[]);
        let b = plan(&["b", "c"], &[], &[]);
        let w = waves(&[&a, &b], &[0, 1]);
        let written = |oids: &[&str]| -> Vec<(String, String)> {
            oids.iter().map(|o| ("c".into(), (*o).into())).collect()
        };
        assert_eq!(missed(&w[0], &written(&["a", "b", "c"])), []);
        assert_eq!(missed(&w[0], &written(&["c", "a"])), [(1, 1)]);
        assert_eq!(missed(&w[0], &written(&[])), [(0, 0), (1, 1)]);
    }
}
