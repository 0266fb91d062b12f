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
