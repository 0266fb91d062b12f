//! The archive's files: their names, the manifest, `.jsonl` lines read and
//! written one at a time, where a version's bytes are kept, and which
//! versions an object holds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use oprc_blob::{BlobPath, PathError};
use oprc_core::{ClassKey, ObjectRecord};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};

use super::Summary;

/// The format version this code writes and reads.
pub(super) const FORMAT: u64 = 1;
pub(super) const MANIFEST: &str = "manifest.json";
pub(super) const PACKAGES: &str = "packages.jsonl";
pub(super) const OBJECTS: &str = "objects.jsonl";
pub(super) const BLOBS: &str = "blobs";

/// The longest line of a `.jsonl` file that is read: a corrupt archive
/// cannot make import hold more than this in memory.
const MAX_LINE: u64 = 256 * 1024 * 1024;

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Manifest {
    pub format: u64,
    /// RFC 3339, UTC.
    pub exported_at: String,
    /// The version of oprc that wrote the archive.
    #[serde(default)]
    pub oprc_version: String,
    /// The name of the blob store the files came from (`dir`, `s3`).
    pub blob_store: String,
    pub counts: Summary,
}

/// A line of `packages.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PackageLine {
    pub name: String,
    pub source: String,
}

/// Reads and checks the manifest of the archive in `dir`.
pub(super) async fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = match tokio::fs::read(&path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} has no {MANIFEST}: it is not an oprc archive, or an export that did not finish",
            dir.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
    };
    let value: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("{} is corrupt (not JSON)", path.display()))?;
    match value.get("format") {
        Some(v) if v.as_u64() == Some(FORMAT) => {}
        Some(v) => bail!(
            "{} is of archive format {v}, but this version of oprc reads format {FORMAT} only",
            path.display()
        ),
        None => bail!("{} is corrupt: it has no format version", path.display()),
    }
    serde_json::from_value(value).with_context(|| format!("{} is corrupt", path.display()))
}

/// Writes `manifest` into `dir`, durably.
pub(super) async fn write_manifest(dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let path = dir.join(MANIFEST);
    let mut text = serde_json::to_vec_pretty(manifest).context("failed to encode the manifest")?;
    text.push(b'\n');
    let write = async {
        let mut file = tokio::fs::File::create(&path).await?;
        file.write_all(&text).await?;
        file.sync_all().await
    };
    write
        .await
        .with_context(|| format!("failed to write {}", path.display()))
}

/// A `.jsonl` file of an archive, read a line at a time.
pub(super) struct LineReader {
    name: &'static str,
    reader: BufReader<tokio::fs::File>,
    line: u64,
    buf: Vec<u8>,
}

impl LineReader {
    pub async fn open(dir: &Path, name: &'static str) -> anyhow::Result<Self> {
        let path = dir.join(name);
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("the archive {} has no {name}", dir.display())
            }
            Err(e) => return Err(e).with_context(|| format!("failed to open {}", path.display())),
        };
        Ok(Self {
            name,
            reader: BufReader::with_capacity(256 * 1024, file),
            line: 0,
            buf: Vec::new(),
        })
    }

    /// The number of the line last read (1-based; 0 before the first).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// `<file> line <n>`, for messages about the line last read.
    pub fn at(&self) -> String {
        format!("{} line {}", self.name, self.line)
    }

    /// The next line, `None` at the end of the file.
    pub async fn next<T: DeserializeOwned>(&mut self) -> anyhow::Result<Option<T>> {
        self.buf.clear();
        let read = (&mut self.reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut self.buf)
            .await;
        self.line += 1;
        let read = read.with_context(|| format!("failed to read {}", self.at()))?;
        if read == 0 {
            self.line -= 1;
            return Ok(None);
        }
        if self.buf.len() as u64 > MAX_LINE {
            bail!("{} is longer than {MAX_LINE} bytes", self.at());
        }
        if self.buf.last() != Some(&b'\n') {
            bail!(
                "{} is cut short (it has no line end): the archive is truncated",
                self.at()
            );
        }
        if self.buf.iter().all(u8::is_ascii_whitespace) {
            bail!("{} is empty", self.at());
        }
        serde_json::from_slice(&self.buf).map(Some).map_err(|e| {
            // serde_json counts lines and columns within the line; only the
            // column says more than the line number already does.
            let message = e.to_string();
            let at = format!(" at line {} column {}", e.line(), e.column());
            let message = message.strip_suffix(&at).unwrap_or(&message);
            anyhow::anyhow!(
                "{} is corrupt (at column {}): {message}",
                self.at(),
                e.column()
            )
        })
    }
}

/// A `.jsonl` file being written, a line at a time.
pub(super) struct LineWriter {
    path: PathBuf,
    writer: BufWriter<tokio::fs::File>,
    buf: Vec<u8>,
}

impl LineWriter {
    pub async fn create(path: PathBuf) -> anyhow::Result<Self> {
        let file = tokio::fs::File::create(&path)
            .await
            .with_context(|| format!("failed to create {}", path.display()))?;
        Ok(Self {
            path,
            writer: BufWriter::with_capacity(256 * 1024, file),
            buf: Vec::new(),
        })
    }

    pub async fn write(&mut self, value: &impl Serialize) -> anyhow::Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, value)
            .with_context(|| format!("failed to encode a line of {}", self.path.display()))?;
        self.buf.push(b'\n');
        self.writer
            .write_all(&self.buf)
            .await
            .with_context(|| format!("failed to write {}", self.path.display()))
    }

    /// Flushes the file and makes it durable.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        let done = async {
            self.writer.flush().await?;
            self.writer.get_mut().sync_all().await
        };
        done.await
            .with_context(|| format!("failed to write {}", self.path.display()))
    }
}

/// Where the archive in `dir` keeps the bytes of `path`.
pub(super) fn blob_file(dir: &Path, path: &BlobPath) -> PathBuf {
    dir.join(BLOBS)
        .join(path.cls.as_str())
        .join(path.oid.as_str())
        .join(&path.version)
        .join(&path.key)
}

/// The file versions `obj` holds, with their keys: by the collector's rule
/// (`oprc_adapter::collector`), a version is live while its object's
/// `verIds` names it for its key, and it lives at
/// `<cls>/<oid>/<version>/<key>`.
pub(super) fn referenced(obj: &ObjectRecord) -> Result<Vec<(&str, BlobPath)>, (&str, PathError)> {
    obj.meta
        .ver_ids
        .iter()
        .map(|(key, version)| {
            BlobPath::new(
                obj.meta.cls.clone(),
                obj.meta.id.clone(),
                version.clone(),
                key.clone(),
            )
            .map(|path| (key.as_str(), path))
            .map_err(|e| (key.as_str(), e))
        })
        .collect()
}

/// `<cls>/<oid>`, the way messages name an object.
pub(super) fn object_name(obj: &ObjectRecord) -> String {
    format!("{}/{}", obj.meta.cls, obj.meta.id)
}

/// The keys of the classes the package sources declare, in order. A
/// source that does not parse is an error: the objects of its classes
/// could not be found.
pub(super) async fn classes_of(packages: &[PackageLine]) -> anyhow::Result<BTreeSet<ClassKey>> {
    let packages = packages.to_vec();
    // Parsing is CPU work: off the runtime's threads.
    tokio::task::spawn_blocking(move || {
        let mut keys = BTreeSet::new();
        for p in &packages {
            let doc = oprc_package::parse(&p.source).map_err(|diagnostics| {
                let text: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
                anyhow::anyhow!(
                    "package `{}` does not parse, so the classes whose objects to move are \
                     unknown: {}",
                    p.name,
                    text.join("; ")
                )
            })?;
            for class in &doc.package().classes {
                let key = format!("{}.{}", doc.name(), class.name);
                let key = ClassKey::new(key.as_str()).with_context(|| {
                    format!(
                        "package `{}` declares class `{key}`, which is not a class key",
                        p.name
                    )
                })?;
                keys.insert(key);
            }
        }
        Ok(keys)
    })
    .await
    .context("reading the packages' classes failed")?
}

/// `t` in RFC 3339 (UTC, whole seconds).
pub(super) fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil(days);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

/// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// for days on or after the epoch).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn check(secs: u64, expected: &str) {
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(secs)), expected);
    }

    #[test]
    fn times_are_written_in_rfc3339() {
        check(0, "1970-01-01T00:00:00Z");
        check(951_782_400, "2000-02-29T00:00:00Z");
        check(1_700_000_000, "2023-11-14T22:13:20Z");
        check(4_107_542_399, "2100-02-28T23:59:59Z");
        check(4_107_542_400, "2100-03-01T00:00:00Z");
    }

    #[test]
    fn an_object_holds_the_versions_its_ver_ids_name() {
        let mut obj = ObjectRecord::new(
            ClassKey::new("p.c").unwrap(),
            oprc_core::ObjectId::new("o1").unwrap(),
            serde_json::json!({}),
        );
        obj.meta.ver_ids.insert("img".into(), "v2".into());
        obj.meta.ver_ids.insert("doc".into(), "v1".into());
        let paths: Vec<(&str, String)> = referenced(&obj)
            .unwrap()
            .into_iter()
            .map(|(k, p)| (k, p.to_string()))
            .collect();
        assert_eq!(
            paths,
            [
                ("doc", "p.c/o1/v1/doc".into()),
                ("img", "p.c/o1/v2/img".into())
            ]
        );
        obj.meta.ver_ids.insert("bad".into(), "..".into());
        assert_eq!(referenced(&obj).unwrap_err().0, "bad");
    }
}
