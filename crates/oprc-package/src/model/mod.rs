//! The package format as written by developers (YAML or JSON, camelCase).
//!
//! These types hold references exactly as written (`.video`, `new`,
//! `media.video`, `none`); [`crate::Catalog`] resolves them into keys.
//! Fields of the original Oparaca that we accept but do not act on are listed
//! per type in its `x-compat` schema extension and aliases of renamed fields
//! in `x-aliases` (see [`crate::schema`]); the parser drops the former with a
//! warning and renames the latter, so they never reach these types.

mod class;
mod function;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use class::{Binding, Class, ClassConfig, KeySpec, Persistence, RefSpec, StateSpec};
pub use function::{
    Command, DeploymentProvision, Function, FunctionConfig, HttpProvision, KnativeProvision,
    MacroSpec, MacroStep, ProcessProvision, Provision,
};

/// A package: a named set of classes and functions, applied and removed as a
/// whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(
    title = "Oparaca package",
    extend("x-compat" = ["metadata", "deployments"]),
    extend("x-aliases" = { "dependencies": "required" })
)]
pub struct Package {
    /// Package name; the first part of every class and function key
    /// (`<package>.<name>`). Letters, digits, `_`, `-`, `~`; no `.`.
    pub name: String,
    /// Free-form version label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<Class>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<Function>,
    /// Names of the packages this one uses; they must be applied first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
}

/// Who may call a function binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schemars(extend("x-noun" = "access modifier"))]
pub enum Access {
    /// Anyone.
    #[default]
    Public,
    /// Only functions and macros of the same package.
    Internal,
    /// Only functions and macros of the same class.
    Private,
}

/// Who may read or write a file key, or follow a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schemars(
    extend("x-noun" = "access modifier"),
    extend("x-value-aliases" = { "DEP": "DEPENDENT" })
)]
pub enum KeyAccess {
    /// Anyone.
    #[default]
    Public,
    /// Any function invoked with the object as a dependency (input or reference).
    Dependent,
    /// Only functions of the same package.
    Internal,
    /// Only functions of the same class.
    Private,
}

/// What kind of code runs a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schemars(
    extend("x-noun" = "function type"),
    extend("x-value-aliases" = {
        "IM_TASK": "TASK",
        "READONLY": "TASK",
        "STATIC": "TASK",
        "STATIC_READONLY": "TASK",
        "LOGICAL": "BUILTIN"
    })
)]
pub enum FunctionType {
    /// Developer code behind HTTP, run by a FaaS engine (pure-function model).
    #[default]
    Task,
    /// A declarative dataflow over other functions.
    Macro,
    /// Provided by the platform (package `builtin` only).
    Builtin,
}

impl FunctionType {
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionType::Task => "TASK",
            FunctionType::Macro => "MACRO",
            FunctionType::Builtin => "BUILTIN",
        }
    }
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}
