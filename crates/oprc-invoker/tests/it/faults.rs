//! Storage that fails under calls, then heals.

use std::collections::HashMap;
use std::time::Duration;

use oprc_core::{InvocationStatus, ObjectId};
use oprc_invoker::Options;
use oprc_store::{ErrorKind, StateStore};

use crate::support::{Fault, Node, cls, request};

/// With loads and commits failing at random, every accepted async call is
/// applied exactly once, in order per object, once storage heals; none is
/// skipped and none is recorded as failed (a failed commit is not a failed
/// function).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_calls_ride_out_storage_failures() {
    let node = Node::start(Options::default());
    let objects: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
    for id in &objects {
        node.create(id).await;
    }
    node.fault(Fault::Random {
        kind: ErrorKind::Unavailable,
        per_mille: 300,
    });
    let mut ids = Vec::new();
    let mut per_object: HashMap<&str, u64> = HashMap::new();
    for i in 0..300usize {
        let oid = &objects[i % objects.len()];
        // The submission's own object check may hit a fault: a client
        // retries those (nothing was accepted).
        let resp = loop {
            match node.handle.submit(request(Some(oid), "inc")).await {
                Ok(resp) => break resp,
                Err(oprc_invoker::Error::Storage(_)) => continue,
                Err(e) => panic!("submit refused: {e}"),
            }
        };
        assert_eq!(resp.status, InvocationStatus::Queue);
        ids.push(resp.inv_id);
        *per_object.entry(oid).or_default() += 1;
    }
    // Let the faults bite for a while, then heal.
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.fault(Fault::None);
    for id in &ids {
        let resp = node.wait_ended(id).await;
        assert_eq!(resp.status, InvocationStatus::Succeeded, "{resp:?}");
    }
    assert!(
        node.store
            .injected
            .load(std::sync::atomic::Ordering::Relaxed)
            > 20,
        "faults were injected"
    );
    for (oid, calls) in per_object {
        assert_eq!(node.stored_n(oid).await, calls, "object {oid}");
    }
    node.stop().await;
}

/// A waiting caller is told when storage is down (`storage_unavailable`,
/// nothing committed) and its next call works once storage heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_call_reports_unavailable_storage_and_commits_nothing() {
    let node = Node::start(Options::default());
    node.create("s").await;
    node.fault(Fault::Random {
        kind: ErrorKind::Unavailable,
        per_mille: 1000,
    });
    let resp = node.handle.invoke(request(Some("s"), "inc")).await;
    match resp {
        Ok(r) => {
            assert_eq!(r.status, InvocationStatus::Failed);
            assert_eq!(r.error.unwrap().code, "storage_unavailable");
        }
        Err(oprc_invoker::Error::Storage(e)) => assert_eq!(e.kind, ErrorKind::Unavailable),
        Err(e) => panic!("unexpected: {e}"),
    }
    node.fault(Fault::None);
    assert_eq!(node.stored_n("s").await, 0);
    let ok = node.handle.invoke(request(Some("s"), "inc")).await.unwrap();
    assert_eq!(ok.status, InvocationStatus::Succeeded);
    assert_eq!(node.stored_n("s").await, 1);
    node.stop().await;
}

/// An async call that can never commit (corrupt storage for its object)
/// ends `FAILED` with the reason, and the partition goes on with others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_call_on_corrupt_storage_fails_with_its_reason() {
    let node = Node::start(Options {
        partitions: 1,
        ..Options::default()
    });
    node.create("bad").await;
    node.create("good").await;
    node.fault(Fault::Corrupt("bad"));
    let bad = node
        .handle
        .submit(request(Some("bad"), "inc"))
        .await
        .unwrap();
    let good = node
        .handle
        .submit(request(Some("good"), "inc"))
        .await
        .unwrap();
    let bad = node.wait_ended(&bad.inv_id).await;
    assert_eq!(bad.status, InvocationStatus::Failed);
    assert_eq!(bad.error.as_ref().unwrap().code, "internal", "{bad:?}");
    let good = node.wait_ended(&good.inv_id).await;
    assert_eq!(good.status, InvocationStatus::Succeeded);
    assert_eq!(node.stored_n("good").await, 1);
    node.stop().await;
}

/// Calls queued on a hot object commit as merged batches; when one of
/// those commits fails, what was built on it runs again on reloaded
/// state: every answer stays true and the store holds the newest one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_commit_in_a_pipeline_leaves_the_object_consistent() {
    for per_mille in [100, 300] {
        let node = Node::start(Options::default());
        node.create("o").await;
        node.fault(Fault::Random {
            kind: ErrorKind::Conflict,
            per_mille,
        });
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..60 {
            let handle = node.handle.clone();
            calls.spawn(async move { handle.invoke(request(Some("o"), "inc")).await.unwrap() });
        }
        let mut succeeded = Vec::new();
        let mut failed = 0;
        while let Some(r) = calls.join_next().await {
            let resp = r.unwrap();
            match resp.status {
                InvocationStatus::Succeeded => {
                    succeeded.push(resp.body.unwrap().as_u64().unwrap());
                }
                InvocationStatus::Failed => {
                    assert_eq!(resp.error.unwrap().code, "conflict");
                    failed += 1;
                }
                other => panic!("unexpected status {other:?}"),
            }
        }
        node.fault(Fault::None);
        assert_eq!(succeeded.len() + failed, 60);
        // Each success saw a distinct state, one after the other, and the
        // store holds the last.
        succeeded.sort_unstable();
        let expected: Vec<u64> = (1..=succeeded.len() as u64).collect();
        assert_eq!(succeeded, expected, "per mille {per_mille}");
        let stored = node
            .store
            .inner
            .get_object(&cls(), &ObjectId::new("o").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.data["n"].as_u64(), Some(succeeded.len() as u64));
        node.stop().await;
    }
}
