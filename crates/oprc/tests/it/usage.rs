//! Help, usage errors (exit 2) and an unreachable node (exit 3).

use crate::{free_port, oprc};

#[test]
fn help_lists_the_commands_and_exit_codes() {
    let r = oprc(&["--help"]);
    assert_eq!(r.code, 0, "{r:?}");
    for word in [
        "serve",
        "pkg",
        "cls",
        "fn",
        "obj",
        "invoke",
        "inv",
        "Exit codes",
        "--output",
    ] {
        assert!(r.stdout.contains(word), "`{word}` missing from help: {r:?}");
    }
    let r = oprc(&["invoke", "--help"]);
    for word in [
        "CLS[/OID]",
        "--arg",
        "--async",
        "--wait",
        "--idempotency-key",
        "--timeout",
    ] {
        assert!(
            r.stdout.contains(word),
            "`{word}` missing from invoke help: {r:?}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let cases: &[&[&str]] = &[
        &[],
        &["bogus"],
        &["pkg"],
        &["obj", "get", "only-class"],
        &["obj", "list", "c", "--limit", "0"],
        &["invoke", "c/o"],
        &["invoke", "c/o", "f", "--arg", "no-equals-sign"],
        &["invoke", "c/o", "f", "--arg", "=v"],
        &["invoke", "c/o", "f", "--arg", "_async=true"],
        &["invoke", "c/", "f"],
        &["invoke", "/o", "f"],
        &["invoke", "c/o", "f", "--body", "{not json"],
        &["invoke", "c/o", "f", "--wait"],
        &[
            "invoke",
            "c/o",
            "f",
            "--async",
            "--wait",
            "--timeout",
            "soon",
        ],
        &["--url", "https://node", "cls", "list"],
        &["-o", "xml", "cls", "list"],
        &["serve", "--listen", "not-an-address"],
    ];
    for args in cases {
        let r = oprc(args);
        assert_eq!(r.code, 2, "oprc {args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "oprc {args:?} printed data: {r:?}");
    }
}

#[test]
fn a_missing_equals_sign_is_explained() {
    let r = oprc(&["invoke", "c/o", "f", "--arg", "n"]);
    assert!(r.stderr.contains("KEY=VALUE"), "{r:?}");
}

#[test]
fn a_closed_port_exits_3_and_says_so() {
    let url = format!("http://127.0.0.1:{}", free_port());
    for args in [
        vec!["cls", "list"],
        vec!["obj", "get", "c", "o"],
        vec!["invoke", "c/o", "f", "--arg", "a=b=c", "--arg", "e="],
    ] {
        let mut argv = vec!["--url", url.as_str()];
        argv.extend(args);
        let r = oprc(&argv);
        assert_eq!(r.code, 3, "{r:?}");
        assert!(
            r.stderr
                .contains(&format!("cannot reach the node at {url}")),
            "{r:?}"
        );
        assert!(r.stderr.contains("oprc serve"), "{r:?}");
        assert!(r.stdout.is_empty(), "{r:?}");
    }
}

#[test]
fn the_url_comes_from_the_environment_too() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let r = crate::finish_with_env(&["fn", "list"], "OPRC_URL", &url);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains(&url), "{r:?}");
}

#[test]
fn an_unreadable_package_file_exits_1() {
    let r = oprc(&[
        "--url",
        "http://127.0.0.1:9",
        "pkg",
        "apply",
        "/nonexistent/pkg.yaml",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("failed to read /nonexistent/pkg.yaml"),
        "{r:?}"
    );
}

#[test]
fn pkg_render_prints_manifests_without_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k8s.yaml");
    std::fs::write(
        &file,
        "name: shop\nfunctions:\n  - name: resize\n    provision:\n      knative:\n        image: img:1\n\
         \x20 - name: report\n    provision:\n      deployment:\n        image: img:2\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    // Port 1: nothing listens there, and nothing is asked of a node.
    let run = oprc(&[
        "--url",
        "http://127.0.0.1:1",
        "pkg",
        "render",
        path,
        "-n",
        "prod",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let kinds: Vec<String> = run
        .stdout
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| {
            let v: serde_json::Value = serde_norway::from_str(d).unwrap();
            assert_eq!(v["metadata"]["namespace"], "prod", "{d}");
            format!(
                "{} {}",
                v["apiVersion"].as_str().unwrap(),
                v["kind"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "serving.knative.dev/v1 Service",
            "apps/v1 Deployment",
            "v1 Service"
        ]
    );
    assert!(
        run.stdout
            .contains("# function shop.resize: http://shop-resize.prod.svc.cluster.local")
    );
    assert!(run.stderr.contains("2 function(s) rendered"), "{run:?}");

    std::fs::write(&file, "name: shop\nfunctions:\n  - name: f\n    bogus: 1\n").unwrap();
    let run = oprc(&["pkg", "render", path]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("k8s.yaml:4:"),
        "diagnostics at their line: {run:?}"
    );
    assert!(run.stdout.is_empty(), "{run:?}");
}
