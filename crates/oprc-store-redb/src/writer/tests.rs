//! Groups built by hand, so that the ops certainly share one transaction.

use std::collections::BTreeMap;

use oprc_core::{
    ClassKey, InvocationId, InvocationRecord, InvocationRequest, InvocationResponse,
    InvocationStatus, ObjectId, ObjectRecord,
};
use oprc_store::Write;

use super::*;
use crate::apply::DEDUP_EXPIRY_CHUNK;
use crate::db::{DEDUP, DEDUP_BY_TS, INVOCATIONS, OBJECTS, PACKAGES, create_tables, object_key};

fn writer(dir: &tempfile::TempDir) -> Writer {
    let db = Arc::new(Database::create(dir.path().join("w.redb")).unwrap());
    create_tables(&db).unwrap();
    let (_, rx) = mpsc::channel(1);
    Writer {
        db,
        rx,
        max_batch: 64,
        sync: true,
        dedup_window_ms: 1000,
        on_append: Arc::new(|_, _| {}),
        dirty: Arc::default(),
        stats: Arc::default(),
    }
}

fn create(o: &str) -> Write {
    let cls = ClassKey::new("t.c").unwrap();
    let mut record = ObjectRecord::new(cls, ObjectId::new(o).unwrap(), serde_json::json!(o));
    record.meta.revision = 1;
    Write::PutObject {
        record,
        expected_revision: None,
    }
}

fn queued(id: &str) -> Write {
    let inv_id = InvocationId::new(id).unwrap();
    Write::PutInvocation(Box::new(InvocationRecord {
        request: InvocationRequest {
            inv_id: inv_id.clone(),
            cls: ClassKey::new("t.c").unwrap(),
            oid: None,
            fb: "f".into(),
            args: BTreeMap::new(),
            body: None,
            idempotency_key: None,
            accepted_at: None,
            traceparent: None,
            caller: Default::default(),
            chain: None,
            macro_revision: None,
        },
        response: InvocationResponse::status(inv_id, InvocationStatus::Queue),
        expires_at: i64::MAX,
    }))
}

fn commit(writes: Vec<Write>) -> (Op, oneshot::Receiver<Result<()>>) {
    let (reply, rx) = Reply::new();
    (Op::Commit(WriteBatch::of(writes), reply), rx)
}

fn object_exists(w: &Writer, o: &str) -> bool {
    let key = object_key(&ClassKey::new("t.c").unwrap(), &ObjectId::new(o).unwrap());
    let txn = w.db.begin_read().unwrap();
    let t = txn.open_table(OBJECTS).unwrap();
    t.get(key.as_str()).unwrap().is_some()
}

#[test]
fn a_batch_failing_after_its_first_write_leaves_nothing_and_the_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let w = writer(&dir);
    let (a, a_rx) = commit(vec![create("a")]);
    let (reply, fail_rx) = Reply::new();
    let fail = Op::FailAfterWrite {
        name: "half".into(),
        reply,
    };
    let (b, b_rx) = commit(vec![create("b")]);
    let mut ops = vec![a, fail, b];
    w.apply_group(&mut ops);
    assert!(ops.is_empty());
    a_rx.blocking_recv().unwrap().unwrap();
    b_rx.blocking_recv().unwrap().unwrap();
    let err = fail_rx.blocking_recv().unwrap().unwrap_err();
    assert!(err.message.contains("injected"), "{err}");
    assert!(object_exists(&w, "a") && object_exists(&w, "b"));
    let txn = w.db.begin_read().unwrap();
    let packages = txn.open_table(PACKAGES).unwrap();
    assert!(
        packages.get("half").unwrap().is_none(),
        "its write was undone"
    );
    // One transaction committed, for the two batches that succeeded.
    assert_eq!(w.stats.commits.load(Ordering::Relaxed), 1);
    assert_eq!(w.stats.requests.load(Ordering::Relaxed), 2);
}

#[test]
fn a_batch_replacing_a_corrupt_record_fails_alone_within_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let w = writer(&dir);
    {
        let txn = w.db.begin_write().unwrap();
        let mut t = txn.open_table(INVOCATIONS).unwrap();
        t.insert("inv-bad", b"\x00not json".as_slice()).unwrap();
        drop(t);
        txn.commit().unwrap();
    }
    let (x, x_rx) = commit(vec![create("x")]);
    // Its object comes first, the corrupt record second.
    let (y, y_rx) = commit(vec![create("y"), queued("inv-bad")]);
    let (z, z_rx) = commit(vec![create("z"), queued("inv-ok")]);
    let mut ops = vec![x, y, z];
    w.apply_group(&mut ops);
    x_rx.blocking_recv().unwrap().unwrap();
    z_rx.blocking_recv().unwrap().unwrap();
    let err = y_rx.blocking_recv().unwrap().unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(
        err.message.contains("corrupt record") && err.message.contains("inv-bad"),
        "{err}"
    );
    assert!(object_exists(&w, "x") && object_exists(&w, "z"));
    assert!(!object_exists(&w, "y"), "the failed batch left its object");
    assert_eq!(w.stats.commits.load(Ordering::Relaxed), 1);
}

#[test]
fn durability_decides_whether_the_group_is_synced() {
    let batch = |durability| {
        let (reply, _) = Reply::new();
        Op::Commit(
            WriteBatch {
                writes: vec![],
                durability,
                fence: None,
            },
            reply,
        )
    };
    for (sync, durability, expected) in [
        (true, Durability::Deferred, false),
        (true, Durability::Default, true),
        (true, Durability::Required, true),
        (false, Durability::Deferred, false),
        (false, Durability::Default, false),
        (false, Durability::Required, true),
    ] {
        assert_eq!(
            batch(durability).needs_sync(sync),
            expected,
            "{durability:?} with sync={sync}"
        );
    }
    let (reply, _) = Reply::new();
    let append = Op::Append {
        partition: PartitionId(0),
        dedup_id: "d".into(),
        payload: Bytes::new(),
        now_ms: 0,
        reply,
    };
    assert!(append.needs_sync(false), "a 202 promises a durable enqueue");
}

#[test]
fn dedup_ids_are_forgotten_in_bounded_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let w = writer(&dir);
    let backlog = DEDUP_EXPIRY_CHUNK + DEDUP_EXPIRY_CHUNK / 2;
    let mut ops: Vec<Op> = (0..backlog)
        .map(|i| Op::Append {
            partition: PartitionId(0),
            dedup_id: format!("d{i}"),
            payload: Bytes::from_static(b"x"),
            now_ms: 0,
            reply: Reply::new().0,
        })
        .collect();
    w.apply_group(&mut ops);
    let remembered = || {
        use redb::ReadableTableMetadata;
        let txn = w.db.begin_read().unwrap();
        let ids = txn.open_table(DEDUP).unwrap().len().unwrap();
        let index = txn.open_table(DEDUP_BY_TS).unwrap().len().unwrap();
        assert_eq!(ids, index);
        ids as usize
    };
    assert_eq!(remembered(), backlog);
    // Every id is past the window: each position commit forgets one chunk.
    let position = |offset| {
        let (reply, rx) = Reply::new();
        let op = Op::CommitPosition {
            partition: PartitionId(0),
            offset,
            now_ms: 1_000_000,
            reply,
        };
        w.apply_group(&mut vec![op]);
        rx.blocking_recv().unwrap().unwrap();
    };
    position(1);
    assert_eq!(remembered(), backlog - DEDUP_EXPIRY_CHUNK);
    position(2);
    assert_eq!(remembered(), 0);
}
