//! The pure core of a task invocation: build the task for a function, and
//! decide what its completion does to the state. No IO here, so every rule
//! of G2 (all or nothing) and G3 (files switch with the state) is tested
//! without sockets or disks.

use std::collections::BTreeMap;

use oprc_blob::BlobPath;
use oprc_core::{Completion, InvocationError, ObjectRecord, Task};
use oprc_package::{ResolvedBinding, ResolvedClass};

use crate::error::codes;
use crate::files::{self, TaskUrls};

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
    pub urls: TaskUrls,
    /// `callUrl` and `callToken`, when tasks may call other objects.
    pub call: Option<(String, String)>,
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

pub(crate) fn build_task(input: TaskInput<'_>) -> Task {
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
        main_keys: input.urls.main_get.clone(),
        main_get_keys: input.urls.main_get,
        main_put_keys: input.urls.main_put,
        output_keys: input.urls.output_put,
        alloc_main_url: input.urls.alloc_main,
        alloc_output_url: input.urls.alloc_output,
        call_url: input.call.as_ref().map(|(url, _)| url.clone()),
        call_token: input.call.map(|(_, token)| token),
    }
}

/// The file side of a commit.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct FileChanges {
    /// New versions the commit switches to; each must have been uploaded.
    pub uploaded: Vec<BlobPath>,
    /// Reported keys that are not keys of the class (ignored).
    pub ignored: Vec<String>,
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
        files: FileChanges,
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

/// The classes whose keys a completion may update, and the version its
/// uploads were given (the invocation id).
pub(crate) struct Classes<'a> {
    pub main: &'a ResolvedClass,
    pub output: Option<&'a ResolvedClass>,
    pub version: &'a str,
}

/// Switches `obj`'s `verIds` of the reported keys to `version`; `true`
/// when any was reported.
fn switch_keys(
    obj: &mut ObjectRecord,
    class: &ResolvedClass,
    reported: &[String],
    version: &str,
    files: &mut FileChanges,
) -> bool {
    let (known, unknown) = files::updated_keys(class, reported);
    files.ignored.extend(unknown);
    for key in &known {
        if let Some(path) = files::path_of(obj, version, key) {
            obj.meta.ver_ids.insert(key.clone(), version.to_owned());
            files.uploaded.push(path);
        }
    }
    !known.is_empty()
}

/// Applies a completion to the state the task was built from.
///
/// - `success: false` (or missing) fails with the function's message.
/// - `main.data` replaces the main data whole; the same data, `{}` or no
///   `main` is no change. An immutable binding never changes main (its
///   `updatedKeys` included).
/// - `updatedKeys` switch those keys to this task's version, in the same
///   commit (G3); repeats count once, keys the class does not have are
///   ignored (and reported in `files.ignored`).
/// - The output object exists when the binding has an output class; its
///   data comes from `output.data` (or stays `{}`).
pub(crate) fn apply_completion(
    binding: &ResolvedBinding,
    classes: &Classes<'_>,
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
    let mut files = FileChanges::default();
    let (main_data, main_keys) = completion
        .main
        .map_or((None, Vec::new()), |u| (u.data, u.updated_keys));
    let new_main = match main {
        Some(old) if !binding.immutable => {
            let mut next = old.clone();
            let mut changed = false;
            if let Some(data) = main_data
                && data != old.data
            {
                next.data = data;
                changed = true;
            }
            changed |= switch_keys(
                &mut next,
                classes.main,
                &main_keys,
                classes.version,
                &mut files,
            );
            changed.then(|| {
                next.meta.revision += 1;
                next
            })
        }
        _ => {
            files.ignored.extend(main_keys);
            None
        }
    };
    let (output_data, output_keys) = completion
        .output
        .map_or((None, Vec::new()), |u| (u.data, u.updated_keys));
    let new_output = match output {
        Some(mut out) => {
            if let Some(data) = output_data {
                out.data = data;
            }
            if let Some(class) = classes.output {
                switch_keys(&mut out, class, &output_keys, classes.version, &mut files);
            } else {
                files.ignored.extend(output_keys);
            }
            out.meta.revision = 1;
            Some(out)
        }
        None => {
            files.ignored.extend(output_keys);
            None
        }
    };
    Outcome::Commit {
        main: new_main,
        output: new_output,
        body: completion.body,
        files,
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

    fn class() -> ResolvedClass {
        serde_json::from_value(json!({
            "key": "p.c", "package": "p", "name": "c", "disabled": false, "parents": [],
            "ancestors": [], "bindings": {}, "refs": {}, "config": {},
            "keys": {
                "video": {"name": "video", "access": "PUBLIC", "inheritedFrom": null},
                "thumb": {"name": "thumb", "access": "PRIVATE", "inheritedFrom": null},
            },
        }))
        .expect("class fixture")
    }

    fn apply(
        immutable: bool,
        main: Option<&ObjectRecord>,
        output: Option<ObjectRecord>,
        answer: serde_json::Value,
    ) -> Outcome {
        let class = class();
        let classes = Classes {
            main: &class,
            output: Some(&class),
            version: "inv1",
        };
        apply_completion(
            &binding(immutable),
            &classes,
            main,
            output,
            completion(answer),
        )
    }

    fn check(immutable: bool, answer: serde_json::Value, expected: Outcome) {
        let main = obj(3, json!({"n": 1}));
        assert_eq!(apply(immutable, Some(&main), None, answer), expected);
    }

    fn path(oid: &str, key: &str) -> BlobPath {
        BlobPath::parse(&format!("p.c/{oid}/inv1/{key}")).unwrap()
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
                files: FileChanges::default(),
            },
        );
    }

    #[test]
    fn empty_or_same_main_is_no_change() {
        let none = Outcome::Commit {
            main: None,
            output: None,
            body: None,
            files: FileChanges::default(),
        };
        check(false, json!({"success": true, "main": {}}), none);
        let none = Outcome::Commit {
            main: None,
            output: None,
            body: None,
            files: FileChanges::default(),
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
                files: FileChanges::default(),
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
    fn updated_keys_switch_versions_in_the_same_commit() {
        let main = obj(3, json!({"n": 1}));
        let out = apply(
            false,
            Some(&main),
            None,
            json!({"success": true, "main": {"updatedKeys": ["video", "video", "nope", "thumb"]}}),
        );
        let mut next = main;
        next.meta.revision = 4;
        next.meta.ver_ids.insert("video".into(), "inv1".into());
        next.meta.ver_ids.insert("thumb".into(), "inv1".into());
        assert_eq!(
            out,
            Outcome::Commit {
                main: Some(next),
                output: None,
                body: None,
                files: FileChanges {
                    uploaded: vec![path("o", "video"), path("o", "thumb")],
                    ignored: vec!["nope".into()],
                },
            }
        );
    }

    #[test]
    fn an_immutable_binding_switches_no_main_key_but_output_keys() {
        let main = obj(3, json!({"n": 1}));
        let template = obj(0, json!({}));
        let Outcome::Commit {
            main: m,
            output,
            files,
            ..
        } = apply(
            true,
            Some(&main),
            Some(template),
            json!({"success": true, "main": {"updatedKeys": ["video"]},
                   "output": {"updatedKeys": ["video"]}}),
        )
        else {
            panic!("commits");
        };
        assert_eq!(m, None);
        assert_eq!(output.unwrap().meta.ver_ids["video"], "inv1");
        assert_eq!(files.uploaded, vec![path("o", "video")]);
        assert_eq!(files.ignored, vec!["video".to_owned()]);
    }

    #[test]
    fn a_failed_task_switches_nothing() {
        let main = obj(3, json!({"n": 1}));
        let out = apply(
            false,
            Some(&main),
            None,
            json!({"success": false, "errorMsg": "x", "main": {"updatedKeys": ["video"]}}),
        );
        assert!(matches!(out, Outcome::Failed(_)));
    }

    #[test]
    fn output_object_is_created_from_output_data() {
        let template = obj(0, json!({}));
        let out = apply(
            true,
            Some(&obj(1, json!({}))),
            Some(template),
            json!({"success": true, "output": {"data": {"k": "v"}}}),
        );
        assert_eq!(
            out,
            Outcome::Commit {
                main: None,
                output: Some(obj(1, json!({"k": "v"}))),
                body: None,
                files: FileChanges::default(),
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
