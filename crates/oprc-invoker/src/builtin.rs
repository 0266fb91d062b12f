//! The builtin functions (`builtin.*`), executed in process. Like
//! [`crate::apply`], these decide; the caller does the IO.

use std::collections::BTreeMap;

use oprc_core::{InvocationError, ObjectId, ObjectRecord};
use oprc_package::{ResolvedBinding, ResolvedClass};
use serde::Deserialize;

use crate::error::codes;

/// A builtin function, by the last segment of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    New,
    Get,
    Update,
    Delete,
    Copy,
    Project,
    File,
}

impl Builtin {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "new" => Self::New,
            "get" => Self::Get,
            "update" => Self::Update,
            "delete" => Self::Delete,
            "copy" => Self::Copy,
            "project" => Self::Project,
            "file" => Self::File,
            _ => return None,
        })
    }

    /// Whether it changes its main object (and so runs in the inbox):
    /// `file` does when it commits uploads (arg `commit`).
    pub fn mutates_main(self, args: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Update | Self::Delete => true,
            Self::File => args.contains_key("commit"),
            _ => false,
        }
    }

    /// Whether it is called at class level, without a main object.
    pub fn class_level(self) -> bool {
        matches!(self, Self::New)
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> InvocationError {
    InvocationError {
        code: codes::INVALID_ARGUMENT.to_owned(),
        message: message.into(),
    }
}

/// The body of `new`: `{id?, data?, keys?, refs?}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBody {
    id: Option<String>,
    data: Option<serde_json::Value>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    refs: BTreeMap<String, String>,
}

/// Builds the object `new` creates (revision 1), and gives the file keys
/// the caller asked upload URLs for.
pub(crate) fn new_object(
    class: &ResolvedClass,
    body: Option<&serde_json::Value>,
) -> Result<(ObjectRecord, Vec<String>), InvocationError> {
    let body: NewBody = match body {
        None | Some(serde_json::Value::Null) => NewBody::default(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| invalid(format!("body of `new` is invalid: {e}")))?,
    };
    let id = match body.id {
        Some(id) => ObjectId::new(id).map_err(|e| invalid(e.to_string()))?,
        None => ObjectId::generate(),
    };
    let mut refs = BTreeMap::new();
    for (name, target) in body.refs {
        if !class.refs.contains_key(&name) {
            let known: Vec<&String> = class.refs.keys().collect();
            return Err(invalid(format!(
                "class `{}` has no reference `{name}` (its references: {known:?})",
                class.key
            )));
        }
        refs.insert(
            name,
            ObjectId::new(target).map_err(|e| invalid(e.to_string()))?,
        );
    }
    let data = body
        .data
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    let mut obj = ObjectRecord::new(class.key.clone(), id, data);
    obj.meta.refs = refs;
    obj.meta.revision = 1;
    Ok((obj, body.keys))
}

/// The new state `update` gives: the body replaces the data, or is merged
/// into it (JSON merge patch, RFC 7386) when the binding sets
/// `override.merge: true`.
pub(crate) fn updated(
    binding: &ResolvedBinding,
    main: &ObjectRecord,
    body: Option<&serde_json::Value>,
) -> Result<Option<ObjectRecord>, InvocationError> {
    let Some(body) = body else {
        return Err(invalid("`update` needs a JSON body with the new data"));
    };
    let merge = binding
        .override_options
        .get("merge")
        .is_some_and(|v| v == &serde_json::Value::Bool(true) || v == "true");
    let mut data = main.data.clone();
    if merge {
        json_patch::merge(&mut data, body);
    } else {
        data = body.clone();
    }
    if data == main.data {
        return Ok(None);
    }
    let mut next = main.clone();
    next.data = data;
    next.meta.revision += 1;
    Ok(Some(next))
}

/// A copy of `main` under a new id (body `{id?}`; by default the
/// invocation's id, like a task's output object, so a macro step's copy
/// has the id listed in `macroIds` and a replay makes no second copy).
pub(crate) fn copy_of(
    main: &ObjectRecord,
    body: Option<&serde_json::Value>,
    inv_id: &oprc_core::InvocationId,
) -> Result<ObjectRecord, InvocationError> {
    let id = match body.and_then(|b| b.get("id")) {
        Some(serde_json::Value::String(id)) => {
            ObjectId::new(id.clone()).map_err(|e| invalid(e.to_string()))?
        }
        Some(other) => return Err(invalid(format!("`id` must be a string, not {other}"))),
        None => ObjectId::new(inv_id.as_str()).map_err(|e| invalid(e.to_string()))?,
    };
    let mut obj = ObjectRecord::new(main.meta.cls.clone(), id, main.data.clone());
    obj.meta.refs = main.meta.refs.clone();
    obj.meta.revision = 1;
    Ok(obj)
}

/// `project`: the values at a JSONPath (RFC 9535) given as arg `path` (or
/// body `{"path": ...}`), as a JSON array.
pub(crate) fn project(
    main: &ObjectRecord,
    args: &BTreeMap<String, String>,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value, InvocationError> {
    let path = args
        .get("path")
        .map(String::as_str)
        .or_else(|| body.and_then(|b| b.get("path")).and_then(|p| p.as_str()))
        .ok_or_else(|| invalid("`project` needs a JSONPath in arg `path`, e.g. path=$.name"))?;
    let path = oprc_package::dataflow::parse_path(path).map_err(invalid)?;
    let values = path.query(&main.data).all().into_iter().cloned().collect();
    Ok(serde_json::Value::Array(values))
}

#[cfg(test)]
mod tests {
    use oprc_core::ClassKey;
    use serde_json::json;

    use super::*;

    fn obj(data: serde_json::Value) -> ObjectRecord {
        let mut o = ObjectRecord::new(
            ClassKey::new("p.c").unwrap(),
            ObjectId::new("o").unwrap(),
            data,
        );
        o.meta.revision = 1;
        o
    }

    fn binding(merge: bool) -> ResolvedBinding {
        serde_json::from_value(json!({
            "name": "update", "function": "builtin.update", "functionType": "BUILTIN",
            "access": "PUBLIC", "immutable": false, "noMain": false, "defaultArgs": {},
            "override": if merge { json!({"merge": true}) } else { json!({}) },
        }))
        .unwrap()
    }

    #[test]
    fn update_replaces_or_merges() {
        let main = obj(json!({"a": 1, "b": {"c": 2}}));
        let replaced = updated(&binding(false), &main, Some(&json!({"x": 1}))).unwrap();
        assert_eq!(replaced.unwrap().data, json!({"x": 1}));
        let merged = updated(
            &binding(true),
            &main,
            Some(&json!({"b": {"d": 3}, "a": null})),
        )
        .unwrap()
        .unwrap();
        assert_eq!(merged.data, json!({"b": {"c": 2, "d": 3}}));
        assert_eq!(merged.meta.revision, 2);
        assert!(
            updated(&binding(false), &main, Some(&main.data))
                .unwrap()
                .is_none()
        );
        assert!(updated(&binding(false), &main, None).is_err());
    }

    #[test]
    fn project_selects_by_jsonpath() {
        let main = obj(json!({"a": [{"n": 1}, {"n": 2}]}));
        let args = BTreeMap::from([("path".to_owned(), "$.a[*].n".to_owned())]);
        assert_eq!(project(&main, &args, None).unwrap(), json!([1, 2]));
        let bad = BTreeMap::from([("path".to_owned(), "$[".to_owned())]);
        assert!(project(&main, &bad, None).is_err());
    }

    #[test]
    fn paths_that_would_cost_unbounded_stack_or_time_are_refused() {
        let main = obj(json!({"a": 1}));
        let refused = |path: String| {
            let args = BTreeMap::from([("path".to_owned(), path)]);
            project(&main, &args, None).unwrap_err().message
        };
        let deep = format!("$[?{}@.a{}]", "(".repeat(1000), ")".repeat(1000));
        assert!(refused(deep).contains("at most 512"), "too long");
        let nested = format!("$[?{}@.a{}]", "(".repeat(40), ")".repeat(40));
        assert!(refused(nested).contains("nests brackets"));
        let filters = format!("${}", "[?@".repeat(8)) + &"]".repeat(8);
        assert!(refused(filters).contains("filters"));
        // Quoted brackets do not count.
        let args = BTreeMap::from([("path".to_owned(), "$['((((((((((((((((((']".to_owned())]);
        assert!(project(&main, &args, None).is_ok());
    }

    #[test]
    fn copy_gets_a_new_id() {
        let main = obj(json!({"k": 1}));
        let inv = oprc_core::InvocationId::new("inv-1").unwrap();
        let c = copy_of(&main, None, &inv).unwrap();
        assert_eq!(c.meta.id.as_str(), "inv-1");
        assert_ne!(c.meta.id, main.meta.id);
        assert_eq!(c.data, main.data);
        assert_eq!(
            copy_of(&main, Some(&json!({"id": "x"})), &inv)
                .unwrap()
                .meta
                .id
                .as_str(),
            "x"
        );
    }
}
