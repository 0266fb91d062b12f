//! What runs a function: an HTTP endpoint or local worker processes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

/// Where a function's code runs. Two equal deployments are the same
/// deployment: deploying one again changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deployment {
    /// An existing endpoint (`config.staticUrl`, `provision.http.url`). The
    /// task is POSTed to this URL. Only `http://` is supported.
    Http { url: String },
    /// Local worker processes (`provision.process`).
    Process(ProcessSpec),
}

/// How to run a function as local worker processes. Each worker is an HTTP
/// server listening on the Unix socket `$OPRC_SOCKET` (both SDKs do) or on
/// `127.0.0.1:$PORT`; the task is POSTed to `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// Program and arguments (argv). A shell string becomes
    /// `["sh", "-c", s]`, see [`ProcessSpec::shell`]. The program leads its
    /// own process group, which is what is signalled.
    pub command: Vec<String>,
    /// Environment added to the engine's own; `PORT` and `OPRC_SOCKET` are
    /// always set by the engine and cannot be overridden.
    pub env: BTreeMap<String, String>,
    /// Working directory; the engine's own when `None`.
    pub workdir: Option<PathBuf>,
    /// Instances kept running even without calls (started eagerly).
    pub min_instances: u32,
    /// Most instances ever running at once.
    pub max_instances: u32,
    /// In-flight calls per instance. A call that finds every instance at
    /// this number makes the pool grow (up to `max_instances`) or waits for
    /// a free slot, bounded by its timeout.
    pub concurrency: u32,
    /// An instance without calls for this long is stopped, down to
    /// `min_instances`.
    pub idle_timeout: Duration,
    /// Longest time from start until a worker accepts connections on its
    /// socket or its port.
    pub readiness_timeout: Duration,
}

impl ProcessSpec {
    /// A spec for `command` with the defaults: scale between 0 and 4
    /// instances of 16 concurrent calls, idle after 5 minutes, ready within
    /// 30 seconds.
    pub fn new(command: Vec<String>) -> Self {
        Self {
            command,
            env: BTreeMap::new(),
            workdir: None,
            min_instances: 0,
            max_instances: 4,
            concurrency: 16,
            idle_timeout: Duration::from_secs(300),
            readiness_timeout: Duration::from_secs(30),
        }
    }

    /// A spec running `script` with `sh -c`. When the script is one simple
    /// command (`python3 fn.py`, `A=1 ./worker --x`), `exec` is put before
    /// it, so the worker replaces the shell: the instance's pid is the
    /// worker's and signals reach it directly. Other scripts (`a; b`,
    /// `a && b`, pipelines, ...) keep the shell as the group leader.
    pub fn shell(script: impl Into<String>) -> Self {
        let script = oprc_core::shell::exec_script(&script.into());
        Self::new(vec!["sh".into(), "-c".into(), script])
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        match self.command.first() {
            None => return Err("the command is empty".into()),
            Some(p) if p.is_empty() => return Err("the program name is empty".into()),
            Some(_) => {}
        }
        if self.max_instances == 0 {
            return Err("max_instances must be at least 1".into());
        }
        if self.min_instances > self.max_instances {
            return Err(format!(
                "min_instances ({}) is larger than max_instances ({})",
                self.min_instances, self.max_instances
            ));
        }
        if self.concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        if self.readiness_timeout.is_zero() {
            return Err("readiness_timeout must not be zero".into());
        }
        if let Some(k) = self.env.keys().find(|k| k.is_empty() || k.contains('=')) {
            return Err(format!("invalid environment variable name {k:?}"));
        }
        Ok(())
    }
}

/// Parses and checks the URL of an HTTP deployment.
pub(crate) fn parse_http_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("invalid url {url:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(format!("https urls are not supported yet: {url:?}")),
        _ => return Err(format!("url {url:?} must start with http://")),
    }
    if uri.authority().is_none() {
        return Err(format!("url {url:?} has no host"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: ProcessSpec, expected: Result<(), &str>) {
        let got = spec.validate();
        match expected {
            Ok(()) => assert_eq!(got, Ok(())),
            Err(part) => {
                let msg = got.expect_err("spec should be rejected");
                assert!(msg.contains(part), "{msg:?} should contain {part:?}");
            }
        }
    }

    #[test]
    fn process_specs_are_checked() {
        check(ProcessSpec::shell("python3 fn.py"), Ok(()));
        check(ProcessSpec::new(vec![]), Err("command is empty"));
        check(ProcessSpec::new(vec![String::new()]), Err("program name"));
        let base = ProcessSpec::shell("x");
        check(
            ProcessSpec {
                max_instances: 0,
                ..base.clone()
            },
            Err("max_instances"),
        );
        check(
            ProcessSpec {
                min_instances: 5,
                max_instances: 2,
                ..base.clone()
            },
            Err("larger than max_instances"),
        );
        check(
            ProcessSpec {
                concurrency: 0,
                ..base.clone()
            },
            Err("concurrency"),
        );
        let mut bad_env = base;
        bad_env.env.insert("A=B".into(), "x".into());
        check(bad_env, Err("environment"));
    }

    #[test]
    fn http_urls_are_checked() {
        assert!(parse_http_url("http://127.0.0.1:8080/fn").is_ok());
        assert!(
            parse_http_url("https://example.com/")
                .unwrap_err()
                .contains("https")
        );
        assert!(parse_http_url("ftp://x/").unwrap_err().contains("http://"));
        assert!(parse_http_url("/just/a/path").is_err());
        assert!(parse_http_url("not a url").is_err());
    }
}
