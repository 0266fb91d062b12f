//! The writer task: group commit.
//!
//! Callers send their batch over a bounded channel and await a oneshot
//! answer. The task takes the first batch, drains whatever else is queued
//! (up to `max_batch`), and commits all of them in ONE transaction on the
//! connection it keeps (taken from the pool once, so no group pays the
//! pool's liveness pings; given back when it breaks or the pool closes).
//!
//! A group is written optimistically with set-based statements
//! (`group.rs`): BEGIN, then per wave one statement for every object row
//! (compare-and-swap on each revision) and one for every invocation
//! record and key, then COMMIT: four round trips for the usual group,
//! whatever its size. A batch whose compare-and-swap fails must fail alone
//! and leave nothing, so the transaction is rolled back and the group
//! written again without it (each retry drops at least one batch). A
//! statement error that cannot be pinned on one batch (a statement
//! timeout, say) sends the group down the careful path: one savepoint
//! per batch, a failed batch rolled back to its own savepoint and
//! answered with its error while the others go on. Everyone is answered
//! only after the transaction's `COMMIT`. An error of the connection itself
//! (the server went away) fails the whole group with `Unavailable`, after
//! one retry on a fresh connection when the kept one broke before COMMIT
//! (nothing of the group was committed then); one at `COMMIT` leaves the
//! outcome unknown, which is `Timeout`.
//!
//! `max_batch` also bounds the subtransactions of one transaction on the
//! careful path: PostgreSQL caches 64 per backend, and past that every
//! other session's snapshots get slower, hence its default of 64.
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
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tokio::sync::{mpsc, oneshot};

use crate::commit::commit_group;
use crate::error::{copy, map};
use crate::plan::{Plan, plan};

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

impl Writer {
    /// Runs until every sender is dropped.
    pub async fn run(mut self) {
        let mut jobs = Vec::with_capacity(self.max_batch);
        let mut conn: Option<PoolConnection<Postgres>> = None;
        let closed = self.pool.close_event();
        tokio::pin!(closed);
        loop {
            let first = tokio::select! {
                job = self.rx.recv() => job,
                // A closing pool waits for every connection, ours too.
                () = &mut closed, if conn.is_some() => {
                    conn = None;
                    continue;
                }
            };
            let Some(first) = first else { break };
            jobs.push(first);
            while jobs.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.group(&mut jobs, &mut conn).await;
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
    async fn group(&self, jobs: &mut Vec<Job>, conn: &mut Option<PoolConnection<Postgres>>) {
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
        // The durability setting travels with BEGIN: no extra round trip.
        let begin = if !durable {
            "BEGIN; SET LOCAL synchronous_commit = off"
        } else if required && self.server_async {
            "BEGIN; SET LOCAL synchronous_commit = on"
        } else {
            "BEGIN"
        };
        let plans: Vec<&Plan> = planned.iter().map(|(_, p)| p).collect();
        let started = std::time::Instant::now();
        let attempted = match tokio::time::timeout(self.deadline, self.attempt(&plans, begin, conn))
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
        if attempted.is_err()
            && let Some(mut c) = conn.take()
        {
            // Broken, or abandoned mid-statement: never given back.
            c.close_on_drop();
        }
        self.stats.transaction_micros.fetch_add(
            started.elapsed().as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
        match attempted {
            Ok(results) => {
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

    /// A connection for the writer to keep. Its statements are the same
    /// few, with arrays whose lengths vary from group to group: planned
    /// once (a generic plan), not at every group (PostgreSQL's default
    /// for parameters it can estimate, which cost a group's whole
    /// statement more than its execution).
    async fn connect(&self) -> Result<PoolConnection<Postgres>> {
        let mut c = self.pool.acquire().await.map_err(|e| map(e, &self.url))?;
        sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
            .execute(&mut *c)
            .await
            .map_err(|e| map(e, &self.url))?;
        Ok(c)
    }

    /// The group on the kept connection, and once more on a fresh one if
    /// the kept one turns out broken before COMMIT (the server restarted
    /// since the last group, say).
    async fn attempt(
        &self,
        plans: &[&Plan],
        begin: &'static str,
        conn: &mut Option<PoolConnection<Postgres>>,
    ) -> Result<Vec<Result<()>>> {
        let mut kept = conn.is_some();
        loop {
            let c = match conn {
                Some(c) => c,
                None => conn.insert(self.connect().await?),
            };
            match commit_group(c, plans, begin, &self.url).await {
                Ok(results) => return Ok(results),
                Err(b) if kept && !b.unknown => {
                    tracing::debug!(error = %b.error, "the kept postgresql connection broke; retrying the group on a new one");
                    if let Some(mut c) = conn.take() {
                        c.close_on_drop();
                    }
                    kept = false;
                }
                Err(b) => return Err(b.error),
            }
        }
    }
}
