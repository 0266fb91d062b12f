//! Every package under `tests/fixtures`: valid ones snapshot their resolved
//! view and warnings, invalid ones the full list of diagnostics. Packages
//! under `support/` are applied first, for cross-package references.

use std::path::{Path, PathBuf};

use oprc_package::{Catalog, Diagnostic, parse};
use serde_json::{Value, json};

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn render(diags: &[Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .map(|d| format!("{}: {d}", d.severity))
        .collect()
}

fn base_catalog() -> Catalog {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures_dir().join("support"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let mut catalog = Catalog::new();
    for path in paths {
        let source = std::fs::read_to_string(&path).unwrap();
        let doc =
            parse(&source).unwrap_or_else(|d| panic!("{}: {:#?}", path.display(), render(&d)));
        catalog = catalog
            .apply(&doc)
            .unwrap_or_else(|d| panic!("{}: {:#?}", path.display(), render(&d)))
            .catalog;
    }
    catalog
}

/// Bindings every class inherits from `builtin.base` are listed by name
/// only, so snapshots show what the fixture is about.
fn compact(package: &mut Value) {
    let Some(classes) = package["classes"].as_array_mut() else {
        return;
    };
    for class in classes {
        let Some(bindings) = class["bindings"].as_object_mut() else {
            continue;
        };
        let builtin: Vec<String> = bindings
            .iter()
            .filter(|(_, b)| b["inheritedFrom"] == json!("builtin.base"))
            .map(|(name, _)| name.clone())
            .collect();
        bindings.retain(|name, _| !builtin.contains(name));
        class["builtinBindings"] = json!(builtin);
    }
}

#[test]
fn valid_packages_resolve() {
    let base = base_catalog();
    insta::glob!("../fixtures/valid", "*.{yaml,json}", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        let doc =
            parse(&source).unwrap_or_else(|d| panic!("{}: {:#?}", path.display(), render(&d)));
        let applied = base
            .apply(&doc)
            .unwrap_or_else(|d| panic!("{}: {:#?}", path.display(), render(&d)));
        let mut package = serde_json::to_value(&applied.package).unwrap();
        let full = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("full-"));
        if !full {
            compact(&mut package);
        }
        insta::assert_yaml_snapshot!(json!({
            "warnings": render(&applied.warnings),
            "package": package,
        }));
    });
}

#[test]
fn invalid_packages_report_every_problem() {
    let base = base_catalog();
    insta::glob!("../fixtures/invalid", "*.{yaml,json}", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        let diags = match parse(&source) {
            Err(diags) => diags,
            Ok(doc) => match base.apply(&doc) {
                Err(diags) => diags,
                Ok(_) => panic!("{} was accepted", path.display()),
            },
        };
        assert!(diags.iter().any(Diagnostic::is_error), "{}", path.display());
        insta::assert_yaml_snapshot!(render(&diags));
    });
}

#[test]
fn the_schema_accepts_every_valid_fixture() {
    let schema = oprc_package::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    insta::glob!("../fixtures/valid", "*.{yaml,json}", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        let value: Value = serde_norway::from_str(&source).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    });
}
