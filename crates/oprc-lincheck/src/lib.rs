//! A linearizability checker for the histories that Oparaca's fault tests
//! record: per object, the operations of concurrent clients with the time
//! each was invoked and the time it returned (or never, for a client that
//! was cut off: its effect is unknown). A history is linearizable if its
//! operations can be put in one order that respects real time (an
//! operation that returned before another was invoked comes first) and in
//! which every answer is the one the model gives.
//!
//! The search is the Wing-Gong algorithm with Lowe's memoization of
//! (linearized set, state) pairs, as Porcupine and Knossos implement it
//! (`search`). Models say what a legal answer is (`model`: a counter and a
//! register). An operation that never returned may take effect at any
//! point after its invocation, or not at all.

pub mod model;
mod search;

pub use search::{Operation, Verdict, check};
