//! Functions written for the original Oparaca with its published Python SDK
//! (`oaas-sdk-py`) run unchanged (DESIGN section 2). `scripts/test.sh`
//! installs the SDK; without it this test fails, it does not skip.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Node, repo_root};

fn package() -> String {
    let script = repo_root().join("crates/oprc-server/tests/it/fixtures/oaas_compat.py");
    format!(
        "name: compat\nclasses:\n  - name: doc\n    functions:\n      - {{name: concat, function: .concat}}\n\
         \x20     - {{name: peek, function: .concat, immutable: true}}\n\
         functions:\n  - name: concat\n    provision:\n      process:\n        command: [python3, \"{}\"]\n",
        script.display()
    )
}

#[tokio::test]
async fn original_python_sdk_functions_run_unchanged() {
    let node = Node::start(&[package()]).await;
    node.new_object("compat.doc", r#"{"id": "d", "data": {"text": "a"}}"#)
        .await;
    for (arg, expected) in [("b", "ab"), ("c", "abc")] {
        let (s, v) = node
            .post(
                &format!("/api/classes/compat.doc/objects/d/invokes/concat?append={arg}"),
                "",
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["body"], json!({"text": expected}), "{v}");
    }
    // Immutable: the original SDK answers `main: {}`, which changes nothing.
    let (s, v) = node
        .post(
            "/api/classes/compat.doc/objects/d/invokes/peek?append=z",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"], json!({"text": "abcz"}));
    let obj = node.object("compat.doc", "d").await;
    assert_eq!(obj["data"], json!({"text": "abc"}));
    assert_eq!(obj["_meta"]["revision"], 3);
    node.stop().await;
}

fn files_package() -> String {
    let script = repo_root().join("crates/oprc-server/tests/it/fixtures/oaas_files.py");
    let process = format!(
        "{{process: {{command: [python3, \"{}\"]}}}}",
        script.display()
    );
    format!(
        r#"
name: compatfiles
classes:
  - name: doc
    stateSpec:
      keySpecs: [{{name: doc}}]
    functions:
      - {{name: rewrite, function: .rewrite}}
      - {{name: publish, function: .publish, immutable: true, outputCls: .doc}}
      - {{name: resource, function: .resource, immutable: true}}
functions:
  - {{name: rewrite, provision: {process}}}
  - {{name: publish, immutable: true, outputCls: .doc, provision: {process}}}
  - {{name: resource, immutable: true, provision: {process}}}
"#
    )
}

/// Uploads file `doc` of an object through the node (which commits it).
async fn put_doc(node: &Node, oid: &str, text: &'static str) {
    let resp = node
        .client
        .put(format!(
            "{}/api/classes/compatfiles.doc/objects/{oid}/files/doc",
            node.url
        ))
        .bearer_auth(&node.token)
        .header("content-type", "application/octet-stream")
        .body(text)
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), StatusCode::OK);
}

/// `GET .../files/{key}`, following the redirect to the file's URL.
async fn file_of(node: &Node, oid: &str) -> String {
    let resp = node
        .client
        .get(format!(
            "{}/api/classes/compatfiles.doc/objects/{oid}/files/doc",
            node.url
        ))
        .bearer_auth(&node.token)
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.expect("text")
}

/// The original SDK's file helpers, unchanged: `load_main_file` on
/// `mainGetKeys`, `upload_main_byte_data` on `mainPutKeys` (it reports the
/// key in `main.updatedKeys` itself), and `allocate_file` /
/// `allocate_collection` / `upload_byte_data` for an output object's file.
#[tokio::test]
async fn original_python_sdk_reads_and_writes_files() {
    let node = Node::start(&[files_package()]).await;
    node.new_object("compatfiles.doc", r#"{"id": "d"}"#).await;
    put_doc(&node, "d", "hello").await;

    let (s, v) = node
        .post(
            "/api/classes/compatfiles.doc/objects/d/invokes/rewrite?append=%20world",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"], json!({"old": "hello", "new": "hello world"}));
    assert_eq!(file_of(&node, "d").await, "hello world");
    let main = node.object("compatfiles.doc", "d").await;
    assert_eq!(main["_meta"]["verIds"]["doc"], v["invId"], "{main}");

    // The output's upload URL from `outputKeys`, then from the allocation
    // alone (as on a platform that sends no `outputKeys`).
    for (via, suffix, encoded) in [("keys", "!", "!"), ("alloc", "?", "%3F")] {
        let (s, v) = node
            .post(
                &format!(
                    "/api/classes/compatfiles.doc/objects/d/invokes/publish?via={via}&suffix={encoded}"
                ),
                "",
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let expected = format!("hello world{suffix}");
        assert_eq!(
            v["body"],
            json!({"allocated": ["doc"], "collection": ["doc"], "text": expected}),
            "{v}"
        );
        let out = v["output"]["_meta"]["id"].as_str().expect("output id");
        assert_eq!(file_of(&node, out).await, expected);
        let obj = node.object("compatfiles.doc", out).await;
        assert_eq!(obj["data"], json!({"length": expected.len()}), "{obj}");
        assert_eq!(obj["_meta"]["verIds"]["doc"], out, "{obj}");
    }
    // Immutable: main is as the rewrite left it.
    assert_eq!(node.object("compatfiles.doc", "d").await, main);
    assert_eq!(file_of(&node, "d").await, "hello world");
    node.stop().await;
}

/// The original SDK's `get_main_resource_url(key)` reads the task's
/// `mainKeys` (the older name of `mainGetKeys`), which the node sends too.
#[tokio::test]
async fn original_python_sdk_reads_files_by_main_resource_url() {
    let node = Node::start(&[files_package()]).await;
    node.new_object("compatfiles.doc", r#"{"id": "r"}"#).await;
    put_doc(&node, "r", "by resource url").await;
    let (s, v) = node
        .post(
            "/api/classes/compatfiles.doc/objects/r/invokes/resource",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"], json!({"text": "by resource url"}));
    node.stop().await;
}
