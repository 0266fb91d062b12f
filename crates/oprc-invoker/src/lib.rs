//! The invoker: where calls run and state changes are decided.
//!
//! For each call it resolves the binding from the catalog, checks access
//! (G7), and then: mutating calls go into the object's FIFO inbox (G1) where
//! one worker at a time loads the state, builds the task, offloads it to the
//! FaaS engine, applies the completion (pure, in [`apply`]) and commits
//! everything in one batch with a compare-and-swap on the revision (G2, G9);
//! reads and immutable calls run concurrently. Async calls are appended to
//! the invocation log and applied by per-partition consumers, exactly once
//! in effect (G5).
//!
//! What it must not do: speak HTTP to clients (that is the ingress), know a
//! storage backend (it sees only the `oprc-store` traits), or hold any lock
//! across a function call.

mod apply;
mod builtin;
mod cache;
mod consumer;
mod error;
mod exec;
mod inbox;
mod invoker;
mod metrics;
mod mutate;
mod pipeline;
mod plan;

use std::time::Duration;

pub use error::{Error, codes};
pub use invoker::{Handle, Invoker};
pub use metrics::Metrics;
pub use plan::Caller;

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
    /// Objects kept in memory for reads (0: no cache).
    pub object_cache: usize,
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
            object_cache: 65_536,
        }
    }
}
