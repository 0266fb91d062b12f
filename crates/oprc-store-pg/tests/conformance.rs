//! The PostgreSQL store against a real server, found through
//! `OPRC_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Each test creates its own uniquely named database and drops it at the
//! end. A server that cannot be reached fails the test, never skips it.

mod common;

use std::sync::Arc;

use common::{connect, with_db};

use oprc_store::ErrorKind;
use oprc_store_pg::{Options, PgStore};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

async fn sql(conn: &mut PgConnection, statement: String) {
    sqlx::raw_sql(AssertSqlSafe(statement))
        .execute(conn)
        .await
        .unwrap();
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
