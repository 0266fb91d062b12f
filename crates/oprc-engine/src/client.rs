//! The pooled keep-alive HTTP/1.1 clients that POST tasks to functions: one
//! for HTTP deployments (any host), one for local workers (dialled through
//! [`WorkerConnector`], over a Unix socket or a checked TCP port).
//!
//! hyper-util's client directly (not reqwest): one request object and one
//! body buffer per call, connections reused per worker, no redirects, no
//! decompression, no TLS: the cheapest path to a function on the same host
//! or network.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Builder, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::connector::{Endpoints, WorkerConnector};
use crate::{InvokeError, Options};

/// A failed call, and whether the request surely never reached the function
/// (a failed connect), which makes it safe to send again.
pub(crate) struct CallFailure {
    pub error: InvokeError,
    pub not_sent: bool,
}

impl From<InvokeError> for CallFailure {
    fn from(error: InvokeError) -> Self {
        Self {
            error,
            not_sent: false,
        }
    }
}

/// Which client a call goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// An HTTP deployment's URL.
    Http,
    /// A local worker registered in [`Endpoints`].
    Worker,
}

pub(crate) struct HttpClient {
    http: Client<HttpConnector, Full<Bytes>>,
    workers: Client<WorkerConnector, Full<Bytes>>,
    endpoints: Arc<Endpoints>,
    max_response_bytes: usize,
    error_snippet_bytes: usize,
}

impl HttpClient {
    pub fn new(options: &Options) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(options.connect_timeout));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let endpoints = Arc::new(Endpoints::default());
        let workers = WorkerConnector {
            endpoints: Arc::clone(&endpoints),
            connect_timeout: options.connect_timeout,
        };
        Self {
            http: builder(options).build(connector),
            workers: builder(options).build(workers),
            endpoints,
            max_response_bytes: options.max_response_bytes,
            error_snippet_bytes: options.error_snippet_bytes,
        }
    }

    /// The workers the worker client can reach.
    pub fn endpoints(&self) -> &Arc<Endpoints> {
        &self.endpoints
    }

    /// POSTs `task` as JSON to `uri`; the answer body of a 200, or why not.
    /// `timeout` only names the limit in the error; `deadline` enforces it.
    pub async fn post(
        &self,
        via: Via,
        uri: Uri,
        task: Bytes,
        headers: &HeaderMap,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Bytes, CallFailure> {
        let mut req = Request::new(Full::new(task));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        for (name, value) in headers {
            h.append(name, value.clone());
        }
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));

        let call = async {
            let sent = match via {
                Via::Http => self.http.request(req),
                Via::Worker => self.workers.request(req),
            };
            let resp = sent.await.map_err(|e| CallFailure {
                not_sent: e.is_connect(),
                error: InvokeError::Unreachable {
                    reason: error_chain(&e),
                },
            })?;
            let (parts, body) = resp.into_parts();
            let body = match Limited::new(body, self.max_response_bytes).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) if e.is::<LengthLimitError>() && parts.status == StatusCode::OK => {
                    return Err(InvokeError::ResponseTooLarge {
                        limit: self.max_response_bytes,
                    }
                    .into());
                }
                Err(e) if e.is::<LengthLimitError>() => Bytes::new(),
                Err(e) => {
                    return Err(InvokeError::Unreachable {
                        reason: format!("reading the answer failed: {}", error_chain(&*e)),
                    }
                    .into());
                }
            };
            if parts.status != StatusCode::OK {
                return Err(InvokeError::Status {
                    code: parts.status.as_u16(),
                    body_snippet: snippet(&body, self.error_snippet_bytes),
                }
                .into());
            }
            Ok(body)
        };
        match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => result,
            Err(_elapsed) => Err(InvokeError::Timeout { after: timeout }.into()),
        }
    }
}

fn builder(options: &Options) -> Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(options.pool_idle_timeout)
        .pool_max_idle_per_host(options.pool_max_idle_per_host);
    builder
}

/// `error: cause: cause`, skipping a cause whose text its parent already
/// ends with.
fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            let _ = write!(out, ": {text}");
        }
        source = s.source();
    }
    out
}

/// The first `limit` bytes of `body` as text, cut at a character boundary.
fn snippet(body: &[u8], limit: usize) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(limit)]);
    let mut s = text.trim_end_matches('\u{fffd}').trim().to_owned();
    if body.len() > limit {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_cut_and_marked() {
        assert_eq!(snippet(b"  boom \n", 100), "boom");
        assert_eq!(snippet(b"abcdef", 3), "abc…");
        // A multi-byte character cut in half is dropped, not garbled.
        assert_eq!(snippet("ab€".as_bytes(), 3), "ab…");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layers(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |source, &text| {
                Some(Layer {
                    text,
                    source: source.map(Box::new),
                })
            })
            .expect("at least one layer")
    }

    #[test]
    fn error_chain_names_every_cause_once() {
        let e = layers(&["client error (Connect)", "tcp connect error", "refused"]);
        assert_eq!(
            error_chain(&e),
            "client error (Connect): tcp connect error: refused"
        );
        let repeated = layers(&["connect failed: refused", "refused"]);
        assert_eq!(error_chain(&repeated), "connect failed: refused");
    }
}
