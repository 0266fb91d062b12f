//! The writer task: group commit.
//!
//! Callers send their batch over a bounded channel and await a oneshot
//! answer. The task takes the first batch, drains whatever else is queued
//! (up to `max_batch`), and runs all of them in ONE transaction on one
//! pooled connection: each batch inside its own `SAVEPOINT`, so a batch
//! that fails (a failed compare-and-swap, a unique violation, a statement
//! timeout) is rolled back to its savepoint alone and answered with its
//! error, while the others go on (a group of one batch takes no savepoint:
//! its failure rolls the transaction back). Everyone is answered only after the
//! transaction's `COMMIT`. An error of the connection itself (the server
//! went away) fails the whole group with `Unavailable`; one at `COMMIT`
//! leaves the outcome unknown, which is `Timeout`.
//!
//! `max_batch` also bounds the subtransactions of one transaction:
//! PostgreSQL caches 64 per backend, and past that every other session's
//! snapshots get slower, hence its default of 64.
//!
//! Durability. A group is made durable before anyone is answered when any
//! of its batches asks for it (`Required`, or `Default` when
//! [`crate::Options::sync`] is set); otherwise it commits with
//! `SET LOCAL synchronous_commit = off`: the commit returns before its WAL
//! is flushed, stays atomic, and becomes durable within PostgreSQL's
//! `wal_writer_delay` (a server crash can lose that last moment, which is
//! what `Deferred` allows). A group with a `Required` batch on a server
//! whose own setting is `off` sets `synchronous_commit = on`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use oprc_store::{Durability, Error, ErrorKind, Result, WriteBatch};
use sqlx::{PgPool, Postgres, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::error::{copy, map};
use crate::plan::{Plan, plan};
use crate::sql;

pub(crate) struct Job {
    pub batch: WriteBatch,
    pub reply: oneshot::Sender<Result<()>>,
}

/// What the writer has done, for metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub commits: AtomicU64,
    pub requests: AtomicU64,
    pub durable_commits: AtomicU64,
    /// Time spent in transactions (from BEGIN to the end of COMMIT), in
    /// microseconds.
    pub transaction_micros: AtomicU64,
}

pub(crate) struct Writer {
    pub pool: PgPool,
    pub rx: mpsc::Receiver<Job>,
    pub max_batch: usize,
    pub sync: bool,
    /// The server's own `synchronous_commit` is `off`.
    pub server_async: bool,
    /// Redacted.
    pub url: String,
    pub stats: Arc<Counters>,
    /// A group's transaction that has not ended by then is given up (its
    /// outcome unknown): a server that stopped answering without closing
    /// the connection must not hold every commit behind it.
    pub deadline: std::time::Duration,
}

/// Why a batch did not apply.
enum Fail {
    /// Its own answer; the group goes on without it.
    Batch(Error),
    /// The connection or transaction is unusable: the group fails.
    Group(Error),
}

impl Writer {
    /// Runs until every sender is dropped.
    pub async fn run(mut self) {
        let mut jobs = Vec::with_capacity(self.max_batch);
        while let Some(first) = self.rx.recv().await {
            jobs.push(first);
            while jobs.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.group(&mut jobs).await;
        }
    }

    fn needs_sync(&self, d: Durability) -> bool {
        match d {
            Durability::Required => true,
            Durability::Default => self.sync,
            Durability::Deferred => false,
        }
    }

    /// Commits `jobs` as one transaction and answers each; leaves `jobs`
    /// empty.
    async fn group(&self, jobs: &mut Vec<Job>) {
        let mut planned = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            match plan(&job.batch) {
                Ok(p) => planned.push((job, p)),
                // Nothing written: answered at once.
                Err(e) => {
                    let _ = job.reply.send(Err(e));
                }
            }
        }
        if planned.is_empty() {
            return;
        }
        let durable = planned
            .iter()
            .any(|(j, _)| self.needs_sync(j.batch.durability));
        let required = planned
            .iter()
            .any(|(j, _)| j.batch.durability == Durability::Required);
        let started = std::time::Instant::now();
        let attempted = match tokio::time::timeout(
            self.deadline,
            self.attempt(&planned, durable, required),
        )
        .await
        {
            Ok(attempted) => attempted,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "postgresql at {} did not answer within {}s; the commit's outcome is unknown",
                    self.url,
                    self.deadline.as_secs()
                ),
            )),
        };
        self.stats.transaction_micros.fetch_add(
            started.elapsed().as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
        match attempted {
            Ok(results) => {
                // (A lone failed batch rolled its transaction back.)
                if results.iter().any(Result::is_ok) {
                    self.stats.commits.fetch_add(1, Ordering::Relaxed);
                    if durable {
                        self.stats.durable_commits.fetch_add(1, Ordering::Relaxed);
                    }
                }
                self.stats
                    .requests
                    .fetch_add(planned.len() as u64, Ordering::Relaxed);
                for ((job, _), result) in planned.into_iter().zip(results) {
                    // A caller that gave up dropped its receiver.
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, group = planned.len(), "postgresql group commit failed");
                for (job, _) in planned {
                    let _ = job.reply.send(Err(copy(&e)));
                }
            }
        }
    }

    async fn attempt(
        &self,
        planned: &[(Job, Plan)],
        durable: bool,
        required: bool,
    ) -> Result<Vec<Result<()>>> {
        let url = self.url.as_str();
        // The durability setting travels with BEGIN: no extra round trip.
        let begin = if !durable {
            "BEGIN; SET LOCAL synchronous_commit = off"
        } else if required && self.server_async {
            "BEGIN; SET LOCAL synchronous_commit = on"
        } else {
            "BEGIN"
        };
        let mut tx = self.pool.begin_with(begin).await.map_err(|e| map(e, url))?;
        // A lone batch needs no savepoint: its failure rolls back the
        // transaction, which holds nothing else.
        let single = planned.len() == 1;
        let mut results = Vec::with_capacity(planned.len());
        for (i, (_, p)) in planned.iter().enumerate() {
            if !single {
                // The previous batch's savepoint is released together with
                // taking this one; the last one goes with COMMIT.
                let savepoint = if i == 0 {
                    "SAVEPOINT batch"
                } else {
                    "RELEASE SAVEPOINT batch; SAVEPOINT batch"
                };
                exec(&mut tx, savepoint, url).await?;
            }
            match apply(&mut tx, p, url).await {
                Ok(()) => results.push(Ok(())),
                Err(Fail::Batch(e)) if single => {
                    tx.rollback().await.map_err(|e| map(e, url))?;
                    return Ok(vec![Err(e)]);
                }
                Err(Fail::Batch(e)) => {
                    exec(&mut tx, "ROLLBACK TO SAVEPOINT batch", url).await?;
                    results.push(Err(e));
                }
                Err(Fail::Group(e)) => return Err(e),
            }
        }
        tx.commit().await.map_err(|e| {
            let mut e = map(e, url);
            if e.kind == ErrorKind::Unavailable {
                e.kind = ErrorKind::Timeout;
                e.message = format!("the commit's outcome is unknown: {}", e.message);
            }
            e
        })?;
        Ok(results)
    }
}

async fn exec(tx: &mut Transaction<'static, Postgres>, sql: &'static str, url: &str) -> Result<()> {
    sqlx::raw_sql(sql)
        .execute(&mut **tx)
        .await
        .map(drop)
        .map_err(|e| map(e, url))
}

/// A statement's error: the batch's own if the server answered it (the
/// savepoint takes it back), the group's if the connection is gone.
fn fail(e: sqlx::Error, url: &str) -> Fail {
    let database = matches!(e, sqlx::Error::Database(_));
    let e = map(e, url);
    if database && e.kind != ErrorKind::Unavailable {
        Fail::Batch(e)
    } else {
        Fail::Group(e)
    }
}

/// Runs a batch's statements: its objects (compare-and-swap on each), then
/// its invocation records and keys.
async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    p: &Plan,
    url: &str,
) -> std::result::Result<(), Fail> {
    let o = &p.objects;
    if !o.cls.is_empty() {
        let written = sqlx::query(sql::WRITE_OBJECTS)
            .bind(&o.cls)
            .bind(&o.oid)
            .bind(&o.expected)
            .bind(&o.revision)
            .bind(&o.record)
            .fetch_all(&mut **tx)
            .await
            .map_err(|e| fail(e, url))?;
        if written.len() != o.cls.len() {
            let mut done = Vec::with_capacity(written.len());
            for row in &written {
                let cls: String = row.try_get(0).map_err(|e| fail(e, url))?;
                let oid: String = row.try_get(1).map_err(|e| fail(e, url))?;
                done.push((cls, oid));
            }
            let missed = (0..o.cls.len())
                .find(|&i| !done.iter().any(|(c, d)| *c == o.cls[i] && *d == o.oid[i]))
                .unwrap_or(0);
            let expected = match o.expected[missed] {
                None => "to be absent".to_owned(),
                Some(r) => format!("at revision {r}"),
            };
            return Err(Fail::Batch(Error::conflict(format!(
                "object {}/{} is not {expected}",
                o.cls[missed], o.oid[missed]
            ))));
        }
    }
    let v = &p.invocations;
    if !v.id.is_empty() {
        sqlx::query(sql::WRITE_INVOCATIONS)
            .bind(&v.id)
            .bind(&v.record)
            .bind(&v.terminal)
            .bind(&v.expires_at)
            .bind(&v.key)
            .bind(&v.key_id)
            .bind(&v.key_conditional)
            .execute(&mut **tx)
            .await
            .map_err(|e| fail(e, url))?;
    }
    Ok(())
}
