//! Package updates while calls are queued: each call runs whole on one
//! version, or fails with a clear error.

use std::sync::Arc;

use oprc_core::InvocationStatus;
use oprc_invoker::{Error, Options};

use crate::support::{Node, PACKAGE, catalog, request};

/// Calls queued behind a slow one when their binding is removed fail with
/// "no such function"; none runs on the new version half way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_calls_of_a_removed_binding_fail_clearly() {
    let node = Node::start(Options::default());
    node.create("u").await;
    let first = tokio::spawn({
        let handle = node.handle.clone();
        async move { handle.invoke(request(Some("u"), "slow")).await }
    });
    // Wait until the slow call holds the object.
    while node.handle.stats().busy_objects == 0 {
        tokio::task::yield_now().await;
    }
    let mut queued = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let handle = node.handle.clone();
        queued.spawn(async move { handle.invoke(request(Some("u"), "work")).await });
    }
    while node.handle.stats().admitted < 6 {
        tokio::task::yield_now().await;
    }
    let without_work = PACKAGE.replace("      - {name: work, function: .work}\n", "");
    node.catalog.store(Arc::new(catalog(&without_work)));
    node.engine.gate.notify_waiters();
    assert_eq!(
        first.await.unwrap().unwrap().status,
        InvocationStatus::Succeeded
    );
    while let Some(r) = queued.join_next().await {
        let err = r.unwrap().unwrap_err();
        assert!(matches!(err, Error::FunctionNotFound { .. }), "{err}");
    }
    assert_eq!(node.stored_n("u").await, 1);
    node.stop().await;
}

/// A call planned on one deployment whose function is redeployed before it
/// starts is planned again and runs on the new one only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeployed_function_runs_its_calls_on_the_new_version() {
    let node = Node::start(Options::default());
    node.create("r").await;
    let changed = PACKAGE.replace("http://fake/inc", "http://fake/inc-v2");
    let next = catalog(&changed);
    let revision = next
        .function(&oprc_core::FunctionKey::new("t.inc").unwrap())
        .map(|f| f.revision())
        .unwrap();
    // The engine runs the new version already; the catalog the call is
    // planned on is still the old one, and is swapped in (as the registry
    // does right after deploying) when the engine first refuses.
    *node.engine.deployed.lock() = Some(revision);
    let published = node.catalog.clone();
    *node.engine.on_changed.lock() = Some(Box::new(move || published.store(Arc::new(next))));
    let resp = node.handle.invoke(request(Some("r"), "inc")).await.unwrap();
    assert_eq!(resp.status, InvocationStatus::Succeeded, "{resp:?}");
    let seen = node.engine.revisions.lock().clone();
    assert_eq!(
        seen.last(),
        Some(&Some(revision)),
        "ran on the new version: {seen:?}"
    );
    assert_eq!(node.stored_n("r").await, 1);
    node.stop().await;
}
