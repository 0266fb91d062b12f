//! Shell commands exec their worker: the instance's pid is the worker's,
//! and stopping it signals the worker itself.

use std::time::Duration;

use oprc_engine::{Deployment, ProcessSpec};
use serde_json::json;

use crate::support::{Engine, SCRIPT, alive, call, eventually, instances, key, pid_of};

const WITHIN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_command_execs_the_worker_and_sigterm_reaches_it() {
    let files = tempfile::tempdir().expect("temp dir");
    let mark = files.path().join("term");
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("execed");
    let mut s = ProcessSpec::shell(format!("python3 {SCRIPT}"));
    assert_eq!(s.command[2], format!("exec python3 {SCRIPT}"));
    s.env.insert("TERM_MARK".into(), mark.display().to_string());
    h.deploy(f.clone(), Deployment::Process(s), 1)
        .expect("valid");

    let pid = pid_of(&call(h, &f, json!({})).await.expect("answer"));
    assert_eq!(
        instances(h, &f)[0].pid,
        Some(pid),
        "the instance is the worker"
    );
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert!(comm.starts_with("python"), "{comm:?} is not a shell");

    assert!(h.undeploy(&f));
    let written = eventually("the worker handled SIGTERM", WITHIN, || {
        std::fs::read_to_string(&mark).ok()
    })
    .await;
    assert_eq!(written, format!("term {pid}"));
    eventually("the worker is gone", WITHIN, || (!alive(pid)).then_some(())).await;
    let stopped = h.status();
    assert!(stopped.deployments.iter().all(|d| d.counters.crashes == 0));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_that_stays_the_parent_still_stops_its_worker() {
    let files = tempfile::tempdir().expect("temp dir");
    let mark = files.path().join("term");
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("wrapped");
    // Two commands: the shell stays and the worker is its child.
    let mut s = ProcessSpec::shell(format!("python3 {SCRIPT}; true"));
    assert_eq!(s.command[2], format!("python3 {SCRIPT}; true"));
    s.env.insert("TERM_MARK".into(), mark.display().to_string());
    h.deploy(f.clone(), Deployment::Process(s), 1)
        .expect("valid");
    let pid = pid_of(&call(h, &f, json!({})).await.expect("answer"));
    assert_ne!(instances(h, &f)[0].pid, Some(pid), "the shell leads");

    engine.stop().await;
    let written = std::fs::read_to_string(&mark).expect("SIGTERM reached the worker");
    assert_eq!(written, format!("term {pid}"));
}
