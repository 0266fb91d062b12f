//! An invoker on the embedded store with a fake function engine and a
//! store wrapper that fails on purpose.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use oprc_core::{
    ClassKey, FunctionKey, InvocationId, InvocationRequest, InvocationResponse, ObjectId,
    ObjectRecord, Task,
};
use oprc_invoker::{
    CallError, FunctionEngine, Handle, Invoker, LocalRouter, Metrics, Options, Parts,
};
use oprc_store::intercept::{Intercept, Intercepted};
use oprc_store::{ErrorKind, StateStore, WriteBatch};
use parking_lot::Mutex;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The test package: `t.c` with task bindings served by [`FakeEngine`].
pub const PACKAGE: &str = r#"
name: t
classes:
  - name: c
    functions:
      - {name: inc, function: .inc}
      - {name: slow, function: .slow}
      - {name: work, function: .work}
      - {name: peek, function: .inc, immutable: true}
functions:
  - {name: inc, provision: {http: {url: "http://fake/inc"}}}
  - {name: slow, provision: {http: {url: "http://fake/slow"}}}
  - {name: work, provision: {http: {url: "http://fake/work"}}}
"#;

pub fn catalog(source: &str) -> oprc_package::Catalog {
    let doc = oprc_package::parse(source).expect("test package parses");
    oprc_package::Catalog::new()
        .apply(&doc)
        .expect("test package applies")
        .catalog
}

/// A function engine in memory: `inc`/`work` add one to `data.n`, `slow`
/// does so after waiting for the gate (or 50 ms).
#[derive(Default)]
pub struct FakeEngine {
    /// Calls answered, per object id.
    pub calls: Mutex<HashMap<String, u64>>,
    /// Revisions the calls asked for.
    pub revisions: Mutex<Vec<Option<u64>>>,
    /// When set, the deployed revision of every function: a call planned
    /// on another one gets `Changed`.
    pub deployed: Mutex<Option<u64>>,
    /// Runs once, when a call first gets `Changed`.
    pub on_changed: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// Largest random delay before answering, microseconds.
    pub jitter_us: AtomicU64,
    pub gate: tokio::sync::Notify,
    seed: AtomicU64,
}

#[async_trait]
impl FunctionEngine for FakeEngine {
    async fn invoke(
        &self,
        function: &FunctionKey,
        revision: Option<u64>,
        task: Bytes,
        _timeout: Duration,
        _headers: &http::HeaderMap,
    ) -> Result<Bytes, CallError> {
        self.revisions.lock().push(revision);
        if let Some(deployed) = *self.deployed.lock()
            && revision != Some(deployed)
        {
            if let Some(f) = self.on_changed.lock().take() {
                f();
            }
            return Err(CallError::Changed);
        }
        let jitter = self.jitter_us.load(Ordering::Relaxed);
        if jitter > 0 {
            let r = self
                .seed
                .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_micros(r % jitter)).await;
        }
        if function.short_name() == "slow" {
            let _ = tokio::time::timeout(Duration::from_millis(50), self.gate.notified()).await;
        }
        let task: Task = serde_json::from_slice(&task).expect("the invoker sends tasks");
        let main = task.main.expect("test functions run on objects");
        let n = main.data["n"].as_u64().unwrap_or(0);
        *self
            .calls
            .lock()
            .entry(main.meta.id.to_string())
            .or_default() += 1;
        let completion = json!({"success": true, "main": {"data": {"n": n + 1}}, "body": n + 1});
        Ok(Bytes::from(completion.to_string()))
    }
}

/// A fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Each object load and commit fails with this kind, with probability
    /// `per_mille` / 1000 (a fixed pseudo-random sequence).
    Random {
        kind: ErrorKind,
        per_mille: u64,
    },
    /// Commits touching this object id fail with `Internal` (corrupt).
    Corrupt(&'static str),
}

/// The embedded store, failing on object loads and commits as told.
pub type FaultyStore = Intercepted<oprc_store_redb::Store, Faults>;

/// The switches and counters of a [`FaultyStore`].
pub struct Faults {
    pub fault: Mutex<Fault>,
    pub injected: AtomicUsize,
    pub commits: AtomicUsize,
    rng: AtomicU64,
}

impl Faults {
    fn roll(&self) -> oprc_store::Result<()> {
        let Fault::Random { kind, per_mille } = *self.fault.lock() else {
            return Ok(());
        };
        // xorshift: the same sequence every run.
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        if x % 1000 < per_mille {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(oprc_store::Error::new(kind, "injected fault"));
        }
        Ok(())
    }
}

#[async_trait]
impl Intercept for Faults {
    async fn get_object(
        &self,
        inner: &(dyn StateStore + '_),
        cls: &ClassKey,
        oid: &ObjectId,
    ) -> oprc_store::Result<Option<ObjectRecord>> {
        self.roll()?;
        inner.get_object(cls, oid).await
    }

    async fn commit(
        &self,
        inner: &(dyn StateStore + '_),
        batch: WriteBatch,
    ) -> oprc_store::Result<()> {
        self.commits.fetch_add(1, Ordering::Relaxed);
        if let Fault::Corrupt(id) = *self.fault.lock() {
            let touches = batch.writes.iter().any(|w| match w {
                oprc_store::Write::PutObject { record, .. } => record.meta.id.as_str() == id,
                oprc_store::Write::DeleteObject { oid, .. } => oid.as_str() == id,
                oprc_store::Write::PutInvocation(_) => false,
            });
            if touches {
                self.injected.fetch_add(1, Ordering::Relaxed);
                return Err(oprc_store::Error::internal("corrupt record (injected)"));
            }
        }
        self.roll()?;
        inner.commit(batch).await
    }
}

/// An invoker running on a fresh store.
pub struct Node {
    pub handle: Handle,
    pub engine: Arc<FakeEngine>,
    pub store: Arc<FaultyStore>,
    pub catalog: Arc<ArcSwap<oprc_package::Catalog>>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// An embedded blob store in `dir` (its URLs are never fetched here).
pub fn files(dir: &std::path::Path) -> oprc_invoker::Files {
    let signer = oprc_blob::Signer::new(b"test-key".to_vec(), "http://127.0.0.1:9");
    oprc_invoker::Files {
        store: Arc::new(oprc_blob::DirStore::open(dir, signer.clone()).expect("file dir opens")),
        signer,
        url_ttl: Duration::from_secs(60),
        max_upload_age: Duration::from_secs(600),
    }
}

impl Node {
    pub fn start(options: Options) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let redb =
            oprc_store_redb::Store::open(oprc_store_redb::Options::new(dir.path().join("db.redb")))
                .expect("store opens");
        let store = Arc::new(Intercepted {
            inner: redb.clone(),
            hooks: Faults {
                fault: Mutex::new(Fault::None),
                injected: AtomicUsize::new(0),
                commits: AtomicUsize::new(0),
                rng: AtomicU64::new(0x2545_f491_4f6c_dd1d),
            },
        });
        let engine = Arc::new(FakeEngine::default());
        let catalog = Arc::new(ArcSwap::from_pointee(catalog(PACKAGE)));
        let invoker = Invoker::new(
            options,
            Parts {
                catalog: catalog.clone(),
                state: store.clone(),
                log: Arc::new(redb),
                engine: engine.clone(),
                router: Arc::new(LocalRouter),
                files: files(&dir.path().join("files")),
                calls: None,
                metrics: Metrics::unregistered(),
            },
        );
        let handle = invoker.handle();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(invoker.run(cancel.clone()));
        Node {
            handle,
            engine,
            store,
            catalog,
            cancel,
            task,
            _dir: dir,
        }
    }

    pub fn fault(&self, fault: Fault) {
        *self.store.fault.lock() = fault;
    }

    /// Creates `t.c/{id}` with `n: 0`.
    pub async fn create(&self, id: &str) {
        let mut req = request(None, "new");
        req.body = Some(json!({"id": id, "data": {"n": 0}}));
        let resp = self.handle.invoke(req).await.expect("new is accepted");
        assert_eq!(
            resp.status,
            oprc_core::InvocationStatus::Succeeded,
            "{resp:?}"
        );
    }

    /// `data.n` of the object, as stored.
    pub async fn stored_n(&self, id: &str) -> u64 {
        let obj = self
            .store
            .inner
            .get_object(&cls(), &ObjectId::new(id).unwrap())
            .await
            .unwrap()
            .expect("object exists");
        obj.data["n"].as_u64().unwrap_or(0)
    }

    /// Polls until nothing is queued or running.
    pub async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.handle.stats();
            if s.busy_objects == 0 && s.admitted == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "invoker did not settle: {s:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Polls an invocation until it has ended.
    pub async fn wait_ended(&self, id: &InvocationId) -> InvocationResponse {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(resp) = self.handle.invocation(id).await
                && resp.status.is_terminal()
            {
                return resp;
            }
            assert!(Instant::now() < deadline, "invocation {id} did not end");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        self.task.await.expect("invoker stops");
    }
}

pub fn cls() -> ClassKey {
    ClassKey::new("t.c").unwrap()
}

/// A call of `fb` on `t.c/{oid}` (or at class level).
pub fn request(oid: Option<&str>, fb: &str) -> InvocationRequest {
    InvocationRequest::new(cls(), oid.map(|o| ObjectId::new(o).unwrap()), fb)
}
