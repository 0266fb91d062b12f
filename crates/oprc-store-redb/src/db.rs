//! Tables, the [`Store`] handle and the trait implementations.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use oprc_core::{ClassKey, InvocationId, InvocationRecord, ObjectId, ObjectRecord, PartitionId};
use oprc_store::{
    Appended, Error, ErrorKind, InvocationLog, LogEntry, ObjectPage, Result, StateStore, WriteBatch,
};
use parking_lot::Mutex;
use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot, watch};

use crate::Options;
use crate::writer::{Counters, Op, Writer};

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

pub(crate) fn internal(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Internal, e.to_string())
}

pub(crate) fn object_key(cls: &ClassKey, oid: &ObjectId) -> String {
    let mut k = String::with_capacity(cls.as_str().len() + oid.as_str().len() + 1);
    k.push_str(cls.as_str());
    k.push('\0');
    k.push_str(oid.as_str());
    k
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| internal(format!("corrupt record: {e}")))
}

/// Reads only the revision of a stored object.
pub(crate) fn decode_revision(bytes: &[u8]) -> Result<u64> {
    #[derive(serde::Deserialize)]
    struct Meta {
        revision: u64,
    }
    #[derive(serde::Deserialize)]
    struct Rev {
        #[serde(rename = "_meta")]
        meta: Meta,
    }
    Ok(decode::<Rev>(bytes)?.meta.revision)
}

fn now_ms() -> i64 {
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
    closed: tokio::sync::watch::Receiver<bool>,
    tx: mpsc::Sender<Op>,
    heads: Arc<Mutex<HashMap<u16, watch::Sender<u64>>>>,
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
            Error::with_source(
                ErrorKind::Unavailable,
                format!("cannot open database {}", options.path.display()),
                e,
            )
        })?;
        let db = Arc::new(db);
        create_tables(&db)?;
        let heads: Arc<Mutex<HashMap<u16, watch::Sender<u64>>>> = Arc::default();
        let (tx, rx) = mpsc::channel(4096);
        let wake = heads.clone();
        let dirty = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Write-behind commits (the whole store's, or a class's) are made
        // durable by the flusher.
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
        let (closed_tx, closed) = tokio::sync::watch::channel(false);
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
            }),
        })
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

    async fn send<T>(&self, op: Op, rx: oneshot::Receiver<Result<T>>) -> Result<T> {
        self.inner
            .tx
            .send(op)
            .await
            .map_err(|_| Error::new(ErrorKind::Unavailable, "store writer has stopped"))?;
        rx.await
            .map_err(|_| Error::new(ErrorKind::Unavailable, "store writer has stopped"))?
    }

    fn read(&self) -> Result<redb::ReadTransaction> {
        self.inner.db.begin_read().map_err(internal)
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

fn create_tables(db: &Database) -> Result<()> {
    let txn = db.begin_write().map_err(internal)?;
    txn.open_table(OBJECTS).map_err(internal)?;
    txn.open_table(INVOCATIONS).map_err(internal)?;
    txn.open_table(INV_EXPIRY).map_err(internal)?;
    txn.open_table(IDEMPOTENCY).map_err(internal)?;
    txn.open_table(PACKAGES).map_err(internal)?;
    txn.open_table(LOG).map_err(internal)?;
    txn.open_table(LOG_POSITIONS).map_err(internal)?;
    txn.open_table(DEDUP).map_err(internal)?;
    txn.open_table(DEDUP_BY_TS).map_err(internal)?;
    txn.commit().map_err(internal)
}

#[async_trait]
impl StateStore for Store {
    async fn get_object(&self, cls: &ClassKey, oid: &ObjectId) -> Result<Option<ObjectRecord>> {
        let txn = self.read()?;
        let t = txn.open_table(OBJECTS).map_err(internal)?;
        match t.get(object_key(cls, oid).as_str()).map_err(internal)? {
            Some(v) => Ok(Some(decode(v.value())?)),
            None => Ok(None),
        }
    }

    async fn list_objects(
        &self,
        cls: &ClassKey,
        after: Option<&ObjectId>,
        limit: usize,
    ) -> Result<ObjectPage> {
        let txn = self.read()?;
        let t = txn.open_table(OBJECTS).map_err(internal)?;
        let start = match after {
            Some(a) => {
                // The smallest key after `<cls>\0<a>`.
                let mut k = object_key(cls, a);
                k.push('\0');
                k
            }
            None => format!("{cls}\0"),
        };
        let end = format!("{cls}\u{1}");
        let mut objects = Vec::new();
        let mut more = false;
        for entry in t.range(start.as_str()..end.as_str()).map_err(internal)? {
            let (_, v) = entry.map_err(internal)?;
            if objects.len() == limit {
                more = true;
                break;
            }
            objects.push(decode::<ObjectRecord>(v.value())?);
        }
        let next = if more {
            objects.last().map(|o| o.meta.id.clone())
        } else {
            None
        };
        Ok(ObjectPage { objects, next })
    }

    async fn commit(&self, batch: WriteBatch) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Commit(batch, tx), rx).await
    }

    async fn get_invocation(&self, id: &InvocationId) -> Result<Option<InvocationRecord>> {
        let txn = self.read()?;
        let t = txn.open_table(INVOCATIONS).map_err(internal)?;
        match t.get(id.as_str()).map_err(internal)? {
            Some(v) => Ok(Some(decode(v.value())?)),
            None => Ok(None),
        }
    }

    async fn find_idempotency_key(&self, key: &str) -> Result<Option<InvocationId>> {
        let txn = self.read()?;
        let t = txn.open_table(IDEMPOTENCY).map_err(internal)?;
        match t.get(key).map_err(internal)? {
            Some(v) => Ok(Some(InvocationId::new(v.value()).map_err(internal)?)),
            None => Ok(None),
        }
    }

    async fn purge_invocations(&self, now_ms: i64) -> Result<u64> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Purge(now_ms, tx), rx).await
    }

    async fn put_package(&self, name: &str, source: &str) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::PutPackage(name.into(), source.into(), tx), rx)
            .await
    }

    async fn delete_package(&self, name: &str) -> Result<bool> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::DeletePackage(name.into(), tx), rx).await
    }

    async fn list_packages(&self) -> Result<Vec<(String, String)>> {
        let txn = self.read()?;
        let t = txn.open_table(PACKAGES).map_err(internal)?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(internal)? {
            let (k, v) = entry.map_err(internal)?;
            out.push((k.value().to_owned(), v.value().to_owned()));
        }
        Ok(out)
    }
}

#[async_trait]
impl InvocationLog for Store {
    async fn append(
        &self,
        partition: PartitionId,
        dedup_id: &str,
        payload: Bytes,
    ) -> Result<Appended> {
        let (reply, rx) = oneshot::channel();
        let op = Op::Append {
            partition,
            dedup_id: dedup_id.to_owned(),
            payload,
            now_ms: now_ms(),
            reply,
        };
        self.send(op, rx).await
    }

    async fn read(&self, partition: PartitionId, from: u64, max: usize) -> Result<Vec<LogEntry>> {
        // Subscribe before looking, so an append in between still wakes us.
        let mut head = self
            .inner
            .heads
            .lock()
            .entry(partition.0)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        loop {
            let entries = {
                let txn = self.read()?;
                let t = txn.open_table(LOG).map_err(internal)?;
                let mut out = Vec::new();
                for entry in t
                    .range((partition.0, from)..=(partition.0, u64::MAX))
                    .map_err(internal)?
                    .take(max)
                {
                    let (k, v) = entry.map_err(internal)?;
                    out.push(LogEntry {
                        offset: k.value().1,
                        payload: Bytes::copy_from_slice(v.value()),
                    });
                }
                out
            };
            if !entries.is_empty() {
                return Ok(entries);
            }
            head.changed()
                .await
                .map_err(|_| Error::new(ErrorKind::Unavailable, "store closed"))?;
        }
    }

    async fn entry(&self, partition: PartitionId, offset: u64) -> Result<Option<LogEntry>> {
        let txn = self.read()?;
        let t = txn.open_table(LOG).map_err(internal)?;
        Ok(t.get((partition.0, offset))
            .map_err(internal)?
            .map(|v| LogEntry {
                offset,
                payload: Bytes::copy_from_slice(v.value()),
            }))
    }

    async fn commit_position(&self, partition: PartitionId, offset: u64) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        let op = Op::CommitPosition {
            partition,
            offset,
            now_ms: now_ms(),
            reply,
        };
        self.send(op, rx).await
    }

    async fn committed_position(&self, partition: PartitionId) -> Result<u64> {
        let txn = self.read()?;
        let t = txn.open_table(LOG_POSITIONS).map_err(internal)?;
        Ok(t.get(partition.0)
            .map_err(internal)?
            .map_or(0, |v| v.value().1))
    }
}
