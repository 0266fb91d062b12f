use super::*;

fn values(values: u64) -> Limits {
    Limits {
        values,
        depth: LIMITS.depth,
    }
}

fn depth(depth: usize) -> Limits {
    Limits {
        values: LIMITS.values,
        depth,
    }
}

/// The diagnostic for `source`, as `LINE:COL: MESSAGE`, or `ok`.
#[track_caller]
fn check_with(source: &str, limits: Limits, expected: &str) {
    let got = match check(source, limits) {
        Ok(()) => "ok".to_owned(),
        Err(d) => d.to_string(),
    };
    assert_eq!(got, expected, "source:\n{source}");
}

#[test]
fn ordinary_aliases_pass() {
    let source = "a: &x {k: [1, 2]}\nb: *x\nc: *x\n";
    assert!(check(source, values(20)).is_ok());
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
    let err = check(&source, LIMITS).unwrap_err();
    assert_eq!(
        err.message,
        "the document expands to more than 1000000 values (through aliases); refused"
    );
}

#[test]
fn counting_matches_the_tree() {
    // A mapping with two keys and values: 1 + 4; with `b` repeating `a`.
    assert!(check("a: 1\nb: 2\n", values(5)).is_ok());
    assert!(check("a: 1\nb: 2\n", values(4)).is_err());
    assert!(check("a: &a [1, 2]\nb: *a\n", values(9)).is_ok());
    assert!(check("a: &a [1, 2]\nb: *a\n", values(8)).is_err());
}

#[test]
fn depth_counts_collections_not_scalars() {
    check_with("1", depth(0), "ok");
    check_with("[[1]]", depth(2), "ok");
    check_with("a: {b: [1]}", depth(3), "ok");
    check_with(
        "a: {b: [1]}",
        depth(2),
        "1:8: the document nests lists and mappings more than 2 deep; refused",
    );
}

#[test]
fn the_first_collection_too_deep_is_refused_where_it_starts() {
    check_with(
        "x:\n  - - - 1\n",
        depth(3),
        "2:7: the document nests lists and mappings more than 3 deep; refused",
    );
    check_with(
        "{\"a\": [{\"b\": [[]]}]}",
        depth(4),
        "1:15: the document nests lists and mappings more than 4 deep; refused",
    );
}

#[test]
fn keys_nest_like_values() {
    check_with(
        "? [[k]]\n: v\n",
        depth(2),
        "1:4: the document nests lists and mappings more than 2 deep; refused",
    );
}

#[test]
fn an_alias_nests_its_anchor_where_it_is_used() {
    // `a` is 2 deep inside the mapping (3 in all); `[*a]` puts it 4 deep.
    let source = "a: &a [[1]]\nb: [*a]\n";
    check_with(source, depth(4), "ok");
    check_with(
        source,
        depth(3),
        "2:5: the document nests lists and mappings more than 3 deep (through aliases); refused",
    );
}

#[test]
fn chained_anchors_add_up_their_depth() {
    // Each anchor wraps the previous one in one more list: a few bytes per
    // level, so the depth must be counted through the aliases.
    let mut source = String::from("- &a0 [x]\n");
    for i in 1..100 {
        source.push_str(&format!("- &a{i} [*a{}]\n", i - 1));
    }
    let err = check(&source, LIMITS).unwrap_err();
    assert_eq!(
        err.to_string(),
        "64:9: the document nests lists and mappings more than 64 deep (through aliases); refused"
    );
}

#[test]
fn separate_documents_have_separate_depths() {
    check_with("[[1]]\n---\n[[2]]\n", depth(2), "ok");
}
