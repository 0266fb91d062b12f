//! Fault injection for tests (cargo feature `fault-injection`, off in
//! release builds): when `OPRC_FAULT_INJECTION` is set, object loads and
//! commits fail at random for a while after the start, then heal. The
//! fault-injection suite runs real `oprc serve` processes with it.
//!
//! `OPRC_FAULT_INJECTION=KIND:PER_MILLE:FOR_MS`, e.g. `unavailable:300:4000`
//! fails 30 % of loads and commits with `Unavailable` during the first four
//! seconds. KIND is `unavailable`, `timeout`, `conflict` or `internal`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use oprc_core::{ClassKey, InvocationId, InvocationRecord, ObjectId, ObjectRecord};
use oprc_store::{ErrorKind, Layout, ObjectPage, StateStore, WriteBatch};

pub(crate) const VAR: &str = "OPRC_FAULT_INJECTION";

struct Plan {
    kind: ErrorKind,
    per_mille: u64,
    until: Instant,
}

/// Wraps `inner` when the variable is set.
pub(crate) fn wrap(inner: Arc<dyn StateStore>) -> anyhow::Result<Arc<dyn StateStore>> {
    let Ok(spec) = std::env::var(VAR) else {
        return Ok(inner);
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let [kind, per_mille, for_ms] = parts.as_slice() else {
        anyhow::bail!("{VAR} must be KIND:PER_MILLE:FOR_MS, not {spec:?}");
    };
    let kind = match *kind {
        "unavailable" => ErrorKind::Unavailable,
        "timeout" => ErrorKind::Timeout,
        "conflict" => ErrorKind::Conflict,
        "internal" => ErrorKind::Internal,
        other => anyhow::bail!("{VAR}: unknown error kind {other:?}"),
    };
    let per_mille = per_mille
        .parse()
        .with_context(|| format!("{VAR}: per mille"))?;
    let for_ms = for_ms.parse().with_context(|| format!("{VAR}: duration"))?;
    tracing::warn!(%spec, "fault injection is on: storage fails on purpose");
    Ok(Arc::new(Faulty {
        inner,
        plan: Plan {
            kind,
            per_mille,
            until: Instant::now() + Duration::from_millis(for_ms),
        },
        rng: AtomicU64::new(0x2545_f491_4f6c_dd1d),
    }))
}

struct Faulty {
    inner: Arc<dyn StateStore>,
    plan: Plan,
    rng: AtomicU64,
}

impl Faulty {
    fn roll(&self) -> oprc_store::Result<()> {
        if Instant::now() >= self.plan.until {
            return Ok(());
        }
        let x = self
            .rng
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_mul(0xbf58_476d_1ce4_e5b9);
        if (x >> 32) % 1000 < self.plan.per_mille {
            return Err(oprc_store::Error::new(self.plan.kind, "injected fault"));
        }
        Ok(())
    }
}

#[async_trait]
impl StateStore for Faulty {
    async fn get_object(
        &self,
        cls: &ClassKey,
        oid: &ObjectId,
    ) -> oprc_store::Result<Option<ObjectRecord>> {
        self.roll()?;
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
        self.roll()?;
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
    async fn purge_invocations(&self, now_ms: i64, max: usize) -> oprc_store::Result<u64> {
        self.inner.purge_invocations(now_ms, max).await
    }
    async fn layout(&self, proposed: &Layout) -> oprc_store::Result<Layout> {
        self.inner.layout(proposed).await
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
