//! A task reaches only its worker: over the Unix socket in the engine's
//! private directory, or over a TCP port whose listener `/proc` shows to be
//! the worker's. Squatters on the port never get a byte of a task.

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oprc_engine::{Deployment, InvokeError, Options, ProcessSpec};
use serde_json::json;

use crate::support::{
    Engine, PYTHON_SDK, SQUAT_WORKER, UNLISTEN_SERVER, call, eventually, instances, key, options,
    pid_of, spec, unix_spec,
};

const WITHIN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_on_its_socket_is_called_there() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("unix");
    h.deploy(f.clone(), Deployment::Process(unix_spec()), 1)
        .expect("valid");
    let answer = call(h, &f, json!({})).await.expect("answer");
    assert_eq!(answer["body"]["transport"], "unix");
    let socket = PathBuf::from(
        answer["body"]["socket"]
            .as_str()
            .expect("OPRC_SOCKET is set"),
    );
    let inst = &instances(h, &f)[0];
    assert_eq!(inst.socket.as_deref(), Some(socket.as_path()));
    assert!(inst.port.is_some(), "PORT is given too");
    let dir = socket.parent().expect("in a directory").to_owned();
    let mode = std::fs::metadata(&dir)
        .expect("exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "the socket directory is private");
    assert!(socket.as_os_str().len() < 104, "{socket:?} fits sun_path");

    // Keep-alive: more calls, one worker, one socket.
    for _ in 0..5 {
        let again = call(h, &f, json!({})).await.expect("answer");
        assert_eq!(pid_of(&again), pid_of(&answer));
    }
    engine.stop().await;
    assert!(!dir.exists(), "the engine's socket directory is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_on_its_port_is_checked_and_called_there() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("tcp");
    // fn_server.py binds PORT with plain python, like workers written for
    // the original SDK: the /proc check lets it through.
    h.deploy(f.clone(), Deployment::Process(spec()), 1)
        .expect("valid");
    let answer = call(h, &f, json!({})).await.expect("answer");
    assert_eq!(answer["body"]["transport"], "tcp");
    assert!(
        answer["body"]["socket"].is_string(),
        "OPRC_SOCKET is offered"
    );
    let inst = &instances(h, &f)[0];
    assert_eq!(inst.socket, None);
    assert_eq!(
        answer["body"]["port"],
        inst.port.expect("a port").to_string()
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_worker_listens_on_its_socket() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("sdk");
    let app = "import os, oprc\napp = oprc.App()\n\
               app.add('fn', lambda ctx: {'pid': os.getpid()})\napp.run()\n";
    let mut s = ProcessSpec::new(vec!["python3".into(), "-c".into(), app.into()]);
    s.env.insert("PYTHONPATH".into(), PYTHON_SDK.into());
    s.readiness_timeout = WITHIN;
    h.deploy(f.clone(), Deployment::Process(s), 1)
        .expect("valid");
    let task = json!({"id": "i", "funcKey": "test.fn", "fbName": "fn", "args": {}});
    let answer = h
        .invoke(
            &f,
            None,
            serde_json::to_vec(&task).expect("json").into(),
            WITHIN,
            &http::HeaderMap::new(),
        )
        .await
        .expect("answer");
    let answer: serde_json::Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!(answer["success"], true, "{answer}");
    let inst = &instances(h, &f)[0];
    assert!(inst.socket.is_some(), "the SDK listens on OPRC_SOCKET");
    assert_eq!(Some(pid_of(&answer)), inst.pid);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_socket_dir_is_created_private_and_kept() {
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("sockets");
    let engine = Engine::start_with(Options {
        socket_dir: Some(dir.clone()),
        ..options()
    });
    let h = &engine.handle;
    let f = key("configured");
    h.deploy(f.clone(), Deployment::Process(unix_spec()), 1)
        .expect("valid");
    let answer = call(h, &f, json!({})).await.expect("answer");
    let socket = Path::new(answer["body"]["socket"].as_str().expect("a socket"));
    assert_eq!(socket.parent(), Some(dir.as_path()));
    let mode = std::fs::metadata(&dir)
        .expect("exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    engine.stop().await;
    assert!(dir.is_dir(), "a configured directory is kept");
    assert!(!socket.exists(), "the worker's socket is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn squatter_on_the_port_never_gets_a_task() {
    let files = tempfile::tempdir().expect("temp dir");
    let log = files.path().join("squat.log");
    let pids = files.path().join("squat.pids");
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("squatted");
    let mut s = ProcessSpec::new(vec!["python3".into(), SQUAT_WORKER.into()]);
    s.env.insert("SQUAT_LOG".into(), log.display().to_string());
    s.env
        .insert("SQUAT_PIDS".into(), pids.display().to_string());
    s.max_instances = 1;
    h.deploy(f.clone(), Deployment::Process(s), 1)
        .expect("valid");

    let result = call(h, &f, json!({"secret": "object state"})).await;
    let squatters: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    for &pid in &squatters {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    match result {
        Err(InvokeError::Unavailable { reason }) => {
            assert!(reason.contains("not to the worker"), "{reason}");
            assert!(reason.contains("no task is sent"), "{reason}");
            assert!(
                squatters
                    .iter()
                    .any(|p| reason.contains(&format!("pid {p} "))),
                "{reason} names the squatter, one of {squatters:?}"
            );
        }
        other => panic!("expected the start to fail, got {other:?}"),
    }
    let received = std::fs::read(&log).unwrap_or_default();
    assert!(
        received.is_empty(),
        "the squatter received {:?}",
        String::from_utf8_lossy(&received)
    );
    let d = h.status().deployment(&f).expect("listed").counters.clone();
    assert!(d.start_failures >= 1, "{d:?}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_taken_over_after_ready_gets_no_task() {
    let files = tempfile::tempdir().expect("temp dir");
    let mark = files.path().join("closed");
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("unlisten");
    let mut s = ProcessSpec::new(vec!["python3".into(), UNLISTEN_SERVER.into()]);
    s.env
        .insert("UNLISTEN_MARK".into(), mark.display().to_string());
    s.max_instances = 1;
    h.deploy(f.clone(), Deployment::Process(s), 1)
        .expect("valid");
    let first = pid_of(&call(h, &f, json!({})).await.expect("answer"));
    let port = instances(h, &f)[0].port.expect("a port");

    // The worker closed its listener and lives on; another process takes
    // the port.
    eventually("the worker closed its listener", WITHIN, || {
        mark.exists().then_some(())
    })
    .await;
    let _ = std::fs::remove_file(&mark);
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).expect("take the port");

    let second = pid_of(&call(h, &f, json!({})).await.expect("answer"));
    assert_ne!(first, second, "answered by a new worker");

    squatter.set_nonblocking(true).expect("non-blocking");
    let mut connections = 0;
    while let Ok((mut conn, _)) = squatter.accept() {
        connections += 1;
        conn.set_nonblocking(false).expect("blocking");
        conn.set_read_timeout(Some(WITHIN)).expect("timeout");
        let mut got = Vec::new();
        let _ = conn.read_to_end(&mut got);
        assert!(
            got.is_empty(),
            "the squatter received {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    assert!(
        connections >= 1,
        "the engine connected, checked, and sent nothing"
    );
    let counters = h.status().deployment(&f).expect("listed").counters.clone();
    assert_eq!(counters.crashes, 1, "{counters:?}");
    engine.stop().await;
}
