//! Test support: where the suites find PostgreSQL and NATS, and the
//! backends a test node runs on.
//!
//! - `OPRC_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//!   and `OPRC_TEST_NATS` (default `nats://127.0.0.1:4222`) name the
//!   servers; `scripts/ensure-postgres.sh` and `scripts/ensure-nats.sh`
//!   print them.
//! - `OPRC_TEST_BACKENDS=shared` runs the end-to-end suites on PostgreSQL
//!   and JetStream instead of the embedded defaults: [`node_backends`]
//!   then gives each test node its own database and stream, named after
//!   its data directory, so a restarted node finds its data again.
//!
//! - [`ThrowawayPostgres`] and [`ThrowawayNats`]: servers of a test's own,
//!   for fault tests that stop and restart them.
//!
//! A server that cannot be reached fails the test that needs it, with what
//! to run; nothing is skipped.

mod throwaway;

use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

pub use throwaway::{ThrowawayNats, ThrowawayPostgres, free_port};

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_NATS: &str = "nats://127.0.0.1:4222";

/// The PostgreSQL server of the tests (an admin URL).
pub fn postgres_url() -> String {
    std::env::var("OPRC_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned())
}

/// The NATS server of the tests.
pub fn nats_url() -> String {
    std::env::var("OPRC_TEST_NATS").unwrap_or_else(|_| DEFAULT_NATS.to_owned())
}

/// Whether the end-to-end suites run on PostgreSQL and JetStream.
pub fn shared_backends() -> bool {
    std::env::var("OPRC_TEST_BACKENDS").is_ok_and(|v| v == "shared")
}

/// The `--state` and `--invocation-log` URLs of a test node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeBackends {
    pub state: String,
    pub invocation_log: String,
}

/// With `OPRC_TEST_BACKENDS=shared`, the backends of the node whose data
/// directory is `data_dir`: a database (created when missing) and a
/// stream named after it. `None` otherwise (the embedded defaults).
pub async fn node_backends(data_dir: &Path) -> Option<NodeBackends> {
    if !shared_backends() {
        return None;
    }
    Some(backends_for(data_dir).await)
}

/// A database (created when missing) and a stream named after `dir`,
/// whatever `OPRC_TEST_BACKENDS` says (for tests of the shared backends
/// themselves).
pub async fn backends_for(dir: &Path) -> NodeBackends {
    let name = name_of(dir);
    NodeBackends {
        state: database(&name).await,
        invocation_log: stream_url(&name),
    }
}

/// [`node_backends`] for code without a runtime.
pub fn node_backends_blocking(data_dir: &Path) -> Option<NodeBackends> {
    if !shared_backends() {
        return None;
    }
    runtime().block_on(node_backends(data_dir))
}

/// A name for `data_dir`'s database and stream: the same for the same
/// directory, different for different ones.
fn name_of(data_dir: &Path) -> String {
    // FNV-1a: stable across runs and processes (unlike std's hasher).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data_dir.as_os_str().as_encoded_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("oprc_e2e_{h:016x}")
}

/// The URL of a JetStream log in a stream of its own (`stream` and
/// `subjects` are the node's URL settings).
pub fn stream_url(name: &str) -> String {
    let base = nats_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!(
        "{base}{sep}stream={}&subjects=oprc.{name}",
        name.to_ascii_uppercase()
    )
}

/// The URL of database `name` on the test server, created when missing.
pub async fn database(name: &str) -> String {
    create_database(&postgres_url(), name).await
}

/// The URL of database `name` on the server of `admin_url`, created when
/// missing (for code without a runtime, e.g. on a throwaway server).
pub fn database_on(admin_url: &str, name: &str) -> String {
    runtime().block_on(create_database(admin_url, name))
}

async fn create_database(admin_url: &str, name: &str) -> String {
    let admin_url = admin_url.to_owned();
    let options = PgConnectOptions::from_str(&admin_url)
        .unwrap_or_else(|e| panic!("OPRC_TEST_POSTGRES is not a postgres URL: {e}"));
    let mut admin = options.connect().await.unwrap_or_else(|e| {
        panic!(
            "cannot reach PostgreSQL at {admin_url} ({e}); run scripts/ensure-postgres.sh \
             and export the OPRC_TEST_POSTGRES it prints"
        )
    });
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut admin)
            .await
            .expect("query pg_database");
    if !exists {
        let create = format!("CREATE DATABASE \"{name}\"");
        if let Err(e) = sqlx::query(AssertSqlSafe(create)).execute(&mut admin).await {
            // Another test process made it meanwhile.
            let raced = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "42P04" || c == "23505");
            assert!(raced, "cannot create database {name}: {e}");
        }
    }
    let _ = admin.close().await;
    with_database(&admin_url, name)
}

/// Runs `test` with the URL of a fresh database on the test server (named
/// `PREFIX_PID_NANOS_N`), then drops the database, also when the test
/// panics.
pub async fn with_fresh_database<F, Fut>(prefix: &str, test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{prefix}_{}_{nanos}_{n}", std::process::id());
    let url = database(&name).await;
    let result = tokio::spawn(test(url)).await;
    let admin_url = postgres_url();
    let mut admin = PgConnectOptions::from_str(&admin_url)
        .expect("checked when the database was made")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin_url} to drop {name}: {e}"));
    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::query(AssertSqlSafe(drop))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot drop database {name}: {e}"));
    let _ = admin.close().await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// `url` with its database replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let path = rest.find('/').unwrap_or(rest.len());
    let query = rest[path..]
        .find('?')
        .map(|q| &rest[path + q..])
        .unwrap_or("");
    format!("{}{}/{db}{query}", &url[..start], &rest[..path])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for test set-up")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_per_directory() {
        let a = name_of(Path::new("/tmp/a"));
        assert_eq!(a, name_of(Path::new("/tmp/a")));
        assert_ne!(a, name_of(Path::new("/tmp/b")));
        assert!(a.starts_with("oprc_e2e_") && a.len() == 25, "{a}");
    }

    #[test]
    fn database_urls_keep_their_query() {
        assert_eq!(
            with_database("postgres://u@h:1/postgres?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
