//! Faults on throwaway servers the tests start themselves: a NATS restart
//! under a running log, and a server without JetStream.

use std::time::{Duration, Instant};

use bytes::Bytes;
use oprc_core::PartitionId;
use oprc_log_nats::NatsLog;
use oprc_store::{ErrorKind, InvocationLog};

use crate::support::{Server, eventually, open, payloads, read_until, unique_options};

const WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_fail_fast_while_nats_is_down_and_nothing_accepted_is_lost() {
    let mut server = Server::start(true).await;
    let mut options = unique_options("restart");
    options.request_timeout = Duration::from_secs(1);
    let log = open(&server.url(), &options).await;
    let p = PartitionId(0);
    let mut accepted = Vec::new();
    for i in 0..5 {
        let name = format!("before-{i}");
        let a = log
            .append(p, &name, Bytes::from(name.clone()))
            .await
            .unwrap();
        accepted.push((a.offset, name));
    }
    let got = read_until(&log, p, 1, accepted[4].0, WITHIN).await;
    assert_eq!(got.len(), 5);
    log.commit_position(p, accepted[0].0).await.unwrap();

    server.stop().await;
    eventually("the client sees the server gone", WITHIN, || async {
        !log.connected()
    })
    .await;
    let started = Instant::now();
    let err = log
        .append(p, "while-down", Bytes::from_static(b"while-down"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(err.message.contains(&server.url()), "{err}");
    assert_eq!(log.ping().await.unwrap_err().kind, ErrorKind::Unavailable);
    // Requests that do not look at the connection first are bounded too.
    let started = Instant::now();
    let err = log.committed_position(PartitionId(9)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    server.restart().await;
    eventually("the client reconnects", WITHIN, || async {
        log.connected()
    })
    .await;
    for i in 0..5 {
        let name = format!("after-{i}");
        // JetStream may take a moment after the listener is back.
        let deadline = Instant::now() + WITHIN;
        let a = loop {
            match log.append(p, &name, Bytes::from(name.clone())).await {
                Ok(a) => break a,
                Err(e) if e.kind == ErrorKind::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("append after the restart: {e}"),
            }
        };
        assert!(!a.duplicate);
        accepted.push((a.offset, name));
    }
    // The running session goes on where it was.
    let last = accepted[9].0;
    let rest = read_until(&log, p, accepted[4].0 + 1, last, WITHIN).await;
    let names =
        |from: usize| -> Vec<String> { accepted[from..].iter().map(|(_, n)| n.clone()).collect() };
    assert_eq!(payloads(&rest), names(5));
    // A new process finds every accepted entry not committed, once, and
    // nothing refused.
    drop(log);
    let log = open(&server.url(), &options).await;
    let committed = log.committed_position(p).await.unwrap();
    let all = read_until(&log, p, committed + 1, last, WITHIN).await;
    assert_eq!(payloads(&all), names(1));
    log.commit_position(p, last).await.unwrap();
    assert_eq!(log.consumer_lag(p).await.unwrap(), Some(0));
}

#[tokio::test]
async fn a_server_without_jetstream_is_refused_with_what_to_change() {
    let server = Server::start(false).await;
    let err = NatsLog::connect(&server.url(), unique_options("nojs"))
        .await
        .err()
        .expect("no jetstream");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(err.message.contains("-js"), "{err}");
}
