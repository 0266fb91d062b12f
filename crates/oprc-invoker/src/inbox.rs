//! Per-object FIFO inboxes (localized locking, G1).
//!
//! Every mutating call on an object goes into that object's inbox; one
//! worker task per non-empty inbox runs them one at a time in arrival order.
//! The worker keeps the object's state in memory while the inbox is busy
//! (the hot-object cache) and exits when the inbox is empty. No lock is
//! held across a function call: only the map of inboxes is locked, briefly.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::Arc;

use oprc_core::{ClassKey, ObjectId, ObjectRecord};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

/// Identifies an object across classes.
pub(crate) type ObjectKey = (ClassKey, ObjectId);

/// The state a worker keeps between jobs: the object as last committed, or
/// `None` when it must be (re)loaded from the store.
pub(crate) type Cached = Option<ObjectRecord>;

/// A job borrows the worker's cache for its run.
pub(crate) type Job =
    Box<dyn for<'a> FnOnce(&'a mut Cached) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> + Send>;

const SHARDS: usize = 64;

/// All inboxes of this node.
pub(crate) struct Inboxes {
    // Unbounded per object: the number of queued jobs is bounded by the
    // callers (the ingress's in-flight limit and the async consumer's
    // semaphore), not here.
    shards: Vec<Mutex<HashMap<ObjectKey, mpsc::UnboundedSender<Job>>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Inboxes {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &ObjectKey) -> &Mutex<HashMap<ObjectKey, mpsc::UnboundedSender<Job>>> {
        let mut h = self.hasher.build_hasher();
        key.hash(&mut h);
        &self.shards[(std::hash::Hasher::finish(&h) as usize) % SHARDS]
    }

    /// Appends a job to the object's inbox, starting its worker if idle.
    pub fn enqueue(self: &Arc<Self>, tracker: &TaskTracker, key: ObjectKey, job: Job) {
        let mut map = self.shard(&key).lock();
        let job = match map.get(&key) {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                // The worker died (a panic in a job); start a new one.
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        // Cannot fail: `rx` is alive.
        let _ = tx.send(job);
        map.insert(key.clone(), tx);
        drop(map);
        tracker.spawn(self.clone().work(key, rx));
    }

    async fn work(self: Arc<Self>, key: ObjectKey, mut rx: mpsc::UnboundedReceiver<Job>) {
        let mut cached: Cached = None;
        loop {
            let job = match rx.try_recv() {
                Ok(job) => job,
                Err(_) => {
                    // Enqueue sends under this lock, so an empty channel
                    // seen under it stays empty: safe to retire.
                    let mut map = self.shard(&key).lock();
                    match rx.try_recv() {
                        Ok(job) => job,
                        Err(_) => {
                            map.remove(&key);
                            return;
                        }
                    }
                }
            };
            job(&mut cached).await;
        }
    }

    /// Number of objects with a busy inbox.
    pub fn busy(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}
