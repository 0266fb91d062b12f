//! [`PgStore`]: the pool, migrations and the schema check at connect, reads
//! straight on the pool, batches through the writer task, and the rare
//! admin writes (packages, layout, purge) in their own statements.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use oprc_core::{ClassKey, InvocationId, InvocationRecord, ObjectId, ObjectRecord};
use oprc_store::{Error, ErrorKind, Layout, ObjectPage, Result, StateStore, WriteBatch};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot};

use crate::Options;
use crate::error::{decode, encode, map, redact_url};
use crate::sql;
use crate::writer::{Counters, Job, Writer};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Counters of the writer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Transactions committed (one per group).
    pub commits: u64,
    /// Batches served by those transactions.
    pub requests: u64,
    /// Transactions that waited for their WAL flush.
    pub durable_commits: u64,
    /// Seconds spent in transactions; over `commits`, the mean
    /// transaction latency.
    pub transaction_seconds: f64,
}

/// The PostgreSQL store. Cheap to clone; the writer task stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    /// No statement's caller waits longer (see `bounded`).
    deadline: std::time::Duration,
    tx: mpsc::Sender<Job>,
    /// Redacted.
    url: String,
    stats: Arc<Counters>,
}

/// The newest schema version this code knows.
fn known_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

fn newer_schema(url: &str, stored: i64) -> Error {
    Error::internal(format!(
        "the database at {url} has schema version {stored}, newer than this oprc knows \
         ({}); it was migrated by a newer oprc: run that version, or point the state at \
         another database",
        known_version()
    ))
}

impl PgStore {
    /// Connects to `url`, applies the migrations this version has (a
    /// database migrated by a newer version is refused) and starts the
    /// writer task. Must run inside a tokio runtime.
    pub async fn connect(url: &str, options: Options) -> Result<Self> {
        let redacted = redact_url(url);
        // The parser's message might quote the URL: not passed on.
        let mut connect = PgConnectOptions::from_str(url)
            .map_err(|_| Error::internal(format!("invalid postgresql url {redacted}")))?;
        connect = connect.application_name("oprc");
        if !options.statement_timeout.is_zero() {
            let ms = options.statement_timeout.as_millis().to_string();
            connect = connect.options([("statement_timeout", ms.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| map(e, &redacted))?;
        migrate(&pool, &redacted).await?;
        let setting: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
            .fetch_one(&pool)
            .await
            .map_err(|e| map(e, &redacted))?;
        let (tx, rx) = mpsc::channel(4096);
        let stats = Arc::new(Counters::default());
        let deadline = options
            .statement_timeout
            .max(std::time::Duration::from_secs(1))
            + std::time::Duration::from_secs(5);
        let writer = Writer {
            pool: pool.clone(),
            rx,
            max_batch: options.max_batch.max(1),
            sync: options.sync,
            server_async: setting == "off",
            url: redacted.clone(),
            stats: stats.clone(),
            deadline,
        };
        // Ends when the last `PgStore` drops its sender; nothing to join
        // (the answers it owes went out after each commit).
        tokio::spawn(writer.run());
        tracing::info!(url = %redacted, schema = known_version(), "postgresql state store ready");
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                deadline,
                tx,
                url: redacted,
                stats,
            }),
        })
    }

    /// Commits (transactions) so far and the batches they served: their
    /// ratio is the average group size.
    pub fn stats(&self) -> Stats {
        let s = &self.inner.stats;
        Stats {
            commits: s.commits.load(Ordering::Relaxed),
            requests: s.requests.load(Ordering::Relaxed),
            durable_commits: s.durable_commits.load(Ordering::Relaxed),
            transaction_seconds: s.transaction_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }

    /// Whether the server answers a trivial query now (the node's
    /// readiness check).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query(sql::PING)
            .execute(&self.inner.pool)
            .await
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Connections of the pool: `(open, idle)`; in use is the
    /// difference.
    pub fn pool_connections(&self) -> (u32, u32) {
        let pool = &self.inner.pool;
        (pool.size(), pool.num_idle() as u32)
    }

    /// Closes the pool: calls after this answer `Unavailable`.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    pub(crate) fn err(&self, e: sqlx::Error) -> Error {
        map(e, &self.inner.url)
    }

    /// `statement` within the store's deadline (statement_timeout + 5 s):
    /// a server that stops answering without closing the connection (a
    /// hung host) must not hold its caller forever, and the server's own
    /// statement_timeout cannot fire then. Past it: `kind` (`Unavailable`
    /// for a read, `Timeout` for a write whose outcome is unknown).
    pub(crate) async fn bounded<T>(
        &self,
        kind: ErrorKind,
        statement: impl std::future::Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.inner.deadline, statement).await {
            Ok(done) => done.map_err(|e| self.err(e)),
            Err(_) => Err(Error::new(
                kind,
                format!(
                    "postgresql at {} did not answer within {}s",
                    self.inner.url,
                    self.inner.deadline.as_secs()
                ),
            )),
        }
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.inner.pool
    }
}

/// Refuses a database migrated by a newer version, then applies ours.
async fn migrate(pool: &PgPool, url: &str) -> Result<()> {
    let has_schema: bool = sqlx::query_scalar(sql::HAS_SCHEMA)
        .fetch_one(pool)
        .await
        .map_err(|e| map(e, url))?;
    if has_schema {
        let stored: i64 = sqlx::query_scalar(sql::SCHEMA_VERSION)
            .fetch_one(pool)
            .await
            .map_err(|e| map(e, url))?;
        if stored > known_version() {
            return Err(newer_schema(url, stored));
        }
    }
    MIGRATOR.run(pool).await.map_err(|e| match e {
        // Another node raced us to a newer schema.
        MigrateError::VersionMissing(v) => newer_schema(url, v),
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => {
            let mut e = map(e, url);
            e.message = format!("cannot migrate the database schema: {}", e.message);
            e
        }
        other => Error::internal(format!(
            "cannot migrate the database schema at {url}: {other}"
        )),
    })
}

fn bound(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl StateStore for PgStore {
    async fn get_object(&self, cls: &ClassKey, oid: &ObjectId) -> Result<Option<ObjectRecord>> {
        let row: Option<Vec<u8>> = self
            .bounded(
                ErrorKind::Unavailable,
                sqlx::query_scalar(sql::GET_OBJECT)
                    .bind(cls.as_str())
                    .bind(oid.as_str())
                    .fetch_optional(&self.inner.pool),
            )
            .await?;
        row.map(|bytes| decode("oprc_objects", &format!("{cls}/{oid}"), &bytes))
            .transpose()
    }

    async fn list_objects(
        &self,
        cls: &ClassKey,
        after: Option<&ObjectId>,
        limit: usize,
    ) -> Result<ObjectPage> {
        let rows = self
            .bounded(
                ErrorKind::Unavailable,
                sqlx::query(sql::LIST_OBJECTS)
                    .bind(cls.as_str())
                    .bind(after.map(|a| a.as_str()))
                    .bind(bound(limit).saturating_add(1))
                    .fetch_all(&self.inner.pool),
            )
            .await?;
        let more = rows.len() > limit;
        let mut objects = Vec::with_capacity(rows.len().min(limit));
        for row in rows.iter().take(limit) {
            let oid: String = row.try_get(0).map_err(|e| self.err(e))?;
            let bytes: Vec<u8> = row.try_get(1).map_err(|e| self.err(e))?;
            objects.push(decode("oprc_objects", &format!("{cls}/{oid}"), &bytes)?);
        }
        let next = if more {
            objects.last().map(|o: &ObjectRecord| o.meta.id.clone())
        } else {
            None
        };
        Ok(ObjectPage { objects, next })
    }

    async fn commit(&self, batch: WriteBatch) -> Result<()> {
        let stopped = || Error::new(ErrorKind::Unavailable, "store writer has stopped");
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Job { batch, reply })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    async fn get_invocation(&self, id: &InvocationId) -> Result<Option<InvocationRecord>> {
        let row: Option<Vec<u8>> = self
            .bounded(
                ErrorKind::Unavailable,
                sqlx::query_scalar(sql::GET_INVOCATION)
                    .bind(id.as_str())
                    .fetch_optional(&self.inner.pool),
            )
            .await?;
        row.map(|bytes| decode("oprc_invocations", id.as_str(), &bytes))
            .transpose()
    }

    async fn find_idempotency_key(&self, key: &str) -> Result<Option<InvocationId>> {
        let row: Option<String> = self
            .bounded(
                ErrorKind::Unavailable,
                sqlx::query_scalar(sql::FIND_KEY)
                    .bind(key)
                    .fetch_optional(&self.inner.pool),
            )
            .await?;
        row.map(|id| {
            InvocationId::new(id).map_err(|e| {
                Error::internal(format!(
                    "corrupt record in table oprc_idempotency at key {key:?}: {e}"
                ))
            })
        })
        .transpose()
    }

    async fn purge_invocations(&self, now_ms: i64, max: usize) -> Result<u64> {
        if max == 0 {
            return Ok(0);
        }
        let n: i64 = self
            .bounded(
                ErrorKind::Timeout,
                sqlx::query_scalar(sql::PURGE)
                    .bind(now_ms)
                    .bind(bound(max))
                    .fetch_one(&self.inner.pool),
            )
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn layout(&self, proposed: &Layout) -> Result<Layout> {
        let text = String::from_utf8(encode("layout", proposed)?)
            .map_err(|e| Error::internal(format!("cannot encode layout: {e}")))?;
        let mut tx = self.inner.pool.begin().await.map_err(|e| self.err(e))?;
        let inserted = sqlx::query(sql::INSERT_LAYOUT)
            .bind(&text)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?
            .rows_affected();
        let layout = if inserted == 1 {
            proposed.clone()
        } else {
            let stored: String = sqlx::query_scalar(sql::LOCK_LAYOUT)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            let stored: Layout = decode("oprc_layout", "layout", stored.as_bytes())?;
            match stored.adopt(proposed) {
                None => stored,
                Some(adopted) => {
                    let text = String::from_utf8(encode("layout", &adopted)?)
                        .map_err(|e| Error::internal(format!("cannot encode layout: {e}")))?;
                    sqlx::query(sql::UPDATE_LAYOUT)
                        .bind(text)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(e))?;
                    adopted
                }
            }
        };
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(layout)
    }

    async fn put_package(&self, name: &str, source: &str) -> Result<()> {
        sqlx::query(sql::PUT_PACKAGE)
            .bind(name)
            .bind(source)
            .execute(&self.inner.pool)
            .await
            .map(drop)
            .map_err(|e| self.err(e))
    }

    async fn delete_package(&self, name: &str) -> Result<bool> {
        let done = sqlx::query(sql::DELETE_PACKAGE)
            .bind(name)
            .execute(&self.inner.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_packages(&self) -> Result<Vec<(String, String)>> {
        sqlx::query_as(sql::LIST_PACKAGES)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.err(e))
    }

    async fn packages_version(&self) -> Result<Option<u64>> {
        let v: i64 = sqlx::query_scalar(sql::PACKAGES_VERSION)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(Some(v.max(0) as u64))
    }
}
