//! Nesting depth: sources nesting a hundred thousand deep, in every shape
//! YAML and JSON allow, are refused with the position where they go too
//! deep, before anything recurses over them; the deepest package accepted
//! parses and applies on a small stack.
//!
//! Everything runs on a thread with [`SMALL_STACK`]: a walk that recursed
//! once per level of a 100,000-deep source would need far more (5 bytes a
//! level), so it would overflow and abort the test binary.

use oprc_package::{Catalog, Diagnostic, parse};

/// Levels of the hostile sources.
const DEEP: usize = 100_000;

/// Room for the deepest package accepted in a debug build (it needs 256 to
/// 384 KiB there, much less in release), and for nothing much deeper.
const SMALL_STACK: usize = 512 * 1024;

const LIMIT: usize = 64;

/// saphyr's scanner reads ahead through flow collections and stops at 255
/// levels, before the parser hands the 65th to the depth check: sources
/// nesting only flow collections are refused where the 256th opens.
const FLOW_STOP: usize = 256;

fn col(c: usize) -> u32 {
    u32::try_from(c).unwrap()
}

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(f)
        .expect("a test thread starts")
        .join()
        .expect("the test thread does not panic")
}

/// A package with one binding whose `override.x` is `value`; `x` sits six
/// collections deep (the document, `classes`, the class, `functions`, the
/// binding, `override`).
fn with_override(value: &str) -> String {
    format!(
        "name: p\nclasses:\n  - name: a\n    functions:\n      - function: update\n        \
         override:\n          x: {value}\n"
    )
}

/// The same package as JSON.
fn json_with_override(value: &str) -> String {
    format!(
        r#"{{"name": "p", "classes": [{{"name": "a", "functions": [{{"function": "update", "override": {{"x": {value}}}}}]}}]}}"#
    )
}

/// Parses `source` on a small stack and checks that it is refused with one
/// diagnostic about nesting at `line:column`, a position inside the source.
#[track_caller]
fn refused_at(source: String, line: u32, column: u32) {
    let lines: Vec<usize> = source.lines().map(|l| l.chars().count()).collect();
    let diags = on_small_stack(move || match parse(&source) {
        Ok(_) => Vec::new(),
        Err(diags) => diags,
    });
    let [d] = diags.as_slice() else {
        panic!("expected one diagnostic, got {diags:#?}");
    };
    assert!(d.is_error());
    assert!(
        d.message.starts_with(&format!(
            "the document nests lists and mappings more than {LIMIT} deep"
        )),
        "{d}"
    );
    assert_eq!((d.line, d.column), (line, column), "{d}");
    let width = lines[usize::try_from(d.line).unwrap() - 1];
    assert!(usize::try_from(d.column).unwrap() <= width, "{d}");
}

#[test]
fn block_sequences_under_override_are_refused() {
    // The request that crashed the node: `- - - ...` under `override`.
    let value = format!("\n            {}1", "- ".repeat(DEEP));
    // The 59th `-` opens the 65th collection.
    refused_at(with_override(&value), 8, 13 + 2 * 58);
}

#[test]
fn flow_sequences_are_refused() {
    let source = format!("{}{}", "[".repeat(DEEP), "]".repeat(DEEP));
    refused_at(source, 1, col(FLOW_STOP));
}

#[test]
fn flow_mappings_are_refused() {
    let source = format!("{}1{}", "{a: ".repeat(DEEP), "}".repeat(DEEP));
    refused_at(source, 1, col(1 + 4 * (FLOW_STOP - 1)));
}

#[test]
fn mixed_flow_collections_are_refused() {
    let source = format!("{}1{}", "[{a: ".repeat(DEEP / 2), "}]".repeat(DEEP / 2));
    // Level 2k + 2 opens with `{` at column 5k + 2.
    refused_at(source, 1, col(5 * (FLOW_STOP - 2) / 2 + 2));
}

#[test]
fn block_sequences_holding_flow_collections_are_refused() {
    let half = DEEP / 2;
    let source = format!("{}[{}]", "- ".repeat(half), "{a: [".repeat(half / 2));
    refused_at(source, 1, 2 * 64 + 1);
    let source = format!("- {}1{}", "[{a: ".repeat(half), "}]".repeat(half));
    // Block levels are counted by the walk, flow levels by the scanner.
    refused_at(source, 1, col(5 * (FLOW_STOP - 2) / 2 + 4));
}

#[test]
fn explicit_keys_nesting_block_mappings_are_refused() {
    let source = format!("{}k\n", "? ".repeat(DEEP));
    refused_at(source, 1, 2 * 64 + 1);
}

#[test]
fn indented_block_mappings_are_refused() {
    // Indentation grows with depth, so the source grows with its square:
    // 1,000 levels are half a megabyte.
    let source: String = (0..1_000)
        .map(|i| format!("{}a:\n", " ".repeat(i)))
        .collect();
    refused_at(source, 65, 65);
}

#[test]
fn tagged_collections_are_refused() {
    let source = format!("{}1{}", "!t [".repeat(DEEP), "]".repeat(DEEP));
    refused_at(source, 1, col(4 * FLOW_STOP));
}

#[test]
fn unclosed_collections_are_refused_for_their_depth() {
    refused_at("[".repeat(DEEP), 1, col(FLOW_STOP));
    refused_at(format!("x:\n  {}", "- ".repeat(DEEP)), 2, 3 + 2 * 63);
}

#[test]
fn json_packages_are_refused() {
    let source = format!("{}1{}", r#"{"a": "#.repeat(DEEP), "}".repeat(DEEP));
    refused_at(source, 1, col(1 + 6 * (FLOW_STOP - 1)));
    let value = format!("{}{}", "[".repeat(DEEP), "]".repeat(DEEP));
    let source = json_with_override(&value);
    let x = source.find("\"x\": ").unwrap() + 5;
    // The override value opens the 7th flow collection.
    refused_at(source, 1, col(x + 1 + FLOW_STOP - 7));
}

#[test]
fn chains_of_aliases_are_refused_for_the_depth_they_expand_to() {
    // Each anchor nests the previous one a level deeper: a few bytes per
    // level in the source, any depth in the tree.
    let mut source = String::from("name: p\nx:\n  - &a0 [1]\n");
    for i in 1..DEEP {
        source.push_str(&format!("  - &a{i} [*a{}]\n", i - 1));
    }
    // `x` is 2 deep, each anchor 1 more: `*a61` inside `&a62` makes 65.
    refused_at(source, 65, 11);
}

#[test]
fn the_deepest_package_accepted_parses_and_applies_on_a_small_stack() {
    let value = format!("{}1{}", "[".repeat(LIMIT - 6), "]".repeat(LIMIT - 6));
    for source in [with_override(&value), json_with_override(&value)] {
        let doc = on_small_stack(move || {
            let doc = parse(&source).map_err(|d| format!("{d:#?}"))?;
            Catalog::new()
                .apply(&doc)
                .map(|_| doc)
                .map_err(|d| format!("{d:#?}"))
        })
        .expect("64 levels are accepted");
        let x = &doc.package().classes[0].functions[0].override_options["x"];
        let mut depth = 0;
        let mut at = x;
        while let Some(inner) = at.get(0) {
            depth += 1;
            at = inner;
        }
        assert_eq!(depth, LIMIT - 6);
    }
}

#[test]
fn one_level_more_is_refused() {
    let value = format!("{}1{}", "[".repeat(LIMIT - 5), "]".repeat(LIMIT - 5));
    refused_at(with_override(&value), 7, 14 + 58);
}

#[test]
fn long_inheritance_chains_resolve_on_a_small_stack() {
    // Not nesting in the source, but a depth the resolver walks: each class
    // inherits from the next one. (Kept short: resolving a chain takes time
    // that grows faster than its length.)
    let n = 300;
    let mut source = String::from("name: p\nclasses:\n");
    for i in 0..n {
        source.push_str(&format!("  - name: c{i}\n    parents: [.c{}]\n", i + 1));
    }
    source.push_str(&format!("  - name: c{n}\n"));
    let classes = on_small_stack(move || {
        let doc = parse(&source).map_err(|d| render(&d))?;
        let applied = Catalog::new().apply(&doc).map_err(|d| render(&d))?;
        Ok::<_, String>(applied.package.classes.len())
    });
    assert_eq!(classes, Ok(n + 1));
}

fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
