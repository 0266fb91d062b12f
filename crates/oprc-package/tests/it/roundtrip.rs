//! Generated packages written as YAML and JSON parse back to the same value.

use std::collections::BTreeMap;

use oprc_package::model::{
    Binding, Class, ClassConfig, Command, DeploymentProvision, Function, FunctionConfig,
    HttpProvision, KeySpec, KnativeProvision, MacroSpec, MacroStep, Persistence, ProcessProvision,
    Provision, RefSpec, StateSpec,
};
use oprc_package::{Access, Duration, FunctionType, KeyAccess, Package, parse};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;
use serde_json::Value;

fn ident() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,6}"
}

/// Text that YAML likes to misread when it is not quoted properly.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 _.:#'\"{}\\[\\],&*!|>%@`-]{0,12}",
        "\\PC{0,10}",
        Just("true".to_owned()),
        Just("1.10".to_owned()),
        Just("0x1F".to_owned()),
        Just("null".to_owned()),
        Just("~".to_owned()),
        Just("- a".to_owned()),
        Just(String::new()),
        Just("line\nbreak\ttab".to_owned()),
    ]
}

fn string_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map("[A-Za-z_][A-Za-z0-9_.]{0,6}", text(), 0..3)
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        text().prop_map(Value::String),
        Just(Value::Null),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(Value::Array),
            btree_map(ident(), inner, 0..3).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body template; `null` is the same as no template.
fn template() -> impl Strategy<Value = Value> {
    json().prop_filter("null is no template", |v| !v.is_null())
}

fn duration() -> impl Strategy<Value = Duration> {
    (0u64..10_000_000).prop_map(Duration::from_millis)
}

fn access() -> impl Strategy<Value = Access> {
    prop_oneof![
        Just(Access::Public),
        Just(Access::Internal),
        Just(Access::Private)
    ]
}

fn key_access() -> impl Strategy<Value = KeyAccess> {
    prop_oneof![
        Just(KeyAccess::Public),
        Just(KeyAccess::Dependent),
        Just(KeyAccess::Internal),
        Just(KeyAccess::Private)
    ]
}

fn binding(i: usize) -> impl Strategy<Value = Binding> {
    let function = prop_oneof![
        Just(".f0".to_owned()),
        Just("builtin.get".to_owned()),
        Just("get".to_owned()),
        Just("other.fn".to_owned()),
    ];
    let output = proptest::option::of(prop_oneof![
        Just("none".to_owned()),
        Just(".c0".to_owned()),
        Just("x.y".to_owned()),
    ]);
    (
        function,
        access(),
        output,
        proptest::option::of(any::<bool>()),
        any::<bool>(),
        string_map(),
        btree_map(ident(), json(), 0..3),
        proptest::option::of(text()),
    )
        .prop_map(
            move |(function, access, output_cls, immutable, no_main, args, over, description)| {
                Binding {
                    // Only the first may take its name from the function, so
                    // names stay unique.
                    name: (i > 0).then(|| format!("b{i}")),
                    function,
                    access,
                    output_cls,
                    immutable,
                    no_main,
                    default_args: args,
                    override_options: over.into_iter().collect(),
                    description,
                }
            },
        )
}

fn class(i: usize) -> impl Strategy<Value = Class> {
    let bindings = (0usize..3).prop_flat_map(|n| (0..n).map(binding).collect::<Vec<_>>());
    (
        proptest::option::of(text()),
        any::<bool>(),
        btree_set(0usize..4, 0..3),
        btree_map(ident(), key_access(), 0..3),
        btree_map(ident(), key_access(), 0..2),
        bindings,
        proptest::option::of(1u16..),
        any::<bool>(),
    )
        .prop_map(
            move |(description, disabled, parents, keys, refs, functions, partitions, async_)| {
                Class {
                    name: format!("c{i}"),
                    description,
                    disabled,
                    parents: parents.into_iter().map(|p| format!(".c{p}")).collect(),
                    state_spec: StateSpec {
                        key_specs: keys
                            .into_iter()
                            .map(|(name, access)| KeySpec { name, access })
                            .collect(),
                    },
                    ref_spec: refs
                        .into_iter()
                        .map(|(name, access)| RefSpec {
                            name,
                            cls: ".c0".into(),
                            access,
                        })
                        .collect(),
                    functions,
                    config: ClassConfig {
                        partitions,
                        persistence: if async_ {
                            Persistence::Async
                        } else {
                            Persistence::Sync
                        },
                    },
                }
            },
        )
}

fn process() -> impl Strategy<Value = ProcessProvision> {
    let command = prop_oneof![
        "[a-z][a-z ./-]{0,10}".prop_map(Command::Shell),
        vec("[a-z0-9./-]{1,6}", 1..4).prop_map(Command::Argv),
    ];
    (
        command,
        string_map(),
        proptest::option::of(text()),
        (0u32..4, 1u32..8, 1u32..16),
        duration(),
        duration(),
    )
        .prop_map(
            |(command, env, workdir, (min, extra, concurrency), idle, ready)| ProcessProvision {
                command,
                env,
                workdir,
                min_instances: min,
                max_instances: min + extra,
                concurrency,
                idle_timeout: idle,
                readiness_timeout: ready,
            },
        )
}

fn provision() -> impl Strategy<Value = Provision> {
    let knative = (
        ident(),
        proptest::option::of(-1i32..10),
        proptest::option::of(duration()),
        string_map(),
        proptest::option::of(any::<u16>()),
    )
        .prop_map(|(image, max_scale, delay, env, port)| KnativeProvision {
            image,
            min_scale: None,
            max_scale,
            concurrency: None,
            target_concurrency: None,
            scale_down_delay: delay,
            requests_cpu: Some("0.5".into()),
            requests_memory: None,
            limits_cpu: None,
            limits_memory: None,
            env,
            api_path: None,
            port,
        });
    let deployment = (ident(), proptest::option::of(0u32..5)).prop_map(|(image, replicas)| {
        DeploymentProvision {
            image,
            replicas,
            requests_cpu: None,
            requests_memory: None,
            limits_cpu: None,
            limits_memory: Some("512Mi".into()),
            env: BTreeMap::new(),
            api_path: Some("/".into()),
            port: Some(8080),
            pull_policy: None,
        }
    });
    prop_oneof![
        ident().prop_map(|host| Provision {
            http: Some(HttpProvision {
                url: format!("http://{host}")
            }),
            ..Provision::default()
        }),
        process().prop_map(|p| Provision {
            process: Some(p),
            ..Provision::default()
        }),
        knative.prop_map(|k| Provision {
            knative: Some(k),
            ..Provision::default()
        }),
        deployment.prop_map(|d| Provision {
            deployment: Some(d),
            ..Provision::default()
        }),
    ]
}

/// Text without substitutions (`${`), which would have to name steps.
fn plain(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.contains("${"),
        Value::Array(items) => items.iter().all(plain),
        Value::Object(entries) => entries.values().all(plain),
        _ => true,
    }
}

/// A valid macro: unique names, targets and output naming earlier steps.
fn macro_spec() -> impl Strategy<Value = MacroSpec> {
    let step = (
        ident(),
        any::<prop::sample::Index>(),
        proptest::option::of(ident()),
        string_map().prop_filter("no substitutions", |m| {
            m.values().all(|v| !v.contains("${"))
        }),
        proptest::option::of(template().prop_filter("no substitutions", plain)),
    );
    (
        vec(step, 1..4),
        proptest::option::of(any::<prop::sample::Index>()),
        proptest::option::of(template().prop_filter("no substitutions", plain)),
    )
        .prop_map(|(raw, output, body_template)| {
            let mut names: Vec<String> = Vec::new();
            let mut steps = Vec::new();
            for (k, (function, target, as_name, args, body_template)) in raw.into_iter().enumerate()
            {
                let as_name = as_name.filter(|n| !names.contains(n));
                // None, `@`, or an earlier step's name.
                let target = match target.index(k + 2) {
                    0 => None,
                    1 => Some("@".to_owned()),
                    j => Some(names[j - 2].clone()),
                };
                names.push(as_name.clone().unwrap_or_else(|| format!("_{k}")));
                steps.push(MacroStep {
                    function,
                    target,
                    as_name,
                    args,
                    body_template,
                });
            }
            let output = output.map(|o| o.get(&names).clone());
            MacroSpec {
                steps,
                output,
                body_template,
            }
        })
}

fn function(i: usize) -> impl Strategy<Value = Function> {
    let engine = prop_oneof![
        provision().prop_map(|p| (Some(p), None)),
        ident().prop_map(|h| (None, Some(format!("https://{h}")))),
        Just((None, None)),
    ];
    (
        proptest::option::of(macro_spec()),
        engine,
        proptest::option::of(text()),
        proptest::option::of(prop_oneof![Just("void".to_owned()), Just(".c1".to_owned())]),
        any::<bool>(),
        string_map(),
        duration(),
    )
        .prop_map(
            move |(
                macro_spec,
                (provision, static_url),
                description,
                output_cls,
                immutable,
                custom,
                timeout,
            )| {
                let is_macro = macro_spec.is_some();
                Function {
                    name: format!("f{i}"),
                    kind: if is_macro {
                        FunctionType::Macro
                    } else {
                        FunctionType::Task
                    },
                    description,
                    output_cls,
                    immutable,
                    provision: if is_macro { None } else { provision },
                    config: FunctionConfig {
                        static_url: if is_macro { None } else { static_url },
                        custom,
                        timeout,
                    },
                    macro_spec,
                }
            },
        )
}

fn package() -> impl Strategy<Value = Package> {
    let classes = (0usize..4).prop_flat_map(|n| (0..n).map(class).collect::<Vec<_>>());
    let functions = (0usize..3).prop_flat_map(|n| (0..n).map(function).collect::<Vec<_>>());
    (
        ident(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        classes,
        functions,
        btree_set(ident(), 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(name, version, description, classes, functions, required, disabled)| Package {
                required: required.into_iter().filter(|r| r != &name).collect(),
                name,
                version,
                description,
                classes,
                functions,
                disabled,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn packages_survive_yaml_and_json(package in package()) {
        let texts = [
            serde_norway::to_string(&package).unwrap(),
            serde_json::to_string(&package).unwrap(),
            serde_json::to_string_pretty(&package).unwrap(),
        ];
        for text in texts {
            let doc = parse(&text).map_err(|d| {
                TestCaseError::fail(format!("{text}\n{d:#?}"))
            })?;
            prop_assert_eq!(doc.package(), &package, "{}", text);
        }
    }
}
