//! Crashes of a real process. The test binary runs itself again as a child
//! (`CHILD` in its environment names the database) that opens a
//! write-behind store, writes, prints what it was told is committed, and
//! aborts: no destructor, no flush, no clean close. The parent then reopens
//! the file and checks that every acknowledged promise held.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use bytes::Bytes;
use oprc_core::{ClassKey, ObjectId, PartitionId};
use oprc_store::{Durability, InvocationLog, StateStore, WriteBatch};
use oprc_store_redb::{Options, Store};

use crate::{create, write_behind};

const CHILD: &str = "OPRC_STORE_CRASH_CHILD";
const REPORT: &str = "crash-child acknowledged: ";
const APPENDS: usize = 100;
const REQUIRED: usize = 10;

/// The child's side; in an ordinary test run (no `CHILD`) it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child() {
    let Ok(path) = std::env::var(CHILD) else {
        return;
    };
    // No core file for the abort below.
    use nix::sys::resource::{Resource, setrlimit};
    setrlimit(Resource::RLIMIT_CORE, 0, 0).unwrap();
    let store = Store::open(write_behind(path)).unwrap();

    // Concurrent appends, so that they share groups.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..APPENDS {
        let store = store.clone();
        tasks.spawn(async move {
            let p = PartitionId((i % 4) as u16);
            let a = store
                .append(p, &format!("m{i}"), Bytes::from(format!("payload {i}")))
                .await
                .unwrap();
            (i, p.0, a.offset)
        });
    }
    let mut appended = Vec::new();
    while let Some(r) = tasks.join_next().await {
        appended.push(r.unwrap());
    }
    // Required batches, each followed by a write-behind one.
    let commit = |oid: String, durability| {
        let store = store.clone();
        async move {
            let batch = WriteBatch {
                writes: vec![create("t.crash", &oid)],
                durability,
                fence: None,
            };
            store.commit(batch).await.unwrap();
        }
    };
    for i in 0..REQUIRED {
        commit(format!("required{i}"), Durability::Required).await;
        commit(format!("default{i}"), Durability::Default).await;
    }
    commit("tail".into(), Durability::Deferred).await;
    println!("{REPORT}{}", serde_json::to_string(&appended).unwrap());
    std::process::abort();
}

#[tokio::test]
async fn acknowledged_appends_and_required_batches_survive_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let run = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash::child", "--nocapture", "--test-threads=1"])
        .env(CHILD, &path)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the child ends within the deadline")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(nix::sys::signal::Signal::SIGABRT as i32),
        "the child aborts: {}\nstdout: {stdout}\nstderr: {stderr}",
        out.status,
    );
    let report = stdout
        .lines()
        // libtest may print the test name on the same line first.
        .find_map(|l| l.split_once(REPORT).map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no report from the child: {stdout}\n{stderr}"));
    let appended: Vec<(usize, u16, u64)> = serde_json::from_str(report).unwrap();
    assert_eq!(appended.len(), APPENDS);

    let store = Store::open(Options::new(&path)).unwrap();
    for (i, p, offset) in appended {
        let entry = store.entry(PartitionId(p), offset).await.unwrap();
        let entry = entry.unwrap_or_else(|| panic!("append {i} at {p}/{offset} lost"));
        assert_eq!(entry.payload, Bytes::from(format!("payload {i}")));
        // Its dedup id survived with it.
        let again = store
            .append(PartitionId(p), &format!("m{i}"), Bytes::new())
            .await
            .unwrap();
        assert!(again.duplicate && again.offset == offset, "append {i}");
    }
    let cls = ClassKey::new("t.crash").unwrap();
    let exists = |oid: String| {
        let (store, cls) = (&store, &cls);
        async move {
            let oid = ObjectId::new(oid).unwrap();
            store.get_object(cls, &oid).await.unwrap().is_some()
        }
    };
    for i in 0..REQUIRED {
        assert!(
            exists(format!("required{i}")).await,
            "required batch {i} lost"
        );
    }
    // Each later sync made the write-behind batch before it durable too.
    for i in 0..REQUIRED - 1 {
        assert!(
            exists(format!("default{i}")).await,
            "default batch {i} lost"
        );
    }
    // Nothing synced the last one: the child really died unflushed.
    assert!(!exists("tail".into()).await, "the crash flushed");
}
