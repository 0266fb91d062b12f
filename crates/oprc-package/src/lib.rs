//! Oparaca packages: parse, validate and resolve the classes and functions
//! developers declare, in the package format of the original (Java)
//! Oparaca.
//!
//! This crate does no IO: no files, no network, no async runtime, no
//! storage. It turns source text into a checked [`Document`] ([`parse`]),
//! and documents into a resolved, immutable [`Catalog`] that the server
//! swaps atomically. The format is described by [`json_schema`], generated
//! from the [`model`] types and also used to check documents.
//!
//! # Diagnostics
//! Every problem is reported at once, each as a [`Diagnostic`] with a
//! severity, a 1-based line and column, a path such as
//! `classes[0].functions[1].access` and a message. Fields of the original
//! format that are accepted but not acted on yet (`stateType`,
//! `objectType`, `variableDescriptions`, `qos`, `requirements`,
//! `constraints`, `config.offloadingMode`, `provision.knative.http2`, a
//! function's `image`, ...) are warnings; the original's old names
//! (`forceImmutable`, `allowNoMain`, `macro.export`, `provision.staticUrl`,
//! key access `DEP`, function types `IM_TASK`/`LOGICAL`/...,
//! `builtin.logical.*`) are read as the current ones with a warning. A
//! field the format does not know is an error. Numbers and booleans written
//! where text is expected are read as the text written (`version: 1.10`).
//! A source that expands through YAML aliases to more than a million
//! values, or nests lists and mappings more than 64 deep (aliases
//! included), is refused before it is built, with the position where it
//! goes over. Problems in a macro's dataflow are located at the node they
//! are about (`functions[0].macro.steps[1].target`,
//! `functions[0].macro.steps[0].args.x`, ...).
//!
//! # References
//! Keys are `<package>.<name>`. A package name never contains `.`; class
//! and function names may. In a package `pkg`, a reference `.name` means
//! `pkg.name`; `a.b` is the key as written; a bare `name` means the
//! package's own class or function of that name if it declares one, and
//! `builtin.name` otherwise (`function: new` binds `builtin.new`).
//! `outputCls: none` (or `void`) means no output object.
//!
//! A reference to another package needs that package to be applied; it
//! should also be listed in `required` (a warning otherwise). A package
//! that others use cannot be removed.
//!
//! # Resolution
//! - Every class inherits `builtin.base` first, so the builtin bindings
//!   `new`, `get`, `update`, `delete`, `copy`, `file` and `project` are
//!   callable on every class; a binding of the same name in a parent or in
//!   the class itself overrides them (a TASK named `update`, say).
//! - Then the declared `parents` are merged in order, a later parent
//!   overriding an earlier one by name, and the class's own bindings, keys
//!   and references override them all. Inherited entries carry
//!   `inheritedFrom`, the class that declared them. Cycles are rejected
//!   with the cycle spelled out (`a.x -> a.y -> a.x`).
//! - A binding's name defaults to its function's last segment; its
//!   `immutable` and `outputCls` default to the function's. Bindings of
//!   `builtin.new` and `builtin.copy` output an object of the class they
//!   are called on, and `builtin.new` is always a class-level (`noMain`)
//!   call.
//! - The whole catalog is resolved again on every change, so a change that
//!   would break another package is refused, and load order does not
//!   matter ([`Catalog::load`], or [`Catalog::load_partial`] to start with
//!   whatever still resolves).
//!
//! # Macros
//! A MACRO function's `macro` is checked by the parser ([`dataflow`]):
//! step names (`as`, or `_0`, `_1`, ... by position) are unique, targets
//! are `@` (the main object; `$`, the original's spelling, with a
//! warning), `@.REF` (an object the main object refers to) or an earlier
//! step, `${SRC|KIND|PATH}` substitutions in `args` and `bodyTemplate`
//! parse and name `@` or earlier steps (cycles are spelled out), `output`
//! names a step. The resolved function carries the planned steps
//! ([`ResolvedFunction::dataflow`]).
//!
//! When the catalog is resolved, each class with a macro binding (declared
//! or inherited) is checked against the macro: for every step whose target
//! class is known (`@` is the class, `@.REF` its reference's class, an
//! earlier step's object its binding's output class, or with none the
//! class it was called on) that class must have the binding the step
//! calls, and the macro must be allowed to call it: it acts as the class
//! that declared the macro binding, so an INTERNAL binding is reachable
//! only from the package of the class that declared it, a PRIVATE one only
//! from that class. A problem is reported in the package being applied: at
//! the step when the macro is its own, else at the class's binding (or the
//! class, for an inherited binding); a change to one package that breaks
//! another's macro is refused like any other breakage.

mod catalog;
mod check;
pub mod dataflow;
mod diagnostic;
mod duration;
mod error;
mod expansion;
mod fingerprint;
pub mod model;
mod parse;
mod refs;
mod resolve;
mod resolved;
mod schema;
mod suggest;
mod validate;

pub use catalog::{Applied, Catalog};
pub use diagnostic::{Diagnostic, Position, Severity};
pub use duration::{Duration, DurationError};
pub use error::{Error, PackageDiagnostics};
pub use model::{Access, FunctionType, KeyAccess, Package};
pub use parse::{Document, parse};
pub use resolved::{
    ResolvedBinding, ResolvedClass, ResolvedFunction, ResolvedKeySpec, ResolvedPackage,
    ResolvedRefSpec,
};
pub use schema::json_schema;
