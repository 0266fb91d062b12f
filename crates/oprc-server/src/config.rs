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
    pub api: oprc_ingress::Options,
    pub invoker: oprc_invoker::Options,
    pub engine: oprc_engine::Options,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 6180)),
            data_dir: PathBuf::from("oprc-data"),
            apply: Vec::new(),
            sync: true,
            api: oprc_ingress::Options::default(),
            invoker: oprc_invoker::Options::default(),
            engine: oprc_engine::Options::default(),
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
        self
    }

    /// Reads a YAML (or JSON) config file of [`Overrides`].
    pub fn read_file(path: &Path) -> anyhow::Result<Overrides> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read config file {}", path.display()))?;
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
        Ok(())
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
