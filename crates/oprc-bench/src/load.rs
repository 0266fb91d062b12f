//! A closed-loop load generator: `c` clients, each sending its next request
//! when the previous answer has been read whole.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// One request to send.
pub struct Request {
    pub method: http::Method,
    pub uri: http::Uri,
    pub body: Bytes,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Summary {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

pub async fn run(
    clients: usize,
    duration: Duration,
    make: &(dyn Fn(usize, u64) -> Request + Sync),
) -> anyhow::Result<Summary> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let http: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(clients)
        .build(connector);
    let start = Instant::now();
    let deadline = start + duration;
    // Requests are made up front per client so building them is not timed.
    let make = Arc::new(make);
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let http = http.clone();
        let reqs: Vec<Request> = (0..64).map(|n| make(client, n)).collect();
        tasks.push(tokio::spawn(async move {
            let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds");
            let mut errors = 0u64;
            let mut n = 0usize;
            while Instant::now() < deadline {
                let r = &reqs[n % reqs.len()];
                n += 1;
                let req = http::Request::builder()
                    .method(r.method.clone())
                    .uri(r.uri.clone())
                    .header("content-type", "application/json")
                    .body(Full::new(r.body.clone()))
                    .expect("valid request");
                let t = Instant::now();
                let ok = match http.request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        resp.into_body().collect().await.is_ok() && status.is_success()
                    }
                    Err(_) => false,
                };
                if ok {
                    let _ = hist.record(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (hist, errors)
        }));
    }
    let mut all = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await?;
        all.add(h)?;
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Summary {
        rps: all.len() as f64 / elapsed,
        p50_ms: all.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: all.value_at_quantile(0.99) as f64 / 1000.0,
        errors,
    })
}
