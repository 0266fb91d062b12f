//! What an object's operations may answer: the sequential specification
//! the history is checked against.

use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    type State: Clone + Eq + Hash;
    type Input;
    type Output;

    fn init(&self) -> Self::State;

    /// The state after `input` answered `output` in `state`; `None` if it
    /// cannot answer that there.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;
}

/// An operation on a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterOp {
    /// Adds to it; answers the value after.
    Add(i64),
    /// Answers the value.
    Read,
}

/// A counter from `start`. Outputs are `Some(value)`, or `None` for an
/// answer that never came (an `Add` may then have applied or not; a
/// `Read` observed nothing).
#[derive(Debug, Clone, Copy, Default)]
pub struct Counter {
    pub start: i64,
}

impl Model for Counter {
    type State = i64;
    type Input = CounterOp;
    type Output = Option<i64>;

    fn init(&self) -> i64 {
        self.start
    }

    fn step(&self, state: &i64, input: &CounterOp, output: &Option<i64>) -> Option<i64> {
        let next = match input {
            CounterOp::Add(d) => state.checked_add(*d)?,
            CounterOp::Read => *state,
        };
        match output {
            Some(v) if *v != next => None,
            _ => Some(next),
        }
    }
}

/// An operation on a register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOp<V> {
    Write(V),
    Read,
}

/// A register holding `V`, first `init`. A write's output is ignored; a
/// read's is `Some(value)`, or `None` if its answer never came.
#[derive(Debug, Clone, Default)]
pub struct Register<V> {
    pub init: V,
}

impl<V: Clone + Eq + Hash> Model for Register<V> {
    type State = V;
    type Input = RegisterOp<V>;
    type Output = Option<V>;

    fn init(&self) -> V {
        self.init.clone()
    }

    fn step(&self, state: &V, input: &RegisterOp<V>, output: &Option<V>) -> Option<V> {
        match input {
            RegisterOp::Write(v) => Some(v.clone()),
            RegisterOp::Read => match output {
                Some(v) if v != state => None,
                _ => Some(state.clone()),
            },
        }
    }
}
