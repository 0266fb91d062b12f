//! Templates: text with `${SRC|KIND|PATH}` substitutions in it, and JSON
//! values whose strings hold such text.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;
use serde_json_path::JsonPath;

use super::{Problem, field, is_step_name, parse_path, preview};
use crate::suggest::suggest;

/// Deepest nesting of arrays and objects in a [`BodyTemplate`].
pub const MAX_BODY_DEPTH: usize = 128;

/// Where the data of a substitution comes from: `@` (the macro call) or a
/// step, by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// `@`: the macro call itself.
    Main,
    /// A step, by its name (its `as`, or `_INDEX`).
    Step(String),
}

impl Source {
    /// The source as written: `@` or the step's name.
    pub fn name(&self) -> &str {
        match self {
            Source::Main => "@",
            Source::Step(name) => name,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which data of a source a substitution reads: `args`, `body` or
/// `output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `args`: the string arguments.
    Args,
    /// `body`: the request body (for `@`) or the answer's body (a step).
    Body,
    /// `output`: the output object.
    Output,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Args, Kind::Body, Kind::Output];

    /// The kind as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Args => "args",
            Kind::Body => "body",
            Kind::Output => "output",
        }
    }

    fn parse(text: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `${SRC|KIND|PATH}` in a template.
#[derive(Debug, Clone, PartialEq)]
pub struct Substitution {
    pub source: Source,
    pub kind: Kind,
    pub path: JsonPath,
    /// The substitution as written, e.g. `${s1|output|$.data.x}`.
    pub text: String,
}

impl Substitution {
    /// Parses `written` (`${...}`), whose inside is `inner`.
    fn parse(inner: &str, written: &str) -> Result<Substitution, String> {
        let shown = preview(written, 80);
        let err = |why: String| format!("`{shown}`: {why}");
        let mut parts = inner.splitn(3, '|');
        let (Some(src), Some(kind), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(err(
                "expected `${SOURCE|KIND|PATH}`, e.g. `${@|body|$.x}`".into()
            ));
        };
        let source = match src {
            "" => {
                return Err(err(
                    "the source is empty; expected `@` or a step name".into()
                ));
            }
            "@" => Source::Main,
            name if is_step_name(name) => Source::Step(name.to_owned()),
            other => {
                return Err(err(format!(
                    "invalid source `{}`; expected `@` or a step name",
                    preview(other, 40)
                )));
            }
        };
        let kind = match (kind, Kind::parse(kind)) {
            (_, Some(kind)) => kind,
            ("", None) => {
                return Err(err(
                    "the kind is empty; expected `args`, `body` or `output`".into(),
                ));
            }
            (other, None) => {
                let close = suggest(other, Kind::ALL.map(Kind::as_str));
                let hint = close.map_or(String::new(), |c| format!("; did you mean `{c}`?"));
                return Err(err(format!(
                    "unknown kind `{}`; expected `args`, `body` or `output`{hint}",
                    preview(other, 40)
                )));
            }
        };
        if path.is_empty() {
            return Err(err(
                "the path is empty; expected a JSONPath such as `$.x`".into()
            ));
        }
        let path = parse_path(path).map_err(err)?;
        Ok(Substitution {
            source,
            kind,
            path,
            text: written.to_owned(),
        })
    }

    /// The value the substitution stands for: the one node its path
    /// matches, or an array of the nodes when it matches several. What it
    /// copies is taken from `budget` (an error once it is spent).
    pub fn resolve(&self, sources: &dyn Sources, budget: &Budget) -> Result<Value, RenderError> {
        let data = sources.get(&self.source, self.kind).ok_or_else(|| {
            self.error(format!(
                "no such data: `{}` has no {}",
                self.source, self.kind
            ))
        })?;
        let nodes = self.path.query(data).all();
        for node in &nodes {
            budget.spend(node).map_err(|()| {
                self.error(format!(
                    "renders more than {} bytes of JSON; the limit is {} for one step's \
                     inputs (or the macro's answer)",
                    budget.limit, budget.limit
                ))
            })?;
        }
        match nodes.as_slice() {
            [] => Err(self.error("matched nothing".into())),
            [one] => Ok((*one).clone()),
            many => Ok(Value::Array(many.iter().map(|v| (*v).clone()).collect())),
        }
    }

    fn error(&self, reason: String) -> RenderError {
        RenderError {
            substitution: self.text.clone(),
            reason,
        }
    }
}

/// Most bytes (as compact JSON) one rendering (a step's args and body, or
/// the macro's answer) may copy out of its sources: a small request could
/// otherwise make the node copy its body many times (`$..*` over a deep
/// document, one substitution repeated).
pub const MAX_RENDER_BYTES: usize = 16 * 1024 * 1024;

/// What is left of a rendering's bytes ([`MAX_RENDER_BYTES`] by default).
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    left: std::cell::Cell<usize>,
}

impl Budget {
    pub fn new(bytes: usize) -> Self {
        Self {
            limit: bytes,
            left: std::cell::Cell::new(bytes),
        }
    }

    /// Takes the size of `v` (compact JSON), measured without copying it
    /// and without going past what is left.
    fn spend(&self, v: &Value) -> Result<(), ()> {
        struct Counter(usize);
        impl std::io::Write for Counter {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 = self
                    .0
                    .checked_sub(buf.len())
                    .ok_or_else(|| std::io::Error::other("over budget"))?;
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut left = Counter(self.left.get());
        serde_json::to_writer(&mut left, v).map_err(|_| ())?;
        self.left.set(left.0);
        Ok(())
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(MAX_RENDER_BYTES)
    }
}

/// Where the data of a substitution comes from, at run time: the
/// orchestrator's view of the call (`@`) and of the steps done so far.
pub trait Sources {
    /// The data of `kind` of `source`, or `None` when there is none (a step
    /// that made no output object, a call without a body, ...).
    fn get(&self, source: &Source, kind: Kind) -> Option<&Value>;
}

/// A fixed map of data, for tests and simple callers.
impl Sources for BTreeMap<(Source, Kind), Value> {
    fn get(&self, source: &Source, kind: Kind) -> Option<&Value> {
        BTreeMap::get(self, &(source.clone(), kind))
    }
}

/// A substitution that could not be rendered, and why. Displays as
/// ``` `${s1|output|$.data.x}`: matched nothing ```.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{substitution}`: {reason}")]
pub struct RenderError {
    /// The substitution as written.
    pub substitution: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Sub(Substitution),
}

/// A string with `${SRC|KIND|PATH}` substitutions in it. A `$` not followed
/// by `{` is text, and `$${` is a literal `${` (so `$${@|args|$.x}` renders
/// as the text `${@|args|$.x}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `s`; the error says what is wrong with which substitution
    /// (not closed, empty or unknown parts, a bad path).
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(at) = rest.find('$') {
            text.push_str(&rest[..at]);
            let from = &rest[at..];
            if let Some(after) = from.strip_prefix("$${") {
                text.push_str("${");
                rest = after;
            } else if from.starts_with("${") {
                let end = closing(from)?;
                let sub = Substitution::parse(&from[2..end], &from[..=end])?;
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(Part::Sub(sub));
                rest = &from[end + 1..];
            } else {
                text.push('$');
                rest = &from[1..];
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { parts })
    }

    /// The substitutions, in the order written.
    pub fn substitutions(&self) -> impl Iterator<Item = &Substitution> {
        self.parts.iter().filter_map(|p| match p {
            Part::Sub(s) => Some(s),
            Part::Text(_) => None,
        })
    }

    /// The text, when the template has no substitution (escapes undone).
    pub fn literal(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Sub(_) => return None,
            }
        }
        Some(out)
    }

    /// Renders to a string (for `args`, a string map): a substitution of a
    /// JSON string gives the string, of another JSON value its compact JSON
    /// text (`{"a":1}`, `[1,2]`, `true`, `null`); text around it is kept.
    pub fn render_string(&self, sources: &dyn Sources) -> Result<String, RenderError> {
        self.render_string_within(sources, &Budget::default())
    }

    /// [`Template::render_string`], taking what it copies from `budget`.
    pub fn render_string_within(
        &self,
        sources: &dyn Sources,
        budget: &Budget,
    ) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Sub(s) => match s.resolve(sources, budget)? {
                    Value::String(text) => out.push_str(&text),
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(out)
    }

    /// Renders to a JSON value: a substitution that is the whole string
    /// keeps its JSON type (`"${@|body|$.n}"` gives the number); otherwise
    /// a JSON string, spliced as in [`Template::render_string`].
    pub fn render_value(&self, sources: &dyn Sources) -> Result<Value, RenderError> {
        self.render_value_within(sources, &Budget::default())
    }

    /// [`Template::render_value`], taking what it copies from `budget`.
    pub fn render_value_within(
        &self,
        sources: &dyn Sources,
        budget: &Budget,
    ) -> Result<Value, RenderError> {
        match self.parts.as_slice() {
            [Part::Sub(s)] => s.resolve(sources, budget),
            _ => self
                .render_string_within(sources, budget)
                .map(Value::String),
        }
    }
}

/// The index of the `}` that closes the substitution `from` starts
/// (`from` starts with `${`); `}` inside quoted names of the path (after
/// the second `|`) does not count.
fn closing(from: &str) -> Result<usize, String> {
    let mut quote = None;
    let mut escaped = false;
    let mut pipes = 0;
    for (i, c) in from.char_indices().skip(2) {
        match (quote, c) {
            (Some(_), _) if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '|') => pipes += 1,
            (None, '\'' | '"') if pipes >= 2 => quote = Some(c),
            (None, '}') => return Ok(i),
            _ => {}
        }
    }
    let shown = preview(from, 40);
    Err(match quote {
        Some(q) => format!("`{shown}` is not closed: the quote {q} opened in it has no end"),
        None => format!("`{shown}` is not closed: a substitution ends with `}}`"),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// A value without substitutions.
    Literal(Value),
    Text(Template),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

/// A JSON value whose strings may hold substitutions (object keys are
/// literal), rendered into a JSON value: each string as
/// [`Template::render_value`], everything else as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyTemplate {
    root: Node,
}

impl BodyTemplate {
    /// Parses every string of `v`; problems are at paths relative to `v`
    /// (`""` for `v` itself, `.a[2]`, `["a.b"]`). Nesting deeper than
    /// [`MAX_BODY_DEPTH`] is a problem.
    pub fn parse(v: &Value) -> Result<BodyTemplate, Vec<Problem>> {
        let mut problems = Vec::new();
        let root = node(v, String::new(), 0, &mut problems);
        if problems.is_empty() {
            Ok(BodyTemplate { root })
        } else {
            Err(problems)
        }
    }

    /// The substitutions, in document order.
    pub fn substitutions(&self) -> impl Iterator<Item = &Substitution> {
        self.located().into_iter().map(|(_, s)| s)
    }

    /// The substitutions with the path of the string each one is in
    /// (relative, as in [`BodyTemplate::parse`]), in document order.
    pub fn located(&self) -> Vec<(String, &Substitution)> {
        let mut out = Vec::new();
        let mut stack = vec![(String::new(), &self.root)];
        while let Some((path, n)) = stack.pop() {
            match n {
                Node::Literal(_) => {}
                Node::Text(t) => out.extend(t.substitutions().map(|s| (path.clone(), s))),
                Node::Array(items) => stack.extend(
                    items
                        .iter()
                        .enumerate()
                        .rev()
                        .map(|(i, item)| (format!("{path}[{i}]"), item)),
                ),
                Node::Object(entries) => stack.extend(
                    entries
                        .iter()
                        .rev()
                        .map(|(k, item)| (field(&path, k), item)),
                ),
            }
        }
        out
    }

    /// Renders the template; the first substitution that cannot be
    /// rendered is the error.
    pub fn render(&self, sources: &dyn Sources) -> Result<Value, RenderError> {
        self.render_within(sources, &Budget::default())
    }

    /// [`BodyTemplate::render`], taking what it copies from `budget`.
    pub fn render_within(
        &self,
        sources: &dyn Sources,
        budget: &Budget,
    ) -> Result<Value, RenderError> {
        render(&self.root, sources, budget)
    }
}

fn node(v: &Value, path: String, depth: usize, problems: &mut Vec<Problem>) -> Node {
    if depth > MAX_BODY_DEPTH {
        problems.push(Problem::new(
            path,
            format!("the template nests more than {MAX_BODY_DEPTH} levels deep"),
        ));
        return Node::Literal(Value::Null);
    }
    match v {
        Value::String(s) => match Template::parse(s) {
            Ok(t) => match t.literal() {
                Some(text) => Node::Literal(Value::String(text)),
                None => Node::Text(t),
            },
            Err(e) => {
                problems.push(Problem::new(path, e));
                Node::Literal(Value::Null)
            }
        },
        Value::Array(items) => Node::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| node(item, format!("{path}[{i}]"), depth + 1, problems))
                .collect(),
        ),
        Value::Object(entries) => Node::Object(
            entries
                .iter()
                .map(|(k, item)| {
                    let child = node(item, field(&path, k), depth + 1, problems);
                    (k.clone(), child)
                })
                .collect(),
        ),
        other => Node::Literal(other.clone()),
    }
}

fn render(n: &Node, sources: &dyn Sources, budget: &Budget) -> Result<Value, RenderError> {
    Ok(match n {
        Node::Literal(v) => v.clone(),
        Node::Text(t) => t.render_value_within(sources, budget)?,
        Node::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render(item, sources, budget))
                .collect::<Result<_, _>>()?,
        ),
        Node::Object(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, item)| Ok((k.clone(), render(item, sources, budget)?)))
                .collect::<Result<_, RenderError>>()?,
        ),
    })
}
