//! The conformance suite: every backend calls these from its own tests with
//! a fresh, empty store. A backend that passes behaves the same as every
//! other one as far as the platform can tell.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use oprc_core::{
    ClassKey, InvocationId, InvocationRecord, InvocationRequest, InvocationResponse,
    InvocationStatus, ObjectId, ObjectRecord, PartitionId,
};

use crate::{ErrorKind, InvocationLog, StateStore, Write, WriteBatch};

fn cls(s: &str) -> ClassKey {
    ClassKey::new(s).expect("valid class key")
}

fn oid(s: &str) -> ObjectId {
    ObjectId::new(s).expect("valid object id")
}

fn object(c: &str, o: &str, revision: u64, data: serde_json::Value) -> ObjectRecord {
    let mut r = ObjectRecord::new(cls(c), oid(o), data);
    r.meta.revision = revision;
    r
}

fn put(record: ObjectRecord, expected_revision: Option<u64>) -> WriteBatch {
    WriteBatch::of(vec![Write::PutObject {
        record,
        expected_revision,
    }])
}

fn invocation(
    id: &str,
    status: InvocationStatus,
    key: Option<&str>,
    expires_at: i64,
) -> InvocationRecord {
    let inv_id = InvocationId::new(id).expect("valid invocation id");
    InvocationRecord {
        request: InvocationRequest {
            inv_id: inv_id.clone(),
            cls: cls("t.c"),
            oid: Some(oid("o")),
            fb: "f".into(),
            args: BTreeMap::new(),
            body: None,
            idempotency_key: key.map(str::to_owned),
            accepted_at: None,
            traceparent: None,
        },
        response: InvocationResponse::status(inv_id, status),
        expires_at,
    }
}

/// Runs every state-store check against an empty store.
pub async fn state_store(store: Arc<dyn StateStore>) {
    create_then_cas(store.as_ref()).await;
    batch_is_atomic(store.as_ref()).await;
    list_pages_in_id_order(store.as_ref()).await;
    concurrent_commits_are_isolated(store.clone()).await;
    invocation_records(store.as_ref()).await;
    packages(store.as_ref()).await;
}

async fn create_then_cas(s: &dyn StateStore) {
    let c = cls("t.cas");
    assert!(s.get_object(&c, &oid("a")).await.unwrap().is_none());
    s.commit(put(
        object("t.cas", "a", 1, serde_json::json!({"n": 1})),
        None,
    ))
    .await
    .unwrap();
    let got = s.get_object(&c, &oid("a")).await.unwrap().unwrap();
    assert_eq!(got.meta.revision, 1);
    assert_eq!(got.data, serde_json::json!({"n": 1}));

    // Creating again is a conflict.
    let err = s
        .commit(put(object("t.cas", "a", 1, serde_json::json!({})), None))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);

    // A stale revision is a conflict and changes nothing.
    let err = s
        .commit(put(
            object("t.cas", "a", 2, serde_json::json!({"n": 9})),
            Some(0),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert_eq!(
        s.get_object(&c, &oid("a")).await.unwrap().unwrap().data,
        serde_json::json!({"n": 1})
    );

    // The right revision wins.
    s.commit(put(
        object("t.cas", "a", 2, serde_json::json!({"n": 2})),
        Some(1),
    ))
    .await
    .unwrap();
    assert_eq!(
        s.get_object(&c, &oid("a"))
            .await
            .unwrap()
            .unwrap()
            .meta
            .revision,
        2
    );

    // Delete needs the current revision too.
    let del = |rev| {
        WriteBatch::of(vec![Write::DeleteObject {
            cls: c.clone(),
            oid: oid("a"),
            expected_revision: rev,
        }])
    };
    assert_eq!(
        s.commit(del(1)).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    s.commit(del(2)).await.unwrap();
    assert!(s.get_object(&c, &oid("a")).await.unwrap().is_none());
    assert_eq!(
        s.commit(del(2)).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
}

async fn batch_is_atomic(s: &dyn StateStore) {
    let c = cls("t.atomic");
    s.commit(put(object("t.atomic", "x", 1, serde_json::json!(1)), None))
        .await
        .unwrap();
    // The second write's precondition fails, so the first must not land.
    let batch = WriteBatch::of(vec![
        Write::PutObject {
            record: object("t.atomic", "y", 1, serde_json::json!(2)),
            expected_revision: None,
        },
        Write::PutObject {
            record: object("t.atomic", "x", 5, serde_json::json!(3)),
            expected_revision: Some(4),
        },
        Write::PutInvocation(Box::new(invocation(
            "inv-atomic",
            InvocationStatus::Succeeded,
            None,
            i64::MAX,
        ))),
    ]);
    assert_eq!(s.commit(batch).await.unwrap_err().kind, ErrorKind::Conflict);
    assert!(s.get_object(&c, &oid("y")).await.unwrap().is_none());
    assert_eq!(
        s.get_object(&c, &oid("x")).await.unwrap().unwrap().data,
        serde_json::json!(1)
    );
    let id = InvocationId::new("inv-atomic").unwrap();
    assert!(s.get_invocation(&id).await.unwrap().is_none());
}

async fn list_pages_in_id_order(s: &dyn StateStore) {
    let c = cls("t.list");
    for i in (0..25).rev() {
        s.commit(put(
            object("t.list", &format!("o{i:03}"), 1, serde_json::json!(i)),
            None,
        ))
        .await
        .unwrap();
    }
    // Another class with a prefix-sharing name must not leak into the list.
    s.commit(put(
        object("t.list2", "o000", 1, serde_json::json!(0)),
        None,
    ))
    .await
    .unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s.list_objects(&c, after.as_ref(), 10).await.unwrap();
        assert!(page.objects.len() <= 10);
        seen.extend(page.objects.iter().map(|o| o.meta.id.to_string()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("o{i:03}")).collect();
    assert_eq!(seen, expected);
    assert!(
        s.list_objects(&cls("t.none"), None, 10)
            .await
            .unwrap()
            .objects
            .is_empty()
    );
}

async fn concurrent_commits_are_isolated(s: Arc<dyn StateStore>) {
    // Many tasks commit at once (the backend may group them); each object's
    // own CAS chain must hold and no write may be lost.
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..16 {
        let s = s.clone();
        tasks.spawn(async move {
            let id = format!("c{t}");
            for rev in 1..=20u64 {
                let expected = if rev == 1 { None } else { Some(rev - 1) };
                s.commit(put(
                    object("t.conc", &id, rev, serde_json::json!(rev)),
                    expected,
                ))
                .await
                .unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    for t in 0..16 {
        let got = s
            .get_object(&cls("t.conc"), &oid(&format!("c{t}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.meta.revision, 20);
        assert_eq!(got.data, serde_json::json!(20));
    }
}

async fn put_record(s: &dyn StateStore, r: InvocationRecord) {
    s.commit(WriteBatch::of(vec![Write::PutInvocation(Box::new(r))]))
        .await
        .unwrap();
}

async fn invocation_records(s: &dyn StateStore) {
    let id = InvocationId::new("inv-1").unwrap();
    put_record(
        s,
        invocation("inv-1", InvocationStatus::Queue, Some("k1"), 1_000),
    )
    .await;
    assert_eq!(
        s.find_idempotency_key("k1").await.unwrap(),
        Some(id.clone())
    );
    put_record(
        s,
        invocation("inv-1", InvocationStatus::Succeeded, Some("k1"), 1_000),
    )
    .await;
    // A late non-terminal write does not hide the result.
    put_record(
        s,
        invocation("inv-1", InvocationStatus::Queue, Some("k1"), 1_000),
    )
    .await;
    let got = s.get_invocation(&id).await.unwrap().unwrap();
    assert_eq!(got.response.status, InvocationStatus::Succeeded);

    // The first invocation keeps the key.
    put_record(
        s,
        invocation("inv-2", InvocationStatus::Queue, Some("k1"), 5_000),
    )
    .await;
    assert_eq!(
        s.find_idempotency_key("k1").await.unwrap(),
        Some(id.clone())
    );

    // Purge removes expired records and their keys only.
    assert_eq!(s.purge_invocations(2_000).await.unwrap(), 1);
    assert!(s.get_invocation(&id).await.unwrap().is_none());
    assert_eq!(s.find_idempotency_key("k1").await.unwrap(), None);
    assert!(
        s.get_invocation(&InvocationId::new("inv-2").unwrap())
            .await
            .unwrap()
            .is_some()
    );
}

async fn packages(s: &dyn StateStore) {
    assert!(s.list_packages().await.unwrap().is_empty());
    s.put_package("b", "name: b").await.unwrap();
    s.put_package("a", "name: a").await.unwrap();
    s.put_package("b", "name: b\n# v2").await.unwrap();
    assert_eq!(
        s.list_packages().await.unwrap(),
        vec![
            ("a".into(), "name: a".into()),
            ("b".into(), "name: b\n# v2".into())
        ]
    );
    assert!(s.delete_package("a").await.unwrap());
    assert!(!s.delete_package("a").await.unwrap());
}

/// Runs every invocation-log check against an empty log.
pub async fn invocation_log(log: Arc<dyn InvocationLog>) {
    let p = PartitionId(0);
    let q = PartitionId(1);
    let a = log
        .append(p, "m1", Bytes::from_static(b"one"))
        .await
        .unwrap();
    assert_eq!((a.offset, a.duplicate), (1, false));
    let b = log
        .append(p, "m2", Bytes::from_static(b"two"))
        .await
        .unwrap();
    assert_eq!(b.offset, 2);
    // Partitions are independent.
    assert_eq!(
        log.append(q, "m3", Bytes::from_static(b"q"))
            .await
            .unwrap()
            .offset,
        1
    );
    // Idempotent producer: the same dedup id appends nothing.
    let dup = log
        .append(p, "m1", Bytes::from_static(b"again"))
        .await
        .unwrap();
    assert_eq!((dup.offset, dup.duplicate), (1, true));
    assert_eq!(
        log.entry(p, 1).await.unwrap().unwrap().payload,
        Bytes::from_static(b"one")
    );

    let got = log.read(p, 1, 10).await.unwrap();
    let offsets: Vec<u64> = got.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, vec![1, 2]);
    assert_eq!(log.read(p, 2, 10).await.unwrap().len(), 1);
    assert_eq!(log.read(p, 1, 1).await.unwrap().len(), 1);

    // read waits for a new entry.
    let reader = {
        let log = log.clone();
        tokio::spawn(async move { log.read(p, 3, 10).await })
    };
    tokio::task::yield_now().await;
    log.append(p, "m4", Bytes::from_static(b"three"))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("read wakes up on append")
        .unwrap()
        .unwrap();
    assert_eq!(got[0].offset, 3);
    assert_eq!(got[0].payload, Bytes::from_static(b"three"));

    assert_eq!(log.committed_position(p).await.unwrap(), 0);
    log.commit_position(p, 2).await.unwrap();
    assert_eq!(log.committed_position(p).await.unwrap(), 2);
    assert_eq!(log.committed_position(q).await.unwrap(), 0);
    // Entries after the committed position are still there.
    assert_eq!(log.read(p, 3, 10).await.unwrap().len(), 1);
}
