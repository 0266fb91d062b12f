//! Guards that run on the event stream before any tree is built, in memory
//! bounded by the number of anchors and the depth allowed:
//!
//! - nesting depth: the loader, the checker, clones and drops of the tree
//!   all recurse once per level, so a source nesting `- - - ...` or `[[[...`
//!   a hundred thousand deep would overflow the stack. The walk here is a
//!   loop, and refuses the first collection that goes too deep.
//! - alias bombs ("billion laughs"): YAML aliases are copied when the tree
//!   is built, so a few nested anchors in a small source can expand to
//!   billions of values, or nest one anchor's depth inside another's.
//!   Both are counted per anchor and refused above the limits.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, Span};

use crate::diagnostic::{Diagnostic, Position};

/// How big a document may be once its aliases are expanded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Values (scalars and collections) in the expanded tree.
    pub(crate) values: u64,
    /// Collections inside each other, the outermost one counting as 1.
    pub(crate) depth: usize,
}

/// Far above any real package, far below trouble. A package nests about
/// six levels before its free-form fields (`override`, `bodyTemplate`), and
/// real values in those nest a few more. 64 keeps whatever is accepted
/// well inside serde_json's recursion limit (128) when the platform wraps
/// it in its own JSON (resolved packages, tasks), and the recursive walks
/// over the tree within a few hundred KiB of stack even in debug builds.
pub(crate) const LIMITS: Limits = Limits {
    values: 1_000_000,
    depth: 64,
};

/// What is known of a value once it is complete (or of an anchor).
#[derive(Debug, Clone, Copy)]
struct Extent {
    /// Values inside, counting itself.
    size: u64,
    /// Collections on the longest path down, counting itself (0 for a
    /// scalar).
    height: usize,
}

/// What saphyr's scanner says when flow collections nest past 255.
const FLOW_LIMIT: &str = "recursion limit exceeded";

const SCALAR: Extent = Extent { size: 1, height: 0 };

/// A collection that has started and not ended yet.
struct Open {
    anchor: usize,
    /// Values inside so far, counting itself.
    size: u64,
    /// The greatest height of its values so far.
    inner: usize,
}

/// Checks that `source`, with its aliases expanded, stays within `limits`.
/// Syntax errors are left to the loader, which reports them with
/// positions; it only sees what this walk has accepted up to the error.
pub(crate) fn check(source: &str, limits: Limits) -> Result<(), Diagnostic> {
    let mut anchors: HashMap<usize, Extent> = HashMap::new();
    let mut open: Vec<Open> = Vec::new();
    let mut total: u64 = 0;
    for event in Parser::new_from_str(source) {
        let (event, span) = match event {
            Ok(next) => next,
            // The scanner reads ahead through flow collections (any `[` may
            // start a key) and stops at 255 levels, before the parser hands
            // this walk the collection that goes over: too deep as well,
            // and said so where it stopped. (Were the message to change,
            // the loader would report it as invalid yaml, still in time.)
            Err(e) if e.info() == FLOW_LIMIT => {
                return Err(too_deep(Span::empty(*e.marker()), limits, ""));
            }
            Err(_) => return Ok(()),
        };
        let done = match event {
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if open.len() >= limits.depth {
                    return Err(too_deep(span, limits, ""));
                }
                open.push(Open {
                    anchor,
                    size: 1,
                    inner: 0,
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => open.pop().map(|o| {
                let extent = Extent {
                    size: o.size,
                    height: o.inner + 1,
                };
                if o.anchor > 0 {
                    anchors.insert(o.anchor, extent);
                }
                extent
            }),
            Event::Scalar(_, _, anchor, _) => {
                if anchor > 0 {
                    anchors.insert(anchor, SCALAR);
                }
                Some(SCALAR)
            }
            Event::Alias(anchor) => {
                let extent = anchors.get(&anchor).copied().unwrap_or(SCALAR);
                if open.len() + extent.height > limits.depth {
                    return Err(too_deep(span, limits, " (through aliases)"));
                }
                Some(extent)
            }
            _ => None,
        };
        let Some(extent) = done else { continue };
        match open.last_mut() {
            Some(parent) => {
                parent.size = parent.size.saturating_add(extent.size);
                parent.inner = parent.inner.max(extent.height);
            }
            None => total = total.saturating_add(extent.size),
        }
        // At most `limits.depth` entries: cheap enough for every event.
        let inside: u64 = open.iter().map(|o| o.size).max().unwrap_or(0);
        if total > limits.values || inside > limits.values {
            return Err(Diagnostic::error(
                position(span),
                "",
                format!(
                    "the document expands to more than {} values (through aliases); refused",
                    limits.values
                ),
            ));
        }
    }
    Ok(())
}

fn too_deep(span: Span, limits: Limits, how: &str) -> Diagnostic {
    Diagnostic::error(
        position(span),
        "",
        format!(
            "the document nests lists and mappings more than {} deep{how}; refused",
            limits.depth
        ),
    )
}

fn position(span: Span) -> Position {
    Position {
        line: u32::try_from(span.start.line()).unwrap_or(u32::MAX).max(1),
        column: u32::try_from(span.start.col() + 1).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests;
