//! Raw HTTP/1.1 over TCP, for requests no client library sends (a
//! `Content-Length` it will not honour, a foreign `Host`, headers only).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An answer: status, headers (names lowercased) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends `head` (request line and headers, without the blank line) and
/// `body`, and reads the answer up to `deadline`. `Connection: close` is
/// added, so the answer ends with the connection.
pub async fn send(url: &str, head: &str, body: &[u8], deadline: Duration) -> Answer {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!("{head}\r\nconnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    if !body.is_empty() {
        // The node may answer and close before reading it all.
        let _ = stream.write_all(body).await;
    }
    let mut raw = Vec::new();
    let read = tokio::time::timeout(deadline, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    if complete(&raw) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(
        read.is_ok() || complete(&raw),
        "no complete answer within {deadline:?}; got {:?}",
        String::from_utf8_lossy(&raw)
    );
    parse(&raw)
}

/// Whether `raw` holds the head and the whole `Content-Length` body.
fn complete(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .is_some_and(|len| body.len() >= len)
}

fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer head in {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}
