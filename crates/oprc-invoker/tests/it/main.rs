//! The invoker with a fake engine and a store that fails on purpose.

mod faults;
mod files;
mod keys;
mod regressions;
mod script;
mod support;
mod updates;

use std::time::Duration;

use oprc_core::InvocationStatus;
use oprc_invoker::{Error, Options};
use serde_json::json;
use support::{Node, request};

/// Callers that give up mid-call (a dropped connection) cut nothing
/// short: every call that started commits with its bookkeeping, so no
/// later call sees a stale state and gets a spurious conflict (G10).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_callers_leave_no_half_done_call() {
    let node = Node::start(Options::default());
    let objects: Vec<String> = (0..8).map(|i| format!("o{i}")).collect();
    for id in &objects {
        node.create(id).await;
    }
    node.engine
        .jitter_us
        .store(3_000, std::sync::atomic::Ordering::Relaxed);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..400usize {
        let handle = node.handle.clone();
        let oid = objects[i % objects.len()].clone();
        calls.spawn(async move {
            let call = handle.invoke(request(Some(&oid), "inc"));
            // Half the callers go away after a moment.
            let patience = Duration::from_micros(if i % 2 == 0 {
                500 + (i as u64 * 37) % 2_000
            } else {
                60_000_000
            });
            match tokio::time::timeout(patience, call).await {
                Ok(Ok(resp)) => Some(resp.status),
                Ok(Err(e)) => panic!("call refused: {e}"),
                Err(_) => None,
            }
        });
    }
    let mut answered = 0;
    while let Some(r) = calls.join_next().await {
        if let Some(status) = r.expect("caller task") {
            assert_eq!(status, InvocationStatus::Succeeded, "a spurious failure");
            answered += 1;
        }
    }
    assert!(answered >= 200, "the patient half is answered");
    node.settle().await;
    node.engine
        .jitter_us
        .store(0, std::sync::atomic::Ordering::Relaxed);
    // Every call that reached the function committed, cache and store
    // agree, and the objects take new calls.
    let ran = node.engine.calls.lock().clone();
    for id in &objects {
        let stored = node.stored_n(id).await;
        assert_eq!(stored, ran[id], "object {id}: runs and commits differ");
        let seen = node
            .handle
            .object(&support::cls(), &id.parse_oid())
            .await
            .unwrap();
        assert_eq!(seen.data["n"], json!(stored), "the cache is stale");
        let next = node.handle.invoke(request(Some(id), "inc")).await.unwrap();
        assert_eq!(next.status, InvocationStatus::Succeeded, "{next:?}");
    }
    node.stop().await;
}

/// A full object queue refuses a waiting caller with `Overloaded` (429)
/// instead of growing without bound; the calls it took all run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_object_queue_refuses_more() {
    let node = Node::start(Options {
        max_queued_per_object: 4,
        ..Options::default()
    });
    node.create("o").await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let handle = node.handle.clone();
        calls.spawn(async move { handle.invoke(request(Some("o"), "slow")).await });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(r) = calls.join_next().await {
        match r.unwrap() {
            Ok(resp) => {
                assert_eq!(resp.status, InvocationStatus::Succeeded);
                ok += 1;
            }
            Err(Error::Overloaded { retry_after, .. }) => {
                assert!(retry_after >= Duration::from_secs(1));
                refused += 1;
            }
            Err(e) => panic!("unexpected refusal: {e}"),
        }
        node.engine.gate.notify_waiters();
    }
    assert!(refused > 0, "the queue bound was never hit");
    assert_eq!(node.stored_n("o").await, ok);
    node.stop().await;
}

/// Gives `"o1".parse_oid()` in tests.
trait ParseOid {
    fn parse_oid(&self) -> oprc_core::ObjectId;
}

impl ParseOid for String {
    fn parse_oid(&self) -> oprc_core::ObjectId {
        oprc_core::ObjectId::new(self.as_str()).unwrap()
    }
}

/// The handle's futures stay small: the HTTP stack moves its handler's
/// future several times per request, so a big one costs every call (the
/// call's own state is boxed once inside).
#[tokio::test]
async fn the_handle_futures_stay_small() {
    let node = Node::start(Options::default());
    let invoke = std::mem::size_of_val(&node.handle.invoke(request(Some("x"), "inc")));
    let submit = std::mem::size_of_val(&node.handle.submit(request(Some("x"), "inc")));
    assert!(
        invoke <= 512 && submit <= 512,
        "invoke {invoke} B, submit {submit} B"
    );
    node.stop().await;
}
