//! Client commands against a scripted fake node: what is sent, what is
//! printed where, and the exit codes.

use serde_json::{Value, json};

use crate::fake::Fake;
use crate::{oprc, oprc_stdin};

fn fixed(status: u16, body: Value) -> impl Fn(&crate::fake::Request, usize) -> (u16, String) {
    move |_, _| (status, body.to_string())
}

#[test]
fn invoke_sends_the_target_args_flags_key_and_body() {
    let node = Fake::start(fixed(202, json!({"invId": "i1", "status": "QUEUE"})));
    let r = oprc(&[
        "--url",
        &node.url,
        "--token",
        "s3cret",
        "invoke",
        "ex.c/a/b",
        "f",
        "--arg",
        "x=1",
        "--arg",
        "q=a=b",
        "--async",
        "--show-main",
        "--idempotency-key",
        "k1",
        "--body",
        r#"{"n":1}"#,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let out: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(out["status"], "QUEUE");
    let reqs = node.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.target,
        "/api/classes/ex.c/objects/a%2Fb/invokes/f?x=1&q=a%3Db&_async=true&_showMain=true"
    );
    assert_eq!(req.header("idempotency-key"), Some("k1"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(
        serde_json::from_str::<Value>(&req.body).unwrap(),
        json!({"n": 1})
    );
}

#[test]
fn a_class_level_call_has_no_object_and_may_read_the_body_from_stdin() {
    let node = Fake::start(fixed(
        200,
        json!({"invId": "i1", "status": "SUCCEEDED", "body": {"ok": true}}),
    ));
    let r = oprc_stdin(
        &["--url", &node.url, "invoke", "ex.c", "stats", "--body", "-"],
        r#"{"k": [1]}"#,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let req = &node.requests()[0];
    assert_eq!(req.target, "/api/classes/ex.c/invokes/stats");
    assert_eq!(req.body, r#"{"k":[1]}"#);
    assert_eq!(req.header("content-type"), Some("application/json"));
}

#[test]
fn a_failed_invocation_prints_the_answer_and_exits_1() {
    let node = Fake::start(fixed(
        422,
        json!({"invId": "i1", "status": "FAILED",
        "error": {"code": "function_failed", "message": "boom"}}),
    ));
    let r = oprc(&["--url", &node.url, "invoke", "ex.c/o1", "f"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("\"FAILED\""), "{r:?}");
    assert!(
        r.stderr.contains("error: boom (function_failed, HTTP 422)"),
        "{r:?}"
    );
}

#[test]
fn refused_requests_exit_1_and_node_failures_exit_3() {
    let node = Fake::start(fixed(
        404,
        json!({"error": {"code": "not_found", "message": "class `x` does not exist"}}),
    ));
    let r = oprc(&["--url", &node.url, "cls", "get", "x"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr,
        "error: class `x` does not exist (not_found, HTTP 404)\n"
    );
    assert!(r.stdout.is_empty());

    let node = Fake::start(fixed(
        503,
        json!({"error": {"code": "unavailable", "message": "storage is unavailable; retry later"}}),
    ));
    let r = oprc(&["--url", &node.url, "obj", "get", "c", "o"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("(unavailable, HTTP 503)"), "{r:?}");
}

#[test]
fn an_invalid_package_lists_its_problems_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pkg.yaml");
    std::fs::write(&file, "name: t\nclasses:\n  - nam: c\n").unwrap();
    let node = Fake::start(fixed(
        400,
        json!({"error": {"code": "invalid_package",
        "message": "the package is invalid (1 problem); nothing was stored",
        "details": [{"line": 3, "column": 7, "path": "classes[0]", "message": "unknown field `nam`",
                     "text": "3:7: classes[0]: unknown field `nam`"}]}}),
    ));
    let r = oprc(&["--url", &node.url, "pkg", "apply", file.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    let expected = format!("{}:3:7: classes[0]: unknown field `nam`", file.display());
    assert!(r.stderr.lines().next() == Some(expected.as_str()), "{r:?}");
    assert!(r.stderr.contains("(invalid_package, HTTP 400)"), "{r:?}");
    assert_eq!(node.requests()[0].body, "name: t\nclasses:\n  - nam: c\n");
    assert_eq!(
        node.requests()[0].header("content-type"),
        Some("application/yaml")
    );
}

#[test]
fn apply_prints_the_package_and_warnings_go_to_stderr() {
    let node = Fake::start(fixed(
        201,
        json!({"package": {"name": "t", "classes": [{"name": "c"}], "functions": []},
        "warnings": [{"text": "2:1: stateType: accepted but not used yet"}]}),
    ));
    let r = oprc_stdin(
        &["--url", &node.url, "-o", "yaml", "pkg", "apply", "-"],
        "name: t\n",
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("name: t\n"), "{r:?}");
    assert!(
        r.stderr.contains("warning: <stdin>:2:1: stateType"),
        "{r:?}"
    );
    assert!(r.stderr.contains("package `t` created"), "{r:?}");
}

#[test]
fn wait_polls_the_invocation_until_it_is_final() {
    let node = Fake::start(|req, n| {
        let status = match (req.method.as_str(), n) {
            ("POST", _) => "QUEUE",
            (_, 1) => "DOING",
            _ => "SUCCEEDED",
        };
        (
            if status == "SUCCEEDED" { 200 } else { 202 },
            json!({"invId": "i1", "status": status}).to_string(),
        )
    });
    let r = oprc(&[
        "--url", &node.url, "invoke", "c/o", "f", "--async", "--wait",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let out: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(out["status"], "SUCCEEDED");
    let reqs = node.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[1].target, "/api/invocations/i1");
}

#[test]
fn wait_gives_up_with_exit_4() {
    let node = Fake::start(fixed(202, json!({"invId": "i1", "status": "QUEUE"})));
    let r = oprc(&[
        "--url",
        &node.url,
        "invoke",
        "c/o",
        "f",
        "--async",
        "--wait",
        "--timeout",
        "300ms",
    ]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("oprc inv get i1"), "{r:?}");
    assert!(r.stdout.contains("\"QUEUE\""), "{r:?}");
}

#[test]
fn a_failed_record_exits_1() {
    let node = Fake::start(fixed(
        200,
        json!({"invId": "i1", "status": "FAILED",
        "error": {"code": "function_timeout", "message": "no answer in 30s"}}),
    ));
    let r = oprc(&["--url", &node.url, "inv", "get", "i1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("error: no answer in 30s (function_timeout)"),
        "{r:?}"
    );
}

#[test]
fn obj_list_all_follows_next_and_prints_a_table() {
    let node = Fake::start(|req, _| {
        let obj = |id: &str| json!({"_meta": {"id": id, "cls": "t.c", "revision": 1}, "data": {}});
        let page = if req.target.contains("after=o1") {
            json!({"items": [obj("o2")]})
        } else {
            json!({"items": [obj("o1")], "next": "o1"})
        };
        (200, page.to_string())
    });
    let r = oprc(&[
        "--url", &node.url, "obj", "list", "t.c", "--limit", "1", "--all",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        "ID   CLASS   REVISION   DATA\no1   t.c     1          {}\no2   t.c     1          {}\n"
    );
    let targets: Vec<_> = node.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(
        targets,
        [
            "/api/classes/t.c/objects?limit=1",
            "/api/classes/t.c/objects?limit=1&after=o1"
        ]
    );

    let r = oprc(&["--url", &node.url, "-o", "json", "obj", "list", "t.c"]);
    let out: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(out["next"], "o1");
    assert!(r.stderr.contains("--after o1"), "{r:?}");
}

#[test]
fn obj_new_sends_id_and_data_and_prints_the_object() {
    let node = Fake::start(fixed(
        200,
        json!({"invId": "i1", "status": "SUCCEEDED",
        "output": {"_meta": {"id": "o1", "cls": "t.c", "revision": 1}, "data": {"n": 1}}}),
    ));
    let r = oprc(&[
        "--url",
        &node.url,
        "obj",
        "new",
        "t.c",
        "--id",
        "o1",
        "--data",
        r#"{"n":1}"#,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let out: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(out["_meta"]["id"], "o1");
    let req = &node.requests()[0];
    assert_eq!(req.target, "/api/classes/t.c/invokes/new");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&req.body).unwrap(),
        json!({"id": "o1", "data": {"n": 1}})
    );
}

#[test]
fn catalogue_lists_page_through_everything() {
    let node = Fake::start(|req, _| {
        let items = if req.target.contains("offset=0") {
            json!([{"key": "t.a", "parents": [], "bindings": {"get": {}}}])
        } else {
            json!([{"key": "t.b", "parents": ["t.a"], "bindings": {}}])
        };
        (
            200,
            json!({"items": items, "offset": 0, "total": 2}).to_string(),
        )
    });
    let r = oprc(&["--url", &node.url, "cls", "list"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        "KEY   PARENTS   FUNCTIONS\nt.a   -         get\nt.b   t.a       -\n"
    );
    assert_eq!(node.requests().len(), 2);
}

#[test]
fn a_call_without_a_body_sends_no_content_type() {
    let node = Fake::start(fixed(200, json!({"invId": "i1", "status": "SUCCEEDED"})));
    let r = oprc(&["--url", &node.url, "invoke", "ex.c/o", "f"]);
    assert_eq!(r.code, 0, "{r:?}");
    let req = &node.requests()[0];
    assert_eq!(req.header("content-type"), None);
    assert!(req.body.is_empty());
}

#[test]
fn refusals_name_what_to_do() {
    let node = Fake::start(fixed(
        401,
        json!({"error": {"code": "unauthorized", "message": "changing packages needs the admin token"}}),
    ));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.json");
    std::fs::write(&file, r#"{"name": "p"}"#).unwrap();
    let r = oprc(&[
        "--url",
        &node.url,
        "--data-dir",
        dir.path().to_str().unwrap(),
        "pkg",
        "apply",
        file.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("hint: pass the node's token with --token"),
        "{r:?}"
    );
    let req = &node.requests()[0];
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("authorization"), None);

    // A node on this machine: its admin token is read from the data dir.
    std::fs::write(dir.path().join("admin-token"), "from-file\n").unwrap();
    let r = oprc(&[
        "--url",
        &node.url,
        "--data-dir",
        dir.path().to_str().unwrap(),
        "pkg",
        "apply",
        file.to_str().unwrap(),
    ]);
    assert!(r.stderr.contains("refused the admin token in"), "{r:?}");
    assert_eq!(
        node.requests()[1].header("authorization"),
        Some("Bearer from-file")
    );

    for (status, code, hint) in [
        (415, "unsupported_media_type", "JSON"),
        (421, "misdirected", "--public-host"),
        (429, "too_many_requests", "busy"),
    ] {
        let node = Fake::start(fixed(
            status,
            json!({"error": {"code": code, "message": "m"}}),
        ));
        let r = oprc(&["--url", &node.url, "cls", "list"]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains(hint), "{status}: {r:?}");
    }
}
