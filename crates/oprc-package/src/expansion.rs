//! A guard against alias bombs ("billion laughs"): YAML aliases are copied
//! when the tree is built, so a few nested anchors in a small source can
//! expand to billions of values. The expanded size is counted on the event
//! stream first, in constant memory per anchor, and refused above a limit.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

use crate::diagnostic::{Diagnostic, Position};

/// Far above any real package (thousands of values), far below trouble.
pub(crate) const MAX_VALUES: u64 = 1_000_000;

/// Checks that `source` expands to at most `limit` values. Syntax errors
/// are left to the loader, which reports them with positions.
pub(crate) fn check(source: &str, limit: u64) -> Result<(), Diagnostic> {
    let mut sizes: HashMap<usize, u64> = HashMap::new();
    // Open collections: (anchor id, values inside so far, counting itself).
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut total: u64 = 0;
    for event in Parser::new_from_str(source) {
        let Ok((event, span)) = event else {
            return Ok(());
        };
        let done = match event {
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                open.push((anchor, 1));
                None
            }
            Event::SequenceEnd | Event::MappingEnd => open.pop().map(|(anchor, size)| {
                if anchor > 0 {
                    sizes.insert(anchor, size);
                }
                size
            }),
            Event::Scalar(_, _, anchor, _) => {
                if anchor > 0 {
                    sizes.insert(anchor, 1);
                }
                Some(1)
            }
            Event::Alias(anchor) => Some(sizes.get(&anchor).copied().unwrap_or(1)),
            _ => None,
        };
        let Some(size) = done else { continue };
        match open.last_mut() {
            Some((_, parent)) => *parent = parent.saturating_add(size),
            None => total = total.saturating_add(size),
        }
        let inside: u64 = open.iter().map(|(_, n)| *n).max().unwrap_or(0);
        if total > limit || inside > limit {
            let at = Position {
                line: u32::try_from(span.start.line()).unwrap_or(u32::MAX).max(1),
                column: u32::try_from(span.start.col() + 1).unwrap_or(u32::MAX),
            };
            return Err(Diagnostic::error(
                at,
                "",
                format!(
                    "the document expands to more than {limit} values (through aliases); refused"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_aliases_pass() {
        let source = "a: &x {k: [1, 2]}\nb: *x\nc: *x\n";
        assert!(check(source, 20).is_ok());
    }

    #[test]
    fn nested_aliases_that_explode_are_refused() {
        let mut source = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = i - 1;
            source.push_str(&format!(
                "l{i}: &l{i} [*l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}]\n"
            ));
        }
        let err = check(&source, MAX_VALUES).unwrap_err();
        assert_eq!(
            err.message,
            "the document expands to more than 1000000 values (through aliases); refused"
        );
    }

    #[test]
    fn counting_matches_the_tree() {
        // A mapping with two keys and values: 1 + 4; with `b` repeating `a`.
        assert!(check("a: 1\nb: 2\n", 5).is_ok());
        assert!(check("a: 1\nb: 2\n", 4).is_err());
        assert!(check("a: &a [1, 2]\nb: *a\n", 9).is_ok());
        assert!(check("a: &a [1, 2]\nb: *a\n", 8).is_err());
    }
}
