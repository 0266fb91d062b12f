//! Archives of a deployment's data: [`export`] writes the packages, the
//! objects and the file versions the objects hold into a directory;
//! [`import`] loads such a directory into empty stores. Both speak only to
//! the [`StateStore`](oprc_store::StateStore) and
//! [`BlobStore`](oprc_blob::BlobStore) traits, so data moves between any
//! two backends (embedded redb and directory files, PostgreSQL, S3), and
//! an export is also a backup.
//!
//! # Format (version 1)
//! An archive is a directory:
//!
//! - `manifest.json`, written last (so an export without one did not
//!   finish): `{"format": 1, "exportedAt": "2025-01-31T12:00:00Z",
//!   "oprcVersion": "0.1.0", "blobStore": "dir", "counts": {"packages": 2,
//!   "objects": 1200, "files": 30, "bytes": 123456}}`. `blobStore` is the
//!   [`name`](oprc_blob::BlobStore::name) of the store the files came from
//!   (`dir` or `s3`); `files` and `bytes` count the versions in `blobs/`.
//!   Fields it does not know are ignored; another `format` is refused.
//! - `packages.jsonl`: one `{"name": ..., "source": ...}` per line, the
//!   source text as it was stored.
//! - `objects.jsonl`: one object record per line, in the platform's own
//!   JSON form (`{"_meta": {...}, "data": ...}`, as the API shows it), as
//!   stored (`lastOffset` included). The objects of a class are on
//!   consecutive lines, in id order (byte order), which is how the stores
//!   list them; import checks this, so that no object appears twice.
//! - `blobs/<cls>/<oid>/<version>/<key>`: the bytes of each file version
//!   some object's `verIds` names, at its blob path; nothing else.
//!
//! Every line of a `.jsonl` file ends with a line end (a last line without
//! one is a truncated archive).
//!
//! # What is not carried
//! Invocation records (they expire anyway) and the async invocation log:
//! calls still queued in it are lost, so drain them before exporting. The
//! imported objects get `lastOffset` 0, as the node that uses the
//! destination starts a fresh log. Objects of a class that no stored
//! package declares (left by a deleted package) cannot be listed, and are
//! not exported. Revisions are kept.

mod export;
mod format;
mod import;

pub use export::export;
pub use import::import;

/// What an archive holds, or what an export or import moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub packages: u64,
    pub objects: u64,
    /// File versions.
    pub files: u64,
    /// Bytes of the file versions.
    pub bytes: u64,
}

/// What [`Progress`] counts. Phases may advance at the same time (an
/// export copies the files of each page of objects as it writes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Import only: lines of `objects.jsonl` checked (with the files they
    /// name) before anything is written to the destination.
    Check,
    Packages,
    Objects,
    /// File versions copied.
    Files,
    /// Bytes of file versions copied, counted as they stream.
    Bytes,
}

/// How an export or import reports its progress (the CLI drives progress
/// bars from it). Called from the task that runs the export or import;
/// must not block.
pub trait Progress: Send + Sync {
    /// How much `phase` will count, when known before it starts: always on
    /// import (from the manifest), only for packages on export.
    fn total(&self, phase: Phase, total: u64) {
        let _ = (phase, total);
    }

    /// `done` more of `phase` are done.
    fn advance(&self, phase: Phase, done: u64);

    /// `phase` is complete (not called when the export or import fails).
    fn finish(&self, phase: Phase) {
        let _ = phase;
    }
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&self, _phase: Phase, _done: u64) {}
}

/// Objects listed, checked and committed per call; also how many objects'
/// files are copied between two listings.
const PAGE: usize = 500;

/// File versions copied at the same time.
const FILES_IN_FLIGHT: usize = 4;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use oprc_blob::BlobStore;
    use oprc_store::StateStore;

    fn is_send<T: Send>(_: &T) {}

    /// The CLI may spawn them on a multi-threaded runtime.
    #[allow(dead_code)]
    fn exports_and_imports_can_move_between_threads(
        state: &dyn StateStore,
        blobs: &dyn BlobStore,
        progress: &dyn super::Progress,
    ) {
        is_send(&super::export(state, blobs, Path::new("a"), progress));
        is_send(&super::import(Path::new("a"), state, blobs, progress));
    }
}
