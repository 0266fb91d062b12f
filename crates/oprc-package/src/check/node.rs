//! Reading YAML nodes and schema fragments, and describing them in messages.

use saphyr::{MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Value};

pub(super) fn untagged<'n, 'i>(node: &'n MarkedYaml<'i>) -> &'n MarkedYaml<'i> {
    match &node.data {
        YamlData::Tagged(_, inner) => untagged(inner),
        _ => node,
    }
}

pub(super) fn key_text(node: &MarkedYaml<'_>) -> Option<String> {
    match &untagged(node).data {
        YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

/// The values of a string enum: `enum: [...]`, or `oneOf` of `const`s.
pub(super) fn enum_values(s: &Map<String, Value>) -> Option<Vec<String>> {
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect();
    }
    let branches = s
        .get("oneOf")
        .or_else(|| s.get("anyOf"))
        .and_then(Value::as_array)?;
    branches
        .iter()
        .map(|b| b.get("const").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

pub(super) fn types_of(s: &Map<String, Value>) -> Vec<&str> {
    match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

pub(super) fn kind_of(node: &MarkedYaml<'_>) -> &'static str {
    match &node.data {
        YamlData::Value(Scalar::Null) => "null",
        YamlData::Value(Scalar::Boolean(_)) => "boolean",
        YamlData::Value(Scalar::Integer(_)) => "integer",
        YamlData::Value(Scalar::FloatingPoint(_)) => "number",
        YamlData::Value(Scalar::String(_)) => "string",
        YamlData::Sequence(_) => "array",
        YamlData::Mapping(_) => "object",
        _ => "invalid",
    }
}

pub(super) fn expected_of(types: &[&str]) -> String {
    // Numbers and booleans are accepted as text; the text is what is meant.
    let text = types.contains(&"string");
    let names: Vec<&str> = types
        .iter()
        .filter(|t| **t != "null" && !(text && matches!(**t, "number" | "boolean")))
        .map(|t| match *t {
            "string" => "a string",
            "integer" => "an integer",
            "number" => "a number",
            "boolean" => "true or false",
            "object" => "a mapping",
            "array" => "a list",
            _ => "a value",
        })
        .collect();
    if names.is_empty() {
        "a value".into()
    } else {
        names.join(" or ")
    }
}

pub(super) fn describe(node: &MarkedYaml<'_>) -> String {
    match &untagged(node).data {
        YamlData::Value(Scalar::Null) => "nothing (null)".into(),
        YamlData::Value(Scalar::Boolean(b)) => format!("`{b}`"),
        YamlData::Value(Scalar::Integer(i)) => format!("`{i}`"),
        YamlData::Value(Scalar::FloatingPoint(f)) => format!("`{f}`"),
        YamlData::Value(Scalar::String(s)) => {
            let mut shown: String = s.chars().take(40).collect();
            if shown.len() < s.len() {
                shown.push('…');
            }
            format!("`{shown:?}`")
        }
        YamlData::Sequence(_) => "a list".into(),
        YamlData::Mapping(_) => "a mapping".into(),
        _ => "an invalid value".into(),
    }
}
