//! Macros against the classes that bind them: a step whose target class is
//! known statically must call a binding that class has, and one the macro
//! may reach (G7).
//!
//! A step's target class is known when it is the class itself (`@`), the
//! class of one of its references (`@.REF`), or, for an earlier step's
//! object, that step's binding's output class (or, with none, the class
//! that step was called on). The macro acts as the class that declared the
//! macro binding (the caller); a called binding belongs to the class that
//! declared it (the owner). INTERNAL bindings are reachable from the
//! owner's package, PRIVATE ones from the owner class only.
//!
//! Every class that has a macro binding is checked, inherited ones
//! included: a derived class may override the bindings the steps call.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use oprc_core::{ClassKey, FunctionKey};

use super::Resolver;
use crate::dataflow::{Dag, Target};
use crate::model::{Access, FunctionType};
use crate::resolved::{ResolvedBinding, ResolvedClass, ResolvedFunction};
use crate::suggest::suggest;
use crate::validate::binding_name;

/// One macro as bound by one class.
struct Bound<'c> {
    class: &'c ResolvedClass,
    binding: &'c ResolvedBinding,
    function: &'c ResolvedFunction,
    /// The class that declared the binding: the macro acts as it.
    caller: &'c ClassKey,
}

/// A problem with step `step` of a macro: the field it is about
/// (`function` or `target`) and the message.
struct StepProblem {
    step: usize,
    field: &'static str,
    message: String,
}

type Classes = BTreeMap<ClassKey, Arc<ResolvedClass>>;

impl Resolver<'_> {
    /// Checks every macro binding of every class.
    pub(super) fn check_macros(
        &mut self,
        classes: &Classes,
        functions: &BTreeMap<FunctionKey, Arc<ResolvedFunction>>,
    ) {
        let mut reported = BTreeSet::new();
        for class in classes.values() {
            for binding in class.bindings.values() {
                if binding.kind != FunctionType::Macro {
                    continue;
                }
                let Some(function) = functions.get(&binding.function) else {
                    continue;
                };
                let Some(dag) = function.dataflow() else {
                    continue;
                };
                let bound = Bound {
                    class,
                    binding,
                    function,
                    caller: binding.inherited_from.as_ref().unwrap_or(&class.key),
                };
                for problem in self.step_problems(&bound, dag, classes) {
                    self.report_step(&bound, problem, &mut reported);
                }
            }
        }
    }

    /// Whether members of `class` may be missing because something did not
    /// resolve (reported already).
    fn is_incomplete(&self, class: &ResolvedClass) -> bool {
        self.incomplete.contains(&class.key)
            || class.ancestors.iter().any(|a| self.incomplete.contains(a))
    }

    fn step_problems(&self, b: &Bound<'_>, dag: &Dag, classes: &Classes) -> Vec<StepProblem> {
        let mut out = Vec::new();
        // The class of each step's object, when known.
        let mut objects: Vec<Option<&ResolvedClass>> = Vec::with_capacity(dag.steps.len());
        for (k, step) in dag.steps.iter().enumerate() {
            if b.binding.no_main && matches!(step.target, Target::Main | Target::Ref(_)) {
                // The first step always targets `@` or `@.REF`.
                out.push(StepProblem {
                    step: k,
                    field: "target",
                    message: format!(
                        "macro `{}` is bound on `{}` as a class-level call (noMain), so step \
                         `{}` has no main object to run on; bind the macro without noMain",
                        b.binding.name, b.class.key, step.name
                    ),
                });
            }
            let target = match &step.target {
                Target::Main => Some(b.class),
                Target::Ref(r) => match b.class.refs.get(r) {
                    Some(spec) => classes.get(&spec.cls).map(Arc::as_ref),
                    None => {
                        if !self.is_incomplete(b.class) {
                            let hint = suggest(r, b.class.refs.keys().map(String::as_str))
                                .map_or(String::new(), |c| format!("; did you mean `@.{c}`?"));
                            out.push(StepProblem {
                                step: k,
                                field: "target",
                                message: format!(
                                    "step `{}` targets `@.{r}`, but class `{}` has no reference `{r}`{hint}",
                                    step.name, b.class.key
                                ),
                            });
                        }
                        None
                    }
                },
                Target::Step(j) => objects.get(*j).copied().flatten(),
            };
            let Some(t) = target.filter(|t| !self.is_incomplete(t)) else {
                objects.push(None);
                continue;
            };
            let Some(called) = t.bindings.get(&step.function) else {
                let hint = suggest(&step.function, t.bindings.keys().map(String::as_str))
                    .map_or(String::new(), |c| format!("; did you mean `{c}`?"));
                out.push(StepProblem {
                    step: k,
                    field: "function",
                    message: format!(
                        "step `{}`: class `{}` has no binding `{}`{hint}",
                        step.name, t.key, step.function
                    ),
                });
                objects.push(None);
                continue;
            };
            if called.no_main {
                out.push(StepProblem {
                    step: k,
                    field: "function",
                    message: format!(
                        "step `{}` calls `{}.{}`, a class-level function (noMain, like `new`); \
                         a step runs on an object",
                        step.name, t.key, called.name
                    ),
                });
            }
            if let Some(why) = unreachable(b.caller, t, called) {
                out.push(StepProblem {
                    step: k,
                    field: "function",
                    message: format!(
                        "step `{}` calls `{}.{}`, which is {why}; macro `{}` of `{}` cannot call it",
                        step.name, t.key, called.name, b.binding.name, b.caller
                    ),
                });
            }
            objects.push(match &called.output_cls {
                Some(out) => classes.get(out).map(Arc::as_ref),
                None => Some(t),
            });
        }
        out
    }

    /// Reports a step problem where the package being applied can fix it:
    /// at the step, in the macro's package; else at the macro binding, in
    /// the package of the class that declared it; else at a class that
    /// inherits the binding. With none of them being applied (or nothing
    /// applied), in the package of the class that declared the binding (at
    /// the step if the macro is its own): the change being applied breaks
    /// that package and is refused as such, and a partial load leaves out
    /// that package rather than the macro's, which others may use.
    fn report_step(
        &mut self,
        b: &Bound<'_>,
        p: StepProblem,
        reported: &mut BTreeSet<(String, String, String)>,
    ) {
        let macro_key = &b.function.key;
        let mut at: Vec<(&str, String, String)> = Vec::new();
        if let Some(&(pkg, i)) = self.functions.get(macro_key.as_str()) {
            let path = format!("functions[{i}].macro.steps[{}].{}", p.step, p.field);
            at.push((pkg, path, p.message.clone()));
        }
        if let Some(&(pkg, ci)) = self.classes.get(b.caller.as_str())
            && let Some(bj) = self.doc(pkg).and_then(|doc| {
                let class = doc.package().classes.get(ci)?;
                class
                    .functions
                    .iter()
                    .position(|x| binding_name(x) == b.binding.name)
            })
        {
            let path = format!("classes[{ci}].functions[{bj}]");
            at.push((pkg, path, format!("macro `{macro_key}`: {}", p.message)));
        }
        if &b.class.key != b.caller
            && let Some(&(pkg, ci)) = self.classes.get(b.class.key.as_str())
        {
            let message = format!(
                "inherited macro `{}` (`{macro_key}`): {}",
                b.binding.name, p.message
            );
            at.push((pkg, format!("classes[{ci}]"), message));
        }
        let focus = self.focus;
        let chosen = at
            .iter()
            .find(|(pkg, ..)| Some(*pkg) == focus)
            .or_else(|| at.iter().find(|(pkg, ..)| *pkg == b.caller.package()))
            .or(at.first());
        if let Some((pkg, path, message)) = chosen
            && reported.insert(((*pkg).to_owned(), path.clone(), message.clone()))
        {
            let (pkg, path, message) = ((*pkg).to_owned(), path.clone(), message.clone());
            self.error(&pkg, &path, message);
        }
    }
}

/// Why `caller` may not call `called` of class `t`, if it may not.
fn unreachable(caller: &ClassKey, t: &ResolvedClass, called: &ResolvedBinding) -> Option<String> {
    let owner = called.inherited_from.as_ref().unwrap_or(&t.key);
    match called.access {
        Access::Public => None,
        Access::Internal if caller.package() == owner.package() => None,
        Access::Internal => Some(format!("INTERNAL to package `{}`", owner.package())),
        Access::Private if caller == owner => None,
        Access::Private => Some(format!("PRIVATE to class `{owner}`")),
    }
}
