//! Files of objects in calls: who may reach which key (G7), and the URLs a
//! task or a `file` call gets. Pure apart from presigning (no IO): the
//! caller loads the objects and checks uploads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use oprc_blob::{BlobPath, BlobStore, Method, Signer};
use oprc_core::{Caller, ClassKey, InvocationError, ObjectRecord};
use oprc_package::{KeyAccess, ResolvedClass};

use crate::error::codes;
use crate::step::failure;

/// The blob store as calls use it.
#[derive(Clone)]
pub struct Files {
    pub store: Arc<dyn BlobStore>,
    /// Signs the node's own URLs (allocations; files in relay mode).
    pub signer: Signer,
    /// How long a URL handed out stays valid.
    pub url_ttl: Duration,
    /// An upload older than this is not committed (the collector may be
    /// deleting it): see ADR 0009.
    pub max_upload_age: Duration,
}

/// How an object is related to the call that reaches its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relation {
    /// The call's main or output object.
    Own,
    /// An object the main object references (`refSpec`).
    Reference,
    /// Named by the caller, with no tie to the call (a `file` call).
    Named,
}

/// Why a key is out of reach: the modifier and who may reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub modifier: &'static str,
    pub why: &'static str,
}

/// Whether `caller` may reach a key (or reference) with modifier `access`
/// of an object of class `cls`, related to the call as `relation` (G7).
pub(crate) fn may_reach(
    access: KeyAccess,
    cls: &ClassKey,
    caller: &Caller,
    relation: Relation,
) -> Result<(), Refused> {
    let from = caller.class();
    match access {
        KeyAccess::Public => Ok(()),
        KeyAccess::Dependent if from.is_some() && relation != Relation::Named => Ok(()),
        KeyAccess::Dependent => Err(Refused {
            modifier: "DEPENDENT",
            why: "only tasks that have the object as their main or output object, or a reference of it, may reach it",
        }),
        KeyAccess::Internal if from.is_some_and(|f| f.package() == cls.package()) => Ok(()),
        KeyAccess::Internal => Err(Refused {
            modifier: "INTERNAL",
            why: "only functions of the same package may reach it",
        }),
        KeyAccess::Private if from == Some(cls) => Ok(()),
        KeyAccess::Private => Err(Refused {
            modifier: "PRIVATE",
            why: "only functions of the same class may reach it",
        }),
    }
}

/// The refusal as an invocation error (HTTP 403).
pub(crate) fn forbidden(cls: &ClassKey, key: &str, r: &Refused) -> oprc_core::InvocationError {
    failure(
        codes::FORBIDDEN,
        format!(
            "file key `{key}` of class `{cls}` is {}: {}",
            r.modifier, r.why
        ),
    )
}

pub(crate) fn path_of(obj: &ObjectRecord, version: &str, key: &str) -> Option<BlobPath> {
    BlobPath::new(obj.meta.cls.clone(), obj.meta.id.clone(), version, key).ok()
}

/// The URLs of one task.
#[derive(Debug, Default)]
pub(crate) struct TaskUrls {
    pub main_get: BTreeMap<String, String>,
    pub main_put: BTreeMap<String, String>,
    pub output_put: BTreeMap<String, String>,
    pub alloc_main: Option<String>,
    pub alloc_output: Option<String>,
}

/// What a task's URLs are made from.
pub(crate) struct TaskFiles<'a> {
    pub files: &'a Files,
    /// The class whose function runs (the caller of every file it reaches).
    pub class: &'a ResolvedClass,
    pub main: Option<&'a ObjectRecord>,
    /// Whether the task may write the main object.
    pub writes_main: bool,
    pub output: Option<(&'a ObjectRecord, &'a ResolvedClass)>,
    /// The main object's references: name, its `refSpec`'s class as
    /// resolved, and the object (absent ones are left out).
    pub refs: Vec<(String, Arc<ResolvedClass>, Arc<ObjectRecord>)>,
    /// The version new files of this task get (the invocation id).
    pub version: &'a str,
}

fn presign(files: &Files, method: Method, path: &BlobPath) -> Option<String> {
    match files.store.presign(method, path, files.url_ttl) {
        Ok(url) => Some(url),
        Err(e) => {
            tracing::warn!(%path, error = %e, "cannot presign a file URL");
            None
        }
    }
}

/// GET URLs of the committed versions of `obj` that `caller` may reach,
/// named `prefix` + key.
fn get_urls(
    t: &TaskFiles<'_>,
    caller: &Caller,
    obj: &ObjectRecord,
    class: &ResolvedClass,
    relation: Relation,
    prefix: &str,
    out: &mut BTreeMap<String, String>,
) {
    for (key, version) in &obj.meta.ver_ids {
        let Some(spec) = class.keys.get(key) else {
            continue;
        };
        if may_reach(spec.access, &class.key, caller, relation).is_err() {
            continue;
        }
        if let Some(url) =
            path_of(obj, version, key).and_then(|p| presign(t.files, Method::Get, &p))
        {
            out.insert(format!("{prefix}{key}"), url);
        }
    }
}

/// PUT URLs of new versions of every key of `obj`'s class.
fn put_urls(
    t: &TaskFiles<'_>,
    obj: &ObjectRecord,
    class: &ResolvedClass,
) -> BTreeMap<String, String> {
    class
        .keys
        .keys()
        .filter_map(|key| {
            let url =
                path_of(obj, t.version, key).and_then(|p| presign(t.files, Method::Put, &p))?;
            Some((key.clone(), url))
        })
        .collect()
}

fn alloc_url(t: &TaskFiles<'_>, obj: &ObjectRecord, class: &ResolvedClass) -> Option<String> {
    if class.keys.is_empty() {
        return None;
    }
    let keys: Vec<String> = class.keys.keys().cloned().collect();
    Some(t.files.signer.alloc_url(
        &obj.meta.cls,
        &obj.meta.id,
        t.version,
        &keys,
        t.files.url_ttl,
    ))
}

/// Every URL a task gets: GET URLs of the main object's current versions
/// (a key with no version has none) and of its references' (`REF.KEY`, as
/// far as the rules let the class reach them), and PUT URLs and allocation
/// URLs for new versions of the main (when the task may write it) and the
/// output object.
pub(crate) fn task_urls(t: &TaskFiles<'_>) -> TaskUrls {
    let mut urls = TaskUrls::default();
    if let Some(main) = t.main {
        let caller = Caller::Function {
            cls: t.class.key.clone(),
        };
        get_urls(
            t,
            &caller,
            main,
            t.class,
            Relation::Own,
            "",
            &mut urls.main_get,
        );
        if t.writes_main {
            urls.main_put = put_urls(t, main, t.class);
            urls.alloc_main = alloc_url(t, main, t.class);
        }
        for (name, ref_class, obj) in &t.refs {
            let Some(spec) = t.class.refs.get(name) else {
                continue;
            };
            if may_reach(spec.access, &t.class.key, &caller, Relation::Own).is_err() {
                continue;
            }
            get_urls(
                t,
                &caller,
                obj,
                ref_class,
                Relation::Reference,
                &format!("{name}."),
                &mut urls.main_get,
            );
        }
    }
    if let Some((out, class)) = t.output {
        urls.output_put = put_urls(t, out, class);
        urls.alloc_output = alloc_url(t, out, class);
    }
    urls
}

/// The keys a completion reports as updated, as they will be committed:
/// known keys of the class once each, and the others (ignored).
pub(crate) fn updated_keys(
    class: &ResolvedClass,
    reported: &[String],
) -> (Vec<String>, Vec<String>) {
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for key in reported {
        let list = if class.keys.contains_key(key) {
            &mut known
        } else {
            &mut unknown
        };
        if !list.contains(key) {
            list.push(key.clone());
        }
    }
    (known, unknown)
}

/// Checks that `path` was uploaded, recently enough to commit (ADR 0009:
/// the collector deletes uncommitted versions older than the limit).
pub(crate) async fn check_upload(files: &Files, path: &BlobPath) -> Result<(), InvocationError> {
    match files.store.head(path).await {
        Ok(Some(meta)) => {
            let age_ms = crate::types::now_ms().saturating_sub(meta.modified_ms);
            let limit = i64::try_from(files.max_upload_age.as_millis()).unwrap_or(i64::MAX);
            if age_ms > limit {
                return Err(failure(
                    codes::INVALID_ARGUMENT,
                    format!(
                        "the upload of `{}` is {} s old, older than the {} s an upload may wait for its commit; upload it again",
                        path.key,
                        age_ms / 1000,
                        limit / 1000
                    ),
                ));
            }
            Ok(())
        }
        Ok(None) => Err(failure(
            codes::NOT_FOUND,
            format!(
                "nothing was uploaded to `{}` at version `{}`",
                path.key, path.version
            ),
        )),
        Err(e) => Err(failure(
            codes::STORAGE,
            format!("cannot check the upload of `{}`: {e}", path.key),
        )),
    }
}

/// Checks every upload a completion reports (G3: a commit never switches
/// to a version that is not there).
pub(crate) async fn check_uploads(
    files: &Files,
    paths: &[BlobPath],
) -> Result<(), InvocationError> {
    let checks = paths.iter().map(|p| check_upload(files, p));
    for result in futures_util::future::join_all(checks).await {
        result.map_err(|mut e| {
            if e.code == codes::NOT_FOUND {
                e.code = codes::BAD_COMPLETION.to_owned();
                e.message = format!("the function reported an updated file, but {}", e.message);
            }
            e
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cls(s: &str) -> ClassKey {
        ClassKey::new(s).unwrap()
    }

    fn class(key: &str) -> ResolvedClass {
        serde_json::from_value(serde_json::json!({
            "key": key, "package": "p", "name": "c", "disabled": false, "parents": [],
            "ancestors": [], "bindings": {}, "refs": {}, "config": {},
            "keys": {
                "a": {"name": "a", "access": "PUBLIC", "inheritedFrom": null},
                "b": {"name": "b", "access": "PRIVATE", "inheritedFrom": null},
            },
        }))
        .expect("class fixture")
    }

    #[test]
    fn a_task_writes_versions_named_by_its_invocation() {
        let dir = std::env::temp_dir().join(format!("oprc-files-{}", std::process::id()));
        let signer = Signer::new(b"k".to_vec(), "http://n");
        let files = Files {
            store: Arc::new(oprc_blob::DirStore::open(&dir, signer.clone()).unwrap()),
            signer,
            url_ttl: Duration::from_secs(60),
            max_upload_age: Duration::from_secs(60),
        };
        let c = class("p.c");
        let mut main = ObjectRecord::new(
            c.key.clone(),
            oprc_core::ObjectId::new("o").unwrap(),
            serde_json::json!({}),
        );
        main.meta.ver_ids.insert("a".into(), "v0".into());
        let urls = |writes_main| {
            task_urls(&TaskFiles {
                files: &files,
                class: &c,
                main: Some(&main),
                writes_main,
                output: None,
                refs: Vec::new(),
                version: "inv-7",
            })
        };
        let u = urls(true);
        // Only the key with a version can be read, at that version.
        assert_eq!(u.main_get.keys().collect::<Vec<_>>(), ["a"]);
        assert!(u.main_get["a"].contains("/blobs/p.c/o/v0/a?m=GET"));
        // Every key can be written, at the invocation's version: a replay of
        // the same invocation writes the same paths.
        assert!(u.main_put["a"].contains("/blobs/p.c/o/inv-7/a?m=PUT"));
        assert!(u.main_put["b"].contains("/blobs/p.c/o/inv-7/b?m=PUT"));
        assert!(
            u.alloc_main
                .unwrap()
                .contains("/alloc/p.c/o/inv-7?keys=a,b")
        );
        let ro = urls(false);
        assert!(
            ro.main_put.is_empty() && ro.alloc_main.is_none(),
            "an immutable task writes nothing"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_access_matrix() {
        let own = cls("p.a");
        let outside = Caller::External;
        let same_class = Caller::Function { cls: own.clone() };
        let same_package = Caller::Function { cls: cls("p.b") };
        let other_package = Caller::Function { cls: cls("q.a") };
        use KeyAccess::*;
        use Relation::*;
        let cases = [
            (Public, &outside, Named, true),
            (Public, &other_package, Reference, true),
            (Dependent, &outside, Named, false),
            (Dependent, &same_class, Named, false),
            (Dependent, &other_package, Own, true),
            (Dependent, &other_package, Reference, true),
            (Internal, &outside, Named, false),
            (Internal, &same_package, Reference, true),
            (Internal, &other_package, Reference, false),
            (Private, &same_package, Own, false),
            (Private, &same_class, Reference, true),
            (Private, &outside, Named, false),
        ];
        for (access, caller, relation, allowed) in cases {
            assert_eq!(
                may_reach(access, &own, caller, relation).is_ok(),
                allowed,
                "{access:?} {caller:?} {relation:?}"
            );
        }
    }
}
