//! Storage traits of Oparaca: [`StateStore`] (objects, packages, invocation
//! records), [`InvocationLog`] (the durable async-call log) and
//! [`cluster::Membership`] (members and partition ownership), the storage
//! [`Error`] with its [`ErrorKind`], and the conformance suite (feature
//! `conformance`) that every backend runs in its own tests.
//!
//! This crate depends on no backend; backends depend on it. Callers decide on
//! retries from [`ErrorKind`], never from a backend's message.

pub mod cluster;
mod error;
pub mod intercept;
mod log;
mod state;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{Error, ErrorKind, Result};
pub use log::{Appended, InvocationLog, LogEntry};
pub use state::{Durability, Fence, Layout, ObjectPage, StateStore, Write, WriteBatch};
