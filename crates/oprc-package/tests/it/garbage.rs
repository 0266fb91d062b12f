//! Bad input never panics the parser: arbitrary text, and valid packages
//! with random damage, get diagnostics (or parse), never a crash, and every
//! diagnostic points inside the source it is about.

use std::path::PathBuf;
use std::sync::LazyLock;

use oprc_package::{Catalog, Diagnostic, parse};
use proptest::prelude::*;
use proptest::sample::Index;

use crate::fixtures::fixtures_dir;

const VALID: &str = "name: p\nclasses:\n  - name: a\n    parents: [.b]\n    functions:\n      \
                     - {name: f, function: .f, access: PRIVATE}\n  - name: b\nfunctions:\n  \
                     - name: f\n    provision: {process: {command: [python3, f.py]}}\n";

/// Whether `d` names a line of `source` and a column on it (or just past
/// its end, where an unfinished value is reported). Lines end as YAML ends
/// them (`\n`, `\r\n` or `\r`); columns count characters.
pub fn is_inside(source: &str, d: &Diagnostic) -> bool {
    let lines: Vec<usize> = source
        .split("\r\n")
        .flat_map(|l| l.split(['\r', '\n']))
        .map(|l| l.chars().count())
        .collect();
    let line = usize::try_from(d.line).unwrap_or(usize::MAX);
    let column = usize::try_from(d.column).unwrap_or(usize::MAX);
    line >= 1 && column >= 1 && lines.get(line - 1).is_some_and(|w| column <= w + 1)
}

/// Parses `source` and applies it to a fresh catalog: whatever happens, no
/// panic, a refusal has at least one error, and every diagnostic (errors
/// and warnings, of the parser and of the catalog) is inside the source.
pub fn assert_sound(source: &str) -> Result<(), TestCaseError> {
    let check = |diags: &[Diagnostic], refused: bool| {
        if refused {
            prop_assert!(
                diags.iter().any(Diagnostic::is_error),
                "refused without an error: {diags:#?}\n{source:?}"
            );
        }
        for d in diags {
            prop_assert!(!d.message.is_empty(), "{d:?}");
            prop_assert!(
                is_inside(source, d),
                "{d} is outside the source:\n{source:?}"
            );
        }
        Ok(())
    };
    match parse(source) {
        Err(diags) => check(&diags, true),
        Ok(doc) => {
            check(doc.warnings(), false)?;
            match Catalog::new().apply(&doc) {
                Ok(applied) => check(&applied.warnings, false),
                Err(diags) => check(&diags, true),
            }
        }
    }
}

/// The valid fixtures, the raw material of the damage below.
static VALID_FIXTURES: LazyLock<Vec<String>> = LazyLock::new(|| {
    let dir = fixtures_dir().join("valid");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixtures are readable")
        .map(|e| e.expect("a fixture entry").path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("a fixture is text"))
        .collect()
});

/// One kind of damage, at a position scaled to the text it is applied to.
#[derive(Debug, Clone)]
enum Damage {
    /// Replaces a byte (the result is read back lossily as UTF-8).
    FlipByte(Index, u8),
    Truncate(Index),
    DuplicateLine(Index),
    DeleteLine(Index),
    SwapLines(Index, Index),
    /// Inserts a piece of YAML syntax.
    Insert(Index, &'static str),
}

const SYNTAX: &[&str] = &[
    "- ",
    "? ",
    ": ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "!t ",
    "!!str ",
    "!!map ",
    "'",
    "\"",
    "|\n",
    ">-\n",
    "#",
    "\t",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "\n  ",
    "<<: *a\n",
    "\u{feff}",
    "\\u0000",
    "é",
];

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::FlipByte(i, b)),
        any::<Index>().prop_map(Damage::Truncate),
        any::<Index>().prop_map(Damage::DuplicateLine),
        any::<Index>().prop_map(Damage::DeleteLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Damage::SwapLines(a, b)),
        (any::<Index>(), proptest::sample::select(SYNTAX)).prop_map(|(i, s)| Damage::Insert(i, s)),
    ]
}

fn apply_damage(source: &str, damage: &Damage) -> String {
    let mut bytes = source.as_bytes().to_vec();
    let mut lines: Vec<&str> = source.split_inclusive('\n').collect();
    let at = |i: &Index, len: usize| i.index(len.max(1)).min(len);
    match damage {
        Damage::FlipByte(i, b) if !bytes.is_empty() => {
            let n = bytes.len();
            bytes[at(i, n).min(n - 1)] = *b;
        }
        Damage::FlipByte(..) => {}
        Damage::Truncate(i) => bytes.truncate(at(i, bytes.len())),
        Damage::Insert(i, s) => {
            let n = bytes.len();
            bytes.splice(at(i, n)..at(i, n), s.bytes());
        }
        Damage::DuplicateLine(i) if !lines.is_empty() => {
            let k = at(i, lines.len() - 1);
            lines.insert(k, lines[k]);
            return lines.concat();
        }
        Damage::DeleteLine(i) if !lines.is_empty() => {
            lines.remove(at(i, lines.len() - 1));
            return lines.concat();
        }
        Damage::SwapLines(a, b) if !lines.is_empty() => {
            let n = lines.len() - 1;
            lines.swap(at(a, n), at(b, n));
            return lines.concat();
        }
        Damage::DuplicateLine(_) | Damage::DeleteLine(_) | Damage::SwapLines(..) => {}
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn every_valid_fixture_is_sound() {
    for source in VALID_FIXTURES.iter() {
        assert_sound(source).unwrap();
    }
}

#[test]
fn positions_outside_the_source_are_caught() {
    let at = |line, column| Diagnostic::error(oprc_package::Position { line, column }, "", "x");
    assert!(is_inside("ab\ncd\n", &at(2, 3)));
    assert!(is_inside("ab\ncd\n", &at(3, 1)));
    assert!(is_inside("ab\r\ncd", &at(2, 3)));
    assert!(is_inside("", &at(1, 1)));
    assert!(!is_inside("ab\ncd\n", &at(2, 4)));
    assert!(!is_inside("ab\ncd\n", &at(4, 1)));
    assert!(!is_inside("ab", &at(0, 1)));
    assert!(!is_inside("ab", &at(1, 0)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(source in "\\PC{0,200}") {
        assert_sound(&source)?;
    }

    #[test]
    fn arbitrary_syntax_never_panics(source in "[-?:\\[\\]{},&*!|>'\"#%@` \t\r\na-z0-9.~\\\\]{0,120}") {
        assert_sound(&source)?;
    }

    #[test]
    fn damaged_packages_never_panic(cut in 0..VALID.len(), insert in "[-:\\[\\]{}&*!|>'\" \n.a-z0-9]{0,8}") {
        let mut source = VALID.to_owned();
        if source.is_char_boundary(cut) {
            source.insert_str(cut, &insert);
        }
        assert_sound(&source)?;
    }

    #[test]
    fn damaged_fixtures_never_panic(
        fixture in any::<Index>(),
        damages in proptest::collection::vec(damage(), 1..4),
    ) {
        let mut source = fixture.get(&VALID_FIXTURES).clone();
        for d in &damages {
            source = apply_damage(&source, d);
        }
        assert_sound(&source)?;
    }
}
