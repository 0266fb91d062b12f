//! What the regression tests run on: an engine and a store wrapper under
//! the test's control, for precise timing of interleavings.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use oprc_core::{
    FunctionKey, InvocationId, InvocationResponse, InvocationStatus, ObjectId, ObjectRecord,
    PartitionId, Task,
};
use oprc_invoker::{
    CallError, FunctionEngine, Handle, Invoker, LocalRouter, Metrics, Options, Parts,
};
use oprc_store::intercept::{Intercept, Intercepted};
use oprc_store::{ErrorKind, InvocationLog, StateStore, Write, WriteBatch};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::support::{catalog, cls, request};

/// `t.c` with task bindings served by [`ScriptEngine`]; `mk` also creates
/// an output object of class `t.c`.
pub(crate) const PACKAGE: &str = r#"
name: t
classes:
  - name: c
    functions:
      - {name: inc, function: .inc}
      - {name: slow, function: .slow}
      - {name: peek, function: .inc, immutable: true}
      - {name: mk, function: .inc, outputCls: .c}
functions:
  - {name: inc, provision: {http: {url: "http://fake/inc"}}}
  - {name: slow, provision: {http: {url: "http://fake/slow"}}}
"#;

// ---------------------------------------------------------------------------
// A function engine under the test's control.

/// Every call adds one to `data.n` and sets `data.<binding>: true` (so a
/// state shows which calls were applied). `slow` waits for a permit of
/// `gate`. The first call of the binding named in `changed_once` runs the
/// closure (a catalog swap, as the registry does after deploying) and
/// answers `Changed`.
#[derive(Default)]
pub(crate) struct ScriptEngine {
    pub(crate) started: Mutex<Vec<String>>,
    pub(crate) gate: Gate,
    #[allow(clippy::type_complexity)]
    pub(crate) changed_once: Mutex<Option<(String, Box<dyn FnOnce() + Send>)>>,
}

pub(crate) struct Gate(Semaphore);

impl Default for Gate {
    fn default() -> Self {
        Self(Semaphore::new(0))
    }
}

impl Gate {
    pub(crate) async fn pass(&self) {
        self.0.acquire().await.expect("never closed").forget();
    }
    pub(crate) fn open(&self, n: usize) {
        self.0.add_permits(n);
    }
}

impl ScriptEngine {
    pub(crate) fn started(&self, fb: &str) -> usize {
        self.started.lock().iter().filter(|f| *f == fb).count()
    }
}

#[async_trait]
impl FunctionEngine for ScriptEngine {
    async fn invoke(
        &self,
        _function: &FunctionKey,
        _revision: Option<u64>,
        task: Bytes,
        _timeout: Duration,
        _headers: &http::HeaderMap,
    ) -> Result<Bytes, CallError> {
        let task: Task = serde_json::from_slice(&task).expect("the invoker sends tasks");
        let fb = task.fb_name.clone();
        self.started.lock().push(fb.clone());
        let changed = {
            let mut slot = self.changed_once.lock();
            match slot.take() {
                Some((name, f)) if name == fb => Some(f),
                other => {
                    *slot = other;
                    None
                }
            }
        };
        if let Some(f) = changed {
            f();
            return Err(CallError::Changed);
        }
        if fb == "slow" {
            self.gate.pass().await;
        }
        let main = task.main.expect("test functions run on objects");
        let mut data = main.data;
        let n = data["n"].as_u64().unwrap_or(0);
        data["n"] = json!(n + 1);
        data[fb.as_str()] = json!(true);
        let completion = json!({"success": true, "main": {"data": data}, "body": n + 1});
        Ok(Bytes::from(completion.to_string()))
    }
}

// ---------------------------------------------------------------------------
// A store with switches.

/// The embedded store with switches for the interleavings under test.
pub(crate) type ReviewStore = Intercepted<oprc_store_redb::Store, Switches>;

/// The switches of a [`ReviewStore`].
pub(crate) struct Switches {
    /// Commits that write an object fail with this kind (nothing lands).
    pub(crate) fail_object_commits: Mutex<Option<ErrorKind>>,
    pub(crate) failed: AtomicUsize,
    /// Commits that only write invocation records fail (`Unavailable`).
    pub(crate) fail_record_only: AtomicBool,
    /// Commits that write an object land, then answer `Timeout`.
    pub(crate) timeout_after_landing: AtomicBool,
    /// Commits that write an object wait for `gate` before they are
    /// applied.
    pub(crate) block_object_commits: AtomicBool,
    /// A commit that deletes an object lands, then waits for `gate` before
    /// it answers (a reply that is late, as under load).
    pub(crate) hold_delete_reply: AtomicBool,
    pub(crate) held: AtomicUsize,
    pub(crate) gate: Gate,
}

/// The embedded store `inner`, with every switch off.
pub(crate) fn review_store(inner: oprc_store_redb::Store) -> ReviewStore {
    Intercepted {
        inner,
        hooks: Switches {
            fail_object_commits: Mutex::new(None),
            failed: AtomicUsize::new(0),
            fail_record_only: AtomicBool::new(false),
            timeout_after_landing: AtomicBool::new(false),
            block_object_commits: AtomicBool::new(false),
            hold_delete_reply: AtomicBool::new(false),
            held: AtomicUsize::new(0),
            gate: Gate::default(),
        },
    }
}

fn writes_object(batch: &WriteBatch) -> bool {
    batch
        .writes
        .iter()
        .any(|w| !matches!(w, Write::PutInvocation(_)))
}

#[async_trait]
impl Intercept for Switches {
    async fn commit(
        &self,
        inner: &(dyn StateStore + '_),
        batch: WriteBatch,
    ) -> oprc_store::Result<()> {
        let objects = writes_object(&batch);
        if !objects && self.fail_record_only.load(Ordering::SeqCst) {
            return Err(oprc_store::Error::new(
                ErrorKind::Unavailable,
                "record write failed (injected)",
            ));
        }
        if objects && let Some(kind) = *self.fail_object_commits.lock() {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(oprc_store::Error::new(kind, "injected fault"));
        }
        if objects && self.block_object_commits.load(Ordering::SeqCst) {
            self.gate.pass().await;
        }
        let deletes = batch
            .writes
            .iter()
            .any(|w| matches!(w, Write::DeleteObject { .. }));
        let result = inner.commit(batch).await;
        if deletes && self.hold_delete_reply.load(Ordering::SeqCst) {
            self.held.fetch_add(1, Ordering::SeqCst);
            self.gate.pass().await;
        }
        if result.is_ok() && objects && self.timeout_after_landing.load(Ordering::SeqCst) {
            return Err(oprc_store::Error::new(
                ErrorKind::Timeout,
                "no answer in time (the batch landed)",
            ));
        }
        result
    }
}

// ---------------------------------------------------------------------------
// A node that can be stopped and started again on the same store.

pub(crate) struct TNode {
    pub(crate) handle: Handle,
    pub(crate) engine: Arc<ScriptEngine>,
    pub(crate) store: Arc<ReviewStore>,
    pub(crate) catalog: Arc<ArcSwap<oprc_package::Catalog>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) task: Option<tokio::task::JoinHandle<()>>,
    pub(crate) options: Options,
    pub(crate) _dir: tempfile::TempDir,
}

impl TNode {
    pub(crate) fn start(options: Options) -> TNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let redb =
            oprc_store_redb::Store::open(oprc_store_redb::Options::new(dir.path().join("db.redb")))
                .expect("store opens");
        let store = Arc::new(review_store(redb));
        let engine = Arc::new(ScriptEngine::default());
        let catalog = Arc::new(ArcSwap::from_pointee(catalog(PACKAGE)));
        let mut node = TNode {
            handle: Invoker::new(options.clone(), parts(&store, &engine, &catalog)).handle(),
            engine,
            store,
            catalog,
            cancel: CancellationToken::new(),
            task: None,
            options,
            _dir: dir,
        };
        node.boot();
        node
    }

    /// Starts an invoker on the node's store (a restart after `halt`).
    pub(crate) fn boot(&mut self) {
        let invoker = Invoker::new(
            self.options.clone(),
            parts(&self.store, &self.engine, &self.catalog),
        );
        self.handle = invoker.handle();
        self.cancel = CancellationToken::new();
        self.task = Some(tokio::spawn(invoker.run(self.cancel.clone())));
    }

    pub(crate) async fn halt(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("invoker stops");
        }
    }

    pub(crate) async fn create(&self, id: &str) {
        let mut req = request(None, "new");
        req.body = Some(json!({"id": id, "data": {"n": 0}}));
        let resp = self.handle.invoke(req).await.expect("new is accepted");
        assert_eq!(resp.status, InvocationStatus::Succeeded, "{resp:?}");
    }

    pub(crate) async fn stored(&self, id: &str) -> Option<ObjectRecord> {
        self.store
            .inner
            .get_object(&cls(), &ObjectId::new(id).unwrap())
            .await
            .unwrap()
    }

    /// The invocation's terminal answer, or `None` if it has not ended
    /// within `within`.
    pub(crate) async fn ended(
        &self,
        id: &InvocationId,
        within: Duration,
    ) -> Option<InvocationResponse> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(resp) = self.handle.invocation(id).await
                && resp.status.is_terminal()
            {
                return Some(resp);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until partition 0's consumer has committed its position up
    /// to `offset` (every entry up to it counted done).
    pub(crate) async fn applied_up_to(&self, offset: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self
            .store
            .inner
            .committed_position(PartitionId(0))
            .await
            .unwrap()
            < offset
        {
            assert!(
                Instant::now() < deadline,
                "the log is not applied up to {offset}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) async fn submit(&self, oid: &str, fb: &str) -> InvocationId {
        let resp = self
            .handle
            .submit(request(Some(oid), fb))
            .await
            .expect("submit is accepted");
        assert_eq!(resp.status, InvocationStatus::Queue);
        resp.inv_id
    }
}

pub(crate) fn parts(
    store: &Arc<ReviewStore>,
    engine: &Arc<ScriptEngine>,
    catalog: &Arc<ArcSwap<oprc_package::Catalog>>,
) -> Parts {
    Parts {
        catalog: catalog.clone(),
        state: store.clone(),
        log: Arc::new(store.inner.clone()),
        engine: engine.clone(),
        router: Arc::new(LocalRouter),
        files: crate::support::files(&tempfile::tempdir().expect("tempdir").keep()),
        calls: None,
        metrics: Metrics::unregistered(),
    }
}

pub(crate) async fn until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub(crate) fn opts() -> Options {
    Options {
        partitions: 1,
        drain_timeout: Duration::from_millis(500),
        ..Options::default()
    }
}
