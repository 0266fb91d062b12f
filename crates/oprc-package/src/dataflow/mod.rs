//! The dataflow of MACRO functions, as pure data: what the steps of a macro
//! are, what each one needs, how their inputs are rendered from earlier
//! data, and which steps may run next. No IO: the invoker's orchestrator
//! runs the steps; this module decides.
//!
//! - [`Dag::build`] checks a [`MacroSpec`](crate::model::MacroSpec) and plans
//!   its steps: names, targets, dependencies, templates. It reports every
//!   problem at once, each as a [`Problem`] at a path relative to the macro.
//! - [`Template`] and [`BodyTemplate`] hold the `${SRC|KIND|PATH}`
//!   substitutions of a step's `args` and `bodyTemplate` (and the macro's
//!   `bodyTemplate`) and render them from the data a call has at run time
//!   ([`Sources`]).
//! - [`Progress`] is the run state of one macro call: which steps are
//!   ready, running, done, failed, or never to run because a step they
//!   need failed.
//!
//! # Substitutions
//! `${SRC|KIND|PATH}`: SRC is `@` (the macro call) or a step's name, KIND
//! one of `args`, `body` and `output`, PATH a JSONPath (`$.data.x`, RFC
//! 9535) with the bounds of [`parse_path`]. What each source and kind hold
//! at run time is the orchestrator's business ([`Sources`]). A `$` that is
//! not followed by `{` is text; `$${` is a literal `${`. A path that
//! matches nothing is an error when rendering; one that matches one value
//! gives that value, several give a JSON array of them.
//!
//! # Steps
//! A step's name is its `as`, or `_INDEX` (`_0`, `_1`, ...) when it has
//! none. `as` is a letter then up to 63 letters, digits, `_` and `-` (names
//! become parts of object ids). A step's `target` is `@` (the macro's main
//! object; the default; `$`, the original's spelling, means the same),
//! `@.REF` (the object the main object refers to as `REF`) or the name of
//! an earlier step (that step's output object). A step needs its target
//! step and every step its substitutions name; it may only use earlier
//! steps, so the steps form a DAG in the order written.

mod dag;
mod progress;
mod template;

pub use dag::{Dag, MAX_STEPS, StepPlan, Target};
pub use progress::{Progress, StepStatus};
pub use template::{
    BodyTemplate, Budget, Kind, MAX_BODY_DEPTH, MAX_RENDER_BYTES, RenderError, Source, Sources,
    Substitution, Template,
};

use std::fmt;

/// Longest JSONPath accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 512;
/// Deepest nesting of brackets and parentheses in a JSONPath.
pub const MAX_PATH_NESTING: usize = 16;
/// Most filters (`?`) in a JSONPath: nested filters cost time exponential
/// in their number.
pub const MAX_PATH_FILTERS: usize = 4;
/// Longest step or reference name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A problem in a macro definition, at a path relative to the macro
/// (`steps[1].target`, `steps[0].args.x`, `steps[2].bodyTemplate.a`,
/// `output`, `bodyTemplate`).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Where, relative to the macro; for a [`BodyTemplate`] on its own,
    /// relative to the template (`""`, `.a[2]`).
    pub path: String,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A JSONPath parsed with the bounds the platform keeps: at most
/// [`MAX_PATH_BYTES`] bytes, brackets and parentheses nested at most
/// [`MAX_PATH_NESTING`] deep, at most [`MAX_PATH_FILTERS`] filters (`?`).
/// Brackets, parentheses and `?` inside quoted names do not count. These
/// bound the parser's recursion and the cost of evaluating the path.
pub fn parse_path(path: &str) -> Result<serde_json_path::JsonPath, String> {
    if path.len() > MAX_PATH_BYTES {
        return Err(format!(
            "the JSONPath is {} bytes long; at most {MAX_PATH_BYTES} are accepted",
            path.len()
        ));
    }
    let (mut depth, mut deepest, mut filters) = (0usize, 0usize, 0usize);
    let mut quote = None;
    let mut escaped = false;
    for c in path.chars() {
        match (quote, c) {
            (Some(_), _) if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[' | '(') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ']' | ')') => depth = depth.saturating_sub(1),
            (None, '?') => filters += 1,
            _ => {}
        }
    }
    if deepest > MAX_PATH_NESTING {
        return Err(format!(
            "the JSONPath nests brackets {deepest} deep; at most {MAX_PATH_NESTING} are accepted"
        ));
    }
    if filters > MAX_PATH_FILTERS {
        return Err(format!(
            "the JSONPath has {filters} filters; at most {MAX_PATH_FILTERS} are accepted"
        ));
    }
    serde_json_path::JsonPath::parse(path).map_err(|e| format!("invalid JSONPath `{path}`: {e}"))
}

/// Checks a step (`as`) or reference name: a letter, then up to 63
/// letters, digits, `_` and `-`.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(format!("{what} must not be empty"));
    };
    if !first.is_ascii_alphabetic() {
        return Err(format!("{what} `{name}` must start with a letter"));
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))) {
        return Err(format!(
            "{what} `{name}` contains {c:?}; allowed are letters, digits, `_` and `-`"
        ));
    }
    if name.len() > MAX_NAME_CHARS {
        return Err(format!(
            "{what} `{name}` is {} characters long; at most {MAX_NAME_CHARS} are allowed",
            name.len()
        ));
    }
    Ok(())
}

/// Whether `name` can be a step's name: a valid `as`, or `_INDEX`.
pub(crate) fn is_step_name(name: &str) -> bool {
    check_name("", name).is_ok()
        || name.strip_prefix('_').is_some_and(|n| {
            !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit())
        })
}

/// `path.key`, or `path["key"]` when the key is not a plain word: the same
/// spelling as the paths of diagnostics, so positions can be found.
pub(crate) fn field(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{path}.{key}")
    } else {
        let quoted = serde_json::Value::String(key.to_owned()).to_string();
        format!("{path}[{quoted}]")
    }
}

/// At most `max` characters of `text`, with `...` when cut.
pub(crate) fn preview(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
