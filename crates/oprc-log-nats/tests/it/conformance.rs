//! The conformance suite, and how the log refuses what it cannot use.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::stream::{self, StorageType};
use oprc_log_nats::NatsLog;
use oprc_store::ErrorKind;

use crate::support::{open, server_url, with_stream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_invocation_log_conformance_suite() {
    with_stream("conf", |options| async move {
        let log = open(&server_url(), &options).await;
        oprc_store::conformance::invocation_log(Arc::new(log.clone())).await;
        let stats = log.stats();
        assert_eq!(
            (stats.appends, stats.duplicates, stats.acks, stats.errors),
            (4, 2, 2, 0),
            "{stats:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_identity_is_kept_on_reopen_and_changes_when_the_stream_is_recreated() {
    with_stream("identity", |options| async move {
        let first = open(&server_url(), &options).await.identity();
        assert!(
            first.starts_with(&format!("nats:{}@", options.stream)),
            "{first}"
        );
        assert_eq!(open(&server_url(), &options).await.identity(), first);
        crate::support::delete_stream(&server_url(), &options.stream).await;
        let second = open(&server_url(), &options).await.identity();
        assert_ne!(second, first, "a recreated stream restarts its offsets");
    })
    .await;
}

#[tokio::test]
async fn the_url_can_name_the_stream_and_subjects() {
    with_stream("url", |options| async move {
        let url = format!(
            "{}?stream={}&subjects={}",
            server_url(),
            options.stream,
            options.subject_prefix
        );
        let log = NatsLog::connect(&url, Default::default()).await.unwrap();
        assert!(
            log.identity()
                .starts_with(&format!("nats:{}@", options.stream))
        );
        log.ping().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_stream_with_a_config_the_log_cannot_rely_on_is_refused() {
    with_stream("refused", |options| async move {
        let client = async_nats::connect(server_url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.create_stream(stream::Config {
            name: options.stream.clone(),
            subjects: vec![format!("{}.other", options.subject_prefix)],
            storage: StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
        let err = NatsLog::connect(&server_url(), options.clone())
            .await
            .err()
            .expect("refused");
        assert_eq!(err.kind, ErrorKind::Internal, "{err}");
        for part in [
            options.stream.as_str(),
            "its subjects are",
            "retention",
            "not File",
            "nats stream rm",
        ] {
            assert!(err.message.contains(part), "{part:?} is not in: {err}");
        }
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_server_fails_the_start_at_once_and_its_password_stays_secret() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let options = oprc_log_nats::Options {
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let started = Instant::now();
    let url = format!("nats://app:hunter2@127.0.0.1:{port}");
    let err = NatsLog::connect(&url, options)
        .await
        .err()
        .expect("nothing listens there");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(
        err.message
            .contains(&format!("nats://app:***@127.0.0.1:{port}")),
        "{err}"
    );
    let chain = format!("{err} {:?}", std::error::Error::source(&err));
    assert!(!chain.contains("hunter2"), "{chain}");
}

#[tokio::test]
async fn bad_options_are_refused_before_connecting() {
    let options = oprc_log_nats::Options {
        subject_prefix: "oprc.*".into(),
        ..Default::default()
    };
    let err = NatsLog::connect("nats://127.0.0.1:1", options)
        .await
        .err()
        .expect("refused");
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err.message.contains("subject_prefix"), "{err}");
}
