//! How the pooled client reaches a worker: the engine's table of ready
//! workers ([`Endpoints`], by the authority of their URI) and the connector
//! that dials them, over a Unix socket or over TCP with the worker checked
//! to still hold its listener on every new connection.
//!
//! Only new connections come here; a pooled keep-alive connection is reused
//! without a lookup. A worker that is not (or no longer) in the table gets
//! no connection: the call fails before anything is sent.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use parking_lot::RwLock;
use tokio::net::{TcpStream, UnixStream};
use tokio_util::either::Either;

use crate::procfs::Owner;

/// Where a ready worker takes calls.
#[derive(Debug)]
pub(crate) enum Endpoint {
    /// Its socket in the engine's private directory.
    Unix(PathBuf),
    /// The `PORT` it bound itself; `owner` checks who holds the listener.
    Tcp { addr: SocketAddr, owner: Arc<Owner> },
}

impl Endpoint {
    /// The authority of the worker's URI: its address for TCP (so the
    /// `Host` header is the usual one), `w<seq>.sock` for a socket.
    pub fn authority(&self, seq: u64) -> String {
        match self {
            Endpoint::Unix(_) => format!("w{seq}.sock"),
            Endpoint::Tcp { addr, .. } => addr.to_string(),
        }
    }
}

/// The ready workers, by URI authority.
#[derive(Debug, Default)]
pub(crate) struct Endpoints {
    map: RwLock<HashMap<String, Registered>>,
}

#[derive(Debug)]
struct Registered {
    /// The worker start that registered it; a port can be reused by a
    /// later start once the earlier worker is gone.
    seq: u64,
    endpoint: Arc<Endpoint>,
}

impl Endpoints {
    pub fn insert(&self, authority: String, seq: u64, endpoint: Endpoint) {
        let endpoint = Arc::new(endpoint);
        self.map
            .write()
            .insert(authority, Registered { seq, endpoint });
    }

    /// Forgets the entry of worker start `seq` (not a later one's).
    pub fn remove(&self, authority: &str, seq: u64) {
        let mut map = self.map.write();
        if map.get(authority).is_some_and(|r| r.seq == seq) {
            map.remove(authority);
        }
    }

    fn get(&self, authority: &str) -> Option<Arc<Endpoint>> {
        self.map
            .read()
            .get(authority)
            .map(|r| Arc::clone(&r.endpoint))
    }
}

/// Dials workers found in [`Endpoints`].
#[derive(Debug, Clone)]
pub(crate) struct WorkerConnector {
    pub endpoints: Arc<Endpoints>,
    pub connect_timeout: Duration,
}

impl tower::Service<Uri> for WorkerConnector {
    type Response = WorkerStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<WorkerStream>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let endpoint = uri.authority().and_then(|a| self.endpoints.get(a.as_str()));
        let timeout = self.connect_timeout;
        Box::pin(async move {
            let endpoint = endpoint
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the worker is gone"))?;
            let connect = connect(&endpoint);
            match tokio::time::timeout(timeout, connect).await {
                Ok(stream) => stream,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {timeout:?}"),
                )),
            }
        })
    }
}

async fn connect(endpoint: &Endpoint) -> io::Result<WorkerStream> {
    match endpoint {
        Endpoint::Unix(path) => {
            let stream = UnixStream::connect(path).await?;
            Ok(WorkerStream(TokioIo::new(Either::Right(stream))))
        }
        Endpoint::Tcp { addr, owner } => {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            // The listener checked at readiness must still be the
            // worker's; the connection is dropped unused otherwise.
            let owner = Arc::clone(owner);
            tokio::task::spawn_blocking(move || owner.still_listening())
                .await
                .map_err(io::Error::other)?
                .map_err(|reason| io::Error::new(io::ErrorKind::PermissionDenied, reason))?;
            Ok(WorkerStream(TokioIo::new(Either::Left(stream))))
        }
    }
}

/// A connection to a worker, over TCP or a Unix socket.
pub(crate) struct WorkerStream(TokioIo<Either<TcpStream, UnixStream>>);

impl Connection for WorkerStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for WorkerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl Write for WorkerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}
