//! Tests of the embedded store: the conformance suite in both write modes,
//! durability and reopen, batch isolation with really corrupt records, and
//! crashes of a real process.

mod conformance;
#[cfg(unix)]
mod crash;
mod durability;
mod isolation;

use oprc_core::{ClassKey, ObjectId, ObjectRecord};
use oprc_store::Write;
use oprc_store_redb::{Options, Store};

fn open(dir: &tempfile::TempDir) -> Store {
    open_with(Options::new(dir.path().join("oprc.redb")))
}

fn open_with(options: Options) -> Store {
    Store::open(options).unwrap()
}

/// Write-behind, with a flush interval no test waits for.
fn write_behind(path: impl Into<std::path::PathBuf>) -> Options {
    let mut options = Options::new(path);
    options.sync = false;
    options.flush_interval = std::time::Duration::from_secs(3600);
    options
}

/// Drops `store` and waits until its database file is closed.
async fn close(store: Store) {
    let closed = store.closed();
    drop(store);
    closed.await;
}

fn create(cls: &str, oid: &str) -> Write {
    let mut record = ObjectRecord::new(
        ClassKey::new(cls).unwrap(),
        ObjectId::new(oid).unwrap(),
        serde_json::json!({"id": oid}),
    );
    record.meta.revision = 1;
    Write::PutObject {
        record,
        expected_revision: None,
    }
}
