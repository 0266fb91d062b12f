//! The served OpenAPI document tells the truth: every documented operation
//! is routed, and real answers validate against the schema documented for
//! their status.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Node, behave_package};

async fn document(node: &Node) -> Value {
    let (s, doc) = node.get("/api/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    doc
}

/// `~` and `/` escaped for a JSON pointer.
fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Checks `body`, answered with `status` by `method path`, against the
/// document.
fn check(doc: &Value, method: &str, path: &str, status: StatusCode, body: &Value) {
    let response = format!(
        "/paths/{}/{method}/responses/{}",
        escape(path),
        status.as_u16()
    );
    let Some(content) = doc.pointer(&response) else {
        panic!("{method} {path} answered {status}, which is not documented");
    };
    if content
        .pointer("/content/application~1json/schema")
        .is_none()
    {
        assert!(
            body.is_null(),
            "{method} {path} {status}: undocumented body {body}"
        );
        return;
    }
    let mut root = doc.clone();
    // A URI fragment: path templates' braces are percent-encoded.
    let fragment = response.replace('{', "%7B").replace('}', "%7D");
    root["$ref"] = json!(format!("#{fragment}/content/application~1json/schema"));
    let validator = jsonschema::validator_for(&root)
        .unwrap_or_else(|e| panic!("the document is not a valid schema: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {body}\ndoes not match the document: {errors:#?}"
    );
}

#[tokio::test]
async fn answers_match_the_documented_schemas() {
    let node = Node::start(&[behave_package()]).await;
    let doc = document(&node).await;
    node.new_object("t.thing", r#"{"id": "o", "data": {"count": 1}}"#)
        .await;
    let (_, queued) = node
        .post("/api/classes/t.thing/objects/o/invokes/inc?_async=true", "")
        .await;
    let inv = queued["invId"]
        .as_str()
        .expect("an invocation id")
        .to_owned();
    node.wait_invocation(&inv).await;
    let objects = "/api/classes/{cls}/objects/{oid}";
    let object_call = "/api/classes/{cls}/objects/{oid}/invokes/{fb}";
    let class_call = "/api/classes/{cls}/invokes/{fb}";
    let cases: Vec<(&str, &str, String, Option<&str>)> = vec![
        ("get", "/api/packages", "/api/packages".into(), None),
        (
            "get",
            "/api/packages/{name}",
            "/api/packages/t".into(),
            None,
        ),
        (
            "get",
            "/api/packages/{name}",
            "/api/packages/nope".into(),
            None,
        ),
        ("get", "/api/classes", "/api/classes".into(), None),
        ("get", "/api/classes", "/api/classes?limit=0".into(), None),
        (
            "get",
            "/api/classes/{cls}",
            "/api/classes/t.thing".into(),
            None,
        ),
        (
            "get",
            "/api/classes/{cls}",
            "/api/classes/a%20b".into(),
            None,
        ),
        ("get", "/api/functions", "/api/functions".into(), None),
        (
            "get",
            "/api/functions/{key}",
            "/api/functions/t.behave".into(),
            None,
        ),
        (
            "get",
            "/api/classes/{cls}/objects",
            "/api/classes/t.thing/objects?limit=1".into(),
            None,
        ),
        (
            "get",
            objects,
            "/api/classes/t.thing/objects/o".into(),
            None,
        ),
        (
            "get",
            objects,
            "/api/classes/t.thing/objects/nope".into(),
            None,
        ),
        (
            "get",
            "/api/invocations/{id}",
            format!("/api/invocations/{inv}"),
            None,
        ),
        (
            "get",
            "/api/invocations/{id}",
            "/api/invocations/nope".into(),
            None,
        ),
        (
            "post",
            object_call,
            "/api/classes/t.thing/objects/o/invokes/inc?_showMain=true".into(),
            None,
        ),
        (
            "post",
            object_call,
            "/api/classes/t.thing/objects/o/invokes/fail".into(),
            None,
        ),
        (
            "post",
            object_call,
            "/api/classes/t.thing/objects/o/invokes/garbage".into(),
            None,
        ),
        (
            "post",
            object_call,
            "/api/classes/t.thing/objects/o/invokes/secret".into(),
            None,
        ),
        (
            "post",
            object_call,
            "/api/classes/t.thing/objects/o/invokes/update".into(),
            Some("{bad"),
        ),
        (
            "post",
            object_call,
            "/api/classes/t.thing/objects/o/invokes/echo?_async=true".into(),
            None,
        ),
        (
            "get",
            object_call,
            "/api/classes/t.thing/objects/o/invokes/get".into(),
            None,
        ),
        (
            "post",
            class_call,
            "/api/classes/t.thing/invokes/new".into(),
            Some(r#"{"id": "o"}"#),
        ),
        (
            "post",
            class_call,
            "/api/classes/t.thing/invokes/make".into(),
            None,
        ),
        (
            "post",
            "/api/packages",
            "/api/packages".into(),
            Some("name: t2\n"),
        ),
        (
            "post",
            "/api/packages",
            "/api/packages".into(),
            Some("name: t2\nclasses: 7\n"),
        ),
    ];
    for (method, template, path, body) in cases {
        let m: Method = method.to_uppercase().parse().unwrap();
        let (status, answer) = node.request(m, &path, body).await;
        check(&doc, method, template, status, &answer);
    }
    node.stop().await;
}

/// Every documented operation reaches a handler (not the router's
/// fallbacks), with the placeholders filled in.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let node = Node::start(&[behave_package()]).await;
    let doc = document(&node).await;
    let mut seen = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        let path = template
            .replace("{cls}", "t.thing")
            .replace("{oid}", "o")
            .replace("{fb}", "echo")
            .replace("{name}", "nope")
            .replace("{key}", "t.behave")
            .replace("{id}", "nope");
        for method in item.as_object().unwrap().keys() {
            let m: Method = method.to_uppercase().parse().unwrap();
            let resp = node
                .client
                .request(m, format!("{}{path}", node.url))
                .bearer_auth(&node.token)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap();
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {template}"
            );
            assert!(
                !text.contains("no such route"),
                "{method} {template}: {text}"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 22);
    node.stop().await;
}
