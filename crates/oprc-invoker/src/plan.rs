//! Deciding what a call is before running it: which binding, whether the
//! caller may call it (G7), whether it needs a main object, and whether it
//! mutates (and so must go through the object's inbox).

use std::sync::Arc;
use std::time::Duration;

use oprc_core::{Caller, ClassKey, InvocationRequest};
use oprc_package::dataflow::Dag;
use oprc_package::{Access, Catalog, FunctionType, ResolvedBinding, ResolvedClass};

use crate::Error;
use crate::builtin::Builtin;

/// What a call runs.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    Builtin(Builtin),
    /// `revision`: the deployment the call is planned on (the function's
    /// fingerprint in the catalog).
    Task {
        timeout: Duration,
        revision: Option<u64>,
    },
    /// A macro: its steps, checked when the package was applied.
    Macro(Arc<Dag>),
}

/// A checked call.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The catalog it was checked against (kept, so that "is it still the
    /// current one" is a pointer comparison).
    catalog: Arc<Catalog>,
    /// The class as resolved when the call was checked (shared, not copied).
    class: Arc<ResolvedClass>,
    fb: String,
    pub action: Action,
    /// Runs one at a time per object, in the object's inbox.
    pub mutating: bool,
}

impl Plan {
    /// The class as resolved when the call was planned.
    pub fn class(&self) -> &ResolvedClass {
        &self.class
    }

    /// The output class of the binding, as resolved in the same catalog.
    pub fn output_class(&self) -> Option<Arc<ResolvedClass>> {
        let cls = self.binding().output_cls.as_ref()?;
        self.catalog.class_shared(cls)
    }

    /// A class of the catalog the call was planned on.
    pub fn class_of(&self, cls: &ClassKey) -> Option<Arc<ResolvedClass>> {
        self.catalog.class_shared(cls)
    }

    /// The revision of the bound function (its fingerprint), when it is
    /// not a builtin.
    pub fn function_revision(&self) -> Option<u64> {
        self.catalog
            .function(&self.binding().function)
            .map(|f| f.revision())
    }

    /// The steps of a macro call.
    pub fn dag(&self) -> Option<&Arc<Dag>> {
        match &self.action {
            Action::Macro(dag) => Some(dag),
            _ => None,
        }
    }

    /// The class a call acts as when this binding calls others (its
    /// function's calls, its macro's steps): the class that declared it.
    pub fn acting_class(&self) -> &ClassKey {
        self.binding()
            .inherited_from
            .as_ref()
            .unwrap_or(&self.class.key)
    }

    /// The binding being called.
    pub fn binding(&self) -> &ResolvedBinding {
        self.class
            .bindings
            .get(&self.fb)
            .expect("plan() found this binding in this class")
    }
}

/// Whether `caller` may call `binding` of class `cls` (G7). A modifier
/// belongs to the class that declared the binding (its owner): INTERNAL
/// opens it to classes of the owner's package, PRIVATE to the owner
/// itself, so a class of another package does not reach them by
/// inheriting them.
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
    let owner = binding.inherited_from.as_ref().unwrap_or(cls);
    match (binding.access, caller.class()) {
        (Access::Public, _) => Ok(()),
        (Access::Internal, Some(from)) if from.package() == owner.package() => Ok(()),
        (Access::Private, Some(from)) if from == owner => Ok(()),
        (Access::Internal, _) => {
            refuse("INTERNAL", "only functions of the same package may call it")
        }
        (Access::Private, _) => refuse("PRIVATE", "only functions of the same class may call it"),
    }
}

/// Checks a call again when it starts: `None` when the catalog is the one
/// `previous` was planned on (nothing changed), else the new plan.
pub(crate) fn again(
    catalog: &Arc<Catalog>,
    req: &InvocationRequest,
    previous: &Plan,
) -> Result<Option<Plan>, Error> {
    if Arc::ptr_eq(catalog, &previous.catalog) {
        return Ok(None);
    }
    plan(catalog, req).map(Some)
}

/// Checks a call against the catalog, as its caller (`req.caller`).
pub(crate) fn plan(catalog: &Arc<Catalog>, req: &InvocationRequest) -> Result<Plan, Error> {
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
    check_access(&req.cls, binding, &req.caller)?;
    let (action, class_level, mutating) = match binding.kind {
        FunctionType::Builtin => {
            let b = Builtin::from_name(binding.function.short_name()).ok_or_else(|| {
                Error::Unsupported(format!(
                    "builtin function `{}` is not implemented",
                    binding.function
                ))
            })?;
            (
                Action::Builtin(b),
                b.class_level(),
                b.mutates_main(&req.args),
            )
        }
        FunctionType::Task => {
            let function = catalog.function(&binding.function);
            let timeout = function.map_or(Duration::from_secs(30), |f| f.timeout());
            (
                Action::Task {
                    timeout,
                    revision: function.map(|f| f.revision()),
                },
                binding.no_main,
                !binding.immutable && !binding.no_main,
            )
        }
        FunctionType::Macro => {
            let dag = catalog
                .function(&binding.function)
                .and_then(|f| f.dataflow())
                .ok_or_else(|| {
                    Error::Internal(format!(
                        "macro function `{}` has no checked steps",
                        binding.function
                    ))
                })?;
            // A macro changes no object itself: its steps do, each in its
            // target's inbox.
            (Action::Macro(dag.clone()), binding.no_main, false)
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
            catalog: catalog.clone(),
            fb: req.fb.clone(),
            class: class.clone(),
            action,
            mutating,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(access: Access, inherited_from: Option<&str>) -> ResolvedBinding {
        ResolvedBinding {
            name: "f".into(),
            function: oprc_core::FunctionKey::new("p1.f").unwrap(),
            kind: FunctionType::Task,
            access,
            output_cls: None,
            immutable: false,
            no_main: false,
            default_args: Default::default(),
            override_options: Default::default(),
            description: None,
            inherited_from: inherited_from.map(|c| ClassKey::new(c).unwrap()),
        }
    }

    fn function_of(cls: &str) -> Caller {
        Caller::Function {
            cls: ClassKey::new(cls).unwrap(),
        }
    }

    #[test]
    fn modifiers_belong_to_the_class_that_declared_the_binding() {
        let base = ClassKey::new("p1.base").unwrap();
        let derived = ClassKey::new("p2.derived").unwrap();
        let internal = binding(Access::Internal, None);
        // Declared here: the package's functions reach it, others do not.
        assert!(check_access(&base, &internal, &function_of("p1.other")).is_ok());
        assert!(check_access(&base, &internal, &function_of("p2.x")).is_err());
        assert!(check_access(&base, &internal, &Caller::External).is_err());
        // Inherited by a class of another package: still p1's, so p2's own
        // functions do not reach it through the derived class...
        let inherited = binding(Access::Internal, Some("p1.base"));
        assert!(check_access(&derived, &inherited, &function_of("p2.derived")).is_err());
        // ...while p1's code (say, a macro of the base inherited with it)
        // still does.
        assert!(check_access(&derived, &inherited, &function_of("p1.base")).is_ok());
        // PRIVATE: the declaring class only, not its heirs.
        let private = binding(Access::Private, Some("p1.base"));
        assert!(check_access(&derived, &private, &function_of("p1.base")).is_ok());
        assert!(check_access(&derived, &private, &function_of("p2.derived")).is_err());
        let own = binding(Access::Private, None);
        assert!(check_access(&derived, &own, &function_of("p2.derived")).is_ok());
        let public = binding(Access::Public, Some("p1.base"));
        assert!(check_access(&derived, &public, &Caller::External).is_ok());
    }
}
