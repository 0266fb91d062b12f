//! The pure side of a macro call: the ids of its steps and their output
//! objects (derived from the macro's, so a re-run finds them again), the
//! classes its steps run on, the data substitutions read, and the answer.

use std::collections::{BTreeMap, HashMap};

use oprc_core::{
    InvocationError, InvocationId, InvocationRequest, ObjectId, ObjectRecord, StepReport,
};
use oprc_package::ResolvedClass;
use oprc_package::dataflow::{Dag, Kind, Source, Sources, Target};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Idempotency keys the node makes itself start with this; clients' keys
/// cannot.
pub const RESERVED_KEY_PREFIX: &str = "oprc.";

/// Prefix of the idempotency keys of macro steps.
pub(crate) const STEP_KEY_PREFIX: &str = "oprc.step/";

/// The key a function's call is kept under: the key it sent, in the
/// namespace of its task (so nobody else can take or spoil it).
pub fn call_key(task: &InvocationId, key: &str) -> String {
    format!("oprc.call/{task}/{key}")
}

/// Longest id; see `oprc_core` ids.
const MAX_ID: usize = 200;

/// What a macro call's step ids derive from: its `Idempotency-Key` when it
/// has one (a re-run with the key is the same macro, whatever its new
/// invocation id), else its invocation id (an async replay).
pub(crate) fn base_of(req: &InvocationRequest) -> String {
    match &req.idempotency_key {
        Some(key) => format!("k{}", hex(&Sha256::digest(key.as_bytes())[..16])),
        None => req.inv_id.to_string(),
    }
}

/// The invocation id of step `name` of the macro with `base`: also the id
/// of its output object. Readable when it fits (`<base>.<name>`), hashed
/// when nesting makes it too long.
pub(crate) fn step_id(base: &str, name: &str) -> InvocationId {
    let readable = format!("{base}.{name}");
    let id = if readable.len() <= MAX_ID {
        readable
    } else {
        format!("h{}", hex(&Sha256::digest(readable.as_bytes())[..20]))
    };
    InvocationId::new(id).expect("step ids are made of id characters")
}

/// The idempotency key a step runs under.
pub(crate) fn step_key(step: &InvocationId) -> String {
    format!("{STEP_KEY_PREFIX}{step}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What is known of a step before it runs: the class of its target and
/// the class of its output object (if its binding has one).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepClass {
    pub target: oprc_core::ClassKey,
    pub output: Option<oprc_core::ClassKey>,
}

impl StepClass {
    /// The class of the object a later step targeting this one runs on.
    pub fn object(&self) -> &oprc_core::ClassKey {
        self.output.as_ref().unwrap_or(&self.target)
    }
}

/// The classes of every step, as far as the macro's class and the catalog
/// tell (`class_of` looks a class up). `None` where a target is unknown: a
/// reference the class does not declare, or a step after an unknown one.
pub(crate) fn step_classes(
    dag: &Dag,
    main: &ResolvedClass,
    class_of: impl Fn(&oprc_core::ClassKey) -> Option<std::sync::Arc<ResolvedClass>>,
) -> Vec<Option<StepClass>> {
    let mut out: Vec<Option<StepClass>> = Vec::with_capacity(dag.steps.len());
    for step in &dag.steps {
        let target = match &step.target {
            Target::Main => Some(main.key.clone()),
            Target::Ref(r) => main.refs.get(r).map(|spec| spec.cls.clone()),
            Target::Step(j) => out
                .get(*j)
                .and_then(Option::as_ref)
                .map(|c| c.object().clone()),
        };
        let class = target.map(|target| {
            let output = if target == main.key {
                main.binding(&step.function)
                    .and_then(|b| b.output_cls.clone())
            } else {
                class_of(&target)
                    .and_then(|c| c.binding(&step.function).and_then(|b| b.output_cls.clone()))
            };
            StepClass { target, output }
        });
        out.push(class);
    }
    out
}

/// The data substitutions read: the macro's own (`@`) and its steps'. Only
/// what some substitution of the macro reads is kept (copied): a step's
/// output object nobody reads stays where it is.
#[derive(Debug, Default)]
pub(crate) struct Data {
    main_args: Value,
    main_body: Option<Value>,
    main_output: Option<Value>,
    names: HashMap<String, usize>,
    steps: Vec<StepData>,
    /// What the substitutions read of each step, by [`kind_index`].
    step_reads: Vec<[bool; 3]>,
}

/// `args`, `body`, `output` as indices.
fn kind_index(kind: Kind) -> usize {
    match kind {
        Kind::Args => 0,
        Kind::Body => 1,
        Kind::Output => 2,
    }
}

/// What one step left: the args it was called with, the body its function
/// answered, its object after it ran.
#[derive(Debug, Default, Clone)]
struct StepData {
    args: Option<Value>,
    body: Option<Value>,
    output: Option<Value>,
}

impl Data {
    /// `defaults`: the macro binding's `defaultArgs`, under the call's own.
    pub fn new(
        dag: &Dag,
        req: &InvocationRequest,
        defaults: &BTreeMap<String, String>,
        main: Option<&ObjectRecord>,
    ) -> Self {
        let names: HashMap<String, usize> = dag
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        let mut main_reads = [false; 3];
        let mut step_reads = vec![[false; 3]; dag.steps.len()];
        let subs = dag
            .steps
            .iter()
            .flat_map(|s| {
                let args = s.args.values().flat_map(|t| t.substitutions());
                let body = s.body.iter().flat_map(|b| b.substitutions());
                args.chain(body)
            })
            .chain(dag.body.iter().flat_map(|b| b.substitutions()));
        for sub in subs {
            let reads = match &sub.source {
                Source::Main => Some(&mut main_reads),
                Source::Step(name) => names.get(name).and_then(|&i| step_reads.get_mut(i)),
            };
            if let Some(reads) = reads {
                reads[kind_index(sub.kind)] = true;
            }
        }
        Self {
            main_args: if main_reads[0] {
                args_value(&crate::apply::merge_args(defaults, &req.args))
            } else {
                Value::Null
            },
            main_body: req.body.clone().filter(|_| main_reads[1]),
            main_output: main.filter(|_| main_reads[2]).map(record_value),
            names,
            steps: vec![StepData::default(); dag.steps.len()],
            step_reads,
        }
    }

    /// Keeps `kind` of step `step` (made by `value`) if a substitution
    /// reads it.
    pub fn keep(&mut self, step: usize, kind: Kind, value: impl FnOnce() -> Option<Value>) {
        let read = self
            .step_reads
            .get(step)
            .is_some_and(|r| r[kind_index(kind)]);
        if let (true, Some(data)) = (read, self.steps.get_mut(step)) {
            let slot = match kind {
                Kind::Args => &mut data.args,
                Kind::Body => &mut data.body,
                Kind::Output => &mut data.output,
            };
            *slot = value();
        }
    }
}

impl Sources for Data {
    fn get(&self, source: &Source, kind: Kind) -> Option<&Value> {
        match source {
            Source::Main => match kind {
                Kind::Args => Some(&self.main_args),
                Kind::Body => self.main_body.as_ref(),
                Kind::Output => self.main_output.as_ref(),
            },
            Source::Step(name) => {
                let step = self.steps.get(*self.names.get(name)?)?;
                match kind {
                    Kind::Args => step.args.as_ref(),
                    Kind::Body => step.body.as_ref(),
                    Kind::Output => step.output.as_ref(),
                }
            }
        }
    }
}

/// Args as the JSON object substitutions read.
pub(crate) fn args_value(args: &BTreeMap<String, String>) -> Value {
    Value::Object(
        args.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// An object as substitutions read it: `{"_meta": {...}, "data": ...}`,
/// the shape the API shows.
pub(crate) fn record_value(record: &ObjectRecord) -> Value {
    serde_json::to_value(record).unwrap_or(Value::Null)
}

/// The output ids of a macro's steps, by step name.
pub(crate) fn macro_ids(steps: &[StepReport]) -> BTreeMap<String, ObjectId> {
    steps
        .iter()
        .filter_map(|s| Some((s.name.clone(), s.output.clone()?)))
        .collect()
}

/// Why a macro failed: its first failed step, named, with the step's
/// reason.
pub(crate) fn failure_of(steps: &[StepReport]) -> Option<InvocationError> {
    let step = steps
        .iter()
        .find(|s| s.status == oprc_core::InvocationStatus::Failed)?;
    let (code, message) = step
        .error
        .as_ref()
        .map_or(("unknown", "no reason given"), |e| {
            (e.code.as_str(), e.message.as_str())
        });
    let skipped = steps
        .iter()
        .filter(|s| s.status == oprc_core::InvocationStatus::DependencyFailed)
        .count();
    let mut text = format!("step `{}` failed ({code}): {message}", step.name);
    if skipped > 0 {
        text.push_str(&format!(
            "; {skipped} step{} depending on it did not run (DEPENDENCY_FAILED)",
            if skipped == 1 { "" } else { "s" }
        ));
    }
    Some(InvocationError {
        code: crate::codes::STEP_FAILED.to_owned(),
        message: text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_a_substitution_reads_is_kept() {
        let spec: oprc_package::model::MacroSpec = serde_json::from_value(serde_json::json!({
            "steps": [
                {"function": "f", "as": "a"},
                {"function": "g", "as": "b", "args": {"x": "${a|body|$.n}"}},
            ],
            "bodyTemplate": {"y": "${b|output|$.data}", "z": "${@|args|$.q}"},
        }))
        .unwrap();
        let dag = Dag::build(&spec).unwrap();
        let cls = oprc_core::ClassKey::new("p.c").unwrap();
        let mut req = InvocationRequest::new(cls.clone(), None, "m");
        req.args.insert("q".into(), "1".into());
        req.body = Some(serde_json::json!({"big": true}));
        let main = ObjectRecord::new(cls, ObjectId::new("o").unwrap(), serde_json::json!({}));
        let mut data = Data::new(&dag, &req, &BTreeMap::new(), Some(&main));
        // `@`: args are read, body and output are not.
        assert_eq!(
            data.get(&Source::Main, Kind::Args),
            Some(&serde_json::json!({"q": "1"}))
        );
        assert_eq!(data.get(&Source::Main, Kind::Body), None);
        assert_eq!(data.get(&Source::Main, Kind::Output), None);
        let v = || Some(serde_json::json!({"n": 1}));
        for kind in [Kind::Args, Kind::Body, Kind::Output] {
            data.keep(0, kind, v);
            data.keep(1, kind, v);
        }
        let a = Source::Step("a".into());
        let b = Source::Step("b".into());
        assert!(data.get(&a, Kind::Body).is_some());
        assert!(data.get(&a, Kind::Output).is_none() && data.get(&a, Kind::Args).is_none());
        assert!(data.get(&b, Kind::Output).is_some());
        assert!(data.get(&b, Kind::Body).is_none() && data.get(&b, Kind::Args).is_none());
    }

    #[test]
    fn step_ids_derive_from_the_key_or_the_invocation() {
        let cls = oprc_core::ClassKey::new("p.c").unwrap();
        let mut req = InvocationRequest::new(cls, None, "m");
        let by_id = base_of(&req);
        assert_eq!(by_id, req.inv_id.as_str());
        assert_eq!(step_id(&by_id, "s1").as_str(), format!("{}.s1", req.inv_id));
        req.idempotency_key = Some("order 42".into());
        let by_key = base_of(&req);
        req.inv_id = InvocationId::generate();
        assert_eq!(
            base_of(&req),
            by_key,
            "a re-run with the key has the same steps"
        );
        let other = InvocationRequest {
            idempotency_key: Some("order 43".into()),
            ..req
        };
        assert_ne!(base_of(&other), by_key);
        // Nested deeply, ids stay valid and distinct.
        let long = "x".repeat(190);
        let (a, b) = (step_id(&long, "a"), step_id(&long, "b"));
        assert!(a.as_str().len() <= MAX_ID && a != b);
        assert!(ObjectId::new(a.as_str()).is_ok());
    }
}
