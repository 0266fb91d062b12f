//! Nodes sharing one PostgreSQL database split the partitions, hand them
//! over on a join and a leave, and take over from a node that stops
//! renewing, whose commits are then fenced (ADR 13). The "nodes" are
//! `Member`s in this process on their own store each, ticked by hand.

use std::sync::Arc;
use std::time::Duration;

use oprc_cluster::lease::Trust;
use oprc_cluster::{Member, Settings, assign};
use oprc_core::{ClassKey, ObjectId, ObjectRecord};
use oprc_store::{ErrorKind, StateStore, Write, WriteBatch};
use oprc_store_pg::{Options, PgStore};

const PARTITIONS: u16 = 16;

async fn node(url: &str, id: &str, lease: Duration) -> (Arc<Member>, PgStore) {
    let store = PgStore::connect(url, Options::default()).await.unwrap();
    let settings = Settings {
        node: id.to_owned(),
        advertise: format!("http://{id}:8080"),
        partitions: PARTITIONS,
        lease,
        trust: Trust {
            drift: 0.05,
            margin: Duration::from_millis(100),
        },
    };
    (
        Arc::new(Member::new(Arc::new(store.clone()), settings)),
        store,
    )
}

/// Rounds on every node until nothing changes: releases land, claims follow.
async fn settle(nodes: &[&Member]) {
    for _ in 0..3 {
        for n in nodes {
            n.tick().await.unwrap();
        }
    }
}

/// Every partition held by exactly its assigned node.
fn check_split(nodes: &[&Member]) {
    let ids: Vec<&str> = nodes.iter().map(|n| n.node()).collect();
    for p in 0..PARTITIONS {
        let holders: Vec<&str> = nodes
            .iter()
            .filter(|n| n.fence(p).is_some())
            .map(|n| n.node())
            .collect();
        assert_eq!(holders, [assign::owner(p, &ids).unwrap()], "partition {p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_split_the_partitions_and_hand_them_over() {
    oprc_testenv::with_fresh_database("oprc_test", |url| async move {
        let lease = Duration::from_secs(30);
        let (a, _) = node(&url, "node-a", lease).await;
        settle(&[&a]).await;
        assert_eq!(a.held().len(), usize::from(PARTITIONS));
        let (b, _) = node(&url, "node-b", lease).await;
        let (c, _) = node(&url, "node-c", lease).await;
        settle(&[&a, &b, &c]).await;
        check_split(&[&a, &b, &c]);
        assert_eq!(a.members().len(), 3);
        // A graceful leave: c's partitions go to the others at once, with
        // new epochs.
        let before = c.held();
        let cancel = tokio_util::sync::CancellationToken::new();
        cancel.cancel();
        c.clone().run(cancel).await;
        assert!(c.held().is_empty());
        settle(&[&a, &b]).await;
        check_split(&[&a, &b]);
        for (p, h) in before {
            let now = a.fence(p).or(b.fence(p)).unwrap();
            assert!(now.epoch > h.epoch, "partition {p}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_renewing_loses_its_partitions_and_cannot_commit() {
    oprc_testenv::with_fresh_database("oprc_test", |url| async move {
        let short = Duration::from_millis(1_200);
        let (a, a_store) = node(&url, "node-a", short).await;
        let (b, _) = node(&url, "node-b", short).await;
        settle(&[&a, &b]).await;
        let p = (0..PARTITIONS).find(|p| a.fence(*p).is_some()).unwrap();
        let old = a.fence(p).unwrap();
        // a pauses (no more rounds). Its own trust ends before its lease
        // does in the database.
        tokio::time::sleep(short.mul_f64(0.95)).await;
        assert_eq!(a.fence(p), None, "a stops trusting its lease first");
        tokio::time::sleep(Duration::from_millis(400)).await;
        b.tick().await.unwrap();
        let new = b.fence(p).expect("b took over the lapsed partition");
        assert!(new.epoch > old.epoch);
        // a wakes up with its old fence: nothing it commits lands.
        let cls = ClassKey::new("t.members").unwrap();
        let record = ObjectRecord::new(
            cls.clone(),
            ObjectId::new("o").unwrap(),
            serde_json::json!(1),
        );
        let write = || WriteBatch {
            fence: Some(old),
            ..WriteBatch::of(vec![Write::PutObject {
                record: record.clone(),
                expected_revision: None,
            }])
        };
        let err = a_store.commit(write()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Fenced, "{err}");
        assert!(
            a_store
                .get_object(&cls, &ObjectId::new("o").unwrap())
                .await
                .unwrap()
                .is_none()
        );
        // Its next round renews nothing of p and leaves it with b.
        a.tick().await.unwrap();
        assert_eq!(a.fence(p), None);
        assert_eq!(b.fence(p), Some(new));
    })
    .await;
}
