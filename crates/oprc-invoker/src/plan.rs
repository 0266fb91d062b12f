//! Deciding what a call is before running it: which binding, whether the
//! caller may call it (G7), whether it needs a main object, and whether it
//! mutates (and so must go through the object's inbox).

use std::sync::Arc;
use std::time::Duration;

use oprc_core::{ClassKey, InvocationRequest};
use oprc_package::{Access, Catalog, FunctionType, ResolvedBinding, ResolvedClass};

use crate::Error;
use crate::builtin::Builtin;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A client through the public API.
    External,
    /// A function (or macro) of class `cls`, calling on its own behalf.
    Function { cls: ClassKey },
}

/// What a call runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    Builtin(Builtin),
    Task { timeout: Duration },
}

/// A checked call.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The class as resolved when the call was checked (shared, not copied).
    class: Arc<ResolvedClass>,
    fb: String,
    pub action: Action,
    /// Runs one at a time per object, in the object's inbox.
    pub mutating: bool,
}

impl Plan {
    /// The binding being called.
    pub fn binding(&self) -> &ResolvedBinding {
        self.class
            .bindings
            .get(&self.fb)
            .expect("plan() found this binding in this class")
    }
}

/// Whether `caller` may call `binding` of class `cls` (G7).
pub(crate) fn check_access(
    cls: &ClassKey,
    binding: &ResolvedBinding,
    caller: &Caller,
) -> Result<(), Error> {
    let refuse = |modifier, why| {
        Err(Error::Forbidden {
            cls: cls.to_string(),
            fb: binding.name.clone(),
            modifier,
            why,
        })
    };
    match (binding.access, caller) {
        (Access::Public, _) => Ok(()),
        (Access::Internal, Caller::Function { cls: from }) if from.package() == cls.package() => {
            Ok(())
        }
        (Access::Private, Caller::Function { cls: from }) if from == cls => Ok(()),
        (Access::Internal, _) => {
            refuse("INTERNAL", "only functions of the same package may call it")
        }
        (Access::Private, _) => refuse("PRIVATE", "only functions of the same class may call it"),
    }
}

pub(crate) fn plan(
    catalog: &Catalog,
    req: &InvocationRequest,
    caller: &Caller,
) -> Result<Plan, Error> {
    let class = catalog
        .class_shared(&req.cls)
        .ok_or_else(|| Error::ClassNotFound(req.cls.to_string()))?;
    let binding = class
        .bindings
        .get(&req.fb)
        .ok_or_else(|| Error::FunctionNotFound {
            cls: req.cls.to_string(),
            fb: req.fb.clone(),
        })?;
    check_access(&req.cls, binding, caller)?;
    let (action, class_level, mutating) = match binding.kind {
        FunctionType::Builtin => {
            let b = Builtin::from_name(binding.function.short_name()).ok_or_else(|| {
                Error::Unsupported(format!(
                    "builtin function `{}` is not implemented",
                    binding.function
                ))
            })?;
            (Action::Builtin(b), b.class_level(), b.mutates_main())
        }
        FunctionType::Task => {
            let timeout = catalog
                .function(&binding.function)
                .map_or(Duration::from_secs(30), |f| f.timeout());
            (
                Action::Task { timeout },
                binding.no_main,
                !binding.immutable && !binding.no_main,
            )
        }
        FunctionType::Macro => {
            return Err(Error::Unsupported(format!(
                "`{}` is a macro function; macros are not supported by this node yet",
                binding.name
            )));
        }
    };
    match (&req.oid, class_level) {
        (Some(_), true) => Err(Error::BadRequest(format!(
            "`{}` is a class-level function: call it at /api/classes/{}/invokes/{}",
            req.fb, req.cls, req.fb
        ))),
        (None, false) => Err(Error::BadRequest(format!(
            "`{}` is called on an object: call it at /api/classes/{}/objects/{{oid}}/invokes/{}",
            req.fb, req.cls, req.fb
        ))),
        _ => Ok(Plan {
            fb: req.fb.clone(),
            class: class.clone(),
            action,
            mutating,
        }),
    }
}
