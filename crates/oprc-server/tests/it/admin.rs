//! No unauthenticated caller can make a node spawn a process: changing
//! packages needs the admin token, and a node can refuse process
//! functions altogether.

use reqwest::StatusCode;

use crate::harness::Node;

/// `POST /api/packages` without any token.
async fn apply_anonymously(node: &Node, source: &str) -> (StatusCode, serde_json::Value) {
    let resp = node
        .client
        .post(format!("{}/api/packages", node.url))
        .header("content-type", "application/yaml")
        .body(source.to_owned())
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

#[tokio::test]
async fn package_changes_need_the_admin_token_from_the_data_dir() {
    let node = Node::start(&[]).await;
    let file = oprc_server::admin_token_path(&node.data_dir.path().join("data"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is private");
    }
    let (s, v) = apply_anonymously(&node, "name: p\n").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("admin-token") && message.contains("--data-dir"),
        "{message}"
    );
    let delete = node
        .client
        .delete(format!("{}/api/packages/p", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::UNAUTHORIZED);
    let wrong = node
        .client
        .post(format!("{}/api/packages", node.url))
        .bearer_auth("guess")
        .header("content-type", "application/yaml")
        .body("name: p\n")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    // With the token from the file: applied. Reads and calls need none.
    let (s, v) = node
        .post("/api/packages", "name: p\nclasses:\n  - name: c\n")
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for path in ["/api/packages/p", "/api/classes/p.c", "/api/classes"] {
        let r = node
            .client
            .get(format!("{}{path}", node.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let new = node
        .client
        .post(format!("{}/api/classes/p.c/invokes/new", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(new.status(), StatusCode::OK);

    // The same token after a restart.
    let token = node.token.clone();
    let dir = node.stop().await;
    let node = Node::start_in(dir, &[]).await;
    assert_eq!(node.token, token);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    let (s, v) = node
        .request(reqwest::Method::DELETE, "/api/packages/p", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    node.stop().await;
}

#[tokio::test]
async fn a_node_without_process_functions_refuses_them_at_their_position() {
    let node = Node::start_configured(tempfile::tempdir().unwrap(), &[], |c| {
        c.process_functions = false;
    })
    .await;
    let source = "name: p\nclasses:\n  - name: c\n    functions:\n      - function: .f\n\
                  functions:\n  - name: f\n    provision:\n      process:\n        \
                  command: [sh, -c, \"exit 1\"]\n";
    let (s, v) = node.post("/api/packages", source).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "invalid_package");
    let d = &v["error"]["details"][0];
    assert_eq!(d["path"], "functions[0].provision.process", "{v}");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(10), Some(9)),
        "{v}"
    );
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("--no-process-functions"),
        "{d}"
    );
    assert_eq!(node.get("/api/packages/p").await.0, StatusCode::NOT_FOUND);
    // Functions elsewhere are fine.
    let http = "name: q\nclasses:\n  - name: c\n    functions:\n      - function: .f\n\
                functions:\n  - name: f\n    provision:\n      http: {url: \"http://127.0.0.1:9/\"}\n";
    let (s, v) = node.post("/api/packages", http).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    node.stop().await;
}

#[tokio::test]
async fn stored_process_functions_are_not_started_when_disabled() {
    let node = Node::start(&[]).await;
    let marker = node.data_dir.path().join("ran");
    let source = format!(
        "name: p\nclasses:\n  - name: c\n    functions:\n      - function: .f\n\
         functions:\n  - name: f\n    provision:\n      process:\n        \
         command: [sh, -c, \"touch {}; exit 1\"]\n",
        marker.display()
    );
    let (s, v) = node.post("/api/packages", &source).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let dir = node.stop().await;
    let node = Node::start_configured(dir, &[], |c| c.process_functions = false).await;
    node.new_object("p.c", r#"{"id": "o"}"#).await;
    let (s, v) = node.post("/api/classes/p.c/objects/o/invokes/f", "").await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{v}");
    assert_eq!(v["error"]["code"], "function_unreachable", "{v}");
    assert!(!marker.exists(), "a stored process function was started");
    node.stop().await;
}
