//! Export: stores to an archive directory, written beside the target under
//! a temporary name and renamed into place once complete.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use oprc_blob::{BlobPath, BlobStore};
use oprc_core::{ObjectId, ObjectRecord};
use oprc_store::StateStore;
use tokio::io::{AsyncWriteExt, BufWriter};

use super::format::{
    self, LineWriter, Manifest, OBJECTS, PACKAGES, PackageLine, blob_file, object_name, referenced,
};
use super::{FILES_IN_FLIGHT, PAGE, Phase, Progress, Summary};

/// Writes the packages of `state`, its objects (of every class the
/// packages declare) and the file versions they hold in `blobs` into a
/// new archive at `to`, which must not exist or be an empty directory.
/// The archive appears at `to` only once complete; a failed export leaves
/// nothing there.
///
/// The export is not a snapshot: stop the nodes that use the stores (or at
/// least their clients) first. Queued async calls are not exported; drain
/// them first.
pub async fn export(
    state: &dyn StateStore,
    blobs: &dyn BlobStore,
    to: &Path,
    progress: &dyn Progress,
) -> anyhow::Result<Summary> {
    let staging = Staging::create(to).await?;
    match write(state, blobs, &staging.dir, progress).await {
        Ok(summary) => {
            staging.install().await?;
            Ok(summary)
        }
        Err(e) => {
            staging.discard().await;
            Err(e)
        }
    }
}

/// The temporary directory an export is written to, beside its target.
struct Staging {
    dir: PathBuf,
    target: PathBuf,
}

impl Staging {
    async fn create(target: &Path) -> anyhow::Result<Self> {
        match tokio::fs::metadata(target).await {
            Ok(m) if !m.is_dir() => {
                bail!("{} exists and is not a directory", target.display())
            }
            Ok(_) => {
                let mut entries = tokio::fs::read_dir(target)
                    .await
                    .with_context(|| format!("failed to read {}", target.display()))?;
                if entries.next_entry().await?.is_some() {
                    bail!(
                        "{} is not empty: export into a new or empty directory (an archive is \
                         never overwritten)",
                        target.display()
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("failed to read {}", target.display()));
            }
        }
        let Some(name) = target.file_name().and_then(|n| n.to_str()) else {
            bail!(
                "{} does not name a directory to export into",
                target.display()
            );
        };
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        tokio::fs::create_dir_all(&parent)
            .await
            .with_context(|| format!("failed to create {}", parent.display()))?;
        let nanos = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = parent.join(format!(".{name}.partial-{}-{nanos}", std::process::id()));
        tokio::fs::create_dir(&dir)
            .await
            .with_context(|| format!("failed to create {}", dir.display()))?;
        Ok(Self {
            dir,
            target: target.to_owned(),
        })
    }

    /// Makes the archive durable and renames it to its target.
    async fn install(self) -> anyhow::Result<()> {
        let dir = self.dir.clone();
        let synced = tokio::task::spawn_blocking(move || sync_dirs(&dir))
            .await
            .context("syncing the archive failed")?
            .with_context(|| format!("failed to sync {}", self.dir.display()));
        let renamed = match synced {
            Ok(()) => self.rename().await,
            Err(e) => Err(e),
        };
        if let Err(e) = renamed {
            self.discard().await;
            return Err(e);
        }
        let parent = self.dir.parent().map(Path::to_owned);
        if let Some(parent) = parent {
            // The rename is durable once its directory is.
            tokio::task::spawn_blocking(move || std::fs::File::open(&parent)?.sync_all())
                .await
                .context("syncing the archive's directory failed")?
                .context("failed to sync the archive's directory")?;
        }
        Ok(())
    }

    async fn rename(&self) -> anyhow::Result<()> {
        // An empty target directory was checked for at the start; a
        // rename does not replace a directory everywhere.
        match tokio::fs::remove_dir(&self.target).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "failed to replace the empty directory {}",
                        self.target.display()
                    )
                });
            }
        }
        tokio::fs::rename(&self.dir, &self.target)
            .await
            .with_context(|| {
                format!(
                    "failed to move the finished archive {} to {}",
                    self.dir.display(),
                    self.target.display()
                )
            })
    }

    async fn discard(&self) {
        if let Err(e) = tokio::fs::remove_dir_all(&self.dir).await {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove an unfinished export");
        }
    }
}

/// Syncs every directory under `root` and `root` itself, so that the
/// files in them survive a crash before the rename.
fn sync_dirs(root: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_dirs(&entry.path())?;
        }
    }
    std::fs::File::open(root)?.sync_all()
}

/// Writes the whole archive into `dir`.
async fn write(
    state: &dyn StateStore,
    blobs: &dyn BlobStore,
    dir: &Path,
    progress: &dyn Progress,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let packages: Vec<PackageLine> = state
        .list_packages()
        .await
        .context("failed to list the packages")?
        .into_iter()
        .map(|(name, source)| PackageLine { name, source })
        .collect();
    progress.total(Phase::Packages, packages.len() as u64);
    let mut lines = LineWriter::create(dir.join(PACKAGES)).await?;
    for p in &packages {
        lines.write(p).await?;
        summary.packages += 1;
        progress.advance(Phase::Packages, 1);
    }
    lines.finish().await?;
    progress.finish(Phase::Packages);

    let classes = format::classes_of(&packages).await?;
    drop(packages);
    tokio::fs::create_dir(dir.join(format::BLOBS))
        .await
        .context("failed to create the archive's blobs directory")?;
    let mut lines = LineWriter::create(dir.join(OBJECTS)).await?;
    for cls in &classes {
        let mut after: Option<ObjectId> = None;
        loop {
            let page = state
                .list_objects(cls, after.as_ref(), PAGE)
                .await
                .with_context(|| format!("failed to list the objects of class {cls}"))?;
            for obj in &page.objects {
                lines.write(obj).await?;
            }
            summary.objects += page.objects.len() as u64;
            progress.advance(Phase::Objects, page.objects.len() as u64);
            copy_files(blobs, dir, &page.objects, &mut summary, progress).await?;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    lines.finish().await?;
    progress.finish(Phase::Objects);
    progress.finish(Phase::Files);
    progress.finish(Phase::Bytes);

    let manifest = Manifest {
        format: format::FORMAT,
        exported_at: format::rfc3339(SystemTime::now()),
        oprc_version: env!("CARGO_PKG_VERSION").to_owned(),
        blob_store: blobs.name().to_owned(),
        counts: summary,
    };
    format::write_manifest(dir, &manifest).await?;
    Ok(summary)
}

/// Copies the versions `objects` hold into the archive, a few at a time.
async fn copy_files(
    blobs: &dyn BlobStore,
    dir: &Path,
    objects: &[ObjectRecord],
    summary: &mut Summary,
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    let mut jobs = Vec::new();
    for obj in objects {
        let files = referenced(obj).map_err(|(key, e)| {
            anyhow::anyhow!("object {} names file `{key}` badly: {e}", object_name(obj))
        })?;
        jobs.extend(files.into_iter().map(|(key, path)| (obj, key, path)));
    }
    // Made before they are streamed: a closure in the stream would keep
    // the future from being `Send` (the compiler cannot prove it
    // for every lifetime of its arguments).
    let copies: Vec<_> = jobs
        .into_iter()
        .map(|(obj, key, path)| copy_file(blobs, dir, obj, key, path, progress))
        .collect();
    let mut copies = futures_util::stream::iter(copies).buffer_unordered(FILES_IN_FLIGHT);
    while let Some(copied) = copies.next().await {
        summary.bytes += copied?;
        summary.files += 1;
        progress.advance(Phase::Files, 1);
    }
    Ok(())
}

/// Streams one version into the archive; returns its size.
async fn copy_file(
    blobs: &dyn BlobStore,
    dir: &Path,
    obj: &ObjectRecord,
    key: &str,
    path: BlobPath,
    progress: &dyn Progress,
) -> anyhow::Result<u64> {
    let what = || {
        format!(
            "file `{key}` of object {} (version `{}`, {path})",
            object_name(obj),
            path.version
        )
    };
    let download = blobs
        .get(&path, None)
        .await
        .with_context(|| format!("failed to read {}", what()))?;
    let Some(download) = download else {
        bail!(
            "object {} holds version `{}` of file `{key}`, but the blob store has no {path}: \
             restore that version (or remove the file from the object) and export again",
            object_name(obj),
            path.version
        );
    };
    let expected = download.len();
    let file = blob_file(dir, &path);
    let write = async {
        let parent = file.parent().expect("a blob file is inside the archive");
        tokio::fs::create_dir_all(parent).await?;
        let mut out = BufWriter::with_capacity(256 * 1024, tokio::fs::File::create(&file).await?);
        let mut body = download.body;
        let mut written = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            out.write_all(&chunk).await?;
            written += chunk.len() as u64;
            progress.advance(Phase::Bytes, chunk.len() as u64);
        }
        out.flush().await?;
        out.get_mut().sync_all().await?;
        Ok::<_, std::io::Error>(written)
    };
    let written = write
        .await
        .with_context(|| format!("failed to copy {}", what()))?;
    if written != expected {
        bail!(
            "failed to copy {}: the blob store sent {written} of its {expected} bytes",
            what()
        );
    }
    Ok(written)
}
