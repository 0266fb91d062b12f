//! Errors of catalog operations other than applying a package (which
//! answers with diagnostics).

use serde::{Deserialize, Serialize};

use crate::Diagnostic;

/// Why a catalog operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("package `{0}` is not applied")]
    NotFound(String),
    #[error(
        "the `builtin` package belongs to the platform and cannot be applied, loaded or removed"
    )]
    Builtin,
    #[error("package `{package}` is used by other packages: {}", users.join("; "))]
    InUse {
        package: String,
        /// One line per use, e.g. "class `app.clip` inherits from `media.video`".
        users: Vec<String>,
    },
    #[error("package `{0}` is given more than once")]
    Duplicate(String),
    #[error("packages do not resolve: {}", summary(.0))]
    Invalid(Vec<PackageDiagnostics>),
}

/// The diagnostics of one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageDiagnostics {
    pub package: String,
    pub diagnostics: Vec<Diagnostic>,
}

fn summary(failures: &[PackageDiagnostics]) -> String {
    failures
        .iter()
        .map(|f| {
            let first = f
                .diagnostics
                .iter()
                .find(|d| d.is_error())
                .map(ToString::to_string)
                .unwrap_or_default();
            format!("`{}` ({first})", f.package)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
