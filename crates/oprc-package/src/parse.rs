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

/// The width of every line of a source, to bring the scanner's positions
/// inside it: at the end of input it reports the line after the last one,
/// as if the source ended with a line break, which it may not; that is the
/// end of the last line. Lines end as in YAML (`\n`, `\r\n` or `\r`),
/// columns count characters.
struct Lines(Vec<u32>);

impl Lines {
    fn of(source: &str) -> Self {
        let width = |l: &str| u32::try_from(l.chars().count()).unwrap_or(u32::MAX);
        Self(
            source
                .split("\r\n")
                .flat_map(|l| l.split(['\r', '\n']))
                .map(width)
                .collect(),
        )
    }

    fn clamp(&self, at: Position) -> Position {
        let end = |width: u32| width.saturating_add(1);
        let index = usize::try_from(at.line.max(1) - 1).unwrap_or(usize::MAX);
        match self.0.get(index) {
            Some(&width) => Position {
                line: at.line.max(1),
                column: at.column.clamp(1, end(width)),
            },
            None => Position {
                line: u32::try_from(self.0.len()).unwrap_or(u32::MAX).max(1),
                column: end(self.0.last().copied().unwrap_or(0)),
            },
        }
    }

    fn clamp_diagnostic(&self, mut d: Diagnostic) -> Diagnostic {
        let at = self.clamp(d.position());
        (d.line, d.column) = (at.line, at.column);
        d
    }
}

/// Parses a package from YAML or JSON (JSON is read as YAML 1.2, through
/// the same position-aware parser), checks it against the format and the
/// package-local rules, and reports every problem found, errors and
/// warnings, sorted by position. A source whose tree would be too large or
/// too deep to build safely is refused first, with one diagnostic (see the
/// crate documentation for the limits).
///
/// Cross-package rules (do referenced classes and functions exist, are
/// there inheritance cycles) are checked by [`crate::Catalog::apply`].
pub fn parse(source: &str) -> Result<Document, Vec<Diagnostic>> {
    let lines = Lines::of(source);
    expansion::check(source, expansion::LIMITS).map_err(|d| vec![lines.clamp_diagnostic(d)])?;
    let docs = MarkedYaml::load_from_str(source).map_err(|e| {
        let m = e.marker();
        let at = Position {
            line: u32::try_from(m.line()).unwrap_or(u32::MAX),
            column: u32::try_from(m.col() + 1).unwrap_or(u32::MAX),
        };
        vec![Diagnostic::error(
            lines.clamp(at),
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
                lines.clamp(check::position(second)),
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
    let mut index = checker.index;
    for at in index.values_mut() {
        *at = lines.clamp(*at);
    }
    let locator = Locator(index);
    let mut diags: Vec<Diagnostic> = checker
        .diags
        .into_iter()
        .map(|d| lines.clamp_diagnostic(d))
        .collect();
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
