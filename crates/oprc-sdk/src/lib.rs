//! Rust function SDK for Oparaca: write task functions as plain closures
//! and serve them over the platform's task/completion HTTP protocol.
//!
//! The platform POSTs a [`Task`] (the object's state,
//! arguments, request body, presigned file URLs) to the function and takes
//! back a [`Completion`]. A handler gets a
//! [`Context`], reads and changes the objects in it, and returns the body of
//! the answer; the SDK sends back only the objects that were changed.
//! Returning an error (or panicking) answers `success: false`, which makes
//! the platform discard every change.
//!
//! This crate is used by function code, not by the platform: it depends on
//! nothing but `oprc-core` (for the wire types), an HTTP server and an HTTP
//! client (for the presigned file URLs of a task and its calls through the
//! node), holds no credentials (only the task's own call token, which
//! expires with the task) and does no storage IO.
//!
//! # Example
//!
//! ```no_run
//! use oprc_sdk::{App, Context, TaskError};
//! use serde_json::{Value, json};
//!
//! fn increment(ctx: &mut Context) -> Result<Option<Value>, TaskError> {
//!     let by: i64 = ctx.parse_arg("by", 1)?;
//!     let main = ctx.main_mut()?;
//!     let count = main.get("count").and_then(Value::as_i64).unwrap_or(0) + by;
//!     main.set("count", count); // a mutable access marks main as changed
//!     Ok(Some(json!({ "count": count }))) // becomes the completion's `body`
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     App::new()
//!         .function("increment", increment)
//!         .function("get", |ctx: &mut Context| {
//!             Ok(ctx.main()?.get("count").cloned()) // read only: main not sent back
//!         })
//!         .run_blocking() // OPRC_SOCKET, else env PORT (default 8080)
//! }
//! ```
//!
//! # Where it listens
//! [`App::run`] listens on the Unix socket named by `OPRC_SOCKET` when the
//! node's process engine sets it (in a directory only the node's user can
//! enter, so tasks reach this worker and no other process), else on
//! `HOST:PORT`.
//!
//! # Protocol details
//! - `POST` on any path runs a task; `GET /healthz` and `GET /readyz` answer
//!   200. A body that is not a task answers 400 with
//!   `{"success": false, "errorMsg": "malformed task: ..."}`.
//! - Handlers are found by `funcKey`, then its function part, then `fbName`
//!   (see [`App`]). An unknown function is a `success: false` completion.
//! - A changed object is sent whole (`main.data` replaces the data); file
//!   keys reported with [`Object::mark_key_updated`] go in `updatedKeys`.
//!
//! # Files
//! A task carries presigned URLs for its objects' files (`mainGetKeys`,
//! `mainPutKeys`, `outputKeys`); [`Object`] streams through them:
//! [`open_file`](Object::open_file) (a [`FileStream`] of chunks),
//! [`read_file`](Object::read_file), [`download_file`](Object::download_file)
//! (to a temporary file beside the destination, renamed when complete),
//! [`write_file`](Object::write_file) (a [`Body`] of known length, sent as
//! `Content-Length`) and [`upload_file`](Object::upload_file) (a local
//! file, streamed). A write records its key in `updatedKeys` only once the
//! PUT succeeded. Files of referenced objects are `REF.KEY`. These are
//! async: use them from [`App::async_function`] handlers (a sync handler
//! can `tokio::runtime::Handle::current().block_on(..)` them, since it runs
//! on Tokio's blocking pool). URLs are `http://` only: this build has no
//! TLS.
//!
//! ```no_run
//! use oprc_sdk::{App, Context};
//!
//! let app = App::new().async_function("upper", |mut ctx: Context| async move {
//!     let text = ctx.main()?.read_file("in").await?;
//!     let upper = text.to_ascii_uppercase();
//!     let len = upper.len() as u64;
//!     ctx.main_mut()?.write_file("out", upper, len).await?;
//!     Ok(ctx.reply(None))
//! });
//! ```
//!
//! # Calling other objects
//! A task carries the node's `callUrl` and a `callToken` scoped to it;
//! [`Context::invoke`] makes a [`Call`] through them and answers the
//! invocation JSON (`{invId, status, body?, ...}`), or a [`CallError`]
//! (a failed, refused or unanswered call; `?` turns it into a
//! [`TaskError`]). Each call of a task gets the idempotency key
//! `{task id}/{n}`, so a replayed task does not repeat a call's effects:
//! make calls in a deterministic order.
//!
//! ```no_run
//! use oprc_sdk::{App, Call, Context};
//! use serde_json::json;
//!
//! let app = App::new().async_function("tally", |ctx: Context| async move {
//!     let inc = Call::object("example.counter", "c1", "increment").arg("by", 2);
//!     let done = ctx.invoke(inc).await?; // {"invId", "status": "SUCCEEDED", "body", ...}
//!     let new = Call::class("example.counter", "new").body(json!({"data": {"count": 0}}));
//!     let made = ctx.invoke(new).await?; // the new object is its `output`
//!     let body = json!({"count": done["body"]["count"], "new": made["output"]["_meta"]["id"]});
//!     Ok(ctx.reply(Some(body)))
//! });
//! ```

mod app;
mod calls;
mod context;
mod error;
mod files;
mod server;

pub use app::{App, DEFAULT_BODY_LIMIT};
pub use calls::{Call, CallError, DEFAULT_CALL_TIMEOUT};
pub use context::{Context, Object, Reply};
pub use error::TaskError;
pub use files::FileStream;
pub use oprc_core::{Completion, ObjectRecord, ObjectUpdate, Task};
/// The body of [`Object::write_file`] (reqwest's).
pub use reqwest::Body;
