//! The routing seam between callers and the invoker: which node runs a
//! call. Every call path asks it, the ingress's and (later) the calls of
//! macros and functions. A single node answers "here" for everything; the
//! cluster fills in owners, and forwards what is not local.

use oprc_core::{ClassKey, InvocationId, ObjectId, PartitionId};

/// Where a call runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// On this node.
    Local,
}

/// What a call is routed by.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub cls: &'a ClassKey,
    /// The main object; class-level calls have none.
    pub oid: Option<&'a ObjectId>,
    pub inv_id: &'a InvocationId,
    /// Partitions of the object space.
    pub partitions: u16,
}

impl Target<'_> {
    /// The partition of the object (of the invocation, for class-level
    /// calls, so they spread), hashed only when a router asks.
    pub fn partition(&self) -> PartitionId {
        match self.oid {
            Some(oid) => PartitionId::of(self.cls, oid, self.partitions),
            None => PartitionId::of(
                self.cls,
                &ObjectId::new(self.inv_id.as_str()).expect("invocation ids are valid object ids"),
                self.partitions,
            ),
        }
    }
}

/// Decides where calls run.
pub trait Router: Send + Sync + 'static {
    fn route(&self, target: Target<'_>) -> Route;
}

/// A single node: everything runs here.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalRouter;

impl Router for LocalRouter {
    fn route(&self, _target: Target<'_>) -> Route {
        Route::Local
    }
}
