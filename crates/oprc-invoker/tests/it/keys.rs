//! Idempotency keys are bound to their request; repeats run nothing.

use oprc_core::InvocationStatus;
use oprc_invoker::{Error, Options};
use serde_json::json;

use crate::support::{Node, request};

fn keyed(oid: &str, key: &str) -> oprc_core::InvocationRequest {
    let mut req = request(Some(oid), "inc");
    req.idempotency_key = Some(key.into());
    req
}

fn runs(node: &Node) -> u64 {
    node.engine.calls.lock().values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_answers_its_first_call_and_refuses_other_requests() {
    let node = Node::start(Options::default());
    node.create("k1").await;
    node.create("k2").await;
    let first = node.handle.invoke(keyed("k1", "key-a")).await.unwrap();
    assert_eq!(first.status, InvocationStatus::Succeeded);
    let again = node.handle.invoke(keyed("k1", "key-a")).await.unwrap();
    assert_eq!(
        again.inv_id, first.inv_id,
        "the repeat answers the first call"
    );
    assert_eq!(runs(&node), 1, "and runs nothing");
    // The same key for another object, or other arguments, is refused.
    let other = node.handle.invoke(keyed("k2", "key-a")).await.unwrap_err();
    assert!(matches!(other, Error::KeyReused { .. }), "{other}");
    let mut changed = keyed("k1", "key-a");
    changed.body = Some(json!({"x": 1}));
    let changed = node.handle.invoke(changed).await.unwrap_err();
    assert!(matches!(changed, Error::KeyReused { .. }), "{changed}");
    // An async call's key is bound the same way.
    let queued = node.handle.submit(keyed("k2", "key-b")).await.unwrap();
    let repeat = node.handle.submit(keyed("k2", "key-b")).await.unwrap();
    assert_eq!(repeat.inv_id, queued.inv_id);
    let mut other = keyed("k2", "key-b");
    other.args.insert("n".into(), "2".into());
    assert!(matches!(
        node.handle.submit(other).await.unwrap_err(),
        Error::KeyReused { .. }
    ));
    node.wait_ended(&queued.inv_id).await;
    assert_eq!(node.stored_n("k2").await, 1);
    node.stop().await;
}

/// Concurrent duplicates run once: every one waits for the first call and
/// gets its answer, also when callers give up and come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_run_once() {
    let node = Node::start(Options::default());
    node.create("d").await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..32 {
        let handle = node.handle.clone();
        calls.spawn(async move {
            let mut req = request(Some("d"), "slow");
            req.idempotency_key = Some("dup".into());
            if i % 4 == 0 {
                // Gives up at once: the call still runs to its end.
                let _ =
                    tokio::time::timeout(std::time::Duration::from_micros(50), handle.invoke(req))
                        .await;
                None
            } else {
                Some(handle.invoke(req).await.unwrap())
            }
        });
    }
    let mut ids = std::collections::HashSet::new();
    while let Some(r) = calls.join_next().await {
        if let Some(resp) = r.unwrap() {
            assert_eq!(resp.status, InvocationStatus::Succeeded);
            ids.insert(resp.inv_id);
        }
    }
    assert_eq!(ids.len(), 1, "every duplicate got the first call's answer");
    node.settle().await;
    assert_eq!(runs(&node), 1, "the function ran once");
    assert_eq!(node.stored_n("d").await, 1);
    node.stop().await;
}
