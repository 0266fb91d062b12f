//! Group commit against a real server (see `conformance.rs` for how the
//! server is found): many batches in one transaction, a batch that fails
//! failing alone and leaving nothing, batches of one object in their
//! order, and the writer's kept connection lost and replaced.

mod common;

use std::time::Duration;

use common::{connect, put, record, revision, with_db};
use oprc_core::InvocationId;
use oprc_store::{Error, ErrorKind, StateStore, Write, WriteBatch};
use oprc_store_pg::{Options, PgStore};
use sqlx::{Connection, PgConnection};

/// A batch that creates these objects.
fn create_all(oids: &[&str]) -> WriteBatch {
    WriteBatch::of(oids.iter().map(|oid| put(oid, 1, None)).collect())
}

fn create(oid: &str) -> WriteBatch {
    create_all(&[oid])
}

/// Another session holding `oid`'s row: the writer's next statement on it
/// waits, and batches sent meanwhile queue up into the next group.
async fn lock_row(url: &str, oid: &str) -> PgConnection {
    let mut other = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("SELECT 1 FROM oprc_objects WHERE oid = $1 FOR UPDATE")
        .bind(oid)
        .execute(&mut other)
        .await
        .unwrap();
    other
}

/// Commits `batches` as one group, in this order: the writer is held on a
/// locked row while they queue.
async fn one_group(url: &str, store: &PgStore, batches: Vec<WriteBatch>) -> Vec<Result<(), Error>> {
    store.commit(create("gate")).await.unwrap();
    let mut gate = lock_row(url, "gate").await;
    let held = {
        let store = store.clone();
        tokio::spawn(async move {
            let batch = WriteBatch::of(vec![put("gate", 2, Some(1))]);
            store.commit(batch).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut calls = Vec::new();
    for batch in batches {
        let store = store.clone();
        calls.push(tokio::spawn(async move { store.commit(batch).await }));
        // Into the channel in this order.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = store.stats();
    sqlx::raw_sql("ROLLBACK").execute(&mut gate).await.unwrap();
    held.await.unwrap().unwrap();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    let after = store.stats();
    // The held batch's transaction, then one for all of them.
    assert_eq!(after.commits - before.commits, 2, "{after:?}");
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_batch_fails_alone_in_its_group() {
    with_db(|url| async move {
        let store = connect(&url, Options::default()).await;
        store.commit(create("taken")).await.unwrap();
        let before = store.stats();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..32 {
            let store = store.clone();
            tasks.spawn(async move {
                let oid = format!("o{i}");
                // Batch 7 creates its object, then fails on the taken one:
                // its first write must be rolled back with it.
                let batch = if i == 7 {
                    create_all(&[&oid, "taken"])
                } else {
                    create(&oid)
                };
                (i, store.commit(batch).await)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (i, result) = joined.unwrap();
            match i {
                7 => assert_eq!(result.unwrap_err().kind, ErrorKind::Conflict),
                _ => result.unwrap(),
            }
        }
        let page = store.list_objects(&common::cls(), None, 100).await.unwrap();
        let ids: Vec<String> = page.objects.iter().map(|o| o.meta.id.to_string()).collect();
        assert_eq!(ids.len(), 32, "31 new objects and the taken one: {ids:?}");
        assert!(!ids.contains(&"o7".to_owned()), "{ids:?}");
        let after = store.stats();
        assert_eq!(after.requests - before.requests, 32);
        println!(
            "32 batches in {} transactions",
            after.commits - before.commits
        );
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_one_object_in_one_group_apply_in_their_order() {
    with_db(|url| async move {
        let store = connect(&url, Options::default()).await;
        store.commit(create("chain")).await.unwrap();
        store.commit(create("taken")).await.unwrap();
        let results = one_group(
            &url,
            &store,
            vec![
                WriteBatch::of(vec![put("chain", 2, Some(1))]),
                // Sees the one before it, in the same transaction.
                WriteBatch::of(vec![put("chain", 3, Some(2))]),
                // Stale after it: fails, and only it.
                WriteBatch::of(vec![put("chain", 3, Some(2))]),
                create("fresh"),
                // A second create of the same object, later in the group.
                create("fresh"),
                // Half of it could apply; none of it does.
                create_all(&["half", "taken"]),
                WriteBatch::of(vec![put("chain", 4, Some(3))]),
            ],
        )
        .await;
        let kinds: Vec<Option<ErrorKind>> = results
            .iter()
            .map(|r| r.as_ref().err().map(|e| e.kind))
            .collect();
        let conflict = Some(ErrorKind::Conflict);
        assert_eq!(
            kinds,
            [None, None, conflict, None, conflict, conflict, None],
            "{results:?}"
        );
        assert_eq!(revision(&store, "chain").await, Some(4));
        assert_eq!(revision(&store, "fresh").await, Some(1));
        assert_eq!(revision(&store, "half").await, None);
        assert!(
            format!("{:?}", results[5]).contains("t.pg/taken"),
            "{results:?}"
        );
        store.close().await;
    })
    .await;
}

/// The usual group (one object per batch, no row shared): one statement,
/// in which a batch whose compare-and-swap fails leaves neither its
/// invocation record nor its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_of_the_one_statement_leaves_no_record_and_no_key() {
    with_db(|url| async move {
        let store = connect(&url, Options::default()).await;
        store.commit(create("a")).await.unwrap();
        store.commit(create("b")).await.unwrap();
        store.commit(create("d")).await.unwrap();
        let with = |w: Write, id: &str| WriteBatch::of(vec![w, record(id, &format!("key-{id}"))]);
        let results = one_group(
            &url,
            &store,
            vec![
                with(put("a", 2, Some(1)), "i1"),
                with(put("b", 9, Some(8)), "i2"),
                WriteBatch::of(vec![record("i3", "key-i3")]),
                with(put("c", 1, None), "i4"),
                with(put("d", 9, None), "i5"),
            ],
        )
        .await;
        let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, false, true, true, false], "{results:?}");
        assert!(format!("{:?}", results[1]).contains("t.pg/b is not at revision 8"));
        assert!(format!("{:?}", results[4]).contains("t.pg/d is not to be absent"));
        assert_eq!(revision(&store, "a").await, Some(2));
        assert_eq!(revision(&store, "b").await, Some(1));
        assert_eq!(revision(&store, "c").await, Some(1));
        for (id, kept) in [
            ("i1", true),
            ("i2", false),
            ("i3", true),
            ("i4", true),
            ("i5", false),
        ] {
            let inv = InvocationId::new(id).unwrap();
            let found = store.get_invocation(&inv).await.unwrap();
            assert_eq!(found.is_some(), kept, "{id}");
            let key = store
                .find_idempotency_key(&format!("key-{id}"))
                .await
                .unwrap();
            assert_eq!(key, kept.then_some(inv), "{id}'s key");
        }
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_error_in_a_group_fails_only_the_batch_that_caused_it() {
    with_db(|url| async move {
        let options = Options {
            statement_timeout: Duration::from_millis(300),
            ..Options::default()
        };
        let store = connect(&url, options).await;
        store.commit(create("locked")).await.unwrap();
        // Held for the whole group: that batch's statement times out, in
        // the set-based attempt and again on its own.
        let mut other = lock_row(&url, "locked").await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..8 {
            let store = store.clone();
            tasks.spawn(async move {
                let batch = if i == 3 {
                    WriteBatch::of(vec![put("locked", 2, Some(1))])
                } else {
                    create(&format!("o{i}"))
                };
                (i, store.commit(batch).await)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (i, result) = joined.unwrap();
            match i {
                3 => {
                    let err = result.unwrap_err();
                    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
                    assert!(err.message.contains("timed out"), "{err}");
                }
                _ => result.unwrap(),
            }
        }
        for i in [0, 1, 2, 4, 5, 6, 7] {
            assert_eq!(revision(&store, &format!("o{i}")).await, Some(1), "o{i}");
        }
        sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
        assert_eq!(revision(&store, "locked").await, Some(1));
        store
            .commit(WriteBatch::of(vec![put("locked", 2, Some(1))]))
            .await
            .unwrap();
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_killed_by_the_server_costs_no_write() {
    with_db(|url| async move {
        let store = connect(&url, Options::default()).await;
        store.commit(create("before")).await.unwrap();
        // What an administrator or a server restart does to every session.
        let mut admin = PgConnection::connect(&url).await.unwrap();
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'oprc'",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert!(
            !killed.is_empty() && killed.iter().all(|k| *k),
            "{killed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        store.commit(create("after")).await.unwrap();
        assert_eq!(revision(&store, "after").await, Some(1));
        // Closing does not wait for the writer's connection forever.
        tokio::time::timeout(Duration::from_secs(5), store.close())
            .await
            .expect("the pool closes");
        let err = store.commit(create("closed")).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    })
    .await;
}
