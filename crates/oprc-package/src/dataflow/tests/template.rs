use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::dataflow::{
    BodyTemplate, Kind, MAX_BODY_DEPTH, Problem, RenderError, Source, Sources, Template, parse_path,
};

/// Parses `input`, expecting the error `expected`.
#[track_caller]
fn refused(input: &str, expected: &str) {
    match Template::parse(input) {
        Ok(t) => panic!("accepted {input:?}: {t:?}"),
        Err(e) => assert_eq!(e, expected, "input {input:?}"),
    }
}

#[track_caller]
fn template(input: &str) -> Template {
    Template::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"))
}

fn step(name: &str) -> Source {
    Source::Step(name.to_owned())
}

/// `@` has args `{"n": "5"}` and body `{"x": 1, "s": "text", "list": [1, 2, 3]}`;
/// step `s1` has output `{"data": {"x": {"deep": true}, "name": "one"}}`.
fn sources() -> BTreeMap<(Source, Kind), Value> {
    BTreeMap::from([
        ((Source::Main, Kind::Args), json!({"n": "5"})),
        (
            (Source::Main, Kind::Body),
            json!({"x": 1, "s": "text", "list": [1, 2, 3], "none": null}),
        ),
        (
            (step("s1"), Kind::Output),
            json!({"data": {"x": {"deep": true}, "name": "one"}}),
        ),
    ])
}

#[track_caller]
fn string(input: &str) -> Result<String, String> {
    template(input)
        .render_string(&sources())
        .map_err(|e| e.to_string())
}

#[track_caller]
fn value(input: &str) -> Result<Value, String> {
    template(input)
        .render_value(&sources())
        .map_err(|e| e.to_string())
}

#[test]
fn substitutions_are_parsed_with_source_kind_and_path() {
    let t = template("a ${@|args|$.n} b ${s1|output|$.data.x} ${_0|body|$['a}b']}");
    let subs: Vec<(String, Kind, String, String)> = t
        .substitutions()
        .map(|s| {
            (
                s.source.to_string(),
                s.kind,
                s.path.to_string(),
                s.text.clone(),
            )
        })
        .collect();
    assert_eq!(
        subs,
        [
            ("@".into(), Kind::Args, "$.n".into(), "${@|args|$.n}".into()),
            (
                "s1".into(),
                Kind::Output,
                "$.data.x".into(),
                "${s1|output|$.data.x}".into()
            ),
            (
                "_0".into(),
                Kind::Body,
                "$['a}b']".into(),
                "${_0|body|$['a}b']}".into()
            ),
        ]
    );
    assert_eq!(
        template("no substitution").literal().as_deref(),
        Some("no substitution")
    );
    assert_eq!(t.literal(), None);
}

#[test]
fn dollars_without_braces_are_text_and_double_dollar_escapes() {
    assert_eq!(string("costs $5 or $").as_deref(), Ok("costs $5 or $"));
    assert_eq!(string("$${@|args|$.n}").as_deref(), Ok("${@|args|$.n}"));
    assert_eq!(string("$$${@|args|$.n}").as_deref(), Ok("$${@|args|$.n}"));
    assert_eq!(string("$$$${@|args|$.n}").as_deref(), Ok("$$${@|args|$.n}"));
    assert_eq!(string("$$x").as_deref(), Ok("$$x"));
    assert_eq!(template("$${x").substitutions().count(), 0);
    assert_eq!(template("$${x").literal().as_deref(), Some("${x"));
}

#[test]
fn bad_substitutions_say_what_is_wrong() {
    refused(
        "a ${@|args|$.n",
        "`${@|args|$.n` is not closed: a substitution ends with `}`",
    );
    refused(
        "${@|args|$['n}",
        "`${@|args|$['n}` is not closed: the quote ' opened in it has no end",
    );
    refused(
        "${@|args}",
        "`${@|args}`: expected `${SOURCE|KIND|PATH}`, e.g. `${@|body|$.x}`",
    );
    refused(
        "${}",
        "`${}`: expected `${SOURCE|KIND|PATH}`, e.g. `${@|body|$.x}`",
    );
    refused(
        "${|args|$.n}",
        "`${|args|$.n}`: the source is empty; expected `@` or a step name",
    );
    refused(
        "${a b|args|$.n}",
        "`${a b|args|$.n}`: invalid source `a b`; expected `@` or a step name",
    );
    refused(
        "${@||$.n}",
        "`${@||$.n}`: the kind is empty; expected `args`, `body` or `output`",
    );
    refused(
        "${@|arg|$.n}",
        "`${@|arg|$.n}`: unknown kind `arg`; expected `args`, `body` or `output`; did you mean `args`?",
    );
    refused(
        "${@|data|$.n}",
        "`${@|data|$.n}`: unknown kind `data`; expected `args`, `body` or `output`",
    );
    refused(
        "${@|args|}",
        "`${@|args|}`: the path is empty; expected a JSONPath such as `$.x`",
    );
    let e = Template::parse("${@|args|n}").unwrap_err();
    assert!(
        e.starts_with("`${@|args|n}`: invalid JSONPath `n`: at position 0"),
        "{e}"
    );
}

#[test]
fn paths_are_bounded() {
    let long = format!("$.{}", "a".repeat(600));
    assert_eq!(
        parse_path(&long).unwrap_err(),
        "the JSONPath is 602 bytes long; at most 512 are accepted"
    );
    let deep = format!("${}{}", "[".repeat(17), "]".repeat(17));
    assert_eq!(
        parse_path(&deep).unwrap_err(),
        "the JSONPath nests brackets 17 deep; at most 16 are accepted"
    );
    assert_eq!(
        parse_path("$[?@.a][?@.b][?@.c][?@.d][?@.e]").unwrap_err(),
        "the JSONPath has 5 filters; at most 4 are accepted"
    );
    // Inside quotes nothing counts, escaped quotes included.
    assert!(parse_path("$['?????[[[[[[[[[[[[[[[[[[']").is_ok());
    let sneaky = format!("$['\\'']{}", "[".repeat(17));
    assert!(
        parse_path(&sneaky)
            .unwrap_err()
            .contains("nests brackets 17 deep"),
        "an escaped quote does not hide what follows"
    );
    refused(
        &format!("${{@|body|{deep}}}"),
        &format!(
            "`${{@|body|{deep}}}`: the JSONPath nests brackets 17 deep; at most 16 are accepted"
        ),
    );
}

#[test]
fn a_whole_string_substitution_keeps_its_json_type() {
    assert_eq!(value("${@|body|$.x}"), Ok(json!(1)));
    assert_eq!(value("${s1|output|$.data.x}"), Ok(json!({"deep": true})));
    assert_eq!(value("${@|body|$.none}"), Ok(Value::Null));
    assert_eq!(value("${@|body|$.s}"), Ok(json!("text")));
    assert_eq!(value("plain"), Ok(json!("plain")));
    assert_eq!(value(""), Ok(json!("")));
}

#[test]
fn embedded_substitutions_are_spliced_as_text() {
    assert_eq!(value("x=${@|body|$.x}"), Ok(json!("x=1")));
    assert_eq!(
        value("${@|body|$.s}/${s1|output|$.data.x}"),
        Ok(json!(r#"text/{"deep":true}"#))
    );
    assert_eq!(
        string("${@|body|$.x}").as_deref(),
        Ok("1"),
        "args are strings"
    );
    assert_eq!(string("${@|body|$.s}").as_deref(), Ok("text"));
    assert_eq!(string("${@|body|$.none}").as_deref(), Ok("null"));
    assert_eq!(string("n=${@|args|$.n}!").as_deref(), Ok("n=5!"));
}

#[test]
fn several_matches_give_an_array() {
    assert_eq!(value("${@|body|$.list[*]}"), Ok(json!([1, 2, 3])));
    assert_eq!(value("${@|body|$.list[0:2]}"), Ok(json!([1, 2])));
    assert_eq!(string("${@|body|$.list[*]}").as_deref(), Ok("[1,2,3]"));
    // One match of an array is that array; a slice matching one is its item.
    assert_eq!(value("${@|body|$.list}"), Ok(json!([1, 2, 3])));
    assert_eq!(value("${@|body|$.list[1:2]}"), Ok(json!(2)));
}

#[test]
fn missing_data_and_empty_matches_are_errors() {
    assert_eq!(
        value("${s1|output|$.data.y}"),
        Err("`${s1|output|$.data.y}`: matched nothing".into())
    );
    assert_eq!(
        string("a ${s2|output|$.x} b"),
        Err("`${s2|output|$.x}`: no such data: `s2` has no output".into())
    );
    assert_eq!(
        value("${@|output|$.x}"),
        Err("`${@|output|$.x}`: no such data: `@` has no output".into())
    );
    let e = template("${s1|body|$}")
        .render_value(&sources())
        .unwrap_err();
    assert_eq!(
        e,
        RenderError {
            substitution: "${s1|body|$}".into(),
            reason: "no such data: `s1` has no body".into(),
        }
    );
}

#[test]
fn sources_decide_what_exists() {
    struct Only(Value);
    impl Sources for Only {
        fn get(&self, source: &Source, kind: Kind) -> Option<&Value> {
            (source == &Source::Main && kind == Kind::Body).then_some(&self.0)
        }
    }
    let t = template("${@|body|$}");
    assert_eq!(t.render_value(&Only(json!([1]))), Ok(json!([1])));
    assert!(
        template("${@|args|$}")
            .render_value(&Only(json!(1)))
            .is_err()
    );
}

#[test]
fn body_templates_render_every_string() {
    let body = BodyTemplate::parse(&json!({
        "n": "${@|body|$.x}",
        "text": "n is ${@|args|$.n}",
        "list": ["${@|body|$.list[*]}", 2, null, "$${literal}"],
        "nested": {"deep": "${s1|output|$.data.x.deep}", "k": false},
    }))
    .unwrap();
    assert_eq!(body.substitutions().count(), 4);
    let paths: Vec<String> = body.located().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, [".n", ".text", ".list[0]", ".nested.deep"]);
    assert_eq!(
        body.render(&sources()),
        Ok(json!({
            "n": 1,
            "text": "n is 5",
            "list": [[1, 2, 3], 2, null, "${literal}"],
            "nested": {"deep": true, "k": false},
        }))
    );
    let bad = BodyTemplate::parse(&json!({"a": ["${s1|output|$.nope}"]})).unwrap();
    assert_eq!(
        bad.render(&sources()).unwrap_err().to_string(),
        "`${s1|output|$.nope}`: matched nothing"
    );
    let scalar = BodyTemplate::parse(&json!(3)).unwrap();
    assert_eq!(scalar.render(&sources()), Ok(json!(3)));
}

#[test]
fn body_template_problems_have_relative_paths() {
    let problems = BodyTemplate::parse(&json!({
        "a": [1, 2, "${x|nope|$}"],
        "b.c": "${",
        "ok": "${@|body|$.x}",
    }))
    .unwrap_err();
    assert_eq!(
        problems,
        [
            Problem {
                path: ".a[2]".into(),
                message: "`${x|nope|$}`: unknown kind `nope`; expected `args`, `body` or `output`"
                    .into(),
            },
            Problem {
                path: r#"["b.c"]"#.into(),
                message: "`${` is not closed: a substitution ends with `}`".into(),
            },
        ]
    );
    let root = BodyTemplate::parse(&json!("${@}")).unwrap_err();
    assert_eq!(root[0].path, "");
}

#[test]
fn body_templates_are_bounded_in_depth() {
    let mut v = json!("leaf");
    for _ in 0..(MAX_BODY_DEPTH + 5) {
        v = json!([v]);
    }
    let problems = BodyTemplate::parse(&v).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(
        problems[0].message,
        format!("the template nests more than {MAX_BODY_DEPTH} levels deep")
    );
    assert_eq!(problems[0].path, "[0]".repeat(MAX_BODY_DEPTH + 1));
}

proptest::proptest! {
    #[test]
    fn any_text_parses_or_is_refused_without_panicking(
        text in "[${}|@a-z_0-9'\"\\\\\\[\\]()?*.:=<> -]{0,40}|\\PC{0,20}",
    ) {
        if let Ok(t) = Template::parse(&text) {
            let _ = t.render_value(&sources());
            let _ = t.render_string(&sources());
            if let Some(literal) = t.literal() {
                proptest::prop_assert_eq!(t.render_string(&sources()), Ok(literal));
            }
        }
        let _ = BodyTemplate::parse(&json!({"k": [text]}));
    }
}

#[test]
fn renders_copy_at_most_their_budget() {
    // `$..*` over a deep document copies each level again: bounded.
    let mut deep = json!("x".repeat(1000));
    for _ in 0..60 {
        deep = json!([deep]);
    }
    let mut data = BTreeMap::new();
    data.insert((Source::Main, Kind::Body), deep);
    let every = BodyTemplate::parse(&json!({"all": "${@|body|$..*}"})).unwrap();
    let small = crate::dataflow::Budget::new(20_000);
    let e = every.render_within(&data, &small).unwrap_err();
    assert_eq!(e.substitution, "${@|body|$..*}");
    assert!(e.reason.contains("the limit is 20000"), "{e}");
    // The same substitution repeated spends one budget.
    let once = BodyTemplate::parse(&json!("${@|body|$}")).unwrap();
    let twice = BodyTemplate::parse(&json!(["${@|body|$}", "${@|body|$}"])).unwrap();
    assert!(
        once.render_within(&data, &crate::dataflow::Budget::new(1200))
            .is_ok()
    );
    assert!(
        twice
            .render_within(&data, &crate::dataflow::Budget::new(1200))
            .is_err()
    );
    // The default is generous for ordinary inputs.
    assert!(every.render(&data).is_ok());
}
