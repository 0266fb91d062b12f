//! Node configuration: defaults < config file < `OPRC_*` environment <
//! flags. The file and the merge live here; the binary maps its flags and
//! environment onto [`Overrides`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Packages applied at start (after the stored ones are loaded).
    pub apply: Vec<PathBuf>,
    /// `false`: write-behind storage (faster; a crash may lose the last
    /// moments of writes).
    pub sync: bool,
    /// `false`: packages whose functions have `provision.process` are
    /// refused, and stored ones are not started (the node runs no command).
    pub process_functions: bool,
    pub api: oprc_ingress::Options,
    pub invoker: oprc_invoker::Options,
    pub engine: oprc_engine::Options,
    pub files: crate::files::FilesConfig,
    /// The state store: a `postgres://` URL, or `None` for the embedded
    /// store in the data directory.
    pub state: Option<String>,
    /// The invocation log: a `nats://` URL (JetStream), or `None` for the
    /// embedded log in the data directory.
    pub invocation_log: Option<String>,
    /// How often a node on a shared state store checks whether another
    /// node changed a package.
    pub package_poll: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 6180)),
            data_dir: PathBuf::from("oprc-data"),
            apply: Vec::new(),
            sync: true,
            process_functions: true,
            api: oprc_ingress::Options::default(),
            invoker: oprc_invoker::Options::default(),
            engine: oprc_engine::Options::default(),
            files: crate::files::FilesConfig::default(),
            state: None,
            invocation_log: None,
            package_poll: Duration::from_millis(500),
        }
    }
}

/// Settings that a config file, the environment or flags may set. Every
/// field is optional: a missing one keeps the value from the layer below.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Overrides {
    /// Address of the HTTP API, e.g. `127.0.0.1:6180`.
    pub listen: Option<SocketAddr>,
    /// Where the embedded store keeps its data.
    pub data_dir: Option<PathBuf>,
    /// Package files to apply at start.
    #[serde(default)]
    pub apply: Vec<PathBuf>,
    /// Bearer token required on `/api` (required on a non-loopback address).
    pub token: Option<String>,
    /// Request body limit in bytes.
    pub max_body_bytes: Option<usize>,
    /// Partitions of the object space and async log.
    pub partitions: Option<u16>,
    /// Retention of invocation records, in seconds.
    pub retention_secs: Option<u64>,
    /// `false` for write-behind storage.
    pub sync: Option<bool>,
    /// `false` refuses functions with `provision.process`.
    pub process_functions: Option<bool>,
    /// Origins whose web pages may call the API (CORS), e.g.
    /// `http://localhost:3000`.
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Host names the node answers to besides its listen address (`NAME`
    /// or `NAME:PORT`), e.g. behind a proxy.
    #[serde(default)]
    pub public_hosts: Vec<String>,
    /// Where files live: `s3://BUCKET?endpoint=URL&region=REGION` (default:
    /// the data directory).
    pub blobs: Option<String>,
    /// The state store: `postgres://USER@HOST:PORT/DB` (default: embedded).
    pub state: Option<String>,
    /// The invocation log: `nats://HOST:PORT` (default: embedded).
    pub invocation_log: Option<String>,
    /// The S3 access key (else `AWS_ACCESS_KEY_ID`); config file only.
    pub s3_access_key_id: Option<String>,
    /// The S3 secret key (else `AWS_SECRET_ACCESS_KEY`); config file only.
    pub s3_secret_access_key: Option<String>,
    /// Stream every file through the node (relay mode).
    pub blob_relay: Option<bool>,
    /// Lifetime of file URLs, e.g. `15m`.
    #[serde(default, deserialize_with = "duration")]
    pub url_ttl: Option<Duration>,
    /// Largest file the node receives, in bytes.
    pub max_file_bytes: Option<u64>,
    /// Age after which unused file versions are deleted, e.g. `1h`.
    #[serde(default, deserialize_with = "duration")]
    pub file_gc_grace: Option<Duration>,
    /// Time between passes of the file collector, e.g. `60s`.
    #[serde(default, deserialize_with = "duration")]
    pub file_gc_interval: Option<Duration>,
    /// The URL this node is reached at, the base of its file URLs (default:
    /// `http://` and the listen address).
    pub public_url: Option<String>,
}

/// Reads a duration setting (`15m`, `30s`, ...; a number is seconds).
fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Secs(n)) => Ok(Some(Duration::from_secs(n))),
        Some(Raw::Text(t)) => crate::files::parse_duration(&t)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

impl Config {
    /// Applies a layer of overrides on top of this config.
    pub fn merge(mut self, o: Overrides) -> Self {
        if let Some(v) = o.listen {
            self.listen = v;
        }
        if let Some(v) = o.data_dir {
            self.data_dir = v;
        }
        self.apply.extend(o.apply);
        if let Some(v) = o.token {
            self.api.token = Some(v);
        }
        if let Some(v) = o.max_body_bytes {
            self.api.max_body_bytes = v;
        }
        if let Some(v) = o.partitions {
            self.invoker.partitions = v;
        }
        if let Some(v) = o.retention_secs {
            self.invoker.retention = Duration::from_secs(v);
        }
        if let Some(v) = o.sync {
            self.sync = v;
        }
        if let Some(v) = o.process_functions {
            self.process_functions = v;
        }
        if let Some(v) = o.state {
            self.state = Some(v);
        }
        if let Some(v) = o.invocation_log {
            self.invocation_log = Some(v);
        }
        self.api.allowed_origins.extend(o.allow_origins);
        self.api.public_hosts.extend(o.public_hosts);
        let f = &mut self.files;
        if let Some(v) = o.blobs {
            f.blobs = Some(v);
        }
        if let Some(v) = o.s3_access_key_id {
            f.s3_access_key_id = Some(v);
        }
        if let Some(v) = o.s3_secret_access_key {
            f.s3_secret_access_key = Some(v);
        }
        if let Some(v) = o.blob_relay {
            f.relay = v;
        }
        if let Some(v) = o.url_ttl {
            f.url_ttl = v;
        }
        if let Some(v) = o.max_file_bytes {
            f.max_file_bytes = v;
        }
        if let Some(v) = o.file_gc_grace {
            f.gc_grace = v;
        }
        if let Some(v) = o.file_gc_interval {
            f.gc_interval = v;
        }
        if let Some(v) = o.public_url {
            f.public_url = Some(v);
        }
        self
    }

    /// Reads a YAML (or JSON) config file of [`Overrides`].
    ///
    /// serde_norway refuses values nested deeper than 128 without
    /// recursing further, but its scanner takes time growing with the
    /// square of the flow nesting (`[[[...`: 20 s for 100,000 levels).
    /// The number of `[` and `{` bounds that nesting, so a file with more
    /// of them than a config has any use for is refused before it is read.
    pub fn read_file(path: &Path) -> anyhow::Result<Overrides> {
        const MAX_BRACKETS: usize = 64;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read config file {}", path.display()))?;
        let brackets = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
        if brackets > MAX_BRACKETS {
            anyhow::bail!(
                "invalid config file {}: more than {MAX_BRACKETS} `[` and `{{`",
                path.display()
            );
        }
        serde_norway::from_str(&text)
            .with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Refuses configurations that would be unsafe to run.
    pub fn check(&self) -> anyhow::Result<()> {
        if !self.listen.ip().is_loopback() && self.api.token.is_none() {
            anyhow::bail!(
                "listening on {} (not loopback) needs an API token: set --token or OPRC_TOKEN",
                self.listen
            );
        }
        if self.invoker.partitions == 0 {
            anyhow::bail!("partitions must be at least 1");
        }
        for origin in &self.api.allowed_origins {
            oprc_ingress::parse_origin(origin)
                .map_err(|e| anyhow::anyhow!("invalid allowed origin: {e}"))?;
        }
        for host in &self.api.public_hosts {
            oprc_ingress::parse_public_host(host)
                .map_err(|e| anyhow::anyhow!("invalid public host: {e}"))?;
        }
        if let Some(url) = &self.state
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            anyhow::bail!(
                "the state store (--state) must be a postgres:// URL, got `{}`; leave it unset \
                 for the embedded store in the data directory",
                crate::backends::redact(url)
            );
        }
        if let Some(url) = &self.invocation_log
            && !url.starts_with("nats://")
        {
            anyhow::bail!(
                "the invocation log (--invocation-log) must be a nats:// URL, got `{}`; leave it \
                 unset for the embedded log in the data directory",
                crate::backends::redact(url)
            );
        }
        self.files.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_win() {
        let file = Overrides {
            partitions: Some(4),
            data_dir: Some("a".into()),
            ..Default::default()
        };
        let flags = Overrides {
            data_dir: Some("b".into()),
            ..Default::default()
        };
        let c = Config::default().merge(file).merge(flags);
        assert_eq!(c.invoker.partitions, 4);
        assert_eq!(c.data_dir, PathBuf::from("b"));
    }

    /// Reads `text` as a config file; the error with its causes.
    fn read(text: &str) -> Result<Overrides, String> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        Config::read_file(file.path()).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn config_files_are_yaml_or_json() {
        let o = read("listen: 127.0.0.1:7000\napply: [a.yaml]\npartitions: 8\n").unwrap();
        assert_eq!(o.listen, Some("127.0.0.1:7000".parse().unwrap()));
        assert_eq!(o.apply, vec![PathBuf::from("a.yaml")]);
        let o = read(r#"{"partitions": 2, "sync": false}"#).unwrap();
        assert_eq!((o.partitions, o.sync), (Some(2), Some(false)));
        let o = read("urlTtl: 10m\nfileGcGrace: 3600\nblobRelay: true\n").unwrap();
        assert_eq!(o.url_ttl, Some(Duration::from_secs(600)));
        assert_eq!(o.file_gc_grace, Some(Duration::from_secs(3600)));
        assert_eq!(o.blob_relay, Some(true));
        let o = read("s3AccessKeyId: k\ns3SecretAccessKey: s\n").unwrap();
        let c = Config::default().merge(o);
        assert_eq!(c.files.s3_access_key_id.as_deref(), Some("k"));
        assert_eq!(c.files.s3_secret_access_key.as_deref(), Some("s"));
        let err = read("urlTtl: soon\n").unwrap_err();
        assert!(err.contains("expected a duration"), "{err}");
    }

    #[test]
    fn deeply_nested_config_files_are_refused() {
        const DEEP: usize = 100_000;
        // Block nesting: serde_norway collects the events in a loop (in
        // linear time here), and the first value out of place ends the
        // read, as no field takes a nested value; it would stop at 128
        // levels anyway.
        for text in [
            format!("apply:\n  {}x\n", "- ".repeat(DEEP)),
            format!("{}x\n", "- ".repeat(DEEP)),
            format!("other:\n  {}x\n", "? ".repeat(DEEP)),
        ] {
            let err = read(&text).unwrap_err();
            assert!(err.starts_with("invalid config file"), "{err}");
        }
        // Flow nesting: refused before it is scanned.
        for text in [
            format!("apply: {}{}\n", "[".repeat(DEEP), "]".repeat(DEEP)),
            format!("{}1{}\n", "{a: ".repeat(DEEP), "}".repeat(DEEP)),
            "[".repeat(DEEP),
        ] {
            let err = read(&text).unwrap_err();
            assert!(err.ends_with("more than 64 `[` and `{`"), "{err}");
        }
    }

    #[test]
    fn browser_settings_layer_and_are_checked() {
        let file = Overrides {
            allow_origins: vec!["http://localhost:3000".into()],
            process_functions: Some(false),
            ..Default::default()
        };
        let flags = Overrides {
            allow_origins: vec!["https://console.example".into()],
            public_hosts: vec!["oprc.example".into()],
            ..Default::default()
        };
        let c = Config::default().merge(file).merge(flags);
        assert_eq!(c.api.allowed_origins.len(), 2);
        assert_eq!(c.api.public_hosts, ["oprc.example"]);
        assert!(!c.process_functions);
        assert!(c.check().is_ok());
        let bad = Config::default().merge(Overrides {
            allow_origins: vec!["*".into()],
            ..Default::default()
        });
        assert!(
            bad.check()
                .unwrap_err()
                .to_string()
                .contains("every web page")
        );
    }

    #[test]
    fn file_settings_are_checked() {
        let c = |ttl, grace| {
            Config::default()
                .merge(Overrides {
                    url_ttl: Some(Duration::from_secs(ttl)),
                    file_gc_grace: Some(Duration::from_secs(grace)),
                    ..Default::default()
                })
                .check()
        };
        assert!(c(900, 3600).is_ok());
        let err = c(900, 1000).unwrap_err().to_string();
        assert!(err.contains("at least twice the URL lifetime"), "{err}");
        let bad = Config::default().merge(Overrides {
            blobs: Some("s4://x".into()),
            ..Default::default()
        });
        assert!(
            bad.check()
                .unwrap_err()
                .to_string()
                .contains("invalid --blobs")
        );
    }

    #[test]
    fn public_address_needs_a_token() {
        let mut c = Config {
            listen: "0.0.0.0:6180".parse().unwrap(),
            ..Default::default()
        };
        assert!(c.check().is_err());
        c.api.token = Some("t".into());
        assert!(c.check().is_ok());
    }
}
