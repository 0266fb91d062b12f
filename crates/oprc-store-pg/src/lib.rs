//! The PostgreSQL state store: objects, packages, invocation records with
//! their idempotency keys, and the layout the data was written with, in
//! one shared database, so that several nodes can use the same state. It
//! implements [`oprc_store::StateStore`] and passes the same conformance
//! suite as the embedded store. It is not an invocation log, knows nothing
//! about invocations beyond storing them, and never writes the database
//! URL's password into an error or a log line ([`redact_url`]).
//!
//! Layers: `sql.rs` (the statements; tables in `migrations/`, applied at
//! connect by sqlx's migrator, and a database migrated by a newer version
//! is refused), `plan.rs` (a batch turned into the rows of set-based
//! statements, no IO), `group.rs` (the batches of a group merged into as
//! few statements as they allow, no IO), `error.rs` (sqlx errors mapped to
//! the [`oprc_store::ErrorKind`]s callers decide on), `writer.rs` (group
//! commit: concurrent batches in one transaction of set-based statements,
//! a conflicting batch failing alone, and how each
//! [`oprc_store::Durability`] maps onto `synchronous_commit`),
//! `store.rs` (the pool, migrations, reads and the trait), `membership.rs`
//! (cluster members and partition ownership with epochs, ADR 13, whose
//! fences the writer checks in each commit).

mod commit;
mod error;
mod group;
mod membership;
mod plan;
mod sql;
mod store;
mod writer;

use std::time::Duration;

pub use error::redact_url;
pub use store::{PgStore, Stats};

/// Options of the PostgreSQL store (the URL is passed beside them).
#[derive(Debug, Clone)]
pub struct Options {
    /// Connections in the pool (the writer uses one at a time, reads the
    /// rest).
    pub max_connections: u32,
    /// How long a caller waits for a free connection before the store
    /// answers `Unavailable`.
    pub acquire_timeout: Duration,
    /// The server cancels a statement running longer (`Timeout`); zero
    /// leaves the server's setting.
    pub statement_timeout: Duration,
    /// At most this many batches go into one transaction.
    pub max_batch: usize,
    /// `false`: write-behind: `Durability::Default` batches return before
    /// their WAL is flushed (see `writer.rs`). `Required` ones are durable
    /// before they return either way.
    pub sync: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            max_batch: 64,
            sync: true,
        }
    }
}
