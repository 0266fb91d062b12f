//! Package-local rules, checked once the document has the model's shape:
//! name syntax, duplicates, reference syntax, engine settings, macro
//! dataflows.

use std::collections::{BTreeMap, BTreeSet};

use crate::dataflow::Dag;
use crate::diagnostic::Diagnostic;
use crate::model::{
    Binding, Class, Command, Function, FunctionType, MacroSpec, Package, Provision,
};
use crate::parse::Locator;
use crate::refs::{self, BUILTIN, Kind};

struct Rules<'a> {
    pkg: &'a str,
    classes: BTreeSet<&'a str>,
    functions: BTreeSet<&'a str>,
    at: &'a Locator,
    diags: Vec<Diagnostic>,
}

pub(crate) fn package(package: &Package, at: &Locator) -> Vec<Diagnostic> {
    let mut rules = Rules {
        pkg: &package.name,
        classes: package.classes.iter().map(|c| c.name.as_str()).collect(),
        functions: package.functions.iter().map(|f| f.name.as_str()).collect(),
        at,
        diags: Vec::new(),
    };
    if let Err(e) = refs::check_package_name(&package.name) {
        rules.error("name", e);
    }
    let mut required = BTreeSet::new();
    for (i, dep) in package.required.iter().enumerate() {
        let path = format!("required[{i}]");
        if let Err(e) = refs::check_package_name(dep) {
            rules.error(&path, e);
        } else if dep == &package.name {
            rules.error(&path, "a package cannot require itself");
        } else if !required.insert(dep.as_str()) {
            rules.error(&path, format!("package `{dep}` is listed twice"));
        }
    }
    rules.unique(
        "class",
        package
            .classes
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("classes[{i}].name"), c.name.as_str())),
    );
    rules.unique(
        "function",
        package
            .functions
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("functions[{i}].name"), f.name.as_str())),
    );
    for (i, class) in package.classes.iter().enumerate() {
        rules.class(&format!("classes[{i}]"), class);
    }
    for (i, function) in package.functions.iter().enumerate() {
        rules.function(&format!("functions[{i}]"), function);
    }
    rules.diags
}

impl Rules<'_> {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.diags.push(self.at.error(path, message));
    }

    fn warning(&mut self, path: &str, message: impl Into<String>) {
        self.diags.push(self.at.warning(path, message));
    }

    /// Reports names that are repeated (each repeat, at its own position).
    fn unique<'n>(&mut self, what: &str, names: impl Iterator<Item = (String, &'n str)>) {
        let mut seen: BTreeMap<&str, String> = BTreeMap::new();
        for (path, name) in names {
            if let Some(first) = seen.get(name) {
                let first_at = self.at.at(first);
                self.error(
                    &path,
                    format!("duplicate {what} `{name}` (first defined at {first_at})"),
                );
            } else {
                seen.insert(name, path);
            }
        }
    }

    fn reference(&mut self, kind: Kind, path: &str, raw: &str) {
        let own = match kind {
            Kind::Class => &self.classes,
            Kind::Function => &self.functions,
        };
        match refs::resolve(kind, self.pkg, own, raw) {
            Ok(resolved) => {
                if let Some(note) = resolved.note {
                    self.warning(path, note);
                }
            }
            Err(e) => self.error(path, e),
        }
    }

    fn class(&mut self, path: &str, class: &Class) {
        if let Err(e) = refs::check_member_name("class", &class.name) {
            self.error(&format!("{path}.name"), e);
        }
        let mut parents = BTreeSet::new();
        for (i, parent) in class.parents.iter().enumerate() {
            let p = format!("{path}.parents[{i}]");
            self.reference(Kind::Class, &p, parent);
            if !parents.insert(parent.as_str()) {
                self.error(&p, format!("parent `{parent}` is listed twice"));
            }
        }
        for (i, key) in class.state_spec.key_specs.iter().enumerate() {
            if let Err(e) = refs::check_plain_name("key", &key.name) {
                self.error(&format!("{path}.stateSpec.keySpecs[{i}].name"), e);
            }
        }
        self.unique(
            "key",
            class.state_spec.key_specs.iter().enumerate().map(|(i, k)| {
                (
                    format!("{path}.stateSpec.keySpecs[{i}].name"),
                    k.name.as_str(),
                )
            }),
        );
        for (i, r) in class.ref_spec.iter().enumerate() {
            let p = format!("{path}.refSpec[{i}]");
            if let Err(e) = refs::check_plain_name("reference", &r.name) {
                self.error(&format!("{p}.name"), e);
            }
            self.reference(Kind::Class, &format!("{p}.cls"), &r.cls);
        }
        self.unique(
            "reference",
            class
                .ref_spec
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("{path}.refSpec[{i}].name"), r.name.as_str())),
        );
        for (i, binding) in class.functions.iter().enumerate() {
            self.binding(&format!("{path}.functions[{i}]"), binding);
        }
        self.unique(
            "binding",
            class.functions.iter().enumerate().map(|(i, b)| {
                let name_path = if b.name.is_some() { "name" } else { "function" };
                (
                    format!("{path}.functions[{i}].{name_path}"),
                    binding_name(b),
                )
            }),
        );
    }

    fn binding(&mut self, path: &str, binding: &Binding) {
        self.reference(
            Kind::Function,
            &format!("{path}.function"),
            &binding.function,
        );
        if let Some(name) = &binding.name
            && let Err(e) = refs::check_plain_name("binding", name)
        {
            self.error(&format!("{path}.name"), e);
        }
        if let Some(out) = &binding.output_cls
            && !refs::is_no_class(out)
        {
            self.reference(Kind::Class, &format!("{path}.outputCls"), out);
        }
    }

    fn function(&mut self, path: &str, function: &Function) {
        if let Err(e) = refs::check_member_name("function", &function.name) {
            self.error(&format!("{path}.name"), e);
        }
        if let Some(out) = &function.output_cls
            && !refs::is_no_class(out)
        {
            self.reference(Kind::Class, &format!("{path}.outputCls"), out);
        }
        match function.kind {
            FunctionType::Builtin if self.pkg != BUILTIN => self.error(
                &format!("{path}.type"),
                "type BUILTIN is reserved for the `builtin` package",
            ),
            FunctionType::Macro if function.macro_spec.is_none() => self.error(
                path,
                format!("MACRO function `{}` needs a `macro`", function.name),
            ),
            FunctionType::Task | FunctionType::Builtin if function.macro_spec.is_some() => self
                .warning(
                    &format!("{path}.macro"),
                    format!(
                        "`macro` has no effect on a {} function",
                        function.kind.as_str()
                    ),
                ),
            _ => {}
        }
        if function.kind == FunctionType::Macro
            && let Some(spec) = &function.macro_spec
        {
            self.macro_spec(&format!("{path}.macro"), spec);
        }
        let config = &function.config;
        if let Some(url) = &config.static_url {
            self.url(&format!("{path}.config.staticUrl"), url);
        }
        match (&function.provision, function.kind) {
            (Some(_), FunctionType::Macro | FunctionType::Builtin) => self.warning(
                &format!("{path}.provision"),
                format!("`provision` has no effect on a {} function", function.kind.as_str()),
            ),
            (Some(provision), FunctionType::Task) => {
                self.provision(&format!("{path}.provision"), provision);
                if config.static_url.is_some() && provision != &Provision::default() {
                    self.error(
                        &format!("{path}.config.staticUrl"),
                        "declare either `config.staticUrl` or `provision`, not both",
                    );
                }
            }
            (None, FunctionType::Task) if config.static_url.is_none() => self.warning(
                path,
                format!(
                    "TASK function `{}` has no `provision` or `config.staticUrl`; calls to it fail until it has one",
                    function.name
                ),
            ),
            _ => {}
        }
    }

    /// The dataflow of a MACRO function: names, targets, references,
    /// templates ([`Dag::build`]), each problem at its own position.
    fn macro_spec(&mut self, path: &str, spec: &MacroSpec) {
        for (i, step) in spec.steps.iter().enumerate() {
            if step.target.as_deref() == Some("$") {
                self.warning(
                    &format!("{path}.steps[{i}].target"),
                    "`$` is the original's name for `@` (the macro's main object); read as `@`",
                );
            }
        }
        if let Err(problems) = Dag::build(spec) {
            for p in problems {
                let at = match p.path.as_str() {
                    "" => path.to_owned(),
                    rest if rest.starts_with('[') => format!("{path}{rest}"),
                    rest => format!("{path}.{rest}"),
                };
                self.error(&at, p.message);
            }
        }
    }

    fn provision(&mut self, path: &str, provision: &Provision) {
        let engines: Vec<&str> = [
            provision.http.as_ref().map(|_| "http"),
            provision.process.as_ref().map(|_| "process"),
            provision.knative.as_ref().map(|_| "knative"),
            provision.deployment.as_ref().map(|_| "deployment"),
        ]
        .into_iter()
        .flatten()
        .collect();
        match engines.as_slice() {
            [] => self.warning(
                path,
                "`provision` names no engine (http, process, knative or deployment)",
            ),
            [_] => {}
            many => self.error(
                path,
                format!(
                    "declare one engine in `provision`, found {}",
                    many.join(" and ")
                ),
            ),
        }
        if let Some(http) = &provision.http {
            self.url(&format!("{path}.http.url"), &http.url);
        }
        if let Some(process) = &provision.process {
            let p = format!("{path}.process");
            let empty = match &process.command {
                Command::Shell(text) => text.trim().is_empty(),
                Command::Argv(argv) => argv.first().is_none_or(|a| a.trim().is_empty()),
            };
            if empty {
                self.error(&format!("{p}.command"), "the command is empty");
            }
            if process.max_instances == 0 {
                self.error(
                    &format!("{p}.maxInstances"),
                    "`maxInstances` must be at least 1",
                );
            } else if process.min_instances > process.max_instances {
                self.error(
                    &format!("{p}.minInstances"),
                    format!(
                        "`minInstances` ({}) is above `maxInstances` ({})",
                        process.min_instances, process.max_instances
                    ),
                );
            }
        }
    }

    fn url(&mut self, path: &str, url: &str) {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        if rest.is_none_or(str::is_empty) {
            self.error(path, format!("`{url}` is not an http:// or https:// URL"));
        }
    }
}

/// A binding's name: as given, or the last segment of its function.
pub(crate) fn binding_name(binding: &Binding) -> &str {
    binding
        .name
        .as_deref()
        .unwrap_or_else(|| refs::default_binding_name(&binding.function))
}
