//! What the PostgreSQL store's test files share: a fresh database per test
//! (`oprc-testenv`), and the writes and reads they make of class `t.pg`.
#![allow(dead_code)] // Each test file uses its own part.

use oprc_core::{
    ClassKey, InvocationId, InvocationRecord, InvocationRequest, InvocationResponse,
    InvocationStatus, ObjectId, ObjectRecord,
};
use oprc_store::{StateStore, Write};
use oprc_store_pg::{Options, PgStore};

/// A fresh database for `test`, dropped afterwards.
pub async fn with_db<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    oprc_testenv::with_fresh_database("oprc_test", test).await;
}

pub async fn connect(url: &str, options: Options) -> PgStore {
    PgStore::connect(url, options).await.unwrap()
}

pub fn cls() -> ClassKey {
    ClassKey::new("t.pg").unwrap()
}

/// Object `oid` at `revision`; `expected` `None` creates it.
pub fn put(oid: &str, revision: u64, expected: Option<u64>) -> Write {
    let mut record = ObjectRecord::new(
        cls(),
        ObjectId::new(oid).unwrap(),
        serde_json::json!({"oid": oid, "revision": revision}),
    );
    record.meta.revision = revision;
    Write::PutObject {
        record,
        expected_revision: expected,
    }
}

/// A succeeded invocation record `id` with idempotency key `key`.
pub fn record(id: &str, key: &str) -> Write {
    let inv_id = InvocationId::new(id).unwrap();
    Write::PutInvocation(Box::new(InvocationRecord {
        request: InvocationRequest {
            inv_id: inv_id.clone(),
            cls: cls(),
            oid: None,
            fb: "f".into(),
            args: Default::default(),
            body: None,
            idempotency_key: Some(key.to_owned()),
            accepted_at: None,
            traceparent: None,
            caller: Default::default(),
            chain: None,
            macro_revision: None,
        },
        response: InvocationResponse::status(inv_id, InvocationStatus::Succeeded),
        expires_at: i64::MAX,
    }))
}

pub async fn revision(store: &PgStore, oid: &str) -> Option<u64> {
    store
        .get_object(&cls(), &ObjectId::new(oid).unwrap())
        .await
        .unwrap()
        .map(|o| o.meta.revision)
}

pub async fn has_record(store: &PgStore, id: &str) -> bool {
    let inv = InvocationId::new(id).unwrap();
    store.get_invocation(&inv).await.unwrap().is_some()
}
