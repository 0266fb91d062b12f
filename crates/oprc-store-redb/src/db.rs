//! The tables and the [`Store`] handle: opening the database, starting the
//! writer and flusher threads, running reads on tokio's blocking pool,
//! stats and close. The trait implementations are in `state.rs` and
//! `log.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use oprc_core::{ClassKey, ObjectId, PartitionId};
use oprc_store::{Error, ErrorKind, Result};
use parking_lot::Mutex;
use redb::{Database, ReadTransaction, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, watch};

use crate::Options;
use crate::error::storage;
use crate::writer::{Counters, Op, Reply, Writer};

/// `"<cls>\0<oid>"` → object JSON.
pub(crate) const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
/// invocation id → record JSON.
pub(crate) const INVOCATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("invocations");
/// (expires_at, invocation id): purge index.
pub(crate) const INV_EXPIRY: TableDefinition<(i64, &str), ()> = TableDefinition::new("inv_expiry");
/// idempotency key → invocation id.
pub(crate) const IDEMPOTENCY: TableDefinition<&str, &str> = TableDefinition::new("idempotency");
/// package name → source text.
pub(crate) const PACKAGES: TableDefinition<&str, &str> = TableDefinition::new("packages");
/// (partition, offset) → payload.
pub(crate) const LOG: TableDefinition<(u16, u64), &[u8]> = TableDefinition::new("log");
/// partition → (head offset, committed offset).
pub(crate) const LOG_POSITIONS: TableDefinition<u16, (u64, u64)> =
    TableDefinition::new("log_positions");
/// dedup id → (partition, offset, appended at ms).
pub(crate) const DEDUP: TableDefinition<&str, (u16, u64, i64)> = TableDefinition::new("log_dedup");
/// (appended at ms, dedup id): expiry index of `DEDUP`.
pub(crate) const DEDUP_BY_TS: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("log_dedup_ts");
/// Settings stored with the data, JSON by name (`layout`: [`oprc_store::Layout`]).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const LAYOUT_KEY: &str = "layout";
/// The identity of this database's invocation log, made when the database
/// is created (see [`Store::log_identity`]).
pub(crate) const LOG_ID_KEY: &str = "log-id";

pub(crate) fn object_key(cls: &ClassKey, oid: &ObjectId) -> String {
    let mut k = String::with_capacity(cls.as_str().len() + oid.as_str().len() + 1);
    k.push_str(cls.as_str());
    k.push('\0');
    k.push_str(oid.as_str());
    k
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Counters of the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub commits: u64,
    pub requests: u64,
    pub durable_commits: u64,
}

/// The embedded store. Cheap to clone; the writer thread stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    stats: Arc<Counters>,
    /// Completes when the writer thread has exited and the database is closed.
    closed: watch::Receiver<bool>,
    tx: mpsc::Sender<Op>,
    heads: Arc<Mutex<HashMap<u16, watch::Sender<u64>>>>,
    log_identity: String,
}

impl Store {
    /// Opens (or creates) the database and starts the writer thread.
    pub fn open(options: Options) -> Result<Self> {
        if let Some(dir) = options.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::with_source(
                    ErrorKind::Unavailable,
                    format!("cannot create data directory {}", dir.display()),
                    e,
                )
            })?;
        }
        let db = Database::create(&options.path).map_err(|e| {
            let mut e = storage(e);
            e.message = format!(
                "cannot open database {}: {}",
                options.path.display(),
                e.message
            );
            e
        })?;
        let db = Arc::new(db);
        let log_identity = create_tables(&db)?;
        let heads: Arc<Mutex<HashMap<u16, watch::Sender<u64>>>> = Arc::default();
        let (tx, rx) = mpsc::channel(4096);
        let wake = heads.clone();
        let dirty = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Write-behind commits (the whole store's, or deferred batches) are
        // made durable by the flusher.
        spawn_flusher(tx.downgrade(), dirty.clone(), options.flush_interval)?;
        let stats = Arc::new(Counters::default());
        let writer = Writer {
            db: db.clone(),
            rx,
            max_batch: options.max_batch.max(1),
            sync: options.sync,
            dedup_window_ms: options.dedup_window_ms,
            on_append: Arc::new(move |p: PartitionId, offset: u64| {
                wake.lock()
                    .entry(p.0)
                    .or_insert_with(|| watch::channel(0).0)
                    .send_replace(offset);
            }),
            dirty,
            stats: stats.clone(),
        };
        let (closed_tx, closed) = watch::channel(false);
        std::thread::Builder::new()
            .name("oprc-store-writer".into())
            .spawn(move || {
                writer.run();
                // `run` returned, so the writer's handle on the database is
                // gone, and the readers' went with the last `Store`.
                let _ = closed_tx.send(true);
            })
            .map_err(|e| {
                Error::with_source(ErrorKind::Internal, "cannot start writer thread", e)
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                stats,
                closed,
                tx,
                heads,
                log_identity,
            }),
        })
    }

    /// The identity of the invocation log in this database
    /// (`embedded:UUID`), made when the database was created: a new
    /// database is another log, whose offsets start again at 1.
    pub fn log_identity(&self) -> &str {
        &self.inner.log_identity
    }

    /// Commits (transactions) so far, and the write requests they served:
    /// their ratio is the average group-commit batch size.
    pub fn stats(&self) -> Stats {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.inner.stats;
        Stats {
            commits: s.commits.load(Relaxed),
            requests: s.requests.load(Relaxed),
            durable_commits: s.durable_commits.load(Relaxed),
        }
    }

    /// A future that completes once every clone of this store is dropped,
    /// the queued writes are committed and the database file is closed (so
    /// it can be opened again, e.g. by a restarted node in the same
    /// process).
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.closed.clone();
        async move {
            let _ = rx.wait_for(|closed| *closed).await;
        }
    }

    /// Sends the op `op(reply)` to the writer and waits for its answer.
    pub(crate) async fn call<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> Result<T> {
        let stopped = || Error::new(ErrorKind::Unavailable, "store writer has stopped");
        let (reply, rx) = Reply::new();
        self.inner.tx.send(op(reply)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Runs `read` against a consistent snapshot on tokio's blocking pool:
    /// a redb read may wait for the disk and decoding JSON is CPU work,
    /// neither belongs on a runtime thread. The task holds the store, so a
    /// read that outlives its (dropped) caller keeps the database open and
    /// [`Store::closed`] pending until it ends.
    pub(crate) async fn snapshot<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || read(&inner.db.begin_read().map_err(storage)?))
            .await
            .map_err(|e| Error::with_source(ErrorKind::Internal, "store read task failed", e))?
    }

    /// Watches the head offset of `partition` (set after each commit that
    /// appended to it).
    pub(crate) fn head(&self, partition: PartitionId) -> watch::Receiver<u64> {
        self.inner
            .heads
            .lock()
            .entry(partition.0)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }
}

/// Write-behind: asks the writer for a durable commit every `interval`
/// while there are buffered writes. Holds only a weak sender, so it stops
/// when the store is dropped.
fn spawn_flusher(
    tx: mpsc::WeakSender<Op>,
    dirty: Arc<std::sync::atomic::AtomicBool>,
    interval: std::time::Duration,
) -> Result<()> {
    std::thread::Builder::new()
        .name("oprc-store-flush".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                let Some(tx) = tx.upgrade() else { return };
                if dirty.load(std::sync::atomic::Ordering::Relaxed)
                    && tx.blocking_send(Op::Flush).is_err()
                {
                    return;
                }
            }
        })
        .map(drop)
        .map_err(|e| Error::with_source(ErrorKind::Internal, "cannot start flusher thread", e))
}

/// Creates the tables a new database lacks; returns the log's identity
/// (made here for a new database, or one written by a version that did not
/// make it).
pub(crate) fn create_tables(db: &Database) -> Result<String> {
    let txn = db.begin_write().map_err(storage)?;
    txn.open_table(OBJECTS).map_err(storage)?;
    txn.open_table(INVOCATIONS).map_err(storage)?;
    txn.open_table(INV_EXPIRY).map_err(storage)?;
    txn.open_table(IDEMPOTENCY).map_err(storage)?;
    txn.open_table(PACKAGES).map_err(storage)?;
    txn.open_table(LOG).map_err(storage)?;
    txn.open_table(LOG_POSITIONS).map_err(storage)?;
    txn.open_table(DEDUP).map_err(storage)?;
    txn.open_table(DEDUP_BY_TS).map_err(storage)?;
    let identity = {
        let mut meta = txn.open_table(META).map_err(storage)?;
        let stored = meta
            .get(LOG_ID_KEY)
            .map_err(storage)?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned());
        match stored {
            Some(id) => id,
            None => {
                let id = format!("embedded:{}", uuid::Uuid::now_v7());
                meta.insert(LOG_ID_KEY, id.as_bytes()).map_err(storage)?;
                id
            }
        }
    };
    txn.commit().map_err(storage)?;
    Ok(identity)
}
