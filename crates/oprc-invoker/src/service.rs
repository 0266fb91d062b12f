//! The invoker service: builds the shared state, runs the async-log
//! consumers and the record purger, and drains at shutdown.

use std::sync::Arc;

use arc_swap::ArcSwap;
use oprc_core::PartitionId;
use oprc_package::Catalog;
use oprc_store::{InvocationLog, StateStore};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cache::ObjectCache;
use crate::calls::Calls;
use crate::context::Shared;
use crate::files::Files;
use crate::handle::Handle;
use crate::inbox::Inboxes;
use crate::metrics::Metrics;
use crate::ports::FunctionEngine;
use crate::router::Router;
use crate::types::now_ms;
use crate::{Options, consumer};

/// Expired records deleted per write transaction.
const PURGE_CHUNK: usize = 1024;

/// What the invoker works with.
pub struct Parts {
    pub catalog: Arc<ArcSwap<Catalog>>,
    pub state: Arc<dyn StateStore>,
    pub log: Arc<dyn InvocationLog>,
    pub engine: Arc<dyn FunctionEngine>,
    pub router: Arc<dyn Router>,
    pub files: Files,
    /// Calls from functions to other objects (`callUrl`, `callToken` in
    /// tasks); `None`: tasks get neither.
    pub calls: Option<Calls>,
    pub metrics: Metrics,
}

/// The invoker: owns the async-log consumers and the record purger.
pub struct Invoker {
    shared: Arc<Shared>,
}

impl Invoker {
    pub fn new(options: Options, parts: Parts) -> Self {
        let shared = Shared {
            cache: ObjectCache::new(options.object_cache_bytes),
            inboxes: Inboxes::new(options.max_queued_per_object),
            admission: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
            options,
            catalog: parts.catalog,
            state: parts.state,
            log: parts.log,
            engine: parts.engine,
            router: parts.router,
            files: parts.files,
            calls: parts.calls,
            macros: Default::default(),
            live_tasks: Default::default(),
            keys: Arc::default(),
            doing: Default::default(),
            tracker: TaskTracker::new(),
            stopping: CancellationToken::new(),
            metrics: parts.metrics,
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    /// Consumes the async log and purges expired records until `cancel`;
    /// then refuses new calls, stops consuming, lets the calls already
    /// accepted finish (up to `options.drain_timeout`) and commits the log
    /// positions.
    pub async fn run(self, cancel: CancellationToken) {
        let shared = self.shared;
        let mut tasks = tokio::task::JoinSet::new();
        for p in 0..shared.options.partitions {
            tasks.spawn(consumer::run(
                shared.clone(),
                PartitionId(p),
                cancel.clone(),
            ));
        }
        tasks.spawn(purge(shared.clone(), cancel.clone()));
        cancel.cancelled().await;
        // New calls are refused from here on.
        shared.tracker.close();
        let drained =
            tokio::time::timeout(shared.options.drain_timeout, shared.tracker.wait()).await;
        // Retries waiting on storage give up now; what they hold replays.
        shared.stopping.cancel();
        if drained.is_err() {
            tracing::warn!(
                busy_objects = shared.inboxes.busy(),
                "in-flight invocations did not finish before the drain timeout"
            );
        }
        // Consumers commit their final positions once their calls are done.
        while tasks.join_next().await.is_some() {}
    }
}

/// Deletes expired records in bounded chunks, so the writer is never held
/// by one huge transaction.
async fn purge(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(shared.options.purge_interval);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut total = 0u64;
        loop {
            match shared.state.purge_invocations(now_ms(), PURGE_CHUNK).await {
                Ok(n) => {
                    total += n;
                    if n < PURGE_CHUNK as u64 || cancel.is_cancelled() {
                        break;
                    }
                    // Let other writers in between chunks.
                    tokio::task::yield_now().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "purging invocation records failed");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::debug!(purged = total, "expired invocation records purged");
        }
    }
}
