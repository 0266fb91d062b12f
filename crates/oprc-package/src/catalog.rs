//! The catalog: every applied package, resolved. An immutable value; a
//! change makes a new catalog, which the server swaps in atomically.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

use oprc_core::{ClassKey, FunctionKey};

use crate::diagnostic::{self, Diagnostic};
use crate::error::{Error, PackageDiagnostics};
use crate::parse::{Document, parse};
use crate::refs::BUILTIN;
use crate::resolve::{self, Resolution};
use crate::resolved::{ResolvedClass, ResolvedFunction, ResolvedPackage};

const BUILTIN_SOURCE: &str = include_str!("builtin.yaml");

static BUILTIN_ONLY: LazyLock<Catalog> = LazyLock::new(|| {
    let doc = parse(BUILTIN_SOURCE).expect("the builtin package source is valid");
    let docs = BTreeMap::from([(BUILTIN.to_owned(), Arc::new(doc))]);
    Catalog::build(docs).expect("the builtin package resolves on its own")
});

/// All applied packages (the built-in package `builtin` included), resolved.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Catalog(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    documents: BTreeMap<String, Arc<Document>>,
    packages: BTreeMap<String, Arc<ResolvedPackage>>,
    classes: BTreeMap<ClassKey, Arc<ResolvedClass>>,
    functions: BTreeMap<FunctionKey, Arc<ResolvedFunction>>,
}

/// The result of [`Catalog::apply`].
#[derive(Debug, Clone)]
pub struct Applied {
    /// The new catalog, with the package created or replaced.
    pub catalog: Catalog,
    /// The applied package, resolved.
    pub package: ResolvedPackage,
    /// Warnings about the package, from parsing and from resolution.
    pub warnings: Vec<Diagnostic>,
}

impl Default for Catalog {
    fn default() -> Self {
        Self::new()
    }
}

impl Catalog {
    /// A catalog holding only the built-in package.
    pub fn new() -> Self {
        BUILTIN_ONLY.clone()
    }

    /// Creates or replaces the package of `doc`, checking its references
    /// against the whole catalog. Reports every problem at once; on error
    /// nothing changes (`self` is untouched either way).
    pub fn apply(&self, doc: &Document) -> Result<Applied, Vec<Diagnostic>> {
        let name = doc.name().to_owned();
        if name == BUILTIN {
            return Err(vec![doc.error(
                "name",
                "package name `builtin` is reserved for the platform's own package",
            )]);
        }
        let mut docs = self.0.documents.clone();
        docs.insert(name.clone(), Arc::new(doc.clone()));
        let (resolution, mut report) = resolve::resolve(&docs, Some(&name));
        let mut own = report.remove(&name).unwrap_or_default();
        let Some(resolution) = resolution else {
            // Problems located in other packages that this change causes.
            for (other, diags) in report {
                for d in diags.into_iter().filter(Diagnostic::is_error) {
                    own.push(doc.error("", format!("package `{other}` would break: {d}")));
                }
            }
            own.extend(doc.warnings().iter().cloned());
            diagnostic::sort(&mut own);
            return Err(own);
        };
        let mut warnings: Vec<Diagnostic> = doc.warnings().to_vec();
        warnings.extend(own);
        diagnostic::sort(&mut warnings);
        let catalog = Self::from_parts(docs, resolution);
        let package = catalog
            .package(&name)
            .cloned()
            .expect("the applied package is in the new catalog");
        Ok(Applied {
            catalog,
            package,
            warnings,
        })
    }

    /// A catalog without package `name`. Refused for `builtin` and for a
    /// package that other packages still use (inherit from, reference, bind
    /// or require); the error names every such use.
    pub fn remove(&self, name: &str) -> Result<Catalog, Error> {
        if name == BUILTIN {
            return Err(Error::Builtin);
        }
        if !self.0.documents.contains_key(name) {
            return Err(Error::NotFound(name.to_owned()));
        }
        let users = self.users_of(name);
        if !users.is_empty() {
            return Err(Error::InUse {
                package: name.to_owned(),
                users,
            });
        }
        let mut docs = self.0.documents.clone();
        docs.remove(name);
        Self::build(docs)
    }

    /// Rebuilds a catalog from stored documents (at node start). The order
    /// of `docs` does not matter: all packages are resolved together.
    pub fn load(docs: impl IntoIterator<Item = Document>) -> Result<Catalog, Error> {
        let mut all = Self::new().0.documents.clone();
        for doc in docs {
            let name = doc.name().to_owned();
            if name == BUILTIN {
                return Err(Error::Builtin);
            }
            if all.insert(name.clone(), Arc::new(doc)).is_some() {
                return Err(Error::Duplicate(name));
            }
        }
        Self::build(all)
    }

    /// Like [`Catalog::load`], but keeps going: packages that do not
    /// resolve (and then those that need them) are left out and reported,
    /// so a node can start with the rest.
    pub fn load_partial(
        docs: impl IntoIterator<Item = Document>,
    ) -> (Catalog, Vec<PackageDiagnostics>) {
        let mut all = Self::new().0.documents.clone();
        let mut failures = Vec::new();
        let mut refuse = |package: String, doc: &Document, message: String| {
            failures.push(PackageDiagnostics {
                package,
                diagnostics: vec![doc.error("name", message)],
            });
        };
        for doc in docs {
            let name = doc.name().to_owned();
            if name == BUILTIN {
                refuse(name, &doc, Error::Builtin.to_string());
                continue;
            }
            match all.entry(name) {
                Entry::Occupied(e) => {
                    let message = Error::Duplicate(e.key().clone()).to_string();
                    refuse(e.key().clone(), &doc, message);
                }
                Entry::Vacant(e) => {
                    e.insert(Arc::new(doc));
                }
            }
        }
        loop {
            let (resolution, report) = resolve::resolve(&all, None);
            if let Some(resolution) = resolution {
                return (Self::from_parts(all, resolution), failures);
            }
            let broken: Vec<(String, Vec<Diagnostic>)> = report
                .into_iter()
                .filter(|(name, diags)| name != BUILTIN && diags.iter().any(Diagnostic::is_error))
                .collect();
            if broken.is_empty() {
                // Only the builtin package could be at fault: it is not.
                return (Self::new(), failures);
            }
            // Each round drops at least one package, so this ends.
            for (package, mut diagnostics) in broken {
                all.remove(&package);
                diagnostic::sort(&mut diagnostics);
                failures.push(PackageDiagnostics {
                    package,
                    diagnostics,
                });
            }
        }
    }

    fn build(docs: BTreeMap<String, Arc<Document>>) -> Result<Catalog, Error> {
        let (resolution, report) = resolve::resolve(&docs, None);
        match resolution {
            Some(resolution) => Ok(Self::from_parts(docs, resolution)),
            None => Err(Error::Invalid(
                report
                    .into_iter()
                    .filter(|(_, diags)| diags.iter().any(Diagnostic::is_error))
                    .map(|(package, mut diagnostics)| {
                        diagnostic::sort(&mut diagnostics);
                        PackageDiagnostics {
                            package,
                            diagnostics,
                        }
                    })
                    .collect(),
            )),
        }
    }

    fn from_parts(documents: BTreeMap<String, Arc<Document>>, r: Resolution) -> Self {
        Self(Arc::new(Inner {
            documents,
            packages: r.packages,
            classes: r.classes,
            functions: r.functions,
        }))
    }

    /// What in other packages uses package `name`, one line each.
    fn users_of(&self, name: &str) -> Vec<String> {
        let in_pkg = |key: &str| key.split_once('.').is_some_and(|(p, _)| p == name);
        let mut users = BTreeSet::new();
        for package in self.0.packages.values().filter(|p| p.name != name) {
            if package.required.iter().any(|r| r == name) {
                users.insert(format!("package `{}` requires it", package.name));
            }
            for f in &package.functions {
                if let Some(out) = f.output_cls.as_ref().filter(|c| in_pkg(c.as_str())) {
                    users.insert(format!("function `{}` outputs `{out}`", f.key));
                }
            }
            for c in &package.classes {
                for parent in c.parents.iter().filter(|p| in_pkg(p.as_str())) {
                    users.insert(format!("class `{}` inherits from `{parent}`", c.key));
                }
                for r in c.refs.values().filter(|r| in_pkg(r.cls.as_str())) {
                    users.insert(format!(
                        "class `{}` refers to `{}` as `{}`",
                        c.key, r.cls, r.name
                    ));
                }
                for b in c.bindings.values().filter(|b| b.inherited_from.is_none()) {
                    if in_pkg(b.function.as_str()) {
                        users.insert(format!("class `{}` binds `{}`", c.key, b.function));
                    }
                    if let Some(out) = b.output_cls.as_ref().filter(|o| in_pkg(o.as_str())) {
                        users.insert(format!(
                            "binding `{}` of class `{}` outputs `{out}`",
                            b.name, c.key
                        ));
                    }
                }
            }
        }
        users.into_iter().collect()
    }

    pub fn class(&self, key: &ClassKey) -> Option<&ResolvedClass> {
        self.0.classes.get(key).map(Arc::as_ref)
    }

    /// The class as a shared handle that outlives this catalog snapshot.
    pub fn class_shared(&self, key: &ClassKey) -> Option<Arc<ResolvedClass>> {
        self.0.classes.get(key).cloned()
    }

    pub fn function(&self, key: &FunctionKey) -> Option<&ResolvedFunction> {
        self.0.functions.get(key).map(Arc::as_ref)
    }

    pub fn package(&self, name: &str) -> Option<&ResolvedPackage> {
        self.0.packages.get(name).map(Arc::as_ref)
    }

    /// The document a package was applied from (its source included).
    pub fn document(&self, name: &str) -> Option<&Document> {
        self.0.documents.get(name).map(Arc::as_ref)
    }

    /// All classes, sorted by key.
    pub fn classes(&self) -> impl ExactSizeIterator<Item = &ResolvedClass> {
        self.0.classes.values().map(Arc::as_ref)
    }

    /// All functions, sorted by key.
    pub fn functions(&self) -> impl ExactSizeIterator<Item = &ResolvedFunction> {
        self.0.functions.values().map(Arc::as_ref)
    }

    /// All packages, sorted by name (`builtin` included).
    pub fn packages(&self) -> impl ExactSizeIterator<Item = &ResolvedPackage> {
        self.0.packages.values().map(Arc::as_ref)
    }

    /// Documents of the packages applied by users (not `builtin`), sorted by
    /// name: what a server stores to [`Catalog::load`] the catalog again.
    pub fn documents(&self) -> impl Iterator<Item = &Document> {
        self.0
            .documents
            .iter()
            .filter(|(name, _)| name.as_str() != BUILTIN)
            .map(|(_, d)| d.as_ref())
    }
}

#[cfg(test)]
mod macro_tests;
#[cfg(test)]
mod tests;
