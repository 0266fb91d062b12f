//! Bad input never panics the parser: arbitrary text, and valid packages
//! with random damage, get diagnostics (or parse), never a crash.

use oprc_package::{Catalog, parse};
use proptest::prelude::*;

const VALID: &str = "name: p\nclasses:\n  - name: a\n    parents: [.b]\n    functions:\n      \
                     - {name: f, function: .f, access: PRIVATE}\n  - name: b\nfunctions:\n  \
                     - name: f\n    provision: {process: {command: [python3, f.py]}}\n";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(source in "\\PC{0,200}") {
        if let Ok(doc) = parse(&source) {
            let _ = Catalog::new().apply(&doc);
        }
    }

    #[test]
    fn damaged_packages_never_panic(cut in 0..VALID.len(), insert in "[-:\\[\\]{}&*!|>'\" \n.a-z0-9]{0,8}") {
        let mut source = VALID.to_owned();
        if source.is_char_boundary(cut) {
            source.insert_str(cut, &insert);
        }
        if let Ok(doc) = parse(&source) {
            let _ = Catalog::new().apply(&doc);
        }
    }
}
