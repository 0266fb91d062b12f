//! The Wing-Gong search with Lowe's memoization. The history becomes a
//! doubly linked list of invocation and return events in time order. The
//! search walks it: an invocation whose operation the model accepts in the
//! current state is *lifted* (its invocation and return taken out of the
//! list: it is placed next in the order) unless that (set of placed
//! operations, state) was seen before; meeting a return means an
//! operation that must already be placed is not, so the last choice is
//! undone. The history is linearizable when the list empties.

use std::collections::HashSet;

use crate::model::Model;

/// One operation of a history. Times are in any monotonic unit; equal
/// times count as concurrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    pub client: u32,
    pub input: I,
    pub output: O,
    pub call: u64,
    /// `None`: it never returned, and its effect is unknown.
    pub ret: Option<u64>,
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order fits. `longest` is the longest order found that fits a
    /// prefix (indices into the history), a hint at where it breaks.
    Violation {
        longest: Vec<usize>,
    },
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// The event list: node 0 is the head; `op[n]` the operation of node `n`,
/// `partner[n]` the return node of an invocation node (`NIL` for a
/// return).
struct List {
    next: Vec<usize>,
    prev: Vec<usize>,
    op: Vec<usize>,
    partner: Vec<usize>,
}

impl List {
    fn new<I, O>(history: &[Operation<I, O>]) -> Self {
        // (time, returns after invocations at the same time, op)
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(history.len() * 2);
        for (i, o) in history.iter().enumerate() {
            events.push((o.call, false, i));
            events.push((o.ret.unwrap_or(u64::MAX).max(o.call), true, i));
        }
        events.sort();
        let n = events.len() + 1;
        let mut list = Self {
            next: vec![NIL; n],
            prev: vec![NIL; n],
            op: vec![NIL; n],
            partner: vec![NIL; n],
        };
        let mut call_node = vec![NIL; history.len()];
        for (k, (_, is_return, i)) in events.into_iter().enumerate() {
            let node = k + 1;
            list.op[node] = i;
            list.prev[node] = k;
            list.next[k] = node;
            if is_return {
                list.partner[call_node[i]] = node;
            } else {
                call_node[i] = node;
            }
        }
        list
    }

    fn is_call(&self, n: usize) -> bool {
        self.partner[n] != NIL
    }

    fn unlink(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = x;
        if x != NIL {
            self.prev[x] = p;
        }
    }

    fn relink(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = n;
        if x != NIL {
            self.prev[x] = n;
        }
    }

    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.partner[call]);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(self.partner[call]);
        self.relink(call);
    }
}

fn flip(bits: &mut [u64], i: usize) {
    bits[i / 64] ^= 1 << (i % 64);
}

/// Checks `history` against `model`.
pub fn check<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> Verdict {
    let mut list = List::new(history);
    let mut bits = vec![0u64; history.len().div_ceil(64)];
    let mut seen: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    let mut state = model.init();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut entry = list.next[HEAD];
    while list.next[HEAD] != NIL {
        if list.is_call(entry) {
            let i = list.op[entry];
            let o = &history[i];
            if let Some(after) = model.step(&state, &o.input, &o.output) {
                flip(&mut bits, i);
                if seen.insert((bits.clone(), after.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, after)));
                    if stack.len() > longest.len() {
                        longest = stack.iter().map(|(n, _)| list.op[*n]).collect();
                    }
                    list.lift(entry);
                    entry = list.next[HEAD];
                    continue;
                }
                flip(&mut bits, i);
            }
            entry = list.next[entry];
        } else {
            let Some((call, before)) = stack.pop() else {
                return Verdict::Violation { longest };
            };
            state = before;
            flip(&mut bits, list.op[call]);
            list.unlift(call);
            entry = list.next[call];
        }
    }
    Verdict::Linearizable
}

#[cfg(test)]
mod tests;
