//! The collector (G3): deletes file versions that no object holds and
//! that no running task may still commit.
//!
//! A version is live while its object's `verIds` names it. Any other
//! version is superseded, an orphan of a failed or crashed task, or a file
//! of a deleted object, and is deleted once both it and the key's live
//! version are older than `grace`: a superseded version was superseded no
//! later than the live one was written, so the URLs handed out for it have
//! expired by then (the grace is at least twice the URL lifetime). A commit
//! refuses uploads older than half of `grace` (the invoker's
//! `max_upload_age`), so a version the collector deletes can no longer be
//! committed (ADR 0009).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use oprc_blob::{BlobPath, BlobStore};
use oprc_core::{ClassKey, ObjectId, ObjectRecord};
use oprc_store::StateStore;
use tokio_util::sync::CancellationToken;

/// How the collector runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Time between passes.
    pub interval: Duration,
    /// Age after which a version no object holds is deleted.
    pub grace: Duration,
    /// Versions listed per store call.
    pub page: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            grace: Duration::from_secs(3600),
            page: 1000,
        }
    }
}

/// What the collector has done, for metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub passes: AtomicU64,
    pub scanned: AtomicU64,
    pub deleted: AtomicU64,
    pub deleted_bytes: AtomicU64,
    pub failures: AtomicU64,
    /// Dead versions seen in the last pass that are not old enough yet.
    pub backlog: AtomicU64,
    pub backlog_bytes: AtomicU64,
    /// Live versions seen in the last pass.
    pub live: AtomicU64,
    /// When the last pass ended (ms since the epoch; 0 before the first).
    pub last_pass_ms: AtomicI64,
}

/// The collector of one node.
pub struct Collector {
    store: Arc<dyn BlobStore>,
    state: Arc<dyn StateStore>,
    options: Options,
    stats: Arc<Stats>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What one pass found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub scanned: u64,
    pub live: u64,
    pub deleted: u64,
    pub waiting: u64,
}

impl Collector {
    pub fn new(store: Arc<dyn BlobStore>, state: Arc<dyn StateStore>, options: Options) -> Self {
        Self {
            store,
            state,
            options,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Runs passes until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(self.options.interval) => {}
            }
            match self.pass().await {
                Ok(p) => tracing::debug!(
                    scanned = p.scanned,
                    deleted = p.deleted,
                    waiting = p.waiting,
                    "collector pass"
                ),
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "collector pass failed; the next one starts over");
                }
            }
        }
    }

    /// One pass over every stored version.
    pub async fn pass(&self) -> Result<Pass, String> {
        let grace = i64::try_from(self.options.grace.as_millis()).unwrap_or(i64::MAX);
        let mut pass = Pass::default();
        let mut backlog_bytes = 0;
        let mut after: Option<BlobPath> = None;
        // The object of the versions being looked at (they come grouped),
        // and when its live versions were written, by key (looked up once).
        let mut current: Option<((ClassKey, ObjectId), Option<ObjectRecord>)> = None;
        let mut live_written: HashMap<String, i64> = HashMap::new();
        loop {
            let page = self
                .store
                .list(after.as_ref(), self.options.page.max(1))
                .await
                .map_err(|e| format!("listing files: {e}"))?;
            let Some(last) = page.last() else { break };
            after = Some(last.path.clone());
            let full = page.len() >= self.options.page.max(1);
            for listed in page {
                pass.scanned += 1;
                let path = &listed.path;
                let key = (path.cls.clone(), path.oid.clone());
                if current.as_ref().is_none_or(|(k, _)| *k != key) {
                    let obj = self
                        .state
                        .get_object(&key.0, &key.1)
                        .await
                        .map_err(|e| format!("reading object {}/{}: {e}", key.0, key.1))?;
                    current = Some((key, obj));
                    live_written.clear();
                }
                let obj = current.as_ref().and_then(|(_, o)| o.as_ref());
                if obj.is_some_and(|o| o.meta.ver_ids.get(&path.key) == Some(&path.version)) {
                    pass.live += 1;
                    continue;
                }
                let superseded_ms = match obj.and_then(|o| o.meta.ver_ids.get(&path.key)) {
                    None => listed.modified_ms,
                    Some(live) => match live_written.get(&path.key) {
                        Some(ms) => *ms,
                        None => {
                            let live_path = BlobPath::new(
                                path.cls.clone(),
                                path.oid.clone(),
                                live.clone(),
                                path.key.clone(),
                            )
                            .map_err(|e| e.to_string())?;
                            let ms = self
                                .store
                                .head(&live_path)
                                .await
                                .map_err(|e| format!("reading {live_path}: {e}"))?
                                .map_or(i64::MAX, |m| m.modified_ms);
                            live_written.insert(path.key.clone(), ms);
                            ms
                        }
                    },
                };
                let newest = listed.modified_ms.max(superseded_ms);
                if now_ms().saturating_sub(newest) <= grace {
                    pass.waiting += 1;
                    backlog_bytes += listed.size;
                    continue;
                }
                // Read again just before deleting: a commit may have made
                // it live since (it cannot, past the grace; this is cheap).
                let fresh = self
                    .state
                    .get_object(&path.cls, &path.oid)
                    .await
                    .map_err(|e| format!("reading object {}/{}: {e}", path.cls, path.oid))?;
                if fresh.is_some_and(|o| o.meta.ver_ids.get(&path.key) == Some(&path.version)) {
                    pass.live += 1;
                    continue;
                }
                match self.store.delete(path).await {
                    Ok(()) => {
                        pass.deleted += 1;
                        self.stats.deleted.fetch_add(1, Ordering::Relaxed);
                        self.stats
                            .deleted_bytes
                            .fetch_add(listed.size, Ordering::Relaxed);
                        tracing::debug!(%path, "deleted a dead file version");
                    }
                    Err(e) => {
                        self.stats.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%path, error = %e, "cannot delete a dead file version");
                    }
                }
            }
            if !full {
                break;
            }
        }
        let s = &self.stats;
        s.passes.fetch_add(1, Ordering::Relaxed);
        s.scanned.fetch_add(pass.scanned, Ordering::Relaxed);
        s.backlog.store(pass.waiting, Ordering::Relaxed);
        s.backlog_bytes.store(backlog_bytes, Ordering::Relaxed);
        s.live.store(pass.live, Ordering::Relaxed);
        s.last_pass_ms.store(now_ms(), Ordering::Relaxed);
        Ok(pass)
    }
}
