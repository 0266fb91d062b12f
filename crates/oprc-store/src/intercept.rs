//! A store that hands its object loads and commits to hooks and forwards
//! everything else: the one place fault injection (the node's
//! `fault-injection` feature, tests) plugs into a real backend.

use async_trait::async_trait;
use oprc_core::{ClassKey, InvocationId, InvocationRecord, ObjectId, ObjectRecord};

use crate::{Layout, ObjectPage, Result, StateStore, WriteBatch};

/// What to do instead of a plain load or commit. The defaults forward.
#[async_trait]
pub trait Intercept: Send + Sync + 'static {
    async fn get_object(
        &self,
        inner: &(dyn StateStore + '_),
        cls: &ClassKey,
        oid: &ObjectId,
    ) -> Result<Option<ObjectRecord>> {
        inner.get_object(cls, oid).await
    }

    async fn commit(&self, inner: &(dyn StateStore + '_), batch: WriteBatch) -> Result<()> {
        inner.commit(batch).await
    }
}

/// `inner` with its loads and commits going through `hooks`. Derefs to the
/// hooks, so their switches read as the store's.
pub struct Intercepted<S, I> {
    pub inner: S,
    pub hooks: I,
}

impl<S, I> std::ops::Deref for Intercepted<S, I> {
    type Target = I;

    fn deref(&self) -> &I {
        &self.hooks
    }
}

#[async_trait]
impl<S: StateStore, I: Intercept> StateStore for Intercepted<S, I> {
    async fn get_object(&self, cls: &ClassKey, oid: &ObjectId) -> Result<Option<ObjectRecord>> {
        self.hooks.get_object(&self.inner, cls, oid).await
    }
    async fn list_objects(
        &self,
        cls: &ClassKey,
        after: Option<&ObjectId>,
        limit: usize,
    ) -> Result<ObjectPage> {
        self.inner.list_objects(cls, after, limit).await
    }
    async fn commit(&self, batch: WriteBatch) -> Result<()> {
        self.hooks.commit(&self.inner, batch).await
    }
    async fn get_invocation(&self, id: &InvocationId) -> Result<Option<InvocationRecord>> {
        self.inner.get_invocation(id).await
    }
    async fn find_idempotency_key(&self, key: &str) -> Result<Option<InvocationId>> {
        self.inner.find_idempotency_key(key).await
    }
    async fn purge_invocations(&self, now_ms: i64, max: usize) -> Result<u64> {
        self.inner.purge_invocations(now_ms, max).await
    }
    async fn layout(&self, proposed: &Layout) -> Result<Layout> {
        self.inner.layout(proposed).await
    }
    async fn put_package(&self, name: &str, source: &str) -> Result<()> {
        self.inner.put_package(name, source).await
    }
    async fn delete_package(&self, name: &str) -> Result<bool> {
        self.inner.delete_package(name).await
    }
    async fn list_packages(&self) -> Result<Vec<(String, String)>> {
        self.inner.list_packages().await
    }
    async fn packages_version(&self) -> Result<Option<u64>> {
        self.inner.packages_version().await
    }
}
