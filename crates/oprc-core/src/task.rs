//! The task/completion protocol (Oparaca compatible): the platform POSTs a
//! [`Task`] to a function, the function answers with a [`Completion`].
//!
//! Exact in what is sent (absent objects are omitted, never `null`), liberal
//! in what is accepted (unknown completion fields are ignored).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ObjectRecord;

/// The request body the platform sends to a task function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// The invocation id.
    pub id: String,
    pub func_key: String,
    pub fb_name: String,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req_body: Option<serde_json::Value>,
    #[serde(default)]
    pub immutable: bool,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<ObjectRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<ObjectRecord>,
    /// Presigned GET URLs of the main object's files.
    #[serde(default)]
    pub main_get_keys: BTreeMap<String, String>,
    /// The same URLs under the name older functions read
    /// (`get_main_resource_url` of the original Python SDK).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub main_keys: BTreeMap<String, String>,
    /// Presigned PUT URLs for new versions of the main object's files.
    #[serde(default)]
    pub main_put_keys: BTreeMap<String, String>,
    /// Presigned PUT URLs for the output object's files.
    #[serde(default)]
    pub output_keys: BTreeMap<String, String>,
    /// Answers PUT URLs for new versions of the main object's files: GET
    /// gives `{key: url}` for every key, POST a JSON list of keys gives
    /// those (the original Python SDK's allocation endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc_main_url: Option<String>,
    /// The same for the output object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc_output_url: Option<String>,
    /// The node's API base (`http://host:port`): the function calls other
    /// objects at `{callUrl}/api/classes/...` with `callToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_url: Option<String>,
    /// A bearer token scoped to this task: it grants calls of functions, as
    /// the task's class, and expires with the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_token: Option<String>,
}

/// A change a function reports for one object. `{}` means no change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectUpdate {
    /// Replaces the object's data whole when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// File keys the function wrote through the PUT URLs (may repeat).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub updated_keys: Vec<String>,
}

/// What a task function answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A completion that does not say `success: true` is a failure (as in the
    /// original platform, where the field defaults to false).
    #[serde(default)]
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_msg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<ObjectUpdate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<ObjectUpdate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Why a function's answer is not a usable completion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompletionError {
    #[error("function answer is not JSON: {0}")]
    NotJson(String),
    #[error("function answer is {0}, expected a JSON object")]
    NotAnObject(&'static str),
    #[error("function answer is not a valid completion: {0}")]
    Invalid(String),
}

impl Completion {
    /// Parses a function's answer liberally: unknown fields are ignored, but
    /// `null` or a non-object answer is an error.
    pub fn parse(bytes: &[u8]) -> Result<Self, CompletionError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| CompletionError::NotJson(e.to_string()))?;
        let kind = match &value {
            serde_json::Value::Object(_) => None,
            serde_json::Value::Null => Some("null"),
            serde_json::Value::Array(_) => Some("an array"),
            serde_json::Value::String(_) => Some("a string"),
            serde_json::Value::Number(_) => Some("a number"),
            serde_json::Value::Bool(_) => Some("a boolean"),
        };
        if let Some(kind) = kind {
            return Err(CompletionError::NotAnObject(kind));
        }
        // serde would also read an update from an array of its fields in
        // order; a function hardly means that.
        for field in ["main", "output"] {
            if let Some(v) = value.get(field)
                && !(v.is_null() || v.is_object())
            {
                return Err(CompletionError::Invalid(format!(
                    "`{field}` must be an object like {{\"data\": ...}}, not {}",
                    kind_of(v)
                )));
            }
        }
        serde_json::from_value(value).map_err(|e| CompletionError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_err(input: &str, expected: &str) {
        let err = Completion::parse(input.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), expected);
    }

    #[test]
    fn completion_ignores_unknown_fields() {
        let c = Completion::parse(
            br#"{"id":"x","success":true,"main":{},"extensions":{"a":1},"output":null}"#,
        )
        .unwrap();
        assert!(c.success);
        assert_eq!(c.main, Some(ObjectUpdate::default()));
        assert_eq!(c.output, None);
    }

    #[test]
    fn completion_rejects_non_objects() {
        check_err("null", "function answer is null, expected a JSON object");
        check_err("[1]", "function answer is an array, expected a JSON object");
        check_err(
            "{",
            "function answer is not JSON: EOF while parsing an object at line 1 column 1",
        );
    }

    #[test]
    fn missing_success_is_failure() {
        let c = Completion::parse(br#"{"main":{"data":{}}}"#).unwrap();
        assert!(!c.success);
    }

    proptest::proptest! {
        /// Whatever a function answers, parsing it never panics.
        #[test]
        fn any_answer_parses_or_is_refused(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = Completion::parse(&bytes);
        }

        #[test]
        fn any_json_answer_parses_or_is_refused(text in "[{}\\[\\]\":,a-zA-Z0-9 .-]{0,80}") {
            let _ = Completion::parse(text.as_bytes());
        }
    }

    /// Runs `f` on a thread with a small stack: a decoder that recursed once
    /// per level of a 100,000-deep answer would overflow it (and abort). The
    /// deepest answer accepted needs about 300 KiB in a debug build.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(f)
            .expect("a test thread starts")
            .join()
            .expect("the test thread does not panic")
    }

    /// `inner` nested `depth` times in `open` and `close`, in a field
    /// `prefix` opens (and `suffix` closes).
    fn nested(field: (&str, &str), open: &str, inner: &str, close: &str, depth: usize) -> Vec<u8> {
        let (prefix, suffix) = field;
        let (open, close) = (open.repeat(depth), close.repeat(depth));
        format!("{prefix}{open}{inner}{close}{suffix}").into_bytes()
    }

    const TOP: (&str, &str) = ("", "");
    const MAIN_DATA: (&str, &str) = (r#"{"success": true, "main": {"data": "#, "}}");
    const BODY: (&str, &str) = (r#"{"body": "#, "}");

    #[test]
    fn deep_answers_are_refused_before_they_overflow_the_stack() {
        const DEEP: usize = 100_000;
        let answers = [
            nested(TOP, "[", "1", "]", DEEP),
            nested(TOP, r#"{"a": "#, "1", "}", DEEP),
            nested(TOP, r#"[{"a": "#, "1", "}]", DEEP / 2),
            nested(MAIN_DATA, "[", "", "]", DEEP),
            nested(
                (r#"{"output": {"data": "#, "}}"),
                r#"{"k": "#,
                "null",
                "}",
                DEEP,
            ),
            nested(BODY, "[", "", "]", DEEP),
            // Unclosed: the limit comes before the end of input.
            nested(BODY, "[", "", "", DEEP),
            // Where a string is expected, and in a field that is ignored.
            nested((r#"{"errorMsg": "#, "}"), "[", "", "]", DEEP),
            nested((r#"{"extensions": "#, "}"), r#"{"k": "#, "0", "}", DEEP),
        ];
        for answer in answers {
            let shown = String::from_utf8_lossy(&answer[..40]).into_owned();
            let err = on_small_stack(move || Completion::parse(&answer).unwrap_err());
            match err {
                CompletionError::NotJson(m) => {
                    assert!(m.starts_with("recursion limit exceeded"), "{shown}: {m}")
                }
                other => panic!("{shown}: {other:?}"),
            }
        }
    }

    #[test]
    fn answers_nest_at_most_127_deep() {
        // serde_json's limit (128) counts every array and object, the
        // answer's own braces included; that sets what a function can
        // return as data, and nothing in this crate raises it.
        let answer = |levels| nested(MAIN_DATA, "[", "", "]", levels);
        let ok = on_small_stack(move || Completion::parse(&answer(125)));
        let data = ok.unwrap().main.unwrap().data.unwrap();
        let mut depth = 1;
        let mut at = &data;
        while let Some(inner) = at.get(0) {
            depth += 1;
            at = inner;
        }
        assert_eq!(depth, 125);
        let err = on_small_stack(move || Completion::parse(&answer(126)));
        assert!(
            matches!(err, Err(CompletionError::NotJson(m)) if m.starts_with("recursion limit"))
        );
    }

    mod generated {
        //! Generated answers: arbitrary JSON trees, valid completions with one
        //! field of any type, and valid completions cut short.

        use proptest::collection::{btree_map, vec};
        use proptest::prelude::*;
        use proptest::sample::{Index, select};
        use serde_json::{Value, json};

        use super::super::*;

        const FIELDS: &[&str] = &[
            "id",
            "success",
            "errorMsg",
            "main",
            "output",
            "body",
            "data",
            "updatedKeys",
        ];

        /// Any JSON, its object keys often the completion's own field names.
        fn any_json(floats: bool) -> impl Strategy<Value = Value> {
            let float = if floats { 1 } else { 0 };
            let leaf = prop_oneof![
                1 => Just(Value::Null),
                1 => any::<bool>().prop_map(Value::Bool),
                1 => any::<i64>().prop_map(Value::from),
                float => any::<f64>().prop_map(Value::from),
                2 => "\\PC{0,6}".prop_map(Value::String),
            ];
            let key = prop_oneof![select(FIELDS).prop_map(str::to_owned), "\\PC{0,4}"];
            leaf.prop_recursive(4, 32, 5, move |inner| {
                prop_oneof![
                    vec(inner.clone(), 0..5).prop_map(Value::Array),
                    btree_map(key.clone(), inner, 0..5)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn has_float(v: &Value) -> bool {
            match v {
                Value::Number(n) => n.is_f64(),
                Value::Array(items) => items.iter().any(has_float),
                Value::Object(fields) => fields.values().any(has_float),
                _ => false,
            }
        }

        fn object_update() -> impl Strategy<Value = ObjectUpdate> {
            let data = any_json(false).prop_filter("null is no data", |v| !v.is_null());
            (proptest::option::of(data), vec("\\PC{0,6}", 0..3))
                .prop_map(|(data, updated_keys)| ObjectUpdate { data, updated_keys })
        }

        fn completion() -> impl Strategy<Value = Completion> {
            let body = any_json(false).prop_filter("null is no body", |v| !v.is_null());
            (
                proptest::option::of("\\PC{0,8}"),
                any::<bool>(),
                proptest::option::of("\\PC{0,8}"),
                proptest::option::of(object_update()),
                proptest::option::of(object_update()),
                proptest::option::of(body),
            )
                .prop_map(|(id, success, error_msg, main, output, body)| Completion {
                    id,
                    success,
                    error_msg,
                    main,
                    output,
                    body,
                })
        }

        /// A field of a completion, and which values it takes.
        #[derive(Debug, Clone, Copy)]
        enum Field {
            Id,
            Success,
            ErrorMsg,
            Main,
            Output,
            MainData,
            MainKeys,
            MainKey,
            Body,
        }

        fn is_keys(v: &Value) -> bool {
            v.as_array().is_some_and(|k| k.iter().all(Value::is_string))
        }

        impl Field {
            fn path(self) -> &'static str {
                match self {
                    Field::Id => "/id",
                    Field::Success => "/success",
                    Field::ErrorMsg => "/errorMsg",
                    Field::Main => "/main",
                    Field::Output => "/output",
                    Field::MainData => "/main/data",
                    Field::MainKeys => "/main/updatedKeys",
                    Field::MainKey => "/main/updatedKeys/0",
                    Field::Body => "/body",
                }
            }

            fn takes(self, v: &Value) -> bool {
                match self {
                    Field::Id | Field::ErrorMsg => v.is_null() || v.is_string(),
                    Field::Success => v.is_boolean(),
                    Field::Main | Field::Output => match v {
                        Value::Null => true,
                        Value::Object(o) => o.get("updatedKeys").is_none_or(is_keys),
                        // An array of the fields in order, which serde's
                        // derive would read, is refused.
                        _ => false,
                    },
                    Field::MainKeys => is_keys(v),
                    Field::MainKey => v.is_string(),
                    Field::MainData | Field::Body => true,
                }
            }
        }

        fn field() -> impl Strategy<Value = Field> {
            select(&[
                Field::Id,
                Field::Success,
                Field::ErrorMsg,
                Field::Main,
                Field::Output,
                Field::MainData,
                Field::MainKeys,
                Field::MainKey,
                Field::Body,
            ])
        }

        fn full() -> Value {
            json!({
                "id": "i", "success": true, "errorMsg": "e",
                "main": {"data": {"n": 1}, "updatedKeys": ["a"]},
                "output": {"data": [1], "updatedKeys": []},
                "body": {"x": 1},
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn json_answers_are_read_or_refused_for_what_they_are(v in any_json(true)) {
                let kind = match &v {
                    Value::Object(_) => None,
                    Value::Null => Some("null"),
                    Value::Array(_) => Some("an array"),
                    Value::String(_) => Some("a string"),
                    Value::Number(_) => Some("a number"),
                    Value::Bool(_) => Some("a boolean"),
                };
                match (Completion::parse(v.to_string().as_bytes()), kind) {
                    (Err(CompletionError::NotAnObject(k)), Some(kind)) => prop_assert_eq!(k, kind),
                    (Err(CompletionError::Invalid(_)), None) => {}
                    (Ok(c), None) => {
                        prop_assert_eq!(c.success, v["success"] == json!(true));
                        // What was read is written and read back the same
                        // (floats only to the nearest bit or so: serde_json
                        // parses them fast, not exactly).
                        if !has_float(&v) {
                            let again = Completion::parse(&serde_json::to_vec(&c).unwrap());
                            prop_assert_eq!(again, Ok(c));
                        }
                    }
                    (other, _) => prop_assert!(false, "{v}: {other:?}"),
                }
            }

            #[test]
            fn a_field_of_the_wrong_type_is_refused(field in field(), v in any_json(true)) {
                let mut answer = full();
                *answer.pointer_mut(field.path()).unwrap() = v.clone();
                let parsed = Completion::parse(answer.to_string().as_bytes());
                if field.takes(&v) {
                    prop_assert!(parsed.is_ok(), "{answer}: {parsed:?}");
                } else {
                    prop_assert!(
                        matches!(parsed, Err(CompletionError::Invalid(_))),
                        "{answer}: {parsed:?}"
                    );
                }
            }

            #[test]
            fn completions_are_read_back_as_written(c in completion(), pretty in any::<bool>()) {
                let bytes = if pretty {
                    serde_json::to_vec_pretty(&c).unwrap()
                } else {
                    serde_json::to_vec(&c).unwrap()
                };
                prop_assert_eq!(Completion::parse(&bytes), Ok(c));
            }

            #[test]
            fn completions_cut_short_are_not_json(c in completion(), cut in any::<Index>()) {
                let bytes = serde_json::to_vec(&c).unwrap();
                let cut = cut.index(bytes.len());
                let parsed = Completion::parse(&bytes[..cut]);
                prop_assert!(matches!(parsed, Err(CompletionError::NotJson(_))), "{parsed:?}");
            }
        }
    }

    #[test]
    fn task_omits_absent_objects() {
        let t = Task {
            id: "i".into(),
            func_key: "p.f".into(),
            fb_name: "f".into(),
            args: BTreeMap::new(),
            req_body: None,
            immutable: false,
            ts: 1,
            main: None,
            output: None,
            main_get_keys: BTreeMap::new(),
            main_keys: BTreeMap::new(),
            main_put_keys: BTreeMap::new(),
            output_keys: BTreeMap::new(),
            alloc_main_url: None,
            alloc_output_url: None,
            call_url: None,
            call_token: None,
        };
        let v = serde_json::to_value(&t).unwrap();
        assert!(v.get("main").is_none());
        assert!(v.get("output").is_none());
        assert!(v.get("reqBody").is_none());
    }
}
