//! Really corrupt records, written into the database file with redb while
//! the store is closed: a batch that trips on one fails alone (G2), and
//! every path that meets one says which record it is.

use std::path::Path;

use oprc_core::{
    ClassKey, InvocationId, InvocationRecord, InvocationRequest, InvocationResponse,
    InvocationStatus, ObjectId,
};
use oprc_store::{ErrorKind, StateStore, Write, WriteBatch};
use redb::TableDefinition;

use crate::{close, create, open};

const INVOCATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("invocations");
const INV_EXPIRY: TableDefinition<(i64, &str), ()> = TableDefinition::new("inv_expiry");
const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const GARBAGE: &[u8] = b"\x00\xffnot a record";

/// Opens the store's file with redb itself and lets `corrupt` write to it.
fn corrupt_file(path: &Path, corrupt: impl FnOnce(&redb::WriteTransaction)) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    corrupt(&txn);
    txn.commit().unwrap();
}

fn record(id: &str, status: InvocationStatus, expires_at: i64) -> Write {
    let inv_id = InvocationId::new(id).unwrap();
    let mut request = InvocationRequest::new(ClassKey::new("t.c").unwrap(), None, "f");
    request.inv_id = inv_id.clone();
    Write::PutInvocation(Box::new(InvocationRecord {
        request,
        response: InvocationResponse::status(inv_id, status),
        expires_at,
    }))
}

fn is_corrupt(e: &oprc_store::Error, key: &str) -> bool {
    e.kind == ErrorKind::Internal
        && e.message.contains("corrupt record")
        && e.message.contains(&format!("{key:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_tripping_on_a_corrupt_record_leaves_nothing_while_others_commit() {
    let dir = tempfile::tempdir().unwrap();
    close(open(&dir)).await;
    corrupt_file(&dir.path().join("oprc.redb"), |txn| {
        let mut t = txn.open_table(INVOCATIONS).unwrap();
        t.insert("inv-bad", GARBAGE).unwrap();
    });
    let store = open(&dir);

    // Concurrent batches, so that the bad one shares its group (one
    // transaction) with others; its object comes before the record that
    // fails it.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.spawn(async move {
            let batch = if i == 32 {
                vec![
                    create("t.c", "half"),
                    record("inv-bad", InvocationStatus::Doing, i64::MAX),
                ]
            } else {
                vec![create("t.c", &format!("o{i}"))]
            };
            (i, store.commit(WriteBatch::of(batch)).await)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            (32, r) => {
                let e = r.unwrap_err();
                assert!(is_corrupt(&e, "inv-bad"), "{e}");
            }
            (i, r) => r.unwrap_or_else(|e| panic!("batch {i}: {e}")),
        }
    }
    let cls = ClassKey::new("t.c").unwrap();
    let exists = |o: String| {
        let (store, cls) = (&store, &cls);
        async move {
            let oid = ObjectId::new(o).unwrap();
            store.get_object(cls, &oid).await.unwrap().is_some()
        }
    };
    assert!(
        !exists("half".into()).await,
        "the failed batch left a write"
    );
    for i in (0..64).filter(|i| *i != 32) {
        assert!(exists(format!("o{i}")).await, "o{i} lost");
    }

    // Reading it says which record is corrupt.
    let id = InvocationId::new("inv-bad").unwrap();
    let e = store.get_invocation(&id).await.unwrap_err();
    assert!(is_corrupt(&e, "inv-bad"), "{e}");

    // A terminal record replaces it: a caller can settle the invocation.
    let settle = record("inv-bad", InvocationStatus::Failed, i64::MAX);
    store.commit(WriteBatch::of(vec![settle])).await.unwrap();
    let got = store.get_invocation(&id).await.unwrap().unwrap();
    assert_eq!(got.response.status, InvocationStatus::Failed);
}

#[tokio::test]
async fn corrupt_objects_are_reported_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let batch = WriteBatch::of(vec![create("t.c", "a"), create("t.c", "b")]);
    store.commit(batch).await.unwrap();
    close(store).await;
    corrupt_file(&dir.path().join("oprc.redb"), |txn| {
        let mut t = txn.open_table(OBJECTS).unwrap();
        t.insert("t.c\0b", GARBAGE).unwrap();
    });
    let store = open(&dir);
    let cls = ClassKey::new("t.c").unwrap();
    let b = ObjectId::new("b").unwrap();
    let e = store.get_object(&cls, &b).await.unwrap_err();
    assert!(is_corrupt(&e, "t.c\0b"), "{e}");
    let e = store.list_objects(&cls, None, 10).await.unwrap_err();
    assert!(is_corrupt(&e, "t.c\0b"), "{e}");
    // A write whose revision check meets it fails, and writes nothing.
    let batch = WriteBatch::of(vec![
        create("t.c", "c"),
        Write::DeleteObject {
            cls: cls.clone(),
            oid: b,
            expected_revision: 1,
        },
    ]);
    let e = store.commit(batch).await.unwrap_err();
    assert!(is_corrupt(&e, "t.c\0b"), "{e}");
    let c = ObjectId::new("c").unwrap();
    assert!(store.get_object(&cls, &c).await.unwrap().is_none());
}

#[tokio::test]
async fn the_purge_deletes_an_expired_corrupt_record_instead_of_stalling() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let batch = WriteBatch::of(vec![
        record("inv-old", InvocationStatus::Succeeded, 20),
        record("inv-new", InvocationStatus::Succeeded, 5_000),
    ]);
    store.commit(batch).await.unwrap();
    close(store).await;
    corrupt_file(&dir.path().join("oprc.redb"), |txn| {
        let mut t = txn.open_table(INVOCATIONS).unwrap();
        t.insert("inv-rot", GARBAGE).unwrap();
        t.insert("inv-fixed", GARBAGE).unwrap();
        let mut expiry = txn.open_table(INV_EXPIRY).unwrap();
        expiry.insert((10, "inv-rot"), ()).unwrap();
        expiry.insert((15, "inv-fixed"), ()).unwrap();
    });
    let store = open(&dir);
    // A terminal record replaces a corrupt one; the old expiry entry it
    // could not read stays behind, and must not purge the new record.
    let fixed = record("inv-fixed", InvocationStatus::Succeeded, 5_000);
    store.commit(WriteBatch::of(vec![fixed])).await.unwrap();

    // Oldest first: the corrupt one goes.
    assert_eq!(store.purge_invocations(1_000, 1).await.unwrap(), 1);
    let exists = |id: &'static str| {
        let store = &store;
        async move {
            let id = InvocationId::new(id).unwrap();
            store.get_invocation(&id).await.unwrap().is_some()
        }
    };
    assert!(!exists("inv-rot").await);
    // Then the stale entry of inv-fixed, and inv-old.
    assert_eq!(store.purge_invocations(1_000, 10).await.unwrap(), 2);
    assert!(exists("inv-fixed").await, "purged by a stale expiry entry");
    assert!(!exists("inv-old").await);
    assert!(exists("inv-new").await);
    assert_eq!(store.purge_invocations(1_000, 10).await.unwrap(), 0);
}
