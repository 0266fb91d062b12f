//! The embedded storage backend: one redb database file in the node's data
//! directory holds objects, packages, invocation records, the async
//! invocation log and the layout the data was written with. It implements
//! [`oprc_store::StateStore`] and [`oprc_store::InvocationLog`].
//!
//! All writes go through one writer thread that groups whatever is waiting
//! into one transaction and one fsync (group commit), then answers every
//! caller; a batch that fails leaves none of its writes in the group
//! (`writer.rs`). How durable a commit is before it returns: log appends,
//! package writes and `Durability::Required` batches always are;
//! `Durability::Default` batches are when [`Options::sync`] is set;
//! `Durability::Deferred` ones become durable with the next flush. Reads
//! run on tokio's blocking pool against a consistent snapshot, never on a
//! runtime thread. Storage errors carry the kind a caller can act on
//! (`error.rs`). This crate knows nothing about invocations beyond storing
//! them.

mod apply;
mod db;
mod error;
mod log;
mod state;
mod writer;

use std::path::PathBuf;

pub use db::{Stats, Store};

/// Options of the embedded store.
#[derive(Debug, Clone)]
pub struct Options {
    /// Database file (created with its parent directory when missing).
    pub path: PathBuf,
    /// At most this many queued writes go into one transaction.
    pub max_batch: usize,
    /// `false`: write-behind: batches of `Durability::Default` return
    /// before they are on disk, and are made durable together every
    /// `flush_interval`; a crash may lose the writes of that last interval.
    /// Log appends, package writes and `Durability::Required` batches are
    /// durable before they return either way.
    pub sync: bool,
    /// How often write-behind commits (of `Durability::Deferred` batches,
    /// and of `Default` ones when `sync` is false) are made durable.
    pub flush_interval: std::time::Duration,
    /// How long append dedup ids are remembered, milliseconds.
    pub dedup_window_ms: i64,
}

impl Options {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_batch: 512,
            sync: true,
            flush_interval: std::time::Duration::from_millis(100),
            dedup_window_ms: 24 * 3600 * 1000,
        }
    }
}
