//! Resolution of a whole set of packages at once: references become keys
//! and must exist, inheritance is merged, cycles are rejected.
//!
//! The whole set is resolved on every change (packages are few and small),
//! so a change that breaks another package (a removed class it inherits
//! from, a new cycle through it) is found, and the order packages were
//! applied in does not matter.

mod inherit;
mod macros;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use oprc_core::{ClassKey, FunctionKey};

use crate::dataflow::Dag;
use crate::diagnostic::Diagnostic;
use crate::model::{Class, FunctionType, Package};
use crate::parse::Document;
use crate::refs::{self, BUILTIN, Kind};
use crate::resolved::{
    ResolvedBinding, ResolvedClass, ResolvedFunction, ResolvedKeySpec, ResolvedPackage,
    ResolvedRefSpec,
};
use crate::suggest::suggest;

/// The class every class inherits first.
pub(crate) const BASE_CLASS: &str = "builtin.base";
/// Builtin functions whose output is an object of the class they are called on.
const SELF_OUTPUT: [&str; 2] = ["builtin.new", "builtin.copy"];
/// Creating an object is a class-level call, however it is bound.
const NEW: &str = "builtin.new";

/// Everything resolved, when no package has an error.
pub(crate) struct Resolution {
    pub packages: BTreeMap<String, Arc<ResolvedPackage>>,
    pub classes: BTreeMap<ClassKey, Arc<ResolvedClass>>,
    pub functions: BTreeMap<FunctionKey, Arc<ResolvedFunction>>,
}

/// Diagnostics (errors and warnings) by the package they are located in.
pub(crate) type Report = BTreeMap<String, Vec<Diagnostic>>;

/// Resolves `docs` together. `focus` is the package being applied, if
/// any: a problem that involves it and others (a macro of one package bound
/// by a class of another) is reported in it, where its author can fix it.
pub(crate) fn resolve(
    docs: &BTreeMap<String, Arc<Document>>,
    focus: Option<&str>,
) -> (Option<Resolution>, Report) {
    let mut r = Resolver {
        docs,
        focus,
        classes: BTreeMap::new(),
        functions: BTreeMap::new(),
        incomplete: BTreeSet::new(),
        report: Report::new(),
    };
    r.declare();
    let functions = r.functions_resolved();
    let own = r.classes_own(&functions);
    let order = r.inheritance_order(&own);
    let classes = inherit::merge(&own, &order);
    r.check_macros(&classes, &functions);
    let failed = r.report.values().flatten().any(Diagnostic::is_error);
    let resolution = (!failed).then(|| assemble(docs, classes, functions));
    (resolution, r.report)
}

struct Resolver<'a> {
    docs: &'a BTreeMap<String, Arc<Document>>,
    focus: Option<&'a str>,
    /// Declared classes and functions: key → (package, index in its list).
    classes: BTreeMap<String, (&'a str, usize)>,
    functions: BTreeMap<String, (&'a str, usize)>,
    /// Classes with a binding, reference or output class that did not
    /// resolve (already reported): checks that need their members skip
    /// them, so one mistake is not reported again as others.
    incomplete: BTreeSet<ClassKey>,
    report: Report,
}

/// A class's own members, resolved, before inheritance.
struct Own {
    key: ClassKey,
    pkg: String,
    index: usize,
    /// Resolved parents with the index of their `parents` entry.
    parents: Vec<(ClassKey, usize)>,
    bindings: BTreeMap<String, ResolvedBinding>,
    keys: BTreeMap<String, ResolvedKeySpec>,
    refs: BTreeMap<String, ResolvedRefSpec>,
    class: Class,
}

impl<'a> Resolver<'a> {
    fn doc(&self, pkg: &str) -> Option<&'a Document> {
        self.docs.get(pkg).map(Arc::as_ref)
    }

    fn push(&mut self, pkg: &str, diag: Diagnostic) {
        self.report.entry(pkg.to_owned()).or_default().push(diag);
    }

    fn error(&mut self, pkg: &str, path: &str, message: String) {
        if let Some(doc) = self.doc(pkg) {
            let d = doc.error(path, message);
            self.push(pkg, d);
        }
    }

    fn declare(&mut self) {
        let docs = self.docs;
        for (pkg, doc) in docs {
            let package = doc.package();
            for (i, class) in package.classes.iter().enumerate() {
                let key = format!("{pkg}.{}", class.name);
                match ClassKey::new(key.as_str()) {
                    Ok(_) => {
                        self.classes.insert(key, (pkg, i));
                    }
                    Err(e) => self.error(pkg, &format!("classes[{i}].name"), e.to_string()),
                }
            }
            for (i, function) in package.functions.iter().enumerate() {
                let key = format!("{pkg}.{}", function.name);
                match FunctionKey::new(key.as_str()) {
                    Ok(_) => {
                        self.functions.insert(key, (pkg, i));
                    }
                    Err(e) => self.error(pkg, &format!("functions[{i}].name"), e.to_string()),
                }
            }
            for (i, dep) in package.required.iter().enumerate() {
                if !docs.contains_key(dep) {
                    self.error(
                        pkg,
                        &format!("required[{i}]"),
                        format!("required package `{dep}` is not applied"),
                    );
                }
            }
        }
    }

    /// Resolves the reference `raw` written in `pkg` at `path`, reporting
    /// it when it does not exist.
    fn lookup(&mut self, kind: Kind, pkg: &str, path: &str, raw: &str) -> Option<String> {
        let package = self.doc(pkg)?.package();
        let own = own_names(package, kind);
        // Syntax errors were reported by the parser.
        let key = refs::resolve(kind, pkg, &own, raw).ok()?.key;
        let (target, name) = key.split_once('.')?;
        let declared = match kind {
            Kind::Class => &self.classes,
            Kind::Function => &self.functions,
        };
        let noun = match kind {
            Kind::Class => "class",
            Kind::Function => "function",
        };
        if declared.contains_key(&key) {
            if target != pkg && target != BUILTIN && !package.required.iter().any(|r| r == target) {
                let d = self.doc(pkg)?.warning(
                    path,
                    format!(
                        "`{key}` comes from package `{target}`, which is not listed in `required`"
                    ),
                );
                self.push(pkg, d);
            }
            return Some(key);
        }
        let message = match self.doc(target) {
            None => format!("unknown {noun} `{raw}`: package `{target}` is not applied"),
            Some(_) if !raw.contains('.') && target == BUILTIN && pkg != BUILTIN => format!(
                "unknown {noun} `{raw}`: neither this package nor `builtin` has a {noun} `{raw}`"
            ),
            Some(doc) => {
                let names = own_names(doc.package(), kind);
                match suggest(name, names.iter().copied()) {
                    Some(close) => format!(
                        "unknown {noun} `{raw}`: package `{target}` has no {noun} `{name}`; did you mean `{close}`?"
                    ),
                    None => {
                        format!("unknown {noun} `{raw}`: package `{target}` has no {noun} `{name}`")
                    }
                }
            }
        };
        self.error(pkg, path, message);
        None
    }

    fn functions_resolved(&mut self) -> BTreeMap<FunctionKey, Arc<ResolvedFunction>> {
        let mut out = BTreeMap::new();
        let declared: Vec<(String, &str, usize)> = self
            .functions
            .iter()
            .map(|(k, (p, i))| (k.clone(), *p, *i))
            .collect();
        for (key, pkg, i) in declared {
            let Some(doc) = self.doc(pkg) else { continue };
            let f = &doc.package().functions[i];
            let output_cls = match &f.output_cls {
                Some(raw) if !refs::is_no_class(raw) => self
                    .lookup(Kind::Class, pkg, &format!("functions[{i}].outputCls"), raw)
                    .and_then(|k| ClassKey::new(k).ok()),
                _ => None,
            };
            let Ok(key) = FunctionKey::new(key) else {
                continue;
            };
            let mut resolved = ResolvedFunction {
                key: key.clone(),
                package: pkg.to_owned(),
                name: f.name.clone(),
                kind: f.kind,
                description: f.description.clone(),
                output_cls,
                immutable: f.immutable,
                provision: f.provision.clone(),
                config: f.config.clone(),
                macro_spec: f.macro_spec.clone(),
                revision: 0,
                // Checked by the parser: a document with a bad macro is refused.
                dataflow: match (f.kind, &f.macro_spec) {
                    (FunctionType::Macro, Some(spec)) => Dag::build(spec).ok().map(Arc::new),
                    _ => None,
                },
            };
            resolved.revision = resolved.fingerprint();
            out.insert(key, Arc::new(resolved));
        }
        out
    }

    fn classes_own(
        &mut self,
        functions: &BTreeMap<FunctionKey, Arc<ResolvedFunction>>,
    ) -> BTreeMap<ClassKey, Own> {
        let mut out = BTreeMap::new();
        let declared: Vec<(String, &str, usize)> = self
            .classes
            .iter()
            .map(|(k, (p, i))| (k.clone(), *p, *i))
            .collect();
        for (key, pkg, i) in declared {
            let Some(doc) = self.doc(pkg) else { continue };
            let Ok(key) = ClassKey::new(key) else {
                continue;
            };
            let class = &doc.package().classes[i];
            let path = format!("classes[{i}]");
            let mut own = Own {
                key,
                pkg: pkg.to_owned(),
                index: i,
                parents: Vec::new(),
                bindings: BTreeMap::new(),
                keys: BTreeMap::new(),
                refs: BTreeMap::new(),
                class: class.clone(),
            };
            for (j, raw) in class.parents.iter().enumerate() {
                let found = self.lookup(Kind::Class, pkg, &format!("{path}.parents[{j}]"), raw);
                match found.and_then(|k| ClassKey::new(k).ok()) {
                    Some(parent) => own.parents.push((parent, j)),
                    None => {
                        self.incomplete.insert(own.key.clone());
                    }
                }
            }
            for key in &class.state_spec.key_specs {
                let spec = ResolvedKeySpec {
                    name: key.name.clone(),
                    access: key.access,
                    inherited_from: None,
                };
                own.keys.insert(key.name.clone(), spec);
            }
            for (j, r) in class.ref_spec.iter().enumerate() {
                let found = self.lookup(
                    Kind::Class,
                    pkg,
                    &format!("{path}.refSpec[{j}].cls"),
                    &r.cls,
                );
                let found = found.and_then(|k| ClassKey::new(k).ok());
                if found.is_none() {
                    self.incomplete.insert(own.key.clone());
                }
                if let Some(cls) = found {
                    let spec = ResolvedRefSpec {
                        name: r.name.clone(),
                        cls,
                        access: r.access,
                        inherited_from: None,
                    };
                    own.refs.insert(r.name.clone(), spec);
                }
            }
            for (j, b) in class.functions.iter().enumerate() {
                let p = format!("{path}.functions[{j}]");
                let found = self.lookup(Kind::Function, pkg, &format!("{p}.function"), &b.function);
                let Some(function) = found
                    .and_then(|k| FunctionKey::new(k).ok())
                    .and_then(|k| functions.get(&k))
                else {
                    self.incomplete.insert(own.key.clone());
                    continue;
                };
                let output_cls = match &b.output_cls {
                    None => function.output_cls.clone(),
                    Some(raw) if refs::is_no_class(raw) => None,
                    Some(raw) => {
                        let found = self
                            .lookup(Kind::Class, pkg, &format!("{p}.outputCls"), raw)
                            .and_then(|k| ClassKey::new(k).ok());
                        if found.is_none() {
                            self.incomplete.insert(own.key.clone());
                        }
                        found
                    }
                };
                let name = crate::validate::binding_name(b).to_owned();
                let binding = ResolvedBinding {
                    name: name.clone(),
                    function: function.key.clone(),
                    kind: function.kind,
                    access: b.access,
                    output_cls,
                    immutable: b.immutable.unwrap_or(function.immutable),
                    no_main: b.no_main,
                    default_args: b.default_args.clone(),
                    override_options: b.override_options.clone(),
                    description: b
                        .description
                        .clone()
                        .or_else(|| function.description.clone()),
                    inherited_from: None,
                };
                own.bindings.insert(name, binding);
            }
            out.insert(own.key.clone(), own);
        }
        out
    }
}

fn own_names(package: &Package, kind: Kind) -> BTreeSet<&str> {
    match kind {
        Kind::Class => package.classes.iter().map(|c| c.name.as_str()).collect(),
        Kind::Function => package.functions.iter().map(|f| f.name.as_str()).collect(),
    }
}

fn assemble(
    docs: &BTreeMap<String, Arc<Document>>,
    classes: BTreeMap<ClassKey, Arc<ResolvedClass>>,
    functions: BTreeMap<FunctionKey, Arc<ResolvedFunction>>,
) -> Resolution {
    let mut packages = BTreeMap::new();
    for (name, doc) in docs {
        let p = doc.package();
        let mut own_classes: Vec<Arc<ResolvedClass>> = classes
            .values()
            .filter(|c| &c.package == name)
            .cloned()
            .collect();
        own_classes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut own_functions: Vec<Arc<ResolvedFunction>> = functions
            .values()
            .filter(|f| &f.package == name)
            .cloned()
            .collect();
        own_functions.sort_by(|a, b| a.name.cmp(&b.name));
        let resolved = ResolvedPackage {
            name: name.clone(),
            version: p.version.clone(),
            description: p.description.clone(),
            required: p.required.clone(),
            disabled: p.disabled,
            classes: own_classes,
            functions: own_functions,
        };
        packages.insert(name.clone(), Arc::new(resolved));
    }
    Resolution {
        packages,
        classes,
        functions,
    }
}
