//! Web pages cannot use a node: cross-site requests, foreign `Host`s (DNS
//! rebinding) and bodies a page can send without a CORS preflight are
//! refused; allowed origins get CORS.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::Node;
use crate::raw;

/// A package whose function runs a command that leaves `marker`, as soon
/// as the package is applied (`minInstances: 1`).
fn marker_package(marker: &std::path::Path) -> String {
    format!(
        "name: evil\nclasses:\n  - name: c\n    functions:\n      - function: .f\n\
         functions:\n  - name: f\n    provision:\n      process:\n        \
         command: [sh, -c, \"touch {}; sleep 30\"]\n        minInstances: 1\n",
        marker.display()
    )
}

/// A request as a browser would send it: no token, the given headers.
async fn browser(
    node: &Node,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut req = node.client.request(method, format!("{}{path}", node.url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if !body.is_empty() {
        req = req.body(body.to_owned());
    }
    let resp = req.send().await.expect("request");
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    )
}

#[tokio::test]
async fn a_cross_site_package_never_runs_its_command() {
    let node = Node::start(&[]).await;
    let marker = node.data_dir.path().join("ran");
    let package = marker_package(&marker);
    let auth = format!("Bearer {}", node.token);
    let post = reqwest::Method::POST;
    // A form or `fetch(no-cors)` from another site: text/plain, an Origin.
    let (s, v, _) = browser(
        &node,
        post.clone(),
        "/api/packages",
        &[
            ("content-type", "text/plain;charset=UTF-8"),
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        &package,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("--allow-origin http://evil.example"),
        "{message}"
    );
    // Even with the admin token (a page cannot have it), a foreign origin
    // or a cross-site fetch is refused.
    for headers in [
        vec![
            ("origin", "http://evil.example"),
            ("authorization", auth.as_str()),
        ],
        vec![
            ("sec-fetch-site", "cross-site"),
            ("authorization", auth.as_str()),
        ],
        vec![
            ("sec-fetch-site", "same-site"),
            ("authorization", auth.as_str()),
        ],
    ] {
        let mut headers = headers;
        headers.push(("content-type", "application/yaml"));
        let (s, v, _) = browser(&node, post.clone(), "/api/packages", &headers, &package).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{headers:?}: {v}");
    }
    // A body of a type a page may send freely is refused on its own too.
    let (s, v, _) = browser(
        &node,
        post.clone(),
        "/api/packages",
        &[("content-type", "text/plain"), ("authorization", &auth)],
        &package,
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    // And without the admin token, no package changes.
    let (s, v, _) = browser(
        &node,
        post,
        "/api/packages",
        &[("content-type", "application/yaml")],
        &package,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");

    assert_eq!(
        node.get("/api/packages/evil").await.0,
        StatusCode::NOT_FOUND
    );
    assert!(!marker.exists(), "the package's command ran");
    node.stop().await;
}

#[tokio::test]
async fn get_invocations_cannot_be_fired_from_another_site() {
    let node = Node::start(&["name: b\nclasses:\n  - name: doc\n".to_owned()]).await;
    node.new_object("b.doc", r#"{"id": "o"}"#).await;
    let get = reqwest::Method::GET;
    let delete = "/api/classes/b.doc/objects/o/invokes/delete";
    // `<img src=...>` on another site: no Origin, Sec-Fetch-Site cross-site.
    for headers in [
        vec![
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-dest", "image"),
        ],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "http://evil.example")],
    ] {
        let (s, v, _) = browser(&node, get.clone(), delete, &headers, "").await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{headers:?}: {v}");
        assert_eq!(v["error"]["code"], "forbidden");
    }
    assert_eq!(node.object("b.doc", "o").await["_meta"]["id"], "o");
    // The node's own pages and non-browser clients may.
    let same_origin = node.url.clone();
    let (s, v, _) = browser(
        &node,
        get.clone(),
        "/api/classes/b.doc/objects/o/invokes/get",
        &[("sec-fetch-site", "same-origin"), ("origin", &same_origin)],
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, _) = browser(&node, get, delete, &[], "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        node.get("/api/classes/b.doc/objects/o").await.0,
        StatusCode::NOT_FOUND
    );
    node.stop().await;
}

#[tokio::test]
async fn allowed_origins_get_cors_and_others_none() {
    let console = "http://console.example:3000";
    let node = Node::start_configured(tempfile::tempdir().unwrap(), &[], |c| {
        c.api.allowed_origins = vec![console.to_owned()];
    })
    .await;
    let preflight = |origin: &'static str| {
        let node = &node;
        async move {
            let headers = [
                ("origin", origin),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "content-type,authorization",
                ),
                ("sec-fetch-site", "cross-site"),
            ];
            let path = "/api/classes/builtin.base/invokes/new";
            browser(node, reqwest::Method::OPTIONS, path, &headers, "").await
        }
    };
    let (s, _, h) = preflight(console).await;
    assert!(s.is_success(), "{s}");
    assert_eq!(h["access-control-allow-origin"], console);
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("content-type") && allowed.contains("authorization"));
    let (_, _, h) = preflight("http://evil.example").await;
    assert!(h.get("access-control-allow-origin").is_none(), "{h:?}");

    let (s, v, h) = browser(
        &node,
        reqwest::Method::GET,
        "/api/classes",
        &[("origin", console), ("sec-fetch-site", "cross-site")],
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(h["access-control-allow-origin"], console);
    node.stop().await;
}

#[tokio::test]
async fn hosts_the_node_does_not_serve_are_refused() {
    let node = Node::start_configured(tempfile::tempdir().unwrap(), &[], |c| {
        c.api.public_hosts = vec!["oprc.example".to_owned()];
    })
    .await;
    let port = node.url.rsplit(':').next().unwrap().to_owned();
    let get = |host: String| {
        let url = node.url.clone();
        async move {
            let head = format!("GET /api/classes HTTP/1.1\r\nhost: {host}");
            raw::send(&url, &head, b"", Duration::from_secs(10)).await
        }
    };
    // A page of a name rebound to 127.0.0.1 is not a same-origin caller.
    let a = get(format!("rebound.example:{port}")).await;
    assert_eq!(a.status, 421, "{a:?}");
    assert_eq!(a.json()["error"]["code"], "misdirected");
    assert!(a.body.contains("--public-host"), "{}", a.body);
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "oprc.example".to_owned(),
    ] {
        let a = get(host.clone()).await;
        assert_eq!(a.status, 200, "{host}: {a:?}");
    }
    // Health probes answer whatever the name.
    let head = "GET /healthz HTTP/1.1\r\nhost: probe.internal";
    let a = raw::send(&node.url, head, b"", Duration::from_secs(10)).await;
    assert_eq!(a.status, 200, "{a:?}");
    node.stop().await;
}

#[tokio::test]
async fn bodies_must_be_declared_json_or_yaml() {
    let node = Node::start(&["name: b\nclasses:\n  - name: doc\n".to_owned()]).await;
    node.new_object("b.doc", r#"{"id": "o"}"#).await;
    let update = "/api/classes/b.doc/objects/o/invokes/update";
    let auth = format!("Bearer {}", node.token);
    let post = |path: &'static str, content_type: Option<&'static str>, body: &'static str| {
        let mut headers = vec![("authorization", auth.clone())];
        if let Some(t) = content_type {
            headers.push(("content-type", t.to_owned()));
        }
        let node = &node;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            browser(node, reqwest::Method::POST, path, &headers, body).await
        }
    };
    for bad in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let (s, v, _) = post(update, bad, r#"{"n": 1}"#).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{bad:?}: {v}");
        assert_eq!(v["error"]["code"], "unsupported_media_type");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains("application/json"), "{message}");
    }
    let (s, v, _) = post(update, Some("application/yaml"), "n: 1\n").await;
    assert_eq!(
        s,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "call bodies are JSON: {v}"
    );
    let (s, v, _) = post(
        update,
        Some("application/json; charset=utf-8"),
        r#"{"n": 2}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // An empty POST with no type is a plain call (Oparaca clients, the CLI).
    let (s, v, _) = post("/api/classes/b.doc/objects/o/invokes/get", None, "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Packages: any of the YAML types, or JSON.
    for (t, body) in [
        ("text/yaml", "name: y1\n"),
        ("application/x-yaml", "name: y2\n"),
        ("text/x-yaml", "name: y3\n"),
        ("application/json", r#"{"name": "j1"}"#),
    ] {
        let (s, v, _) = post("/api/packages", Some(t), body).await;
        assert_eq!(s, StatusCode::CREATED, "{t}: {v}");
    }
    // A chunked body of no type is refused before it is read.
    let head = format!(
        "POST {update} HTTP/1.1\r\nhost: {}\r\ntransfer-encoding: chunked",
        node.url.trim_start_matches("http://")
    );
    let a = raw::send(
        &node.url,
        &head,
        b"8\r\n{\"n\": 3}\r\n0\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(a.status, 415, "{a:?}");
    assert_eq!(node.object("b.doc", "o").await["data"]["n"], 2);
    node.stop().await;
}
