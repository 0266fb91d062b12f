//! Vocabulary of Oparaca: the ids, the object model, invocation records and
//! the task/completion protocol spoken with functions.
//!
//! Every other crate speaks in these types. This crate does no IO, spawns
//! nothing and knows nothing about storage, HTTP servers or packages: it is
//! plain data with serde shapes that match the original Oparaca JSON.

mod id;
mod invocation;
mod object;
pub mod shell;
mod task;

pub use id::{ClassKey, FunctionKey, IdError, InvocationId, ObjectId, PartitionId};
pub use invocation::{
    Caller, Chain, InvocationError, InvocationRecord, InvocationRequest, InvocationResponse,
    InvocationStats, InvocationStatus, ObjectRef, StepReport,
};
pub use object::{ObjectMeta, ObjectRecord};
pub use task::{Completion, CompletionError, ObjectUpdate, Task};
