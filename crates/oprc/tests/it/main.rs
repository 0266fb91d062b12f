//! Integration tests of the `oprc` binary: argument handling, exit codes
//! and output, against a closed port and a scripted fake node.

mod archive;
mod client;
mod crash;
mod e2e;
mod engines;
mod fake;
mod faults;
mod files;
mod proc;
mod storage_errors;
mod usage;

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The outcome of one `oprc` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `oprc` with no `OPRC_*` variables from the caller's environment.
pub fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_oprc"));
    c.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("OPRC_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c
}

pub fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `oprc args` with an empty stdin.
pub fn oprc(args: &[&str]) -> Run {
    finish(cmd(args).stdin(Stdio::null()).output().expect("oprc runs"))
}

/// Runs `oprc args` with `input` on stdin.
pub fn oprc_stdin(args: &[&str], input: &str) -> Run {
    let mut child = cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("oprc runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    finish(child.wait_with_output().unwrap())
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Runs `oprc args` with one environment variable set.
pub fn finish_with_env(args: &[&str], key: &str, value: &str) -> Run {
    finish(
        cmd(args)
            .env(key, value)
            .stdin(Stdio::null())
            .output()
            .expect("oprc runs"),
    )
}
