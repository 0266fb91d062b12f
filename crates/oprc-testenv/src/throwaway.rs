//! Throwaway PostgreSQL and NATS servers that a fault test starts, stops
//! and restarts itself, on ports and directories of its own: the
//! machine's shared services are never touched. Each is stopped and its
//! directory removed when dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on loopback (nothing listens there now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn answers(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn wait_until(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PostgreSQL cluster of its own (`initdb` + `pg_ctl`, trust auth, user
/// `postgres`). As root, the cluster runs as the `postgres` user, since
/// PostgreSQL refuses to run as root.
pub struct ThrowawayPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl ThrowawayPostgres {
    /// Creates and starts a cluster; fails with what to install when
    /// PostgreSQL's server binaries are missing.
    pub fn start() -> Self {
        let bin = postgres_bin();
        let dir = tempfile::Builder::new()
            .prefix("oprc-pg-fault")
            .tempdir()
            .expect("temp dir");
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "cannot give {} to the postgres user",
                dir.path().display()
            );
        }
        let pg = Self {
            dir,
            bin,
            port: free_port(),
        };
        let data = pg.data();
        let out = pg
            .as_postgres(&pg.bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.up();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_postgres(&self, program: &Path) -> Command {
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    /// The admin URL (database `postgres`).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it takes connections.
    pub fn up(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.dir.path().display()
        );
        let status = self
            .as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-o", &opts, "start"])
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl runs");
        assert!(status.success(), "pg_ctl start failed:\n{}", self.log());
        wait_until(
            "the throwaway postgresql does not listen",
            Duration::from_secs(30),
            || answers(self.port),
        );
    }

    /// Stops the server at once (`-m immediate`: as a crash would; it
    /// recovers from its WAL at the next start).
    pub fn down(&self) {
        let status = self
            .as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl runs");
        assert!(status.success(), "pg_ctl stop failed:\n{}", self.log());
    }

    /// Freezes the server (SIGSTOP to the postmaster and every backend):
    /// connections stay open and nothing answers, as on a hung host.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pidfile = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .expect("the throwaway postgresql runs");
        let pid = pidfile.lines().next().unwrap_or_default().trim().to_owned();
        // The postmaster first, so that it forks no backend the second
        // step would miss.
        let children = || {
            let ok = Command::new("pkill")
                .args([sig, "-P", &pid])
                .status()
                .is_ok_and(|s| s.code().is_some_and(|c| c <= 1));
            assert!(ok, "pkill {sig} -P {pid} failed");
        };
        let parent = || {
            let ok = Command::new("kill")
                .args([sig, &pid])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill {sig} {pid} failed");
        };
        parent();
        children();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let _ = self
            .as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// The newest installed PostgreSQL server's `bin` directory.
fn postgres_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server binaries (initdb) under /usr/lib/postgresql: install \
             postgresql (scripts/ensure-postgres.sh --throwaway does)"
        )
    })
}

/// A NATS server with JetStream of its own, file-backed in its directory;
/// restarted on the same port and store.
pub struct ThrowawayNats {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl ThrowawayNats {
    /// Starts a server; the binary is `OPRC_NATS_SERVER_BIN` or
    /// `nats-server` on the PATH (scripts/ensure-nats.sh prints both).
    pub fn start() -> Self {
        let bin = std::env::var_os("OPRC_NATS_SERVER_BIN")
            .map(PathBuf::from)
            .or_else(|| which("nats-server"))
            .unwrap_or_else(|| {
                panic!(
                    "no nats-server binary: set OPRC_NATS_SERVER_BIN or put nats-server on \
                     the PATH (scripts/ensure-nats.sh installs one)"
                )
            });
        let dir = tempfile::Builder::new()
            .prefix("oprc-nats-fault")
            .tempdir()
            .expect("temp dir");
        let mut nats = Self {
            dir,
            bin,
            port: free_port(),
            child: None,
        };
        nats.up();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port and store.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log file");
        let child = Command::new(&self.bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path().join("store"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let port = self.port;
        wait_until(
            "the throwaway nats-server does not listen",
            Duration::from_secs(30),
            || answers(port),
        );
    }

    /// Kills the server (SIGKILL: as a crash would).
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for ThrowawayNats {
    fn drop(&mut self) {
        self.down();
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}
