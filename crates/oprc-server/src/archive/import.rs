//! Import: an archive into empty stores. The whole archive is checked
//! before anything is written; then the files go first, the packages next
//! and the objects last, so that no stored object names a file that is
//! not there yet.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use anyhow::{Context, bail};
use bytes::BytesMut;
use futures_util::StreamExt;
use oprc_blob::{BlobPath, BlobStore, Upload};
use oprc_core::{ClassKey, ObjectId, ObjectRecord};
use oprc_store::{Durability, StateStore, Write, WriteBatch};
use tokio::io::AsyncReadExt;

use super::format::{
    self, LineReader, OBJECTS, PACKAGES, PackageLine, blob_file, object_name, referenced,
};
use super::{FILES_IN_FLIGHT, PAGE, Phase, Progress, Summary};

/// Bytes read from an archive's file at a time.
const CHUNK: usize = 256 * 1024;

/// Loads the archive at `from` into `state` and `blobs`, which must hold
/// no package and no object of the archive's classes. Objects keep their
/// revisions; their `lastOffset` becomes 0 (the node that uses them starts
/// a fresh invocation log).
///
/// A corrupt or incomplete archive is refused before anything is written.
/// An import that fails later (a store that stops answering) leaves part
/// of the archive in the stores: empty them and import again.
pub async fn import(
    from: &Path,
    state: &dyn StateStore,
    blobs: &dyn BlobStore,
    progress: &dyn Progress,
) -> anyhow::Result<Summary> {
    let manifest = format::read_manifest(from).await?;
    let expected = manifest.counts;
    for (phase, total) in [
        (Phase::Check, expected.objects),
        (Phase::Packages, expected.packages),
        (Phase::Objects, expected.objects),
        (Phase::Files, expected.files),
        (Phase::Bytes, expected.bytes),
    ] {
        progress.total(phase, total);
    }
    let packages = read_packages(from).await?;
    let classes = format::classes_of(&packages).await?;
    let found = check_objects(from, &classes, progress).await?;
    let found = Summary {
        packages: packages.len() as u64,
        ..found
    };
    if found != expected {
        bail!(
            "the archive {} does not hold what its manifest says (it has {} packages, {} \
             objects, {} files of {} bytes; the manifest says {}, {}, {}, {}): it is incomplete \
             or was changed",
            from.display(),
            found.packages,
            found.objects,
            found.files,
            found.bytes,
            expected.packages,
            expected.objects,
            expected.files,
            expected.bytes
        );
    }
    progress.finish(Phase::Check);
    refuse_non_empty(state, &classes).await?;

    put_files(from, blobs, progress).await?;
    progress.finish(Phase::Files);
    progress.finish(Phase::Bytes);
    for p in &packages {
        state
            .put_package(&p.name, &p.source)
            .await
            .with_context(|| format!("failed to store package `{}`", p.name))?;
        progress.advance(Phase::Packages, 1);
    }
    progress.finish(Phase::Packages);
    put_objects(from, state, progress).await?;
    progress.finish(Phase::Objects);
    Ok(found)
}

/// Reads `packages.jsonl`; a package named twice is refused.
async fn read_packages(from: &Path) -> anyhow::Result<Vec<PackageLine>> {
    let mut lines = LineReader::open(from, PACKAGES).await?;
    let mut names = HashSet::new();
    let mut packages = Vec::new();
    while let Some(p) = lines.next::<PackageLine>().await? {
        if !names.insert(p.name.clone()) {
            bail!("{}: package `{}` appears twice", lines.at(), p.name);
        }
        packages.push(p);
    }
    Ok(packages)
}

/// Reads every line of `objects.jsonl` and checks it: a record of a class
/// the packages declare, in listing order (so none appears twice), whose
/// files are in the archive. Returns what it found.
async fn check_objects(
    from: &Path,
    classes: &BTreeSet<ClassKey>,
    progress: &dyn Progress,
) -> anyhow::Result<Summary> {
    let mut lines = LineReader::open(from, OBJECTS).await?;
    let mut found = Summary::default();
    // The class being read and the last id seen of it; the classes done.
    let mut last: Option<(ClassKey, ObjectId)> = None;
    let mut done: HashSet<ClassKey> = HashSet::new();
    while let Some(obj) = lines.next::<ObjectRecord>().await? {
        let (cls, oid) = (&obj.meta.cls, &obj.meta.id);
        if !classes.contains(cls) {
            bail!(
                "{}: object {} is of class {cls}, which no package of the archive declares",
                lines.at(),
                object_name(&obj)
            );
        }
        match &last {
            Some((c, o)) if c == cls => {
                if oid.as_str() <= o.as_str() {
                    bail!(
                        "{}: object {} comes after {c}/{o}; objects of a class must be in id \
                         order, each once",
                        lines.at(),
                        object_name(&obj)
                    );
                }
            }
            _ => {
                if !done.insert(cls.clone()) {
                    bail!(
                        "{}: object {} is apart from the other objects of its class; they must \
                         be on consecutive lines",
                        lines.at(),
                        object_name(&obj)
                    );
                }
            }
        }
        let files = referenced(&obj).map_err(|(key, e)| {
            anyhow::anyhow!(
                "{}: object {} names file `{key}` badly: {e}",
                lines.at(),
                object_name(&obj)
            )
        })?;
        for (key, path) in files {
            let file = blob_file(from, &path);
            let meta = match tokio::fs::metadata(&file).await {
                Ok(m) if m.is_file() => m,
                Ok(_) => bail!("{} is not a file", file.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                    "{}: object {} holds version `{}` of file `{key}`, but the archive has no \
                     {}",
                    lines.at(),
                    object_name(&obj),
                    path.version,
                    file.display()
                ),
                Err(e) => {
                    return Err(e).with_context(|| format!("failed to read {}", file.display()));
                }
            };
            found.files += 1;
            found.bytes += meta.len();
        }
        found.objects += 1;
        progress.advance(Phase::Check, 1);
        last = Some((obj.meta.cls, obj.meta.id));
    }
    Ok(found)
}

/// Refuses a state store that holds a package, or an object of one of the
/// archive's classes: an import does not merge.
async fn refuse_non_empty(
    state: &dyn StateStore,
    classes: &BTreeSet<ClassKey>,
) -> anyhow::Result<()> {
    let packages = state
        .list_packages()
        .await
        .context("failed to list the destination's packages")?;
    if !packages.is_empty() {
        let mut names: Vec<String> = packages
            .iter()
            .take(3)
            .map(|(name, _)| format!("`{name}`"))
            .collect();
        if packages.len() > names.len() {
            names.push("...".into());
        }
        bail!(
            "the destination already holds {} package(s) ({}): import needs an empty \
             destination (it never merges)",
            packages.len(),
            names.join(", ")
        );
    }
    for cls in classes {
        let page = state
            .list_objects(cls, None, 1)
            .await
            .with_context(|| format!("failed to list the destination's objects of {cls}"))?;
        if let Some(obj) = page.objects.first() {
            bail!(
                "the destination already holds objects of class {cls} (e.g. {}): import needs \
                 an empty destination (it never merges)",
                object_name(obj)
            );
        }
    }
    Ok(())
}

/// Streams the versions the objects hold into `blobs`, a few at a time.
async fn put_files(
    from: &Path,
    blobs: &dyn BlobStore,
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    let mut lines = LineReader::open(from, OBJECTS).await?;
    let mut page: Vec<(ObjectRecord, String)> = Vec::with_capacity(PAGE);
    loop {
        page.clear();
        while page.len() < PAGE {
            let Some(obj) = lines.next::<ObjectRecord>().await? else {
                break;
            };
            page.push((obj, lines.at()));
        }
        if page.is_empty() {
            return Ok(());
        }
        let mut jobs = Vec::new();
        for (obj, at) in &page {
            let files =
                referenced(obj).map_err(|(key, e)| anyhow::anyhow!("{at}: file `{key}`: {e}"))?;
            jobs.extend(files.into_iter().map(|(key, path)| (obj, key, path)));
        }
        // Made before they are streamed (see `export::copy_files`).
        let puts: Vec<_> = jobs
            .into_iter()
            .map(|(obj, key, path)| put_file(from, blobs, obj, key, path, progress))
            .collect();
        let mut puts = futures_util::stream::iter(puts).buffer_unordered(FILES_IN_FLIGHT);
        while let Some(put) = puts.next().await {
            put?;
            progress.advance(Phase::Files, 1);
        }
    }
}

/// Streams one version from the archive into `blobs`.
async fn put_file(
    from: &Path,
    blobs: &dyn BlobStore,
    obj: &ObjectRecord,
    key: &str,
    path: BlobPath,
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    let what = || {
        format!(
            "file `{key}` of object {} (version `{}`, {path})",
            object_name(obj),
            path.version
        )
    };
    let file = blob_file(from, &path);
    let mut input = tokio::fs::File::open(&file)
        .await
        .with_context(|| format!("failed to open {}", file.display()))?;
    let size = input
        .metadata()
        .await
        .with_context(|| format!("failed to read {}", file.display()))?
        .len();
    // The upload is fed from here, so that its bytes are counted as they go.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(2);
    let body: Upload = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    })
    .boxed();
    let feed = async move {
        let mut sent = 0u64;
        loop {
            let mut buf = BytesMut::with_capacity(CHUNK);
            match input.read_buf(&mut buf).await {
                Ok(0) => return Ok(sent),
                Ok(n) => {
                    progress.advance(Phase::Bytes, n as u64);
                    sent += n as u64;
                    if tx.send(Ok(buf.freeze())).await.is_err() {
                        // The put ended early; it says why.
                        return Ok(sent);
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    let _ = tx.send(Err(e)).await;
                    return Err(anyhow::anyhow!("{message}"))
                        .with_context(|| format!("failed to read {}", file.display()));
                }
            }
        }
    };
    let (put, fed) = tokio::join!(blobs.put(&path, body), feed);
    let sent = fed?;
    let meta = put.with_context(|| format!("failed to store {}", what()))?;
    if sent != size || meta.size != size {
        bail!(
            "failed to store {}: {size} bytes in the archive, {sent} read, {} stored",
            what(),
            meta.size
        );
    }
    Ok(())
}

/// Commits the objects in batches, each with `lastOffset` 0.
async fn put_objects(
    from: &Path,
    state: &dyn StateStore,
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    let mut lines = LineReader::open(from, OBJECTS).await?;
    loop {
        let first_line = lines.line() + 1;
        let mut writes = Vec::with_capacity(PAGE);
        while writes.len() < PAGE {
            let Some(mut record) = lines.next::<ObjectRecord>().await? else {
                break;
            };
            record.meta.last_offset = 0;
            writes.push(Write::PutObject {
                record,
                expected_revision: None,
            });
        }
        let Some(Write::PutObject { record: first, .. }) = writes.first() else {
            return Ok(());
        };
        let count = writes.len() as u64;
        let first = object_name(first);
        // Durable before the import says it is done, also on a store
        // that runs write-behind.
        let batch = WriteBatch {
            writes,
            durability: Durability::Required,
            fence: None,
        };
        state.commit(batch).await.with_context(|| {
            format!(
                "failed to store the objects of {OBJECTS} lines {first_line}-{} (from \
                     object {first} on)",
                lines.line()
            )
        })?;
        progress.advance(Phase::Objects, count);
    }
}
