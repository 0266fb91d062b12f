//! Nodes from `oprc` binaries (`--node-bin LABEL=PATH`), e.g. the build of
//! another commit, measured side by side with the same load, and the CPU
//! time each one's processes spend.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context;

/// A node process started from a binary, with the bench package applied.
pub struct External {
    pub label: String,
    pub addr: SocketAddr,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

/// CPU time of a process and of its children still running, in clock
/// ticks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub node: u64,
    pub children: u64,
}

impl External {
    /// `spec` is `LABEL=PATH`.
    pub async fn start(spec: &str, package: &str) -> anyhow::Result<Self> {
        let (label, path) = spec
            .split_once('=')
            .with_context(|| format!("--node-bin takes LABEL=PATH, not {spec:?}"))?;
        Self::spawn(label, std::path::Path::new(path), package, &[], &[], None).await
    }

    /// A node from `bin` with `package` applied, started with `args` after
    /// the usual ones and `env` added; its stderr goes to `log` (or
    /// nowhere).
    pub async fn spawn(
        label: &str,
        bin: &std::path::Path,
        package: &str,
        args: &[String],
        env: &[(&str, &str)],
        log: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let pkg = dir.path().join("bench.yaml");
        std::fs::write(&pkg, package)?;
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?
        };
        let stderr = match log {
            Some(p) => Stdio::from(std::fs::File::create(p)?),
            None => Stdio::null(),
        };
        let child = tokio::process::Command::new(PathBuf::from(bin))
            .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--apply")
            .arg(&pkg)
            .args(args)
            .envs(env.iter().copied())
            .env_remove("OPRC_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        crate::setup::wait_ready(addr).await?;
        Ok(Self {
            label: label.to_owned(),
            addr,
            child,
            _dir: dir,
        })
    }

    /// CPU time so far of the node and of its live descendants (the
    /// function workers, also behind a shell).
    pub fn cpu(&self) -> Cpu {
        self.child.id().map_or_else(Cpu::default, Cpu::of)
    }

    /// The node process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// `pid` (first) and its live descendants.
pub fn family(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            if let Some(p) = entry.file_name().to_str().and_then(|s| s.parse().ok())
                && let Some(parent) = parent(p)
            {
                parents.push((p, parent));
            }
        }
    }
    let mut family = vec![pid];
    let mut i = 0;
    while i < family.len() {
        let up = family[i];
        family.extend(parents.iter().filter(|(_, pp)| *pp == up).map(|(p, _)| *p));
        i += 1;
    }
    family
}

impl Cpu {
    /// CPU time so far of `pid` and of its live descendants.
    pub fn of(pid: u32) -> Self {
        let family = family(pid);
        Self {
            node: ticks(pid).unwrap_or(0),
            children: family[1..].iter().map(|p| ticks(*p).unwrap_or(0)).sum(),
        }
    }
}

/// The fields of `/proc/PID/stat` after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = text.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

pub fn parent(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// Whether `pid` runs (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s != "Z"))
}

/// utime + stime.
pub fn ticks(pid: u32) -> Option<u64> {
    let f = stat_fields(pid)?;
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks per second (USER_HZ; 100 on Linux).
pub const TICKS_PER_SEC: f64 = 100.0;
