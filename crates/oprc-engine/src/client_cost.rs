//! What a call costs the engine's client, per transport: sequential POSTs of
//! a 1 KiB task to an in-process hyper server answering 200 at once. Run
//! with `cargo test --release -p oprc-engine --lib -- --ignored per_call_cost
//! --nocapture`.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixListener};
use tokio::time::Instant;

use crate::Options;
use crate::client::{HttpClient, Via};
use crate::connector::Endpoint;
use crate::procfs::Owner;

fn serve<S>(stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let answer = service_fn(|_req| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                br#"{"success":true}"#,
            ))))
        });
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), answer)
            .await;
    });
}

async fn mean(client: &HttpClient, via: Via, uri: &str, calls: u32) -> Duration {
    let task = Bytes::from(vec![b' '; 1024]);
    let uri: http::Uri = uri.parse().expect("uri");
    let headers = HeaderMap::new();
    let timeout = Duration::from_secs(5);
    for _ in 0..1000 {
        let deadline = Instant::now() + timeout;
        let sent = client.post(via, uri.clone(), task.clone(), &headers, deadline, timeout);
        assert!(sent.await.is_ok(), "warm-up call answered");
    }
    let started = Instant::now();
    for _ in 0..calls {
        let deadline = Instant::now() + timeout;
        let sent = client.post(via, uri.clone(), task.clone(), &headers, deadline, timeout);
        assert!(sent.await.is_ok(), "call answered");
    }
    started.elapsed() / calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it in release mode"]
async fn per_call_cost() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("w.sock");
    let unix = UnixListener::bind(&path).expect("bind unix");
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
    let addr = tcp.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((s, _)) = unix.accept().await {
            serve(s);
        }
    });
    tokio::spawn(async move {
        while let Ok((s, _)) = tcp.accept().await {
            let _ = s.set_nodelay(true);
            serve(s);
        }
    });

    let client = HttpClient::new(&Options::default());
    // This process leads the group of the check, as a worker leads its own.
    let pgid = std::process::id();
    let owner = Arc::new(Owner::new(pgid));
    owner.verify(addr).expect("the listener is this process's");
    let checked = Endpoint::Tcp { addr, owner };
    let key = checked.authority(1);
    client.endpoints().insert(key.clone(), 1, checked);
    client.endpoints().insert(
        "w2.sock".into(),
        2,
        Endpoint::Unix(Path::new(&path).to_owned()),
    );

    let calls = 20_000;
    let http = mean(&client, Via::Http, &format!("http://{addr}/"), calls).await;
    let tcp = mean(&client, Via::Worker, &format!("http://{key}/"), calls).await;
    let unix = mean(&client, Via::Worker, "http://w2.sock/", calls).await;
    println!(
        "per call, {calls} sequential: http {http:?}, worker tcp {tcp:?}, worker unix {unix:?}"
    );

    let started = std::time::Instant::now();
    for _ in 0..100 {
        Owner::new(pgid)
            .verify(addr)
            .expect("the listener is this process's");
    }
    println!(
        "readiness check (TCP tables): {:?}",
        started.elapsed() / 100
    );
    let owner = Owner::new(pgid);
    owner.verify(addr).expect("ours");
    let started = std::time::Instant::now();
    for _ in 0..1000 {
        owner.still_listening().expect("ours");
    }
    println!(
        "new-connection check (open files): {:?}",
        started.elapsed() / 1000
    );
}
