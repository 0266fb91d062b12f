//! Per-object FIFO inboxes (localized locking, G1).
//!
//! Every mutating call on an object goes into that object's inbox; one
//! worker task per non-empty inbox runs them one at a time in arrival order.
//! The worker keeps the object's state in memory while the inbox is busy
//! (the hot-object cache) and exits when the inbox is empty. No lock is
//! held across a function call: only the map of inboxes is locked, briefly.

use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::Arc;

use oprc_core::{ClassKey, ObjectId};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

/// Identifies an object across classes.
pub(crate) type ObjectKey = (ClassKey, ObjectId);

/// The state a worker keeps between jobs (the object, commits in flight).
pub(crate) type Cached = crate::pipeline::WorkerState;

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
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// Queues `job` behind a running inbox, or, when the object has none,
    /// opens one and hands the job back to the caller, who now owns it.
    fn claim(&self, key: &ObjectKey, job: Job) -> Option<(mpsc::UnboundedReceiver<Job>, Job)> {
        let mut map = self.shard(key).lock();
        let job = match map.get(key) {
            Some(tx) => match tx.send(job) {
                Ok(()) => return None,
                // The worker died (a panic in a job); open a new inbox.
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        map.insert(key.clone(), tx);
        Some((rx, job))
    }

    /// Appends a job to the object's inbox, starting its worker if idle.
    pub fn enqueue(self: &Arc<Self>, tracker: &TaskTracker, key: ObjectKey, job: Job) {
        if let Some((rx, job)) = self.claim(&key, job) {
            let mut cached = Cached::default();
            tracker.spawn({
                let inboxes = self.clone();
                async move {
                    cached.contended = !rx.is_empty();
                    job(&mut cached).await;
                    inboxes.work_with(key, rx, cached).await;
                }
            });
        }
    }

    /// Runs a job in the caller's task when the object's inbox is idle (no
    /// hop to another task), else queues it behind the jobs before it and
    /// returns at once. Either way the job runs alone and in order.
    pub async fn run(self: &Arc<Self>, tracker: &TaskTracker, key: ObjectKey, job: Job) {
        let Some((rx, job)) = self.claim(&key, job) else {
            return;
        };
        // This task owns the inbox now. Whatever happens to it (even being
        // dropped mid-job), the guard hands what has queued up to a worker.
        let mut owner = Owner {
            inboxes: self.clone(),
            tracker: tracker.clone(),
            key,
            rx: Some(rx),
            cached: Cached::default(),
        };
        job(&mut owner.cached).await;
    }

    async fn work_with(
        self: Arc<Self>,
        key: ObjectKey,
        mut rx: mpsc::UnboundedReceiver<Job>,
        mut cached: Cached,
    ) {
        loop {
            let job = match rx.try_recv() {
                Ok(job) => job,
                Err(_) if cached.has_pending() => {
                    // Commits in flight: the next worker must not load the
                    // object before they land.
                    cached.settle().await;
                    continue;
                }
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
            cached.contended = !rx.is_empty();
            job(&mut cached).await;
        }
    }

    /// Retires an inbox whose owner is done, or hands it to a worker when
    /// jobs queued up meanwhile.
    fn release(
        self: &Arc<Self>,
        tracker: &TaskTracker,
        key: ObjectKey,
        rx: mpsc::UnboundedReceiver<Job>,
        cached: Cached,
    ) {
        if !cached.has_pending() {
            let mut map = self.shard(&key).lock();
            if rx.is_empty() {
                map.remove(&key);
                return;
            }
        }
        tracker.spawn(self.clone().work_with(key, rx, cached));
    }

    /// Number of objects with a busy inbox.
    pub fn busy(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// A caller running its job inline owns the inbox until dropped.
struct Owner {
    inboxes: Arc<Inboxes>,
    tracker: TaskTracker,
    key: ObjectKey,
    rx: Option<mpsc::UnboundedReceiver<Job>>,
    cached: Cached,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            let key = self.key.clone();
            self.inboxes
                .release(&self.tracker, key, rx, std::mem::take(&mut self.cached));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use oprc_core::{ClassKey, ObjectId};
    use tokio::sync::Notify;

    use super::*;

    fn key() -> ObjectKey {
        (ClassKey::new("t.c").unwrap(), ObjectId::new("o").unwrap())
    }

    /// Runs `job` inline in a task of its own; returns once it owns the inbox.
    async fn start_inline(
        inboxes: &Arc<Inboxes>,
        tracker: &TaskTracker,
        job: Job,
    ) -> tokio::task::JoinHandle<()> {
        let inline = tokio::spawn({
            let (inboxes, tracker) = (inboxes.clone(), tracker.clone());
            async move { inboxes.run(&tracker, key(), job).await }
        });
        while inboxes.busy() == 0 {
            tokio::task::yield_now().await;
        }
        inline
    }

    fn record(log: &Arc<Mutex<Vec<usize>>>, i: usize) -> Job {
        let log = log.clone();
        Box::new(move |_: &mut Cached| {
            Box::pin(async move {
                tokio::task::yield_now().await;
                log.lock().push(i);
            })
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn jobs_on_one_object_never_overlap() {
        let inboxes = Arc::new(Inboxes::new());
        let tracker = TaskTracker::new();
        let active = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let (inboxes, tracker, active, done) = (
                inboxes.clone(),
                tracker.clone(),
                active.clone(),
                done.clone(),
            );
            callers.spawn(async move {
                let job: Job = Box::new(move |_: &mut Cached| {
                    Box::pin(async move {
                        assert_eq!(active.fetch_add(1, Ordering::SeqCst), 0, "overlap");
                        tokio::task::yield_now().await;
                        active.fetch_sub(1, Ordering::SeqCst);
                        done.fetch_add(1, Ordering::SeqCst);
                    })
                });
                inboxes.run(&tracker, key(), job).await;
            });
        }
        while let Some(r) = callers.join_next().await {
            r.unwrap();
        }
        tracker.close();
        tracker.wait().await;
        assert_eq!(done.load(Ordering::SeqCst), 200);
        assert_eq!(inboxes.busy(), 0, "idle inboxes are retired");
    }

    #[tokio::test]
    async fn queued_jobs_run_in_arrival_order_after_the_inline_one() {
        let inboxes = Arc::new(Inboxes::new());
        let tracker = TaskTracker::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Notify::new());
        let first: Job = {
            let (log, gate) = (log.clone(), gate.clone());
            Box::new(move |_: &mut Cached| {
                Box::pin(async move {
                    gate.notified().await;
                    log.lock().push(0);
                })
            })
        };
        let inline = start_inline(&inboxes, &tracker, first).await;
        for i in 1..=50 {
            inboxes.enqueue(&tracker, key(), record(&log, i));
        }
        gate.notify_one();
        inline.await.unwrap();
        tracker.close();
        tracker.wait().await;
        assert_eq!(*log.lock(), (0..=50).collect::<Vec<_>>());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Producers that each submit a sequence of jobs, some run inline
        /// and some queued, see their own jobs run in their order, never two
        /// at once, none lost.
        #[test]
        fn every_producer_sees_its_jobs_in_order(
            plan in proptest::collection::vec((0usize..4, proptest::bool::ANY), 1..120)
        ) {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(3)
                .build()
                .unwrap();
            let log = rt.block_on(async {
                let inboxes = Arc::new(Inboxes::new());
                let tracker = TaskTracker::new();
                let log = Arc::new(Mutex::new(Vec::new()));
                let active = Arc::new(AtomicUsize::new(0));
                let mut producers = tokio::task::JoinSet::new();
                for p in 0..4 {
                    let mine: Vec<bool> = plan.iter().filter(|(q, _)| *q == p).map(|(_, i)| *i).collect();
                    let (inboxes, tracker, log, active) =
                        (inboxes.clone(), tracker.clone(), log.clone(), active.clone());
                    producers.spawn(async move {
                        for (seq, inline) in mine.into_iter().enumerate() {
                            let (log, active) = (log.clone(), active.clone());
                            let job: Job = Box::new(move |_: &mut Cached| {
                                Box::pin(async move {
                                    assert_eq!(active.fetch_add(1, Ordering::SeqCst), 0, "overlap");
                                    tokio::task::yield_now().await;
                                    log.lock().push((p, seq));
                                    active.fetch_sub(1, Ordering::SeqCst);
                                })
                            });
                            if inline {
                                inboxes.run(&tracker, key(), job).await;
                            } else {
                                inboxes.enqueue(&tracker, key(), job);
                            }
                        }
                    });
                }
                while let Some(r) = producers.join_next().await {
                    r.unwrap();
                }
                tracker.close();
                tracker.wait().await;
                assert_eq!(inboxes.busy(), 0);
                log.lock().clone()
            });
            proptest::prop_assert_eq!(log.len(), plan.len());
            for p in 0..4 {
                let seqs: Vec<usize> = log.iter().filter(|(q, _)| *q == p).map(|(_, s)| *s).collect();
                proptest::prop_assert_eq!(seqs.clone(), (0..seqs.len()).collect::<Vec<_>>());
            }
        }
    }

    #[tokio::test]
    async fn a_dropped_inline_caller_hands_the_queue_to_a_worker() {
        let inboxes = Arc::new(Inboxes::new());
        let tracker = TaskTracker::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stuck: Job = Box::new(|_: &mut Cached| Box::pin(std::future::pending::<()>()));
        let inline = start_inline(&inboxes, &tracker, stuck).await;
        for i in 1..=3 {
            inboxes.enqueue(&tracker, key(), record(&log, i));
        }
        inline.abort();
        let _ = inline.await;
        tracker.close();
        tracker.wait().await;
        assert_eq!(*log.lock(), vec![1, 2, 3]);
        assert_eq!(inboxes.busy(), 0);
    }
}
