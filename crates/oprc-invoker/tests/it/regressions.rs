//! Regression tests of races found in a review of the rewritten invoker:
//! the doc comment of each test names the interleaving and the guarantee
//! it broke before the fix.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use oprc_core::{InvocationStatus, ObjectId, PartitionId};
use oprc_invoker::{Error, Options};
use oprc_store::ErrorKind;
use serde_json::json;

use crate::script::{PACKAGE, TNode, opts, until};
use crate::support::{catalog, cls, request};

// ---------------------------------------------------------------------------
// The tests.

/// G5, worker.rs (the `stopping` branch, then the loop going on).
///
/// Async call A on `o` waits out a storage failure (paused, in `redo`)
/// when the node is asked to stop; B, a later call on `o`, waits in the
/// inbox. Once the drain times out, the worker abandons A ("it stays in
/// the log") but then keeps draining the inbox: B runs and, storage
/// having healed, commits `lastOffset = B`. At the next start A's replay
/// sees `lastOffset >= A` and is counted done without ever running (and,
/// as the `lastOffset` shortcut writes no record, its record says `QUEUE`
/// for good): an accepted call is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_call_left_at_shutdown_is_not_skipped_by_a_later_one() {
    let mut node = TNode::start(Options {
        drain_timeout: Duration::from_millis(100),
        ..opts()
    });
    node.create("o").await;
    *node.store.fail_object_commits.lock() = Some(ErrorKind::Unavailable);
    let a = node.submit("o", "inc").await;
    // After the 6th failed commit A waits 640 ms before its next try.
    let store = node.store.clone();
    until("A's sixth failed commit", Duration::from_secs(10), || {
        store.failed.load(Ordering::SeqCst) >= 6
    })
    .await;
    let b = node.submit("o", "inc").await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    // Stop; storage heals meanwhile.
    node.cancel.cancel();
    *node.store.fail_object_commits.lock() = None;
    node.halt().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let between = node.stored("o").await.unwrap();
    // Start again: the log replays from A.
    node.boot();
    node.applied_up_to(2).await;
    let a_now = node.handle.invocation(&a).await.unwrap();
    let b_now = node.handle.invocation(&b).await.unwrap();
    let after = node.stored("o").await.unwrap();
    assert_eq!(
        after.data["n"],
        json!(2),
        "the log is applied past A and B (A {:?}, B {:?}), but only B is in the \
         state; between the runs the store held n={} lastOffset={} (B's offset) \
         while A was not applied",
        a_now.status,
        b_now.status,
        between.data["n"],
        between.meta.last_offset
    );
    node.halt().await;
}

/// G1 and G5, direct.rs:59 with exec.rs:45 (replanning).
///
/// An async call of `peek` (immutable) is dispatched as a direct call. Its
/// function was redeployed, so `exec::run` plans it again, on a catalog
/// where `peek` is no longer immutable, and the direct call commits a new
/// main state, with `lastOffset` = its offset, outside the object's
/// inbox. The earlier async call S, running in the inbox, then conflicts,
/// reloads, sees `lastOffset >= S` and is counted done without its effect
/// ever being applied (its record stays `QUEUE`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_binding_became_mutating_runs_in_its_inbox() {
    let node = TNode::start(opts());
    node.create("o").await;
    let s = node.submit("o", "slow").await;
    let engine = node.engine.clone();
    until("S runs", Duration::from_secs(5), || {
        engine.started("slow") == 1
    })
    .await;
    let mutable_peek = PACKAGE.replace(
        "{name: peek, function: .inc, immutable: true}",
        "{name: peek, function: .inc, immutable: false}",
    );
    let published = node.catalog.clone();
    *node.engine.changed_once.lock() = Some((
        "peek".into(),
        Box::new(move || published.store(Arc::new(catalog(&mutable_peek)))),
    ));
    let d = node.submit("o", "peek").await;
    // D now mutates: it waits in the inbox behind S, and runs after it.
    node.engine.gate.open(1);
    let s_end = node
        .ended(&s, Duration::from_secs(10))
        .await
        .expect("S ends");
    let d_end = node
        .ended(&d, Duration::from_secs(10))
        .await
        .expect("D ends");
    assert_eq!(s_end.status, InvocationStatus::Succeeded, "{s_end:?}");
    assert_eq!(d_end.status, InvocationStatus::Succeeded, "{d_end:?}");
    node.applied_up_to(2).await;
    let stored = node.stored("o").await.unwrap();
    assert_eq!(
        stored.data.get("slow"),
        Some(&json!(true)),
        "S's effect: {}",
        stored.data
    );
    assert_eq!(
        stored.data.get("peek"),
        Some(&json!(true)),
        "D's effect: {}",
        stored.data
    );
    assert_eq!(
        stored.data["n"],
        json!(2),
        "both applied once: {}",
        stored.data
    );
    let mut node = node;
    node.halt().await;
}

/// Retries that never stop, worker.rs + retry.rs (`Conflict` for async
/// calls is retried forever).
///
/// An async call of `mk` creates an output object whose id is its
/// invocation id, which its caller learns from the 202. If an object with
/// that id exists when it runs (created by `new` with that id), its
/// commit conflicts on the output object every time: the call is retried
/// forever, never ends, and blocks every later call on its object.
/// (The same entry as a direct call ends `already_exists`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_call_whose_output_exists_ends_already_exists() {
    let node = TNode::start(opts());
    node.create("o").await;
    let holder = tokio::spawn({
        let handle = node.handle.clone();
        async move { handle.invoke(request(Some("o"), "slow")).await }
    });
    let engine = node.engine.clone();
    until("the slow call runs", Duration::from_secs(5), || {
        engine.started("slow") == 1
    })
    .await;
    let x = node.submit("o", "mk").await;
    node.create(x.as_str()).await;
    node.engine.gate.open(100);
    holder.await.unwrap().unwrap();
    let ended = node.ended(&x, Duration::from_secs(5)).await;
    let later = tokio::time::timeout(
        Duration::from_secs(2),
        node.handle.invoke(request(Some("o"), "inc")),
    )
    .await;
    assert!(
        ended.is_some(),
        "the async call never ended ({} runs of its function so far); a later \
         call on its object {}",
        node.engine.started("mk"),
        if later.is_ok() {
            "ran"
        } else {
            "is stuck behind it"
        }
    );
    let mut node = node;
    node.halt().await;
}

/// Bounds, pipeline.rs `waiting` / worker.rs.
///
/// While a commit is in flight the worker keeps taking calls out of the
/// bounded channel and parks them, computed, in `Pipeline::waiting`
/// (each holding its batch: two copies of the object). The channel has
/// room again, so more callers are admitted: with a slow commit, an
/// object's queue grows without the `max_queued_per_object` bound (here
/// 2) ever refusing anyone; only the node-wide `max_in_flight` stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_queue_bound_holds_while_a_commit_is_slow() {
    let node = TNode::start(Options {
        max_queued_per_object: 2,
        ..opts()
    });
    node.create("o").await;
    node.store
        .block_object_commits
        .store(true, Ordering::SeqCst);
    let mut calls = tokio::task::JoinSet::new();
    let mut refused = 0;
    for _ in 0..20 {
        let handle = node.handle.clone();
        calls.spawn(async move { handle.invoke(request(Some("o"), "inc")).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let admitted = node.handle.stats().admitted;
    node.store
        .block_object_commits
        .store(false, Ordering::SeqCst);
    node.store.gate.open(100);
    while let Some(r) = calls.join_next().await {
        match r.unwrap() {
            Ok(_) => {}
            Err(Error::Overloaded { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    // 2 queued + 1 running + 1 committing at most.
    assert!(
        admitted <= 4,
        "{admitted} calls held on one object with max_queued_per_object = 2 \
         ({refused} of 20 refused)"
    );
    let mut node = node;
    node.halt().await;
}

/// Hot-object cache, answer.rs:24 (`cache.set` after the commit, in the
/// worker's own time).
///
/// `delete o` lands in the store, but its reply reaches the worker late.
/// Meanwhile `new o` (a direct call) creates the object again and puts it
/// in the cache. Then the worker handles the delete's reply and puts the
/// tombstone: the cache now says "gone" for an object the store holds,
/// newer than the tombstone. Reads answer 404, and every later call on
/// the object is refused as not found, until the entry is evicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_delete_does_not_bury_a_recreated_object_in_the_cache() {
    let node = TNode::start(opts());
    node.create("o").await;
    node.store.hold_delete_reply.store(true, Ordering::SeqCst);
    let delete = tokio::spawn({
        let handle = node.handle.clone();
        async move { handle.invoke(request(Some("o"), "delete")).await }
    });
    let store = node.store.clone();
    until("the delete lands", Duration::from_secs(5), || {
        store.held.load(Ordering::SeqCst) == 1
    })
    .await;
    node.create("o").await;
    node.store.gate.open(1);
    let deleted = delete.await.unwrap().unwrap();
    assert_eq!(deleted.status, InvocationStatus::Succeeded);
    assert!(
        node.stored("o").await.is_some(),
        "the store holds the new o"
    );
    let seen = node
        .handle
        .object(&cls(), &ObjectId::new("o").unwrap())
        .await;
    let call = node.handle.invoke(request(Some("o"), "inc")).await;
    assert!(
        seen.is_ok() && call.is_ok(),
        "the object exists (created after the delete), but a read gives {:?} \
         and a call gives {:?}",
        seen.err().map(|e| e.to_string()),
        call.err().map(|e| e.to_string())
    );
    let mut node = node;
    node.halt().await;
}

/// G1 / stale worker view, worker.rs `Current` (a busy worker never
/// reloads its object).
///
/// A worker that computed `delete o` keeps `Current::Gone` while its commit
/// is in flight. `new o` (a direct call, outside the inbox) creates the
/// object again and answers. A call sent after that answer joins the busy
/// worker's inbox, runs on the worker's stale `Gone`, and is refused as
/// "object does not exist".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_sees_its_object_created_again() {
    let node = TNode::start(opts());
    node.create("o").await;
    node.store.hold_delete_reply.store(true, Ordering::SeqCst);
    let delete = tokio::spawn({
        let handle = node.handle.clone();
        async move { handle.invoke(request(Some("o"), "delete")).await }
    });
    let store = node.store.clone();
    until("the delete lands", Duration::from_secs(5), || {
        store.held.load(Ordering::SeqCst) == 1
    })
    .await;
    node.create("o").await;
    // Sent after `new` answered.
    let call = tokio::spawn({
        let handle = node.handle.clone();
        async move { handle.invoke(request(Some("o"), "inc")).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    node.store.gate.open(1);
    delete.await.unwrap().unwrap();
    let call = call.await.unwrap();
    assert!(
        call.as_ref()
            .is_ok_and(|r| r.status == InvocationStatus::Succeeded),
        "a call sent after `new o` answered got {:?}",
        call.map_err(|e| e.to_string())
    );
    let mut node = node;
    node.halt().await;
}

/// Wrong answer, answer.rs:52 (`storage_failed` for `Timeout`).
///
/// A plain sync call whose commit times out is answered
/// `storage_unavailable`: "nothing was committed; retry later". The
/// outcome of a timed-out commit is unknown: here it landed, so a client
/// that follows the advice applies the call twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_timeout_says_the_outcome_is_unknown() {
    let node = TNode::start(opts());
    node.create("o").await;
    node.store
        .timeout_after_landing
        .store(true, Ordering::SeqCst);
    let resp = node.handle.invoke(request(Some("o"), "inc")).await.unwrap();
    node.store
        .timeout_after_landing
        .store(false, Ordering::SeqCst);
    let message = resp
        .error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_default();
    let n = node.stored("o").await.unwrap().data["n"].clone();
    assert!(
        !(message.contains("nothing was committed") && n == json!(1)),
        "answered {:?} \"{message}\" but the call is committed (n = {n})",
        resp.status
    );
    let mut node = node;
    node.halt().await;
}

/// Head-of-line blocking, consumer.rs:104 with inbox.rs `push_waiting`.
///
/// The consumer of a partition hands entries over one at a time and waits
/// for room in a full inbox. One hot object with a full inbox (a slow
/// function) stops every other object of the partition: ADR 6 says "the
/// other partitions and objects go on".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_inbox_does_not_stop_its_partition() {
    let node = TNode::start(Options {
        max_queued_per_object: 1,
        ..opts()
    });
    node.create("hot").await;
    node.create("cold").await;
    for _ in 0..4 {
        node.submit("hot", "slow").await;
    }
    let cold = node.submit("cold", "inc").await;
    let ended = node.ended(&cold, Duration::from_secs(2)).await;
    node.engine.gate.open(100);
    assert!(
        ended.is_some(),
        "a call on another object waited for the hot object's queue"
    );
    let mut node = node;
    node.halt().await;
}

/// Idempotency keys, handle.rs:245 (`enqueue` ignores a failed `QUEUE`
/// record) with the log's per-partition dedup.
///
/// The `QUEUE` record is what binds an async call's key to its request
/// while the call waits. If writing it fails, the key is bound to
/// nothing: the same key for another object in another partition is
/// accepted and runs (instead of `422` key reused), and both calls
/// apply under one key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_stays_bound_when_its_queue_record_failed() {
    let node = TNode::start(Options {
        partitions: 16,
        ..opts()
    });
    let first = "k-first";
    let other = (0..1000)
        .map(|i| format!("k-other{i}"))
        .find(|o| {
            PartitionId::of(&cls(), &ObjectId::new(o.as_str()).unwrap(), 16)
                != PartitionId::of(&cls(), &ObjectId::new(first).unwrap(), 16)
        })
        .expect("an object in another partition");
    node.create(first).await;
    node.create(&other).await;
    // Hold the first object so its call stays queued.
    let holder = tokio::spawn({
        let handle = node.handle.clone();
        async move { handle.invoke(request(Some(first), "slow")).await }
    });
    let engine = node.engine.clone();
    until("the slow call runs", Duration::from_secs(5), || {
        engine.started("slow") == 1
    })
    .await;
    node.store.fail_record_only.store(true, Ordering::SeqCst);
    let mut a = request(Some(first), "inc");
    a.idempotency_key = Some("key".into());
    node.handle.submit(a).await.expect("accepted");
    node.store.fail_record_only.store(false, Ordering::SeqCst);
    let mut b = request(Some(&other), "inc");
    b.idempotency_key = Some("key".into());
    let second = node.handle.submit(b).await;
    node.engine.gate.open(100);
    holder.await.unwrap().unwrap();
    assert!(
        matches!(second, Err(Error::KeyReused { .. })),
        "the key of a queued call was accepted for another object: {:?}",
        second.map(|r| r.status)
    );
    let mut node = node;
    node.halt().await;
}
