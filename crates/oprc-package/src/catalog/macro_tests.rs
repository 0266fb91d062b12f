//! Macros checked when a package is applied: their dataflow (package-local,
//! in the parser) and their steps against the classes that bind them.

use oprc_core::FunctionKey;

use super::tests::{apply, doc};
use super::*;
use crate::dataflow::Target;

/// Every diagnostic of parsing and applying `source`, one per line.
#[track_caller]
fn refused(catalog: &Catalog, source: &str) -> String {
    let diags = match parse(source) {
        Err(diags) => diags,
        Ok(doc) => match catalog.apply(&doc) {
            Ok(_) => panic!("accepted:\n{source}"),
            Err(diags) => diags,
        },
    };
    diags
        .iter()
        .map(|d| format!("{}: {d}", d.severity))
        .collect::<Vec<_>>()
        .join("\n")
}

#[track_caller]
fn check(catalog: &Catalog, source: &str, expected: &str) {
    assert_eq!(
        refused(catalog, source),
        expected.trim(),
        "source:\n{source}"
    );
}

#[test]
fn a_checked_macro_is_planned_once_in_the_catalog() {
    let catalog = apply(
        &Catalog::new(),
        "
name: p
functions:
  - name: twice
    type: MACRO
    macro:
      steps:
        - {function: copy, as: one}
        - {function: copy, target: one, as: two, args: {from: '${one|output|$.id}'}}
      output: two
classes:
  - name: c
    functions:
      - function: .twice
",
    );
    let f = catalog
        .function(&FunctionKey::new("p.twice").unwrap())
        .unwrap();
    let dag = f.dataflow().expect("a macro has its dataflow");
    assert_eq!(dag.steps[1].target, Target::Step(0));
    assert_eq!(dag.steps[1].deps, [0]);
    assert_eq!(dag.output, Some(1));
    let again = catalog
        .function(&FunctionKey::new("p.twice").unwrap())
        .unwrap();
    assert!(Arc::ptr_eq(dag, again.dataflow().unwrap()), "built once");
    let task = Catalog::new();
    let get = task
        .function(&FunctionKey::new("builtin.get").unwrap())
        .unwrap();
    assert!(get.dataflow().is_none());
}

#[test]
fn dataflow_problems_have_line_and_column() {
    check(
        &Catalog::new(),
        "
name: p
functions:
  - name: m
    type: MACRO
    macro:
      steps:
        - function: get
          as: first
          args:
            x: '${ghost|output|$.a}'
            y: '${@|bdy|$.a}'
        - function: get
          target: frist
          as: first
          bodyTemplate: {a: ['${second|body|$}']}
        - function: get
          as: second
      output: scond
      bodyTemplate: {ok: '${second|body|$}', bad: '${nobody|body|$}'}
",
        r#"
error: 11:16: functions[0].macro.steps[0].args.x: `${ghost|output|$.a}` refers to step `ghost`, which does not exist
error: 12:16: functions[0].macro.steps[0].args.y: `${@|bdy|$.a}`: unknown kind `bdy`; expected `args`, `body` or `output`; did you mean `body`?
error: 14:19: functions[0].macro.steps[1].target: the target refers to step `frist`, which does not exist; did you mean `first`?
error: 15:15: functions[0].macro.steps[1].as: duplicate step name `first` (first used by steps[0])
error: 16:30: functions[0].macro.steps[1].bodyTemplate.a[0]: `${second|body|$}` refers to step `second`, which comes later; a step can only use earlier steps
error: 19:15: functions[0].macro.output: `output` names no step: step `scond`, which does not exist; did you mean `second`?
error: 20:51: functions[0].macro.bodyTemplate.bad: `${nobody|body|$}` refers to step `nobody`, which does not exist
"#,
    );
}

#[test]
fn cycles_and_empty_macros_are_located() {
    check(
        &Catalog::new(),
        "
name: p
functions:
  - name: loop
    type: MACRO
    macro:
      steps:
        - {function: get, as: a, args: {x: '${b|body|$}'}}
        - {function: get, as: b, target: a}
  - name: empty
    type: MACRO
    macro: {steps: []}
",
        r#"
error: 8:44: functions[0].macro.steps[0].args.x: cycle: a -> b -> a
error: 12:20: functions[1].macro.steps: a macro needs at least one step
"#,
    );
}

const USERS: &str = "
name: p
functions:
  - name: flow
    type: MACRO
    macro:
      steps:
        - {function: greet, target: '@.owner', as: hello}
        - {function: copy, as: dup}
        - {function: gret, target: dup}
        - {function: greet, target: '@.ownr'}
        - {function: scor, target: hello}
classes:
  - name: user
    functions:
      - {name: greet, function: get, outputCls: .score}
  - name: score
  - name: doc
    refSpec: [{name: owner, cls: .user}]
    functions:
      - function: .flow
";

#[test]
fn steps_must_call_bindings_their_target_class_has() {
    // `greet` on `@.owner` (a user) is fine and outputs a score; `copy`
    // outputs a doc; a score has no `scor`.
    check(
        &Catalog::new(),
        USERS,
        r#"
error: 10:22: functions[0].macro.steps[2].function: step `_2`: class `p.doc` has no binding `gret`; did you mean `get`?
error: 11:37: functions[0].macro.steps[3].target: step `_3` targets `@.ownr`, but class `p.doc` has no reference `ownr`; did you mean `@.owner`?
error: 12:22: functions[0].macro.steps[4].function: step `_4`: class `p.score` has no binding `scor`
"#,
    );
    // Fixed, it applies.
    apply(
        &Catalog::new(),
        &USERS
            .replace("function: gret, target: dup", "function: get, target: dup")
            .replace("'@.ownr'", "'@.owner'")
            .replace("function: scor,", "function: get,"),
    );
}

#[test]
fn macros_are_not_reported_again_for_what_did_not_resolve() {
    check(
        &Catalog::new(),
        "
name: p
functions:
  - name: flow
    type: MACRO
    macro: {steps: [{function: score}]}
classes:
  - name: c
    functions:
      - {name: score, function: .ghost}
      - function: .flow
",
        "error: 10:33: classes[0].functions[0].function: unknown function `.ghost`: package `p` has no function `ghost`",
    );
}

const MODERATION: &str = "
name: moderation
functions:
  - name: score
    provision: {http: {url: 'http://moderation.local'}}
classes:
  - name: evaluator
    functions:
      - {function: .score, access: PUBLIC}
";

const OTHER: &str = "
name: other
required: [moderation]
functions:
  - name: pipeline
    type: MACRO
    macro:
      steps:
        - {function: score, target: '@.judge', as: score}
classes:
  - name: media
    refSpec: [{name: judge, cls: moderation.evaluator}]
    functions:
      - function: .pipeline
";

#[test]
fn internal_bindings_are_reachable_from_their_package_only() {
    let internal = MODERATION.replace("PUBLIC", "INTERNAL");
    let catalog = apply(&Catalog::new(), &internal);
    check(
        &catalog,
        OTHER,
        "error: 9:22: functions[0].macro.steps[0].function: step `score` calls `moderation.evaluator.score`, which is INTERNAL to package `moderation`; macro `pipeline` of `other.media` cannot call it",
    );
    // A macro of the same package may call it.
    apply(
        &Catalog::new(),
        "
name: moderation
functions:
  - name: score
    provision: {http: {url: 'http://moderation.local'}}
  - name: pipeline
    type: MACRO
    macro: {steps: [{function: score, target: '@.judge'}]}
classes:
  - name: evaluator
    functions:
      - {function: .score, access: INTERNAL}
  - name: judged
    refSpec: [{name: judge, cls: .evaluator}]
    functions:
      - function: .pipeline
",
    );
}

#[test]
fn a_change_that_makes_a_binding_unreachable_is_refused() {
    let catalog = apply(&apply(&Catalog::new(), MODERATION), OTHER);
    check(
        &catalog,
        &MODERATION.replace("PUBLIC", "INTERNAL"),
        "error: 2:1: package `other` would break: 9:22: functions[0].macro.steps[0].function: step `score` calls `moderation.evaluator.score`, which is INTERNAL to package `moderation`; macro `pipeline` of `other.media` cannot call it",
    );
    // Nothing changed: the old catalog still holds the PUBLIC binding.
    let evaluator = catalog
        .class(&ClassKey::new("moderation.evaluator").unwrap())
        .unwrap();
    assert_eq!(
        evaluator.binding("score").unwrap().access,
        crate::Access::Public
    );
}

const FAMILY: &str = "
name: p
functions:
  - name: run
    type: MACRO
    macro: {steps: [{function: secret, as: s}]}
  - name: hidden
    provision: {http: {url: 'http://p.local'}}
classes:
  - name: parent
    functions:
      - function: .run
      - {name: secret, function: .hidden, access: PRIVATE}
  - name: child
    parents: [.parent]
";

#[test]
fn private_bindings_are_reachable_from_their_class_only() {
    // The parent's macro calls the parent's PRIVATE binding, in the parent
    // and in the child that inherits both.
    apply(&Catalog::new(), FAMILY);
    // A child that overrides it owns the new binding: the parent's macro
    // may not call it.
    check(
        &Catalog::new(),
        &format!(
            "{FAMILY}    functions:\n      - {{name: secret, function: .hidden, access: PRIVATE}}\n"
        ),
        "error: 6:32: functions[0].macro.steps[0].function: step `s` calls `p.child.secret`, which is PRIVATE to class `p.child`; macro `run` of `p.parent` cannot call it",
    );
}

const LIB: &str = "
name: lib
functions:
  - name: flow
    type: MACRO
    macro: {steps: [{function: ping}]}
  - name: ping
    provision: {http: {url: 'http://lib.local'}}
classes:
  - name: base
    functions:
      - function: .flow
      - function: .ping
";

#[test]
fn problems_of_another_packages_macro_are_reported_where_it_is_bound() {
    let catalog = apply(&Catalog::new(), LIB);
    // Bound by a class without `ping`: reported at the binding.
    check(
        &catalog,
        "
name: app
required: [lib]
classes:
  - name: thing
    functions:
      - function: lib.flow
",
        "error: 7:9: classes[0].functions[0]: macro `lib.flow`: step `_0`: class `app.thing` has no binding `ping`",
    );
    // Inherited by a class that makes `ping` PRIVATE: reported at the class.
    check(
        &catalog,
        "
name: app
required: [lib]
classes:
  - name: derived
    parents: [lib.base]
    functions:
      - {function: lib.ping, access: PRIVATE}
",
        "error: 5:5: classes[0]: inherited macro `flow` (`lib.flow`): step `_0` calls `app.derived.ping`, which is PRIVATE to class `app.derived`; macro `flow` of `lib.base` cannot call it",
    );
}

#[test]
fn a_partial_load_leaves_out_the_class_that_cannot_use_a_macro() {
    let internal = MODERATION.replace("PUBLIC", "INTERNAL");
    let lib = "
name: lib
required: [moderation]
functions:
  - name: flow
    type: MACRO
    macro: {steps: [{function: score, target: '@.judge'}]}
";
    let app = "
name: app
required: [lib, moderation]
classes:
  - name: media
    refSpec: [{name: judge, cls: moderation.evaluator}]
    functions:
      - function: lib.flow
";
    let (catalog, failures) = Catalog::load_partial([doc(&internal), doc(lib), doc(app)]);
    assert!(
        catalog.package("lib").is_some(),
        "the macro's package stays"
    );
    let failures: Vec<String> = failures
        .iter()
        .flat_map(|f| f.diagnostics.iter().map(|d| format!("{}: {d}", f.package)))
        .collect();
    assert_eq!(
        failures,
        [
            "app: 8:9: classes[0].functions[0]: macro `lib.flow`: step `_0` calls `moderation.evaluator.score`, which is INTERNAL to package `moderation`; macro `flow` of `app.media` cannot call it"
        ]
    );
}

#[test]
fn macros_that_could_never_run_are_refused() {
    // A step calling a class-level function, and a macro bound noMain:
    // every step runs on an object, so neither could ever run.
    check(
        &Catalog::new(),
        "name: p
classes:
  - name: c
    functions:
      - {name: m, function: .m}
      - {name: m2, function: .m, noMain: true}
functions:
  - name: m
    type: MACRO
    macro:
      steps:
        - {function: new, target: '@'}
",
        r#"
error: 12:22: functions[0].macro.steps[0].function: step `_0` calls `p.c.new`, a class-level function (noMain, like `new`); a step runs on an object
error: 12:35: functions[0].macro.steps[0].target: macro `m2` is bound on `p.c` as a class-level call (noMain), so step `_0` has no main object to run on; bind the macro without noMain
"#,
    );
}
