//! The embedded backend: file versions in a directory, one file per
//! version at `<root>/<cls>/<oid>/<version>/<key>`. Puts are written to a
//! temporary file, synced and renamed into place, so a reader never sees
//! part of one. Its URLs are the node's own signed URLs ([`Signer`]),
//! served by the storage adapter.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::{
    BlobError, BlobMeta, BlobPath, BlobStore, ByteRange, Download, Listed, Method, Signer, Upload,
};

/// Where puts are written before they are renamed into place.
const TMP: &str = ".tmp";
/// Bytes read from disk at a time when streaming a download.
const CHUNK: usize = 256 * 1024;

/// Files in a local directory.
pub struct DirStore {
    root: PathBuf,
    signer: Signer,
}

impl DirStore {
    /// Opens (and creates) the directory. Temporary files of puts that a
    /// crash interrupted are removed.
    pub fn open(root: impl Into<PathBuf>, signer: Signer) -> Result<Self, BlobError> {
        let root = root.into();
        let tmp = root.join(TMP);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)
                .map_err(|e| BlobError::io("clearing temporary files", &e))?;
        }
        std::fs::create_dir_all(&tmp)
            .map_err(|e| BlobError::io(&format!("creating {}", root.display()), &e))?;
        Ok(Self { root, signer })
    }

    fn file(&self, path: &BlobPath) -> PathBuf {
        self.root
            .join(path.cls.as_str())
            .join(path.oid.as_str())
            .join(&path.version)
            .join(&path.key)
    }

    fn tmp_file(&self) -> PathBuf {
        self.root.join(TMP).join(uuid::Uuid::now_v7().to_string())
    }
}

fn meta_of(m: &std::fs::Metadata) -> BlobMeta {
    let nanos = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    BlobMeta {
        size: m.len(),
        etag: Some(format!("\"{:x}-{:x}\"", m.len(), nanos.as_nanos())),
        modified_ms: i64::try_from(nanos.as_millis()).unwrap_or(i64::MAX),
    }
}

fn not_found(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

/// Syncs a directory, so that a rename into it is durable.
async fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir).and_then(|d| d.sync_all()))
        .await
        .map_err(|e| BlobError::unavailable(format!("syncing a directory: {e}")))?
        .map_err(|e| BlobError::io("syncing a directory", &e))
}

/// Moves a finished temporary file to its place, durably.
async fn install(tmp: &Path, file: &Path) -> Result<(), BlobError> {
    let parent = file.parent().expect("file paths have four segments");
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(|e| BlobError::io("creating a version directory", &e))?;
    tokio::fs::rename(tmp, file)
        .await
        .map_err(|e| BlobError::io("moving a file version into place", &e))?;
    sync_dir(parent).await
}

/// Every stored version under `root`, in path order.
fn walk(root: &Path) -> std::io::Result<Vec<Listed>> {
    fn names(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                out.push((name.to_owned(), entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }
    let mut listed = Vec::new();
    for (cls, cls_dir) in names(root)? {
        if cls == TMP || !cls_dir.is_dir() {
            continue;
        }
        for (oid, oid_dir) in names(&cls_dir)? {
            for (version, version_dir) in names(&oid_dir).unwrap_or_default() {
                for (key, file) in names(&version_dir).unwrap_or_default() {
                    let raw = format!("{cls}/{oid}/{version}/{key}");
                    let (Ok(path), Ok(m)) = (BlobPath::parse(&raw), std::fs::metadata(&file))
                    else {
                        continue;
                    };
                    let meta = meta_of(&m);
                    listed.push(Listed {
                        path,
                        size: meta.size,
                        modified_ms: meta.modified_ms,
                    });
                }
            }
        }
    }
    listed.sort_by_key(|l| l.path.to_string());
    Ok(listed)
}

#[async_trait::async_trait]
impl BlobStore for DirStore {
    fn name(&self) -> &'static str {
        "dir"
    }

    fn presign(&self, method: Method, path: &BlobPath, ttl: Duration) -> Result<String, BlobError> {
        Ok(self.signer.blob_url(method, path, ttl))
    }

    async fn head(&self, path: &BlobPath) -> Result<Option<BlobMeta>, BlobError> {
        match tokio::fs::metadata(self.file(path)).await {
            Ok(m) => Ok(Some(meta_of(&m))),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(BlobError::io("reading a file version", &e)),
        }
    }

    async fn get(
        &self,
        path: &BlobPath,
        range: Option<ByteRange>,
    ) -> Result<Option<Download>, BlobError> {
        let mut file = match tokio::fs::File::open(self.file(path)).await {
            Ok(f) => f,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(BlobError::io("opening a file version", &e)),
        };
        let m = file
            .metadata()
            .await
            .map_err(|e| BlobError::io("reading a file version", &e))?;
        let meta = meta_of(&m);
        let range = match range {
            None => None,
            Some(r) => Some(r.resolve(meta.size).ok_or_else(|| {
                BlobError::invalid(format!(
                    "the range is outside the file ({} bytes)",
                    meta.size
                ))
            })?),
        };
        let (start, len) = range.map_or((0, meta.size), |(a, b)| (a, b - a + 1));
        if start > 0 {
            file.seek(SeekFrom::Start(start))
                .await
                .map_err(|e| BlobError::io("seeking in a file version", &e))?;
        }
        let body = tokio_util::io::ReaderStream::with_capacity(file.take(len), CHUNK).boxed();
        Ok(Some(Download { meta, range, body }))
    }

    async fn put(&self, path: &BlobPath, mut body: Upload) -> Result<BlobMeta, BlobError> {
        let tmp = self.tmp_file();
        let write = async {
            let mut f = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| BlobError::io("creating a file version", &e))?;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    BlobError::invalid(format!("the upload stopped before its end: {e}"))
                })?;
                f.write_all(&chunk)
                    .await
                    .map_err(|e| BlobError::io("writing a file version", &e))?;
            }
            f.sync_all()
                .await
                .map_err(|e| BlobError::io("syncing a file version", &e))?;
            install(&tmp, &self.file(path)).await
        };
        if let Err(e) = write.await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        self.head(path)
            .await?
            .ok_or_else(|| BlobError::unavailable("a file version vanished as it was written"))
    }

    async fn copy(&self, from: &BlobPath, to: &BlobPath) -> Result<(), BlobError> {
        // Versions never change once written: a hard link is a copy.
        let tmp = self.tmp_file();
        let src = self.file(from);
        let linked = tokio::fs::hard_link(&src, &tmp).await;
        if linked.is_err() {
            tokio::fs::copy(&src, &tmp)
                .await
                .map_err(|e| BlobError::io(&format!("copying {from}"), &e))?;
        }
        let installed = install(&tmp, &self.file(to)).await;
        if installed.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        installed
    }

    async fn delete(&self, path: &BlobPath) -> Result<(), BlobError> {
        let file = self.file(path);
        match tokio::fs::remove_file(&file).await {
            Ok(()) => {}
            Err(e) if not_found(&e) => return Ok(()),
            Err(e) => return Err(BlobError::io("deleting a file version", &e)),
        }
        // Empty version and object directories go too (best effort: a put
        // may be filling them again).
        let version_dir = file.parent().expect("four segments");
        if tokio::fs::remove_dir(version_dir).await.is_ok()
            && let Some(oid_dir) = version_dir.parent()
        {
            let _ = tokio::fs::remove_dir(oid_dir).await;
        }
        Ok(())
    }

    async fn list(&self, after: Option<&BlobPath>, limit: usize) -> Result<Vec<Listed>, BlobError> {
        let root = self.root.clone();
        let all = tokio::task::spawn_blocking(move || walk(&root))
            .await
            .map_err(|e| BlobError::unavailable(format!("listing files: {e}")))?
            .map_err(|e| BlobError::io("listing files", &e))?;
        let after = after.map(ToString::to_string);
        Ok(all
            .into_iter()
            .filter(|l| after.as_ref().is_none_or(|a| l.path.to_string() > *a))
            .take(limit)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_crashed_put_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::new(b"k".to_vec(), "http://n");
        let store = DirStore::open(dir.path(), signer.clone()).unwrap();
        let path = BlobPath::parse("a.b/o/v/k").unwrap();
        let failing: Upload = futures_util::stream::iter(vec![
            Ok(bytes::Bytes::from_static(b"part")),
            Err(std::io::Error::other("client went away")),
        ])
        .boxed();
        assert!(store.put(&path, failing).await.is_err());
        assert_eq!(store.head(&path).await.unwrap(), None);
        assert_eq!(std::fs::read_dir(dir.path().join(TMP)).unwrap().count(), 0);
        // A temporary file left by a crash is cleared at the next open.
        std::fs::write(dir.path().join(TMP).join("x"), b"partial").unwrap();
        drop(DirStore::open(dir.path(), signer).unwrap());
        assert_eq!(std::fs::read_dir(dir.path().join(TMP)).unwrap().count(), 0);
    }
}
