//! What a handler sees of one task: [`Context`] and [`Object`].

use std::collections::BTreeMap;
use std::str::FromStr;

use oprc_core::{ClassKey, Completion, ObjectId, ObjectMeta, ObjectRecord, ObjectUpdate, Task};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::TaskError;
use crate::calls::Calls;

/// One object of a task (`main` or `output`): metadata, data and file URLs,
/// with change tracking.
///
/// Any mutable access to the data ([`data_mut`](Self::data_mut),
/// [`set`](Self::set), ...) marks the object changed; a changed object's
/// whole data goes back in the completion and replaces the stored data. An
/// object only read is not sent back at all, so read-only calls cost no
/// write.
#[derive(Debug, Clone)]
pub struct Object {
    record: ObjectRecord,
    changed: bool,
    get_urls: BTreeMap<String, String>,
    put_urls: BTreeMap<String, String>,
    updated_keys: Vec<String>,
}

impl Object {
    /// Wraps a record with the file URLs the platform sent for it.
    pub fn new(
        record: ObjectRecord,
        get_urls: BTreeMap<String, String>,
        put_urls: BTreeMap<String, String>,
    ) -> Self {
        Self {
            record,
            changed: false,
            get_urls,
            put_urls,
            updated_keys: Vec::new(),
        }
    }

    pub fn id(&self) -> &ObjectId {
        &self.record.meta.id
    }

    pub fn cls(&self) -> &ClassKey {
        &self.record.meta.cls
    }

    /// The object's revision when the task was made.
    pub fn revision(&self) -> u64 {
        self.record.meta.revision
    }

    /// Platform-owned metadata (read-only for functions).
    pub fn meta(&self) -> &ObjectMeta {
        &self.record.meta
    }

    /// The object as it was sent, with the data as it is now.
    pub fn record(&self) -> &ObjectRecord {
        &self.record
    }

    /// The structured state.
    pub fn data(&self) -> &Value {
        &self.record.data
    }

    /// The structured state, for changing; marks the object changed.
    pub fn data_mut(&mut self) -> &mut Value {
        self.changed = true;
        &mut self.record.data
    }

    /// Replaces the data whole; marks the object changed.
    pub fn set_data(&mut self, data: Value) {
        self.changed = true;
        self.record.data = data;
    }

    /// The data deserialized into `T`.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        T::deserialize(&self.record.data).map_err(|e| {
            TaskError::new(format!(
                "data of object {} does not have the expected shape: {e}",
                self.id()
            ))
        })
    }

    /// The top-level field `key` of the data, when the data is an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.record.data.get(key)
    }

    /// Sets the top-level field `key` (data that is not a JSON object is
    /// replaced by one); marks the object changed.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.data_map().insert(key.into(), value.into());
    }

    /// Removes the top-level field `key`; marks the object changed.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.data_map().remove(key)
    }

    /// The data as a JSON map (replacing data that is not an object by an
    /// empty one); marks the object changed.
    pub fn data_map(&mut self) -> &mut serde_json::Map<String, Value> {
        let data = self.data_mut();
        if !data.is_object() {
            *data = Value::Object(serde_json::Map::new());
        }
        data.as_object_mut().expect("data was made an object above")
    }

    /// Sends the data back even without a mutable access.
    pub fn mark_changed(&mut self) {
        self.changed = true;
    }

    /// Whether the data will be sent back.
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    /// The presigned GET URL of file `key` (main object only; a referenced
    /// object's file is `REF.KEY`). An error when the platform sent none:
    /// the file has no version yet, or this function may not read it.
    pub fn get_url(&self, key: &str) -> Result<&str, TaskError> {
        self.get_urls.get(key).map(String::as_str).ok_or_else(|| {
            TaskError::new(format!(
                "no download URL for file key {key:?} of object {} (no version yet, or not \
                 accessible to this function); readable keys: {}",
                self.id(),
                listed(&self.get_urls)
            ))
        })
    }

    /// The presigned PUT URL for a new version of file `key`. Upload there,
    /// then call [`mark_key_updated`](Self::mark_key_updated), or use
    /// [`write_file`](Self::write_file), which does both.
    pub fn put_url(&self, key: &str) -> Result<&str, TaskError> {
        self.put_urls.get(key).map(String::as_str).ok_or_else(|| {
            TaskError::new(format!(
                "no upload URL for file key {key:?} of object {}; writable keys: {}",
                self.id(),
                listed(&self.put_urls)
            ))
        })
    }

    /// All presigned GET URLs, by file key.
    pub fn get_urls(&self) -> &BTreeMap<String, String> {
        &self.get_urls
    }

    /// All presigned PUT URLs, by file key.
    pub fn put_urls(&self) -> &BTreeMap<String, String> {
        &self.put_urls
    }

    /// Reports that file `key` was uploaded through its PUT URL.
    pub fn mark_key_updated(&mut self, key: impl Into<String>) {
        self.updated_keys.push(key.into());
    }

    /// File keys reported as uploaded, in order.
    pub fn updated_keys(&self) -> &[String] {
        &self.updated_keys
    }

    /// The completion entry for this object; `None` means no change.
    pub fn into_update(self) -> Option<ObjectUpdate> {
        if !self.changed && self.updated_keys.is_empty() {
            return None;
        }
        Some(ObjectUpdate {
            data: self.changed.then_some(self.record.data),
            updated_keys: self.updated_keys,
        })
    }
}

/// The keys of a URL map, for messages.
fn listed(urls: &BTreeMap<String, String>) -> String {
    if urls.is_empty() {
        return "none".to_owned();
    }
    urls.keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything a handler gets for one task.
#[derive(Debug, Clone)]
pub struct Context {
    id: String,
    func_key: String,
    fb_name: String,
    args: BTreeMap<String, String>,
    body: Option<Value>,
    immutable: bool,
    ts: i64,
    main: Option<Object>,
    output: Option<Object>,
    /// Calls of other objects (`callUrl`, `callToken`, the key sequence;
    /// clones share the sequence). See `calls.rs`.
    pub(crate) calls: Calls,
}

impl Context {
    /// A context for `task` (public so handlers can be unit-tested without
    /// a server).
    pub fn new(task: Task) -> Self {
        let main = task
            .main
            .map(|r| Object::new(r, task.main_get_keys, task.main_put_keys));
        let output = task
            .output
            .map(|r| Object::new(r, BTreeMap::new(), task.output_keys));
        let calls = Calls::new(task.call_url, task.call_token, &task.id);
        Self {
            id: task.id,
            func_key: task.func_key,
            fb_name: task.fb_name,
            args: task.args,
            body: task.req_body,
            immutable: task.immutable,
            ts: task.ts,
            main,
            output,
            calls,
        }
    }

    /// The invocation id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The qualified function key, e.g. `example.random`.
    pub fn func_key(&self) -> &str {
        &self.func_key
    }

    /// The binding name the caller used, e.g. `random`.
    pub fn fb_name(&self) -> &str {
        &self.fb_name
    }

    /// Whether the call must leave the main object unchanged.
    pub fn is_immutable(&self) -> bool {
        self.immutable
    }

    /// The task's timestamp, milliseconds since the Unix epoch.
    pub fn ts(&self) -> i64 {
        self.ts
    }

    /// String arguments (query parameters of the call, binding defaults).
    pub fn args(&self) -> &BTreeMap<String, String> {
        &self.args
    }

    pub fn arg(&self, name: &str) -> Option<&str> {
        self.args.get(name).map(String::as_str)
    }

    /// The argument `name` parsed as `T`, or `default` when absent; a value
    /// that does not parse fails the task with a clear message.
    pub fn parse_arg<T: FromStr>(&self, name: &str, default: T) -> Result<T, TaskError>
    where
        T::Err: std::fmt::Display,
    {
        match self.args.get(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e| {
                TaskError::new(format!("argument {name:?} is invalid ({raw:?}): {e}"))
            }),
        }
    }

    /// The request body, if any.
    pub fn body(&self) -> Option<&Value> {
        self.body.as_ref()
    }

    /// The request body deserialized into `T` (an absent body is `null`, so
    /// `Option<T>` accepts it).
    pub fn body_as<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        T::deserialize(self.body.as_ref().unwrap_or(&Value::Null))
            .map_err(|e| TaskError::new(format!("request body is invalid: {e}")))
    }

    /// Whether the task carries a main object (false for class-level calls).
    pub fn has_main(&self) -> bool {
        self.main.is_some()
    }

    /// The object the function was called on; an error for class-level
    /// (`noMain`) calls.
    pub fn main(&self) -> Result<&Object, TaskError> {
        self.main.as_ref().ok_or_else(|| self.no_main())
    }

    /// The main object, for changing.
    pub fn main_mut(&mut self) -> Result<&mut Object, TaskError> {
        match self.main {
            Some(ref mut main) => Ok(main),
            None => Err(self.no_main()),
        }
    }

    /// The new output object (bindings with `outputCls`), if the platform
    /// sent one.
    pub fn output(&self) -> Option<&Object> {
        self.output.as_ref()
    }

    pub fn output_mut(&mut self) -> Option<&mut Object> {
        self.output.as_mut()
    }

    /// Ends an async handler: `Ok(ctx.reply(Some(json!(..))))`.
    pub fn reply(self, body: Option<Value>) -> Reply {
        Reply { ctx: self, body }
    }

    /// The successful completion: changed objects and `body`.
    pub fn into_completion(self, body: Option<Value>) -> Completion {
        Completion {
            id: Some(self.id),
            success: true,
            error_msg: None,
            main: self.main.and_then(Object::into_update),
            output: self.output.and_then(Object::into_update),
            body,
        }
    }

    fn no_main(&self) -> TaskError {
        TaskError::new(format!(
            "call of {:?} has no main object (class-level call)",
            self.fb_name
        ))
    }
}

/// What an async handler returns on success: the context (with its changes)
/// and the body. Made by [`Context::reply`].
#[derive(Debug)]
pub struct Reply {
    pub(crate) ctx: Context,
    pub(crate) body: Option<Value>,
}

impl Reply {
    pub fn into_completion(self) -> Completion {
        self.ctx.into_completion(self.body)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx(data: Value) -> Context {
        Context::new(
            serde_json::from_value(json!({
                "id": "i", "funcKey": "p.f", "fbName": "f", "ts": 1,
                "args": {"n": "7", "bad": "x"},
                "main": {"_meta": {"id": "o", "cls": "p.c", "revision": 2}, "data": data},
                "mainPutKeys": {"img": "http://put"},
            }))
            .unwrap(),
        )
    }

    fn check(edit: impl FnOnce(&mut Context), expected: Value) {
        let mut c = ctx(json!({"a": 1}));
        edit(&mut c);
        let completion = serde_json::to_value(c.into_completion(None)).unwrap();
        assert_eq!(completion, expected);
    }

    #[test]
    fn reading_sends_no_main() {
        check(
            |c| assert_eq!(c.main().unwrap().get("a"), Some(&json!(1))),
            json!({"id": "i", "success": true}),
        );
    }

    #[test]
    fn mutable_access_sends_whole_data() {
        check(
            |c| c.main_mut().unwrap().set("b", 2),
            json!({"id": "i", "success": true, "main": {"data": {"a": 1, "b": 2}}}),
        );
    }

    #[test]
    fn set_on_non_object_data_makes_an_object() {
        check(
            |c| {
                let m = c.main_mut().unwrap();
                m.set_data(json!([1]));
                m.set("x", "y");
            },
            json!({"id": "i", "success": true, "main": {"data": {"x": "y"}}}),
        );
    }

    #[test]
    fn updated_keys_alone_send_no_data() {
        check(
            |c| {
                let m = c.main_mut().unwrap();
                assert_eq!(m.put_url("img").unwrap(), "http://put");
                m.mark_key_updated("img");
            },
            json!({"id": "i", "success": true, "main": {"updatedKeys": ["img"]}}),
        );
    }

    #[test]
    fn args_parse_with_defaults_and_clear_errors() {
        let c = ctx(json!({}));
        assert_eq!(c.parse_arg("n", 1u32).unwrap(), 7);
        assert_eq!(c.parse_arg("missing", 3u32).unwrap(), 3);
        assert_eq!(
            c.parse_arg("bad", 1u32).unwrap_err().message(),
            r#"argument "bad" is invalid ("x"): invalid digit found in string"#
        );
        assert_eq!(c.body_as::<Option<u8>>().unwrap(), None);
    }

    #[test]
    fn missing_urls_and_main_fail_clearly() {
        let c = ctx(json!({}));
        assert_eq!(
            c.main().unwrap().get_url("img").unwrap_err().message(),
            r#"no download URL for file key "img" of object o (no version yet, or not accessible to this function); readable keys: none"#
        );
        let task: Task =
            serde_json::from_value(json!({"id": "i", "funcKey": "p.f", "fbName": "f", "ts": 1}))
                .unwrap();
        let c = Context::new(task);
        assert_eq!(
            c.main().unwrap_err().message(),
            r#"call of "f" has no main object (class-level call)"#
        );
    }
}
