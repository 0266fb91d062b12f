//! Localized locking (G1): no lost update, per-object order.

use std::sync::Arc;

use reqwest::StatusCode;

use crate::harness::{Node, behave_package};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_clients_times_fifty_increments_make_1600() {
    let node = Arc::new(Node::start(&[behave_package()]).await);
    node.new_object("t.thing", r#"{"id": "hot", "data": {"count": 0}}"#)
        .await;
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let node = node.clone();
        clients.spawn(async move {
            let mut seen = Vec::with_capacity(50);
            for _ in 0..50 {
                let (s, v) = node
                    .post("/api/classes/t.thing/objects/hot/invokes/inc", "")
                    .await;
                assert_eq!(s, StatusCode::OK, "{v}");
                seen.push(v["body"]["count"].as_u64().unwrap());
            }
            seen
        });
    }
    let mut all = Vec::new();
    while let Some(r) = clients.join_next().await {
        let seen = r.unwrap();
        // Each client's calls took effect in the order it made them.
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        all.extend(seen);
    }
    // Every increment saw a distinct count: none was lost or doubled.
    all.sort_unstable();
    assert_eq!(all, (1..=1600).collect::<Vec<u64>>());
    let obj = node.object("t.thing", "hot").await;
    assert_eq!(obj["data"]["count"], 1600);
    assert_eq!(obj["_meta"]["revision"], 1601);
    Arc::into_inner(node).unwrap().stop().await;
}

#[tokio::test]
async fn async_calls_apply_in_enqueue_order() {
    let node = Node::start(&[behave_package()]).await;
    node.new_object("t.thing", r#"{"id": "q"}"#).await;
    let mut last = String::new();
    for seq in 0..40 {
        let (s, v) = node
            .post(
                &format!("/api/classes/t.thing/objects/q/invokes/append?seq={seq}&_async=true"),
                "",
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        last = v["invId"].as_str().unwrap().to_owned();
    }
    node.wait_invocation(&last).await;
    let obj = node.object("t.thing", "q").await;
    let seqs: Vec<u64> = obj["data"]["seqs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (0..40).collect::<Vec<u64>>());
    node.stop().await;
}
