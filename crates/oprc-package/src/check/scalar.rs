//! Leaf values: enums, durations, integers, text and free-form JSON.

use saphyr::{MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

use super::node::describe;
use super::{Checker, position};
use crate::diagnostic::{Path, Position};
use crate::duration::Duration;
use crate::schema::{NOUN, VALUE_ALIASES};
use crate::suggest::suggest;

impl Checker<'_> {
    pub(super) fn enumeration(
        &mut self,
        node: &MarkedYaml<'_>,
        s: &Map<String, Value>,
        values: &[String],
        path: &Path,
    ) -> Option<Value> {
        let at = position(node);
        let noun = s.get(NOUN).and_then(Value::as_str).unwrap_or("value");
        let expected = values.join(", ");
        let Some(text) = self.text(node) else {
            self.error(
                at,
                path,
                format!(
                    "expected a {noun} (one of {expected}), found {}",
                    describe(node)
                ),
            );
            return None;
        };
        if values.contains(&text) {
            return Some(Value::String(text));
        }
        if let Some(target) = s
            .get(VALUE_ALIASES)
            .and_then(|a| a.get(&text))
            .and_then(Value::as_str)
        {
            self.warning(
                at,
                path,
                format!("{noun} `{text}` of the original is read as `{target}`"),
            );
            return Some(Value::String(target.to_owned()));
        }
        let message = match suggest(&text, values.iter().map(String::as_str)) {
            Some(close) => {
                format!(
                    "unknown {noun} `{text}`; did you mean `{close}`? expected one of {expected}"
                )
            }
            None => format!("unknown {noun} `{text}`; expected one of {expected}"),
        };
        self.error(at, path, message);
        None
    }

    pub(super) fn duration(&mut self, node: &MarkedYaml<'_>, path: &Path) -> Option<Value> {
        let at = position(node);
        let result = match &node.data {
            YamlData::Value(Scalar::Integer(i)) if *i >= 0 => return Some(Value::from(*i)),
            YamlData::Value(Scalar::String(s)) => Duration::parse(s).map(|_| s.to_string()),
            _ => match self.text(node) {
                Some(text) => Duration::parse(&text).map(|_| text),
                None => {
                    self.error(
                        at,
                        path,
                        format!("expected a duration such as 30s, found {}", describe(node)),
                    );
                    return None;
                }
            },
        };
        match result {
            Ok(text) => Some(Value::String(text)),
            Err(e) => {
                self.error(at, path, e.to_string());
                None
            }
        }
    }

    pub(super) fn integer(
        &mut self,
        i: i64,
        s: &Map<String, Value>,
        at: Position,
        path: &Path,
    ) -> Option<Value> {
        let (format_min, format_max) = match s.get("format").and_then(Value::as_str) {
            Some("uint8") => (Some(0), Some(i64::from(u8::MAX))),
            Some("uint16") => (Some(0), Some(i64::from(u16::MAX))),
            Some("uint32") => (Some(0), Some(i64::from(u32::MAX))),
            Some("uint64" | "uint") => (Some(0), None),
            Some("int32") => (Some(i64::from(i32::MIN)), Some(i64::from(i32::MAX))),
            _ => (None, None),
        };
        let min = s.get("minimum").and_then(Value::as_i64).or(format_min);
        let max = s.get("maximum").and_then(Value::as_i64).or(format_max);
        // Limits nobody reaches are noise in a message.
        let shown_max = max.filter(|m| *m < i64::from(u32::MAX));
        if min.is_some_and(|m| i < m) || max.is_some_and(|m| i > m) {
            let range = match (min, shown_max) {
                (Some(lo), Some(hi)) => format!("from {lo} to {hi}"),
                (Some(lo), None) => format!("of at least {lo}"),
                (None, Some(hi)) => format!("of at most {hi}"),
                (None, None) => String::new(),
            };
            self.error(
                at,
                path,
                format!("expected an integer {range}, found `{i}`"),
            );
            return None;
        }
        Some(Value::from(i))
    }

    /// Any YAML value as JSON (for free-form fields such as `override`).
    pub(super) fn any(&mut self, node: &MarkedYaml<'_>, path: &Path) -> Option<Value> {
        match &node.data {
            YamlData::Mapping(_) => self.map(node, None, path),
            YamlData::Sequence(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.check(item, &Value::Bool(true), &path.index(i)))
                .collect::<Vec<_>>()
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .map(Value::Array),
            YamlData::Value(Scalar::Null) => Some(Value::Null),
            YamlData::Value(Scalar::Boolean(b)) => Some(Value::Bool(*b)),
            YamlData::Value(Scalar::Integer(i)) => Some(Value::from(*i)),
            YamlData::Value(Scalar::String(s)) => Some(Value::String(s.to_string())),
            YamlData::Value(Scalar::FloatingPoint(f)) => {
                let number = Number::from_f64(f.into_inner());
                if number.is_none() {
                    self.error(
                        position(node),
                        path,
                        format!("`{f}` cannot be represented in JSON"),
                    );
                }
                number.map(Value::Number)
            }
            _ => {
                self.error(position(node), path, "invalid value".into());
                None
            }
        }
    }

    /// The node as text: strings as they are, other scalars as written in
    /// the source (so `1.10` stays `1.10`).
    pub(super) fn text(&self, node: &MarkedYaml<'_>) -> Option<String> {
        match &node.data {
            YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
            YamlData::Value(Scalar::Integer(_) | Scalar::FloatingPoint(_) | Scalar::Boolean(_)) => {
                Some(self.raw(node))
            }
            _ => None,
        }
    }

    pub(super) fn raw(&self, node: &MarkedYaml<'_>) -> String {
        let (start, end) = (node.span.start.index(), node.span.end.index());
        let byte = |i: usize| match &self.char_offsets {
            None => Some(i),
            Some(offsets) => offsets
                .get(i)
                .copied()
                .or((i == offsets.len()).then_some(self.source.len())),
        };
        match (byte(start), byte(end)) {
            (Some(a), Some(b)) if a <= b => {
                self.source.get(a..b).unwrap_or_default().trim().to_owned()
            }
            _ => String::new(),
        }
    }
}
