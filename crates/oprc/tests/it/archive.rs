//! `oprc export` and `oprc import` as a user runs them: a node's data, its
//! files included, exported with the node stopped, imported into a fresh
//! PostgreSQL database, and served from there by a node.

use crate::oprc;
use crate::proc::{Proc, Start};

const PACKAGE: &str =
    "name: bk\nclasses:\n  - name: doc\n    stateSpec: {keySpecs: [{name: text}]}\n";

#[test]
fn a_nodes_data_moves_to_postgres_with_export_and_import() {
    let source = tempfile::tempdir().unwrap();
    let node = Proc::start(&Start {
        dir: source.path(),
        args: &[],
        env: &[],
        packages: &[PACKAGE],
    });
    let url = format!("http://{}", node.addr);
    let token = std::fs::read_to_string(node.data.join("admin-token")).unwrap();
    let text = source.path().join("notes.txt");
    std::fs::write(&text, "kept across stores\n").unwrap();
    let file_arg = format!("text={}", text.display());
    for (i, oid) in ["d1", "d2", "d3"].iter().enumerate() {
        let data = format!(r#"{{"n": {i}}}"#);
        let mut args = vec![
            "--url",
            &url,
            "--token",
            token.trim(),
            "obj",
            "new",
            "bk.doc",
        ];
        args.extend(["--id", oid, "--data", &data]);
        if *oid == "d1" {
            args.extend(["-f", &file_arg]);
        }
        let r = oprc(&args);
        assert_eq!(r.code, 0, "{r:?}");
    }
    // Where the node kept its state (PostgreSQL when the suite runs on
    // shared backends).
    let shared = oprc_testenv::node_backends_blocking(source.path());
    node.kill();

    let archive = source.path().join("backup");
    let data_dir = source.path().join("data");
    let mut export = vec!["--data-dir", data_dir.to_str().unwrap(), "export"];
    export.push(archive.to_str().unwrap());
    if let Some(b) = &shared {
        export.extend(["--state", &b.state]);
    }
    let r = oprc(&export);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("exported 1 packages, 3 objects and 1 file versions (19 bytes)"),
        "{r:?}"
    );

    let dest = tempfile::tempdir().unwrap();
    let name = format!("oprc_e2e_import_{}", std::process::id());
    let state = oprc_testenv::database_on(&oprc_testenv::postgres_url(), &name);
    let dest_data = dest.path().join("data");
    let import = [
        "--data-dir",
        dest_data.to_str().unwrap(),
        "import",
        archive.to_str().unwrap(),
        "--state",
        &state,
    ];
    let r = oprc(&import);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("imported 1 packages, 3 objects"), "{r:?}");
    // A second import into the same, no longer empty, stores is refused.
    let r = oprc(&import);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("already holds"), "{r:?}");

    let node = Proc::start(&Start {
        dir: dest.path(),
        args: &["--state", &state],
        env: &[],
        packages: &[],
    });
    let url = format!("http://{}", node.addr);
    let r = oprc(&["--url", &url, "-o", "json", "obj", "get", "bk.doc", "d3"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["data"]["n"], 2, "{v}");
    assert_eq!(v["_meta"]["lastOffset"].as_u64().unwrap_or(0), 0, "{v}");
    let token = std::fs::read_to_string(node.data.join("admin-token")).unwrap();
    let r = oprc(&[
        "--url",
        &url,
        "--token",
        token.trim(),
        "obj",
        "file",
        "get",
        "bk.doc/d1",
        "text",
        "-",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "kept across stores\n");
}
