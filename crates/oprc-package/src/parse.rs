//! From source text to a checked [`Document`].

use std::collections::BTreeMap;

use saphyr::{LoadableYamlNode, MarkedYaml};

use crate::check::{self, Checker};
use crate::diagnostic::{self, Diagnostic, Path, Position, parent_path};
use crate::model::Package;
use crate::{expansion, schema, validate};

/// A parsed and checked package: the typed [`Package`], the warnings found
/// while checking it, and where every value sits in the source, so later
/// (catalog-level) diagnostics can be located too.
#[derive(Debug, Clone)]
pub struct Document {
    source: String,
    package: Package,
    warnings: Vec<Diagnostic>,
    locator: Locator,
}

impl Document {
    pub fn package(&self) -> &Package {
        &self.package
    }

    /// The package name.
    pub fn name(&self) -> &str {
        &self.package.name
    }

    /// The text the document was parsed from (what a server stores).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Warnings found while parsing (compatibility fields, aliases, ...).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// Where the value at `path` (e.g. `classes[0].parents[1]`) starts; the
    /// nearest ancestor's position when the value is not written (a
    /// default), the start of the source when nothing is known.
    pub fn position(&self, path: &str) -> Position {
        self.locator.at(path)
    }

    pub(crate) fn error(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        self.locator.error(path, message)
    }

    pub(crate) fn warning(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        self.locator.warning(path, message)
    }
}

/// Positions of the values of a document, by path.
#[derive(Debug, Clone, Default)]
pub(crate) struct Locator(BTreeMap<String, Position>);

impl Locator {
    pub(crate) fn at(&self, path: &str) -> Position {
        let mut current = Some(path);
        while let Some(p) = current {
            if let Some(at) = self.0.get(p) {
                return *at;
            }
            current = parent_path(p);
        }
        Position::START
    }

    pub(crate) fn error(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(self.at(path), path, message)
    }

    pub(crate) fn warning(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::warning(self.at(path), path, message)
    }
}

/// Whether one path is inside the other (or they are the same).
fn related(a: &str, b: &str) -> bool {
    let inside = |inner: &str, outer: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| outer.is_empty() || rest.is_empty() || rest.starts_with(['.', '[']))
    };
    inside(a, b) || inside(b, a)
}

/// Parses a package from YAML or JSON (JSON is read as YAML 1.2, through
/// the same position-aware parser), checks it against the format and the
/// package-local rules, and reports every problem found, errors and
/// warnings, sorted by position.
///
/// Cross-package rules (do referenced classes and functions exist, are
/// there inheritance cycles) are checked by [`crate::Catalog::apply`].
pub fn parse(source: &str) -> Result<Document, Vec<Diagnostic>> {
    expansion::check(source, expansion::MAX_VALUES).map_err(|d| vec![d])?;
    let docs = MarkedYaml::load_from_str(source).map_err(|e| {
        let m = e.marker();
        let at = Position {
            line: u32::try_from(m.line()).unwrap_or(u32::MAX).max(1),
            column: u32::try_from(m.col() + 1).unwrap_or(u32::MAX),
        };
        vec![Diagnostic::error(
            at,
            "",
            format!("invalid yaml: {}", e.info()),
        )]
    })?;
    let root = match docs.as_slice() {
        [] => {
            return Err(vec![Diagnostic::error(
                Position::START,
                "",
                "the package is empty",
            )]);
        }
        [root] => root,
        [_, second, ..] => {
            return Err(vec![Diagnostic::error(
                check::position(second),
                "",
                format!(
                    "expected one package document, found {}; split them into separate packages",
                    docs.len()
                ),
            )]);
        }
    };
    let mut checker = Checker::new(source, schema::schema());
    let value = checker.check(root, schema::schema(), &Path::root());
    let locator = Locator(checker.index);
    let mut diags = checker.diags;
    let checked_ok = !diags.iter().any(Diagnostic::is_error);
    // With errors, the value holds what was valid; the package rules still
    // run on it so that every problem is reported at once.
    let package = match value.map(serde_json::from_value::<Package>) {
        Some(Ok(package)) => Some(package),
        Some(Err(e)) if checked_ok => {
            // The checker accepted what the model rejects: a bug.
            diags.push(locator.error("", format!("internal error: {e}")));
            None
        }
        _ => None,
    };
    if let Some(package) = &package {
        // A rule about a value with an error inside (or around) it would
        // only repeat that error, or be wrong about what was left out.
        let broken: Vec<String> = diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.path.clone())
            .collect();
        diags.extend(
            validate::package(package, &locator)
                .into_iter()
                .filter(|d| !broken.iter().any(|b| related(b, &d.path))),
        );
    }
    diagnostic::sort(&mut diags);
    match package {
        Some(package) if checked_ok && !diags.iter().any(Diagnostic::is_error) => Ok(Document {
            source: source.to_owned(),
            package,
            warnings: diags,
            locator,
        }),
        _ => Err(diags),
    }
}

#[cfg(test)]
mod tests;
