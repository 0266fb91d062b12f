//! A TCP proxy between a client and a throwaway nats-server that can break
//! every connection right in the middle of a pull batch: after it has
//! forwarded a chosen number of JetStream deliveries of one subject, it
//! drops the rest of what it holds (deliveries the server counts as
//! delivered, lost in flight) and closes the connections. The client
//! reconnects through it as to a server that came back.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// What a cut did.
#[derive(Debug, Clone, Copy)]
pub struct Cut {
    /// Deliveries of the subject forwarded since the proxy was armed.
    pub forwarded: usize,
    /// Complete deliveries of the subject the proxy held and dropped
    /// (at least one: a cut happens only once one is lost for sure).
    pub dropped: usize,
}

struct Armed {
    subject: String,
    forward: usize,
    seen: usize,
    done: oneshot::Sender<Cut>,
}

struct Shared {
    upstream: String,
    armed: Mutex<Option<Armed>>,
    /// Bumped by a cut: every connection open then is closed.
    cuts: watch::Sender<u64>,
}

pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Closes the connections still open.
        self.shared.cuts.send_modify(|n| *n += 1);
    }
}

impl Proxy {
    /// Listens on a free port and forwards every connection to `upstream`
    /// (`host:port`).
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the proxy");
        let port = listener.local_addr().expect("its address").port();
        let shared = Arc::new(Shared {
            upstream: upstream.to_owned(),
            armed: Mutex::new(None),
            cuts: watch::channel(0).0,
        });
        let accept = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let cut = shared.cuts.subscribe();
                    tokio::spawn(pipe(client, shared.clone(), cut));
                }
            }
        });
        Proxy {
            port,
            shared,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// From now on, forwards `forward` JetStream deliveries (`MSG`/`HMSG`
    /// on `subject` with a `$JS.ACK.` reply) to the client, then, as soon
    /// as it holds one more, drops what it holds and closes every
    /// connection. Answers what the cut did once it happened.
    pub fn cut_after(&self, subject: &str, forward: usize) -> oneshot::Receiver<Cut> {
        let (done, cut) = oneshot::channel();
        *self.shared.armed.lock() = Some(Armed {
            subject: subject.to_owned(),
            forward,
            seen: 0,
            done,
        });
        cut
    }
}

/// One client connection: client to server as it is, server to client
/// frame by frame (so that a cut falls between deliveries).
async fn pipe(client: TcpStream, shared: Arc<Shared>, mut cut: watch::Receiver<u64>) {
    let Ok(server) = TcpStream::connect(&shared.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let up = tokio::io::copy(&mut client_rx, &mut server_tx);
    let down = async {
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        loop {
            if server_rx.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
            let (ready, cut_now) = scan(&shared, &buf);
            if client_tx.write_all(&buf[..ready]).await.is_err() {
                return;
            }
            if let Some((report, done)) = cut_now {
                // What was forwarded reaches the client before the
                // connection ends; the rest is lost.
                let _ = client_tx.flush().await;
                let _ = client_tx.shutdown().await;
                shared.cuts.send_modify(|n| *n += 1);
                let _ = done.send(report);
                return;
            }
            buf.drain(..ready);
        }
    };
    tokio::select! {
        _ = up => {}
        () = down => {}
        _ = cut.changed() => {}
    }
}

/// How many bytes of `buf` (complete frames only) go to the client, and
/// the cut to make after them, if the armed count is reached.
fn scan(shared: &Shared, buf: &[u8]) -> (usize, Option<(Cut, oneshot::Sender<Cut>)>) {
    let mut armed = shared.armed.lock();
    let mut at = 0;
    while let Some((len, delivery)) = frame(&buf[at..]) {
        if let Some(a) = armed.as_mut()
            && delivery == Some(a.subject.as_bytes())
        {
            if a.seen == a.forward {
                let mut dropped = 0;
                let mut rest = at;
                while let Some((len, d)) = frame(&buf[rest..]) {
                    dropped += usize::from(d == Some(a.subject.as_bytes()));
                    rest += len;
                }
                let a = armed.take().expect("armed");
                let report = Cut {
                    forwarded: a.seen,
                    dropped,
                };
                return (at, Some((report, a.done)));
            }
            a.seen += 1;
        }
        at += len;
    }
    (at, None)
}

/// The length of the first frame of `buf` if it is complete, and the
/// subject when it is a JetStream delivery (a message whose reply is an
/// ack subject).
fn frame(buf: &[u8]) -> Option<(usize, Option<&[u8]>)> {
    let eol = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = &buf[..eol];
    let fields: Vec<&[u8]> = line
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|f| !f.is_empty())
        .collect();
    let op = fields.first().map(|f| f.to_ascii_uppercase());
    let (min, max) = match op.as_deref() {
        Some(b"MSG") => (4, 5),
        Some(b"HMSG") => (5, 6),
        _ => return Some((eol + 2, None)),
    };
    assert!(
        (min..=max).contains(&fields.len()),
        "unexpected frame {:?}",
        String::from_utf8_lossy(line)
    );
    let size: usize = std::str::from_utf8(fields[fields.len() - 1])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad size in {:?}", String::from_utf8_lossy(line)));
    let len = eol + 2 + size + 2;
    if buf.len() < len {
        return None;
    }
    let reply = (fields.len() == max).then(|| fields[3]);
    let delivery = reply
        .is_some_and(|r| r.starts_with(b"$JS.ACK."))
        .then_some(fields[1]);
    Some((len, delivery))
}

#[test]
fn frames_are_told_apart() {
    let buf = b"PING\r\nMSG a.b 1 $JS.ACK.S.C.1.5.1.0.0 3\r\nabc\r\nHMSG _INBOX.x 2 12 14\r\nNATS/1.0\r\n\r\nhi\r\nMSG a.b 1 4\r\nab";
    let (n, d) = frame(buf).unwrap();
    assert_eq!((n, d), (6, None));
    let (m, d) = frame(&buf[n..]).unwrap();
    assert_eq!(d, Some(&b"a.b"[..]));
    let (k, d) = frame(&buf[n + m..]).unwrap();
    assert_eq!(d, None);
    assert!(frame(&buf[n + m + k..]).is_none(), "incomplete");
}
