//! Calls from a function to other objects' functions, through the node:
//! [`Call`], [`Context::invoke`] and [`CallError`].
//!
//! The node gives each task a `callUrl` (its API base) and a `callToken` (a
//! bearer token that expires with the task and grants only the invocation
//! routes). A call is `POST {callUrl}/api/classes/{cls}[/objects/{oid}]/invokes/{fb}`
//! with the arguments in the query and an `Idempotency-Key` of
//! `{task id}/{seq}`, where `seq` counts the task's calls from 1: a replayed
//! task makes the same calls with the same keys, and the node does not
//! repeat their effects.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_LENGTH};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use crate::Context;

/// How long a call waits for its answer by default (a sync call answers
/// once the called function is done).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a non-JSON answer a message quotes.
const EXCERPT: usize = 200;

/// One call of another object's function (or of a class-level one), made
/// with [`Context::invoke`].
///
/// ```
/// # use oprc_sdk::Call;
/// # use serde_json::json;
/// let inc = Call::object("example.counter", "c1", "increment").arg("by", 2);
/// let new = Call::class("example.counter", "new").body(json!({"data": {"count": 0}}));
/// let later = Call::object("example.counter", "c1", "reset").asynchronous();
/// ```
#[derive(Debug, Clone)]
pub struct Call {
    cls: String,
    oid: Option<String>,
    fb: String,
    args: BTreeMap<String, String>,
    body: Option<Value>,
    asynchronous: bool,
    timeout: Duration,
}

impl Call {
    /// A call of binding `fb` of object `oid` of class `cls`.
    pub fn object(cls: impl Into<String>, oid: impl Into<String>, fb: impl Into<String>) -> Self {
        Self::new(cls.into(), Some(oid.into()), fb.into())
    }

    /// A class-level call of binding `fb` of class `cls` (e.g. `new`, or a
    /// `noMain` binding).
    pub fn class(cls: impl Into<String>, fb: impl Into<String>) -> Self {
        Self::new(cls.into(), None, fb.into())
    }

    fn new(cls: String, oid: Option<String>, fb: String) -> Self {
        Self {
            cls,
            oid,
            fb,
            args: BTreeMap::new(),
            body: None,
            asynchronous: false,
            timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// A string argument (`true`/`false` for bools, numbers as written). A
    /// name that starts with `_` is refused when the call is made (the node
    /// reads those as flags).
    pub fn arg(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.args.insert(name.into(), value.to_string());
        self
    }

    /// The request body (sent as JSON).
    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Answers once the call is queued (status `QUEUE` or `DOING`) instead
    /// of once it is done; poll `GET /api/invocations/{invId}` for the
    /// result.
    pub fn asynchronous(mut self) -> Self {
        self.asynchronous = true;
        self
    }

    /// How long to wait for the answer, all of it (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The call, for messages: `call of "fb" on CLS object "OID"`.
    fn describe(&self) -> String {
        match &self.oid {
            Some(oid) => format!("call of {:?} on {} object {oid:?}", self.fb, self.cls),
            None => format!("call of {:?} on class {}", self.fb, self.cls),
        }
    }
}

/// A call to another object failed, was refused, or got no usable answer.
///
/// It implements [`std::error::Error`], so `?` in a handler turns it into
/// a [`TaskError`](crate::TaskError) that fails the task with its message.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CallError {
    /// What went wrong: the node's code for a refused call (`forbidden`,
    /// `reentrant_call`, `unauthorized`, ...), the failed invocation's
    /// error code, or one of the SDK's own ([`Self::NO_CALL_URL`],
    /// [`Self::UNREACHABLE`], [`Self::TIMEOUT`], [`Self::BAD_ANSWER`],
    /// [`Self::BAD_ARG`]).
    pub code: String,
    /// The node's (or the SDK's) explanation.
    pub message: String,
    /// The HTTP status of the answer, when there was one.
    pub status: Option<u16>,
    /// The answer as JSON, when it was JSON. Boxed to keep the error (and
    /// every `Result` that carries it) small.
    pub answer: Option<Box<Value>>,
    /// Which call failed, e.g. `call of "increment" on example.counter
    /// object "c1"`.
    pub call: String,
}

impl CallError {
    /// The task has no `callUrl`/`callToken` (or an unusable one).
    pub const NO_CALL_URL: &'static str = "NO_CALL_URL";
    /// The node could not be reached (connection refused, reset, ...).
    pub const UNREACHABLE: &'static str = "UNREACHABLE";
    /// No answer within the call's timeout. The call may still run; a
    /// replay of the task sends the same key, so it does not run twice.
    pub const TIMEOUT: &'static str = "TIMEOUT";
    /// The answer is not what the protocol says (not JSON, wrong shape).
    pub const BAD_ANSWER: &'static str = "BAD_ANSWER";
    /// An argument name starts with `_` (the node reads those as flags).
    pub const BAD_ARG: &'static str = "BAD_ARG";

    fn new(call: &str, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            status: None,
            answer: None,
            call: call.to_owned(),
        }
    }

    fn answered(mut self, status: StatusCode, answer: Option<Value>) -> Self {
        self.status = Some(status.as_u16());
        self.answer = answer.map(Box::new);
        self
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.call, self.code)?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for CallError {}

/// One task's way to call: the node, the token, the key sequence. Clones
/// (of the [`Context`]) share the sequence.
#[derive(Clone)]
pub(crate) struct Calls {
    url: Option<String>,
    token: Option<String>,
    task_id: String,
    seq: Arc<AtomicU64>,
}

impl Calls {
    pub(crate) fn new(url: Option<String>, token: Option<String>, task_id: &str) -> Self {
        Self {
            url: url.filter(|u| !u.is_empty()),
            token: token.filter(|t| !t.is_empty()),
            task_id: task_id.to_owned(),
            seq: Arc::default(),
        }
    }

    fn available(&self) -> bool {
        self.url.is_some() && self.token.is_some()
    }

    /// The request of `call`, with the next key; an error when it cannot be
    /// made (then no key is taken).
    fn prepare(&self, call: &Call, what: &str) -> Result<reqwest::RequestBuilder, CallError> {
        if let Some(name) = call.args.keys().find(|k| k.starts_with('_')) {
            return Err(CallError::new(
                what,
                CallError::BAD_ARG,
                format!(
                    "argument {name:?} starts with '_', which the node reads as a flag, not an argument"
                ),
            ));
        }
        let (Some(base), Some(token)) = (&self.url, &self.token) else {
            return Err(CallError::new(
                what,
                CallError::NO_CALL_URL,
                "the node did not give this task a way to call other objects \
                 (no callUrl and callToken in the task; the node may be too old)",
            ));
        };
        let url = call_url(base, call).ok_or_else(|| {
            CallError::new(
                what,
                CallError::NO_CALL_URL,
                format!("the task's callUrl is not an http(s) URL: {base:?}"),
            )
        })?;
        let client = crate::files::http()
            .map_err(|e| CallError::new(what, CallError::UNREACHABLE, e.message()))?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let request = client
            .post(url)
            .bearer_auth(token)
            .header("idempotency-key", format!("{}/{seq}", self.task_id))
            .header(ACCEPT, "application/json")
            .timeout(call.timeout);
        Ok(match &call.body {
            Some(body) => request.json(body),
            // Sent explicitly: reqwest sends no length for an empty body,
            // and some proxies refuse a POST without one (411).
            None => request.header(CONTENT_LENGTH, 0),
        })
    }
}

impl fmt::Debug for Calls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token.
        f.debug_struct("Calls")
            .field("url", &self.url)
            .field("seq", &self.seq.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// `{base}/api/classes/{cls}[/objects/{oid}]/invokes/{fb}?{args}`, the
/// segments percent-encoded; `None` when `base` is not an http(s) URL.
fn call_url(base: &str, call: &Call) -> Option<Url> {
    let mut url = Url::parse(base).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut path = url.path_segments_mut().ok()?;
        path.pop_if_empty().extend(["api", "classes", &call.cls]);
        if let Some(oid) = &call.oid {
            path.extend(["objects", oid]);
        }
        path.extend(["invokes", &call.fb]);
    }
    if !call.args.is_empty() || call.asynchronous {
        let mut query = url.query_pairs_mut();
        query.extend_pairs(&call.args);
        if call.asynchronous {
            query.append_pair("_async", "true");
        }
    }
    Some(url)
}

/// Calls of other objects, through the node.
impl Context {
    /// Whether the node gave this task a way to call other objects
    /// (`callUrl` and `callToken`).
    pub fn can_invoke(&self) -> bool {
        self.calls.available()
    }

    /// Makes `call` through the node and answers the invocation: `{invId,
    /// status, main?, output?, body?, ...}`, with status `SUCCEEDED` for a
    /// sync call, `QUEUE` or `DOING` for an
    /// [`asynchronous`](Call::asynchronous) one.
    ///
    /// The call takes its idempotency key (`{task id}/{n}` for the task's
    /// n-th call) when `invoke` is called, not when the future is first
    /// polled, so calls joined together keep the order in which they were
    /// made. A replayed task makes the same calls with the same keys and
    /// the node does not repeat their effects: make calls in a
    /// deterministic order. A sync mutating call on an object this call
    /// chain already holds (e.g. this task's main object) is refused with
    /// `reentrant_call`.
    ///
    /// A [`CallError`] when the call failed (`status: FAILED`), was refused
    /// (e.g. `forbidden`), or got no usable answer. From a sync handler:
    /// `tokio::runtime::Handle::current().block_on(ctx.invoke(call))`.
    pub fn invoke(
        &self,
        call: Call,
    ) -> impl Future<Output = Result<Value, CallError>> + Send + use<> {
        let what = call.describe();
        let request = self.calls.prepare(&call, &what);
        async move {
            let response = request?
                .send()
                .await
                .map_err(|e| transport(&what, e, call.timeout))?;
            let status = response.status();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| transport(&what, e, call.timeout))?;
            outcome(&what, status, &bytes)
        }
    }
}

/// A call that got no answer.
fn transport(what: &str, e: reqwest::Error, timeout: Duration) -> CallError {
    if e.is_timeout() {
        return CallError::new(
            what,
            CallError::TIMEOUT,
            format!("no answer from the node within {timeout:?}"),
        );
    }
    let cause = crate::TaskError::from(e.without_url());
    CallError::new(
        what,
        CallError::UNREACHABLE,
        format!("cannot reach the node: {}", cause.message()),
    )
}

/// A non-empty string field.
fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The invocation of a 2xx answer, or the error an answer means.
fn outcome(what: &str, status: StatusCode, bytes: &[u8]) -> Result<Value, CallError> {
    let answer: Option<Value> = serde_json::from_slice(bytes).ok();
    let Some(Value::Object(fields)) = &answer else {
        let text = String::from_utf8_lossy(bytes);
        let text: String = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(EXCERPT)
            .collect();
        let shape = if status.is_success() {
            "a JSON object"
        } else {
            r#"{"error": {"code", "message"}} or an invocation"#
        };
        let got = if text.is_empty() {
            " (empty)".to_owned()
        } else {
            format!(": {text}")
        };
        return Err(CallError::new(
            what,
            CallError::BAD_ANSWER,
            format!("the node's answer is not {shape}{got}"),
        )
        .answered(status, answer));
    };
    let error = fields.get("error").filter(|e| e.is_object());
    let code = text(error.and_then(|e| e.get("code")));
    let message = text(error.and_then(|e| e.get("message")));
    let failed =
        text(fields.get("status")).filter(|s| matches!(*s, "FAILED" | "DEPENDENCY_FAILED"));
    let err = if let Some(inv_status) = failed {
        let message = message.or_else(|| text(fields.get("errorMsg")));
        CallError::new(
            what,
            code.unwrap_or(inv_status),
            message.map_or_else(|| format!("the call ended {inv_status}"), str::to_owned),
        )
    } else if status.is_success() {
        return Ok(answer.expect("matched as an object above"));
    } else if error.is_some() {
        CallError::new(
            what,
            code.map_or_else(|| format!("HTTP_{}", status.as_u16()), str::to_owned),
            message.unwrap_or_default(),
        )
    } else {
        CallError::new(
            what,
            CallError::BAD_ANSWER,
            format!(
                "the node answered HTTP {} without an error",
                status.as_u16()
            ),
        )
    };
    Err(err.answered(status, answer))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn url(base: &str, call: Call) -> Option<String> {
        call_url(base, &call).map(String::from)
    }

    #[test]
    fn urls_encode_segments_and_keep_the_base_path() {
        assert_eq!(
            url(
                "http://127.0.0.1:6180",
                Call::object("p.c", "a b/c?%", "inc")
                    .arg("s", "x y&z")
                    .asynchronous()
            )
            .as_deref(),
            Some(
                "http://127.0.0.1:6180/api/classes/p.c/objects/a%20b%2Fc%3F%25/invokes/inc?s=x+y%26z&_async=true"
            )
        );
        assert_eq!(
            url("http://h/node/", Call::class("p.c", "new")).as_deref(),
            Some("http://h/node/api/classes/p.c/invokes/new")
        );
        assert_eq!(url("unix:/x", Call::class("p.c", "new")), None);
        assert_eq!(url("not a url", Call::class("p.c", "new")), None);
    }

    fn check(status: u16, answer: &str, expected: Result<Value, (&str, Option<u16>)>) {
        let got = outcome(
            "call",
            StatusCode::from_u16(status).unwrap(),
            answer.as_bytes(),
        );
        let got = got.map_err(|e| (e.code, e.status));
        let expected = expected.map_err(|(c, s)| (c.to_owned(), s));
        assert_eq!(got, expected, "{status} {answer}");
    }

    #[test]
    fn answers_map_to_results_and_codes() {
        check(
            200,
            r#"{"invId":"i","status":"SUCCEEDED"}"#,
            Ok(json!({"invId": "i", "status": "SUCCEEDED"})),
        );
        check(
            202,
            r#"{"invId":"i","status":"QUEUE"}"#,
            Ok(json!({"invId": "i", "status": "QUEUE"})),
        );
        let failed =
            r#"{"invId":"i","status":"FAILED","error":{"code":"function_failed","message":"m"}}"#;
        check(422, failed, Err(("function_failed", Some(422))));
        check(200, failed, Err(("function_failed", Some(200))));
        check(
            504,
            r#"{"invId":"i","status":"FAILED"}"#,
            Err(("FAILED", Some(504))),
        );
        check(
            403,
            r#"{"error":{"code":"forbidden","message":"m"}}"#,
            Err(("forbidden", Some(403))),
        );
        check(
            429,
            r#"{"error":{"message":"slow down"}}"#,
            Err(("HTTP_429", Some(429))),
        );
        check(500, r#"{"x":1}"#, Err(("BAD_ANSWER", Some(500))));
        check(502, "<html>", Err(("BAD_ANSWER", Some(502))));
        check(200, "null", Err(("BAD_ANSWER", Some(200))));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let calls = Calls::new(Some("http://n".into()), Some("s3cret".into()), "t");
        assert!(!format!("{calls:?}").contains("s3cret"));
    }
}
