//! The conformance suite, with sync commits and in write-behind mode.

use std::sync::Arc;

use oprc_store_redb::Store;

use crate::{open, write_behind};

#[tokio::test]
async fn state_store_conformance() {
    let dir = tempfile::tempdir().unwrap();
    oprc_store::conformance::state_store(Arc::new(open(&dir))).await;
}

#[tokio::test]
async fn invocation_log_conformance() {
    let dir = tempfile::tempdir().unwrap();
    oprc_store::conformance::invocation_log(Arc::new(open(&dir))).await;
}

#[tokio::test]
async fn write_behind_state_store_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = write_behind(dir.path().join("wb.redb"));
    // Short, so the flusher also runs between the checks.
    options.flush_interval = std::time::Duration::from_millis(10);
    let store = Store::open(options).unwrap();
    oprc_store::conformance::state_store(Arc::new(store)).await;
}

#[tokio::test]
async fn write_behind_invocation_log_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(write_behind(dir.path().join("wb.redb"))).unwrap();
    oprc_store::conformance::invocation_log(Arc::new(store)).await;
}
