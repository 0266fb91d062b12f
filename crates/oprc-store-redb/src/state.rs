//! [`StateStore`] for [`Store`]: reads on a snapshot off the runtime, writes
//! through the writer thread.

use async_trait::async_trait;
use oprc_core::{ClassKey, InvocationId, InvocationRecord, ObjectId, ObjectRecord};
use oprc_store::{Layout, ObjectPage, Result, StateStore, WriteBatch};
use redb::ReadableTable;

use crate::db::{IDEMPOTENCY, INVOCATIONS, OBJECTS, PACKAGES, Store, object_key};
use crate::error::{decode, storage};
use crate::writer::Op;

#[async_trait]
impl StateStore for Store {
    async fn get_object(&self, cls: &ClassKey, oid: &ObjectId) -> Result<Option<ObjectRecord>> {
        let key = object_key(cls, oid);
        self.snapshot(move |txn| {
            let t = txn.open_table(OBJECTS).map_err(storage)?;
            match t.get(key.as_str()).map_err(storage)? {
                Some(v) => decode("objects", &key, v.value()).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn list_objects(
        &self,
        cls: &ClassKey,
        after: Option<&ObjectId>,
        limit: usize,
    ) -> Result<ObjectPage> {
        let start = match after {
            Some(a) => {
                // The smallest key after `<cls>\0<a>`.
                let mut k = object_key(cls, a);
                k.push('\0');
                k
            }
            None => format!("{cls}\0"),
        };
        let end = format!("{cls}\u{1}");
        self.snapshot(move |txn| {
            let t = txn.open_table(OBJECTS).map_err(storage)?;
            let mut objects = Vec::new();
            let mut more = false;
            for entry in t.range(start.as_str()..end.as_str()).map_err(storage)? {
                let (k, v) = entry.map_err(storage)?;
                if objects.len() == limit {
                    more = true;
                    break;
                }
                objects.push(decode::<ObjectRecord>("objects", k.value(), v.value())?);
            }
            let next = if more {
                objects.last().map(|o| o.meta.id.clone())
            } else {
                None
            };
            Ok(ObjectPage { objects, next })
        })
        .await
    }

    async fn commit(&self, batch: WriteBatch) -> Result<()> {
        if let Some(f) = batch.fence {
            // Ownership lives in a shared database (ADR 13); a fence this
            // store cannot check must not pass as checked.
            return Err(oprc_store::Error::internal(format!(
                "the embedded store keeps no partition ownership and cannot check the fence \
                 of partition {} epoch {}",
                f.partition, f.epoch
            )));
        }
        self.call(|reply| Op::Commit(batch, reply)).await
    }

    async fn get_invocation(&self, id: &InvocationId) -> Result<Option<InvocationRecord>> {
        let id = id.clone();
        self.snapshot(move |txn| {
            let t = txn.open_table(INVOCATIONS).map_err(storage)?;
            match t.get(id.as_str()).map_err(storage)? {
                Some(v) => decode("invocations", id.as_str(), v.value()).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn find_idempotency_key(&self, key: &str) -> Result<Option<InvocationId>> {
        let key = key.to_owned();
        self.snapshot(move |txn| {
            let t = txn.open_table(IDEMPOTENCY).map_err(storage)?;
            match t.get(key.as_str()).map_err(storage)? {
                Some(v) => InvocationId::new(v.value()).map(Some).map_err(|e| {
                    oprc_store::Error::internal(format!(
                        "corrupt record in table idempotency at key {key:?}: {e}"
                    ))
                }),
                None => Ok(None),
            }
        })
        .await
    }

    async fn purge_invocations(&self, now_ms: i64, max: usize) -> Result<u64> {
        self.call(|reply| Op::Purge { now_ms, max, reply }).await
    }

    async fn layout(&self, proposed: &Layout) -> Result<Layout> {
        let proposed = proposed.clone();
        self.call(|reply| Op::Layout { proposed, reply }).await
    }

    async fn put_package(&self, name: &str, source: &str) -> Result<()> {
        let (name, source) = (name.to_owned(), source.to_owned());
        self.call(|reply| Op::PutPackage {
            name,
            source,
            reply,
        })
        .await
    }

    async fn delete_package(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.call(|reply| Op::DeletePackage { name, reply }).await
    }

    async fn list_packages(&self) -> Result<Vec<(String, String)>> {
        self.snapshot(|txn| {
            let t = txn.open_table(PACKAGES).map_err(storage)?;
            let mut out = Vec::new();
            for entry in t.iter().map_err(storage)? {
                let (k, v) = entry.map_err(storage)?;
                out.push((k.value().to_owned(), v.value().to_owned()));
            }
            Ok(out)
        })
        .await
    }
}
