use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use oprc_engine::{Deployment, Error, InstanceState, InvokeError, ProcessSpec};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::support::{
    Engine, SCRIPT, alive, call, call_within, eventually, key, pid_of, ready_pids, spec, task,
    wait_ready,
};

const WITHIN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_then_invoke_answers_the_task() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("cold");
    let mut s = spec();
    s.env.insert("GREETING".into(), "hello".into());
    h.deploy(f.clone(), Deployment::Process(s), 1)
        .expect("valid");
    assert!(
        h.status()
            .deployment(&f)
            .expect("listed")
            .instances
            .is_empty()
    );

    let mut headers = HeaderMap::new();
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    headers.insert("traceparent", HeaderValue::from_static(trace));
    let answer = h
        .invoke(&f, None, task(json!({"a": "b"})), WITHIN, &headers)
        .await
        .expect("answer");
    let answer: Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!(answer["body"]["echo"]["args"]["a"], "b");
    assert_eq!(answer["body"]["echo"]["main"]["data"]["n"], 1);
    assert_eq!(answer["body"]["contentType"], "application/json");
    assert_eq!(answer["body"]["traceparent"], trace);
    assert_eq!(answer["body"]["greeting"], "hello");

    let status = h.status();
    let d = status.deployment(&f).expect("listed");
    assert_eq!(ready_pids(&status, &f), vec![pid_of(&answer)]);
    assert_eq!((d.counters.starts, d.counters.invocations), (1, 1));
    assert_eq!((d.counters.failures, d.counters.in_flight), (0, 0));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_instances_start_without_calls() {
    let engine = Engine::start();
    let f = key("eager");
    let s = ProcessSpec {
        min_instances: 2,
        max_instances: 3,
        ..spec()
    };
    engine
        .handle
        .deploy(f.clone(), Deployment::Process(s), 1)
        .expect("valid");
    wait_ready(&engine.handle, &f, 2).await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_scales_up_but_never_above_max() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("busy");
    let s = ProcessSpec {
        max_instances: 3,
        concurrency: 1,
        ..spec()
    };
    h.deploy(f.clone(), Deployment::Process(s), 1)
        .expect("valid");

    let mut calls = JoinSet::new();
    for _ in 0..8 {
        let (h, f) = (h.clone(), f.clone());
        calls.spawn(async move { call(&h, &f, json!({"sleep": "0.2"})).await });
    }
    let mut most = 0;
    let mut pids = Vec::new();
    loop {
        tokio::select! {
            joined = calls.join_next() => match joined {
                Some(r) => pids.push(pid_of(&r.expect("no panic").expect("every call answers"))),
                None => break,
            },
            () = tokio::time::sleep(Duration::from_millis(5)) => {
                let status = h.status();
                let d = status.deployment(&f).expect("listed");
                most = most.max(d.instances.len());
                assert!(d.instances.iter().all(|i| i.in_flight <= 1), "concurrency respected");
            }
        }
    }
    pids.sort_unstable();
    pids.dedup();
    assert!(pids.len() >= 2, "load was spread over {pids:?}");
    assert!((2..=3).contains(&most), "{most} instances at most");
    let counters = h.status().deployment(&f).expect("listed").counters.clone();
    assert!(counters.starts <= 3, "{counters:?}");
    assert_eq!(counters.invocations, 8);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_pool_scales_to_zero_and_cold_starts_again() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("idle");
    let s = ProcessSpec {
        idle_timeout: Duration::from_millis(200),
        ..spec()
    };
    h.deploy(f.clone(), Deployment::Process(s), 1)
        .expect("valid");
    let first = pid_of(&call(h, &f, json!({})).await.expect("answer"));

    eventually("the idle instance is stopped", WITHIN, || {
        let status = h.status();
        status
            .deployment(&f)
            .expect("listed")
            .instances
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(!alive(first), "the stopped worker {first} is gone");

    let second = pid_of(&call(h, &f, json!({})).await.expect("answer"));
    assert_ne!(first, second);
    assert_eq!(
        h.status().deployment(&f).expect("listed").counters.starts,
        2
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_worker_is_restarted_to_keep_min() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("crash");
    let s = ProcessSpec {
        min_instances: 1,
        ..spec()
    };
    h.deploy(f.clone(), Deployment::Process(s), 1)
        .expect("valid");
    let old = wait_ready(h, &f, 1).await[0];
    let pid = i32::try_from(old).expect("pid fits");
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill the worker");

    let new = eventually("a new worker replaces the killed one", WITHIN, || {
        let pids = ready_pids(&h.status(), &f);
        (pids.len() == 1 && pids[0] != old).then(|| pids[0])
    })
    .await;
    let answer = call(h, &f, json!({})).await.expect("answer");
    assert_eq!(pid_of(&answer), new);
    let counters = h.status().deployment(&f).expect("listed").counters.clone();
    assert_eq!((counters.crashes, counters.starts), (1, 2));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_on_a_worker_that_dies_is_unreachable() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("dies");
    h.deploy(f.clone(), Deployment::Process(spec()), 1)
        .expect("valid");
    let err = call(h, &f, json!({"exit": true})).await.unwrap_err();
    assert!(matches!(err, InvokeError::Unreachable { .. }), "{err}");
    eventually("the crash is noticed", WITHIN, || {
        let s = h.status();
        let d = s.deployment(&f)?;
        (d.counters.crashes == 1 && d.instances.is_empty()).then_some(())
    })
    .await;
    // The next call gets a fresh worker.
    call(h, &f, json!({})).await.expect("answer");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_function_times_out() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("slow");
    h.deploy(f.clone(), Deployment::Process(spec()), 1)
        .expect("valid");
    call(h, &f, json!({})).await.expect("warm up");
    let started = Instant::now();
    let limit = Duration::from_millis(300);
    let err = call_within(h, &f, json!({"sleep": "3"}), limit)
        .await
        .unwrap_err();
    assert_eq!(err, InvokeError::Timeout { after: limit });
    assert!(started.elapsed() < Duration::from_secs(2));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_200_answer_is_a_status_error() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("fails");
    h.deploy(f.clone(), Deployment::Process(spec()), 1)
        .expect("valid");
    match call(h, &f, json!({"status": "500"})).await {
        Err(InvokeError::Status { code, body_snippet }) => {
            assert_eq!(code, 500);
            assert!(
                body_snippet.contains("\"success\": false"),
                "{body_snippet}"
            );
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_that_exits_at_start_makes_calls_unavailable() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("broken");
    let s = ProcessSpec {
        max_instances: 1,
        ..ProcessSpec::shell("echo boom >&2; exit 3")
    };
    h.deploy(f.clone(), Deployment::Process(s), 1)
        .expect("valid");
    match call(h, &f, json!({})).await {
        Err(InvokeError::Unavailable { reason }) => {
            assert!(reason.contains("exit status: 3"), "{reason}");
            assert!(reason.contains("boom"), "{reason}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    // While the engine backs off, calls fail at once.
    let started = Instant::now();
    let err = call(h, &f, json!({})).await.unwrap_err();
    assert!(matches!(err, InvokeError::Unavailable { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        h.status()
            .deployment(&f)
            .expect("listed")
            .counters
            .start_failures,
        2,
        "a first failed start is retried at once"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_that_never_listens_fails_readiness() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("deaf");
    let s = ProcessSpec {
        readiness_timeout: Duration::from_millis(300),
        ..ProcessSpec::new(vec!["sleep".into(), "30".into()])
    };
    h.deploy(f.clone(), Deployment::Process(s), 1)
        .expect("valid");
    let caller = {
        let (h, f) = (h.clone(), f.clone());
        tokio::spawn(async move { call(&h, &f, json!({})).await })
    };
    let pid = eventually("the worker is started", WITHIN, || {
        h.status()
            .deployment(&f)
            .expect("listed")
            .instances
            .first()?
            .pid
    })
    .await;
    match caller.await.expect("no panic") {
        Err(InvokeError::Unavailable { reason }) => {
            assert!(reason.contains("did not accept connections"), "{reason}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert!(!alive(pid), "the worker {pid} was stopped");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_deployment_drains_the_old_workers() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("replace");
    let mut v1 = spec();
    v1.env.insert("GREETING".into(), "v1".into());
    h.deploy(f.clone(), Deployment::Process(v1.clone()), 1)
        .expect("valid");
    let old = pid_of(&call(h, &f, json!({})).await.expect("answer"));

    let long = {
        let (h, f) = (h.clone(), f.clone());
        tokio::spawn(async move { call(&h, &f, json!({"sleep": "1"})).await })
    };
    eventually("the long call is in flight", WITHIN, || {
        let s = h.status();
        (s.deployment(&f)?.instances.first()?.in_flight == 1).then_some(())
    })
    .await;

    let mut v2 = v1.clone();
    v2.env.insert("GREETING".into(), "v2".into());
    h.deploy(f.clone(), Deployment::Process(v2), 1)
        .expect("valid");
    assert!(alive(old), "the old worker still serves its call");
    let status = h.status();
    let draining = status.deployments.iter().find(|d| d.draining);
    let instance = &draining.expect("the old deployment drains").instances[0];
    assert_eq!((instance.pid, instance.in_flight), (Some(old), 1));
    assert_eq!(instance.state, InstanceState::Draining);

    let answer = call(h, &f, json!({})).await.expect("answer");
    assert_eq!(answer["body"]["greeting"], "v2");

    let answer = long
        .await
        .expect("no panic")
        .expect("the old call completes");
    assert_eq!(answer["body"]["greeting"], "v1");
    eventually("the old worker is stopped", WITHIN, || {
        (!alive(old)).then_some(())
    })
    .await;
    eventually("the draining deployment is gone", WITHIN, || {
        (h.status().deployments.len() == 1).then_some(())
    })
    .await;
    // Deploying the same again keeps the running worker.
    let current = ready_pids(&h.status(), &f);
    let mut same = v1;
    same.env.insert("GREETING".into(), "v2".into());
    h.deploy(f.clone(), Deployment::Process(same), 1)
        .expect("valid");
    assert_eq!(ready_pids(&h.status(), &f), current);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeployed_function_is_not_deployed() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("gone");
    h.deploy(f.clone(), Deployment::Process(spec()), 1)
        .expect("valid");
    let pid = pid_of(&call(h, &f, json!({})).await.expect("answer"));
    assert!(h.undeploy(&f));
    assert!(!h.undeploy(&f));
    let err = call(h, &f, json!({})).await.unwrap_err();
    assert_eq!(err, InvokeError::NotDeployed(f.clone()));
    eventually("the worker is stopped", WITHIN, || {
        (!alive(pid)).then_some(())
    })
    .await;
    engine.stop().await;
}

#[tokio::test]
async fn invalid_deployments_are_refused() {
    let engine = Engine::start();
    let h = &engine.handle;
    let bad = ProcessSpec {
        min_instances: 3,
        max_instances: 1,
        ..spec()
    };
    let err = h
        .deploy(key("bad"), Deployment::Process(bad), 1)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidDeployment { .. }), "{err}");
    let err = h
        .deploy(
            key("bad"),
            Deployment::Http {
                url: "https://x/".into(),
            },
            1,
        )
        .unwrap_err();
    assert!(err.to_string().contains("https"), "{err}");
    assert!(h.status().deployments.is_empty());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_worker() {
    let engine = Engine::start();
    let h = engine.handle.clone();
    let a = key("a");
    let b = key("b");
    let two = ProcessSpec {
        min_instances: 2,
        max_instances: 2,
        ..spec()
    };
    // A shell that stays the parent: its python child must go too.
    let wrapped = ProcessSpec {
        min_instances: 1,
        ..ProcessSpec::shell(format!("python3 {SCRIPT}; true"))
    };
    h.deploy(a.clone(), Deployment::Process(two), 1)
        .expect("valid");
    h.deploy(b.clone(), Deployment::Process(wrapped), 1)
        .expect("valid");
    let mut workers = wait_ready(&h, &a, 2).await;
    workers.extend(wait_ready(&h, &b, 1).await);
    let grandchild = pid_of(&call(&h, &b, json!({})).await.expect("answer"));
    assert!(workers.iter().all(|&p| alive(p)) && alive(grandchild));

    engine.stop().await;
    // Workers are reaped before `run` returns.
    let left: Vec<u32> = workers.into_iter().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "workers still alive: {left:?}");
    // Their group was killed; the kernel finishes it off.
    eventually("the worker's child is gone", WITHIN, || {
        (!alive(grandchild)).then_some(())
    })
    .await;
    assert!(
        h.status()
            .deployments
            .iter()
            .all(|d| d.instances.is_empty())
    );
    let err = call(&h, &a, json!({})).await.unwrap_err();
    assert!(matches!(err, InvokeError::Unavailable { .. }), "{err}");
    let err = h
        .deploy(key("late"), Deployment::Process(spec()), 1)
        .unwrap_err();
    assert_eq!(err, Error::ShutDown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_waiting_at_shutdown_fail_at_once() {
    let engine = Engine::start();
    let h = engine.handle.clone();
    let f = key("never");
    let s = ProcessSpec {
        readiness_timeout: Duration::from_secs(30),
        ..ProcessSpec::new(vec!["sleep".into(), "30".into()])
    };
    h.deploy(f.clone(), Deployment::Process(s), 1)
        .expect("valid");
    let caller = {
        let (h, f) = (h.clone(), f.clone());
        tokio::spawn(async move { call_within(&h, &f, json!({}), Duration::from_secs(30)).await })
    };
    let pid = eventually("the call waits for a starting worker", WITHIN, || {
        let s = h.status();
        let d = s.deployment(&f)?;
        (d.waiting == 1).then_some(())?;
        d.instances.first()?.pid
    })
    .await;
    let started = Instant::now();
    engine.stop().await;
    let err = caller.await.expect("no panic").unwrap_err();
    assert!(matches!(err, InvokeError::Unavailable { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!alive(pid));
}
