//! The invoker against a store that fails on purpose: calls queued on a hot
//! object (pipelined commits) stay all-or-nothing when a commit fails.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use oprc_core::{
    ClassKey, InvocationId, InvocationRecord, InvocationRequest, InvocationStatus, ObjectId,
    ObjectRecord,
};
use oprc_invoker::{Caller, Invoker, Metrics, Options};
use oprc_store::{ErrorKind, ObjectPage, StateStore, WriteBatch};
use serde_json::json;

/// The embedded store, except that commit number `fail_at` (1-based) fails.
struct FailingStore {
    inner: oprc_store_redb::Store,
    commits: AtomicUsize,
    fail_at: AtomicUsize,
}

#[async_trait]
impl StateStore for FailingStore {
    async fn get_object(
        &self,
        cls: &ClassKey,
        oid: &ObjectId,
    ) -> oprc_store::Result<Option<ObjectRecord>> {
        self.inner.get_object(cls, oid).await
    }
    async fn list_objects(
        &self,
        cls: &ClassKey,
        after: Option<&ObjectId>,
        limit: usize,
    ) -> oprc_store::Result<ObjectPage> {
        self.inner.list_objects(cls, after, limit).await
    }
    async fn commit(&self, batch: WriteBatch) -> oprc_store::Result<()> {
        if self.commits.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at.load(Ordering::SeqCst) {
            return Err(oprc_store::Error::new(
                ErrorKind::Unavailable,
                "disk on fire",
            ));
        }
        self.inner.commit(batch).await
    }
    async fn get_invocation(
        &self,
        id: &InvocationId,
    ) -> oprc_store::Result<Option<InvocationRecord>> {
        self.inner.get_invocation(id).await
    }
    async fn find_idempotency_key(&self, key: &str) -> oprc_store::Result<Option<InvocationId>> {
        self.inner.find_idempotency_key(key).await
    }
    async fn purge_invocations(&self, now_ms: i64) -> oprc_store::Result<u64> {
        self.inner.purge_invocations(now_ms).await
    }
    async fn put_package(&self, name: &str, source: &str) -> oprc_store::Result<()> {
        self.inner.put_package(name, source).await
    }
    async fn delete_package(&self, name: &str) -> oprc_store::Result<bool> {
        self.inner.delete_package(name).await
    }
    async fn list_packages(&self) -> oprc_store::Result<Vec<(String, String)>> {
        self.inner.list_packages().await
    }
}

fn update(n: u64) -> InvocationRequest {
    InvocationRequest {
        inv_id: InvocationId::generate(),
        cls: ClassKey::new("t.c").unwrap(),
        oid: Some(ObjectId::new("o").unwrap()),
        fb: "update".into(),
        args: BTreeMap::new(),
        body: Some(json!({ "n": n })),
        idempotency_key: None,
        accepted_at: None,
        traceparent: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_commit_in_a_pipeline_leaves_the_object_consistent() {
    for fail_at in [2, 3, 5, 9] {
        let dir = tempfile::tempdir().unwrap();
        let redb =
            oprc_store_redb::Store::open(oprc_store_redb::Options::new(dir.path().join("db.redb")))
                .unwrap();
        let store = Arc::new(FailingStore {
            inner: redb.clone(),
            commits: AtomicUsize::new(0),
            fail_at: AtomicUsize::new(fail_at),
        });
        let doc = oprc_package::parse("name: t\nclasses:\n  - name: c\n").unwrap();
        let catalog = oprc_package::Catalog::new().apply(&doc).unwrap().catalog;
        let engine = oprc_engine::Service::new(oprc_engine::Options::default()).handle();
        let invoker = Invoker::new(
            Options::default(),
            Arc::new(ArcSwap::from_pointee(catalog)),
            store.clone(),
            Arc::new(redb.clone()),
            engine,
            Metrics::unregistered(),
        );
        let handle = invoker.handle();
        let mut create = update(0);
        create.oid = None;
        create.fb = "new".into();
        create.body = Some(json!({"id": "o", "data": {"n": 0}}));
        // Commit 1 creates the object (fail_at >= 2).
        let created = handle.invoke(create, Caller::External).await.unwrap();
        assert_eq!(created.status, InvocationStatus::Succeeded);

        let mut calls = tokio::task::JoinSet::new();
        for n in 1..=40 {
            let handle = handle.clone();
            calls.spawn(async move { handle.invoke(update(n), Caller::External).await.unwrap() });
        }
        let mut succeeded = Vec::new();
        let mut failed = 0;
        while let Some(r) = calls.join_next().await {
            let resp = r.unwrap();
            match resp.status {
                InvocationStatus::Succeeded => {
                    let main = resp.main.expect("update answers the object");
                    succeeded.push((main.meta.revision, main.data));
                }
                InvocationStatus::Failed => failed += 1,
                other => panic!("unexpected status {other:?}"),
            }
        }
        // Queued calls merge into few commits; when the failing one was
        // reached, the calls in it (and queued behind it) failed.
        if store.commits.load(Ordering::SeqCst) >= fail_at {
            assert!(failed >= 1, "commit {fail_at} failed, so some call failed");
        }
        assert_eq!(succeeded.len() + failed, 40);
        // Every success is a distinct revision, and the store holds the
        // newest one: nothing a failed call computed leaked in.
        succeeded.sort_by_key(|(rev, _)| *rev);
        let revs: Vec<u64> = succeeded.iter().map(|(r, _)| *r).collect();
        let expected: Vec<u64> = (2..2 + succeeded.len() as u64).collect();
        assert_eq!(revs, expected, "fail_at {fail_at}");
        let stored = redb
            .get_object(&ClassKey::new("t.c").unwrap(), &ObjectId::new("o").unwrap())
            .await
            .unwrap()
            .unwrap();
        let (rev, data) = succeeded.last().unwrap();
        assert_eq!((stored.meta.revision, &stored.data), (*rev, data));
        // And the object is not wedged: once the store works, calls do.
        store.fail_at.store(usize::MAX, Ordering::SeqCst);
        let next = handle.invoke(update(99), Caller::External).await.unwrap();
        assert_eq!(next.status, InvocationStatus::Succeeded, "{next:?}");
        assert_eq!(next.main.unwrap().meta.revision, rev + 1);
    }
}
