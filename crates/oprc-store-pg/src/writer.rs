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
use sqlx::{Connection, PgConnection, PgPool, Postgres, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::error::{copy, map};
use crate::group::{Wave, missed, waves};
use crate::plan::{ObjectRows, Plan, plan};
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

/// Why a statement did not do its part.
enum Fail {
    /// The server refused it: the transaction is aborted, the connection
    /// fine.
    Statement(Error),
    /// The connection or transaction is unusable: the group fails.
    Group(Error),
}

/// The group failed as a whole.
struct Broken {
    error: Error,
    /// At COMMIT: the outcome is unknown, never retried.
    at_commit: bool,
}

fn broken(e: sqlx::Error, url: &str) -> Broken {
    Broken {
        error: map(e, url),
        at_commit: false,
    }
}

/// How an optimistic attempt at a group ended.
enum Fast {
    Committed,
    /// Rolled back: these batches (indices in the group) failed their
    /// compare-and-swap.
    Conflicts(Vec<(usize, Error)>),
    /// Rolled back: a statement failed, and which batch made it fail is
    /// not known.
    Refused(Error),
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
                None => conn.insert(self.pool.acquire().await.map_err(|e| map(e, &self.url))?),
            };
            match commit_group(c, plans, begin, &self.url).await {
                Ok(results) => return Ok(results),
                Err(b) if kept && !b.at_commit => {
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

/// Commits the batches of `plans`, optimistically first (see the module
/// doc), and answers each.
async fn commit_group(
    conn: &mut PgConnection,
    plans: &[&Plan],
    begin: &'static str,
    url: &str,
) -> std::result::Result<Vec<Result<()>>, Broken> {
    let mut results: Vec<Option<Result<()>>> = plans.iter().map(|_| None).collect();
    let mut live: Vec<usize> = (0..plans.len()).collect();
    while !live.is_empty() {
        match optimistic(conn, plans, &live, begin, url).await? {
            Fast::Committed => {
                for &i in &live {
                    results[i] = Some(Ok(()));
                }
                break;
            }
            Fast::Conflicts(lost) => {
                for (i, e) in lost {
                    results[i] = Some(Err(e));
                    live.retain(|&j| j != i);
                }
            }
            Fast::Refused(e) if live.len() == 1 => {
                results[live[0]] = Some(Err(e));
                break;
            }
            Fast::Refused(e) => {
                tracing::debug!(error = %e, group = live.len(), "a group's statement failed; committing it batch by batch");
                let each = one_by_one(conn, plans, &live, begin, url).await?;
                for (&i, r) in live.iter().zip(each) {
                    results[i] = Some(r);
                }
                break;
            }
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::internal("a batch of the group got no answer"))))
        .collect())
}

/// One transaction of set-based statements for the `live` batches.
async fn optimistic(
    conn: &mut PgConnection,
    plans: &[&Plan],
    live: &[usize],
    begin: &'static str,
    url: &str,
) -> std::result::Result<Fast, Broken> {
    let members: Vec<&Plan> = live.iter().map(|&i| plans[i]).collect();
    let waves = waves(&members, live);
    let mut tx = conn.begin_with(begin).await.map_err(|e| broken(e, url))?;
    for wave in &waves {
        let lost = match write_wave(&mut tx, wave, url).await {
            Ok(lost) => lost,
            Err(Fail::Statement(e)) => {
                tx.rollback().await.map_err(|e| broken(e, url))?;
                return Ok(Fast::Refused(e));
            }
            Err(Fail::Group(error)) => {
                return Err(Broken {
                    error,
                    at_commit: false,
                });
            }
        };
        if !lost.is_empty() {
            tx.rollback().await.map_err(|e| broken(e, url))?;
            return Ok(Fast::Conflicts(lost));
        }
    }
    finish(tx, url).await?;
    Ok(Fast::Committed)
}

/// The careful path: one savepoint per batch.
async fn one_by_one(
    conn: &mut PgConnection,
    plans: &[&Plan],
    live: &[usize],
    begin: &'static str,
    url: &str,
) -> std::result::Result<Vec<Result<()>>, Broken> {
    let mut tx = conn.begin_with(begin).await.map_err(|e| broken(e, url))?;
    let mut results = Vec::with_capacity(live.len());
    for (n, &i) in live.iter().enumerate() {
        // The previous batch's savepoint is released together with taking
        // this one; the last one goes with COMMIT.
        let savepoint = if n == 0 {
            "SAVEPOINT batch"
        } else {
            "RELEASE SAVEPOINT batch; SAVEPOINT batch"
        };
        exec(&mut tx, savepoint, url).await?;
        let wave = waves(&plans[i..=i], &[i]).pop().unwrap_or_default();
        let failed = match write_wave(&mut tx, &wave, url).await {
            Ok(lost) => lost.into_iter().next().map(|(_, e)| e),
            Err(Fail::Statement(e)) => Some(e),
            Err(Fail::Group(error)) => {
                return Err(Broken {
                    error,
                    at_commit: false,
                });
            }
        };
        match failed {
            None => results.push(Ok(())),
            Some(e) => {
                exec(&mut tx, "ROLLBACK TO SAVEPOINT batch", url).await?;
                results.push(Err(e));
            }
        }
    }
    finish(tx, url).await?;
    Ok(results)
}

async fn finish(tx: Transaction<'_, Postgres>, url: &str) -> std::result::Result<(), Broken> {
    tx.commit().await.map_err(|e| {
        let mut error = map(e, url);
        if error.kind == ErrorKind::Unavailable {
            error.kind = ErrorKind::Timeout;
            error.message = format!("the commit's outcome is unknown: {}", error.message);
        }
        Broken {
            error,
            at_commit: true,
        }
    })
}

async fn exec(
    tx: &mut Transaction<'_, Postgres>,
    sql: &'static str,
    url: &str,
) -> std::result::Result<(), Broken> {
    sqlx::raw_sql(sql)
        .execute(&mut **tx)
        .await
        .map(drop)
        .map_err(|e| broken(e, url))
}

/// A statement's error: its own if the server answered it, the group's
/// if the connection is gone.
fn fail(e: sqlx::Error, url: &str) -> Fail {
    let database = matches!(e, sqlx::Error::Database(_));
    let e = map(e, url);
    if database && e.kind != ErrorKind::Unavailable {
        Fail::Statement(e)
    } else {
        Fail::Group(e)
    }
}

fn conflict(o: &ObjectRows, row: usize) -> Error {
    let expected = match o.expected[row] {
        None => "to be absent".to_owned(),
        Some(r) => format!("at revision {r}"),
    };
    Error::conflict(format!(
        "object {}/{} is not {expected}",
        o.cls[row], o.oid[row]
    ))
}

/// Runs a wave's statements: its objects (compare-and-swap on each), then,
/// when every one was written, its invocation records and keys. Answers
/// the batches whose compare-and-swap failed (the caller rolls back).
async fn write_wave(
    tx: &mut Transaction<'_, Postgres>,
    w: &Wave,
    url: &str,
) -> std::result::Result<Vec<(usize, Error)>, Fail> {
    let o = &w.objects;
    if !o.cls.is_empty() {
        let rows = sqlx::query(sql::WRITE_OBJECTS)
            .bind(&o.cls)
            .bind(&o.oid)
            .bind(&o.expected)
            .bind(&o.revision)
            .bind(&o.record)
            .fetch_all(&mut **tx)
            .await
            .map_err(|e| fail(e, url))?;
        if rows.len() != o.cls.len() {
            let mut written = Vec::with_capacity(rows.len());
            for row in &rows {
                let cls: String = row.try_get(0).map_err(|e| fail(e, url))?;
                let oid: String = row.try_get(1).map_err(|e| fail(e, url))?;
                written.push((cls, oid));
            }
            let lost: Vec<(usize, Error)> = missed(w, &written)
                .into_iter()
                .map(|(batch, row)| (batch, conflict(o, row)))
                .collect();
            if !lost.is_empty() {
                return Ok(lost);
            }
        }
    }
    let v = &w.invocations;
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
    Ok(Vec::new())
}
