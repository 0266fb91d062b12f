//! The shipped dataflow examples (paper case studies), run as a user would:
//! the packages as they are in `examples/`, their Python functions started
//! by the process engine from the repository root.

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Node, repo_root};

fn example(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).expect("example package")
}

fn at_repo_root() {
    std::env::set_current_dir(repo_root()).expect("cd to the repository root");
}

fn ms(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

#[tokio::test]
async fn video_df_exp_recog_detects_in_parallel_then_recognises() {
    at_repo_root();
    let node = Node::start(&[example("examples/video/package.yaml")]).await;
    let oid = node
        .new_object("video.video", r#"{"id": "v1", "data": {"seconds": 8}}"#)
        .await;
    let path = format!("/api/classes/video.video/objects/{oid}/invokes/df_exp_recog");
    let (s, v) = node.post(&format!("{path}?detect_interval=2"), "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    // Every step made an object; the output is the expression object.
    let ids = v["macroIds"].as_object().expect("macroIds");
    for step in ["frames", "d0", "d1", "d2", "d3", "recog"] {
        assert!(ids.contains_key(step), "{step} in {v}");
    }
    assert_eq!(v["output"]["_meta"]["cls"], "video.expression", "{v}");
    assert_eq!(v["output"]["_meta"]["id"], ids["recog"], "{v}");
    let frames = ids["frames"].as_str().unwrap();
    node.object("video.image", frames).await;
    node.object("video.faces", ids["d2"].as_str().unwrap())
        .await;
    let body = &v["body"];
    assert_eq!(body["interval"], "2", "{v}");
    assert_eq!(body["video"], "v1", "{v}");
    // The four detections overlap; recognition starts after all of them,
    // and they after the frames.
    let steps = &body["steps"];
    let detections: Vec<&Value> = ["d0", "d1", "d2", "d3"].iter().map(|d| &steps[d]).collect();
    let last_start = detections.iter().map(|d| ms(d, "startedAt")).max().unwrap();
    let first_end = detections.iter().map(|d| ms(d, "endedAt")).min().unwrap();
    assert!(last_start < first_end, "detections overlap: {steps}");
    assert!(
        ms(&steps["frames"], "endedAt")
            <= detections.iter().map(|d| ms(d, "startedAt")).min().unwrap()
    );
    let last_end = detections.iter().map(|d| ms(d, "endedAt")).max().unwrap();
    assert!(last_end <= ms(&steps["recog"], "startedAt"), "{steps}");
    // Default args reach the macro's substitutions.
    let (s, v) = node.post(&path, "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"]["interval"], "1", "{v}");
    node.stop().await;
}

#[tokio::test]
async fn moderation_pipeline_runs_each_class_extract_and_keeps_score_internal() {
    at_repo_root();
    let node = Node::start(&[example("examples/moderation/package.yaml")]).await;
    let text = node
        .new_object(
            "moderation.text",
            r#"{"id": "t1", "data": {"text": "Great offer, not a scam. Not spam either!"}}"#,
        )
        .await;
    let image = node
        .new_object(
            "moderation.image",
            r#"{"id": "i1", "data": {"width": 640, "height": 480, "pixels": {"skin": 0.8, "red": 0.3, "dark": 0.1}}}"#,
        )
        .await;
    let media = node.new_object("moderation.media", r#"{"id": "m1"}"#).await;
    let run = |cls: &'static str, oid: String| {
        let node = &node;
        async move {
            let (s, v) = node
                .post(
                    &format!("/api/classes/{cls}/objects/{oid}/invokes/pipeline"),
                    "",
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            assert_eq!(v["status"], "SUCCEEDED", "{v}");
            assert_eq!(v["output"]["_meta"]["cls"], "moderation.report", "{v}");
            v
        }
    };
    // Polymorphism: each derived class's own `extract` ran.
    let t = run("moderation.text", text).await;
    assert_eq!(t["body"]["kind"], "text", "{t}");
    assert_eq!(t["body"]["verdict"], "flagged", "{t}");
    let i = run("moderation.image", image).await;
    assert_eq!(i["body"]["kind"], "image", "{i}");
    let m = run("moderation.media", media).await;
    assert_ne!(m["body"]["kind"], "text", "{m}");
    assert_ne!(m["body"]["kind"], "image", "{m}");
    // Steps in order: extract, then score, then evaluate.
    let steps = &t["body"]["steps"];
    assert!(ms(&steps["extract"], "endedAt") <= ms(&steps["score"], "startedAt"));
    assert!(ms(&steps["score"], "endedAt") <= ms(&steps["evaluate"], "startedAt"));
    // The evaluator and the report are objects like any other; `score`
    // (INTERNAL) ran in the macro but is closed to clients.
    let evaluator = t["macroIds"]["extract"].as_str().expect("evaluator id");
    node.object("moderation.evaluator", evaluator).await;
    node.object(
        "moderation.report",
        t["macroIds"]["evaluate"].as_str().unwrap(),
    )
    .await;
    let (s, v) = node
        .post(
            &format!("/api/classes/moderation.evaluator/objects/{evaluator}/invokes/score"),
            "",
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("INTERNAL"),
        "{v}"
    );
    node.stop().await;
}
