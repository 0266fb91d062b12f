//! The conformance suite: every backend calls these from its own tests with
//! a fresh, empty store. A backend that passes behaves the same as every
//! other one as far as the platform can tell.

use std::collections::BTreeMap;
use std::sync::Arc;

use oprc_core::{
    ClassKey, InvocationId, InvocationRecord, InvocationRequest, InvocationResponse,
    InvocationStatus, ObjectId, ObjectRecord,
};

use crate::{Durability, ErrorKind, Layout, StateStore, Write, WriteBatch};

mod log;

pub use log::invocation_log;

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
            caller: Default::default(),
            chain: None,
            macro_revision: None,
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
    purge_is_bounded_and_oldest_first(store.as_ref()).await;
    every_durability_commits_atomically(store.as_ref()).await;
    layout_is_stored_once(store.as_ref()).await;
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
    assert_eq!(s.purge_invocations(2_000, 100).await.unwrap(), 1);
    assert!(s.get_invocation(&id).await.unwrap().is_none());
    assert_eq!(s.find_idempotency_key("k1").await.unwrap(), None);
    assert!(
        s.get_invocation(&InvocationId::new("inv-2").unwrap())
            .await
            .unwrap()
            .is_some()
    );
}

async fn purge_is_bounded_and_oldest_first(s: &dyn StateStore) {
    // Clear what earlier checks left: loop until a purge finds fewer than
    // it may delete.
    while s.purge_invocations(100_000, 10).await.unwrap() == 10 {}
    assert_eq!(s.purge_invocations(100_000, 10).await.unwrap(), 0);

    // 25 expired records (written newest first) and 3 that are not.
    let id = |i: i64| format!("inv-purge-{i:02}");
    for i in (0..25).rev() {
        let key = format!("purge-key-{i}");
        put_record(
            s,
            invocation(&id(i), InvocationStatus::Succeeded, Some(&key), 200_000 + i),
        )
        .await;
    }
    for i in 0..3 {
        put_record(
            s,
            invocation(
                &format!("inv-kept-{i}"),
                InvocationStatus::Succeeded,
                None,
                900_000,
            ),
        )
        .await;
    }
    let exists = |i: i64| async move {
        s.get_invocation(&InvocationId::new(id(i)).unwrap())
            .await
            .unwrap()
            .is_some()
    };
    assert_eq!(s.purge_invocations(300_000, 0).await.unwrap(), 0);
    assert!(exists(0).await);

    // Oldest first, at most `max` per call.
    assert_eq!(s.purge_invocations(300_000, 10).await.unwrap(), 10);
    assert!(!exists(9).await, "the 10 oldest are gone");
    assert!(exists(10).await, "the 11th is kept for the next round");
    let mut rounds = vec![10];
    loop {
        let n = s.purge_invocations(300_000, 10).await.unwrap();
        rounds.push(n);
        if n < 10 {
            break;
        }
    }
    assert_eq!(rounds, vec![10, 10, 5]);
    for i in 0..25 {
        assert!(!exists(i).await, "{} survived", id(i));
        let key = format!("purge-key-{i}");
        assert_eq!(s.find_idempotency_key(&key).await.unwrap(), None);
    }
    for i in 0..3 {
        let kept = InvocationId::new(format!("inv-kept-{i}")).unwrap();
        assert!(s.get_invocation(&kept).await.unwrap().is_some());
    }
    assert_eq!(s.purge_invocations(300_000, 10).await.unwrap(), 0);
}

async fn every_durability_commits_atomically(s: &dyn StateStore) {
    let c = cls("t.durability");
    for durability in [
        Durability::Deferred,
        Durability::Default,
        Durability::Required,
    ] {
        let name = format!("{durability:?}").to_lowercase();
        let inv = format!("inv-{name}");
        let batch = WriteBatch {
            writes: vec![
                Write::PutObject {
                    record: object("t.durability", &name, 1, serde_json::json!(1)),
                    expected_revision: None,
                },
                Write::PutInvocation(Box::new(invocation(
                    &inv,
                    InvocationStatus::Succeeded,
                    Some(&inv),
                    i64::MAX,
                ))),
            ],
            durability,
            fence: None,
        };
        s.commit(batch).await.unwrap();
        // Visible as soon as the commit returns, whatever its durability.
        assert!(s.get_object(&c, &oid(&name)).await.unwrap().is_some());
        let id = InvocationId::new(inv.as_str()).unwrap();
        assert!(s.get_invocation(&id).await.unwrap().is_some());
        assert_eq!(s.find_idempotency_key(&inv).await.unwrap(), Some(id));

        // And atomic: a failed precondition leaves nothing of the batch.
        let extra = format!("{name}-extra");
        let bad = WriteBatch {
            writes: vec![
                Write::PutObject {
                    record: object("t.durability", &extra, 1, serde_json::json!(2)),
                    expected_revision: None,
                },
                Write::PutObject {
                    record: object("t.durability", &name, 8, serde_json::json!(2)),
                    expected_revision: Some(7),
                },
            ],
            durability,
            fence: None,
        };
        assert_eq!(s.commit(bad).await.unwrap_err().kind, ErrorKind::Conflict);
        assert!(s.get_object(&c, &oid(&extra)).await.unwrap().is_none());
    }
}

async fn layout_is_stored_once(s: &dyn StateStore) {
    let layout = |partitions, blobs: Option<&str>| Layout {
        partitions,
        blobs: blobs.map(Into::into),
        log: None,
    };
    // A fresh store takes the proposed layout; one without a blob store is
    // what older versions stored.
    let old = layout(4, None);
    assert_eq!(s.layout(&old).await.unwrap(), old);
    // A proposal that conflicts adopts nothing, even what is missing.
    assert_eq!(s.layout(&layout(8, Some("dir:files"))).await.unwrap(), old);
    // One that agrees fills the missing blob store in, once.
    let full = layout(4, Some("dir:files"));
    assert_eq!(s.layout(&full).await.unwrap(), full);
    // Later callers get the stored one back, unchanged, and compare.
    let other = layout(4, Some("s3://files?endpoint=http://127.0.0.1:9000"));
    assert_eq!(s.layout(&other).await.unwrap(), full);
    assert_eq!(s.layout(&layout(8, None)).await.unwrap(), full);
    assert_eq!(s.layout(&old).await.unwrap(), full);
    assert_eq!(s.layout(&full).await.unwrap(), full);
    // The log identity is adopted once, then never replaced.
    let with_log = Layout {
        log: Some("embedded:one".into()),
        ..full.clone()
    };
    assert_eq!(s.layout(&with_log).await.unwrap(), with_log);
    let other_log = Layout {
        log: Some("nats:S@2".into()),
        ..full.clone()
    };
    assert_eq!(s.layout(&other_log).await.unwrap(), with_log);
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
    // A shared store's change counter moves with every change, and only
    // then; a store of one node has none.
    if let Some(before) = s.packages_version().await.unwrap() {
        assert_eq!(s.packages_version().await.unwrap(), Some(before));
        s.put_package("c", "name: c").await.unwrap();
        let after_put = s.packages_version().await.unwrap().unwrap();
        assert_ne!(after_put, before);
        s.delete_package("c").await.unwrap();
        assert_ne!(s.packages_version().await.unwrap().unwrap(), after_put);
    }
}
