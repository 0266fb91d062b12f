//! Structure-aware generated sources: trees of lists and mappings, deep and
//! wide, in block and flow style mixed, with anchors, aliases and tags,
//! written where a package takes any value (`override`). The parser refuses
//! exactly the trees that nest more than 64 deep once aliases are expanded,
//! with one diagnostic inside the source, and reads every other one as the
//! JSON it means.

use oprc_package::parse;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

use crate::garbage::is_inside;

const LIMIT: usize = 64;

/// Collections around `override.x`: the document, `classes`, the class,
/// `functions`, the binding and `override`.
const ABOVE_X: usize = 6;

#[derive(Debug, Clone)]
enum Scalar {
    Word(String),
    Int(u16),
    Bool(bool),
    Null,
    Quoted(String),
    /// `!!str 12`: the text `12`.
    TaggedInt(u16),
}

#[derive(Debug, Clone, Copy)]
struct Style {
    flow: bool,
    tag: Option<&'static str>,
}

#[derive(Debug, Clone)]
enum Node {
    Scalar(Scalar),
    Seq(Vec<Node>, Style),
    /// Keys are `k0`, `k1`, ...
    Map(Vec<Node>, Style),
    /// One of the anchors defined before, once the document is assembled.
    Alias(Index),
    /// An alias to `&a{n}`.
    AliasTo(usize),
}

/// `override: {defs: [&a0 ..., &a1 ...], x: ...}`; the anchors are the
/// `defs`, each may alias the ones before it and `x` any of them.
#[derive(Debug, Clone)]
struct Doc {
    defs: Vec<Node>,
    x: Node,
}

fn scalar() -> impl Strategy<Value = Node> {
    prop_oneof![
        // Never a word YAML reads as anything but text.
        "w[a-z0-9]{0,4}".prop_map(Scalar::Word),
        any::<u16>().prop_map(Scalar::Int),
        any::<bool>().prop_map(Scalar::Bool),
        Just(Scalar::Null),
        "[ -~é€\t\n]{0,8}".prop_map(Scalar::Quoted),
        any::<u16>().prop_map(Scalar::TaggedInt),
    ]
    .prop_map(Node::Scalar)
}

fn style(tags: &'static [&'static str]) -> impl Strategy<Value = Style> {
    (
        any::<bool>(),
        proptest::option::weighted(0.3, proptest::sample::select(tags)),
    )
        .prop_map(|(flow, tag)| Style { flow, tag })
}

fn seq_style() -> impl Strategy<Value = Style> {
    style(&["!t", "!!seq"])
}

fn map_style() -> impl Strategy<Value = Style> {
    style(&["!t", "!!map"])
}

/// Wide and bushy trees, a few levels deep.
fn tree() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![4 => scalar(), 1 => any::<Index>().prop_map(Node::Alias)];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            (vec(inner.clone(), 0..6), seq_style()).prop_map(|(n, s)| Node::Seq(n, s)),
            (vec(inner, 0..6), map_style()).prop_map(|(n, s)| Node::Map(n, s)),
        ]
    })
}

/// A chain of single-child collections around a small tree, around the
/// limit or far past it.
fn chain() -> impl Strategy<Value = Node> {
    let level = || (any::<bool>(), seq_style());
    let levels = prop_oneof![
        vec(level(), 0..20),
        vec(level(), 50..70),
        vec(level(), 100..300)
    ];
    (levels, tree()).prop_map(|(levels, leaf)| {
        // Flow collections hold only flow collections.
        let mut flow = false;
        let styles: Vec<(bool, Style)> = levels
            .into_iter()
            .map(|(is_map, mut style)| {
                flow |= style.flow;
                style.flow = flow;
                if is_map && style.tag == Some("!!seq") {
                    style.tag = Some("!!map");
                }
                (is_map, style)
            })
            .collect();
        styles
            .into_iter()
            .rev()
            .fold(leaf, |child, (is_map, style)| {
                if is_map {
                    Node::Map(vec![child], style)
                } else {
                    Node::Seq(vec![child], style)
                }
            })
    })
}

fn node() -> impl Strategy<Value = Node> {
    prop_oneof![3 => tree(), 1 => chain()]
}

fn doc() -> impl Strategy<Value = Doc> {
    (vec(node(), 0..4), node()).prop_map(|(defs, x)| {
        let defs: Vec<Node> = defs
            .into_iter()
            .enumerate()
            // An alias cannot carry an anchor of its own.
            .map(|(i, d)| match d {
                Node::Alias(_) => Node::Scalar(Scalar::Null),
                d => resolve(d, i, false),
            })
            .collect();
        let x = resolve(x, defs.len(), false);
        Doc { defs, x }
    })
}

/// Points aliases at one of the `anchors` defined before; flow collections
/// hold flow collections only.
fn resolve(node: Node, anchors: usize, in_flow: bool) -> Node {
    let style = |mut s: Style| {
        s.flow |= in_flow;
        s
    };
    match node {
        Node::Alias(i) if anchors > 0 => Node::AliasTo(i.index(anchors)),
        Node::Alias(_) => Node::Scalar(Scalar::Null),
        Node::Seq(items, s) => {
            let s = style(s);
            Node::Seq(
                items
                    .into_iter()
                    .map(|n| resolve(n, anchors, s.flow))
                    .collect(),
                s,
            )
        }
        Node::Map(items, s) => {
            let s = style(s);
            Node::Map(
                items
                    .into_iter()
                    .map(|n| resolve(n, anchors, s.flow))
                    .collect(),
                s,
            )
        }
        other => other,
    }
}

fn scalar_text(s: &Scalar) -> String {
    match s {
        Scalar::Word(w) => w.clone(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Bool(b) => b.to_string(),
        Scalar::Null => "~".into(),
        Scalar::Quoted(q) => Value::String(q.clone()).to_string(),
        Scalar::TaggedInt(i) => format!("!!str {i}"),
    }
}

fn tag(style: Style) -> String {
    style.tag.map(|t| format!("{t} ")).unwrap_or_default()
}

fn flow(node: &Node) -> String {
    match node {
        Node::Scalar(s) => scalar_text(s),
        Node::AliasTo(n) => format!("*a{n}"),
        Node::Alias(_) => unreachable!("aliases are resolved"),
        Node::Seq(items, s) => {
            let items: Vec<String> = items.iter().map(flow).collect();
            format!("{}[{}]", tag(*s), items.join(", "))
        }
        Node::Map(items, s) => {
            let items: Vec<String> = items
                .iter()
                .enumerate()
                .map(|(i, v)| format!("k{i}: {}", flow(v)))
                .collect();
            format!("{}{{{}}}", tag(*s), items.join(", "))
        }
    }
}

/// Writes `node` after a `key:` or `-` already written, its children
/// indented by `indent`; `props` (an anchor) goes before it.
fn block(node: &Node, indent: usize, props: &str, out: &mut String) {
    let pad = " ".repeat(indent);
    match node {
        Node::Seq(items, s) if !s.flow && !items.is_empty() => {
            out.push_str(props);
            if let Some(t) = s.tag {
                out.push_str(&format!(" {t}"));
            }
            out.push('\n');
            for item in items {
                out.push_str(&format!("{pad}-"));
                block(item, indent + 2, "", out);
            }
        }
        Node::Map(items, s) if !s.flow && !items.is_empty() => {
            out.push_str(props);
            if let Some(t) = s.tag {
                out.push_str(&format!(" {t}"));
            }
            out.push('\n');
            for (i, item) in items.iter().enumerate() {
                out.push_str(&format!("{pad}k{i}:"));
                block(item, indent + 2, "", out);
            }
        }
        _ => out.push_str(&format!("{props} {}\n", flow(node))),
    }
}

fn render(doc: &Doc) -> String {
    let mut out = String::from(
        "name: p\nclasses:\n  - name: a\n    functions:\n      - function: update\n        \
         override:\n",
    );
    if doc.defs.is_empty() {
        out.push_str("          defs: []\n");
    } else {
        out.push_str("          defs:\n");
        for (n, def) in doc.defs.iter().enumerate() {
            out.push_str("            -");
            block(def, 14, &format!(" &a{n}"), &mut out);
        }
    }
    out.push_str("          x:");
    block(&doc.x, 12, "", &mut out);
    out
}

/// The JSON `node` means, aliases expanded.
fn meaning(node: &Node, defs: &[Node]) -> Value {
    match node {
        Node::Scalar(Scalar::Word(w)) => json!(w),
        Node::Scalar(Scalar::Int(i)) => json!(i),
        Node::Scalar(Scalar::Bool(b)) => json!(b),
        Node::Scalar(Scalar::Null) => Value::Null,
        Node::Scalar(Scalar::Quoted(q)) => json!(q),
        Node::Scalar(Scalar::TaggedInt(i)) => json!(i.to_string()),
        Node::AliasTo(n) => meaning(&defs[*n], defs),
        Node::Alias(_) => unreachable!("aliases are resolved"),
        Node::Seq(items, _) => Value::Array(items.iter().map(|n| meaning(n, defs)).collect()),
        Node::Map(items, _) => Value::Object(
            items
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("k{i}"), meaning(n, defs)))
                .collect::<Map<_, _>>(),
        ),
    }
}

/// Collections on the longest path down, aliases expanded.
fn depth(node: &Node, defs: &[Node]) -> usize {
    match node {
        Node::Seq(items, _) | Node::Map(items, _) => {
            1 + items.iter().map(|n| depth(n, defs)).max().unwrap_or(0)
        }
        Node::AliasTo(n) => depth(&defs[*n], defs),
        _ => 0,
    }
}

fn package_depth(doc: &Doc) -> usize {
    // `defs` is one more collection around each anchor.
    let defs = doc
        .defs
        .iter()
        .map(|d| 1 + depth(d, &doc.defs))
        .max()
        .unwrap_or(1);
    ABOVE_X + defs.max(depth(&doc.x, &doc.defs))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn generated_trees_are_read_as_meant_or_refused_for_depth(doc in doc()) {
        let source = render(&doc);
        let deep = package_depth(&doc) > LIMIT;
        match parse(&source) {
            Ok(parsed) => {
                prop_assert!(!deep, "{} levels accepted:\n{source}", package_depth(&doc));
                let defs: Vec<Value> = doc.defs.iter().map(|d| meaning(d, &doc.defs)).collect();
                let expected = json!({"defs": defs, "x": meaning(&doc.x, &doc.defs)});
                let got = Value::Object(
                    parsed.package().classes[0].functions[0].override_options.clone(),
                );
                prop_assert_eq!(got, expected, "{}", source);
            }
            Err(diags) => {
                prop_assert!(deep, "{} levels refused: {diags:#?}\n{source}", package_depth(&doc));
                prop_assert_eq!(diags.len(), 1, "{:#?}", diags);
                let d = &diags[0];
                prop_assert!(
                    d.message.starts_with("the document nests lists and mappings more than 64 deep"),
                    "{}", d
                );
                prop_assert!(is_inside(&source, d), "{d} is outside:\n{source}");
            }
        }
    }

    #[test]
    fn generated_trees_as_json_are_read_as_meant_or_refused_for_depth(doc in doc()) {
        // JSON has no anchors: the tree is written expanded.
        let x = meaning(&doc.x, &doc.defs);
        let source = json!({
            "name": "p",
            "classes": [{"name": "a", "functions": [{"function": "update", "override": {"x": x}}]}],
        })
        .to_string();
        let deep = ABOVE_X + depth(&doc.x, &doc.defs) > LIMIT;
        match parse(&source) {
            Ok(parsed) => {
                prop_assert!(!deep);
                let got = &parsed.package().classes[0].functions[0].override_options["x"];
                prop_assert_eq!(got, &x);
            }
            Err(diags) => {
                prop_assert!(deep, "{diags:#?}\n{source}");
                prop_assert_eq!(diags.len(), 1);
                prop_assert!(is_inside(&source, &diags[0]), "{}", diags[0]);
            }
        }
    }
}
