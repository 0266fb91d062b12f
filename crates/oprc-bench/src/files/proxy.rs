//! A delaying TCP proxy: what `netem` would add on a real network, for a
//! kernel that has no `netem`. Every chunk read from one side is written to
//! the other `delay` later, in each direction, without limiting throughput
//! (chunks in flight overlap); a new connection waits a round trip (two
//! `delay`s) before its bytes move, like a TCP handshake.
//!
//! What it does not model: the TCP window of a long path. Each side's TCP
//! talks to the proxy over a short one, so a transfer's rate is not bounded
//! by window / RTT, only by what the path itself allows (the `tbf` qdisc of
//! the shaped run). Tokio's timers tick in milliseconds, so a chunk waits
//! between `delay` and `delay` + 1 ms.
//!
//! It runs on a thread of its own, so the load generator's tasks do not
//! delay its timers further.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Chunks held per direction of one connection at most; a full queue stops
/// reading (the sender's TCP then waits).
const IN_FLIGHT: usize = 256;
const CHUNK: usize = 64 * 1024;

/// A running proxy; stopped (every connection closed) when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `listen` and forwards every connection to `upstream`.
    pub fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        delay: Duration,
    ) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(listen)
            .with_context(|| format!("failed to bind the delaying proxy on {listen}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("delay-proxy".into())
            .spawn(move || {
                rt.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("delaying proxy: {e}");
                            return;
                        }
                    };
                    let mut conns = JoinSet::new();
                    tokio::select! {
                        _ = stopped => {}
                        _ = accept(&listener, upstream, delay, &mut conns) => {}
                    }
                    conns.abort_all();
                    while conns.join_next().await.is_some() {}
                });
            })?;
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept(
    listener: &TcpListener,
    upstream: SocketAddr,
    delay: Duration,
    conns: &mut JoinSet<()>,
) {
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                conns.spawn(async move {
                    // A failed connection is the client's to notice (its
                    // peer closes); nothing to report here.
                    let _ = serve(client, upstream, delay).await;
                });
            }
            Err(e) => {
                eprintln!("delaying proxy: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        while conns.try_join_next().is_some() {}
    }
}

async fn serve(client: TcpStream, upstream: SocketAddr, delay: Duration) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    // The SYN's way there and the SYN-ACK's way back.
    tokio::time::sleep(delay).await;
    let server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    tokio::time::sleep(delay).await;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::try_join!(
        pipe(client_read, server_write, delay),
        pipe(server_read, client_write, delay)
    )?;
    Ok(())
}

/// Copies `from` to `to`, each chunk `delay` after it was read; the end of
/// `from` becomes a FIN on `to`, delayed the same.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay: Duration,
) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Option<Bytes>)>(IN_FLIGHT);
    let read = async move {
        loop {
            let mut buf = BytesMut::with_capacity(CHUNK);
            let n = from.read_buf(&mut buf).await?;
            let at = Instant::now() + delay;
            let chunk = (n > 0).then(|| buf.freeze());
            let end = chunk.is_none();
            if tx.send((at, chunk)).await.is_err() || end {
                return Ok::<_, std::io::Error>(());
            }
        }
    };
    let write = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            match chunk {
                Some(c) => to.write_all(&c).await?,
                None => return to.shutdown().await,
            }
        }
        Ok(())
    };
    tokio::try_join!(read, write)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server behind the proxy: bytes come back whole, and a
    /// round trip takes at least two delays.
    #[test]
    fn bytes_pass_whole_and_late() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let upstream = echo.local_addr().unwrap();
            tokio::spawn(async move {
                let (mut s, _) = echo.accept().await.unwrap();
                let (mut r, mut w) = s.split();
                tokio::io::copy(&mut r, &mut w).await.unwrap();
            });
            let delay = Duration::from_millis(20);
            let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), upstream, delay).unwrap();
            let mut c = TcpStream::connect(proxy.addr).await.unwrap();
            let data: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
            let t = std::time::Instant::now();
            let (mut r, mut w) = c.split();
            let send = async {
                w.write_all(&data).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let mut back = Vec::new();
            let recv = r.read_to_end(&mut back);
            let (_, n) = tokio::join!(send, recv);
            n.unwrap();
            assert_eq!(back, data);
            // Handshake (2 delays) and one round trip (2 delays).
            assert!(t.elapsed() >= delay * 4, "{:?}", t.elapsed());
        });
    }
}
