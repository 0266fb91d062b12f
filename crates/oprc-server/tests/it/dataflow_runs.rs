//! Macro runs (G6): failed steps and their dependents, re-runs with and
//! without an Idempotency-Key, async macros, nested macros, polymorphic
//! steps and `@.REF` targets. Package `f` and helpers: `dataflow`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dataflow::{Flow, macro_id, step};

#[tokio::test]
async fn a_failed_step_fails_its_dependents_and_keeps_independent_steps() {
    let flow = Flow::start(&[]).await;
    flow.node
        .new_object("f.node", r#"{"id": "m", "data": {"count": 0}}"#)
        .await;
    let (s, v) = flow.invoke("f.node", "m", "failing", "", None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["status"], "FAILED", "{v}");
    assert_eq!(v["error"]["code"], "step_failed", "{v}");
    let message = v["error"]["message"].as_str().expect("message");
    assert!(message.contains("broken"), "names the step: {message}");
    assert!(
        message.contains("failed on purpose"),
        "gives the step's reason: {message}"
    );
    for (name, status) in [
        ("okay", "SUCCEEDED"),
        ("broken", "FAILED"),
        ("child", "DEPENDENCY_FAILED"),
        ("grandchild", "DEPENDENCY_FAILED"),
        ("aside", "SUCCEEDED"),
    ] {
        assert_eq!(step(&v, name)["status"], status, "step {name}: {v}");
    }
    assert!(step(&v, "broken")["error"].is_object(), "{v}");

    // The dependents never ran and their (up-front) output ids hold
    // nothing; the failed step left nothing either.
    for tag in ["child", "grandchild"] {
        assert!(
            flow.tagged(tag).is_empty(),
            "{tag} ran: {:?}",
            flow.tagged(tag)
        );
    }
    for name in ["broken", "child", "grandchild"] {
        let id = macro_id(&v, name);
        assert_eq!(
            flow.object_status("f.node", &id).await,
            StatusCode::NOT_FOUND,
            "output of {name} ({id})"
        );
    }
    // What succeeded stays committed.
    assert_eq!(flow.tagged("okay").len(), 1);
    assert_eq!(flow.tagged("aside").len(), 1);
    assert_eq!(
        flow.object_status("f.node", &macro_id(&v, "okay")).await,
        StatusCode::OK
    );
    let main = flow.node.object("f.node", "m").await;
    assert_eq!(
        main["data"]["count"], 1,
        "the independent `aside` committed: {main}"
    );
    assert_eq!(main["data"]["args"]["tag"], "aside", "{main}");
    flow.node.stop().await;
}

#[tokio::test]
async fn a_rerun_with_the_same_idempotency_key_repeats_ids_and_runs_nothing_twice() {
    let flow = Flow::start(&[]).await;
    flow.node
        .new_object("f.node", r#"{"id": "m", "data": {"count": 0}}"#)
        .await;
    let path = "/api/classes/f.node/objects/m/invokes/idem";
    let (s, first) = flow.send(path, None, Some("order-1")).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert_eq!(first["status"], "SUCCEEDED", "{first}");
    let ids: BTreeSet<String> = ["x", "y"].iter().map(|n| macro_id(&first, n)).collect();
    assert_eq!(ids.len(), 2, "{first}");

    let (s, again) = flow.send(path, None, Some("order-1")).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "SUCCEEDED", "{again}");
    assert_eq!(again["macroIds"], first["macroIds"], "same output ids");
    assert_eq!(again["output"]["_meta"]["id"], macro_id(&first, "y"));
    for tag in ["x", "y", "z"] {
        assert_eq!(flow.tagged(tag).len(), 1, "{tag} ran again: {again}");
    }
    assert_eq!(flow.node.object("f.node", "m").await["data"]["count"], 1);
    for id in &ids {
        assert_eq!(
            flow.object_status("f.node", id).await,
            StatusCode::OK,
            "{id}"
        );
    }

    // Without a key it is a new run: new output ids, every step again.
    let (s, fresh) = flow.send(path, None, None).await;
    assert_eq!(s, StatusCode::OK, "{fresh}");
    assert_eq!(fresh["status"], "SUCCEEDED", "{fresh}");
    for name in ["x", "y"] {
        assert!(
            !ids.contains(&macro_id(&fresh, name)),
            "{name} reused an id: {first} {fresh}"
        );
    }
    for tag in ["x", "y", "z"] {
        assert_eq!(flow.tagged(tag).len(), 2, "{tag}");
    }
    assert_eq!(flow.node.object("f.node", "m").await["data"]["count"], 2);
    flow.node.stop().await;
}

#[tokio::test]
async fn an_async_macro_shows_step_progress_then_answers_like_a_sync_one() {
    let flow = Flow::start(&[]).await;
    flow.node.new_object("f.node", r#"{"id": "m"}"#).await;
    flow.warm_up("m").await;
    let (s, queued) = flow
        .invoke("f.node", "m", "slowchain", "_async=true", None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["status"], "QUEUE", "{queued}");
    let inv = queued["invId"].as_str().expect("invId").to_owned();

    // (macro status, a's status, b's status) as seen while it runs.
    let mut seen: Vec<(String, String, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let (s, v) = flow.node.get(&format!("/api/invocations/{inv}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let status = v["status"].as_str().unwrap_or_default().to_owned();
        if status == "SUCCEEDED" || status == "FAILED" {
            break v;
        }
        assert!(
            status == "QUEUE" || status == "DOING",
            "a running macro is QUEUE or DOING: {v}"
        );
        if v["steps"].is_array() {
            let of = |n: &str| {
                step(&v, n)["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            let snapshot = (status, of("a"), of("b"));
            if seen.last() != Some(&snapshot) {
                seen.push(snapshot);
            }
        }
        assert!(Instant::now() < deadline, "the macro did not end: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let saw = |a: &str, b: &str| seen.iter().any(|(_, x, y)| x == a && y == b);
    assert!(
        saw("DOING", "QUEUE"),
        "never saw a running while b waits: {seen:?}"
    );
    assert!(
        saw("SUCCEEDED", "DOING"),
        "never saw b running after a succeeded: {seen:?}"
    );
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["invId"], inv.as_str());
    assert_eq!(done["body"], json!({"n": 43}), "{done}");
    assert_eq!(
        done["output"]["_meta"]["id"],
        macro_id(&done, "b"),
        "{done}"
    );
    for name in ["a", "b"] {
        assert_eq!(step(&done, name)["status"], "SUCCEEDED", "{done}");
    }

    // The same fields as a sync call of the same macro.
    let (s, sync) = flow.invoke("f.node", "m", "slowchain", "", None).await;
    assert_eq!(s, StatusCode::OK, "{sync}");
    let keys = |v: &Value| -> BTreeSet<String> {
        v.as_object()
            .expect("object")
            .keys()
            .filter(|k| *k != "stats")
            .cloned()
            .collect()
    };
    assert_eq!(keys(&done), keys(&sync), "async {done}\nsync {sync}");
    let step_keys = |v: &Value| -> Vec<BTreeSet<String>> {
        v["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| s.as_object().expect("step").keys().cloned().collect())
            .collect()
    };
    assert_eq!(step_keys(&done), step_keys(&sync));
    flow.node.stop().await;
}

#[tokio::test]
async fn a_step_may_call_a_macro() {
    let flow = Flow::start(&[]).await;
    flow.node.new_object("f.node", r#"{"id": "m"}"#).await;
    let (s, v) = flow.invoke("f.node", "m", "outer", "", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    assert_eq!(v["body"], json!({"fromInner": 101, "final": 102}), "{v}");
    let inv = v["invId"].as_str().expect("invId");
    assert_eq!(step(&v, "i")["invId"], format!("{inv}.i"), "{v}");
    assert_eq!(step(&v, "i")["status"], "SUCCEEDED", "{v}");
    let inner = flow.tagged("inner-x");
    assert_eq!(inner.len(), 1, "the inner macro's step ran once: {inner:?}");
    assert_eq!(inner[0]["args"]["num"], "100", "{inner:?}");
    assert_eq!(flow.tagged("after").len(), 1);
    assert_eq!(v["output"]["_meta"]["id"], macro_id(&v, "after"), "{v}");
    flow.node.stop().await;
}

#[tokio::test]
async fn a_macro_of_a_base_class_runs_the_derived_override() {
    let flow = Flow::start(&[]).await;
    flow.node.new_object("f.node", r#"{"id": "base1"}"#).await;
    flow.node
        .new_object("f.derived", r#"{"id": "derived1"}"#)
        .await;
    let (s, v) = flow.invoke("f.node", "base1", "talk", "", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"], json!({"said": "base", "cls": "f.node"}), "{v}");
    let (s, v) = flow.invoke("f.derived", "derived1", "talk", "", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["body"],
        json!({"said": "derived", "cls": "f.derived"}),
        "{v}"
    );
    assert_eq!(
        step(&v, "s")["target"],
        json!({"cls": "f.derived", "oid": "derived1"}),
        "{v}"
    );
    flow.node.stop().await;
}

#[tokio::test]
async fn ref_targets_run_on_the_referenced_object() {
    let flow = Flow::start(&[]).await;
    flow.node
        .new_object("f.node", r#"{"id": "leaf", "data": {"count": 0}}"#)
        .await;
    flow.node
        .new_object("f.node", r#"{"id": "hub", "refs": {"peer": "leaf"}}"#)
        .await;
    let hub = flow.node.object("f.node", "hub").await;
    assert_eq!(hub["_meta"]["refs"]["peer"], "leaf", "{hub}");

    let (s, v) = flow.invoke("f.node", "hub", "viaref", "", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    let leaf = json!({"cls": "f.node", "oid": "leaf"});
    assert_eq!(step(&v, "p")["target"], leaf, "{v}");
    assert_eq!(step(&v, "q")["target"], leaf, "{v}");
    // `r` targets step `p`, which has no output class: p's object, leaf.
    assert_eq!(step(&v, "r")["target"], leaf, "{v}");
    assert_eq!(v["body"], json!({"peerCount": 1, "qFrom": "leaf"}), "{v}");
    assert_eq!(flow.node.object("f.node", "leaf").await["data"]["count"], 1);
    let hub = flow.node.object("f.node", "hub").await;
    assert_eq!(hub["_meta"]["revision"], 1, "hub untouched: {hub}");

    // An object without the reference: the step fails, nothing runs.
    flow.node.new_object("f.node", r#"{"id": "alone"}"#).await;
    let (s, v) = flow.invoke("f.node", "alone", "viaref", "", None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(step(&v, "p")["status"], "FAILED", "{v}");
    assert_eq!(step(&v, "r")["status"], "DEPENDENCY_FAILED", "{v}");
    assert_eq!(flow.tagged("p").len(), 1, "only the first run of p");
    flow.node.stop().await;
}

#[tokio::test]
async fn a_path_matching_nothing_fails_its_step_with_template_failed() {
    let flow = Flow::start(&[]).await;
    flow.node.new_object("f.node", r#"{"id": "m"}"#).await;
    let (s, v) = flow
        .invoke("f.node", "m", "miss", "", Some(&json!({"present": 1})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["status"], "FAILED", "{v}");
    assert_eq!(v["error"]["code"], "step_failed", "{v}");
    let m1 = step(&v, "m1");
    assert_eq!(m1["status"], "FAILED", "{v}");
    assert_eq!(m1["error"]["code"], "template_failed", "{v}");
    assert!(flow.tagged("miss").is_empty(), "the step never ran");
    flow.node.stop().await;
}
