//! FaaS engines: run task functions and call them.
//!
//! The engine takes opaque task bytes (the JSON task of the function
//! protocol) for a [`FunctionKey`], POSTs them to the function and returns
//! the bytes of its HTTP 200 answer, or an [`InvokeError`] whose kind a
//! caller can act on. Two engines sit behind one [`Handle`]:
//!
//! - [`Deployment::Http`]: an existing endpoint (`config.staticUrl`,
//!   `provision.http.url`), called through a pooled keep-alive client;
//! - [`Deployment::Process`]: local worker processes started from a command
//!   with `PORT` and `OPRC_SOCKET` set, scaled between `min_instances` and
//!   `max_instances` on load and down to `min_instances` (zero included)
//!   when idle. The [`Service`] owns the supervisor loop and every worker; at
//!   shutdown it stops and reaps them all.
//!
//! A task reaches only its worker: a worker that listens on `OPRC_SOCKET`
//! (a Unix socket in a private directory of the engine) is called there; a
//! worker that binds `PORT` itself is called there only after `/proc` shows
//! that the listener belongs to the worker's process group: every listener
//! that could take the connection, when it becomes ready, and that the group
//! still holds it, on every new connection (Linux; elsewhere a TCP listener
//! is not checked). Deployments carry a revision, and a call can
//! require it (`Handle::invoke`), so it never runs on another version than
//! the one it was planned for.
//!
//! What this crate must not do: know about packages, classes, objects or
//! storage; parse or build tasks and completions (bytes in, bytes out); retry
//! a call that may have reached the function (only a failed connect, which
//! sent nothing, is retried once). Deciding what a failure means for an
//! invocation is the invoker's job.
//!
//! [`FunctionKey`]: oprc_core::FunctionKey

mod client;
#[cfg(test)]
mod client_cost;
mod connector;
mod deployment;
mod error;
mod options;
mod pool;
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod procfs;
mod ready;
mod service;
mod socket_dir;
mod status;
mod worker;

pub use deployment::{Deployment, ProcessSpec};
pub use error::{Error, InvokeError};
pub use options::{Options, WorkerOutput};
pub use service::{Handle, Service};
pub use status::{Counters, DeploymentStatus, EngineKind, InstanceState, InstanceStatus, Status};
