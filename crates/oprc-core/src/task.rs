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
    /// Presigned PUT URLs for new versions of the main object's files.
    #[serde(default)]
    pub main_put_keys: BTreeMap<String, String>,
    /// Presigned PUT URLs for the output object's files.
    #[serde(default)]
    pub output_keys: BTreeMap<String, String>,
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
            main_put_keys: BTreeMap::new(),
            output_keys: BTreeMap::new(),
        };
        let v = serde_json::to_value(&t).unwrap();
        assert!(v.get("main").is_none());
        assert!(v.get("output").is_none());
        assert!(v.get("reqBody").is_none());
    }
}
