use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::dataflow::{Dag, Progress, StepPlan, StepStatus, Target};

use StepStatus::{DependencyFailed, Failed, Running, Succeeded, Waiting};

/// A dag whose step `i` needs `deps[i]`.
fn dag(deps: &[&[usize]]) -> Dag {
    Dag {
        steps: deps
            .iter()
            .enumerate()
            .map(|(i, d)| StepPlan {
                name: format!("_{i}"),
                function: "f".into(),
                target: Target::Main,
                args: BTreeMap::new(),
                body: None,
                deps: d.to_vec(),
            })
            .collect(),
        output: None,
        body: None,
    }
}

#[test]
fn ready_steps_start_in_waves() {
    // 0 and 1 are independent; 2 needs both; 3 needs 2.
    let mut p = Progress::new(&dag(&[&[], &[], &[0, 1], &[2]]));
    assert_eq!(p.start_ready(), [0, 1]);
    assert_eq!(p.start_ready(), Vec::<usize>::new(), "started once");
    assert!(!p.is_done());
    p.succeeded(0);
    assert_eq!(p.start_ready(), Vec::<usize>::new(), "2 still needs 1");
    p.succeeded(1);
    assert_eq!(p.start_ready(), [2]);
    p.succeeded(2);
    assert_eq!(p.start_ready(), [3]);
    assert_eq!(p.status(3), Running);
    p.succeeded(3);
    assert!(p.is_done());
    assert!(!p.any_failed());
    assert_eq!(p.statuses(), [Succeeded; 4]);
}

#[test]
fn a_failure_fails_its_dependents_transitively() {
    // 0 -> 1 -> 3, 0 -> 2, 4 independent, 5 needs 4 and 3.
    let mut p = Progress::new(&dag(&[&[], &[0], &[0], &[1], &[], &[3, 4]]));
    assert_eq!(p.start_ready(), [0, 4]);
    p.succeeded(0);
    assert_eq!(p.start_ready(), [1, 2]);
    assert_eq!(p.failed(1), [3, 5]);
    assert_eq!(p.status(1), Failed);
    assert_eq!(p.status(3), DependencyFailed);
    assert_eq!(p.status(5), DependencyFailed);
    assert!(!p.is_done(), "2 and 4 are running");
    p.succeeded(2);
    p.succeeded(4);
    assert_eq!(p.start_ready(), Vec::<usize>::new(), "5 never starts");
    assert!(p.is_done());
    assert!(p.any_failed());
    assert_eq!(
        p.statuses(),
        [
            Succeeded,
            Failed,
            Succeeded,
            DependencyFailed,
            Succeeded,
            DependencyFailed
        ]
    );
}

#[test]
fn odd_calls_are_ignored_not_panics() {
    let mut p = Progress::new(&dag(&[&[], &[0, 7], &[2]]));
    p.succeeded(0); // not running: ignored
    assert_eq!(p.status(0), Waiting);
    assert_eq!(p.failed(99), Vec::<usize>::new());
    assert_eq!(p.status(99), Waiting);
    p.succeeded(99);
    assert_eq!(
        p.start_ready(),
        [0],
        "a dep out of range is dropped; a self-dep never starts"
    );
    p.succeeded(0);
    assert_eq!(p.start_ready(), [1]);
    p.succeeded(1);
    assert_eq!(p.failed(1), Vec::<usize>::new(), "already succeeded");
    assert_eq!(p.status(1), Succeeded);
    assert!(p.is_done(), "step 2 needs itself and can never start");
    assert_eq!(p.status(2), Waiting);
    // A waiting step may be failed too (say, its input did not render).
    let mut q = Progress::new(&dag(&[&[], &[0]]));
    assert_eq!(q.failed(0), [1]);
    assert!(q.is_done());
    assert_eq!(Progress::new(&dag(&[])).start_ready(), Vec::<usize>::new());
    assert!(Progress::new(&dag(&[])).is_done());
}

#[test]
fn statuses_serialize_like_invocation_statuses() {
    assert_eq!(
        serde_json::to_string(&DependencyFailed).unwrap(),
        "\"DEPENDENCY_FAILED\""
    );
    assert_eq!(
        serde_json::from_str::<StepStatus>("\"SUCCEEDED\"").unwrap(),
        Succeeded
    );
    assert!(Failed.is_final() && !Running.is_final() && !Waiting.is_final());
}

/// Random DAGs (each step needs some earlier ones), an outcome per step,
/// and an order in which running steps finish.
fn run() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<bool>, Vec<prop::sample::Index>)> {
    (1usize..12).prop_flat_map(|n| {
        let deps: Vec<_> = (0..n)
            .map(|i| {
                if i == 0 {
                    Just(Vec::new()).boxed()
                } else {
                    proptest::collection::vec(0..i, 0..4).boxed()
                }
            })
            .collect();
        (
            deps,
            proptest::collection::vec(proptest::bool::weighted(0.8), n),
            proptest::collection::vec(any::<prop::sample::Index>(), n),
        )
    })
}

proptest! {
    #[test]
    fn steps_start_only_after_their_deps_succeed((deps, succeeds, picks) in run()) {
        let refs: Vec<&[usize]> = deps.iter().map(Vec::as_slice).collect();
        let mut p = Progress::new(&dag(&refs));
        let mut running: Vec<usize> = Vec::new();
        let mut failed: Vec<usize> = Vec::new();
        let mut started: Vec<usize> = Vec::new();
        let mut picks = picks.into_iter().cycle();
        loop {
            for s in p.start_ready() {
                prop_assert!(!started.contains(&s), "step {} started twice", s);
                for &d in &deps[s] {
                    prop_assert_eq!(p.status(d), Succeeded, "step {} started before {}", s, d);
                }
                started.push(s);
                running.push(s);
            }
            if running.is_empty() {
                break;
            }
            let pick = picks.next().map_or(0, |i| i.index(running.len()));
            let s = running.swap_remove(pick);
            if succeeds[s] {
                p.succeeded(s);
            } else {
                let dependents = p.failed(s);
                failed.push(s);
                for d in dependents {
                    prop_assert_eq!(p.status(d), DependencyFailed);
                    prop_assert!(!started.contains(&d), "dependent {} of {} had started", d, s);
                }
            }
        }
        prop_assert!(p.is_done());
        // Each step ends: succeeded or failed when it ran, DEPENDENCY_FAILED
        // exactly when something it needs (directly or not) failed.
        let mut blocked = vec![false; deps.len()];
        for i in 0..deps.len() {
            blocked[i] = deps[i].iter().any(|&d| blocked[d] || failed.contains(&d));
            let expected = if blocked[i] {
                DependencyFailed
            } else if succeeds[i] {
                Succeeded
            } else {
                Failed
            };
            prop_assert_eq!(p.status(i), expected, "step {}", i);
            prop_assert_eq!(started.contains(&i), !blocked[i]);
        }
    }
}
