//! Planning a macro: step names, targets, dependencies and templates,
//! checked all at once.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{BodyTemplate, Problem, Source, Template, check_name, field};
use crate::model::{MacroSpec, MacroStep};
use crate::suggest::suggest;

/// The object a step calls its function on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `@` (or no `target`): the macro's main object.
    Main,
    /// An earlier step's output object, by the step's index.
    Step(usize),
    /// `@.REF`: the object the main object refers to as `REF`.
    Ref(String),
}

/// One step of a macro, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct StepPlan {
    /// Its `as`, or `_INDEX` when it has none.
    pub name: String,
    /// The binding called on the target, as written.
    pub function: String,
    pub target: Target,
    pub args: BTreeMap<String, Template>,
    pub body: Option<BodyTemplate>,
    /// Steps this one needs, sorted, unique: its target step and every step
    /// its substitutions name. All come before it.
    pub deps: Vec<usize>,
}

/// A macro's steps in the order written (each needs only earlier ones),
/// the step whose object is the macro's output, and the template of the
/// macro's answer body.
#[derive(Debug, Clone, PartialEq)]
pub struct Dag {
    pub steps: Vec<StepPlan>,
    /// The `output` step.
    pub output: Option<usize>,
    /// The macro's `bodyTemplate`; it may use any step and `@`.
    pub body: Option<BodyTemplate>,
}

/// A reference from a step to a step by name, where it is written.
struct Ref {
    from: usize,
    to: String,
    path: String,
    /// How to describe the reference in a message: `the target` or the
    /// substitution as written.
    what: String,
}

/// Most steps in one macro: the checks and every run scale with it.
pub const MAX_STEPS: usize = 256;

impl Dag {
    /// Checks `spec` and plans it, reporting every problem at once (paths
    /// relative to the macro: `steps[1].target`, `steps[0].args.x`,
    /// `output`, ...).
    pub fn build(spec: &MacroSpec) -> Result<Dag, Vec<Problem>> {
        let mut b = Builder::default();
        if spec.steps.is_empty() {
            b.problem("steps", "a macro needs at least one step");
        }
        if spec.steps.len() > MAX_STEPS {
            b.problem(
                "steps",
                format!(
                    "a macro has {} steps; at most {MAX_STEPS} are accepted (split it into nested macros)",
                    spec.steps.len()
                ),
            );
            return Err(b.problems);
        }
        b.names(&spec.steps);
        let mut steps: Vec<StepPlan> = spec
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| b.step(i, step))
            .collect();
        let edges = b.edges(&steps);
        b.order(&steps, &edges);
        let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); steps.len()];
        for e in edges.iter().filter(|e| e.to < e.from) {
            deps[e.from].insert(e.to);
        }
        for (step, deps) in steps.iter_mut().zip(deps) {
            step.deps = deps.into_iter().collect();
        }
        let output = spec.output.as_deref().and_then(|name| {
            let found = b.names.get(name).copied();
            if found.is_none() {
                let message = format!("`output` names no step: {}", b.unknown(name));
                b.problem("output", message);
            }
            found
        });
        let body = spec.body_template.as_ref().and_then(|v| {
            let body = b.body("bodyTemplate", v)?;
            for (path, sub) in body.located() {
                if let Source::Step(name) = &sub.source
                    && !b.names.contains_key(name)
                {
                    let message = format!("`{}` refers to {}", sub.text, b.unknown(name));
                    b.problem(format!("bodyTemplate{path}"), message);
                }
            }
            Some(body)
        });
        if b.problems.is_empty() {
            Ok(Dag {
                steps,
                output,
                body,
            })
        } else {
            Err(b.problems)
        }
    }

    /// The index of the step named `name`.
    pub fn step(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }
}

#[derive(Default)]
struct Builder {
    /// Step names (valid or not, so references to them resolve) → index of
    /// the first step with it.
    names: BTreeMap<String, usize>,
    refs: Vec<Ref>,
    problems: Vec<Problem>,
    seen: BTreeSet<(String, String)>,
}

/// A resolved reference: step `from` needs step `to`.
struct Edge {
    from: usize,
    to: usize,
    /// Index into `Builder::refs`.
    r: usize,
}

impl Builder {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let p = Problem::new(path, message);
        if self.seen.insert((p.path.clone(), p.message.clone())) {
            self.problems.push(p);
        }
    }

    fn names(&mut self, steps: &[MacroStep]) {
        for (i, step) in steps.iter().enumerate() {
            let path = format!("steps[{i}].as");
            let name = step_name(i, step);
            if let Some(raw) = &step.as_name {
                if let Err(e) = check_name("step name", raw) {
                    self.problem(path, e);
                } else if let Some(first) = self.names.get(raw) {
                    let message =
                        format!("duplicate step name `{raw}` (first used by steps[{first}])");
                    self.problem(path, message);
                    continue;
                }
            }
            self.names.entry(name).or_insert(i);
        }
    }

    /// "step `x`, which does not exist; did you mean `y`?"
    fn unknown(&self, name: &str) -> String {
        let hint = suggest(name, self.names.keys().map(String::as_str))
            .map_or(String::new(), |c| format!("; did you mean `{c}`?"));
        format!("step `{name}`, which does not exist{hint}")
    }

    fn step(&mut self, i: usize, step: &MacroStep) -> StepPlan {
        let at = format!("steps[{i}]");
        if step.function.is_empty() {
            self.problem(
                format!("{at}.function"),
                "the step names no function: give the binding to call on its target",
            );
        } else if let Err(e) = crate::refs::check_plain_name("binding", &step.function) {
            self.problem(format!("{at}.function"), e);
        }
        let target = match step.target.as_deref() {
            None | Some("@" | "$") => Target::Main,
            Some(t) => match t.strip_prefix("@.") {
                Some(r) => {
                    if let Err(e) = check_name("reference name", r) {
                        self.problem(format!("{at}.target"), e);
                    }
                    Target::Ref(r.to_owned())
                }
                None => {
                    self.refs.push(Ref {
                        from: i,
                        to: t.to_owned(),
                        path: format!("{at}.target"),
                        what: "the target".into(),
                    });
                    Target::Step(self.names.get(t).copied().unwrap_or(i))
                }
            },
        };
        let mut args = BTreeMap::new();
        for (key, raw) in &step.args {
            let path = field(&format!("{at}.args"), key);
            match Template::parse(raw) {
                Ok(t) => {
                    self.substitutions(i, &path, t.substitutions());
                    args.insert(key.clone(), t);
                }
                Err(e) => self.problem(path, e),
            }
        }
        let body = step.body_template.as_ref().and_then(|v| {
            let path = format!("{at}.bodyTemplate");
            let body = self.body(&path, v)?;
            for (rel, sub) in body.located() {
                self.substitutions(i, &format!("{path}{rel}"), [sub].into_iter());
            }
            Some(body)
        });
        StepPlan {
            name: step_name(i, step),
            function: step.function.clone(),
            target,
            args,
            body,
            deps: Vec::new(),
        }
    }

    fn substitutions<'s>(
        &mut self,
        from: usize,
        path: &str,
        subs: impl Iterator<Item = &'s super::Substitution>,
    ) {
        for sub in subs {
            if let Source::Step(name) = &sub.source {
                self.refs.push(Ref {
                    from,
                    to: name.clone(),
                    path: path.to_owned(),
                    what: format!("`{}`", sub.text),
                });
            }
        }
    }

    fn body(&mut self, path: &str, v: &serde_json::Value) -> Option<BodyTemplate> {
        match BodyTemplate::parse(v) {
            Ok(body) => Some(body),
            Err(problems) => {
                for p in problems {
                    self.problem(format!("{path}{}", p.path), p.message);
                }
                None
            }
        }
    }

    /// Resolves the references between steps; unknown names are reported.
    fn edges(&mut self, steps: &[StepPlan]) -> Vec<Edge> {
        let mut edges = Vec::new();
        let mut unknown = Vec::new();
        for (r, reference) in self.refs.iter().enumerate() {
            match self.names.get(&reference.to) {
                Some(&to) if to < steps.len() => edges.push(Edge {
                    from: reference.from,
                    to,
                    r,
                }),
                _ => unknown.push(r),
            }
        }
        for r in unknown {
            let reference = &self.refs[r];
            let message = format!(
                "{} refers to {}",
                reference.what,
                self.unknown(&reference.to)
            );
            let path = reference.path.clone();
            self.problem(path, message);
        }
        edges
    }

    /// Reports cycles (once each, at the first step in them) and references
    /// to later steps that are in no cycle.
    fn order(&mut self, steps: &[StepPlan], edges: &[Edge]) {
        // (step needed, reference) by the step that needs it.
        let mut adjacent: Vec<Vec<(usize, usize)>> = vec![Vec::new(); steps.len()];
        for e in edges {
            adjacent[e.from].push((e.to, e.r));
        }
        let component = components(&adjacent);
        let mut cyclic: BTreeSet<usize> = BTreeSet::new();
        for e in edges {
            if component[e.from] == component[e.to] {
                cyclic.insert(component[e.from]);
            }
        }
        for e in edges {
            if e.to > e.from && component[e.from] != component[e.to] {
                let reference = &self.refs[e.r];
                let message = format!(
                    "{} refers to step `{}`, which comes later; a step can only use earlier steps",
                    reference.what, reference.to
                );
                let path = reference.path.clone();
                self.problem(path, message);
            }
        }
        // The first step of each cycle, in step order.
        let mut firsts: BTreeMap<usize, usize> = BTreeMap::new();
        for (i, c) in component.iter().enumerate() {
            if cyclic.contains(c) {
                firsts.entry(*c).or_insert(i);
            }
        }
        let firsts: BTreeSet<usize> = firsts.into_values().collect();
        for first in firsts {
            let cycle = cycle_through(first, &adjacent, &component);
            let mut names: Vec<&str> = cycle.iter().map(|&(s, _)| steps[s].name.as_str()).collect();
            names.push(steps[first].name.as_str());
            let path = cycle
                .first()
                .and_then(|&(_, r)| self.refs.get(r))
                .map_or_else(|| format!("steps[{first}]"), |r| r.path.clone());
            self.problem(path, format!("cycle: {}", names.join(" -> ")));
        }
    }
}

fn step_name(i: usize, step: &MacroStep) -> String {
    step.as_name.clone().unwrap_or_else(|| format!("_{i}"))
}

/// Strongly connected components (Tarjan's algorithm, iteratively): the
/// component of each node.
fn components(adjacent: &[Vec<(usize, usize)>]) -> Vec<usize> {
    const UNSEEN: usize = usize::MAX;
    let n = adjacent.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut component = vec![UNSEEN; n];
    let mut stack = Vec::new();
    let (mut next_index, mut next_component) = (0, 0);
    for start in 0..n {
        if index[start] != UNSEEN {
            continue;
        }
        // (node, next edge to follow)
        let mut calls: Vec<(usize, usize)> = vec![(start, 0)];
        index[start] = next_index;
        low[start] = next_index;
        next_index += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(&mut (v, ref mut edge)) = calls.last_mut() {
            if let Some(&(w, _)) = adjacent[v].get(*edge) {
                *edge += 1;
                if index[w] == UNSEEN {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component[w] = next_component;
                    if w == v {
                        break;
                    }
                }
                next_component += 1;
            }
        }
    }
    component
}

/// A shortest cycle from `first` back to itself inside its component, as
/// (step, reference index of the edge leaving it).
fn cycle_through(
    first: usize,
    adjacent: &[Vec<(usize, usize)>],
    component: &[usize],
) -> Vec<(usize, usize)> {
    let c = component[first];
    // Breadth-first search; `came[w]` = (v, reference) of the edge v -> w.
    let mut came: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    let mut queue = VecDeque::from([first]);
    let mut closing = None;
    'search: while let Some(v) = queue.pop_front() {
        for &(w, r) in &adjacent[v] {
            if component[w] != c {
                continue;
            }
            if w == first {
                closing = Some((v, r));
                break 'search;
            }
            if let Entry::Vacant(slot) = came.entry(w) {
                slot.insert((v, r));
                queue.push_back(w);
            }
        }
    }
    let Some((mut v, r)) = closing else {
        return Vec::new();
    };
    let mut cycle = vec![(v, r)];
    while v != first {
        let Some(&(prev, r)) = came.get(&v) else {
            break;
        };
        cycle.push((prev, r));
        v = prev;
    }
    cycle.reverse();
    cycle
}
