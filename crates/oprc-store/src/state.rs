use async_trait::async_trait;
use oprc_core::{ClassKey, InvocationId, InvocationRecord, ObjectId, ObjectRecord};

use crate::Result;

/// One write of a [`WriteBatch`].
#[derive(Debug, Clone)]
pub enum Write {
    /// Stores an object. `expected_revision: None` creates it (it must not
    /// exist); `Some(r)` replaces it only if its stored revision is `r`.
    PutObject {
        record: ObjectRecord,
        expected_revision: Option<u64>,
    },
    /// Deletes an object if its stored revision is `expected_revision`.
    DeleteObject {
        cls: ClassKey,
        oid: ObjectId,
        expected_revision: u64,
    },
    /// Stores an invocation record. A terminal record is never replaced by a
    /// non-terminal one (a late `QUEUE` write cannot hide a result). The
    /// request's idempotency key, if any, is indexed to this invocation
    /// unless it already points to another one (the first one wins).
    PutInvocation(Box<InvocationRecord>),
}

/// How durable a batch must be before its commit returns. Atomicity is the
/// same for all three.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Durability {
    /// May be acknowledged before it is durable (write-behind, a class's
    /// `persistence: async`); it becomes durable with the backend's next
    /// flush.
    Deferred,
    /// As the backend is configured: durable before the answer, unless the
    /// backend itself runs write-behind.
    #[default]
    Default,
    /// Durable before the answer whatever the backend's mode: the batch
    /// keeps a promise of exactly-once (an async call's effect, a
    /// remembered idempotency key).
    Required,
}

impl Durability {
    /// The durability a merged batch needs: the strongest of its parts.
    pub fn max(self, other: Self) -> Self {
        Ord::max(self, other)
    }
}

/// The ownership a batch is committed under (ADR 13): the partition whose
/// owner ordered it, and the epoch of that ownership. The store writes the
/// batch only if the partition's epoch is still this one, checked in the
/// commit itself; otherwise the batch writes nothing and fails with
/// [`crate::ErrorKind::Fenced`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub partition: u16,
    pub epoch: u64,
}

/// Writes that commit together or not at all.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub writes: Vec<Write>,
    /// How durable the commit must be before it returns.
    pub durability: Durability,
    /// `None`: a single node's batch, unfenced. A store without partition
    /// ownership refuses a fenced batch.
    pub fence: Option<Fence>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// A batch of these writes, as durable as the backend is configured.
    pub fn of(writes: Vec<Write>) -> Self {
        Self {
            writes,
            durability: Durability::Default,
            fence: None,
        }
    }

    pub fn push(&mut self, write: Write) -> &mut Self {
        self.writes.push(write);
        self
    }
}

/// A page of objects of one class, ordered by id.
#[derive(Debug, Clone, Default)]
pub struct ObjectPage {
    pub objects: Vec<ObjectRecord>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<ObjectId>,
}

/// Settings that decide where data lives. The first node to open a store
/// records them with the data; a node started later with other settings
/// must refuse to use it (objects would be looked for in the wrong
/// partition, replays skipped by the wrong offsets, and files looked for in
/// the wrong blob store).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layout {
    /// Partitions of the object space and of the async log.
    pub partitions: u16,
    /// The identity of the blob store that holds the objects' files (the
    /// versions `verIds` name), e.g. `dir:files` or
    /// `s3://BUCKET?endpoint=URL`; compared as text. `None`: not recorded
    /// (a layout stored by an older version, or a node that has not opened
    /// its blob store yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobs: Option<String>,
    /// The identity of the invocation log whose offsets the objects'
    /// `lastOffset` count (e.g. `embedded:UUID` or
    /// `nats:STREAM@CREATED`): with another log, or a recreated one whose
    /// offsets restarted, replays would skip calls. `None`: not recorded
    /// (a layout stored by an older version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

impl Layout {
    /// This (stored) layout with the settings it has not recorded taken
    /// from `proposed`, when it agrees with `proposed` on every setting it
    /// has; `None` when nothing is to be adopted (nothing missing, or a
    /// conflict, which the caller reports: a refused proposal changes
    /// nothing).
    pub fn adopt(&self, proposed: &Layout) -> Option<Layout> {
        /// Whether `stored` may take `proposed`'s value, and whether it
        /// lacks one it would take.
        fn field(stored: &Option<String>, proposed: &Option<String>) -> (bool, bool) {
            match (stored, proposed) {
                (Some(s), Some(p)) => (s == p, false),
                (None, Some(_)) => (true, true),
                (_, None) => (true, false),
            }
        }
        let (blobs_agree, blobs_missing) = field(&self.blobs, &proposed.blobs);
        let (log_agrees, log_missing) = field(&self.log, &proposed.log);
        let agrees = self.partitions == proposed.partitions && blobs_agree && log_agrees;
        (agrees && (blobs_missing || log_missing)).then(|| Layout {
            partitions: self.partitions,
            blobs: self.blobs.clone().or_else(|| proposed.blobs.clone()),
            log: self.log.clone().or_else(|| proposed.log.clone()),
        })
    }
}

/// Durable store of objects, packages and invocation records.
///
/// `commit` is atomic per batch, and when it returns `Ok` the batch is as
/// durable as its [`Durability`] asks. Backends group concurrent commits
/// into one physical write (group commit); a batch that fails (its
/// precondition: [`ErrorKind::Conflict`](crate::ErrorKind); a corrupt record
/// in its way: `Internal`) leaves none of its writes and does not affect the
/// others.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    async fn get_object(&self, cls: &ClassKey, oid: &ObjectId) -> Result<Option<ObjectRecord>>;

    /// Objects of `cls` with ids greater than `after`, at most `limit`.
    async fn list_objects(
        &self,
        cls: &ClassKey,
        after: Option<&ObjectId>,
        limit: usize,
    ) -> Result<ObjectPage>;

    async fn commit(&self, batch: WriteBatch) -> Result<()>;

    async fn get_invocation(&self, id: &InvocationId) -> Result<Option<InvocationRecord>>;

    /// The invocation an idempotency key was first used for.
    async fn find_idempotency_key(&self, key: &str) -> Result<Option<InvocationId>>;

    /// Deletes at most `max` invocation records (and their idempotency
    /// keys) that expired before `now_ms`, oldest first, in one bounded
    /// write. Returns how many were deleted; fewer than `max` means none
    /// is left. Callers loop to purge more.
    async fn purge_invocations(&self, now_ms: i64, max: usize) -> Result<u64>;

    /// The layout stored with the data: `proposed` is stored and returned
    /// when the store has none yet (a fresh store); a stored layout that
    /// lacks a setting `proposed` has and agrees with it otherwise gets
    /// that setting, stored ([`Layout::adopt`]); otherwise the stored one
    /// is returned unchanged, and the caller compares.
    async fn layout(&self, proposed: &Layout) -> Result<Layout>;

    /// Stores a package's source text under its name (create or replace).
    async fn put_package(&self, name: &str, source: &str) -> Result<()>;

    /// Returns whether the package existed.
    async fn delete_package(&self, name: &str) -> Result<bool>;

    /// All packages as `(name, source)`, ordered by name.
    async fn list_packages(&self) -> Result<Vec<(String, String)>>;

    /// The packages' change counter of a store that several nodes share:
    /// it changes, atomically with the change, whenever any node puts or
    /// deletes a package, so a node polling it sees another's package
    /// (the change feed). `None`: only one node opens this store (the
    /// embedded one), so packages change only through that node.
    async fn packages_version(&self) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// A shared store is a store (wrappers such as fault injection take one).
#[async_trait]
impl<S: StateStore + ?Sized> StateStore for std::sync::Arc<S> {
    async fn get_object(&self, cls: &ClassKey, oid: &ObjectId) -> Result<Option<ObjectRecord>> {
        (**self).get_object(cls, oid).await
    }

    async fn list_objects(
        &self,
        cls: &ClassKey,
        after: Option<&ObjectId>,
        limit: usize,
    ) -> Result<ObjectPage> {
        (**self).list_objects(cls, after, limit).await
    }

    async fn commit(&self, batch: WriteBatch) -> Result<()> {
        (**self).commit(batch).await
    }

    async fn get_invocation(&self, id: &InvocationId) -> Result<Option<InvocationRecord>> {
        (**self).get_invocation(id).await
    }

    async fn find_idempotency_key(&self, key: &str) -> Result<Option<InvocationId>> {
        (**self).find_idempotency_key(key).await
    }

    async fn purge_invocations(&self, now_ms: i64, max: usize) -> Result<u64> {
        (**self).purge_invocations(now_ms, max).await
    }

    async fn layout(&self, proposed: &Layout) -> Result<Layout> {
        (**self).layout(proposed).await
    }

    async fn put_package(&self, name: &str, source: &str) -> Result<()> {
        (**self).put_package(name, source).await
    }

    async fn delete_package(&self, name: &str) -> Result<bool> {
        (**self).delete_package(name).await
    }

    async fn list_packages(&self) -> Result<Vec<(String, String)>> {
        (**self).list_packages().await
    }

    async fn packages_version(&self) -> Result<Option<u64>> {
        (**self).packages_version().await
    }
}

#[cfg(test)]
mod tests {
    use super::{Durability, Layout};

    #[test]
    fn layouts_stored_by_older_versions_still_load() {
        let old: Layout = serde_json::from_str(r#"{"partitions": 4}"#).unwrap();
        assert_eq!(
            old,
            Layout {
                partitions: 4,
                blobs: None,
                log: None,
            }
        );
        // And a layout without a blob store is stored the way they did.
        assert_eq!(serde_json::to_string(&old).unwrap(), r#"{"partitions":4}"#);
        let new = Layout {
            blobs: Some("dir:files".into()),
            ..old
        };
        let text = serde_json::to_string(&new).unwrap();
        assert_eq!(text, r#"{"partitions":4,"blobs":"dir:files"}"#);
        assert_eq!(serde_json::from_str::<Layout>(&text).unwrap(), new);
    }

    type Plain<'a> = (u16, Option<&'a str>);

    fn layout((partitions, blobs): Plain<'_>) -> Layout {
        Layout {
            partitions,
            blobs: blobs.map(Into::into),
            log: None,
        }
    }

    fn check(stored: Plain<'_>, proposed: Plain<'_>, adopted: Option<Plain<'_>>) {
        assert_eq!(
            layout(stored).adopt(&layout(proposed)),
            adopted.map(layout),
            "{stored:?} <- {proposed:?}"
        );
    }

    #[test]
    fn only_missing_settings_are_adopted_and_only_when_the_rest_agrees() {
        check(
            (4, None),
            (4, Some("dir:files")),
            Some((4, Some("dir:files"))),
        );
        check((4, None), (8, Some("dir:files")), None);
        check((4, None), (4, None), None);
        check((4, Some("dir:files")), (4, Some("dir:files")), None);
        check((4, Some("dir:files")), (4, Some("s3://files")), None);
        check((4, Some("dir:files")), (4, None), None);
    }

    #[test]
    fn a_log_identity_is_adopted_once_and_then_compared() {
        let with = |blobs: Option<&str>, log: Option<&str>| Layout {
            partitions: 4,
            blobs: blobs.map(Into::into),
            log: log.map(Into::into),
        };
        let full = with(Some("dir:files"), Some("embedded:a"));
        // An older layout takes the log (and the blobs) it lacks.
        assert_eq!(with(None, None).adopt(&full), Some(full.clone()));
        assert_eq!(
            with(Some("dir:files"), None).adopt(&full),
            Some(full.clone())
        );
        // A recorded log is never replaced, even when the rest is missing.
        assert_eq!(with(None, Some("embedded:b")).adopt(&full), None);
        assert_eq!(full.adopt(&with(Some("dir:files"), Some("nats:S@1"))), None);
        assert_eq!(full.adopt(&full), None);
    }

    #[test]
    fn a_merged_batch_is_as_durable_as_its_strongest_part() {
        let (deferred, default, required) = (
            Durability::Deferred,
            Durability::Default,
            Durability::Required,
        );
        assert_eq!(deferred.max(default), default);
        assert_eq!(required.max(deferred), required);
        assert_eq!(deferred.max(deferred), deferred);
        assert_eq!(Durability::default(), default);
    }
}
