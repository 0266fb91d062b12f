//! The node's files: the blob store its configuration names (embedded
//! directory or S3), the signer of its own URLs, the storage adapter's
//! routes and the collector.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use oprc_blob::{BlobStore, DirStore, Relayed, S3Options, S3Store, Signer};

/// Files settings.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// An S3 URL (`s3://BUCKET?endpoint=URL&region=REGION`); `None` keeps
    /// files in the data directory.
    pub blobs: Option<String>,
    /// S3 credentials from the config file; without them the standard
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` environment is used.
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    /// Hand out the node's own URLs, so every byte passes through it.
    pub relay: bool,
    /// Lifetime of the URLs handed out.
    pub url_ttl: Duration,
    /// Largest file the node accepts when it receives the bytes.
    pub max_file_bytes: u64,
    /// A version no object holds is deleted once older than this; an
    /// upload must be committed within half of it.
    pub gc_grace: Duration,
    /// Time between collector passes.
    pub gc_interval: Duration,
    /// The URL clients and functions reach this node at (the base of its
    /// signed URLs); by default `http://` and the listen address.
    pub public_url: Option<String>,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            blobs: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            relay: false,
            url_ttl: Duration::from_secs(15 * 60),
            max_file_bytes: oprc_adapter::DEFAULT_MAX_FILE_BYTES,
            gc_grace: Duration::from_secs(3600),
            gc_interval: Duration::from_secs(60),
            public_url: None,
        }
    }
}

impl FilesConfig {
    pub fn check(&self) -> anyhow::Result<()> {
        if self.url_ttl < Duration::from_secs(1) {
            anyhow::bail!("the URL lifetime (--url-ttl) must be at least 1s");
        }
        if self.gc_grace < self.url_ttl * 2 {
            anyhow::bail!(
                "the file collector's grace ({}s) must be at least twice the URL lifetime \
                 (--url-ttl, {}s): an upload started at the end of a URL's life must still \
                 be committable",
                self.gc_grace.as_secs(),
                self.url_ttl.as_secs()
            );
        }
        if let Some(url) = &self.blobs {
            S3Options::parse(url).map_err(|e| anyhow::anyhow!("invalid --blobs: {e}"))?;
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            anyhow::bail!("the public URL must start with http:// or https://, got {url}");
        }
        Ok(())
    }
}

/// What the rest of the node uses of its files.
pub(crate) struct Parts {
    pub store: Arc<dyn BlobStore>,
    pub signer: Signer,
}

/// The key of the node's signed URLs: kept in the data directory.
const KEY_FILE: &str = "file-url-key";

pub(crate) async fn open(
    config: &FilesConfig,
    data_dir: &Path,
    base: String,
) -> anyhow::Result<Parts> {
    let key = crate::token::secret(&data_dir.join(KEY_FILE), "file URL key")?;
    let signer = Signer::new(key.into_bytes(), base);
    let store: Arc<dyn BlobStore> = match &config.blobs {
        None => {
            let dir = embedded_dir(data_dir);
            let store = DirStore::open(&dir, signer.clone())
                .with_context(|| format!("failed to open the file directory {}", dir.display()))?;
            Arc::new(store)
        }
        Some(url) => {
            let mut options =
                S3Options::parse(url).map_err(|e| anyhow::anyhow!("invalid --blobs: {e}"))?;
            if config.s3_access_key_id.is_some() {
                options.access_key_id.clone_from(&config.s3_access_key_id);
            }
            if config.s3_secret_access_key.is_some() {
                options
                    .secret_access_key
                    .clone_from(&config.s3_secret_access_key);
            }
            let s3 = S3Store::connect(options)
                .await
                .map_err(|e| anyhow::anyhow!("cannot use the S3 store {url}: {e}"))?;
            if config.relay {
                Arc::new(Relayed::new(s3, signer.clone()))
            } else {
                Arc::new(s3)
            }
        }
    };
    tracing::info!(
        store = store.name(),
        relay = config.relay,
        "file store ready"
    );
    Ok(Parts { store, signer })
}

/// The directory of the embedded store.
fn embedded_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("files")
}

/// The identity of the blob store `config` names, stored with the data
/// ([`oprc_store::Layout::blobs`]): the same for every start with the
/// same store, whatever the spelling of its settings, and another for
/// another store. Relay mode does not change it (the bytes are where they
/// were). Reads no store: the S3 one is named by its settings.
pub(crate) fn identity(config: &FilesConfig, data_dir: &Path) -> anyhow::Result<String> {
    match &config.blobs {
        Some(url) => Ok(S3Options::parse(url)
            .map_err(|e| anyhow::anyhow!("invalid --blobs: {e}"))?
            .identity()),
        None => {
            let dir = embedded_dir(data_dir);
            let canonical = |p: &Path| {
                canonical(p).with_context(|| format!("failed to resolve the path {}", p.display()))
            };
            Ok(dir_identity(&canonical(data_dir)?, &canonical(&dir)?))
        }
    }
}

/// `dir:` and the directory of an embedded store (both paths canonical):
/// relative to the data directory when inside it, so moving the whole data
/// directory keeps it; else absolute.
fn dir_identity(data_dir: &Path, dir: &Path) -> String {
    match dir.strip_prefix(data_dir) {
        Ok(inside) if inside.as_os_str().is_empty() => "dir:.".to_owned(),
        Ok(inside) => {
            let parts: Vec<_> = inside
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect();
            format!("dir:{}", parts.join("/"))
        }
        Err(_) => format!("dir:{}", dir.display()),
    }
}

/// The canonical form of `path`, also when it does not exist yet (the
/// canonical form of its nearest existing ancestor and the rest of it).
fn canonical(path: &Path) -> std::io::Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return Err(e);
            };
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            Ok(canonical(parent)?.join(name))
        }
        other => other,
    }
}

pub(crate) fn invoker_files(config: &FilesConfig, parts: &Parts) -> oprc_invoker::Files {
    oprc_invoker::Files {
        store: parts.store.clone(),
        signer: parts.signer.clone(),
        url_ttl: config.url_ttl,
        max_upload_age: config.gc_grace / 2,
    }
}

pub(crate) fn adapter(config: &FilesConfig, parts: &Parts) -> oprc_adapter::Adapter {
    oprc_adapter::Adapter {
        store: parts.store.clone(),
        signer: parts.signer.clone(),
        url_ttl: config.url_ttl,
        max_file_bytes: config.max_file_bytes,
    }
}

/// The duration syntax of settings: a number and a unit (`ms`, `s`, `m`,
/// `h`), e.g. `500ms`, `30s`, `15m`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("expected a duration like 500ms, 30s, 15m or 1h, got {s:?}"))?;
    if n < 0.0 {
        return Err(format!("{s:?} is negative"));
    }
    Duration::try_from_secs_f64(n * scale).map_err(|_| format!("{s:?} is not a valid duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_stores_are_named_by_their_place_in_the_data_directory() {
        let check = |data: &str, dir: &str, want: &str| {
            assert_eq!(dir_identity(Path::new(data), Path::new(dir)), want, "{dir}");
        };
        check("/srv/oprc-data", "/srv/oprc-data/files", "dir:files");
        check("/moved/there", "/moved/there/files", "dir:files");
        check("/srv/oprc-data", "/srv/oprc-data/a/b", "dir:a/b");
        check("/srv/oprc-data", "/srv/oprc-data", "dir:.");
        check("/srv/oprc-data", "/mnt/big/files", "dir:/mnt/big/files");
        // A sibling whose name starts like the data directory is outside.
        check(
            "/srv/oprc-data",
            "/srv/oprc-data2/files",
            "dir:/srv/oprc-data2/files",
        );
    }

    #[test]
    fn identities_follow_the_store_not_its_spelling() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let id = |blobs: Option<&str>, data_dir: &Path| {
            let config = FilesConfig {
                blobs: blobs.map(Into::into),
                ..FilesConfig::default()
            };
            identity(&config, data_dir).unwrap()
        };
        // The embedded store, before and after it exists, by any path.
        assert_eq!(id(None, &data), "dir:files");
        std::fs::create_dir_all(data.join("files")).unwrap();
        assert_eq!(id(None, &data), "dir:files");
        assert_eq!(id(None, &tmp.path().join("data/../data/.")), "dir:files");
        // A data directory that is not there yet.
        assert_eq!(id(None, &tmp.path().join("fresh")), "dir:files");
        let s3 = "s3://files?endpoint=http://127.0.0.1:9000";
        assert_eq!(id(Some(s3), &data), s3);
        // Relay mode keeps the store's identity.
        let relayed = FilesConfig {
            blobs: Some(s3.into()),
            relay: true,
            ..FilesConfig::default()
        };
        assert_eq!(identity(&relayed, &data).unwrap(), s3);
    }
}
