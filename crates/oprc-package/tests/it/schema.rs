//! `docs/package.schema.json` is generated from the model; this test fails
//! when the committed file is stale and rewrites it with `UPDATE_SCHEMA=1`.

use std::path::Path;

#[test]
fn committed_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/package.schema.json");
    let generated = serde_json::to_string_pretty(&oprc_package::json_schema()).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale; regenerate it with `UPDATE_SCHEMA=1 cargo test -p oprc-package --test it schema`",
        path.display()
    );
}
