//! A real S3 server for tests: `s3s-fs`, which checks SigV4 fully
//! (tampered, expired and wrong-method presigned URLs get 403), started on
//! a free port over a temporary directory and killed when dropped.
//!
//! The binary is found in `OPRC_S3S_FS`, on `PATH`, in `$CARGO_HOME/bin`
//! or in `~/.cargo/bin`; without it [`S3sServer::start`] panics (tests
//! that need S3 fail, they never skip): `scripts/install-s3s-fs.sh`
//! installs it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key of the servers started here.
pub const KEY: &str = "oprc-test-key";
/// Their secret key.
pub const SECRET: &str = "oprc-test-secret";
/// The bucket every server starts with.
pub const BUCKET: &str = "oprc-files";

/// Where the `s3s-fs` binary is (panics with how to install it).
pub fn s3s_fs_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("OPRC_S3S_FS") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "OPRC_S3S_FS={} is not a file",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("s3s-fs"));
    let cargo_home = std::env::var_os("CARGO_HOME").map(PathBuf::from);
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo"));
    let in_cargo = cargo_home
        .into_iter()
        .chain(home)
        .map(|c| c.join("bin/s3s-fs"));
    on_path
        .chain(in_cargo)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "s3s-fs (the S3 server these tests run against) is not installed: run \
             scripts/install-s3s-fs.sh (cargo install s3s-fs@0.14.1 --features binary \
             --locked), or point OPRC_S3S_FS at the binary"
            )
        })
}

/// A running `s3s-fs`, killed when dropped.
pub struct S3sServer {
    child: Child,
    /// The directory it serves (buckets are its subdirectories).
    pub root: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Drop for S3sServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3sServer {
    /// Starts a server with the bucket [`BUCKET`] and waits until it
    /// accepts connections.
    pub fn start() -> Self {
        let binary = s3s_fs_binary();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let log = root.path().join("server.log");
        // A port that was free a moment ago can be taken before the server
        // binds it: then it exits, and another port is tried.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(&binary)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", KEY, "--secret-key", SECRET])
                .arg(root.path())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self {
                        child,
                        root,
                        endpoint: format!("http://127.0.0.1:{port}"),
                    };
                }
                assert!(
                    Instant::now() < deadline,
                    "s3s-fs did not listen on {port} within 20 s: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!(
            "s3s-fs exited at start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// The `--blobs` URL of the bucket [`BUCKET`].
    pub fn blobs_url(&self) -> String {
        format!("s3://{BUCKET}?endpoint={}", self.endpoint)
    }

    /// Options for `bucket` with these credentials.
    pub fn options(&self, bucket: &str, key: &str, secret: &str) -> crate::S3Options {
        let mut o = crate::S3Options::parse(&format!("s3://{bucket}?endpoint={}", self.endpoint))
            .expect("a valid S3 URL");
        o.access_key_id = Some(key.into());
        o.secret_access_key = Some(secret.into());
        o
    }
}
