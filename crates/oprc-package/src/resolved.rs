//! The resolved view of packages: qualified keys everywhere, inheritance
//! merged, defaults filled in. This is what the platform acts on and what
//! `GET /api/classes/{cls}` and `GET /api/functions/{fn}` return.

use std::collections::BTreeMap;
use std::sync::Arc;

use oprc_core::{ClassKey, FunctionKey};
use serde::{Deserialize, Serialize};

use crate::dataflow::Dag;
use crate::model::{
    Access, ClassConfig, FunctionConfig, FunctionType, KeyAccess, MacroSpec, Provision,
};

/// An applied package, resolved. Classes and functions are sorted by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedPackage {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub required: Vec<String>,
    pub disabled: bool,
    pub classes: Vec<Arc<ResolvedClass>>,
    pub functions: Vec<Arc<ResolvedFunction>>,
}

/// A class with everything it inherits merged in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedClass {
    pub key: ClassKey,
    pub package: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub disabled: bool,
    /// The declared parents, as keys.
    pub parents: Vec<ClassKey>,
    /// Every class this one inherits from, directly or not, in merge order
    /// (`builtin.base` first); for "is a" checks.
    pub ancestors: Vec<ClassKey>,
    /// Callable members by name, inherited ones included.
    pub bindings: BTreeMap<String, ResolvedBinding>,
    /// File keys by name, inherited ones included.
    pub keys: BTreeMap<String, ResolvedKeySpec>,
    /// Object references by name, inherited ones included.
    pub refs: BTreeMap<String, ResolvedRefSpec>,
    pub config: ClassConfig,
}

impl ResolvedClass {
    pub fn binding(&self, name: &str) -> Option<&ResolvedBinding> {
        self.bindings.get(name)
    }

    /// Whether objects of this class may stand where `cls` is expected.
    pub fn is_a(&self, cls: &ClassKey) -> bool {
        &self.key == cls || self.ancestors.contains(cls)
    }
}

/// A function bound to a class, with the function's defaults applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedBinding {
    pub name: String,
    pub function: FunctionKey,
    #[serde(rename = "functionType")]
    pub kind: FunctionType,
    pub access: Access,
    /// Class of the output object; `None` for no output object.
    pub output_cls: Option<ClassKey>,
    /// The main object is left untouched.
    pub immutable: bool,
    /// A class-level call without a main object.
    pub no_main: bool,
    pub default_args: BTreeMap<String, String>,
    /// Options for builtin functions (e.g. `merge: true`).
    #[serde(rename = "override")]
    pub override_options: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The class that declared this binding, when it is inherited.
    pub inherited_from: Option<ClassKey>,
}

/// A file key of a class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedKeySpec {
    pub name: String,
    pub access: KeyAccess,
    pub inherited_from: Option<ClassKey>,
}

/// A named reference to an object of class `cls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedRefSpec {
    pub name: String,
    pub cls: ClassKey,
    pub access: KeyAccess,
    pub inherited_from: Option<ClassKey>,
}

/// A function with its key and output class resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedFunction {
    pub key: FunctionKey,
    pub package: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FunctionType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub output_cls: Option<ClassKey>,
    pub immutable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision: Option<Provision>,
    pub config: FunctionConfig,
    #[serde(rename = "macro", default, skip_serializing_if = "Option::is_none")]
    pub macro_spec: Option<MacroSpec>,
    /// [`Self::fingerprint`], computed once when the function is resolved.
    #[serde(skip)]
    pub(crate) revision: u64,
    /// The planned steps of a MACRO function, built once when the function
    /// is resolved (see [`Self::dataflow`]).
    #[serde(skip)]
    pub(crate) dataflow: Option<Arc<Dag>>,
}

impl ResolvedFunction {
    /// The revision the node deploys this function at: its fingerprint,
    /// computed when the catalog was built (free to read on every call).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The planned steps of a MACRO function whose `macro` checks (always,
    /// in a catalog: a package with a bad macro is refused); `None` for
    /// other functions. Built once when the catalog is built; not part of
    /// the serialized form, so `None` on a deserialized value.
    pub fn dataflow(&self) -> Option<&Arc<Dag>> {
        self.dataflow.as_ref()
    }

    /// How long one call may take (`config.timeout`, 30 s by default).
    pub fn timeout(&self) -> std::time::Duration {
        self.config.timeout.get()
    }

    /// A stable fingerprint of the whole definition (provision, config,
    /// output class, ...): equal functions give equal fingerprints, in any
    /// process and run; a change to any field gives another one (up to
    /// 64-bit collisions). FNV-1a over a canonical form of the resolved
    /// JSON; it costs one serialization, so compute it once per catalog,
    /// not per call. The node deploys a function at this revision.
    pub fn fingerprint(&self) -> u64 {
        let value = serde_json::to_value(self)
            .expect("a resolved function serializes to JSON: its maps have string keys");
        crate::fingerprint::of(&value)
    }
}

#[cfg(test)]
mod tests {
    use oprc_core::FunctionKey;

    use crate::{Catalog, parse};

    fn fingerprint(source: &str) -> u64 {
        let doc = parse(source).unwrap_or_else(|d| panic!("{d:#?}"));
        let catalog = Catalog::new()
            .apply(&doc)
            .unwrap_or_else(|d| panic!("{d:#?}"))
            .catalog;
        let key = FunctionKey::new("p.f").expect("valid key");
        catalog.function(&key).expect("resolved").fingerprint()
    }

    const BASE: &str = "
name: p
functions:
  - name: f
    provision: {process: {command: python3 f.py, concurrency: 4}}
    config: {custom: {A: '1', B: '2'}}
";

    #[test]
    fn equal_functions_have_equal_fingerprints() {
        let same = "
name: p
functions:
  - config: {custom: {B: '2', A: '1'}}
    provision: {process: {concurrency: 4, command: python3 f.py}}
    name: f
";
        assert_eq!(fingerprint(BASE), fingerprint(BASE));
        assert_eq!(
            fingerprint(BASE),
            fingerprint(same),
            "order does not matter"
        );
    }

    #[test]
    fn a_changed_provision_or_config_changes_the_fingerprint() {
        let base = fingerprint(BASE);
        for changed in [
            BASE.replace("concurrency: 4", "concurrency: 5"),
            BASE.replace("python3 f.py", "python3 g.py"),
            BASE.replace("B: '2'", "B: '3'"),
            BASE.replace("custom: {A: '1', B: '2'}", "timeout: 5s"),
        ] {
            assert_ne!(fingerprint(&changed), base, "{changed}");
        }
    }
}
