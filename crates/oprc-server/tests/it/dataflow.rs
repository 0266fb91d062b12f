//! Macro functions (G6) end to end: real nodes, real Python SDK functions
//! (fixtures/flow.py) that record when they ran and what they got, so the
//! order, parallelism and data of steps are checked from the functions'
//! own records. The package `f` (see [`flow_package`]) is shared by these
//! tests and by `dataflow_access` and `dataflow_calls`; each test starts a
//! node of its own.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Node, repo_root};

/// The test package `f`. `@PROC@` stands for the process provision of
/// flow.py (see [`process`]); class `node` binds the task behaviours and
/// the macros below, `derived` overrides `speak`, `caller` only calls.
const FLOW_PACKAGE: &str = r#"
name: f
classes:
  - name: node
    refSpec:
      - {name: peer, cls: .node}
    functions:
      - {name: step, function: .work, immutable: true, outputCls: .node}
      - {name: mut, function: .work}
      - {name: peek, function: .work, immutable: true}
      - {name: hidden, function: .work, access: INTERNAL}
      - {name: secret, function: .work, access: PRIVATE}
      - {name: speak, function: .work, immutable: true}
      - {name: call, function: .work}
      - {name: token, function: .work, immutable: true}
      - {name: token1s, function: .short, immutable: true}
      - {name: chain, function: .chain}
      - {name: fan, function: .fan}
      - {name: subst, function: .subst}
      - {name: miss, function: .miss}
      - {name: failing, function: .failing}
      - {name: idem, function: .idem}
      - {name: inner, function: .inner}
      - {name: outer, function: .outer}
      - {name: talk, function: .talk}
      - {name: slowchain, function: .slowchain}
      - {name: usehidden, function: .usehidden}
      - {name: usesecret, function: .usesecret}
      - {name: viaref, function: .viaref}
  - name: derived
    parents: [.node]
    functions:
      - {name: speak, function: .derived, immutable: true}
  - name: caller
    functions:
      - {name: call, function: .work}
functions:
  - name: work
    provision:
      process: @PROC@
  - name: derived
    provision:
      process: @PROC@
  - name: short
    provision:
      process: @PROC@
    config: {timeout: 1s}
  - name: chain
    type: MACRO
    macro:
      steps:
        - {function: step, as: a, args: {ms: "150", tag: a}}
        - {function: step, target: a, as: b, args: {ms: "150", tag: b, num: "${a|body|$.num}"}}
        - {function: step, as: c, args: {ms: "150", tag: c, num: "${b|body|$.num}"}}
      output: c
      bodyTemplate: {nums: ["${a|body|$.num}", "${b|body|$.num}", "${c|body|$.num}"]}
  - name: fan
    type: MACRO
    macro:
      steps:
        - {function: step, as: p1, args: {ms: "400", tag: p1}}
        - {function: step, as: p2, args: {ms: "400", tag: p2}}
        - {function: step, as: p3, args: {ms: "400", tag: p3}}
        - {function: step, as: p4, args: {ms: "400", tag: p4}}
      output: p4
  - name: subst
    type: MACRO
    macro:
      steps:
        - as: s1
          function: step
          args:
            tag: s1
            fromArgs: "${@|args|$.q}"
            fromBody: "${@|body|$.x}"
            fromMain: "${@|output|$.data.name}"
            mainId: "${@|output|$._meta.id}"
            objText: "${@|body|$.obj}"
            splice: "pre-${@|args|$.q}-post"
            literal: "$${@|args|$.q}"
          bodyTemplate:
            whole: "${@|body|$.obj}"
            num: "${@|body|$.x}"
            arr: "${@|output|$.data.nums}"
            embedded: "x=${@|body|$.x}!"
            lit: "$${not}"
            nested: ["${@|args|$.q}", {deep: "${@|body|$.x}"}]
        - as: s2
          function: step
          target: s1
          args:
            tag: s2
            prevArg: "${s1|args|$.fromArgs}"
            prevBody: "${s1|body|$.num}"
            prevOut: "${s1|output|$.data.args.splice}"
            prevOutId: "${s1|output|$._meta.id}"
        - function: mut
          args: {tag: m}
      output: s2
      bodyTemplate:
        s1num: "${s1|body|$.num}"
        s1echo: "${s1|body|$.body}"
        s2args: "${s2|args|$}"
        s2from: "${s2|output|$.data.from}"
        mainArgs: "${@|args|$}"
        mainBody: "${@|body|$}"
        startCount: "${@|output|$.data.count}"
        afterCount: "${_2|output|$.data.count}"
        lit: "cost $${5}"
        typed: "${@|body|$.obj.a}"
        embedded: "q=${@|args|$.q};n=${s1|body|$.num}"
  - name: miss
    type: MACRO
    macro:
      steps:
        - {function: step, as: m1, args: {tag: miss, v: "${@|body|$.missing}"}}
  - name: failing
    type: MACRO
    macro:
      steps:
        - {function: step, as: okay, args: {tag: okay}}
        - {function: step, as: broken, args: {tag: broken, fail: "1"}}
        - {function: step, as: child, target: broken, args: {tag: child}}
        - {function: step, as: grandchild, args: {tag: grandchild, num: "${child|body|$.num}"}}
        - {function: mut, as: aside, args: {tag: aside}}
      output: grandchild
  - name: idem
    type: MACRO
    macro:
      steps:
        - {function: step, as: x, args: {tag: x}}
        - {function: step, as: y, target: x, args: {tag: y}}
        - {function: mut, as: z, args: {tag: z}}
      output: y
  - name: inner
    type: MACRO
    macro:
      steps:
        - {function: step, as: x, args: {tag: inner-x, num: "${@|args|$.n}"}}
      output: x
      bodyTemplate: {innerNum: "${x|body|$.num}"}
  - name: outer
    type: MACRO
    macro:
      steps:
        - {function: inner, as: i, args: {n: "100"}}
        - {function: step, as: after, args: {tag: after, num: "${i|body|$.innerNum}"}}
      output: after
      bodyTemplate: {fromInner: "${i|body|$.innerNum}", final: "${after|body|$.num}"}
  - name: talk
    type: MACRO
    macro:
      steps:
        - {function: speak, as: s, args: {tag: talk}}
      bodyTemplate: {said: "${s|body|$.said}", cls: "${s|output|$._meta.cls}"}
  - name: slowchain
    type: MACRO
    macro:
      steps:
        - {function: step, as: a, args: {ms: "300", tag: a}}
        - {function: step, as: b, args: {ms: "300", tag: b, num: "${a|body|$.num}"}}
      output: b
      bodyTemplate: {n: "${b|body|$.num}"}
  - name: usehidden
    type: MACRO
    macro:
      steps:
        - {function: hidden, as: h, args: {tag: h}}
      bodyTemplate: {count: "${h|output|$.data.count}"}
  - name: usesecret
    type: MACRO
    macro:
      steps:
        - {function: secret, as: s, args: {tag: s}}
      bodyTemplate: {count: "${s|output|$.data.count}"}
  - name: viaref
    type: MACRO
    macro:
      steps:
        - {function: mut, target: "@.peer", as: p, args: {tag: p}}
        - {function: step, target: "@.peer", as: q, args: {tag: q, after: "${p|output|$.data.count}"}}
        - {function: peek, target: p, as: r, args: {tag: r}}
      output: q
      bodyTemplate: {peerCount: "${p|output|$.data.count}", qFrom: "${q|output|$.data.from}"}
"#;

/// The process provision of flow.py (flow-style YAML): the repository's
/// SDK on `PYTHONPATH`, run records in `runs`.
pub fn process(runs: &Path) -> String {
    let quoted = |p: &Path| Value::String(p.display().to_string()).to_string();
    let script = repo_root().join("crates/oprc-server/tests/it/fixtures/flow.py");
    format!(
        "{{command: [python3, {}], env: {{PYTHONPATH: {}, FLOW_RUNS: {}}}, \
         maxInstances: 1, concurrency: 64}}",
        quoted(&script),
        quoted(&repo_root().join("sdk/python")),
        quoted(runs),
    )
}

/// The package `f` with its functions recording runs in `runs`.
pub fn flow_package(runs: &Path) -> String {
    FLOW_PACKAGE.replace("@PROC@", &process(runs))
}

/// A node with package `f` (and `extra` packages, where `@PROC@` is
/// replaced too) and the directory its functions record their runs in.
pub struct Flow {
    pub node: Node,
    runs: tempfile::TempDir,
}

impl Flow {
    pub async fn start(extra: &[&str]) -> Flow {
        let runs = tempfile::tempdir().expect("runs dir");
        let mut packages = vec![flow_package(runs.path())];
        packages.extend(
            extra
                .iter()
                .map(|p| p.replace("@PROC@", &process(runs.path()))),
        );
        let node = Node::start(&packages).await;
        Flow { node, runs }
    }

    /// The directory the functions record their runs in.
    pub fn runs_dir(&self) -> &Path {
        self.runs.path()
    }

    /// Every run recorded so far, in no particular order.
    pub fn runs(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.runs.path()).expect("read runs") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).expect("read run");
                out.push(serde_json::from_str(&text).expect("run is JSON"));
            }
        }
        out
    }

    /// The runs whose `tag` arg is `tag`.
    pub fn tagged(&self, tag: &str) -> Vec<Value> {
        self.runs()
            .into_iter()
            .filter(|r| r["tag"] == tag)
            .collect()
    }

    /// POSTs to `path` with an optional JSON body and Idempotency-Key.
    pub async fn send(
        &self,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .node
            .client
            .post(format!("{}{path}", self.node.url))
            .bearer_auth(&self.node.token)
            .timeout(Duration::from_secs(60));
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Calls `fb` on object `oid` of `cls` (`query` without the `?`).
    pub async fn invoke(
        &self,
        cls: &str,
        oid: &str,
        fb: &str,
        query: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        self.send(
            &format!("/api/classes/{cls}/objects/{oid}/invokes/{fb}{q}"),
            body,
            None,
        )
        .await
    }

    /// The status of `GET` on object `oid` of `cls`.
    pub async fn object_status(&self, cls: &str, oid: &str) -> StatusCode {
        self.node
            .get(&format!("/api/classes/{cls}/objects/{oid}"))
            .await
            .0
    }

    /// Calls the `step` binding once, so the worker process is up before
    /// something is timed.
    pub async fn warm_up(&self, oid: &str) {
        let (s, v) = self.invoke("f.node", oid, "step", "tag=warm", None).await;
        assert_eq!(s, StatusCode::OK, "warm-up: {v}");
    }
}

/// The report of step `name` in a macro answer.
#[track_caller]
pub fn step<'a>(answer: &'a Value, name: &str) -> &'a Value {
    answer["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {answer}"))
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step `{name}` in {answer}"))
}

/// The output id the macro answer lists for step `name`.
#[track_caller]
pub fn macro_id(answer: &Value, name: &str) -> String {
    answer["macroIds"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no macroIds.{name} in {answer}"))
        .to_owned()
}

fn ms(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not a time: {v}"))
}

#[tokio::test]
async fn chain_steps_run_in_dependency_order_by_their_own_clocks() {
    let flow = Flow::start(&[]).await;
    flow.node.new_object("f.node", r#"{"id": "m"}"#).await;
    let (s, v) = flow.invoke("f.node", "m", "chain", "", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    let inv = v["invId"].as_str().expect("invId").to_owned();
    for name in ["a", "b", "c"] {
        let st = step(&v, name);
        assert_eq!(st["status"], "SUCCEEDED", "{v}");
        // Without a key, step ids are `<macro invId>.<step>`, and a step
        // with an output class makes its output object under that id.
        assert_eq!(st["invId"], format!("{inv}.{name}"), "{v}");
        assert_eq!(macro_id(&v, name), format!("{inv}.{name}"), "{v}");
    }
    assert_eq!(v["output"]["_meta"]["id"], macro_id(&v, "c"), "{v}");
    // Each step got the number the one before it answered.
    assert_eq!(v["body"], json!({"nums": [42, 43, 44]}), "{v}");

    let mut rec = Vec::new();
    for name in ["a", "b", "c"] {
        rec.push(flow.node.object("f.node", &macro_id(&v, name)).await["data"].clone());
    }
    let (a, b, c) = (&rec[0], &rec[1], &rec[2]);
    assert!(
        ms(&a["endedAt"]) <= ms(&b["startedAt"]),
        "b started before a ended: {a} {b}"
    );
    assert!(
        ms(&b["endedAt"]) <= ms(&c["startedAt"]),
        "c started before b ended: {b} {c}"
    );
    // b targets a: it ran on a's output object; c on the main object.
    assert_eq!(b["from"], macro_id(&v, "a"), "{b}");
    assert_eq!(
        step(&v, "b")["target"],
        json!({"cls": "f.node", "oid": macro_id(&v, "a")}),
        "{v}"
    );
    assert_eq!(c["from"], "m", "{c}");
    for tag in ["a", "b", "c"] {
        assert_eq!(flow.tagged(tag).len(), 1, "step {tag} ran once");
    }
    flow.node.stop().await;
}

#[tokio::test]
async fn independent_steps_run_in_parallel() {
    let flow = Flow::start(&[]).await;
    flow.node.new_object("f.node", r#"{"id": "m"}"#).await;
    flow.warm_up("m").await;
    let started = Instant::now();
    let (s, v) = flow.invoke("f.node", "m", "fan", "", None).await;
    let took = started.elapsed();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    for name in ["p1", "p2", "p3", "p4"] {
        let data = flow.node.object("f.node", &macro_id(&v, name)).await["data"].clone();
        starts.push(ms(&data["startedAt"]));
        ends.push(ms(&data["endedAt"]));
    }
    let (last_start, first_end) = (*starts.iter().max().unwrap(), *ends.iter().min().unwrap());
    assert!(
        last_start < first_end,
        "the four 400 ms steps did not all overlap: starts {starts:?}, ends {ends:?}"
    );
    let span = ends.iter().max().unwrap() - starts.iter().min().unwrap();
    assert!(
        span < 1000,
        "the steps spanned {span} ms (one after another would be 1600)"
    );
    assert!(
        took < Duration::from_millis(1500),
        "the macro took {took:?}; its four 400 ms steps one after another take 1600 ms"
    );
    flow.node.stop().await;
}

#[tokio::test]
async fn every_substitution_kind_renders_with_its_type() {
    let flow = Flow::start(&[]).await;
    flow.node
        .new_object(
            "f.node",
            r#"{"id": "m", "data": {"name": "box", "nums": [1, 2, 3], "count": 0}}"#,
        )
        .await;
    let body = json!({"x": 5, "obj": {"a": 1}});
    let (s, v) = flow
        .invoke("f.node", "m", "subst", "q=hello", Some(&body))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    let s1 = macro_id(&v, "s1");

    // s1's rendered args (strings) and body, as its function got them.
    let s1_data = flow.node.object("f.node", &s1).await["data"].clone();
    let args = &s1_data["args"];
    assert_eq!(args["fromArgs"], "hello", "@ args: {args}");
    assert_eq!(
        args["fromBody"], "5",
        "a number in args is its JSON text: {args}"
    );
    assert_eq!(args["fromMain"], "box", "@ output data: {args}");
    assert_eq!(args["mainId"], "m", "@ output _meta: {args}");
    let obj_text: Value =
        serde_json::from_str(args["objText"].as_str().expect("objText is a string"))
            .expect("an object in args is its JSON text");
    assert_eq!(obj_text, json!({"a": 1}));
    assert_eq!(args["splice"], "pre-hello-post", "{args}");
    assert_eq!(
        args["literal"], "${@|args|$.q}",
        "$${{ is a literal: {args}"
    );
    assert_eq!(
        s1_data["body"],
        json!({
            "whole": {"a": 1},
            "num": 5,
            "arr": [1, 2, 3],
            "embedded": "x=5!",
            "lit": "${not}",
            "nested": ["hello", {"deep": 5}],
        }),
        "s1's bodyTemplate"
    );

    // s2 ran on s1's output object, with s1's args, body and output.
    let s2_data = flow.node.object("f.node", &macro_id(&v, "s2")).await["data"].clone();
    assert_eq!(s2_data["from"], s1.as_str(), "{s2_data}");
    let expected_s2_args = json!({
        "tag": "s2",
        "prevArg": "hello",
        "prevBody": "42",
        "prevOut": "pre-hello-post",
        "prevOutId": s1,
    });
    assert_eq!(s2_data["args"], expected_s2_args, "{s2_data}");

    // The unnamed third step is `_2`; it mutated the main object.
    assert_eq!(step(&v, "_2")["status"], "SUCCEEDED", "{v}");
    assert_eq!(flow.node.object("f.node", "m").await["data"]["count"], 1);

    assert_eq!(v["output"]["_meta"]["id"], macro_id(&v, "s2"), "{v}");
    assert_eq!(
        v["body"],
        json!({
            "s1num": 42,
            "s1echo": s1_data["body"],
            "s2args": expected_s2_args,
            "s2from": s1,
            "mainArgs": {"q": "hello"},
            "mainBody": body,
            "startCount": 0,
            "afterCount": 1,
            "lit": "cost ${5}",
            "typed": 1,
            "embedded": "q=hello;n=42",
        }),
        "the macro's bodyTemplate"
    );
    flow.node.stop().await;
}
