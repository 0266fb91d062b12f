//! The cluster's port to its shared database (ADR 13): members with leases,
//! and partition ownership with epochs. Every duration is measured by the
//! database's clock, the one clock all nodes compare with; a node's own
//! clock only ever times how long ago it asked.

use std::time::Duration;

use async_trait::async_trait;

use crate::Result;

/// A live member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub node: String,
    /// The URL other nodes forward to.
    pub advertise: String,
    /// What is left of its lease.
    pub lease_left: Duration,
}

/// A partition's ownership record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    pub partition: u16,
    /// `None`: released (the next claim needs no wait).
    pub owner: Option<String>,
    /// Incremented by every claim; commits carry it ([`crate::Fence`]).
    pub epoch: u64,
    /// What is left of the owner's lease; zero once it has lapsed.
    pub lease_left: Duration,
}

impl Ownership {
    /// Whether `node` holds it now, by the database's clock.
    pub fn held_by(&self, node: &str) -> bool {
        self.owner.as_deref() == Some(node) && !self.lease_left.is_zero()
    }
}

/// Membership and ownership, kept in the shared database.
#[async_trait]
pub trait Membership: Send + Sync {
    /// Registers `node` or renews its lease, and answers the live members,
    /// `node` among them, ordered by id.
    async fn heartbeat(&self, node: &str, advertise: &str, lease: Duration) -> Result<Vec<Member>>;

    /// Removes `node` and releases every partition it owns (a graceful
    /// leave: the others may claim them at once).
    async fn leave(&self, node: &str) -> Result<()>;

    /// The ownership of every partition ever claimed, ordered.
    async fn ownership(&self) -> Result<Vec<Ownership>>;

    /// Claims `partition` for `node` if it has no owner or its owner's
    /// lease has lapsed, with a new epoch; `None` while another owner's
    /// lease runs (or `node`'s own, claimed before).
    async fn claim(&self, partition: u16, node: &str, lease: Duration)
    -> Result<Option<Ownership>>;

    /// Renews the leases of the partitions `node` holds at these epochs,
    /// lapsed or not (the epoch proves nobody took them meanwhile), and
    /// answers the ones renewed.
    async fn renew(
        &self,
        node: &str,
        held: &[(u16, u64)],
        lease: Duration,
    ) -> Result<Vec<Ownership>>;

    /// Gives `partition` up if `node` still holds it at `epoch`.
    async fn release(&self, partition: u16, node: &str, epoch: u64) -> Result<bool>;
}
