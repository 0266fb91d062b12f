//! The invoker: where calls run and state changes are decided.
//!
//! For each call it asks the [`Router`] where it runs, resolves the binding
//! from the catalog, checks access as the caller (G7), and admits it within
//! the node's bounds. Then the call runs to its end detached from its
//! caller (G10): mutating calls go into the object's FIFO inbox (G1), where
//! one worker at a time loads the state, runs the call, applies the
//! completion (pure, in `apply`) and commits everything in one batch with a
//! compare-and-swap on the revision (G2, G9); other calls run concurrently.
//! Async calls are appended to the invocation log and applied by
//! per-partition consumers, exactly once in effect (G5), retried through
//! storage failures and never skipped. Macro calls hold no inbox: their
//! orchestrator (`flow_run`) sends each step, as a call of its own, to its
//! target object, every ready step at once.
//!
//! Layers, each depending only on those above it:
//! - types: `types` (object key, call kind, call), `error`;
//! - pure logic: `plan`, `apply`, `builtin`, `step` (a call's batch),
//!   `merge`, `retry` (what a storage failure means), `pipeline` (one
//!   object's calls as a state machine), `calls` (call tokens and chains),
//!   `flow` (a macro call's steps: targets, ids, inputs, answer);
//! - ports: `ports` (the function engine), `router`, and the `oprc-store`
//!   traits;
//! - drivers: `cache`, `keys`, `inbox`, `context`, `exec`, `answer`,
//!   `worker`, `direct`, `detach`, `dispatch`, `consumer`, `flow_run`
//!   (the macro orchestrator), `handle`, `service`.
//!
//! What it must not do: speak HTTP to clients (that is the ingress), know a
//! storage or engine backend (it sees only the ports), or hold any lock
//! across a function call.

mod answer;
mod apply;
mod builtin;
mod cache;
mod calls;
mod consumer;
mod context;
mod detach;
mod direct;
mod dispatch;
mod error;
mod exec;
mod file_calls;
mod files;
mod flow;
mod flow_run;
mod handle;
mod handle_files;
mod inbox;
mod keys;
mod merge;
mod metrics;
mod pipeline;
mod plan;
mod ports;
mod retry;
mod router;
mod service;
mod step;
mod types;
mod worker;

use std::time::Duration;

pub use calls::{Calls, Grant, TOKEN_PREFIX, TokenError};
pub use error::{Error, codes};
pub use files::Files;
pub use flow::{RESERVED_KEY_PREFIX, call_key};
pub use handle::{Handle, Stats};
pub use metrics::Metrics;
pub use ports::{CallError, FunctionEngine};
pub use router::{LocalRouter, Route, Router, Target};
pub use service::{Invoker, Parts};

/// Options of the invoker.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of partitions of the object space (and of the async log).
    pub partitions: u16,
    /// How long invocation records (results of async calls, idempotency
    /// keys) are kept.
    pub retention: Duration,
    /// How often expired records are purged.
    pub purge_interval: Duration,
    /// Async calls running at once per partition.
    pub async_in_flight: usize,
    /// How often the async consumers commit their log position.
    pub position_flush: Duration,
    /// At shutdown, how long running calls may take to finish.
    pub drain_timeout: Duration,
    /// Bytes of objects kept in memory for reads (0: no cache).
    pub object_cache_bytes: u64,
    /// Calls queued on one object; a waiting caller beyond gets `429`.
    pub max_queued_per_object: usize,
    /// Calls of waiting callers admitted at once on this node (queued or
    /// running); beyond, `429`.
    pub max_in_flight: usize,
    /// Longest chain of calls between objects (functions calling through
    /// the node, macro steps, nested macros) from one client call.
    pub max_chain_depth: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            partitions: 16,
            retention: Duration::from_secs(24 * 3600),
            purge_interval: Duration::from_secs(60),
            async_in_flight: 256,
            position_flush: Duration::from_millis(100),
            drain_timeout: Duration::from_secs(30),
            object_cache_bytes: 256 * 1024 * 1024,
            max_queued_per_object: 1024,
            max_in_flight: 16_384,
            max_chain_depth: 32,
        }
    }
}
