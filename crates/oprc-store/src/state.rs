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

/// Writes that commit together or not at all.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub writes: Vec<Write>,
    /// The commit may be acknowledged before it is durable (write-behind,
    /// a class's `persistence: async`); it becomes durable with the
    /// backend's next flush. Atomicity is unchanged.
    pub write_behind: bool,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// A durable batch of these writes.
    pub fn of(writes: Vec<Write>) -> Self {
        Self {
            writes,
            write_behind: false,
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

/// Durable store of objects, packages and invocation records.
///
/// `commit` is atomic per batch and durable when it returns `Ok` (unless the
/// backend was opened with write-behind). Backends group concurrent commits
/// into one physical write (group commit); a batch whose precondition fails
/// gets [`ErrorKind::Conflict`](crate::ErrorKind) without affecting the
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

    /// Deletes invocation records (and their idempotency keys) that expired
    /// before `now_ms`. Returns how many were deleted.
    async fn purge_invocations(&self, now_ms: i64) -> Result<u64>;

    /// Stores a package's source text under its name (create or replace).
    async fn put_package(&self, name: &str, source: &str) -> Result<()>;

    /// Returns whether the package existed.
    async fn delete_package(&self, name: &str) -> Result<bool>;

    /// All packages as `(name, source)`, ordered by name.
    async fn list_packages(&self) -> Result<Vec<(String, String)>>;
}
