//! The builtin `file` and the `keys` of `new`: which keys a call names and
//! may reach, and the URLs it answers. Pure (presigning needs no IO); the
//! commit's uploads are checked by the caller.

use std::collections::BTreeMap;

use oprc_blob::Method;
use oprc_core::{Caller, InvocationError, ObjectRecord};
use oprc_package::ResolvedClass;
use serde_json::json;

use crate::builtin::invalid;
use crate::error::codes;
use crate::files::{Files, Relation, forbidden, may_reach, path_of};
use crate::step::failure;

/// What a `file` call asks for (its args).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileCall {
    /// GET URLs of current versions (no args).
    Get,
    /// PUT URLs for new versions (`put=true`).
    Put,
    /// Switch to the uploaded versions of `version` (`commit=VERSION`).
    Commit(String),
}

/// What versions uploaded from outside start with. A commit takes only
/// those, so a client cannot make an upload of a failed task live.
const OUTSIDE: &str = "up-";

/// The version an upload from outside allocated by call `inv_id` gets.
pub(crate) fn outside_version(inv_id: &str) -> String {
    format!("{OUTSIDE}{inv_id}")
}

/// Reads a `file` call's args: `key` (optional), `put=true` or
/// `commit=VERSION`.
pub(crate) fn parse(
    args: &BTreeMap<String, String>,
) -> Result<(FileCall, Option<&str>), InvocationError> {
    for name in args.keys() {
        if !matches!(name.as_str(), "key" | "put" | "commit") {
            return Err(invalid(format!(
                "`file` takes the args `key`, `put=true` and `commit=VERSION`, not `{name}`"
            )));
        }
    }
    let put = match args.get("put").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(invalid(format!(
                "`put` is `true` or `false`, not `{other}`"
            )));
        }
    };
    let call = match (put, args.get("commit")) {
        (true, Some(_)) => {
            return Err(invalid(
                "`put` and `commit` are two calls: upload first, then commit",
            ));
        }
        (true, None) => FileCall::Put,
        (false, Some(v)) => {
            oprc_core::ObjectId::new(v.as_str())
                .map_err(|e| invalid(format!("`commit` names a version: {e}")))?;
            if !v.starts_with(OUTSIDE) {
                return Err(invalid(format!(
                    "`commit` takes the `version` that `new` with `keys` or `file?put=true` answered, not `{v}`"
                )));
            }
            FileCall::Commit(v.clone())
        }
        (false, None) => FileCall::Get,
    };
    Ok((call, args.get("key").map(String::as_str)))
}

/// The keys a call on `class` reaches: `key` alone (refused with the
/// reason when it is unknown or out of reach), or every key `caller` may
/// reach.
pub(crate) fn select<'a>(
    class: &'a ResolvedClass,
    caller: &Caller,
    key: Option<&str>,
) -> Result<Vec<&'a str>, InvocationError> {
    let Some(key) = key else {
        return Ok(class
            .keys
            .values()
            .filter(|spec| may_reach(spec.access, &class.key, caller, Relation::Named).is_ok())
            .map(|spec| spec.name.as_str())
            .collect());
    };
    let Some(spec) = class.keys.get(key) else {
        let known: Vec<&String> = class.keys.keys().collect();
        return Err(invalid(format!(
            "class `{}` has no file key `{key}` (its keys: {known:?})",
            class.key
        )));
    };
    may_reach(spec.access, &class.key, caller, Relation::Named)
        .map_err(|r| forbidden(&class.key, key, &r))?;
    Ok(vec![spec.name.as_str()])
}

/// The keys `new` was asked to give upload URLs for: each must be a key of
/// the class that the caller may reach.
pub(crate) fn check_new_keys(
    class: &ResolvedClass,
    caller: &Caller,
    keys: &[String],
) -> Result<(), InvocationError> {
    for key in keys {
        select(class, caller, Some(key))?;
    }
    Ok(())
}

fn presign(
    files: &Files,
    method: Method,
    obj: &ObjectRecord,
    version: &str,
    key: &str,
) -> Result<String, InvocationError> {
    let path = path_of(obj, version, key)
        .ok_or_else(|| invalid(format!("`{version}` cannot be a file version")))?;
    files
        .store
        .presign(method, &path, files.url_ttl)
        .map_err(|e| {
            failure(
                codes::STORAGE,
                format!("cannot make a URL for `{key}`: {e}"),
            )
        })
}

/// `{uploadUrls: {key: url}, version}`: PUT URLs of new versions of `keys`.
pub(crate) fn upload_urls(
    files: &Files,
    obj: &ObjectRecord,
    version: &str,
    keys: &[&str],
) -> Result<serde_json::Value, InvocationError> {
    let mut urls = serde_json::Map::new();
    for key in keys {
        urls.insert(
            (*key).to_owned(),
            presign(files, Method::Put, obj, version, key)?.into(),
        );
    }
    Ok(json!({"uploadUrls": urls, "version": version}))
}

/// `{urls: {key: url}}`: GET URLs of the current versions of `keys`. A key
/// asked for by name that has no version yet is a 404; unnamed ones
/// without a version are left out.
pub(crate) fn download_urls(
    files: &Files,
    obj: &ObjectRecord,
    keys: &[&str],
    named: bool,
) -> Result<serde_json::Value, InvocationError> {
    let mut urls = serde_json::Map::new();
    for key in keys {
        match obj.meta.ver_ids.get(*key) {
            Some(version) => {
                urls.insert(
                    (*key).to_owned(),
                    presign(files, Method::Get, obj, version, key)?.into(),
                );
            }
            None if named => {
                return Err(failure(
                    codes::NOT_FOUND,
                    format!(
                        "file `{key}` of object `{}` has no content yet",
                        obj.meta.id
                    ),
                ));
            }
            None => {}
        }
    }
    Ok(json!({ "urls": urls }))
}
