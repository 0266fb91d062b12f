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
use oprc_core::{ClassKey, ObjectId, ObjectRecord};
use oprc_store::intercept::{Intercept, Intercepted};
use oprc_store::{ErrorKind, StateStore, WriteBatch};

pub(crate) const VAR: &str = "OPRC_FAULT_INJECTION";

struct Plan {
    kind: ErrorKind,
    per_mille: u64,
    until: Instant,
}

/// `store`, failing as the variable says when it is set.
pub(crate) fn wrap<S: StateStore>(store: S) -> anyhow::Result<Arc<dyn StateStore>> {
    let Ok(spec) = std::env::var(VAR) else {
        return Ok(Arc::new(store));
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
    Ok(Arc::new(Intercepted {
        inner: store,
        hooks: Faulty {
            plan: Plan {
                kind,
                per_mille,
                until: Instant::now() + Duration::from_millis(for_ms),
            },
            rng: AtomicU64::new(0x2545_f491_4f6c_dd1d),
        },
    }))
}

struct Faulty {
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
impl Intercept for Faulty {
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
        self.roll()?;
        inner.commit(batch).await
    }
}
