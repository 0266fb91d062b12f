//! The PostgreSQL store against a real server, found through
//! `OPRC_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Each test creates its own uniquely named database and drops it at the
//! end. A server that cannot be reached fails the test, never skips it.

use std::future::Future;
use std::sync::Arc;

use oprc_core::{ClassKey, ObjectId, ObjectRecord};
use oprc_store::{ErrorKind, StateStore, Write, WriteBatch};
use oprc_store_pg::{Options, PgStore};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// A fresh database for `test`, dropped afterwards (`oprc-testenv`).
async fn with_db<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    oprc_testenv::with_fresh_database("oprc_test", test).await;
}

async fn sql(conn: &mut PgConnection, statement: String) {
    sqlx::raw_sql(AssertSqlSafe(statement))
        .execute(conn)
        .await
        .unwrap();
}

async fn connect(url: &str, options: Options) -> PgStore {
    PgStore::connect(url, options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_state_store_conformance_suite() {
    with_db(|url| async move {
        let store = connect(&url, Options::default()).await;
        oprc_store::conformance::state_store(Arc::new(store.clone())).await;
        let stats = store.stats();
        assert!(stats.requests >= stats.commits, "{stats:?}");
        // Every group waited for its WAL flush but the deferred batch's.
        assert!(stats.durable_commits < stats.commits, "{stats:?}");
        println!("group commit: {stats:?}");
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_state_store_conformance_suite_write_behind() {
    with_db(|url| async move {
        let options = Options {
            sync: false,
            ..Options::default()
        };
        let store = connect(&url, options).await;
        oprc_store::conformance::state_store(Arc::new(store.clone())).await;
        // Only the groups with a `Required` batch waited for their WAL flush.
        let stats = store.stats();
        assert!(stats.durable_commits >= 1, "{stats:?}");
        assert!(stats.durable_commits * 10 < stats.commits, "{stats:?}");
        store.close().await;
    })
    .await;
}

/// A batch that creates these objects of class `t.group`.
fn create_all(oids: &[&str]) -> WriteBatch {
    let create = |oid: &&str| Write::PutObject {
        record: ObjectRecord::new(
            ClassKey::new("t.group").unwrap(),
            ObjectId::new(*oid).unwrap(),
            serde_json::json!({"oid": oid}),
        ),
        expected_revision: None,
    };
    WriteBatch::of(oids.iter().map(create).collect())
}

fn create(oid: &str) -> WriteBatch {
    create_all(&[oid])
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
        let cls = ClassKey::new("t.group").unwrap();
        let page = store.list_objects(&cls, None, 100).await.unwrap();
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
async fn a_statement_that_runs_too_long_times_out_and_the_store_goes_on() {
    with_db(|url| async move {
        let options = Options {
            statement_timeout: std::time::Duration::from_millis(300),
            ..Options::default()
        };
        let store = connect(&url, options).await;
        store.commit(create("locked")).await.unwrap();
        // Another session holds the row, so the update waits for its lock.
        let mut other = PgConnection::connect(&url).await.unwrap();
        let mut tx = other.begin().await.unwrap();
        sqlx::raw_sql("SELECT 1 FROM oprc_objects WHERE oid = 'locked' FOR UPDATE")
            .execute(&mut *tx)
            .await
            .unwrap();
        let cls = ClassKey::new("t.group").unwrap();
        let mut record = store
            .get_object(&cls, &ObjectId::new("locked").unwrap())
            .await
            .unwrap()
            .unwrap();
        let stored = record.meta.revision;
        record.meta.revision = stored + 1;
        let update = WriteBatch::of(vec![Write::PutObject {
            record,
            expected_revision: Some(stored),
        }]);
        let err = store.commit(update.clone()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
        assert!(err.message.contains("timed out"), "{err}");
        // Nothing of it landed, and the store serves the next batches.
        store.commit(create("free")).await.unwrap();
        tx.rollback().await.unwrap();
        store.commit(update).await.unwrap();
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_schema_newer_than_the_code_is_refused() {
    with_db(|url| async move {
        let store = connect(&url, Options::default()).await;
        store.close().await;
        let mut conn = PgConnection::connect(&url).await.unwrap();
        sql(
            &mut conn,
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (999999, 'from the future', TRUE, '\\x00', 0)"
                .to_owned(),
        )
        .await;
        conn.close().await.unwrap();
        let err = PgStore::connect(&url, Options::default())
            .await
            .err()
            .expect("a newer schema is refused");
        assert_eq!(err.kind, ErrorKind::Internal, "{err}");
        assert!(err.message.contains("schema version 999999"), "{err}");
        assert!(err.message.contains("newer"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_its_password_stays_secret() {
    let options = Options {
        acquire_timeout: std::time::Duration::from_secs(2),
        ..Options::default()
    };
    let err = PgStore::connect("postgres://app:hunter2@127.0.0.1:1/oprc", options)
        .await
        .err()
        .expect("nothing listens on port 1");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(err.message.contains("app:***@127.0.0.1:1/oprc"), "{err}");
    let chain = format!("{err} {:?}", std::error::Error::source(&err));
    assert!(!chain.contains("hunter2"), "{chain}");
}
