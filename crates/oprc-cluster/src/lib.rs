//! Cluster membership of Oparaca (ADR 13): several nodes on one shared
//! database partition the work. This crate decides which live node should
//! own each partition (`assign`, rendezvous hashing), how long a node may
//! trust a lease by its own clock (`lease`), what a node must claim,
//! renew and release to get there (`plan`), and runs that as a loop
//! against [`oprc_store::cluster::Membership`] (`member`), publishing the
//! partitions this node holds with their epochs for the invoker to fence
//! its commits with.
//!
//! Layers: `assign`, `lease` and `plan` are pure; `member` is the driver.
//! Safety never rests on this crate's timing: every commit is fenced by
//! its epoch in the database (see `oprc-store-pg`); the timing here only
//! decides when a node stops serving cached reads and when it asks.

pub mod assign;
pub mod lease;
mod member;
pub mod plan;

pub use member::{Held, Member, Settings};
