//! Macros and access control (G7), and macro definitions refused when a
//! package is applied, each problem at its line and column.

use reqwest::StatusCode;
use serde_json::Value;

use crate::dataflow::{Flow, step};
use crate::harness::Node;

/// The 1-based (line, column) of `value` where it follows `before` in
/// `source`, at the `nth` (0-based) place `before` + `value` occurs.
#[track_caller]
fn position(source: &str, before: &str, value: &str, nth: usize) -> (u64, u64) {
    let needle = format!("{before}{value}");
    let (at, _) = source
        .match_indices(&needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("`{needle}` (#{nth}) is not in the source"));
    let at = at + before.len();
    let line_start = source[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = source[..at].matches('\n').count() + 1;
    let column = source[line_start..at].chars().count() + 1;
    (line as u64, column as u64)
}

/// The details of an `invalid_package` refusal.
#[track_caller]
fn details(status: StatusCode, v: &Value) -> Vec<Value> {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "invalid_package", "{v}");
    let details = v["error"]["details"].as_array().expect("details").clone();
    for d in &details {
        for field in ["line", "column", "path", "message", "text"] {
            assert!(!d[field].is_null(), "detail without `{field}`: {d}");
        }
    }
    details
}

/// The detail at a path ending with `path`.
#[track_caller]
fn detail<'a>(details: &'a [Value], path: &str) -> &'a Value {
    details
        .iter()
        .find(|d| d["path"].as_str().is_some_and(|p| p.ends_with(path)))
        .unwrap_or_else(|| panic!("no detail at `…{path}` in {details:#?}"))
}

fn at(d: &Value) -> (u64, u64) {
    (
        d["line"].as_u64().expect("line"),
        d["column"].as_u64().expect("column"),
    )
}

#[tokio::test]
async fn internal_and_private_bindings_are_reachable_from_own_macros_only() {
    let flow = Flow::start(&[]).await;
    flow.node
        .new_object("f.node", r#"{"id": "m", "data": {"count": 0}}"#)
        .await;
    // Same package (INTERNAL) and same class (PRIVATE) through a macro.
    for (macro_fb, step_name, count) in [("usehidden", "h", 1), ("usesecret", "s", 2)] {
        let (s, v) = flow.invoke("f.node", "m", macro_fb, "", None).await;
        assert_eq!(s, StatusCode::OK, "{macro_fb}: {v}");
        assert_eq!(v["status"], "SUCCEEDED", "{v}");
        assert_eq!(step(&v, step_name)["status"], "SUCCEEDED", "{v}");
        assert_eq!(v["body"]["count"], count, "{v}");
    }
    // Never directly from outside.
    for fb in ["hidden", "secret"] {
        let (s, v) = flow.invoke("f.node", "m", fb, "tag=outside", None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{fb}: {v}");
        assert_eq!(v["error"]["code"], "forbidden", "{v}");
    }
    assert!(flow.tagged("outside").is_empty());
    assert_eq!(flow.node.object("f.node", "m").await["data"]["count"], 2);
    flow.node.stop().await;
}

/// Package `g`: class `other` refers to an `f.node` as `peer`; its macro
/// calls `BINDING` on it.
const FOREIGN_MACRO: &str = r#"name: g
required: [f]
classes:
  - name: other
    refSpec:
      - {name: peer, cls: f.node}
    functions:
      - {name: reach, function: .reach}
functions:
  - name: reach
    type: MACRO
    macro:
      steps:
        - function: BINDING
          target: "@.peer"
          as: r
          args: {tag: foreign}
"#;

#[tokio::test]
async fn another_packages_macro_naming_a_non_public_binding_is_refused_at_apply_time() {
    let flow = Flow::start(&[]).await;
    for (binding, modifier) in [("hidden", "INTERNAL"), ("secret", "PRIVATE")] {
        let source = FOREIGN_MACRO.replace("BINDING", binding);
        let (s, v) = flow.node.post("/api/packages", &source).await;
        let details = details(s, &v);
        let d = detail(&details, "macro.steps[0].function");
        assert_eq!(at(d), position(&source, "- function: ", binding, 0), "{d}");
        let message = d["message"].as_str().unwrap();
        assert!(message.contains(modifier), "{binding}: {message}");
        assert_eq!(
            flow.node.get("/api/packages/g").await.0,
            StatusCode::NOT_FOUND,
            "nothing was stored"
        );
    }
    // A PUBLIC binding is fine, and runs on the referenced object.
    let source = FOREIGN_MACRO.replace("BINDING", "mut");
    let (s, v) = flow.node.post("/api/packages", &source).await;
    assert!(s.is_success(), "{v}");
    flow.node
        .new_object("f.node", r#"{"id": "leaf", "data": {"count": 0}}"#)
        .await;
    flow.node
        .new_object("g.other", r#"{"id": "o", "refs": {"peer": "leaf"}}"#)
        .await;
    let (s, v) = flow.invoke("g.other", "o", "reach", "", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(flow.node.object("f.node", "leaf").await["data"]["count"], 1);
    assert_eq!(flow.tagged("foreign").len(), 1);
    flow.node.stop().await;
}

/// A package whose class `c` binds macro `m`; `steps` is the macro's
/// body (indented under `macro:`).
fn macro_package(steps: &str) -> String {
    format!(
        "name: v\nclasses:\n  - name: c\n    functions:\n      - {{name: m, function: .m}}\n\
         functions:\n  - name: m\n    type: MACRO\n    macro:\n{steps}"
    )
}

/// A refused macro case: its macro text, then each expected problem as
/// (path suffix, text before the value, the value, which occurrence,
/// a word of the message).
type Case = (
    &'static str,
    &'static str,
    Vec<(
        &'static str,
        &'static str,
        &'static str,
        usize,
        &'static str,
    )>,
);

#[tokio::test]
async fn macro_definition_problems_are_refused_at_their_positions() {
    let node = Node::start(&[]).await;
    let cases: Vec<Case> = vec![
        (
            "unknown step in a substitution",
            "      steps:\n        - function: get\n          as: first\n          args:\n            \
             x: '${ghost|body|$}'\n",
            vec![("macro.steps[0].args.x", "x: ", "'${ghost", 0, "ghost")],
        ),
        (
            "unknown step as target",
            "      steps:\n        - function: get\n          as: first\n        - function: get\n          \
             target: frist\n",
            vec![("macro.steps[1].target", "target: ", "frist", 0, "frist")],
        ),
        (
            "unknown binding on the macro's own class",
            "      steps:\n        - function: nosuchfn\n          as: first\n",
            vec![(
                "macro.steps[0].function",
                "function: ",
                "nosuchfn",
                0,
                "nosuchfn",
            )],
        ),
        (
            "duplicate as",
            "      steps:\n        - function: get\n          as: dup\n        - function: get\n          \
             as: dup\n",
            vec![("macro.steps[1].as", "as: ", "dup", 1, "duplicate")],
        ),
        (
            "reference to a later step",
            "      steps:\n        - function: get\n          args:\n            x: '${later|body|$}'\n        \
             - function: get\n          as: later\n",
            vec![("macro.steps[0].args.x", "x: ", "'${later", 0, "later")],
        ),
        (
            "output names no step",
            "      steps:\n        - function: get\n          as: only\n      output: nowhere\n",
            vec![("macro.output", "output: ", "nowhere", 0, "nowhere")],
        ),
        (
            "several problems at once",
            "      steps:\n        - function: get\n          as: one\n          args:\n            \
             x: '${ghost|output|$.a}'\n        - function: get\n          as: one\n      output: nowhere\n",
            vec![
                ("macro.steps[0].args.x", "x: ", "'${ghost", 0, "ghost"),
                ("macro.steps[1].as", "as: ", "one", 1, "duplicate"),
                ("macro.output", "output: ", "nowhere", 0, "nowhere"),
            ],
        ),
    ];
    for (what, steps, expected) in cases {
        let source = macro_package(steps);
        let (s, v) = node.post("/api/packages", &source).await;
        let details = details(s, &v);
        for (path, before, value, nth, word) in expected {
            let d = detail(&details, path);
            assert_eq!(
                at(d),
                position(&source, before, value, nth),
                "{what}: {d}\n{source}"
            );
            let message = d["message"].as_str().unwrap().to_lowercase();
            assert!(message.contains(word), "{what}: {message}");
            let text = d["text"].as_str().expect("text");
            assert!(text.contains(d["message"].as_str().unwrap()), "{what}: {d}");
        }
        assert_eq!(
            node.get("/api/packages/v").await.0,
            StatusCode::NOT_FOUND,
            "{what}: nothing was stored"
        );
    }

    // A cycle is reported at one of the references that close it.
    let source = macro_package(
        "      steps:\n        - function: copy\n          as: one\n          target: two\n        \
         - function: copy\n          as: two\n          target: one\n",
    );
    let (s, v) = node.post("/api/packages", &source).await;
    let details = details(s, &v);
    let cycle = details
        .iter()
        .find(|d| d["message"].as_str().is_some_and(|m| m.contains("cycle")))
        .unwrap_or_else(|| panic!("no cycle reported: {details:#?}"));
    let candidates = [
        position(&source, "target: ", "two", 0),
        position(&source, "target: ", "one", 0),
    ];
    assert!(candidates.contains(&at(cycle)), "{cycle}\n{source}");
    assert_eq!(node.get("/api/packages/v").await.0, StatusCode::NOT_FOUND);
    node.stop().await;
}
