//! Async calls survive a SIGKILL of a real `oprc serve`: nothing accepted is
//! lost, nothing is applied twice, per-object order holds (G5), whatever
//! the node's write mode.

use std::time::{Duration, Instant};

use crate::proc::{Proc, Start, seq_package, seqs};

/// Submits `N` async calls, kills the node once `applied` of them are
/// applied, restarts it and checks every accepted call.
fn kill_while_applying(args: &[&str], applied: usize) {
    const N: u64 = 150;
    let dir = tempfile::tempdir().unwrap();
    let package = seq_package();
    let start = Start {
        dir: dir.path(),
        args,
        env: &[],
        packages: &[&package],
    };
    let node = Proc::start(&start);
    let (s, v) = node
        .post("/api/classes/crash.log/invokes/new", r#"{"id": "o"}"#)
        .unwrap();
    assert_eq!(s, 200, "{v}");
    let mut accepted = Vec::new();
    for seq in 0..N {
        let path =
            format!("/api/classes/crash.log/objects/o/invokes/append?_async=true&seq={seq}&ms=5");
        let (s, v) = node.post(&path, "").expect("submit");
        assert_eq!(s, 202, "{v}");
        accepted.push(v["invId"].as_str().unwrap().to_owned());
    }
    // Kill the node in the middle of applying the log.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seqs(&node, "o").len() < applied {
        assert!(Instant::now() < deadline, "async calls are not applied");
        std::thread::sleep(Duration::from_millis(5));
    }
    let at_kill = seqs(&node, "o").len() as u64;
    assert!(at_kill < N, "the kill must land while calls are pending");
    let addr = node.addr.clone();
    node.kill();

    let node = Proc::start_at(&start, &addr);
    for end in node.wait_all(&accepted, Duration::from_secs(90)) {
        assert_eq!(end["status"], "SUCCEEDED", "{end}");
    }
    assert_eq!(
        seqs(&node, "o"),
        (0..N).collect::<Vec<u64>>(),
        "each call applied once, in order"
    );
}

#[test]
fn accepted_async_calls_survive_sigkill_exactly_once_in_order() {
    kill_while_applying(&[], 20);
}

/// A 202 promises a durable enqueue also when the node trades durability
/// of sync answers for speed (`--no-sync`): killed right after the last
/// 202, before any write-behind flush could save the appends.
#[test]
fn accepted_async_calls_survive_sigkill_in_write_behind_mode() {
    kill_while_applying(&["--no-sync"], 0);
}

/// `seq_package` plus a macro `chain` on `crash.log` whose `STEPS` steps
/// each append their index to the main object, one after the other (each
/// step's args read the previous step's answer, so it depends on it).
pub fn chain_package(steps: usize) -> String {
    let mut macro_steps = String::new();
    for i in 0..steps {
        let after = if i == 0 {
            String::new()
        } else {
            format!(", after: \"${{s{}|body|$.n}}\"", i - 1)
        };
        macro_steps.push_str(&format!(
            "          - {{function: append, target: \"@\", as: s{i}, args: {{seq: \"{i}\", ms: \"60\"{after}}}}}\n"
        ));
    }
    let base = seq_package().replace(
        "      - {name: append, function: .append}\n",
        "      - {name: append, function: .append}\n      - {name: chain, function: .chain}\n",
    );
    format!(
        "{base}  - name: chain\n    type: MACRO\n    macro:\n      steps:\n{macro_steps}      bodyTemplate: {{last: \"${{s{}|body|$.n}}\"}}\n",
        steps - 1
    )
}

/// Async macros survive a SIGKILL in the middle of their steps: after the
/// restart each one finishes, and every step was applied exactly once, in
/// order (steps are keyed calls whose records commit with their state).
#[test]
fn async_macros_survive_sigkill_with_each_step_applied_once() {
    const OBJECTS: usize = 4;
    const STEPS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let package = chain_package(STEPS);
    let start = Start {
        dir: dir.path(),
        args: &[],
        env: &[],
        packages: &[&package],
    };
    let node = Proc::start(&start);
    let mut accepted = Vec::new();
    for o in 0..OBJECTS {
        let body = format!(r#"{{"id": "m{o}"}}"#);
        let (s, v) = node
            .post("/api/classes/crash.log/invokes/new", &body)
            .unwrap();
        assert_eq!(s, 200, "{v}");
        let path = format!("/api/classes/crash.log/objects/m{o}/invokes/chain?_async=true");
        let (s, v) = node.post(&path, "").expect("submit");
        assert_eq!(s, 202, "{v}");
        accepted.push(v["invId"].as_str().unwrap().to_owned());
    }
    // Kill the node once some steps are applied and others are not.
    let applied = |node: &Proc| -> usize {
        (0..OBJECTS)
            .map(|o| seqs(node, &format!("m{o}")).len())
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while applied(&node) < OBJECTS {
        assert!(Instant::now() < deadline, "macro steps are not applied");
        std::thread::sleep(Duration::from_millis(5));
    }
    let at_kill = applied(&node);
    assert!(
        at_kill < OBJECTS * STEPS,
        "the kill must land while steps are pending"
    );
    let addr = node.addr.clone();
    node.kill();

    let node = Proc::start_at(&start, &addr);
    for end in node.wait_all(&accepted, Duration::from_secs(90)) {
        assert_eq!(end["status"], "SUCCEEDED", "{end}");
        assert_eq!(end["body"]["last"], STEPS as u64, "{end}");
        let steps = end["steps"].as_array().expect("steps");
        assert!(steps.iter().all(|s| s["status"] == "SUCCEEDED"), "{end}");
    }
    for o in 0..OBJECTS {
        assert_eq!(
            seqs(&node, &format!("m{o}")),
            (0..STEPS as u64).collect::<Vec<u64>>(),
            "each step of m{o}'s macro applied once, in order (killed after {at_kill} steps)"
        );
    }
}
