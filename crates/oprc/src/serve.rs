//! `oprc serve`: layers the config (defaults < file < environment < flags),
//! binds the listener and runs a node until SIGINT or SIGTERM. A second
//! SIGINT exits at once (code 130).

use std::io::ErrorKind;
use std::path::Path;

use anyhow::Context;
use oprc_server::{Config, Overrides};

use crate::cli::{Global, ServeArgs};

/// The environment-and-flags layer (clap reads both).
fn overrides(args: &ServeArgs, global: &Global) -> Overrides {
    Overrides {
        listen: args.listen,
        data_dir: global.data_dir.clone(),
        apply: args.apply.clone(),
        token: global.token.clone(),
        max_body_bytes: args.max_body_bytes,
        partitions: args.partitions,
        retention_secs: args.retention_secs,
        sync: args.no_sync.then_some(false),
        process_functions: args.no_process_functions.then_some(false),
        allow_origins: args.allow_origins.clone(),
        public_hosts: args.public_hosts.clone(),
        blobs: args.blobs.clone(),
        state: args.state.clone(),
        invocation_log: args.invocation_log.clone(),
        // Secrets come from the config file or the AWS environment, never
        // from flags (a process list shows flags).
        s3_access_key_id: None,
        s3_secret_access_key: None,
        blob_relay: args.blob_relay.then_some(true),
        url_ttl: args.url_ttl,
        max_file_bytes: args.max_file_bytes,
        file_gc_grace: args.file_gc_grace,
        file_gc_interval: args.file_gc_interval,
        public_url: args.public_url.clone(),
    }
}

pub fn config(args: &ServeArgs, global: &Global) -> anyhow::Result<Config> {
    let mut config = Config::default();
    if let Some(path) = &args.config {
        config = config.merge(Config::read_file(path)?);
    }
    let config = config.merge(overrides(args, global));
    config.check()?;
    Ok(config)
}

pub async fn run(args: ServeArgs, global: Global) -> anyhow::Result<()> {
    let config = config(&args, &global)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            let why = if e.kind() == ErrorKind::AddrInUse {
                "the address is already in use".to_owned()
            } else {
                e.to_string()
            };
            anyhow::anyhow!(
                "cannot listen on {}: {why}; pick another address with --listen (or OPRC_LISTEN)",
                config.listen
            )
        })?;
    let addr = listener
        .local_addr()
        .context("the listener has no address")?;
    let state = match &config.state {
        Some(url) => format!("state in {}", oprc_server::redact_url(url)),
        None => format!("data in {}", shown(&config.data_dir)),
    };
    let log = match &config.invocation_log {
        Some(url) => format!(", async calls in {}", oprc_server::redact_url(url)),
        None => String::new(),
    };
    eprintln!("oprc: node listening on http://{addr} ({state}{log})");
    if config.api.token.is_none() {
        eprintln!(
            "oprc: changing packages needs the admin token in {} (the oprc CLI reads it there)",
            shown(&oprc_server::admin_token_path(&config.data_dir))
        );
    }
    // The node's future is large; keep it off this stack frame.
    Box::pin(oprc_server::run(config, listener, shutdown_signal())).await
}

/// `oprc-data` shows as `./oprc-data`, so it reads as a path.
fn shown(dir: &Path) -> String {
    if dir.is_relative() && !dir.starts_with(".") && !dir.starts_with("..") {
        format!("./{}", dir.display())
    } else {
        dir.display().to_string()
    }
}

/// Completes on the first SIGINT or SIGTERM; then a second SIGINT exits
/// the process at once with code 130.
#[cfg(unix)]
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut int, mut term) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot install signal handlers; stop the node with SIGKILL");
            return std::future::pending().await;
        }
    };
    let name = tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    };
    eprintln!("oprc: {name} received, shutting down (Ctrl-C again to exit at once)");
    tokio::spawn(async move {
        if int.recv().await.is_some() {
            eprintln!("oprc: second SIGINT, exiting now");
            std::process::exit(130);
        }
    });
}

#[cfg(not(unix))]
async fn shutdown_signal() {
    if tokio::signal::ctrl_c().await.is_err() {
        return std::future::pending().await;
    }
    eprintln!("oprc: interrupted, shutting down (Ctrl-C again to exit at once)");
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn serve_args(argv: &[&str]) -> (ServeArgs, Global) {
        let cli = crate::cli::Cli::try_parse_from(["oprc", "serve"].iter().chain(argv)).unwrap();
        let crate::cli::Command::Serve(a) = cli.command else {
            unreachable!("`serve` parses as serve")
        };
        (a, cli.global)
    }

    #[test]
    fn flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("oprc.yaml");
        std::fs::write(
            &file,
            "dataDir: from-file\npartitions: 3\napply: [a.yaml]\n",
        )
        .unwrap();
        let (args, token) = serve_args(&[
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            "from-flag",
            "--apply",
            "b.yaml",
            "--no-sync",
        ]);
        let c = config(&args, &token).unwrap();
        assert_eq!(c.data_dir, Path::new("from-flag"));
        assert_eq!(c.invoker.partitions, 3);
        assert_eq!(c.apply, [Path::new("a.yaml"), Path::new("b.yaml")]);
        assert!(!c.sync);
    }

    #[test]
    fn a_public_address_without_a_token_is_refused() {
        let (args, token) = serve_args(&["--listen", "0.0.0.0:6180"]);
        assert!(
            config(&args, &token)
                .unwrap_err()
                .to_string()
                .contains("token")
        );
        let (args, token) = serve_args(&["--listen", "0.0.0.0:6180", "--token", "t"]);
        assert_eq!(
            config(&args, &token).unwrap().api.token.as_deref(),
            Some("t")
        );
    }

    #[test]
    fn process_functions_can_be_disabled() {
        let (args, global) = serve_args(&["--no-process-functions"]);
        assert!(!config(&args, &global).unwrap().process_functions);
        let (args, global) = serve_args(&[]);
        assert!(config(&args, &global).unwrap().process_functions);
    }

    #[test]
    fn relative_data_dirs_show_as_paths() {
        assert_eq!(shown(Path::new("oprc-data")), "./oprc-data");
        assert_eq!(shown(Path::new("./d")), "./d");
        assert_eq!(shown(Path::new("/var/oprc")), "/var/oprc");
    }
}
