//! The pure core of a task invocation: build the task for a function, and
//! decide what its completion does to the state. No IO here, so every rule
//! of G2 (all or nothing) is tested without sockets or disks.

use std::collections::BTreeMap;

use oprc_core::{Completion, InvocationError, ObjectRecord, Task};
use oprc_package::ResolvedBinding;

use crate::error::codes;

/// The inputs of one task.
pub(crate) struct TaskInput<'a> {
    pub inv_id: &'a str,
    pub binding: &'a ResolvedBinding,
    pub args: &'a BTreeMap<String, String>,
    pub body: Option<&'a serde_json::Value>,
    pub main: Option<&'a ObjectRecord>,
    /// The output object to be created (id generated up front), if the
    /// binding has an output class.
    pub output: Option<&'a ObjectRecord>,
    pub now_ms: i64,
}

/// Arguments of a call: the binding's `defaultArgs` overlaid by the call's.
pub(crate) fn merge_args(
    defaults: &BTreeMap<String, String>,
    args: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut merged = defaults.clone();
    merged.extend(args.iter().map(|(k, v)| (k.clone(), v.clone())));
    merged
}

pub(crate) fn build_task(input: &TaskInput<'_>) -> Task {
    Task {
        id: input.inv_id.to_owned(),
        func_key: input.binding.function.to_string(),
        fb_name: input.binding.name.clone(),
        args: merge_args(&input.binding.default_args, input.args),
        req_body: input.body.cloned(),
        immutable: input.binding.immutable,
        ts: input.now_ms,
        main: input.main.cloned(),
        output: input.output.cloned(),
        main_get_keys: BTreeMap::new(),
        main_put_keys: BTreeMap::new(),
        output_keys: BTreeMap::new(),
    }
}

/// What a completion does.
#[derive(Debug, PartialEq)]
// Short-lived and moved once; boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Outcome {
    /// Commit these (all or nothing) and answer with `body`.
    Commit {
        /// The main object's new state, when it changed.
        main: Option<ObjectRecord>,
        /// The output object to create.
        output: Option<ObjectRecord>,
        body: Option<serde_json::Value>,
    },
    /// Change nothing; the invocation failed.
    Failed(InvocationError),
}

fn failed(code: &str, message: impl Into<String>) -> Outcome {
    Outcome::Failed(InvocationError {
        code: code.to_owned(),
        message: message.into(),
    })
}

/// Applies a completion to the state the task was built from.
///
/// - `success: false` (or missing) fails with the function's message.
/// - `main.data` replaces the main data whole; the same data, `{}` or no
///   `main` is no change. An immutable binding never changes main.
/// - The output object exists when the binding has an output class; its
///   data comes from `output.data` (or stays `{}`).
/// - `updatedKeys` name files; this node has no blob store yet, so any is a
///   failure rather than a silent loss.
pub(crate) fn apply_completion(
    binding: &ResolvedBinding,
    main: Option<&ObjectRecord>,
    output: Option<ObjectRecord>,
    completion: Completion,
) -> Outcome {
    if !completion.success {
        let message = completion
            .error_msg
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "function reported failure without a message".to_owned());
        return failed(codes::FUNCTION_FAILED, message);
    }
    let keys = completion
        .main
        .iter()
        .chain(completion.output.iter())
        .flat_map(|u| u.updated_keys.iter())
        .collect::<Vec<_>>();
    if !keys.is_empty() {
        return failed(
            codes::BAD_COMPLETION,
            format!("completion reports updated file keys {keys:?}, but no upload URLs were given"),
        );
    }
    let new_main = match (main, completion.main.and_then(|u| u.data)) {
        (Some(old), Some(data)) if !binding.immutable && data != old.data => {
            let mut next = old.clone();
            next.data = data;
            next.meta.revision += 1;
            Some(next)
        }
        _ => None,
    };
    let new_output = output.map(|mut out| {
        if let Some(data) = completion.output.and_then(|u| u.data) {
            out.data = data;
        }
        out.meta.revision = 1;
        out
    });
    Outcome::Commit {
        main: new_main,
        output: new_output,
        body: completion.body,
    }
}

#[cfg(test)]
mod tests {
    use oprc_core::{ClassKey, ObjectId};
    use serde_json::json;

    use super::*;

    fn binding(immutable: bool) -> ResolvedBinding {
        serde_json::from_value(json!({
            "name": "f", "function": "p.f", "functionType": "TASK", "access": "PUBLIC",
            "immutable": immutable, "noMain": false, "defaultArgs": {"a": "1", "b": "2"}, "override": {},
        }))
        .expect("binding fixture")
    }

    fn obj(rev: u64, data: serde_json::Value) -> ObjectRecord {
        let mut o = ObjectRecord::new(
            ClassKey::new("p.c").unwrap(),
            ObjectId::new("o").unwrap(),
            data,
        );
        o.meta.revision = rev;
        o
    }

    fn completion(v: serde_json::Value) -> Completion {
        Completion::parse(v.to_string().as_bytes()).unwrap()
    }

    fn check(immutable: bool, answer: serde_json::Value, expected: Outcome) {
        let main = obj(3, json!({"n": 1}));
        let out = apply_completion(&binding(immutable), Some(&main), None, completion(answer));
        assert_eq!(out, expected);
    }

    #[test]
    fn data_replaces_main_and_bumps_revision() {
        check(
            false,
            json!({"success": true, "main": {"data": {"m": 2}}, "body": 7}),
            Outcome::Commit {
                main: Some(obj(4, json!({"m": 2}))),
                output: None,
                body: Some(json!(7)),
            },
        );
    }

    #[test]
    fn empty_or_same_main_is_no_change() {
        let none = Outcome::Commit {
            main: None,
            output: None,
            body: None,
        };
        check(false, json!({"success": true, "main": {}}), none);
        let none = Outcome::Commit {
            main: None,
            output: None,
            body: None,
        };
        check(
            false,
            json!({"success": true, "main": {"data": {"n": 1}}}),
            none,
        );
    }

    #[test]
    fn immutable_binding_never_changes_main() {
        check(
            true,
            json!({"success": true, "main": {"data": {"m": 2}}}),
            Outcome::Commit {
                main: None,
                output: None,
                body: None,
            },
        );
    }

    #[test]
    fn failure_changes_nothing() {
        check(
            false,
            json!({"success": false, "errorMsg": "boom", "main": {"data": {"m": 2}}}),
            failed(codes::FUNCTION_FAILED, "boom"),
        );
        check(
            false,
            json!({"main": {"data": {"m": 2}}}),
            failed(
                codes::FUNCTION_FAILED,
                "function reported failure without a message",
            ),
        );
    }

    #[test]
    fn file_keys_without_blob_store_fail() {
        let Outcome::Failed(e) = apply_completion(
            &binding(false),
            Some(&obj(1, json!({}))),
            None,
            completion(json!({"success": true, "main": {"updatedKeys": ["video"]}})),
        ) else {
            panic!("expected failure");
        };
        assert_eq!(e.code, codes::BAD_COMPLETION);
    }

    #[test]
    fn output_object_is_created_from_output_data() {
        let template = obj(0, json!({}));
        let out = apply_completion(
            &binding(true),
            Some(&obj(1, json!({}))),
            Some(template),
            completion(json!({"success": true, "output": {"data": {"k": "v"}}})),
        );
        assert_eq!(
            out,
            Outcome::Commit {
                main: None,
                output: Some(obj(1, json!({"k": "v"}))),
                body: None,
            }
        );
    }

    #[test]
    fn args_overlay_defaults() {
        let args = BTreeMap::from([("b".to_owned(), "9".to_owned())]);
        let merged = merge_args(&binding(false).default_args, &args);
        assert_eq!(merged["a"], "1");
        assert_eq!(merged["b"], "9");
    }
}
