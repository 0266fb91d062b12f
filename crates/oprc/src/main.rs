//! `oprc`: the Oparaca binary. `oprc serve` runs a node; `oprc export` and
//! `oprc import` move a node's data between stores (`archive`); the other
//! subcommands (`pkg`, `cls`, `fn`, `obj`, `invoke`, `inv`) are clients of a
//! node's HTTP API; `obj new -f` and `obj file` stream objects' files
//! (`transfer`).
//!
//! Data goes to stdout (`-o json|yaml|table`), progress, warnings and errors
//! to stderr. Client commands send `--token`, or else the admin token of a
//! node on this machine from its data directory (`client::token_for`). Exit codes (see [`exit`]): 0 success; 1 refused (HTTP 4xx),
//! invocation FAILED, or a local error; 2 usage error; 3 node unreachable or
//! HTTP 5xx; 4 `--wait` timed out.

mod archive;
mod cli;
mod client;
mod cmd;
mod exit;
mod logging;
mod output;
mod serve;
mod transfer;

use std::process::ExitCode;

// A node allocates small, short-lived buffers per request on every core;
// mimalloc handles that pattern markedly better than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use crate::cli::{Cli, Command, LogFormat};
use crate::exit::Exit;

fn main() -> ExitCode {
    let Cli { global, command } = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Refused.into();
        }
    };
    let result = match command {
        Command::Serve(args) => {
            logging::init(args.log_format, "info");
            runtime.block_on(serve::run(args, global))
        }
        Command::Export(args) => {
            logging::init(LogFormat::Text, "warn");
            runtime.block_on(archive::export(args, global))
        }
        Command::Import(args) => {
            logging::init(LogFormat::Text, "warn");
            runtime.block_on(archive::import(args, global))
        }
        Command::Client(cmd) => {
            logging::init(LogFormat::Text, "warn");
            runtime.block_on(cmd::run(global, cmd))
        }
    };
    match result {
        Ok(()) => Exit::Success.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::code_of(&e).into()
        }
    }
}
