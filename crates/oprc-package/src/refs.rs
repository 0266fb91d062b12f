//! Names and references: what a valid name is, and how a reference written
//! in a package becomes a qualified key.
//!
//! Keys are `<package>.<name>`; package names never contain `.`, class and
//! function names may (`record.random`), so a key's package is everything
//! before its first dot. A reference is read as follows:
//! - `.name`: `name` in the same package (`.video` in `media` is
//!   `media.video`);
//! - `pkg.name` (a dot, not leading): the key as written;
//! - `name` (no dot): the package's own class or function of that name if
//!   it declares one, otherwise `builtin.name` (so `function: new` binds
//!   `builtin.new` unless the package defines a function `new`);
//! - `none` or `void` (any case), for `outputCls` only: no output object;
//! - `builtin.logical.name`, the original's names of builtin functions, is
//!   read as `builtin.name` with a warning.

use std::collections::BTreeSet;

pub(crate) const BUILTIN: &str = "builtin";

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '~')
}

/// Checks a package name: letters, digits, `_`, `-`, `~`; no `.`.
pub(crate) fn check_package_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("package name must not be empty".into());
    }
    if let Some(c) = name.chars().find(|c| !is_id_char(*c)) {
        return Err(format!(
            "package name `{name}` contains {c:?}; allowed are letters, digits and _ - ~ (no `.`: a key's package ends at its first dot)"
        ));
    }
    Ok(())
}

/// Checks a class or function name: segments of letters, digits, `_`, `-`,
/// `~`, separated by single dots.
pub(crate) fn check_member_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name must not be empty"));
    }
    if let Some(c) = name.chars().find(|c| !is_id_char(*c) && *c != '.') {
        return Err(format!(
            "{what} name `{name}` contains {c:?}; allowed are letters, digits and . _ - ~"
        ));
    }
    if name.split('.').any(str::is_empty) {
        return Err(format!(
            "{what} name `{name}` has an empty segment; dots separate non-empty parts"
        ));
    }
    Ok(())
}

/// Checks a plain name (binding, file key, reference): letters, digits and
/// `. _ - ~`, as in ids.
pub(crate) fn check_plain_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name must not be empty"));
    }
    if let Some(c) = name.chars().find(|c| !is_id_char(*c) && *c != '.') {
        return Err(format!(
            "{what} name `{name}` contains {c:?}; allowed are letters, digits and . _ - ~"
        ));
    }
    Ok(())
}

/// A reference read into a qualified key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub key: String,
    /// A warning to report (the original's name of a builtin function).
    pub note: Option<String>,
}

/// What a reference points at; decides the bare-name fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Class,
    Function,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Class => "class",
            Kind::Function => "function",
        }
    }
}

/// Reads `raw` written in package `pkg`, whose own names of this kind are
/// `own`. Errors are messages about the syntax.
pub(crate) fn resolve(
    kind: Kind,
    pkg: &str,
    own: &BTreeSet<&str>,
    raw: &str,
) -> Result<Resolved, String> {
    let noun = kind.noun();
    let bad = |why: &str| Err(format!("invalid {noun} reference `{raw}`: {why}"));
    if raw.is_empty() {
        return bad("it is empty");
    }
    let (package, name) = if let Some(relative) = raw.strip_prefix('.') {
        (pkg, relative)
    } else if let Some((package, name)) = raw.split_once('.') {
        (package, name)
    } else if own.contains(raw) {
        (pkg, raw)
    } else {
        (BUILTIN, raw)
    };
    let relative = raw.starts_with('.');
    if !relative && check_package_name(package).is_err() {
        return bad("the package part is not a valid package name");
    }
    if check_member_name(noun, name).is_err() {
        return bad("expected `<package>.<name>`, `.<name>` or `<name>`");
    }
    if kind == Kind::Function
        && package == BUILTIN
        && let Some(short) = name.strip_prefix("logical.")
    {
        return Ok(Resolved {
            key: format!("{BUILTIN}.{short}"),
            note: Some(format!(
                "`{raw}` is the original's name for `{BUILTIN}.{short}`; read as `{BUILTIN}.{short}`"
            )),
        });
    }
    Ok(Resolved {
        key: format!("{package}.{name}"),
        note: None,
    })
}

/// `outputCls` values meaning "no output object".
pub(crate) fn is_no_class(raw: &str) -> bool {
    raw.eq_ignore_ascii_case("none") || raw.eq_ignore_ascii_case("void")
}

/// The default binding name: the function reference's last segment.
pub(crate) fn default_binding_name(function: &str) -> &str {
    function.rsplit('.').next().unwrap_or(function)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(kind: Kind, own: &[&str], raw: &str, expected: &str) {
        let own: BTreeSet<&str> = own.iter().copied().collect();
        let got = match resolve(kind, "media", &own, raw) {
            Ok(r) => r.key,
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, expected, "reference {raw:?}");
    }

    #[test]
    fn references_resolve_relative_qualified_and_bare() {
        check(Kind::Class, &[], ".video", "media.video");
        check(Kind::Class, &[], "other.video", "other.video");
        check(
            Kind::Function,
            &[],
            ".video.transcode",
            "media.video.transcode",
        );
        check(Kind::Function, &[], "new", "builtin.new");
        check(Kind::Function, &["new"], "new", "media.new");
        check(Kind::Function, &[], "transcode", "builtin.transcode");
        check(
            Kind::Function,
            &["transcode"],
            "transcode",
            "media.transcode",
        );
        check(Kind::Class, &[], "base", "builtin.base");
        check(Kind::Function, &[], "builtin.logical.new", "builtin.new");
    }

    #[test]
    fn bad_references_say_why() {
        check(
            Kind::Class,
            &[],
            "",
            "error: invalid class reference ``: it is empty",
        );
        check(
            Kind::Class,
            &[],
            "a..b",
            "error: invalid class reference `a..b`: expected `<package>.<name>`, `.<name>` or `<name>`",
        );
        check(
            Kind::Function,
            &[],
            "a b.c",
            "error: invalid function reference `a b.c`: the package part is not a valid package name",
        );
        check(
            Kind::Class,
            &[],
            ".",
            "error: invalid class reference `.`: expected `<package>.<name>`, `.<name>` or `<name>`",
        );
        check(
            Kind::Class,
            &[],
            ".a/b",
            "error: invalid class reference `.a/b`: expected `<package>.<name>`, `.<name>` or `<name>`",
        );
    }

    #[test]
    fn names_follow_id_rules() {
        assert!(check_package_name("media-2").is_ok());
        assert!(check_package_name("a.b").is_err());
        assert!(check_member_name("class", "record.random").is_ok());
        assert!(check_member_name("class", "record.").is_err());
        assert!(check_member_name("class", "a/b").is_err());
        assert!(check_plain_name("key", "video.mp4").is_ok());
        assert!(check_plain_name("key", "a b").is_err());
    }

    #[test]
    fn binding_names_default_to_the_last_segment() {
        assert_eq!(default_binding_name(".video.transcode"), "transcode");
        assert_eq!(default_binding_name("new"), "new");
    }
}
