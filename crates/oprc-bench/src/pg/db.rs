//! The PostgreSQL server of the benchmark: the databases it makes for the
//! targets and drops at the end, what the server's processes spend
//! serving a database, and its WAL fsyncs.

use std::collections::HashMap;
use std::str::FromStr;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool, Row};

use crate::external;

/// The server, through one admin connection (to the database of the URL
/// given, never one of the targets').
pub struct Server {
    admin: PgPool,
    url: String,
    /// The postmaster: the parent of every backend.
    postmaster: u32,
}

/// CPU ticks so far of server processes, by pid.
pub type Ticks = HashMap<u32, u64>;

/// `url` with its database replaced by `db` (the query string is kept).
pub fn with_database(url: &str, db: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .with_context(|| format!("not a postgres URL: {url:?}"))?;
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let query = tail
        .split_once('?')
        .map_or(String::new(), |(_, q)| format!("?{q}"));
    Ok(format!("{scheme}://{authority}/{db}{query}"))
}

impl Server {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .with_context(|| format!("not a postgres URL: {url:?}"))?
            .application_name("oprc-bench");
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot reach PostgreSQL at {url}"))?;
        let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&admin)
            .await?;
        let postmaster = u32::try_from(backend)
            .ok()
            .and_then(external::parent)
            .context("cannot find the postmaster (is PostgreSQL on this machine?)")?;
        Ok(Self {
            admin,
            url: url.to_owned(),
            postmaster,
        })
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> anyhow::Result<String> {
        with_database(&self.url, db)
    }

    /// Creates database `db`, dropping one left by an earlier run.
    pub async fn create(&self, db: &str) -> anyhow::Result<()> {
        self.drop_database(db).await?;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
            .execute(&self.admin)
            .await
            .with_context(|| format!("failed to create database {db}"))?;
        Ok(())
    }

    /// Drops database `db` and ends its sessions.
    pub async fn drop_database(&self, db: &str) -> anyhow::Result<()> {
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
        )))
        .execute(&self.admin)
        .await
        .with_context(|| format!("failed to drop database {db}"))?;
        Ok(())
    }

    /// CPU ticks so far of the processes that serve `db`: its backends and
    /// the server's own (the postmaster, the WAL writer, the checkpointer,
    /// the background writer, autovacuum): not the backends of other
    /// databases, this benchmark's admin connection among them.
    pub async fn ticks(&self, db: &str) -> anyhow::Result<Ticks> {
        let rows = sqlx::query("SELECT pid, datname, backend_type FROM pg_stat_activity")
            .fetch_all(&self.admin)
            .await?;
        let mut pids = vec![self.postmaster];
        for r in rows {
            let pid: i32 = r.try_get("pid")?;
            let datname: Option<String> = r.try_get("datname")?;
            let kind: Option<String> = r.try_get("backend_type")?;
            if datname.as_deref() == Some(db) || kind.as_deref() != Some("client backend") {
                pids.extend(u32::try_from(pid).ok());
            }
        }
        Ok(pids
            .into_iter()
            .filter_map(|p| Some((p, external::ticks(p)?)))
            .collect())
    }

    /// The server's WAL syncs so far (`pg_stat_wal.wal_sync`). Backends
    /// report their counts when idle, up to 10 s late.
    pub async fn wal_syncs(&self) -> anyhow::Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT wal_sync FROM pg_stat_wal")
            .fetch_one(&self.admin)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The version and the settings that decide commit cost, for the
    /// report.
    pub async fn describe(&self) -> anyhow::Result<String> {
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&self.admin)
            .await?;
        let mut out = format!("PostgreSQL {version}");
        for name in [
            "synchronous_commit",
            "fsync",
            "wal_sync_method",
            "commit_delay",
            "shared_buffers",
            "max_connections",
            "autovacuum",
        ] {
            let v: String = sqlx::query_scalar(AssertSqlSafe(format!("SHOW {name}")))
                .fetch_one(&self.admin)
                .await?;
            out.push_str(&format!(", {name} = {v}"));
        }
        Ok(out)
    }
}

/// Ticks spent between `before` and `after`; a process that started
/// meanwhile counts from zero, one that ended is lost.
pub fn spent(before: &Ticks, after: &Ticks) -> u64 {
    after
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum()
}

#[cfg(test)]
mod tests {
    fn check(url: &str, expected: &str) {
        assert_eq!(super::with_database(url, "b").unwrap(), expected, "{url}");
    }

    #[test]
    fn the_database_of_a_url_is_replaced() {
        check("postgres://u@h:5432/postgres", "postgres://u@h:5432/b");
        check("postgres://u@h:5432", "postgres://u@h:5432/b");
        check(
            "postgres://u@h/a?sslmode=disable",
            "postgres://u@h/b?sslmode=disable",
        );
    }

    #[test]
    fn a_process_started_during_a_cell_counts_whole() {
        let before = [(1, 10), (2, 5)].into();
        let after = [(1, 15), (3, 7)].into();
        assert_eq!(super::spent(&before, &after), 12);
    }
}
