//! The file examples (`examples/text`, `examples/video`) on a real node with
//! their Python functions: the paper's IO-bound and CPU-bound workloads.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Node, repo_root};

fn example(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).expect("example package")
}

/// Example packages use commands relative to the repository root.
fn at_repo_root() {
    std::env::set_current_dir(repo_root()).expect("cd to the repository root");
}

/// File `key` of an object: following the node's 303 to the blob URL, or
/// streamed by the node (`_relay=true`).
async fn download(node: &Node, cls: &str, oid: &str, key: &str, relay: bool) -> Vec<u8> {
    let query = if relay { "?_relay=true" } else { "" };
    let resp = node
        .client
        .get(format!(
            "{}/api/classes/{cls}/objects/{oid}/files/{key}{query}",
            node.url
        ))
        .bearer_auth(&node.token)
        .send()
        .await
        .expect("download");
    let status = resp.status();
    let bytes = resp.bytes().await.expect("file body");
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    bytes.to_vec()
}

/// The redirect itself: where `GET .../files/{key}` sends a client.
async fn redirect_of(node: &Node, cls: &str, oid: &str, key: &str) -> (StatusCode, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = client
        .get(format!(
            "{}/api/classes/{cls}/objects/{oid}/files/{key}",
            node.url
        ))
        .bearer_auth(&node.token)
        .send()
        .await
        .expect("download");
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().expect("location").to_owned())
        .unwrap_or_default();
    (resp.status(), location)
}

/// Uploads through the node (`PUT .../files/{key}`), which commits; answers
/// the object.
async fn put_relayed(node: &Node, cls: &str, oid: &str, key: &str, bytes: Vec<u8>) -> Value {
    let resp = node
        .client
        .put(format!(
            "{}/api/classes/{cls}/objects/{oid}/files/{key}",
            node.url
        ))
        .bearer_auth(&node.token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .expect("upload");
    let status = resp.status();
    let v: Value = resp.json().await.expect("JSON answer");
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

/// Creates object `oid` with file `key` the way the API documents it: `new`
/// with `keys`, a PUT of the bytes to the upload URL, then the commit.
async fn create_with_file(node: &Node, cls: &str, oid: &str, key: &str, bytes: &[u8]) {
    let (s, v) = node
        .post(
            &format!("/api/classes/{cls}/invokes/new"),
            &json!({"id": oid, "keys": [key]}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let url = v["body"]["uploadUrls"][key].as_str().expect("upload URL");
    let version = v["body"]["version"].as_str().expect("version").to_owned();
    // Not visible before its commit.
    assert_eq!(v["output"]["_meta"]["verIds"], json!({}), "{v}");
    let put = reqwest::Client::new()
        .put(url)
        .body(bytes.to_vec())
        .send()
        .await
        .expect("PUT to the upload URL");
    assert!(put.status().is_success(), "{}", put.status());
    let (s, v) = node
        .post(
            &format!("/api/classes/{cls}/objects/{oid}/invokes/file?commit={version}"),
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"]["committed"], json!([key]), "{v}");
}

async fn concat(node: &Node, oid: &str, append: &str) -> Value {
    let (s, v) = node
        .post(
            &format!("/api/classes/text.text/objects/{oid}/invokes/concat"),
            &json!({ "append": append }).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    v
}

#[tokio::test]
async fn text_example_appends_and_reads_back_the_exact_content() {
    at_repo_root();
    let node = Node::start(&[example("examples/text/package.yaml")]).await;
    create_with_file(&node, "text.text", "t", "text", "héllo".as_bytes()).await;
    // The arg, then the body.
    let (s, v) = node
        .post(
            "/api/classes/text.text/objects/t/invokes/concat?append=%2C%20w",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"], json!({"length": 9}), "{v}");
    let v = concat(&node, "t", "orld\n").await;
    assert_eq!(v["body"], json!({"length": 14}), "{v}");
    let expected = "héllo, world\n".as_bytes();
    assert_eq!(
        download(&node, "text.text", "t", "text", false).await,
        expected
    );
    assert_eq!(
        download(&node, "text.text", "t", "text", true).await,
        expected
    );
    let (s, location) = redirect_of(&node, "text.text", "t", "text").await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let obj = node.object("text.text", "t").await;
    let version = obj["_meta"]["verIds"]["text"].as_str().expect("a version");
    assert!(location.contains(version), "{location} names {version}");
    assert_eq!(obj["data"], json!({"length": 14}));
    // new (1), commit (2), two concats.
    assert_eq!(obj["_meta"]["revision"], 4);

    // A text with no version yet counts as empty.
    node.new_object("text.text", r#"{"id": "empty"}"#).await;
    let v = concat(&node, "empty", "first").await;
    assert_eq!(v["body"], json!({"length": 5}), "{v}");
    assert_eq!(
        download(&node, "text.text", "empty", "text", false).await,
        b"first"
    );

    // A relayed upload replaces the text; the next concat builds on it.
    let obj = put_relayed(&node, "text.text", "t", "text", b"new".to_vec()).await;
    assert_ne!(obj["_meta"]["verIds"]["text"].as_str(), Some(version));
    concat(&node, "t", "er").await;
    assert_eq!(
        download(&node, "text.text", "t", "text", false).await,
        b"newer"
    );

    // A call without `append` fails and changes nothing.
    let before = node.object("text.text", "t").await;
    let (s, v) = node
        .post("/api/classes/text.text/objects/t/invokes/concat", "")
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("append")),
        "{v}"
    );
    assert_eq!(node.object("text.text", "t").await, before);
    node.stop().await;
}

#[tokio::test]
async fn text_example_takes_a_two_megabyte_append_and_a_six_megabyte_text() {
    at_repo_root();
    let node = Node::start(&[example("examples/text/package.yaml")]).await;
    node.new_object("text.text", r#"{"id": "big"}"#).await;
    concat(&node, "big", "<").await;
    let huge: String = (0..2 * 1024 * 1024u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let v = concat(&node, "big", &huge).await;
    let total = 1 + huge.len() + 1;
    assert_eq!(v["body"]["length"], json!(total - 1), "{v}");
    concat(&node, "big", ">").await;
    let content = download(&node, "text.text", "big", "text", false).await;
    assert_eq!(content.len(), total);
    assert_eq!(content, format!("<{huge}>").as_bytes());
    let obj = node.object("text.text", "big").await;
    assert_eq!(obj["data"]["length"], json!(total));

    // A text above the API's 4 MiB body limit uploads through the node
    // (files have their own limit) and streams through the function.
    let six = vec![b'z'; 6 * 1024 * 1024];
    put_relayed(&node, "text.text", "big", "text", six.clone()).await;
    let v = concat(&node, "big", "!").await;
    assert_eq!(v["body"]["length"], json!(six.len() + 1), "{v}");
    let content = download(&node, "text.text", "big", "text", true).await;
    assert_eq!(content.len(), six.len() + 1);
    assert!(content.starts_with(&six) && content.ends_with(b"z!"));
    node.stop().await;
}

/// G1 with files: concurrent concats on one object run one at a time, each
/// on the text the previous one committed, so each lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn text_example_concurrent_concats_each_land_exactly_once() {
    at_repo_root();
    let node = Arc::new(Node::start(&[example("examples/text/package.yaml")]).await);
    create_with_file(&node, "text.text", "hot", "text", b"start;").await;
    let tokens: Vec<String> = (0..8)
        .map(|i| format!("[token-{i}:{}]", "x".repeat(i)))
        .collect();
    let mut calls = tokio::task::JoinSet::new();
    for token in tokens.clone() {
        let node = node.clone();
        calls.spawn(async move { concat(&node, "hot", &token).await["body"]["length"].clone() });
    }
    let mut lengths = Vec::new();
    while let Some(r) = calls.join_next().await {
        lengths.push(r.expect("call").as_u64().expect("length"));
    }
    let content =
        String::from_utf8(download(&node, "text.text", "hot", "text", true).await).expect("UTF-8");
    assert!(content.starts_with("start;"), "{content}");
    for token in &tokens {
        assert_eq!(
            content.matches(token.as_str()).count(),
            1,
            "{token} in {content}"
        );
    }
    let total = "start;".len() + tokens.iter().map(String::len).sum::<usize>();
    assert_eq!(content.len(), total, "{content}");
    // Each call saw the one before it: the lengths they answered are all
    // different and the longest is the whole text.
    lengths.sort_unstable();
    lengths.dedup();
    assert_eq!(lengths.len(), 8, "{lengths:?}");
    assert_eq!(lengths.last().copied(), Some(total as u64));
    let obj = node.object("text.text", "hot").await;
    assert_eq!(obj["data"]["length"], json!(total));
    assert_eq!(obj["_meta"]["revision"], 2 + 8);
    Arc::into_inner(node).expect("one owner").stop().await;
}

/// Async concats (through the log) apply in enqueue order, each once.
#[tokio::test]
async fn text_example_async_concats_apply_in_enqueue_order() {
    at_repo_root();
    let node = Node::start(&[example("examples/text/package.yaml")]).await;
    node.new_object("text.text", r#"{"id": "q"}"#).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        let (s, v) = node
            .post(
                &format!("/api/classes/text.text/objects/q/invokes/concat?append={i},&_async=true"),
                "",
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        ids.push(v["invId"].as_str().expect("invId").to_owned());
    }
    for id in &ids {
        let v = node.wait_invocation(id).await;
        assert_eq!(v["status"], "SUCCEEDED", "{v}");
    }
    assert_eq!(
        download(&node, "text.text", "q", "text", false).await,
        b"0,1,2,3,4,5,6,7,"
    );
    let obj = node.object("text.text", "q").await;
    assert_eq!(obj["_meta"]["verIds"]["text"], ids[7].as_str(), "{obj}");
    node.stop().await;
}

/// Whether an `ffmpeg` runs on this machine.
fn ffmpeg_installed() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A one-second 64x64 test clip made by FFmpeg.
fn test_clip(dir: &Path) -> Vec<u8> {
    let path = dir.join("clip.mp4");
    let out = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=1:size=64x64:rate=10",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-y",
        ])
        .arg(&path)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&path).expect("clip")
}

/// `width,height,codec` of the first video stream of `file`, by ffprobe.
fn probe(file: &Path) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn transcode(node: &Node, oid: &str, query: &str) -> (StatusCode, Value) {
    node.post(
        &format!("/api/classes/video.video/objects/{oid}/invokes/transcode?{query}"),
        "",
    )
    .await
}

/// The FAILED answer of a transcode without FFmpeg: it says so and how to
/// install it, and no object was made.
async fn assert_not_installed(node: &Node, oid: &str) {
    let before = node.object("video.video", oid).await;
    let (s, v) = transcode(node, oid, "").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["status"], "FAILED", "{v}");
    let message = v["error"]["message"].as_str().expect("message");
    assert!(message.contains("ffmpeg is not installed"), "{message}");
    assert!(message.contains("apt-get install ffmpeg"), "{message}");
    let inv = v["invId"].as_str().expect("invId");
    let (s, _) = node
        .get(&format!("/api/classes/video.video/objects/{inv}"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no output object");
    assert_eq!(node.object("video.video", oid).await, before);
}

/// The video package with `FFMPEG` naming a binary that does not exist.
fn video_package_without_ffmpeg() -> String {
    let source = example("examples/video/package.yaml");
    let with_env = source.replace(
        "          PYTHONPATH: sdk/python\n",
        "          PYTHONPATH: sdk/python\n          FFMPEG: oprc-test-no-such-ffmpeg\n",
    );
    assert_ne!(with_env, source, "the package sets PYTHONPATH");
    with_env
}

#[tokio::test]
async fn video_example_without_ffmpeg_fails_with_how_to_install_it() {
    at_repo_root();
    let node = Node::start(&[video_package_without_ffmpeg()]).await;
    node.new_object("video.video", r#"{"id": "v"}"#).await;
    put_relayed(&node, "video.video", "v", "video", b"not a video".to_vec()).await;
    assert_not_installed(&node, "v").await;
    // Bad args are refused before FFmpeg is looked for.
    let (s, v) = transcode(&node, "v", "scale=huge").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`scale`")),
        "{v}"
    );
    node.stop().await;
}

/// With FFmpeg on this machine: a real transcode of a generated clip into a
/// new video object. Without it: the "not installed" answer of the example
/// as shipped.
#[tokio::test]
async fn video_example_transcodes_into_a_new_video_object() {
    at_repo_root();
    let node = Node::start(&[example("examples/video/package.yaml")]).await;
    node.new_object("video.video", r#"{"id": "src"}"#).await;
    if !ffmpeg_installed() {
        put_relayed(
            &node,
            "video.video",
            "src",
            "video",
            b"not a video".to_vec(),
        )
        .await;
        assert_not_installed(&node, "src").await;
        node.stop().await;
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = test_clip(dir.path());
    put_relayed(&node, "video.video", "src", "video", clip.clone()).await;
    let source = node.object("video.video", "src").await;

    let (s, v) = transcode(&node, "src", "scale=32x32&format=mp4").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let out = v["body"]["output"].as_str().expect("output id").to_owned();
    assert_eq!(v["output"]["_meta"]["id"], out.as_str(), "{v}");
    let bytes = download(&node, "video.video", &out, "video", false).await;
    assert_eq!(v["body"]["bytes"], json!(bytes.len()), "{v}");
    let file = dir.path().join("out.mp4");
    std::fs::write(&file, &bytes).expect("write");
    assert_eq!(probe(&file), "h264,32,32");
    let made = node.object("video.video", &out).await;
    assert_eq!(made["data"]["source"], "src", "{made}");
    assert_eq!(made["data"]["scale"], "32:32", "{made}");

    // Another format, the aspect ratio kept; the output is a video too.
    let (s, v) = transcode(&node, &out, "scale=-2:16&format=webm").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let again = v["body"]["output"].as_str().expect("output id");
    let file = dir.path().join("out.webm");
    std::fs::write(
        &file,
        download(&node, "video.video", again, "video", true).await,
    )
    .expect("write");
    assert_eq!(probe(&file), "vp8,16,16");

    // A source FFmpeg cannot read fails the call and makes no object.
    node.new_object("video.video", r#"{"id": "junk"}"#).await;
    put_relayed(
        &node,
        "video.video",
        "junk",
        "video",
        b"not a video".to_vec(),
    )
    .await;
    let (s, v) = transcode(&node, "junk", "").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("ffmpeg failed")),
        "{v}"
    );
    // A playlist naming a local file is not read (the input is guarded).
    let playlist =
        "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n";
    put_relayed(&node, "video.video", "junk", "video", playlist.into()).await;
    let (s, v) = transcode(&node, "junk", "").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not on whitelist")),
        "{v}"
    );
    // The source is untouched by all of this (immutable binding).
    assert_eq!(node.object("video.video", "src").await, source);
    assert_eq!(
        download(&node, "video.video", "src", "video", false).await,
        clip
    );
    node.stop().await;
}
