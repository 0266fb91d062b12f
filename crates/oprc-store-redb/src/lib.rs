//! The embedded storage backend: one redb database file in the node's data
//! directory holds objects, packages, invocation records and the async
//! invocation log. It implements [`oprc_store::StateStore`] and
//! [`oprc_store::InvocationLog`].
//!
//! All writes go through one writer thread that groups whatever is waiting
//! into one transaction and one fsync (group commit), then answers every
//! caller. Reads run on the caller's task against a consistent snapshot.
//! This crate knows nothing about invocations beyond storing them.

mod db;
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
    /// `false`: write-behind: commits return before they are on disk, and
    /// are made durable together every `flush_interval`; a crash may lose
    /// the writes of that last interval.
    pub sync: bool,
    /// How often write-behind commits (all of them when `sync` is false,
    /// else those of batches marked `write_behind`) are made durable.
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
