use crate::dataflow::{Dag, Problem, Target};
use crate::model::MacroSpec;

/// A macro spec from YAML-ish JSON.
#[track_caller]
fn spec(json: serde_json::Value) -> MacroSpec {
    serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
}

#[track_caller]
fn dag(json: serde_json::Value) -> Dag {
    Dag::build(&spec(json)).unwrap_or_else(|p| panic!("{p:#?}"))
}

/// Builds the spec, expecting exactly these problems (`path: message`).
#[track_caller]
fn problems(json: serde_json::Value, expected: &[&str]) {
    let got: Vec<String> = match Dag::build(&spec(json)) {
        Ok(d) => panic!("built {d:#?}"),
        Err(problems) => problems.iter().map(Problem::to_string).collect(),
    };
    assert_eq!(got, expected);
}

use serde_json::json;

#[test]
fn steps_get_names_targets_and_sorted_deps() {
    let d = dag(json!({
        "steps": [
            {"function": "a", "as": "first"},
            {"function": "b", "target": "@"},
            {"function": "c", "target": "first", "as": "third",
             "args": {"x": "${_1|body|$.x}", "y": "${first|output|$.y}", "z": "${@|args|$.z}"}},
            {"function": "d", "target": "@.owner",
             "bodyTemplate": {"a": ["${third|output|$}", "${first|body|$}"]}},
            {"function": "e", "target": "$"},
        ],
        "output": "third",
        "bodyTemplate": {"all": "${_4|body|$}", "main": "${@|body|$}"},
    }));
    let names: Vec<&str> = d.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["first", "_1", "third", "_3", "_4"]);
    let targets: Vec<&Target> = d.steps.iter().map(|s| &s.target).collect();
    assert_eq!(
        targets,
        [
            &Target::Main,
            &Target::Main,
            &Target::Step(0),
            &Target::Ref("owner".into()),
            &Target::Main,
        ]
    );
    let deps: Vec<&[usize]> = d.steps.iter().map(|s| s.deps.as_slice()).collect();
    assert_eq!(deps, [&[][..], &[], &[0, 1], &[0, 2], &[]]);
    assert_eq!(d.output, Some(2));
    assert_eq!(d.step("third"), Some(2));
    assert_eq!(d.step("_3"), Some(3));
    assert_eq!(d.steps[2].args.len(), 3);
    assert_eq!(
        d.steps[3].body.as_ref().map(|b| b.substitutions().count()),
        Some(2)
    );
    assert_eq!(d.body.as_ref().map(|b| b.substitutions().count()), Some(2));
}

#[test]
fn a_macro_needs_steps() {
    problems(json!({}), &["steps: a macro needs at least one step"]);
    problems(
        json!({"output": "x"}),
        &[
            "steps: a macro needs at least one step",
            "output: `output` names no step: step `x`, which does not exist",
        ],
    );
}

#[test]
fn names_must_be_valid_and_unique() {
    problems(
        json!({"steps": [
            {"function": "f", "as": "a"},
            {"function": "f", "as": "a"},
            {"function": "f", "as": "1a"},
            {"function": "f", "as": "a.b"},
            {"function": "f", "as": ""},
            {"function": "f", "as": "x".repeat(65)},
        ]}),
        &[
            "steps[1].as: duplicate step name `a` (first used by steps[0])",
            "steps[2].as: step name `1a` must start with a letter",
            "steps[3].as: step name `a.b` contains '.'; allowed are letters, digits, `_` and `-`",
            "steps[4].as: step name must not be empty",
            &format!(
                "steps[5].as: step name `{}` is 65 characters long; at most 64 are allowed",
                "x".repeat(65)
            ),
        ],
    );
    // 64 characters are fine.
    dag(json!({"steps": [{"function": "f", "as": "x".repeat(64)}]}));
}

#[test]
fn functions_must_be_named() {
    problems(
        json!({"steps": [{"function": ""}, {"function": "a b"}]}),
        &[
            "steps[0].function: the step names no function: give the binding to call on its target",
            "steps[1].function: binding name `a b` contains ' '; allowed are letters, digits and . _ - ~",
        ],
    );
}

#[test]
fn targets_must_name_earlier_steps_or_references() {
    problems(
        json!({"steps": [
            {"function": "f", "as": "one", "target": "later"},
            {"function": "f", "target": "onne"},
            {"function": "f", "target": "@."},
            {"function": "f", "target": "@.a/b"},
            {"function": "f", "as": "later"},
        ]}),
        &[
            "steps[2].target: reference name must not be empty",
            "steps[3].target: reference name `a/b` contains '/'; allowed are letters, digits, `_` and `-`",
            "steps[1].target: the target refers to step `onne`, which does not exist; did you mean `one`?",
            "steps[0].target: the target refers to step `later`, which comes later; a step can only use earlier steps",
        ],
    );
}

#[test]
fn substitutions_must_name_earlier_steps() {
    problems(
        json!({"steps": [
            {"function": "f", "as": "a", "args": {"x": "${b|output|$}", "y.z": "${nope|body|$}"}},
            {"function": "f", "as": "b", "bodyTemplate": {"k": ["${c|body|$.v}"]}},
            {"function": "f", "as": "c"},
        ]}),
        &[
            "steps[0].args[\"y.z\"]: `${nope|body|$}` refers to step `nope`, which does not exist",
            "steps[0].args.x: `${b|output|$}` refers to step `b`, which comes later; a step can only use earlier steps",
            "steps[1].bodyTemplate.k[0]: `${c|body|$.v}` refers to step `c`, which comes later; a step can only use earlier steps",
        ],
    );
}

#[test]
fn cycles_are_spelled_out_once_at_their_first_step() {
    problems(
        json!({"steps": [{"function": "f", "as": "a", "target": "a"}]}),
        &["steps[0].target: cycle: a -> a"],
    );
    problems(
        json!({"steps": [
            {"function": "f", "as": "a", "args": {"x": "${b|output|$}"}},
            {"function": "f", "as": "b", "target": "a"},
        ]}),
        &["steps[0].args.x: cycle: a -> b -> a"],
    );
    problems(
        json!({"steps": [
            {"function": "f", "as": "s0"},
            {"function": "f", "as": "a", "bodyTemplate": {"v": "${c|body|$}"}},
            {"function": "f", "as": "b", "target": "a"},
            {"function": "f", "as": "c", "target": "b"},
            {"function": "f", "as": "d", "args": {"q": "${d|body|$}"}},
        ]}),
        &[
            "steps[1].bodyTemplate.v: cycle: a -> c -> b -> a",
            "steps[4].args.q: cycle: d -> d",
        ],
    );
}

#[test]
fn template_errors_are_located() {
    problems(
        json!({
            "steps": [{"function": "f", "args": {"x": "${@|nope|$}"}, "bodyTemplate": {"a": "${"}}],
            "bodyTemplate": ["${zz|body|$}", "${_0|body|"],
        }),
        &[
            "steps[0].args.x: `${@|nope|$}`: unknown kind `nope`; expected `args`, `body` or `output`",
            "steps[0].bodyTemplate.a: `${` is not closed: a substitution ends with `}`",
            "bodyTemplate[1]: `${_0|body|` is not closed: a substitution ends with `}`",
        ],
    );
    problems(
        json!({
            "steps": [{"function": "f", "as": "step"}],
            "bodyTemplate": {"r": "${stepp|output|$}"},
        }),
        &[
            "bodyTemplate.r: `${stepp|output|$}` refers to step `stepp`, which does not exist; did you mean `step`?",
        ],
    );
}

#[test]
fn output_must_name_a_step() {
    problems(
        json!({"steps": [{"function": "f", "as": "result"}], "output": "reslt"}),
        &[
            "output: `output` names no step: step `reslt`, which does not exist; did you mean `result`?",
        ],
    );
    assert_eq!(
        dag(json!({"steps": [{"function": "f"}], "output": "_0"})).output,
        Some(0)
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let Err(all) = Dag::build(&spec(json!({
        "steps": [
            {"function": "", "as": "9"},
            {"function": "f", "target": "ghost", "args": {"a": "${"}},
        ],
        "output": "none",
        "bodyTemplate": "${@|x|$}",
    }))) else {
        panic!("built");
    };
    let paths: Vec<&str> = all.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "steps[0].as",
            "steps[0].function",
            "steps[1].args.a",
            "steps[1].target",
            "output",
            "bodyTemplate"
        ]
    );
}

proptest::proptest! {
    /// Whatever the steps say, building reports problems or a plan whose
    /// deps come before their steps; it never panics.
    #[test]
    fn any_spec_builds_or_is_refused_without_panicking(
        steps in proptest::collection::vec(
            (
                "[a-c]{0,2}",
                proptest::option::of("@|\\$|@\\.[a-c]{0,2}|_[0-3]|[a-c]{1,2}"),
                proptest::option::of("[a-c]{1,2}|_[0-3]|[0-9]"),
                proptest::collection::btree_map(
                    "[a-c]",
                    "\\$\\{([a-c]{1,2}|_[0-3]|@)\\|(args|body|output)\\|\\$[.a-c]{0,3}\\}|x|\\$\\{",
                    0..3,
                ),
            ),
            0..6,
        ),
        output in proptest::option::of("[a-c]{1,2}|_[0-3]"),
    ) {
        let steps: Vec<serde_json::Value> = steps
            .into_iter()
            .map(|(function, target, as_name, args)| {
                json!({"function": function, "target": target, "as": as_name, "args": args})
            })
            .collect();
        let spec = spec(json!({"steps": steps, "output": output}));
        if let Ok(d) = Dag::build(&spec) {
            for (i, s) in d.steps.iter().enumerate() {
                proptest::prop_assert!(s.deps.iter().all(|&j| j < i), "{:?}", s);
                proptest::prop_assert!(s.deps.windows(2).all(|w| w[0] < w[1]));
                if let Target::Step(j) = s.target {
                    proptest::prop_assert!(s.deps.contains(&j));
                }
            }
        }
    }
}

#[test]
fn a_macro_has_a_bounded_number_of_steps() {
    let steps: Vec<serde_json::Value> = (0..=crate::dataflow::MAX_STEPS)
        .map(|_| json!({"function": "f"}))
        .collect();
    problems(
        json!({ "steps": steps }),
        &["steps: a macro has 257 steps; at most 256 are accepted (split it into nested macros)"],
    );
    let fits: Vec<serde_json::Value> = (0..crate::dataflow::MAX_STEPS)
        .map(|_| json!({"function": "f"}))
        .collect();
    assert_eq!(dag(json!({ "steps": fits })).steps.len(), 256);
}
