//! The membership loop of one node: every third of the lease it renews its
//! member lease, reads the partitions' ownership, renews what it holds and
//! should keep, releases what another member should own, and claims what
//! it should own that is free or lapsed (`plan`). What it holds is
//! published with the epoch and the local instant until which the lease
//! may be trusted (`lease`); past that instant the partition counts as not
//! held, whatever the database says later.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oprc_store::cluster::{self, Membership};
use oprc_store::{Fence, Result};
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use crate::lease::Trust;
use crate::plan::steps;

/// Who this node is and how it keeps its leases.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Unique per process: a restarted node is a new member.
    pub node: String,
    /// The URL other nodes forward to.
    pub advertise: String,
    pub partitions: u16,
    /// Member and partition leases (default 10 s).
    pub lease: Duration,
    pub trust: Trust,
}

/// A partition this node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub epoch: u64,
    /// Trusted until then (local monotonic clock).
    pub until: Instant,
}

#[derive(Default)]
struct View {
    members: Vec<cluster::Member>,
    held: BTreeMap<u16, Held>,
}

/// One node's membership.
pub struct Member {
    store: Arc<dyn Membership>,
    settings: Settings,
    view: RwLock<View>,
}

impl Member {
    pub fn new(store: Arc<dyn Membership>, settings: Settings) -> Self {
        Self {
            store,
            settings,
            view: RwLock::default(),
        }
    }

    pub fn node(&self) -> &str {
        &self.settings.node
    }

    /// The fence to commit `partition`'s batches with, while this node
    /// holds it and may trust its lease; `None` otherwise.
    pub fn fence(&self, partition: u16) -> Option<Fence> {
        let view = self.view.read();
        let held = view.held.get(&partition)?;
        (Instant::now() < held.until).then_some(Fence {
            partition,
            epoch: held.epoch,
        })
    }

    /// The partitions held and trusted now.
    pub fn held(&self) -> BTreeMap<u16, Held> {
        let now = Instant::now();
        let view = self.view.read();
        view.held
            .iter()
            .filter(|(_, h)| now < h.until)
            .map(|(p, h)| (*p, *h))
            .collect()
    }

    /// The live members as of the last round.
    pub fn members(&self) -> Vec<cluster::Member> {
        self.view.read().members.clone()
    }

    /// One round (see the module doc). A failed step leaves the rest to
    /// the next round; what could not be renewed stops being trusted when
    /// its local deadline passes.
    pub async fn tick(&self) -> Result<()> {
        let s = &self.settings;
        let members = self.store.heartbeat(&s.node, &s.advertise, s.lease).await?;
        let ownership = self.store.ownership().await?;
        let ids: Vec<&str> = members.iter().map(|m| m.node.as_str()).collect();
        let plan = steps(&s.node, &ids, s.partitions, &ownership);
        let mut held: BTreeMap<u16, Held> = BTreeMap::new();
        let mut keep = |o: &cluster::Ownership, asked: Instant| {
            if let Some(until) = s.trust.until(asked, o.lease_left) {
                held.insert(
                    o.partition,
                    Held {
                        epoch: o.epoch,
                        until,
                    },
                );
            }
        };
        // Released first: they stop being held before the database says so.
        for (p, epoch) in &plan.release {
            self.view.write().held.remove(p);
            if let Err(e) = self.store.release(*p, &s.node, *epoch).await {
                tracing::warn!(partition = p, error = %e, "releasing a partition failed; its lease will lapse");
            }
        }
        if !plan.renew.is_empty() {
            let asked = Instant::now();
            for o in self.store.renew(&s.node, &plan.renew, s.lease).await? {
                keep(&o, asked);
            }
        }
        for p in &plan.claim {
            let asked = Instant::now();
            match self.store.claim(*p, &s.node, s.lease).await {
                Ok(Some(o)) => {
                    tracing::info!(partition = p, epoch = o.epoch, "claimed a partition");
                    keep(&o, asked);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(partition = p, error = %e, "claiming a partition failed"),
            }
        }
        let mut view = self.view.write();
        view.members = members;
        view.held = held;
        Ok(())
    }

    /// Rounds every third of the lease until `cancel`, then leaves (its
    /// partitions released for the others to claim at once).
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let every = self.settings.lease / 3;
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "cluster membership round failed");
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
        }
        self.view.write().held.clear();
        if let Err(e) = self.store.leave(&self.settings.node).await {
            tracing::warn!(error = %e, "leaving the cluster failed; its leases will lapse");
        }
    }
}
