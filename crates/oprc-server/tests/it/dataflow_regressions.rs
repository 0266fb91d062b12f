//! Regressions found by a hostile review of macros and calls from
//! functions; each names the doc line it holds the node to.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dataflow::{Flow, step};
use crate::harness::Node;

/// Builtins only: no function process needed.
const NESTED: &str = r#"
name: z
classes:
  - name: k
    functions:
      - {name: inner, function: .inner}
      - {name: outer, function: .outer}
      - {name: copier, function: .copier}
functions:
  - name: inner
    type: MACRO
    macro:
      steps:
        - {function: get, as: g}
  - name: outer
    type: MACRO
    macro:
      steps:
        - {function: inner, as: i}
        - {function: get, target: i, as: after}
  - name: copier
    type: MACRO
    macro:
      steps:
        - {function: copy, as: cp}
      output: cp
"#;

/// docs/functions.md "Macros": a step's target is "an earlier step's `as`
/// (that step's output object when its binding has an `outputCls`, else the
/// object it ran on)": a nested macro without `output` ran on `@`.
#[tokio::test]
async fn a_step_can_target_a_nested_macro_step_without_output() {
    let node = Node::start(&[NESTED.to_owned()]).await;
    node.new_object("z.k", r#"{"id": "q"}"#).await;
    let (s, v) = node
        .post("/api/classes/z.k/objects/q/invokes/outer", "")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(step(&v, "after")["target"]["oid"], "q", "{v}");
    node.stop().await;
}

/// docs/functions.md "Macros": `macroIds` are "each step's output object
/// id, fixed before the first step runs", and ADR 10: "the id is also the
/// step's output object id", for a `copy` step too.
#[tokio::test]
async fn a_copy_step_makes_its_output_under_the_step_id() {
    let node = Node::start(&[NESTED.to_owned()]).await;
    node.new_object("z.k", r#"{"id": "q"}"#).await;
    let (s, v) = node
        .post("/api/classes/z.k/objects/q/invokes/copier", "")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let inv = v["invId"].as_str().expect("invId");
    assert_eq!(v["macroIds"]["cp"], format!("{inv}.cp"), "{v}");
    node.stop().await;
}

/// docs/functions.md "Macros": "The node checks a macro when its package is
/// applied and reports every problem". Every step runs on an object, so a
/// step calling a class-level binding (`new`, a `noMain` function) can
/// never run, and a `noMain` macro has no `@` for any step: both are
/// refused.
#[tokio::test]
async fn macros_that_can_never_run_are_refused_when_applied() {
    let node = Node::start(&[]).await;
    for (name, binding, step) in [
        ("p1", "{name: m, function: .m}", "{function: new}"),
        (
            "p2",
            "{name: m, function: .m, noMain: true}",
            "{function: get}",
        ),
    ] {
        let pkg = format!(
            "name: {name}\nclasses:\n  - name: k\n    functions:\n      - {binding}\n\
             functions:\n  - name: m\n    type: MACRO\n    macro:\n      steps:\n        - {step}\n"
        );
        let (s, v) = node.post("/api/packages", &pkg).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{name} was accepted: {v}");
    }
    node.stop().await;
}

/// G10 and docs/api.md (503: "the node is shutting down; nothing was
/// changed"): calls accepted before a graceful stop end as they would
/// have: the API stays up while running tasks drain, so a function's call
/// through `callUrl` during the drain is served.
#[tokio::test]
async fn calls_from_functions_still_reach_the_node_while_it_drains() {
    let flow = Flow::start(&[]).await;
    flow.node
        .new_object("f.node", r#"{"id": "slow", "data": {"count": 0}}"#)
        .await;
    flow.node
        .new_object("f.node", r#"{"id": "after", "data": {"count": 0}}"#)
        .await;
    flow.node.new_object("f.caller", r#"{"id": "c1"}"#).await;
    flow.warm_up("slow").await;
    let calls = json!([
        {"cls": "f.node", "oid": "slow", "fn": "mut", "args": {"ms": "1500", "tag": "first"}},
        {"cls": "f.node", "oid": "after", "fn": "mut", "args": {"tag": "second"}},
    ]);
    let (s, v) = flow
        .send(
            "/api/classes/f.caller/objects/c1/invokes/call?_async=true",
            Some(&calls),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let inv = v["invId"].as_str().expect("invId").to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let data_dir = flow.node.stop().await;
    let node = Node::start_in(data_dir, &[]).await;
    let done = node.wait_invocation(&inv).await;
    let results: &Value = &done["body"]["results"];
    assert!(
        results[1].get("error").is_none(),
        "the second call was refused while the node drained: {done}"
    );
    assert_eq!(
        node.object("f.node", "after").await["data"]["count"],
        1,
        "{done}"
    );
    node.stop().await;
}

/// G10: a sync macro whose client hangs up in the middle of its first
/// step still runs to its end: its second step runs, each step once.
#[tokio::test]
async fn a_macro_runs_to_its_end_when_its_client_hangs_up() {
    let flow = Flow::start(&[]).await;
    flow.node.new_object("f.node", r#"{"id": "m"}"#).await;
    flow.warm_up("m").await;
    let dropped = flow
        .node
        .client
        .post(format!(
            "{}/api/classes/f.node/objects/m/invokes/slowchain",
            flow.node.url
        ))
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(dropped.is_err(), "the client gave up before the answer");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while flow.tagged("b").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the macro stopped with its client"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(flow.tagged("a").len(), 1);
    assert_eq!(flow.tagged("b").len(), 1);
    flow.node.stop().await;
}
