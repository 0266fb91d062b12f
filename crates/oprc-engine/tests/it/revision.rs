//! Deployment revisions: a call that names a revision is sent only while it
//! is the current one, so it never runs on another version than the one it
//! was planned against.

use std::time::Duration;

use oprc_engine::{Deployment, InvokeError, ProcessSpec};
use serde_json::{Value, json};

use crate::support::{Engine, call, eventually, instances, key, pid_of, ready_pids, spec, task};

const WITHIN: Duration = Duration::from_secs(10);

async fn call_at(
    h: &oprc_engine::Handle,
    f: &oprc_core::FunctionKey,
    revision: Option<u64>,
    args: Value,
) -> Result<Value, InvokeError> {
    let answer = h
        .invoke(f, revision, task(args), WITHIN, &http::HeaderMap::new())
        .await?;
    Ok(serde_json::from_slice(&answer).expect("json"))
}

fn changed(f: &oprc_core::FunctionKey) -> InvokeError {
    InvokeError::Changed {
        function: f.clone(),
    }
}

/// One instance that takes one call at a time, so a second call waits.
fn one_at_a_time(greeting: &str) -> ProcessSpec {
    let mut s = ProcessSpec {
        concurrency: 1,
        ..spec()
    };
    s.env.insert("GREETING".into(), greeting.into());
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_with_another_revision_is_not_sent() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("rev");
    h.deploy(f.clone(), Deployment::Process(spec()), 7)
        .expect("valid");
    assert_eq!(call_at(h, &f, Some(8), json!({})).await, Err(changed(&f)));
    let status = h.status();
    let d = status.deployment(&f).expect("listed");
    assert_eq!(d.revision, 7);
    assert!(d.instances.is_empty(), "no worker was started for it");
    assert_eq!((d.counters.invocations, d.counters.in_flight), (0, 0));

    call_at(h, &f, Some(7), json!({})).await.expect("current");
    call_at(h, &f, None, json!({})).await.expect("unchecked");
    let err = call_at(h, &key("other"), Some(7), json!({})).await;
    assert_eq!(err, Err(InvokeError::NotDeployed(key("other"))));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_deployment_with_a_new_revision_keeps_its_workers() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("same");
    h.deploy(f.clone(), Deployment::Process(spec()), 1)
        .expect("valid");
    let pid = pid_of(&call_at(h, &f, Some(1), json!({})).await.expect("answer"));

    h.deploy(f.clone(), Deployment::Process(spec()), 2)
        .expect("valid");
    let status = h.status();
    assert_eq!(status.deployments.len(), 1, "nothing drains");
    assert_eq!(status.deployments[0].revision, 2);
    assert_eq!(ready_pids(&status, &f), vec![pid], "no restart");
    assert_eq!(call_at(h, &f, Some(1), json!({})).await, Err(changed(&f)));
    let answer = call_at(h, &f, Some(2), json!({})).await.expect("answer");
    assert_eq!(pid_of(&answer), pid);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_waiting_on_a_replaced_deployment_is_changed() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("replaced");
    h.deploy(f.clone(), Deployment::Process(one_at_a_time("v1")), 1)
        .expect("valid");
    let long = {
        let (h, f) = (h.clone(), f.clone());
        tokio::spawn(async move { call_at(&h, &f, Some(1), json!({"sleep": "1"})).await })
    };
    eventually("the long call runs", WITHIN, || {
        (instances(h, &f).first()?.in_flight == 1).then_some(())
    })
    .await;
    let planned_v1 = {
        let (h, f) = (h.clone(), f.clone());
        tokio::spawn(async move { call_at(&h, &f, Some(1), json!({})).await })
    };
    let unchecked = {
        let (h, f) = (h.clone(), f.clone());
        tokio::spawn(async move { call_at(&h, &f, None, json!({})).await })
    };
    eventually("both calls wait", WITHIN, || {
        (h.status().deployment(&f)?.waiting == 2).then_some(())
    })
    .await;

    h.deploy(f.clone(), Deployment::Process(one_at_a_time("v2")), 2)
        .expect("valid");
    let err = planned_v1.await.expect("no panic");
    assert_eq!(err, Err(changed(&f)), "planned on v1, never sent to v2");
    let answer = unchecked.await.expect("no panic").expect("answer");
    assert_eq!(answer["body"]["greeting"], "v2");
    let answer = long.await.expect("no panic").expect("answer");
    assert_eq!(answer["body"]["greeting"], "v1", "a running call finishes");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_waiting_through_a_revision_change_is_changed_at_once() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("revised");
    h.deploy(f.clone(), Deployment::Process(one_at_a_time("v1")), 1)
        .expect("valid");
    let long = {
        let (h, f) = (h.clone(), f.clone());
        tokio::spawn(async move { call_at(&h, &f, Some(1), json!({"sleep": "2"})).await })
    };
    eventually("the long call runs", WITHIN, || {
        (instances(h, &f).first()?.in_flight == 1).then_some(())
    })
    .await;
    let waiting = {
        let (h, f) = (h.clone(), f.clone());
        tokio::spawn(async move { call_at(&h, &f, Some(1), json!({})).await })
    };
    eventually("the call waits", WITHIN, || {
        (h.status().deployment(&f)?.waiting == 1).then_some(())
    })
    .await;

    h.deploy(f.clone(), Deployment::Process(one_at_a_time("v1")), 2)
        .expect("valid");
    let err = waiting.await.expect("no panic");
    assert_eq!(err, Err(changed(&f)));
    let inst = &instances(h, &f)[0];
    assert_eq!((inst.in_flight, inst.served), (1, 1), "only the long call");
    long.await
        .expect("no panic")
        .expect("the running call finishes");
    let counters = h.status().deployment(&f).expect("listed").counters.clone();
    assert_eq!(
        counters.invocations, 1,
        "a call that was not made is not counted"
    );
    engine.stop().await;
}

#[tokio::test]
async fn revision_is_checked_for_http_deployments() {
    let engine = Engine::start();
    let h = &engine.handle;
    let f = key("static-rev");
    let url = "http://127.0.0.1:9/".to_owned();
    h.deploy(f.clone(), Deployment::Http { url }, 3)
        .expect("valid");
    assert_eq!(call_at(h, &f, Some(4), json!({})).await, Err(changed(&f)));
    assert_eq!(h.status().deployment(&f).expect("listed").revision, 3);
    let unreachable = call(h, &f, json!({})).await;
    assert!(matches!(unreachable, Err(InvokeError::Unreachable { .. })));
    engine.stop().await;
}
