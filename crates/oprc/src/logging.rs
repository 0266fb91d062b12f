//! Logs on stderr, filtered by `OPRC_LOG` (or `RUST_LOG`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the subscriber; `default` is the filter when neither variable
/// is set (or when the set one does not parse).
pub fn init(format: LogFormat, default: &str) {
    let spec = std::env::var("OPRC_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    let filter = match spec.as_deref().map(EnvFilter::try_new) {
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            eprintln!("oprc: warning: ignoring the log filter ({e}); using `{default}`");
            EnvFilter::new(default)
        }
        None => EnvFilter::new(default),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
