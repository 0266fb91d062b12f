//! Checks a position-marked YAML tree against the package JSON Schema,
//! collecting every problem with its position, and produces the normalized
//! JSON value that the typed model is then deserialized from.
//!
//! Normalizing means: aliases renamed, compatibility-only fields dropped,
//! `null` optional fields dropped, scalars coerced to strings where a string
//! is expected (`version: 1.10` is the text `1.10`, as the source reads).
//! After an error the checker goes on: an invalid optional field or map
//! entry is left out of the value (its error recorded), so the rest of the
//! document is still checked, here and by the package rules; a list with an
//! invalid item is left out whole, so positions by index stay right.
//! The checker knows only the subset of JSON Schema that the model's schema
//! uses, plus the `x-` extensions described in [`crate::schema`].

mod node;
mod scalar;

use std::collections::BTreeMap;

use saphyr::{MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

use crate::diagnostic::{Diagnostic, Path, Position};
use crate::duration;
use crate::schema::{self, ALIASES, COMPAT, KIND, VALUE_ALIASES};
use crate::suggest::suggest;
use node::{describe, enum_values, expected_of, key_text, kind_of, types_of, untagged};

pub(crate) struct Checker<'a> {
    source: &'a str,
    /// Byte offset of every char, when the source is not ASCII (saphyr
    /// reports char indices).
    char_offsets: Option<Vec<usize>>,
    root: &'a Value,
    pub diags: Vec<Diagnostic>,
    pub index: BTreeMap<String, Position>,
}

pub(crate) fn position(node: &MarkedYaml<'_>) -> Position {
    let m = node.span.start;
    Position {
        line: u32::try_from(m.line()).unwrap_or(u32::MAX).max(1),
        column: u32::try_from(m.col() + 1).unwrap_or(u32::MAX),
    }
}

impl<'a> Checker<'a> {
    pub(crate) fn new(source: &'a str, root: &'a Value) -> Self {
        let char_offsets =
            (!source.is_ascii()).then(|| source.char_indices().map(|(i, _)| i).collect());
        Self {
            source,
            char_offsets,
            root,
            diags: Vec::new(),
            index: BTreeMap::new(),
        }
    }

    pub(super) fn error(&mut self, at: Position, path: &Path, message: String) {
        self.diags
            .push(Diagnostic::error(at, path.as_str(), message));
    }

    pub(super) fn warning(&mut self, at: Position, path: &Path, message: String) {
        self.diags
            .push(Diagnostic::warning(at, path.as_str(), message));
    }

    /// Checks `node` against `schema`; `None` when it is not valid (the
    /// reasons are in `diags`).
    pub(crate) fn check(
        &mut self,
        node: &MarkedYaml<'_>,
        schema: &Value,
        path: &Path,
    ) -> Option<Value> {
        let node = untagged(node);
        let at = position(node);
        self.index.entry(path.as_str().to_owned()).or_insert(at);
        let s = match schema {
            Value::Bool(true) => return self.any(node, path),
            Value::Object(s) => s,
            _ => {
                self.error(at, path, "no value is allowed here".into());
                return None;
            }
        };
        if let Some(target) = s.get("$ref").and_then(Value::as_str) {
            let resolved = self.resolve_ref(target)?;
            return self.check(node, resolved, path);
        }
        if s.get(KIND).and_then(Value::as_str) == Some(duration::SCHEMA_KIND) {
            return self.duration(node, path);
        }
        if let Some(mut values) = enum_values(s) {
            // Values of the original are accepted, with a warning.
            if let Some(aliases) = s.get(VALUE_ALIASES).and_then(Value::as_object) {
                values.retain(|v| !aliases.contains_key(v));
            }
            return self.enumeration(node, s, &values, path);
        }
        if let Some(branches) = s
            .get("anyOf")
            .or_else(|| s.get("oneOf"))
            .and_then(Value::as_array)
        {
            return self.union(node, branches, path);
        }
        let types = types_of(s);
        if types.is_empty() && !s.contains_key("properties") {
            // `{}` (perhaps with a description) allows anything.
            return self.any(node, path);
        }
        let kind = kind_of(node);
        if kind == "null" && types.contains(&"null") {
            return Some(Value::Null);
        }
        if types.contains(&"object") {
            if let YamlData::Mapping(_) = node.data {
                return if s.contains_key("properties") {
                    self.object(node, s, path)
                } else {
                    self.map(node, s.get("additionalProperties"), path)
                };
            }
        } else if types.contains(&"array") {
            if let YamlData::Sequence(items) = &node.data {
                let item_schema = s.get("items").unwrap_or(&Value::Bool(true));
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.check(item, item_schema, &path.index(i)));
                }
                return out
                    .into_iter()
                    .collect::<Option<Vec<_>>>()
                    .map(Value::Array);
            }
        } else if types.contains(&"string") {
            if let Some(text) = self.text(node) {
                return Some(Value::String(text));
            }
        } else if types.contains(&"integer") {
            if let YamlData::Value(Scalar::Integer(i)) = node.data {
                return self.integer(i, s, at, path);
            }
        } else if types.contains(&"number") {
            match node.data {
                YamlData::Value(Scalar::Integer(i)) => return Some(Value::from(i)),
                YamlData::Value(Scalar::FloatingPoint(f)) => {
                    if let Some(n) = Number::from_f64(f.into_inner()) {
                        return Some(Value::Number(n));
                    }
                }
                _ => {}
            }
        } else if types.contains(&"boolean")
            && let YamlData::Value(Scalar::Boolean(b)) = node.data
        {
            return Some(Value::Bool(b));
        }
        let expected = expected_of(&types);
        self.error(
            at,
            path,
            format!("expected {expected}, found {}", describe(node)),
        );
        None
    }

    fn resolve_ref(&mut self, target: &str) -> Option<&'a Value> {
        let root: &'a Value = self.root;
        let found = target
            .strip_prefix("#/")
            .and_then(|p| p.split('/').try_fold(root, |v, seg| v.get(seg)));
        if found.is_none() {
            // A bug in the schema, not in the package.
            self.error(
                Position::START,
                &Path::root(),
                format!("internal error: schema reference `{target}` is missing"),
            );
        }
        found
    }

    fn object(
        &mut self,
        node: &MarkedYaml<'_>,
        s: &Map<String, Value>,
        path: &Path,
    ) -> Option<Value> {
        let YamlData::Mapping(entries) = &node.data else {
            return None;
        };
        let empty = Map::new();
        let props = s
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let compat = schema::string_list(s.get(COMPAT));
        let aliases = s.get(ALIASES).and_then(Value::as_object).unwrap_or(&empty);
        let required = schema::string_list(s.get("required"));
        let written: Vec<String> = entries.keys().filter_map(key_text).collect();
        let mut out = Map::new();
        let mut valid = true;
        for (k, v) in entries {
            let key_at = position(k);
            let Some(key) = key_text(k) else {
                self.error(
                    key_at,
                    path,
                    format!("field names must be text, found {}", describe(k)),
                );
                continue;
            };
            let name = if let Some(target) = aliases.get(&key).and_then(Value::as_str) {
                if written.iter().any(|w| w == target) {
                    self.error(
                        key_at,
                        &path.field(&key),
                        format!("`{key}` is the original's name for `{target}`, which is also set; keep one"),
                    );
                    continue;
                }
                self.warning(
                    key_at,
                    &path.field(&key),
                    format!("`{key}` is the original's name for `{target}`; read as `{target}`"),
                );
                target.to_owned()
            } else if compat.contains(&key) {
                self.warning(
                    key_at,
                    &path.field(&key),
                    format!("field `{key}` is accepted for compatibility and has no effect yet"),
                );
                continue;
            } else {
                key.clone()
            };
            let Some(prop_schema) = props.get(&name) else {
                let known: Vec<&str> = props
                    .keys()
                    .map(String::as_str)
                    .filter(|p| !compat.iter().any(|c| c == p) && !aliases.contains_key(*p))
                    .collect();
                let message = match suggest(&key, known.iter().copied()) {
                    Some(close) => format!("unknown field `{key}`; did you mean `{close}`?"),
                    None => format!(
                        "unknown field `{key}`; expected one of {}",
                        known.join(", ")
                    ),
                };
                self.error(key_at, &path.field(&key), message);
                continue;
            };
            let child = path.field(&name);
            if kind_of(untagged(v)) == "null" && !required.contains(&name) {
                // An empty optional field means "not set".
                self.index.insert(child.as_str().to_owned(), position(v));
                continue;
            }
            // An invalid optional field is left out, so the rest of the
            // document can still be checked; a required one spoils the object.
            match self.check(v, prop_schema, &child) {
                Some(value) => {
                    out.insert(name, value);
                }
                None if required.contains(&name) => valid = false,
                None => {}
            }
        }
        for field in &required {
            let present = written.iter().any(|w| {
                w == field || aliases.get(w).and_then(Value::as_str) == Some(field.as_str())
            });
            if !present {
                self.error(position(node), path, format!("missing field `{field}`"));
                valid = false;
            }
        }
        valid.then_some(Value::Object(out))
    }

    fn map(&mut self, node: &MarkedYaml<'_>, values: Option<&Value>, path: &Path) -> Option<Value> {
        let YamlData::Mapping(entries) = &node.data else {
            return None;
        };
        let value_schema = values.unwrap_or(&Value::Bool(true));
        let mut out = Map::new();
        for (k, v) in entries {
            let Some(key) = self.text(untagged(k)) else {
                self.error(
                    position(k),
                    path,
                    format!("keys must be text, found {}", describe(k)),
                );
                continue;
            };
            // Invalid entries are left out (see `object`).
            if let Some(value) = self.check(v, value_schema, &path.field(&key)) {
                out.insert(key, value);
            }
        }
        Some(Value::Object(out))
    }

    fn union(&mut self, node: &MarkedYaml<'_>, branches: &[Value], path: &Path) -> Option<Value> {
        let kind = kind_of(node);
        let mut candidates = Vec::new();
        for branch in branches {
            let resolved = match branch.get("$ref").and_then(Value::as_str) {
                Some(target) => self.resolve_ref(target)?,
                None => branch,
            };
            candidates.push(resolved);
        }
        let matches = |b: &Value, kind: &str| match b {
            Value::Bool(v) => *v,
            Value::Object(s) => {
                let types = types_of(s);
                types.contains(&kind)
                    || (kind == "integer" && types.contains(&"number"))
                    || s.get(KIND).is_some()
                    || enum_values(s).is_some() && kind == "string"
            }
            _ => false,
        };
        let chosen = candidates
            .iter()
            .find(|b| matches(b, kind))
            // Scalars may still be read as text.
            .or_else(|| {
                matches!(kind, "integer" | "number" | "boolean")
                    .then(|| candidates.iter().find(|b| matches(b, "string")))
                    .flatten()
            });
        if let Some(branch) = chosen {
            return self.check(node, branch, path);
        }
        let expected: Vec<String> = candidates
            .iter()
            .filter_map(|b| b.as_object())
            .map(|s| expected_of(&types_of(s)))
            .collect();
        self.error(
            position(node),
            path,
            format!(
                "expected {}, found {}",
                expected.join(" or "),
                describe(node)
            ),
        );
        None
    }
}
