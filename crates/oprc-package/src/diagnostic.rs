//! Diagnostics: what is wrong (or only suspicious) in a package, and where.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad a [`Diagnostic`] is. Errors reject the package; warnings come back
/// with an accepted package (for example fields of the original Oparaca that
/// are accepted but have no effect yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// A 1-based line and column in the package source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl Position {
    /// The start of the source; used when nothing better is known.
    pub const START: Position = Position { line: 1, column: 1 };
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem found in a package: severity, position, the path of the value
/// in the document (`classes[0].functions[1].access`) and a message.
///
/// Displays as `LINE:COL: PATH: MESSAGE` (the path is left out for the
/// document itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub line: u32,
    pub column: u32,
    /// Path of the value, e.g. `classes[0].functions[1].access`; empty for
    /// the whole document.
    pub path: String,
    pub message: String,
}

impl Diagnostic {
    pub fn error(at: Position, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, at, path, message)
    }

    pub fn warning(at: Position, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, at, path, message)
    }

    fn new(
        severity: Severity,
        at: Position,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            line: at.line,
            column: at.column,
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn position(&self) -> Position {
        Position {
            line: self.line,
            column: self.column,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}:{}: {}", self.line, self.column, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.line, self.column, self.path, self.message
            )
        }
    }
}

/// Sorts diagnostics by position, then path and message, so reports are
/// stable whatever order the checks ran in; exact duplicates are dropped.
pub(crate) fn sort(diags: &mut Vec<Diagnostic>) {
    diags.sort_by(|a, b| {
        (a.line, a.column, &a.path, &a.message, a.severity)
            .cmp(&(b.line, b.column, &b.path, &b.message, b.severity))
    });
    diags.dedup();
}

/// A path into a document, built while walking it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Path(String);

impl Path {
    pub(crate) fn root() -> Self {
        Self(String::new())
    }

    /// `self.name` (or `self["name"]` when the name is not a plain word).
    pub(crate) fn field(&self, name: &str) -> Self {
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !plain {
            let quoted = serde_json::Value::String(name.to_owned()).to_string();
            return Self(format!("{}[{quoted}]", self.0));
        }
        if self.0.is_empty() {
            Self(name.to_owned())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    pub(crate) fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The path of the parent value (`classes[0].name` → `classes[0]` →
/// `classes` → ``), for finding the nearest located ancestor.
pub(crate) fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = if path.ends_with("\"]") {
        path.rfind("[\"")
    } else {
        path.rfind(['.', '['])
    };
    Some(&path[..cut.unwrap_or(0)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_accessors() {
        let p = Path::root().field("classes").index(0).field("functions");
        assert_eq!(p.as_str(), "classes[0].functions");
        assert_eq!(
            Path::root().field("env").field("A.B").as_str(),
            r#"env["A.B"]"#
        );
    }

    #[test]
    fn parents_walk_up_to_the_root() {
        assert_eq!(parent_path("classes[0].name"), Some("classes[0]"));
        assert_eq!(parent_path("classes[0]"), Some("classes"));
        assert_eq!(parent_path("classes"), Some(""));
        assert_eq!(parent_path(""), None);
        assert_eq!(parent_path(r#"env["A.B"]"#), Some("env"));
    }

    #[test]
    fn display_has_position_path_and_message() {
        let d = Diagnostic::error(Position { line: 3, column: 7 }, "a.b", "bad");
        assert_eq!(d.to_string(), "3:7: a.b: bad");
        let d = Diagnostic::warning(Position::START, "", "empty");
        assert_eq!(d.to_string(), "1:1: empty");
    }
}
