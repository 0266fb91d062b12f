//! Classes, their state specification and their function bindings.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Access, KeyAccess, is_default, is_false};

/// A class: structured state (a JSON document), file keys, references to
/// other objects, and bound functions. Inherits from `parents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-compat" = [
    "_key", "_rev", "pkg", "objectType", "stateType", "markForRemoval", "status",
    "resolved", "requirements", "requirement", "qos", "constraints", "constraint"
]))]
pub struct Class {
    /// Class name; the key is `<package>.<name>`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// Classes to inherit from, merged in order: a later parent overrides an
    /// earlier one by name, and this class overrides them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub state_spec: StateSpec,
    /// Named references to other objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ref_spec: Vec<RefSpec>,
    /// Function bindings: the callable members of the class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<Binding>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub config: ClassConfig,
}

/// Unstructured state: the named files an object may hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-compat" = ["defaultProvider"]))]
pub struct StateSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_specs: Vec<KeySpec>,
}

/// One file key of an object (e.g. `video`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-compat" = ["provider"]))]
pub struct KeySpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub access: KeyAccess,
}

/// A named reference from an object to an object of class `cls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefSpec {
    pub name: String,
    /// Class of the referenced object (a key, or `.name` for this package).
    pub cls: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub access: KeyAccess,
}

/// Runtime settings of a class.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-compat" = [
    "options", "structStore", "unstructStore", "logStore", "crTemplate", "disableHpa",
    "disableHashAware", "replicated", "writeThrough", "replicas", "hashAwareSync"
]))]
pub struct ClassConfig {
    /// Number of partitions of the class's objects (the platform's default
    /// when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub partitions: Option<u16>,
    /// `sync` (default): a successful call is durable. `async`: write-behind,
    /// faster, may lose the last moments of writes on a crash.
    #[serde(default, skip_serializing_if = "is_default")]
    pub persistence: Persistence,
}

/// When a committed state change is written to durable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(extend("x-noun" = "persistence mode"))]
pub enum Persistence {
    /// Durable before the call answers (group commit).
    #[default]
    Sync,
    /// Write-behind.
    Async,
}

/// Binds a function to a class under a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(
    extend("x-compat" = ["forwardRecords", "inputTypes", "noOutput"]),
    extend("x-aliases" = { "forceImmutable": "immutable", "allowNoMain": "noMain" })
)]
pub struct Binding {
    /// Name of the binding; defaults to the last segment of `function`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The function: a key (`pkg.fn`), `.fn` for this package, or a bare
    /// name (this package's function of that name, else `builtin.<name>`).
    pub function: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub access: Access,
    /// Class of the output object, or `none`/`void` for no output; defaults
    /// to the function's `outputCls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_cls: Option<String>,
    /// The main object is left untouched; defaults to the function's
    /// `immutable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// A class-level call that runs without a main object.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_main: bool,
    /// Arguments passed when the caller does not give them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub default_args: BTreeMap<String, String>,
    /// Options for builtin functions, e.g. `merge: true` for `update`.
    #[serde(
        rename = "override",
        default,
        skip_serializing_if = "serde_json::Map::is_empty"
    )]
    pub override_options: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
