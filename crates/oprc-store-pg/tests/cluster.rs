//! Membership, partition ownership and fenced commits (ADR 13) against a
//! real server (see `conformance.rs` for how the server is found).

mod common;

use std::time::Duration;

use common::{has_record, put, revision, with_db};
use oprc_store::cluster::Membership;
use oprc_store::{ErrorKind, Fence, StateStore, Write, WriteBatch};
use oprc_store_pg::{Options, PgStore};

async fn connect(url: &str) -> PgStore {
    common::connect(url, Options::default()).await
}

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(30);

/// The invocation record `id`, keyed `key-ID`.
fn record(id: &str) -> Write {
    common::record(id, &format!("key-{id}"))
}

fn fenced(writes: Vec<Write>, partition: u16, epoch: u64) -> WriteBatch {
    WriteBatch {
        fence: Some(Fence { partition, epoch }),
        ..WriteBatch::of(writes)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_renew_lapse_and_leave() {
    with_db(|url| async move {
        let store = connect(&url).await;
        let a = store
            .heartbeat("node-a", "http://a:1", SHORT)
            .await
            .unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].advertise, "http://a:1");
        assert!(
            a[0].lease_left <= SHORT && !a[0].lease_left.is_zero(),
            "{a:?}"
        );
        let both = store.heartbeat("node-b", "http://b:1", LONG).await.unwrap();
        let ids: Vec<&str> = both.iter().map(|m| m.node.as_str()).collect();
        assert_eq!(ids, ["node-a", "node-b"]);
        // a's lease lapses: it is out, running or not.
        tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
        let after = store.heartbeat("node-b", "http://b:2", LONG).await.unwrap();
        let ids: Vec<&str> = after.iter().map(|m| m.node.as_str()).collect();
        assert_eq!(ids, ["node-b"]);
        assert_eq!(after[0].advertise, "http://b:2");
        // And back with its next heartbeat.
        store.heartbeat("node-a", "http://a:1", LONG).await.unwrap();
        store.leave("node-b").await.unwrap();
        let left = store.heartbeat("node-a", "http://a:1", LONG).await.unwrap();
        let ids: Vec<&str> = left.iter().map(|m| m.node.as_str()).collect();
        assert_eq!(ids, ["node-a"]);
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_waits_for_the_lease_to_lapse_and_takes_a_new_epoch() {
    with_db(|url| async move {
        let store = connect(&url).await;
        let a = store
            .claim(3, "node-a", SHORT)
            .await
            .unwrap()
            .expect("free");
        assert_eq!((a.partition, a.epoch), (3, 1));
        assert!(a.held_by("node-a"));
        assert_eq!(
            store.claim(3, "node-b", LONG).await.unwrap(),
            None,
            "a's lease runs"
        );
        assert_eq!(
            store.claim(3, "node-a", LONG).await.unwrap(),
            None,
            "not twice"
        );
        // Renewed in time, a keeps it at the same epoch.
        let renewed = store.renew("node-a", &[(3, 1)], SHORT).await.unwrap();
        assert_eq!(renewed.len(), 1);
        assert_eq!(renewed[0].epoch, 1);
        tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
        let b = store
            .claim(3, "node-b", LONG)
            .await
            .unwrap()
            .expect("lapsed");
        assert_eq!(b.epoch, 2);
        // a's renewal and release at its old epoch do nothing.
        assert_eq!(store.renew("node-a", &[(3, 1)], LONG).await.unwrap(), []);
        assert!(!store.release(3, "node-a", 1).await.unwrap());
        let all = store.ownership().await.unwrap();
        assert_eq!(all.len(), 1);
        assert!(all[0].held_by("node-b"), "{all:?}");
        // A release lets the next claim go at once, with yet another epoch.
        assert!(store.release(3, "node-b", 2).await.unwrap());
        let again = store
            .claim(3, "node-a", LONG)
            .await
            .unwrap()
            .expect("released");
        assert_eq!(again.epoch, 3);
        // Leaving releases every partition of the node.
        store.claim(4, "node-a", LONG).await.unwrap().expect("free");
        store.leave("node-a").await.unwrap();
        let all = store.ownership().await.unwrap();
        assert!(all.iter().all(|o| o.owner.is_none()), "{all:?}");
        store.close().await;
    })
    .await;
}

/// The old owner of a partition, still running after another node took it
/// over, commits nothing: neither its object writes nor its records, in
/// the one-statement path (one object per batch) and in the transaction
/// path (several objects in a batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_fenced_with_an_old_epoch_writes_nothing() {
    with_db(|url| async move {
        let store = connect(&url).await;
        let a = store.claim(0, "node-a", SHORT).await.unwrap().unwrap();
        store
            .commit(fenced(vec![put("x", 1, None), record("i1")], 0, a.epoch))
            .await
            .unwrap();
        tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
        let b = store.claim(0, "node-b", LONG).await.unwrap().unwrap();
        assert_eq!(b.epoch, a.epoch + 1);

        let stale = fenced(vec![put("x", 2, Some(1)), record("i2")], 0, a.epoch);
        let err = store.commit(stale).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Fenced, "{err}");
        assert!(err.message.contains("partition 0"), "{err}");
        let stale = fenced(vec![put("x", 2, Some(1)), put("y", 1, None)], 0, a.epoch);
        assert_eq!(
            store.commit(stale).await.unwrap_err().kind,
            ErrorKind::Fenced
        );
        let stale = fenced(vec![record("i3")], 0, a.epoch);
        assert_eq!(
            store.commit(stale).await.unwrap_err().kind,
            ErrorKind::Fenced
        );
        assert_eq!(revision(&store, "x").await, Some(1));
        assert_eq!(revision(&store, "y").await, None);
        assert!(!has_record(&store, "i2").await && !has_record(&store, "i3").await);
        assert_eq!(store.find_idempotency_key("key-i2").await.unwrap(), None);

        // The new owner's commits go through, and a partition never
        // claimed fences everything.
        store
            .commit(fenced(vec![put("x", 2, Some(1)), record("i4")], 0, b.epoch))
            .await
            .unwrap();
        assert_eq!(revision(&store, "x").await, Some(2));
        assert!(has_record(&store, "i4").await);
        let never = fenced(vec![put("z", 1, None)], 9, 1);
        assert_eq!(
            store.commit(never).await.unwrap_err().kind,
            ErrorKind::Fenced
        );
        store.close().await;
    })
    .await;
}

/// Many batches at once, half of them from the old owner: those fail
/// alone, whatever group they land in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_batches_fail_alone_in_their_group() {
    with_db(|url| async move {
        let store = connect(&url).await;
        store.claim(1, "node-a", LONG).await.unwrap().unwrap();
        store.leave("node-a").await.unwrap();
        let now = store.claim(1, "node-b", LONG).await.unwrap().unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40u64 {
            let store = store.clone();
            tasks.spawn(async move {
                let epoch = if i % 2 == 0 { now.epoch } else { now.epoch - 1 };
                let mut writes = vec![put(&format!("o{i}"), 1, None), record(&format!("r{i}"))];
                if i % 4 == 3 {
                    writes.push(put(&format!("extra{i}"), 1, None));
                }
                (i, store.commit(fenced(writes, 1, epoch)).await)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (i, result) = joined.unwrap();
            if i % 2 == 0 {
                result.unwrap();
            } else {
                assert_eq!(result.unwrap_err().kind, ErrorKind::Fenced, "o{i}");
            }
        }
        for i in 0..40u64 {
            let written = i % 2 == 0;
            assert_eq!(
                revision(&store, &format!("o{i}")).await.is_some(),
                written,
                "o{i}"
            );
            assert_eq!(has_record(&store, &format!("r{i}")).await, written, "r{i}");
        }
        store.close().await;
    })
    .await;
}

/// A commit of the old owner already running when another node claims the
/// partition is ordered wholly before the claim: the claim waits for it
/// (the commit holds the partition's row `FOR SHARE`), so the commit lands
/// at the epoch it was fenced with and nothing of the old owner lands
/// after the new epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_waits_for_a_commit_in_flight_under_the_old_epoch() {
    use sqlx::Connection;
    with_db(|url| async move {
        let a_store = connect(&url).await;
        let b_store = connect(&url).await;
        a_store
            .commit(WriteBatch::of(vec![put("held", 1, None)]))
            .await
            .unwrap();
        let a = a_store.claim(5, "node-a", SHORT).await.unwrap().unwrap();
        // Another session holds the object's row: a's commit starts, takes
        // its fence, and waits for that lock.
        let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql("BEGIN; SELECT 1 FROM oprc_objects WHERE oid = 'held' FOR UPDATE")
            .execute(&mut other)
            .await
            .unwrap();
        let commit = {
            let a_store = a_store.clone();
            tokio::spawn(async move {
                let batch = fenced(vec![put("held", 2, Some(1))], 5, a.epoch);
                a_store.commit(batch).await
            })
        };
        tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
        // a's lease has lapsed: b's claim is allowed, but must wait.
        let claim = tokio::spawn(async move { b_store.claim(5, "node-b", LONG).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !claim.is_finished(),
            "the claim waits for the commit in flight"
        );
        sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
        // Not fenced: had the claim gone first, the commit would have read
        // the new epoch.
        commit
            .await
            .unwrap()
            .expect("the commit ran under a's epoch before the takeover");
        let b = claim
            .await
            .unwrap()
            .unwrap()
            .expect("the lapsed partition is b's");
        assert_eq!(b.epoch, a.epoch + 1);
        assert_eq!(revision(&a_store, "held").await, Some(2));
        // And a's next commit is fenced.
        let late = fenced(vec![put("held", 3, Some(2))], 5, a.epoch);
        assert_eq!(
            a_store.commit(late).await.unwrap_err().kind,
            ErrorKind::Fenced
        );
        a_store.close().await;
    })
    .await;
}
