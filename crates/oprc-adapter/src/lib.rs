//! The storage adapter of a node (the paper's storage adapter, IV-D-2):
//! the HTTP side of files that is not the API.
//!
//! - `/blobs/<cls>/<oid>/<version>/<key>`: GET (with `Range`, `ETag`,
//!   `If-None-Match`), HEAD and PUT at the node's signed URLs. The embedded
//!   backend's files and, in relay mode, every backend's files are served
//!   here, streamed from or into the [`BlobStore`].
//! - `/alloc/<cls>/<oid>/<version>`: the allocation endpoints of tasks
//!   (GET: `{key: putUrl}` for every key the URL names; POST a JSON list of
//!   keys: those).
//! - [`transfer`]: streaming a download into a response and a request body
//!   into the store, for these routes and the API's relay routes.
//! - [`collector`]: deletes versions no object holds any more.
//!
//! The signature in the URL is the only credential these routes take: no
//! API token, no `Host` or cross-site checks.

pub mod collector;
mod routes;
pub mod transfer;

use std::sync::Arc;
use std::time::Duration;

use oprc_blob::{BlobStore, Signer};

pub use routes::router;

/// What the adapter serves.
#[derive(Clone)]
pub struct Adapter {
    pub store: Arc<dyn BlobStore>,
    pub signer: Signer,
    /// Lifetime of the PUT URLs an allocation answers.
    pub url_ttl: Duration,
    /// Largest file accepted, in bytes (413 above).
    pub max_file_bytes: u64,
}

/// Default largest file: 5 GiB, the largest single S3 put.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 5 * 1024 * 1024 * 1024;
