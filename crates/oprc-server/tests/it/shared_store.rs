//! Nodes on a shared PostgreSQL state store and JetStream log (whatever
//! `OPRC_TEST_BACKENDS` says): the packages' change feed between nodes,
//! and the log identity stored with the state.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::Node;

const PACKAGE: &str = "name: feed\nclasses:\n  - name: doc\n    stateSpec: {keySpecs: []}\n";

/// Polls `node` until `GET path` answers `status`; answers how long it took.
async fn until(node: &Node, path: &str, status: StatusCode, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (s, v) = node.get(path).await;
        if s == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{path} answered {s} {v} for {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_package_applied_on_one_node_reaches_the_other_within_a_second() {
    let shared = tempfile::tempdir().unwrap();
    let backends = oprc_testenv::backends_for(shared.path()).await;
    let on_shared = |c: &mut oprc_server::Config| {
        c.state = Some(backends.state.clone());
        c.invocation_log = Some(backends.invocation_log.clone());
    };
    let a = Node::start_configured(tempfile::tempdir().unwrap(), &[], on_shared).await;
    let b = Node::start_configured(tempfile::tempdir().unwrap(), &[], on_shared).await;
    assert_eq!(b.get("/api/packages/feed").await.0, StatusCode::NOT_FOUND);

    let (s, v) = a
        .request(reqwest::Method::POST, "/api/packages", Some(PACKAGE))
        .await;
    assert!(s.is_success(), "{v}");
    let seen = until(
        &b,
        "/api/packages/feed",
        StatusCode::OK,
        Duration::from_secs(3),
    )
    .await;
    eprintln!("the second node saw the package after {seen:?}");
    assert!(seen < Duration::from_millis(1500), "took {seen:?}");
    // Its classes work there: an object created on b is read on a.
    let id = b.new_object("feed.doc", r#"{"id": "d1"}"#).await;
    assert_eq!(a.object("feed.doc", &id).await["_meta"]["id"], "d1");

    let (s, v) = b
        .request(reqwest::Method::DELETE, "/api/packages/feed", None)
        .await;
    assert!(s.is_success(), "{v}");
    until(
        &a,
        "/api/packages/feed",
        StatusCode::NOT_FOUND,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        a.get("/api/classes/feed.doc/objects/d1").await.0,
        StatusCode::NOT_FOUND
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_on_another_log_than_its_state_refuses_to_start() {
    let shared = tempfile::tempdir().unwrap();
    let backends = oprc_testenv::backends_for(shared.path()).await;
    // PostgreSQL with the embedded log of this data directory.
    let first = tempfile::tempdir().unwrap();
    let state = backends.state.clone();
    let embedded_log = |c: &mut oprc_server::Config| {
        c.state = Some(state.clone());
        c.invocation_log = None;
    };
    let node = Node::start_configured(first, &[PACKAGE.to_owned()], embedded_log).await;
    let first = node.stop().await;

    // Another data directory is another embedded log: its offsets start
    // again at 1, and the objects' lastOffset would skip its calls.
    let other = tempfile::tempdir().unwrap();
    let why = Node::refused(&other, embedded_log).await;
    for part in [
        "count the async calls of the invocation log `embedded:",
        "(an embedded log",
        "`oprc export`, `oprc import`",
    ] {
        assert!(why.contains(part), "{part:?} in {why}");
    }
    // So is a JetStream log.
    let why = Node::refused(&other, |c| {
        c.state = Some(state.clone());
        c.invocation_log = Some(backends.invocation_log.clone());
    })
    .await;
    assert!(why.contains("uses the log `nats:"), "{why}");
    // The data directory it was written with still works.
    let node = Node::start_configured(first, &[], embedded_log).await;
    assert_eq!(node.get("/api/packages/feed").await.0, StatusCode::OK);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_on_shared_engines_reports_them_in_its_metrics() {
    let shared = tempfile::tempdir().unwrap();
    let backends = oprc_testenv::backends_for(shared.path()).await;
    let node = Node::start_configured(tempfile::tempdir().unwrap(), &[PACKAGE.to_owned()], |c| {
        c.state = Some(backends.state.clone());
        c.invocation_log = Some(backends.invocation_log.clone());
    })
    .await;
    let id = node.new_object("feed.doc", r#"{"id": "m1"}"#).await;
    let (s, v) = node
        .post(
            &format!("/api/classes/feed.doc/objects/{id}/invokes/get?_async=true"),
            "",
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    node.wait_invocation(v["invId"].as_str().unwrap()).await;
    let metrics = node.metrics().await;
    for name in [
        "oprc_store_commits_total",
        "oprc_postgres_transaction_seconds_total",
        "oprc_postgres_pool_in_use",
        "oprc_postgres_pool_open",
        "oprc_nats_appends_total 1",
        "oprc_nats_errors_total 0",
    ] {
        assert!(metrics.contains(name), "missing {name}:\n{metrics}");
    }
    node.stop().await;
}
