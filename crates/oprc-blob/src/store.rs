//! The port: what the invoker, the storage adapter and the collector need
//! of a blob store.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::{BlobError, BlobPath};

/// What a presigned URL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Put => "PUT",
        }
    }
}

/// What is known of a stored version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub size: u64,
    /// An entity tag, quoted as HTTP writes it.
    pub etag: Option<String>,
    /// When it was written, in milliseconds since the Unix epoch.
    pub modified_ms: i64,
}

/// One stored version, as the collector sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub path: BlobPath,
    pub size: u64,
    pub modified_ms: i64,
}

/// A byte range of a download (HTTP `Range: bytes=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last`, both included.
    Bounded(u64, u64),
    /// `first-`.
    From(u64),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Reads one range of a `Range` header (`bytes=a-b`, `bytes=a-`,
    /// `bytes=-n`); several ranges or other units are `None` (the whole
    /// file is sent, as HTTP allows).
    pub fn parse_header(value: &str) -> Option<Self> {
        let spec = value.trim().strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let (first, last) = (first.trim(), last.trim());
        match (first.is_empty(), last.is_empty()) {
            (true, false) => last.parse().ok().map(Self::Suffix),
            (false, true) => first.parse().ok().map(Self::From),
            (false, false) => {
                let (a, b) = (first.parse().ok()?, last.parse().ok()?);
                (a <= b).then_some(Self::Bounded(a, b))
            }
            (true, true) => None,
        }
    }

    /// The bytes `first..=last` it selects of a file of `size` bytes, or
    /// `None` when it selects none (HTTP 416).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        let (first, last) = match self {
            Self::Bounded(a, b) => (a, b.min(size.checked_sub(1)?)),
            Self::From(a) => (a, size.checked_sub(1)?),
            Self::Suffix(0) => return None,
            Self::Suffix(n) => (size.saturating_sub(n), size.checked_sub(1)?),
        };
        (first <= last && first < size).then_some((first, last))
    }
}

/// Bytes to store, streamed.
pub type Upload = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// A download: the version's metadata, the range sent (`None`: all of it)
/// and its bytes, streamed.
pub struct Download {
    pub meta: BlobMeta,
    pub range: Option<(u64, u64)>,
    pub body: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

impl Download {
    /// How many bytes `body` yields.
    pub fn len(&self) -> u64 {
        self.range.map_or(self.meta.size, |(a, b)| b - a + 1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A store of file versions. Versions are written whole: a reader never
/// sees part of a put, and a put that fails leaves nothing readable at its
/// path.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// For logs and metrics: `dir` or `s3`.
    fn name(&self) -> &'static str;

    /// A URL that lets whoever holds it do `method` on `path` (and nothing
    /// else) until `ttl` has passed.
    fn presign(&self, method: Method, path: &BlobPath, ttl: Duration) -> Result<String, BlobError>;

    /// The version's metadata, `None` when it is not stored.
    async fn head(&self, path: &BlobPath) -> Result<Option<BlobMeta>, BlobError>;

    /// The version's bytes (of `range`, when given and satisfiable; an
    /// unsatisfiable range is an `Invalid` error), `None` when it is not
    /// stored.
    async fn get(
        &self,
        path: &BlobPath,
        range: Option<ByteRange>,
    ) -> Result<Option<Download>, BlobError>;

    /// Stores `body` at `path`, replacing what is there. Durable when it
    /// returns.
    async fn put(&self, path: &BlobPath, body: Upload) -> Result<BlobMeta, BlobError>;

    /// Copies a stored version to another path (in the store, without the
    /// bytes passing through the caller where the backend can).
    async fn copy(&self, from: &BlobPath, to: &BlobPath) -> Result<(), BlobError>;

    /// Deletes a version; deleting a missing one is not an error.
    async fn delete(&self, path: &BlobPath) -> Result<(), BlobError>;

    /// Stored versions in path order, starting after `after`, at most
    /// `limit`. Entries that are not file paths (written by something else)
    /// are skipped.
    async fn list(&self, after: Option<&BlobPath>, limit: usize) -> Result<Vec<Listed>, BlobError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_as_http_says() {
        let r = |h: &str, size| ByteRange::parse_header(h).and_then(|r| r.resolve(size));
        assert_eq!(r("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(r("bytes=90-200", 100), Some((90, 99)));
        assert_eq!(r("bytes=10-", 100), Some((10, 99)));
        assert_eq!(r("bytes=-10", 100), Some((90, 99)));
        assert_eq!(r("bytes=-200", 100), Some((0, 99)));
        assert_eq!(r("bytes=100-", 100), None);
        assert_eq!(r("bytes=0-0", 0), None);
        assert_eq!(ByteRange::parse_header("bytes=5-1"), None);
        assert_eq!(ByteRange::parse_header("bytes=0-1,4-5"), None);
        assert_eq!(ByteRange::parse_header("items=0-1"), None);
    }
}
