//! The JSON Schema of the package format, generated from the model types.
//!
//! The same schema drives the parser's checks (see `check.rs`), so the
//! documented format and the accepted format cannot drift apart. Besides
//! standard JSON Schema it carries a few `x-` extensions, read by the checker:
//! - `x-compat: [field, ...]` on an object: fields of the original Oparaca
//!   that are accepted, ignored and reported as warnings;
//! - `x-aliases: {old: new}` on an object: the original's names of renamed
//!   fields, read as the new name with a warning;
//! - `x-value-aliases: {OLD: NEW}` on an enum: the original's enum values;
//! - `x-noun` on an enum: what its values are called in messages;
//! - `x-kind: duration` on a value parsed as a [`crate::Duration`].

use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use crate::model::Package;

pub(crate) const COMPAT: &str = "x-compat";
pub(crate) const ALIASES: &str = "x-aliases";
pub(crate) const VALUE_ALIASES: &str = "x-value-aliases";
pub(crate) const NOUN: &str = "x-noun";
pub(crate) const KIND: &str = "x-kind";

static SCHEMA: LazyLock<Value> = LazyLock::new(generate);

/// The JSON Schema (draft 2020-12) of a package document. Compatibility
/// fields and aliases appear as `deprecated` properties, so editors accept
/// everything the parser accepts.
pub fn json_schema() -> Value {
    SCHEMA.clone()
}

pub(crate) fn schema() -> &'static Value {
    &SCHEMA
}

fn generate() -> Value {
    let mut root = schemars::schema_for!(Package).to_value();
    add_compat_properties(&mut root);
    if let Some(Value::Object(defs)) = root.get_mut("$defs") {
        for def in defs.values_mut() {
            add_compat_properties(def);
        }
    }
    allow_scalars_as_text(&mut root);
    root
}

/// The parser reads a number or boolean where text is expected as the text
/// written (`version: 1.10`, `INPLACE: false`), as the original did; say so
/// in the schema.
fn allow_scalars_as_text(schema: &mut Value) {
    match schema {
        Value::Object(obj) => {
            let plain = !obj.contains_key("const")
                && !obj.contains_key("enum")
                && !obj.contains_key("pattern");
            if plain && let Some(t) = obj.get_mut("type") {
                let text = match t {
                    Value::String(s) => s == "string",
                    Value::Array(ts) => ts.iter().any(|t| t == "string"),
                    _ => false,
                };
                if text {
                    let mut types = match &*t {
                        Value::Array(ts) => ts.clone(),
                        other => vec![other.clone()],
                    };
                    types.extend([json!("number"), json!("boolean")]);
                    *t = Value::Array(types);
                }
            }
            for v in obj.values_mut() {
                allow_scalars_as_text(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(allow_scalars_as_text),
        _ => {}
    }
}

/// Makes `x-compat` fields and `x-aliases` visible as deprecated properties.
fn add_compat_properties(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    add_value_aliases(obj);
    let compat: Vec<String> = string_list(obj.get(COMPAT));
    let aliases: Vec<(String, String)> = obj
        .get(ALIASES)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let Some(Value::Object(props)) = obj.get_mut("properties") else {
        return;
    };
    for name in compat {
        props.insert(
            name,
            json!({
                "description": "Accepted for compatibility with the original Oparaca; has no effect yet.",
                "deprecated": true
            }),
        );
    }
    for (alias, target) in aliases {
        let mut alias_schema = match props.get(&target) {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        alias_schema.insert(
            "description".into(),
            Value::String(format!("The original Oparaca's name for `{target}`.")),
        );
        alias_schema.insert("deprecated".into(), Value::Bool(true));
        props.insert(alias, Value::Object(alias_schema));
    }
}

/// Makes `x-value-aliases` valid values of their enum (as deprecated ones).
fn add_value_aliases(obj: &mut Map<String, Value>) {
    let aliases: Vec<(String, Value)> = match obj.get(VALUE_ALIASES).and_then(Value::as_object) {
        Some(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        None => return,
    };
    let branch = |value: &str, target: &Value| {
        json!({
            "type": "string",
            "const": value,
            "description": format!("The original Oparaca's name for {target}."),
            "deprecated": true
        })
    };
    if let Some(Value::Array(branches)) = obj.get_mut("oneOf") {
        branches.extend(aliases.iter().map(|(v, t)| branch(v, t)));
    } else if let Some(Value::Array(values)) = obj.get_mut("enum") {
        values.extend(aliases.into_iter().map(|(v, _)| Value::String(v)));
    }
}

pub(crate) fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compat_fields_and_aliases_are_deprecated_properties() {
        let s = json_schema();
        let class = &s["$defs"]["Class"]["properties"];
        assert_eq!(class["stateType"]["deprecated"], json!(true));
        let binding = &s["$defs"]["Binding"]["properties"];
        assert_eq!(binding["forceImmutable"]["deprecated"], json!(true));
        assert_eq!(s["properties"]["dependencies"]["deprecated"], json!(true));
        assert_eq!(s["additionalProperties"], json!(false));
        let key_access = s["$defs"]["KeyAccess"]["oneOf"].as_array().unwrap();
        assert!(key_access.iter().any(|b| b["const"] == json!("DEP")));
    }
}
