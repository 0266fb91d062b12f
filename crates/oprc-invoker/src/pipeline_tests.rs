use std::sync::Arc;

use oprc_core::{ClassKey, ObjectId, ObjectRecord, PartitionId};
use proptest::prelude::*;

use super::*;
use crate::retry;
use crate::types::CallKind;

#[derive(Debug)]
struct Call {
    id: u32,
    kind: CallKind,
    attempts: u32,
}

impl Entry for Call {
    fn on_failure(&mut self, error: ErrorKind) -> Decision {
        self.attempts += 1;
        retry::decide(self.kind, error, self.attempts)
    }
}

const ASYNC: CallKind = CallKind::Async {
    partition: PartitionId(0),
    offset: 1,
};

fn call(id: u32, kind: CallKind) -> Call {
    Call {
        id,
        kind,
        attempts: 0,
    }
}

fn state(rev: u64) -> Current {
    let mut o = ObjectRecord::new(
        ClassKey::new("t.c").unwrap(),
        ObjectId::new("o").unwrap(),
        serde_json::json!({}),
    );
    o.meta.revision = rev;
    Current::Live(Arc::new(o))
}

fn revision(c: &Current) -> Option<u64> {
    match c {
        Current::Live(o) => Some(o.meta.revision),
        _ => None,
    }
}

fn ids(calls: &[Call]) -> Vec<u32> {
    calls.iter().map(|c| c.id).collect()
}

/// Answers and failures, as `(id, ok)`.
fn outcome(actions: Vec<Action<Call>>) -> (Vec<(u32, bool)>, bool) {
    let mut out = Vec::new();
    let mut commit = false;
    for a in actions {
        match a {
            Action::Commit => commit = true,
            Action::Answer(calls) => out.extend(calls.iter().map(|c| (c.id, true))),
            Action::Fail(calls, _) => out.extend(calls.iter().map(|c| (c.id, false))),
        }
    }
    (out, commit)
}

#[test]
fn an_idle_object_commits_each_call_at_once() {
    let mut p = Pipeline::default();
    let (at, g) = p.start();
    assert!(matches!(at, Current::Unknown));
    let (out, commit) =
        outcome(p.finished(call(1, CallKind::Sync), g, Some(state(1)), Some(state(2))));
    assert!(out.is_empty() && commit);
    assert_eq!(ids(p.committing_mut()), [1]);
    let (out, commit) = outcome(p.committed(Ok(())));
    assert_eq!((out, commit), (vec![(1, true)], false));
    assert!(p.is_idle());
    // The next call runs on the committed state, no reload.
    let (at, _) = p.start();
    assert_eq!(revision(&at), Some(2));
}

#[test]
fn queued_calls_run_on_uncommitted_state_and_commit_together() {
    let mut p = Pipeline::default();
    let (_, g) = p.start();
    p.finished(call(1, CallKind::Sync), g, Some(state(1)), Some(state(2)));
    for id in 2..=4 {
        assert!(p.can_start());
        let (at, g) = p.start();
        assert_eq!(revision(&at), Some(u64::from(id)));
        let (out, commit) = outcome(p.finished(
            call(id, CallKind::Sync),
            g,
            None,
            Some(state(u64::from(id) + 1)),
        ));
        assert!(out.is_empty() && !commit, "waits for the commit in flight");
    }
    let (out, commit) = outcome(p.committed(Ok(())));
    assert_eq!((out, commit), (vec![(1, true)], true));
    assert_eq!(ids(p.committing_mut()), [2, 3, 4]);
    let (out, _) = outcome(p.committed(Ok(())));
    assert_eq!(out, vec![(2, true), (3, true), (4, true)]);
    assert!(p.is_idle());
}

#[test]
fn a_failed_commit_dooms_what_was_built_on_it_and_keeps_the_order() {
    let mut p = Pipeline::default();
    let (_, g) = p.start();
    p.finished(call(1, ASYNC), g, Some(state(1)), Some(state(2)));
    let (_, g) = p.start();
    p.finished(call(2, CallKind::Sync), g, None, Some(state(3)));
    // Call 3 is running on state 3 when the commit of 1 fails.
    let (_, g3) = p.start();
    let (out, commit) = outcome(p.committed(Err(ErrorKind::Unavailable)));
    assert!(
        out.is_empty() && !commit,
        "async 1 is retried, sync 2 was only doomed"
    );
    assert!(p.pause().is_some(), "storage trouble: wait before retrying");
    assert!(!p.can_start(), "call 3 still runs");
    p.finished(call(3, CallKind::Sync), g3, None, Some(state(4)));
    p.resume();
    let mut order = Vec::new();
    while let Some(c) = p.take_redo() {
        let (at, g) = p.start();
        assert!(
            matches!(at, Current::Unknown) || !order.is_empty(),
            "reloads first"
        );
        order.push(c.id);
        let loaded = order.len() == 1;
        p.finished(c, g, loaded.then(|| state(1)), Some(state(9)));
    }
    assert_eq!(order, [1, 2, 3]);
}

#[test]
fn a_waiting_caller_is_told_when_storage_is_down() {
    let mut p = Pipeline::default();
    let (_, g) = p.start();
    p.finished(call(1, CallKind::Sync), g, Some(state(1)), Some(state(2)));
    let (_, g) = p.start();
    p.finished(call(2, CallKind::Sync), g, None, Some(state(3)));
    let (out, _) = outcome(p.committed(Err(ErrorKind::Unavailable)));
    assert_eq!(out, vec![(1, false)]);
    // 2 did nothing wrong: it runs again on the reloaded state.
    let again = p.take_redo().expect("doomed call runs again");
    assert_eq!(again.id, 2);
    let (at, _) = p.start();
    assert!(matches!(at, Current::Unknown));
}

#[test]
fn a_failed_load_is_retried_first_or_answered() {
    let mut p = Pipeline::default();
    p.start();
    let (out, _) = outcome(p.load_failed(call(1, ASYNC), ErrorKind::Unavailable));
    assert!(out.is_empty());
    assert!(!p.can_start());
    p.resume();
    assert_eq!(p.take_redo().map(|c| c.id), Some(1));
    p.start();
    let (out, _) = outcome(p.load_failed(call(2, CallKind::Sync), ErrorKind::Internal));
    assert_eq!(out, vec![(2, false)]);
}

/// One step of a random schedule.
#[derive(Debug, Clone)]
enum Op {
    /// Start the next call (from the redo queue or a new one) and finish it.
    Run { async_call: bool },
    /// Start a call and leave it running.
    StartOnly { async_call: bool },
    /// Finish the running call.
    Finish,
    /// The commit in flight ends.
    Commit { ok: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<bool>().prop_map(|a| Op::Run { async_call: a }),
        1 => any::<bool>().prop_map(|a| Op::StartOnly { async_call: a }),
        1 => Just(Op::Finish),
        3 => any::<bool>().prop_map(|ok| Op::Commit { ok }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the schedule: one call runs at a time, every call is
    /// answered exactly once when the machine drains, successes are
    /// answered in arrival order, and after a failure nothing runs on
    /// unreloaded state.
    #[test]
    fn every_call_is_answered_once_and_in_order(ops in proptest::collection::vec(op(), 1..80)) {
        let mut p: Pipeline<Call> = Pipeline::default();
        let mut next_id = 0u32;
        let mut running: Option<(Call, u64, bool)> = None;
        let mut answered: Vec<(u32, bool)> = Vec::new();
        let mut issued = 0u32;
        let apply = |actions: Vec<Action<Call>>, answered: &mut Vec<(u32, bool)>| {
            answered.extend(outcome(actions).0);
        };
        let start = |p: &mut Pipeline<Call>, async_call: bool, next_id: &mut u32, issued: &mut u32| {
            p.resume();
            if !p.can_start() { return None; }
            let c = match p.take_redo() {
                Some(c) => c,
                None => {
                    *next_id += 1;
                    *issued += 1;
                    call(*next_id, if async_call { ASYNC } else { CallKind::Sync })
                }
            };
            let (at, g) = p.start();
            Some((c, g, matches!(at, Current::Unknown)))
        };
        for op in ops {
            match op {
                Op::Run { async_call } | Op::StartOnly { async_call } if running.is_none() => {
                    if let Some((c, g, unknown)) = start(&mut p, async_call, &mut next_id, &mut issued) {
                        if matches!(op, Op::Run { .. }) {
                            let loaded = unknown.then(|| state(1));
                            apply(p.finished(c, g, loaded, Some(state(2))), &mut answered);
                        } else {
                            running = Some((c, g, unknown));
                        }
                    }
                }
                Op::Finish | Op::Run { .. } | Op::StartOnly { .. } => {
                    if let Some((c, g, unknown)) = running.take() {
                        let loaded = unknown.then(|| state(1));
                        apply(p.finished(c, g, loaded, Some(state(2))), &mut answered);
                    }
                }
                Op::Commit { ok } => {
                    if !p.committing_mut().is_empty() {
                        let result = if ok { Ok(()) } else { Err(ErrorKind::Conflict) };
                        apply(p.committed(result), &mut answered);
                    }
                }
            }
        }
        // Drain: finish what runs, then commit successfully until idle.
        if let Some((c, g, unknown)) = running.take() {
            apply(p.finished(c, g, unknown.then(|| state(1)), None), &mut answered);
        }
        let mut guard = 0;
        while !p.is_idle() {
            guard += 1;
            prop_assert!(guard < 10_000, "machine does not drain");
            if !p.committing_mut().is_empty() {
                apply(p.committed(Ok(())), &mut answered);
                continue;
            }
            p.resume();
            let c = p.take_redo().expect("idle or something to redo");
            let (at, g) = p.start();
            let loaded = matches!(at, Current::Unknown).then(|| state(1));
            apply(p.finished(c, g, loaded, None), &mut answered);
        }
        let mut seen: Vec<u32> = answered.iter().map(|(id, _)| *id).collect();
        let succeeded: Vec<u32> = answered.iter().filter(|(_, ok)| *ok).map(|(id, _)| *id).collect();
        prop_assert!(succeeded.windows(2).all(|w| w[0] < w[1]), "answers out of order: {answered:?}");
        seen.sort_unstable();
        seen.dedup();
        prop_assert_eq!(seen.len(), answered.len(), "answered twice: {:?}", answered);
        prop_assert_eq!(seen.len() as u32, issued, "lost a call: {:?}", answered);
    }
}
