use oprc_core::{ClassKey, FunctionKey};

use super::*;
use crate::FunctionType;

#[track_caller]
pub(super) fn doc(source: &str) -> Document {
    parse(source).unwrap_or_else(|d| panic!("{d:#?}"))
}

#[track_caller]
pub(super) fn apply(catalog: &Catalog, source: &str) -> Catalog {
    catalog
        .apply(&doc(source))
        .unwrap_or_else(|d| panic!("{d:#?}"))
        .catalog
}

/// Applies `source` expecting a refusal, and renders the diagnostics.
#[track_caller]
fn refused(catalog: &Catalog, source: &str) -> String {
    match catalog.apply(&doc(source)) {
        Ok(_) => panic!("accepted:\n{source}"),
        Err(diags) => diags
            .iter()
            .map(|d| format!("{}: {d}", d.severity))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn cls(key: &str) -> ClassKey {
    ClassKey::new(key).unwrap()
}

fn func(key: &str) -> FunctionKey {
    FunctionKey::new(key).unwrap()
}

const SHAPES: &str = "
name: shapes
functions:
  - name: area
    immutable: true
    outputCls: .shape
    provision: {http: {url: 'http://shapes.local'}}
classes:
  - name: shape
    functions:
      - function: .area
";

const APP: &str = "
name: app
required: [shapes]
classes:
  - name: circle
    parents: [shapes.shape]
";

#[test]
fn a_new_catalog_holds_the_builtin_package() {
    let catalog = Catalog::new();
    let base = catalog.class(&cls("builtin.base")).unwrap();
    let names: Vec<&str> = base.bindings.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["copy", "delete", "file", "get", "new", "project", "update"]
    );
    assert!(base.ancestors.is_empty());
    assert_eq!(catalog.functions().len(), 7);
    assert!(catalog.functions().all(|f| f.kind == FunctionType::Builtin));
    assert_eq!(catalog.packages().len(), 1);
    assert_eq!(catalog.documents().count(), 0);
}

#[test]
fn applying_again_replaces_the_package() {
    let v1 = apply(&Catalog::new(), "name: p\nclasses: [{name: a}]");
    let v2 = apply(&v1, "name: p\nclasses: [{name: b}]");
    assert!(v1.class(&cls("p.a")).is_some());
    assert!(v2.class(&cls("p.a")).is_none());
    assert!(v2.class(&cls("p.b")).is_some());
    assert_eq!(v2.package("p").unwrap().classes.len(), 1);
}

#[test]
fn a_refused_package_changes_nothing() {
    let catalog = apply(&Catalog::new(), "name: p\nclasses: [{name: a}]");
    let text = refused(&catalog, "name: p\nclasses: [{name: b, parents: [.ghost]}]");
    assert_eq!(
        text,
        "error: 2:31: classes[0].parents[0]: unknown class `.ghost`: package `p` has no class `ghost`"
    );
    assert!(catalog.class(&cls("p.a")).is_some());
    assert!(catalog.class(&cls("p.b")).is_none());
}

#[test]
fn the_builtin_package_cannot_be_replaced() {
    assert_eq!(
        refused(&Catalog::new(), "name: builtin"),
        "error: 1:7: name: package name `builtin` is reserved for the platform's own package"
    );
}

#[test]
fn a_change_that_breaks_another_package_is_refused() {
    let catalog = apply(&apply(&Catalog::new(), SHAPES), APP);
    let text = refused(&catalog, "name: shapes\nclasses: [{name: square}]");
    assert_eq!(
        text,
        "error: 1:1: package `app` would break: 6:15: classes[0].parents[0]: unknown class `shapes.shape`: package `shapes` has no class `shape`"
    );
}

#[test]
fn cycles_across_packages_are_found() {
    // `a` cannot be applied before `b`; apply them in order and close the loop.
    let catalog = apply(&Catalog::new(), "name: b\nclasses: [{name: y}]");
    let catalog = apply(
        &catalog,
        "name: a\nrequired: [b]\nclasses: [{name: x, parents: [b.y]}]",
    );
    let text = refused(
        &catalog,
        "name: b\nrequired: [a]\nclasses: [{name: y, parents: [a.x]}]",
    );
    assert_eq!(
        text,
        "error: 1:1: package `a` would break: 3:31: classes[0].parents[0]: inheritance cycle: a.x -> b.y -> a.x\n\
         error: 3:31: classes[0].parents[0]: inheritance cycle: a.x -> b.y -> a.x"
    );
}

#[test]
fn packages_in_use_cannot_be_removed() {
    let catalog = apply(&apply(&Catalog::new(), SHAPES), APP);
    let err = catalog.remove("shapes").unwrap_err();
    assert_eq!(
        err.to_string(),
        "package `shapes` is used by other packages: class `app.circle` inherits from `shapes.shape`; package `app` requires it"
    );
    let without_app = catalog.remove("app").unwrap();
    let empty = without_app.remove("shapes").unwrap();
    assert_eq!(empty.packages().len(), 1);
    assert_eq!(catalog.remove("builtin").unwrap_err(), Error::Builtin);
    assert_eq!(
        catalog.remove("nope").unwrap_err(),
        Error::NotFound("nope".into())
    );
}

#[test]
fn load_rebuilds_a_catalog_in_any_order() {
    let catalog = Catalog::load([doc(APP), doc(SHAPES)]).unwrap();
    let circle = catalog.class(&cls("app.circle")).unwrap();
    assert!(circle.is_a(&cls("shapes.shape")));
    assert!(circle.is_a(&cls("builtin.base")));
    assert_eq!(
        catalog.documents().map(Document::name).collect::<Vec<_>>(),
        ["app", "shapes"]
    );
    assert_eq!(
        Catalog::load([doc(SHAPES), doc(SHAPES)]).unwrap_err(),
        Error::Duplicate("shapes".into())
    );
    let err = Catalog::load([doc(APP)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "packages do not resolve: `app` (3:12: required[0]: required package `shapes` is not applied)"
    );
}

#[test]
fn bindings_default_to_their_function() {
    let catalog = apply(
        &apply(&Catalog::new(), SHAPES),
        "
name: p
required: [shapes]
classes:
  - name: c
    functions:
      - function: shapes.area
      - {name: mutable, function: shapes.area, immutable: false, outputCls: none}
      - {name: other, function: shapes.area, outputCls: .c}
",
    );
    let c = catalog.class(&cls("p.c")).unwrap();
    let area = c.binding("area").unwrap();
    assert!(area.immutable);
    assert_eq!(area.output_cls, Some(cls("shapes.shape")));
    let mutable = c.binding("mutable").unwrap();
    assert!(!mutable.immutable);
    assert_eq!(mutable.output_cls, None);
    assert_eq!(c.binding("other").unwrap().output_cls, Some(cls("p.c")));
    assert_eq!(area.function, func("shapes.area"));
    assert_eq!(area.kind, FunctionType::Task);
}

#[test]
fn builtin_bindings_reach_every_class_and_can_be_overridden() {
    let catalog = apply(
        &Catalog::new(),
        "
name: p
functions:
  - name: get
    provision: {http: {url: 'http://p.local'}}
classes:
  - name: parent
    functions:
      - function: get
  - name: child
    parents: [.parent, builtin.base]
",
    );
    let parent = catalog.class(&cls("p.parent")).unwrap();
    assert_eq!(parent.binding("get").unwrap().function, func("p.get"));
    assert_eq!(
        parent.binding("new").unwrap().output_cls,
        Some(cls("p.parent"))
    );
    assert!(parent.binding("new").unwrap().no_main);
    // `builtin.base` listed last: its `get` overrides the parent's.
    let child = catalog.class(&cls("p.child")).unwrap();
    assert_eq!(child.binding("get").unwrap().function, func("builtin.get"));
    assert_eq!(child.ancestors, [cls("builtin.base"), cls("p.parent")]);
    assert_eq!(
        child.binding("copy").unwrap().output_cls,
        Some(cls("p.child"))
    );
}

#[test]
fn references_to_unlisted_packages_warn() {
    let applied = apply(&Catalog::new(), SHAPES)
        .apply(&doc(
            "name: q\nclasses: [{name: c, parents: [shapes.shape]}]",
        ))
        .unwrap();
    let warnings: Vec<String> = applied.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "2:31: classes[0].parents[0]: `shapes.shape` comes from package `shapes`, which is not listed in `required`"
        ]
    );
}

#[test]
fn listings_are_sorted_by_key() {
    let catalog = apply(
        &Catalog::new(),
        "name: z\nclasses: [{name: b}, {name: a}]\nfunctions: [{name: f, type: MACRO, macro: {steps: [{function: get}]}}]",
    );
    let keys: Vec<&str> = catalog.classes().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["builtin.base", "z.a", "z.b"]);
    let names: Vec<&str> = catalog
        .package("z")
        .unwrap()
        .classes
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        catalog.function(&func("z.f")).unwrap().timeout(),
        std::time::Duration::from_secs(30)
    );
}

#[test]
fn a_partial_load_keeps_what_resolves() {
    let broken = "name: broken\nclasses: [{name: x, parents: [gone.y]}]";
    let needs_broken = "name: needy\nrequired: [broken]\nclasses: [{name: z, parents: [broken.x]}]";
    let (catalog, failures) =
        Catalog::load_partial([doc(SHAPES), doc(broken), doc(needs_broken), doc(APP)]);
    assert!(catalog.class(&cls("app.circle")).is_some());
    assert!(catalog.package("broken").is_none());
    assert!(catalog.package("needy").is_none());
    let failed: Vec<&str> = failures.iter().map(|f| f.package.as_str()).collect();
    assert_eq!(failed, ["broken", "needy"]);
}

#[test]
fn catalogs_can_be_shared_across_threads() {
    fn shared<T: Send + Sync + Clone + 'static>() {}
    shared::<Catalog>();
    shared::<Document>();
}
