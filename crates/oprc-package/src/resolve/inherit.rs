//! Inheritance: the order classes resolve in, cycles, and merging.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use oprc_core::ClassKey;

use super::{BASE_CLASS, NEW, Own, Resolver, SELF_OUTPUT};
use crate::resolved::ResolvedClass;

impl Resolver<'_> {
    /// Classes ordered parents first; classes in (or below) an inheritance
    /// cycle are left out, and each cycle is reported once per package in it.
    pub(super) fn inheritance_order(&mut self, own: &BTreeMap<ClassKey, Own>) -> Vec<ClassKey> {
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            InStack,
            Done,
        }
        let mut state: BTreeMap<&ClassKey, State> = BTreeMap::new();
        // Classes in a cycle or inheriting from one: not merged.
        let mut broken: BTreeSet<&ClassKey> = BTreeSet::new();
        let mut order = Vec::new();
        let mut cycles: BTreeSet<Vec<ClassKey>> = BTreeSet::new();
        // `builtin.base` first: every class inherits it implicitly.
        let (base, rest): (Vec<&ClassKey>, Vec<&ClassKey>) =
            own.keys().partition(|k| k.as_str() == BASE_CLASS);
        for start in base.into_iter().chain(rest) {
            if state.contains_key(start) {
                continue;
            }
            // Iterative depth-first search: (class, next parent to visit).
            let mut stack: Vec<(&ClassKey, usize)> = vec![(start, 0)];
            state.insert(start, State::InStack);
            while let Some((key, next)) = stack.last().copied() {
                let parents = own.get(key).map_or(&[][..], |o| o.parents.as_slice());
                if let Some((parent, _)) = parents.get(next) {
                    if let Some(top) = stack.last_mut() {
                        top.1 += 1;
                    }
                    match state.get(parent) {
                        None if own.contains_key(parent) => {
                            state.insert(parent, State::InStack);
                            stack.push((parent, 0));
                        }
                        Some(State::InStack) => {
                            let from = stack.iter().position(|(k, _)| *k == parent).unwrap_or(0);
                            let cycle: Vec<ClassKey> =
                                stack[from..].iter().map(|(k, _)| (*k).clone()).collect();
                            cycles.insert(canonical(cycle));
                            broken.insert(key);
                        }
                        Some(State::Done) if broken.contains(parent) => {
                            broken.insert(key);
                        }
                        _ => {}
                    }
                    continue;
                }
                stack.pop();
                state.insert(key, State::Done);
                if broken.contains(key) {
                    if let Some((below, _)) = stack.last() {
                        broken.insert(below);
                    }
                } else {
                    order.push(key.clone());
                }
            }
        }
        for cycle in cycles {
            self.report_cycle(own, &cycle);
        }
        order
    }

    fn report_cycle(&mut self, own: &BTreeMap<ClassKey, Own>, cycle: &[ClassKey]) {
        let mut text: Vec<&str> = cycle.iter().map(ClassKey::as_str).collect();
        text.push(cycle[0].as_str());
        let message = format!("inheritance cycle: {}", text.join(" -> "));
        let mut reported = BTreeSet::new();
        for (n, key) in cycle.iter().enumerate() {
            let Some(class) = own.get(key) else { continue };
            if !reported.insert(class.pkg.clone()) {
                continue;
            }
            let next = &cycle[(n + 1) % cycle.len()];
            let entry = class
                .parents
                .iter()
                .find(|(p, _)| p == next)
                .map_or(0, |(_, j)| *j);
            let path = format!("classes[{}].parents[{entry}]", class.index);
            self.error(&class.pkg.clone(), &path, message.clone());
        }
    }
}

/// The cycle rotated to start at its smallest key, so each is reported once.
fn canonical(mut cycle: Vec<ClassKey>) -> Vec<ClassKey> {
    if let Some(min) = cycle
        .iter()
        .enumerate()
        .min_by_key(|(_, k)| *k)
        .map(|(i, _)| i)
    {
        cycle.rotate_left(min);
    }
    cycle
}

/// Merges inheritance in `order` (parents first): `builtin.base`, then the
/// parents in the order given (a later one overrides an earlier one by
/// name), then the class's own members.
pub(super) fn merge(
    own: &BTreeMap<ClassKey, Own>,
    order: &[ClassKey],
) -> BTreeMap<ClassKey, Arc<ResolvedClass>> {
    let mut done: BTreeMap<ClassKey, Arc<ResolvedClass>> = BTreeMap::new();
    for key in order {
        let Some(o) = own.get(key) else { continue };
        let mut layers: Vec<&ClassKey> = Vec::new();
        let implicit_base =
            key.as_str() != BASE_CLASS && !o.parents.iter().any(|(p, _)| p.as_str() == BASE_CLASS);
        let base = ClassKey::new(BASE_CLASS).ok();
        if implicit_base && let Some(base) = &base {
            layers.push(base);
        }
        layers.extend(o.parents.iter().map(|(p, _)| p));
        let mut class = ResolvedClass {
            key: key.clone(),
            package: o.pkg.clone(),
            name: o.class.name.clone(),
            description: o.class.description.clone(),
            disabled: o.class.disabled,
            parents: o.parents.iter().map(|(p, _)| p.clone()).collect(),
            ancestors: Vec::new(),
            bindings: BTreeMap::new(),
            keys: BTreeMap::new(),
            refs: BTreeMap::new(),
            config: o.class.config.clone(),
        };
        for layer in layers {
            let Some(parent) = done.get(layer) else {
                continue;
            };
            for ancestor in parent.ancestors.iter().chain([&parent.key]) {
                if !class.ancestors.contains(ancestor) {
                    class.ancestors.push(ancestor.clone());
                }
            }
            for (name, b) in &parent.bindings {
                let mut b = b.clone();
                b.inherited_from.get_or_insert_with(|| layer.clone());
                class.bindings.insert(name.clone(), b);
            }
            for (name, k) in &parent.keys {
                let mut k = k.clone();
                k.inherited_from.get_or_insert_with(|| layer.clone());
                class.keys.insert(name.clone(), k);
            }
            for (name, r) in &parent.refs {
                let mut r = r.clone();
                r.inherited_from.get_or_insert_with(|| layer.clone());
                class.refs.insert(name.clone(), r);
            }
        }
        class.bindings.extend(o.bindings.clone());
        class.keys.extend(o.keys.clone());
        class.refs.extend(o.refs.clone());
        for b in class.bindings.values_mut() {
            if SELF_OUTPUT.contains(&b.function.as_str()) {
                b.output_cls = Some(key.clone());
            }
            if b.function.as_str() == NEW {
                b.no_main = true;
            }
        }
        done.insert(key.clone(), Arc::new(class));
    }
    done
}
