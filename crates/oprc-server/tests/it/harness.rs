//! Starts real nodes on port 0 with real function processes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crate sits in crates/")
        .to_path_buf()
}

/// The test package `t`: class `t.thing` whose bindings make the fixture
/// function behave or misbehave (see fixtures/behave.py).
pub fn behave_package() -> String {
    let script = repo_root().join("crates/oprc-server/tests/it/fixtures/behave.py");
    let script = script.display();
    format!(
        r#"
name: t
classes:
  - name: thing
    functions:
      - {{name: inc, function: .behave}}
      - {{name: append, function: .behave}}
      - {{name: echo, function: .behave, immutable: true, defaultArgs: {{a: "1", b: "2"}}}}
      - {{name: copyout, function: .behave, immutable: true, outputCls: .thing}}
      - {{name: fail, function: .behave}}
      - {{name: http500, function: .behave}}
      - {{name: garbage, function: .behave}}
      - {{name: "null", function: .behave}}
      - {{name: nomsg, function: .behave}}
      - {{name: slow, function: .slowfn}}
      - {{name: secret, function: .behave, access: PRIVATE}}
      - {{name: inside, function: .behave, access: INTERNAL}}
      - {{name: patch, function: builtin.update, override: {{merge: true}}}}
      - {{name: make, function: .behave, noMain: true, outputCls: .thing}}
  - name: fast
    config: {{persistence: async}}
functions:
  - name: behave
    provision:
      process: {{command: [python3, "{script}"], maxInstances: 2, concurrency: 64}}
  - name: slowfn
    provision:
      process: {{command: [python3, "{script}"], maxInstances: 1, concurrency: 8}}
    config: {{timeout: 1s}}
"#
    )
}

/// With `OPRC_TEST_BACKENDS=shared`, the node of `dir` runs on its own
/// PostgreSQL database and JetStream stream (the same ones on a restart in
/// the same directory).
async fn shared_backends(config: &mut oprc_server::Config, dir: &std::path::Path) {
    if let Some(b) = oprc_testenv::node_backends(dir).await {
        config.state = Some(b.state);
        config.invocation_log = Some(b.invocation_log);
    }
}

pub struct Node {
    pub url: String,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    /// The bearer token [`Node::request`] sends: `--token` when the node
    /// has one, else its admin token (from its data directory).
    pub token: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Node {
    /// Starts a node with the given package sources applied.
    pub async fn start(packages: &[String]) -> Node {
        Self::start_in(tempfile::tempdir().expect("tempdir"), packages).await
    }

    pub async fn start_in(data_dir: tempfile::TempDir, packages: &[String]) -> Node {
        Self::start_configured(data_dir, packages, |_| {}).await
    }

    pub async fn start_configured(
        data_dir: tempfile::TempDir,
        packages: &[String],
        configure: impl FnOnce(&mut oprc_server::Config),
    ) -> Node {
        let mut config = oprc_server::Config {
            data_dir: data_dir.path().join("data"),
            ..Default::default()
        };
        for (i, source) in packages.iter().enumerate() {
            let path = data_dir.path().join(format!("pkg{i}.yaml"));
            std::fs::write(&path, source).expect("write package");
            config.apply.push(path);
        }
        config.invoker.drain_timeout = Duration::from_secs(5);
        shared_backends(&mut config, data_dir.path()).await;
        configure(&mut config);
        let given_token = config.api.token.clone();
        let token_file = oprc_server::admin_token_path(&config.data_dir);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(oprc_server::run(config, listener, async move {
            let _ = stopped.await;
        }));
        let mut node = Node {
            url,
            client: reqwest::Client::new(),
            data_dir,
            token: String::new(),
            stop: Some(stop),
            task: Some(task),
        };
        node.wait_ready().await;
        node.token = match given_token {
            Some(t) => t,
            None => std::fs::read_to_string(&token_file)
                .expect("the node wrote its admin token")
                .trim()
                .to_owned(),
        };
        node
    }

    /// Runs a node on the data directory of `data_dir` (as
    /// [`Node::start_in`] does) that must refuse to start; answers why.
    pub async fn refused(
        data_dir: &tempfile::TempDir,
        configure: impl FnOnce(&mut oprc_server::Config),
    ) -> String {
        let mut config = oprc_server::Config {
            data_dir: data_dir.path().join("data"),
            ..Default::default()
        };
        shared_backends(&mut config, data_dir.path()).await;
        configure(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let run = oprc_server::run(config, listener, std::future::pending());
        let result = tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("the node neither refused nor stopped");
        format!("{:#}", result.expect_err("the node started"))
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                let result = self.task.take().expect("task").await.expect("node task");
                panic!("node stopped before it was ready: {result:?}");
            }
            if let Ok(r) = self.client.get(format!("{}/readyz", self.url)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "node did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.url, path))
            .bearer_auth(&self.token);
        if let Some(b) = body.filter(|b| !b.is_empty()) {
            // Packages are YAML (JSON is YAML too); call bodies are JSON.
            let content_type = if path.starts_with("/api/packages") {
                "application/yaml"
            } else {
                "application/json"
            };
            req = req.header("content-type", content_type).body(b.to_owned());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
    }

    /// POSTs an empty body with one extra header; answers the JSON body.
    pub async fn post_with(&self, path: &str, header: (&str, &str)) -> Value {
        self.client
            .post(format!("{}{}", self.url, path))
            .bearer_auth(&self.token)
            .header(header.0, header.1)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON answer")
    }

    /// The node's Prometheus metrics, as text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    /// Creates an object and returns its id.
    pub async fn new_object(&self, cls: &str, body: &str) -> String {
        let (status, v) = self
            .post(&format!("/api/classes/{cls}/invokes/new"), body)
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["output"]["_meta"]["id"].as_str().expect("id").to_owned()
    }

    pub async fn object(&self, cls: &str, oid: &str) -> Value {
        let (status, v) = self.get(&format!("/api/classes/{cls}/objects/{oid}")).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    /// Polls an invocation until it has ended.
    pub async fn wait_invocation(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, v) = self.get(&format!("/api/invocations/{id}")).await;
            if status == StatusCode::OK
                && matches!(v["status"].as_str(), Some("SUCCEEDED" | "FAILED"))
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "invocation {id} did not end: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the node gracefully and returns its data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("node task").expect("node run");
        }
        let Node { data_dir, .. } = self;
        data_dir
    }
}
