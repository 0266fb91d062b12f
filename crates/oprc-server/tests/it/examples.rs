//! The shipped examples, run as a user would (Python SDK functions started
//! by the process engine from the repository root).

use reqwest::StatusCode;

use crate::harness::{Node, repo_root};

fn example(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).expect("example package")
}

/// Example packages use commands relative to the repository root, like the
/// README's quick start.
fn at_repo_root() {
    std::env::set_current_dir(repo_root()).expect("cd to the repository root");
}

#[tokio::test]
async fn record_example_inserts_random_pairs_in_place_and_immutably() {
    at_repo_root();
    let node = Node::start(&[example("examples/record/package.yaml")]).await;
    let oid = node.new_object("example.record", r#"{"data": {}}"#).await;
    let (s, v) = node
        .post(
            &format!(
                "/api/classes/example.record/objects/{oid}/invokes/random?n=20&_showMain=true"
            ),
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let data = v["main"]["data"].as_object().expect("data");
    assert_eq!(data.len(), 20, "{v}");
    for (k, val) in data {
        assert_eq!(k.len(), 10);
        assert_eq!(val.as_str().unwrap().len(), 40);
    }
    let (s, v) = node
        .post(
            &format!("/api/classes/example.record/objects/{oid}/invokes/random-copy?n=5"),
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["output"]["_meta"]["id"].is_string(), "{v}");
    let main = node.object("example.record", &oid).await;
    assert_eq!(
        main["data"].as_object().unwrap().len(),
        20,
        "main untouched"
    );
    node.stop().await;
}

#[tokio::test]
async fn derived_class_dispatches_to_its_override() {
    at_repo_root();
    let node = Node::start(&[example("examples/inheritance/package.yaml")]).await;
    let (s, class) = node.get("/api/classes/inheritance.dog").await;
    assert_eq!(s, StatusCode::OK, "{class}");
    // The resolved view marks what is inherited and what is overridden.
    let bindings = &class["bindings"];
    assert_eq!(
        bindings["describe"]["inheritedFrom"], "inheritance.animal",
        "{class}"
    );
    assert!(
        bindings["speak"]
            .get("inheritedFrom")
            .is_none_or(|v| v.is_null()),
        "{class}"
    );
    assert_eq!(
        bindings["speak"]["function"], "inheritance.dog-speak",
        "{class}"
    );
    let dog = node.new_object("inheritance.dog", r#"{"id": "rex"}"#).await;
    let animal = node
        .new_object("inheritance.animal", r#"{"id": "generic"}"#)
        .await;
    let (_, d) = node
        .post(
            &format!("/api/classes/inheritance.dog/objects/{dog}/invokes/speak"),
            "",
        )
        .await;
    let (_, a) = node
        .post(
            &format!("/api/classes/inheritance.animal/objects/{animal}/invokes/speak"),
            "",
        )
        .await;
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    assert_eq!(a["status"], "SUCCEEDED", "{a}");
    assert_ne!(d["body"], a["body"], "dog overrides speak: {d} vs {a}");
    node.stop().await;
}
