//! Blob stores of Oparaca: where the files of objects live (the paper's
//! unstructured state, DESIGN section 5).
//!
//! - [`BlobStore`] is the port: presigned URLs, head, streaming get and put,
//!   copy, delete and a listing for the collector. Paths are
//!   `<cls>/<oid>/<version>/<key>` ([`BlobPath`]); a version, once written,
//!   is never rewritten with other content, so every file update is a new
//!   path and a commit switches the object's `verIds` (G3).
//! - [`Signer`] makes and checks the node's own HMAC-signed, expiring URLs
//!   (the embedded backend's URLs, relay URLs and the allocation URLs of
//!   tasks).
//! - [`DirStore`] is the embedded default: a directory, served by the
//!   node's storage adapter at signed URLs. [`S3Store`] speaks to any
//!   S3-compatible server with SigV4 presigned URLs. [`Relayed`] makes any
//!   store hand out the node's own URLs, so the bytes pass through the node.
//! - `conformance` (feature) is the suite every backend passes.
//!
//! No HTTP serving here: the adapter crate serves the signed URLs.

mod dir;
mod error;
mod path;
mod relay;
mod s3;
mod sign;
mod store;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use dir::DirStore;
pub use error::{BlobError, BlobErrorKind};
pub use path::{BlobPath, PathError};
pub use relay::Relayed;
pub use s3::{S3Options, S3Store};
pub use sign::{ALLOC_ROUTE, BLOBS_ROUTE, Signer, UrlError, Verified};
pub use store::{BlobMeta, BlobStore, ByteRange, Download, Listed, Method, Upload};
