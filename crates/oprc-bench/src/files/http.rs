//! The benchmark's HTTP client: one pooled hyper client (keep-alive,
//! `TCP_NODELAY`), whole bodies in and out.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// One request.
pub struct Req {
    pub method: http::Method,
    pub uri: http::Uri,
    pub content_type: &'static str,
    pub body: Bytes,
    /// Sent as `Idempotency-Key` when set.
    pub idempotency_key: Option<String>,
}

impl Req {
    pub fn post(uri: http::Uri, body: Bytes) -> Self {
        Self {
            method: http::Method::POST,
            uri,
            content_type: "application/json",
            body,
            idempotency_key: None,
        }
    }

    pub fn put(uri: http::Uri, body: Bytes) -> Self {
        Self {
            method: http::Method::PUT,
            uri,
            content_type: "application/octet-stream",
            body,
            idempotency_key: None,
        }
    }

    pub fn get(uri: http::Uri) -> Self {
        Self {
            method: http::Method::GET,
            uri,
            content_type: "application/octet-stream",
            body: Bytes::new(),
            idempotency_key: None,
        }
    }

    /// The same request under `Idempotency-Key: key`.
    pub fn with_idempotency_key(mut self, key: String) -> Self {
        self.idempotency_key = Some(key);
        self
    }
}

#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    pub fn new(max_idle: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(max_idle)
                .build(connector),
        }
    }

    /// Sends `req`; the status and the whole body.
    pub async fn send(&self, req: Req) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut r = http::Request::builder()
            .method(req.method)
            .uri(req.uri)
            .header(http::header::CONTENT_TYPE, req.content_type);
        if let Some(key) = req.idempotency_key {
            r = r.header("idempotency-key", key);
        }
        let r = r.body(Full::new(req.body))?;
        let resp = self.client.request(r).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Sends `req`; an error unless the answer is 2xx.
    pub async fn ok(&self, req: Req) -> anyhow::Result<Bytes> {
        let what = format!("{} {}", req.method, req.uri.path());
        let (status, body) = self.send(req).await?;
        anyhow::ensure!(
            status.is_success(),
            "{what}: {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(400)])
        );
        Ok(body)
    }
}
