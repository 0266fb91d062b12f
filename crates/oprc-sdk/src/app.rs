//! [`App`]: the handler registry and task dispatch (no sockets here; see
//! `server.rs` for HTTP).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use oprc_core::{Completion, Task};
use serde_json::Value;

use crate::{Context, Reply, TaskError};

type SyncFn = dyn Fn(&mut Context) -> Result<Option<Value>, TaskError> + Send + Sync;
type BoxFuture = Pin<Box<dyn Future<Output = Result<Reply, TaskError>> + Send>>;
type AsyncFn = dyn Fn(Context) -> BoxFuture + Send + Sync;

#[derive(Clone)]
enum Handler {
    Sync(Arc<SyncFn>),
    Async(Arc<AsyncFn>),
}

/// Default limit of a task's size (the request body).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// A set of task handlers, served over HTTP by [`App::serve`] or
/// [`App::run`].
///
/// A task goes to the first handler whose name equals, in this order: the
/// task's `funcKey` (`example.random`), the function part of it (`random`),
/// or the binding name the caller used (`fbName`). So one worker can serve
/// several functions bound under the same name in different classes (an
/// override in a derived class) by registering them by function name.
#[derive(Clone)]
pub struct App {
    handlers: HashMap<String, Handler>,
    pub(crate) body_limit: usize,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl App {
    pub fn new() -> Self {
        Self {
            handlers: HashMap::new(),
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// Registers a synchronous handler. Its `Ok(Some(value))` becomes the
    /// completion's `body`. It runs on Tokio's blocking pool, so it may
    /// compute or block.
    ///
    /// # Panics
    /// When `name` is empty or already registered (a programming error).
    pub fn function<F>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(&mut Context) -> Result<Option<Value>, TaskError> + Send + Sync + 'static,
    {
        self.insert(name.into(), Handler::Sync(Arc::new(handler)));
        self
    }

    /// Registers an async handler. It owns the [`Context`] and gives it back
    /// through [`Context::reply`]:
    ///
    /// ```
    /// # use oprc_sdk::{App, Context};
    /// let app = App::new().async_function("touch", |mut ctx: Context| async move {
    ///     ctx.main_mut()?.set("touched", true);
    ///     Ok(ctx.reply(None))
    /// });
    /// ```
    ///
    /// # Panics
    /// When `name` is empty or already registered (a programming error).
    pub fn async_function<F, Fut>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Reply, TaskError>> + Send + 'static,
    {
        let handler: Arc<AsyncFn> = Arc::new(move |ctx| Box::pin(handler(ctx)) as BoxFuture);
        self.insert(name.into(), Handler::Async(handler));
        self
    }

    /// Limits the size of a task (request body); default 64 MiB.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The registered handler names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    fn insert(&mut self, name: String, handler: Handler) {
        assert!(!name.is_empty(), "handler name must not be empty");
        let previous = self.handlers.insert(name.clone(), handler);
        assert!(
            previous.is_none(),
            "a handler named {name:?} is already registered"
        );
    }

    fn lookup(&self, func_key: &str, fb_name: &str) -> Option<&Handler> {
        let short = func_key.rsplit('.').next().unwrap_or(func_key);
        [func_key, short, fb_name]
            .into_iter()
            .find_map(|name| self.handlers.get(name))
    }

    /// Runs one task and returns its completion. Never fails: an unknown
    /// function, a handler error or a panic is a `success: false`
    /// completion. Useful to test handlers without HTTP.
    pub async fn call(&self, task: Task) -> Completion {
        let id = task.id.clone();
        let Some(handler) = self.lookup(&task.func_key, &task.fb_name).cloned() else {
            let message = format!(
                "no handler for function {:?} (binding {:?}); this worker serves: {}",
                task.func_key,
                task.fb_name,
                match self.names().join(", ") {
                    s if s.is_empty() => "none".to_owned(),
                    s => s,
                }
            );
            return failure(Some(id), message);
        };
        let fb_name = task.fb_name.clone();
        let ctx = Context::new(task);
        let outcome = match handler {
            Handler::Sync(f) => {
                tokio::task::spawn_blocking(move || {
                    let mut ctx = ctx;
                    f(&mut ctx).map(|body| ctx.into_completion(body))
                })
                .await
            }
            // Spawned so that a panicking handler fails its task and not the
            // connection.
            Handler::Async(f) => tokio::spawn(async move { f(ctx).await })
                .await
                .map(|r| r.map(Reply::into_completion)),
        };
        match outcome {
            Ok(Ok(completion)) => completion,
            Ok(Err(e)) => {
                tracing::debug!(task = %id, fb = %fb_name, error = %e, "handler failed");
                failure(Some(id), e.message().to_owned())
            }
            Err(join) => {
                let message = match join.try_into_panic() {
                    Ok(panic) => panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".to_owned()),
                    Err(join) => join.to_string(),
                };
                tracing::error!(task = %id, fb = %fb_name, %message, "handler panicked");
                failure(Some(id), format!("handler panicked: {message}"))
            }
        }
    }
}

/// A failed completion.
pub(crate) fn failure(id: Option<String>, message: String) -> Completion {
    Completion {
        id,
        success: false,
        error_msg: Some(message),
        main: None,
        output: None,
        body: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn task(func_key: &str, fb_name: &str) -> Task {
        serde_json::from_value(json!({
            "id": "i", "funcKey": func_key, "fbName": fb_name, "ts": 1,
            "main": {"_meta": {"id": "o", "cls": "p.c", "revision": 1}, "data": {"n": 1}},
        }))
        .unwrap()
    }

    fn app() -> App {
        App::new()
            .function("speak", |_| Ok(Some(json!("base"))))
            .function("dog-speak", |_| Ok(Some(json!("override"))))
            .function("fail", |ctx| {
                ctx.main_mut()?.set("n", 2);
                Err(TaskError::new("nope"))
            })
            .function("panic", |_| panic!("boom"))
            .async_function("async", |mut ctx: Context| async move {
                ctx.main_mut()?.set("n", 5);
                Ok(ctx.reply(Some(json!("done"))))
            })
    }

    async fn check(func_key: &str, fb_name: &str, expected: Value) {
        let completion = app().call(task(func_key, fb_name)).await;
        assert_eq!(serde_json::to_value(completion).unwrap(), expected);
    }

    #[tokio::test]
    async fn function_key_wins_over_binding_name() {
        check(
            "p.dog-speak",
            "speak",
            json!({"id": "i", "success": true, "body": "override"}),
        )
        .await;
        check(
            "p.animal-speak",
            "speak",
            json!({"id": "i", "success": true, "body": "base"}),
        )
        .await;
    }

    #[tokio::test]
    async fn error_discards_changes() {
        check(
            "p.fail",
            "fail",
            json!({"id": "i", "success": false, "errorMsg": "nope"}),
        )
        .await;
    }

    #[tokio::test]
    async fn panic_fails_the_task() {
        check(
            "p.panic",
            "panic",
            json!({"id": "i", "success": false, "errorMsg": "handler panicked: boom"}),
        )
        .await;
    }

    #[tokio::test]
    async fn async_handler_changes_main() {
        check(
            "p.async",
            "async",
            json!({"id": "i", "success": true, "main": {"data": {"n": 5}}, "body": "done"}),
        )
        .await;
    }

    #[tokio::test]
    async fn unknown_function_names_what_is_served() {
        check(
            "p.x",
            "y",
            json!({"id": "i", "success": false, "errorMsg":
                "no handler for function \"p.x\" (binding \"y\"); this worker serves: async, dog-speak, fail, panic, speak"}),
        )
        .await;
    }

    #[test]
    #[should_panic(expected = "already registered")]
    fn duplicate_names_panic() {
        let _ = App::new()
            .function("f", |_| Ok(None))
            .function("f", |_| Ok(None));
    }
}
