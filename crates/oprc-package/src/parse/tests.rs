use super::*;

/// Parses `input` and compares every diagnostic (or `ok`) with `expected`.
#[track_caller]
fn check(input: &str, expected: &str) {
    let diags = match parse(input) {
        Ok(doc) => doc.warnings().to_vec(),
        Err(diags) => diags,
    };
    let got = if diags.is_empty() {
        "ok".to_owned()
    } else {
        diags
            .iter()
            .map(|d| format!("{}: {d}", d.severity))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(got, expected.trim(), "input:\n{input}");
}

#[test]
fn a_minimal_package_is_fine() {
    check("name: a", "ok");
    check(r#"{"name": "a"}"#, "ok");
}

#[test]
fn json_is_read_with_positions() {
    check(
        r#"{"name": "j",
 "classes": [{"name": "c", "colour": "red", "disabled": "no"}]}"#,
        r#"
error: 2:28: classes[0].colour: unknown field `colour`; expected one of name, description, disabled, parents, stateSpec, refSpec, functions, config
error: 2:57: classes[0].disabled: expected true or false, found `"no"`
"#,
    );
    check(
        "{\"name\": \"j\",, }",
        "error: 1:14: invalid yaml: while parsing a node, did not find expected node content",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    check(
        "
name: p
classes:
  - name: a
    functions:
      - function: builtin.get
        access: OPEN
  - name: a
functions:
  - name: f
    config: {timeout: soon}
",
        r#"
error: 7:17: classes[0].functions[0].access: unknown access modifier `OPEN`; expected one of PUBLIC, INTERNAL, PRIVATE
error: 8:11: classes[1].name: duplicate class `a` (first defined at 4:11)
error: 11:23: functions[0].config.timeout: invalid duration `soon`; expected e.g. 500ms, 30s, 2m, 1h, 1m30s or a number of seconds
"#,
    );
}

#[test]
fn empty_optional_fields_mean_unset() {
    check(
        "
name: p
description: ~
classes:
functions:
  - name: f
    provision: {http: {url: 'http://f.local'}}
    outputCls:
",
        "ok",
    );
}

#[test]
fn numbers_and_booleans_are_read_as_the_text_written() {
    let doc = parse("name: p\ndescription: ünï\nversion: 1.10\n").unwrap();
    assert_eq!(doc.package().version.as_deref(), Some("1.10"));
    let doc = parse(
        "name: p\nclasses:\n  - name: c\n    functions:\n      - function: get\n        defaultArgs: {n: 007, f: false, x: 1e3}\n",
    )
    .unwrap();
    let args = &doc.package().classes[0].functions[0].default_args;
    assert_eq!(args["n"], "007");
    assert_eq!(args["f"], "false");
    assert_eq!(args["x"], "1e3");
}

#[test]
fn anchors_and_tags_are_understood() {
    let doc = parse(
        "
name: p
classes:
  - name: a
    functions:
      - function: get
        defaultArgs: &args {mode: fast}
      - name: get2
        function: get
        defaultArgs: *args
  - name: !!str 5
",
    )
    .unwrap();
    let classes = &doc.package().classes;
    assert_eq!(classes[0].functions[1].default_args["mode"], "fast");
    assert_eq!(classes[1].name, "5");
}

#[test]
fn an_alias_and_its_new_name_cannot_both_be_set() {
    check(
        "
name: p
classes:
  - name: a
    functions:
      - function: get
        immutable: true
        forceImmutable: false
",
        "error: 8:9: classes[0].functions[0].forceImmutable: `forceImmutable` is the original's name for `immutable`, which is also set; keep one",
    );
}

#[test]
fn old_names_are_read_as_new_ones() {
    let doc = parse(
        "
name: p
classes:
  - name: a
    functions:
      - function: get
        forceImmutable: true
        allowNoMain: true
",
    )
    .unwrap();
    let b = &doc.package().classes[0].functions[0];
    assert_eq!(b.immutable, Some(true));
    assert!(b.no_main);
    assert_eq!(doc.warnings().len(), 2);
}

#[test]
fn field_names_must_be_text() {
    check(
        "name: p\n1: x\n",
        "error: 2:1: field names must be text, found `1`",
    );
}

#[test]
fn positions_fall_back_to_the_nearest_written_value() {
    let doc = parse("name: p\nclasses:\n  - name: a\n").unwrap();
    assert_eq!(
        doc.position("classes[0].name"),
        Position {
            line: 3,
            column: 11
        }
    );
    // `functions` is not written: the class's position.
    assert_eq!(
        doc.position("classes[0].functions[0]"),
        Position { line: 3, column: 5 }
    );
    assert_eq!(
        doc.position("nothing.here"),
        Position { line: 1, column: 1 }
    );
}

#[test]
fn non_ascii_text_keeps_columns_in_characters() {
    check(
        "name: p\ndescription: \"ünïcödé\"\nclasses: [{name: a, bad: 1}]\n",
        "error: 3:21: classes[0].bad: unknown field `bad`; expected one of name, description, disabled, parents, stateSpec, refSpec, functions, config",
    );
}

#[test]
fn free_form_fields_take_any_json() {
    let doc = parse(
        "
name: p
classes:
  - name: a
    functions:
      - function: update
        override: {merge: true, depth: 2, paths: [a, b], nested: {x: ~}}
",
    )
    .unwrap();
    let o = &doc.package().classes[0].functions[0].override_options;
    assert_eq!(
        serde_json::Value::Object(o.clone()),
        serde_json::json!({"merge": true, "depth": 2, "paths": ["a", "b"], "nested": {"x": null}})
    );
}

#[test]
fn errors_at_the_end_of_input_are_on_the_last_line() {
    // The scanner puts the end of input on the line after the last one, as
    // if a line break ended the source.
    check(
        "name: [a",
        "error: 1:9: invalid yaml: while parsing a flow sequence, expected ',' or ']'",
    );
    check(
        "name: p\r\nclasses: [",
        "error: 2:11: invalid yaml: while parsing a node, did not find expected node content",
    );
    check(
        "---\n#",
        "error: 2:2: expected a mapping, found nothing (null)",
    );
    check(
        "name: p\n\"",
        "error: 2:1: invalid yaml: while scanning a quoted scalar, found unexpected end of stream",
    );
}
