//! Removes what the end-to-end suites on shared backends leave on the test
//! servers: databases named `oprc_e2e_*` and JetStream streams named
//! `OPRC_E2E_*` (one per test node, see `oprc_testenv::node_backends`).
//! The test script runs it before and after that suite.

use futures_util::StreamExt;
use sqlx::{AssertSqlSafe, ConnectOptions};
use std::str::FromStr;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pg = oprc_testenv::postgres_url();
    let mut admin = sqlx::postgres::PgConnectOptions::from_str(&pg)?
        .connect()
        .await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'oprc\\_e2e\\_%'")
            .fetch_all(&mut admin)
            .await?;
    for name in &names {
        let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        sqlx::query(AssertSqlSafe(drop)).execute(&mut admin).await?;
    }
    let client = async_nats::connect(oprc_testenv::nats_url()).await?;
    let js = async_nats::jetstream::new(client);
    let mut streams = js.stream_names();
    let mut doomed = Vec::new();
    while let Some(name) = streams.next().await {
        let name = name?;
        if name.starts_with("OPRC_E2E_") {
            doomed.push(name);
        }
    }
    for name in &doomed {
        js.delete_stream(name).await?;
    }
    eprintln!(
        "oprc-test-cleanup: dropped {} databases and {} streams",
        names.len(),
        doomed.len()
    );
    Ok(())
}
