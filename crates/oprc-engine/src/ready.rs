//! When a starting worker is ready, and where it then takes calls: its Unix
//! socket when that accepts a connection, else its `PORT` on loopback once
//! `/proc` shows the listener is the worker's own (see `procfs`).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpStream, UnixStream};
use tokio::time::Instant;

use crate::connector::Endpoint;
use crate::procfs::Owner;

/// What a worker was told to listen on.
pub(crate) struct Probe<'a> {
    /// `OPRC_SOCKET`, when the engine has a socket directory.
    pub socket: Option<&'a Path>,
    /// `PORT`.
    pub port: u16,
    /// The worker's process group (its pid: it leads its own group).
    pub pgid: u32,
}

/// Polls, with back-off, until the worker accepts a connection on its
/// socket (tried first) or its port (then checked); gives up at `timeout`.
/// The reason when it is not ready: nothing accepted in time, or the
/// listener on the port is not the worker's. Cancel-safe.
pub(crate) async fn wait(probe: Probe<'_>, timeout: Duration) -> Result<Endpoint, String> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(2);
    let owner = Arc::new(Owner::new(probe.pgid));
    let targets = [
        SocketAddr::from((Ipv4Addr::LOCALHOST, probe.port)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, probe.port)),
    ];
    loop {
        if let Some(path) = probe.socket
            && let Ok(Ok(_)) = tokio::time::timeout_at(deadline, UnixStream::connect(path)).await
        {
            return Ok(Endpoint::Unix(path.to_owned()));
        }
        for addr in targets {
            let Ok(Ok(_probe)) = tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await
            else {
                continue;
            };
            // Something accepted: every listener that could have taken the
            // connection must be the worker's.
            let check = Arc::clone(&owner);
            let verdict = tokio::task::spawn_blocking(move || check.verify(addr)).await;
            return match verdict {
                Ok(Ok(())) => Ok(Endpoint::Tcp { addr, owner }),
                Ok(Err(reason)) => Err(reason),
                Err(e) => Err(format!("checking the listener failed: {e}")),
            };
        }
        if Instant::now() + delay >= deadline {
            let what = match probe.socket {
                Some(path) => format!("on {} or on port {}", path.display(), probe.port),
                None => format!("on port {}", probe.port),
            };
            return Err(format!(
                "worker did not accept connections {what} within {timeout:?}"
            ));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}
