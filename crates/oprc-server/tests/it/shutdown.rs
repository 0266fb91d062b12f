//! Graceful shutdown drains calls in flight and commits them.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::{Node, behave_package};

#[tokio::test]
async fn shutdown_lets_a_running_call_finish_and_commit() {
    let node = Node::start(&[behave_package()]).await;
    node.new_object("t.thing", r#"{"id": "o"}"#).await;
    // Warm the worker up first: its start counts against the 1 s timeout.
    let (s, v) = node
        .post("/api/classes/t.thing/objects/o/invokes/slow?ms=0", "")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (client, url) = (node.client.clone(), node.url.clone());
    let call = tokio::spawn(async move {
        client
            .post(format!(
                "{url}/api/classes/t.thing/objects/o/invokes/slow?ms=500"
            ))
            .send()
            .await
            .map(|r| r.status())
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = node
            .client
            .get(format!("{}/metrics", node.url))
            .send()
            .await
            .unwrap();
        if metrics
            .text()
            .await
            .unwrap()
            .contains("oprc_invocations_in_flight 1")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the call never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let data_dir = node.stop().await;
    assert_eq!(call.await.unwrap().unwrap(), StatusCode::OK);

    // The drained call's change is durable.
    let node = Node::start_in(data_dir, &[behave_package()]).await;
    assert_eq!(node.object("t.thing", "o").await["data"]["slow"], true);
    node.stop().await;
}
