use proptest::prelude::*;

use super::*;
use crate::model::{Counter, CounterOp, Register, RegisterOp};

type Op = Operation<CounterOp, Option<i64>>;

fn op(client: u32, input: CounterOp, output: Option<i64>, call: u64, ret: Option<u64>) -> Op {
    Operation {
        client,
        input,
        output,
        call,
        ret,
    }
}

fn add(client: u32, out: i64, call: u64, ret: u64) -> Op {
    op(client, CounterOp::Add(1), Some(out), call, Some(ret))
}

fn read(client: u32, out: i64, call: u64, ret: u64) -> Op {
    op(client, CounterOp::Read, Some(out), call, Some(ret))
}

fn ok(history: &[Op]) -> bool {
    check(&Counter::default(), history) == Verdict::Linearizable
}

#[test]
fn a_sequential_history_is_linearizable_and_a_wrong_answer_is_not() {
    assert!(ok(&[add(0, 1, 0, 1), add(0, 2, 2, 3), read(1, 2, 4, 5)]));
    assert!(!ok(&[add(0, 1, 0, 1), add(0, 3, 2, 3)]));
    assert!(ok(&[]));
}

#[test]
fn overlapping_operations_may_take_effect_in_either_order() {
    // Both in flight together: the one invoked later may apply first.
    assert!(ok(&[add(0, 2, 0, 10), add(1, 1, 1, 5)]));
    // A read overlapping an add sees it or not.
    assert!(ok(&[add(0, 1, 0, 10), read(1, 0, 1, 2)]));
    assert!(ok(&[add(0, 1, 0, 10), read(1, 1, 1, 2)]));
    // Equal times count as overlapping.
    assert!(ok(&[add(0, 1, 0, 5), read(1, 0, 5, 6)]));
}

#[test]
fn a_lost_update_and_a_stale_read_are_violations() {
    // Two increments one after the other both answer 1.
    let lost = [add(0, 1, 0, 1), add(1, 1, 2, 3)];
    assert!(!ok(&lost));
    // A read invoked after an acknowledged increment misses it.
    let stale = [add(0, 1, 0, 1), read(1, 0, 2, 3)];
    assert!(!ok(&stale));
    // A read goes back in time.
    let back = [add(0, 1, 0, 10), read(1, 1, 1, 2), read(1, 0, 3, 4)];
    match check(&Counter::default(), &back) {
        Verdict::Violation { longest } => assert!(longest.len() >= 2, "{longest:?}"),
        Verdict::Linearizable => panic!("a read went back in time"),
    }
}

#[test]
fn an_operation_that_never_returned_applied_or_not_but_once() {
    let cut = op(0, CounterOp::Add(1), None, 0, None);
    assert!(ok(&[cut.clone(), read(1, 1, 5, 6)]), "applied");
    assert!(ok(&[cut.clone(), read(1, 0, 5, 6)]), "not yet, or never");
    assert!(ok(&[cut.clone(), read(1, 0, 5, 6), read(1, 1, 7, 8)]));
    assert!(!ok(&[cut.clone(), read(1, 1, 5, 6), read(1, 0, 7, 8)]));
    assert!(!ok(&[cut, read(1, 2, 5, 6)]), "not twice");
    // It cannot take effect before it was invoked.
    let late = op(0, CounterOp::Add(1), None, 10, None);
    assert!(!ok(&[read(1, 1, 0, 5), late]));
}

#[test]
fn a_register_read_must_see_the_last_write() {
    let w = |c, v: &str, call, ret| Operation {
        client: c,
        input: RegisterOp::Write(v.to_owned()),
        output: None,
        call,
        ret: Some(ret),
    };
    let r = |c, v: &str, call, ret| Operation {
        client: c,
        input: RegisterOp::Read,
        output: Some(v.to_owned()),
        call,
        ret: Some(ret),
    };
    let m = Register {
        init: String::new(),
    };
    let good = [
        w(0, "a", 0, 1),
        w(1, "b", 2, 10),
        r(2, "a", 3, 4),
        r(2, "b", 11, 12),
    ];
    assert_eq!(check(&m, &good), Verdict::Linearizable);
    let bad = [w(0, "a", 0, 1), r(2, "z", 3, 4)];
    assert!(matches!(check(&m, &bad), Verdict::Violation { .. }));
}

/// A history made by a real atomic counter: each client runs operations
/// one after another; each takes effect at a random instant between its
/// invocation and its return (or, cut off, after its invocation or
/// never), and answers what the counter held then.
fn simulated(plan: &[(u32, bool, u64, u64, u64, bool)]) -> Vec<Op> {
    let mut clock = [0u64; 8];
    let mut ops: Vec<(Op, Option<u64>)> = Vec::new();
    for &(client, is_add, gap, len, at, cut) in plan {
        let c = (client % 8) as usize;
        let call = clock[c] + gap;
        let ret = call + len;
        clock[c] = ret + 1;
        let point = call + at % (len + 1);
        let input = if is_add {
            CounterOp::Add(1)
        } else {
            CounterOp::Read
        };
        let effect = if cut && at % 3 == 0 {
            None
        } else {
            Some(point)
        };
        let ret = (!cut).then_some(ret);
        ops.push((op(client % 8, input, None, call, ret), effect));
    }
    let mut order: Vec<usize> = (0..ops.len()).filter(|i| ops[*i].1.is_some()).collect();
    order.sort_by_key(|i| (ops[*i].1, *i));
    let mut value = 0;
    for i in order {
        if ops[i].0.input == CounterOp::Add(1) {
            value += 1;
        }
        if ops[i].0.ret.is_some() {
            ops[i].0.output = Some(value);
        }
    }
    ops.into_iter().map(|(o, _)| o).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn histories_of_a_real_counter_are_linearizable(
        plan in proptest::collection::vec(
            (0u32..8, any::<bool>(), 0u64..5, 0u64..20, any::<u64>(), proptest::bool::weighted(0.1)),
            0..60,
        )
    ) {
        let history = simulated(&plan);
        prop_assert_eq!(check(&Counter::default(), &history), Verdict::Linearizable);
    }

    #[test]
    fn a_completed_increment_answered_twice_is_caught(
        plan in proptest::collection::vec(
            (0u32..8, Just(true), 0u64..5, 0u64..20, any::<u64>(), Just(false)),
            2..40,
        )
    ) {
        // Every increment completes; make the last one to return answer
        // the same as one that returned before the last was invoked.
        let mut history = simulated(&plan);
        let last = (0..history.len()).max_by_key(|i| history[*i].ret).unwrap();
        let call = history[last].call;
        if let Some(before) = (0..history.len()).find(|i| history[*i].ret.unwrap() < call) {
            history[last].output = history[before].output;
            let caught = matches!(check(&Counter::default(), &history), Verdict::Violation { .. });
            prop_assert!(caught, "a duplicate answer passed");
        }
    }
}

#[test]
fn a_long_history_of_many_clients_is_checked() {
    // 64 clients, 30 increments each, overlapping heavily.
    let mut plan = Vec::new();
    for k in 0..(64 * 30u64) {
        plan.push((
            (k % 64) as u32,
            true,
            k % 3,
            40 + k % 7,
            k.wrapping_mul(2_654_435_761),
            false,
        ));
    }
    let history = simulated(&plan);
    assert_eq!(check(&Counter::default(), &history), Verdict::Linearizable);
}
