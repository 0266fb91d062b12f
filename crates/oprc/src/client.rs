//! The HTTP client of a node's API: which token it sends, and how answers
//! map to exit codes and to hints on what to do (401, 403, 415, 421, 429).
//! Every body it sends carries its `Content-Type` (`.json(..)`, YAML / JSON
//! for packages, `application/octet-stream` for files).
//!
//! The token goes to the node's `/api` paths only: redirects are never
//! followed by the HTTP client (a redirect would carry the token along), and
//! file URLs (presigned, they carry their own signature; an `Authorization`
//! header breaks S3's) are requested with [`Client::to_url`], without it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde_json::Value;

use crate::exit::{Exit, Fail};

/// Where the bearer token a client sends comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// None: the node's open routes only.
    None,
    /// `--token` / `OPRC_TOKEN`.
    Given(String),
    /// The admin token of a node on this machine, read from its data
    /// directory.
    File { token: String, path: PathBuf },
}

impl Token {
    fn value(&self) -> Option<&str> {
        match self {
            Self::None => None,
            Self::Given(t) | Self::File { token: t, .. } => Some(t),
        }
    }
}

/// The token to send: `--token`, else, for a node on this machine
/// (loopback URL), the admin token in its data directory when there is
/// one. A local token is never sent to another machine.
pub fn token_for(base: &Url, given: Option<String>, data_dir: Option<&Path>) -> Token {
    if let Some(t) = given {
        return Token::Given(t);
    }
    let host = base.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let local = host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !local {
        return Token::None;
    }
    let path = oprc_server::admin_token_path(data_dir.unwrap_or(Path::new(DEFAULT_DATA_DIR)));
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Token::File {
            token: text.trim().to_owned(),
            path,
        },
        _ => Token::None,
    }
}

/// The data directory when neither `--data-dir` nor `OPRC_DATA_DIR` is set.
pub const DEFAULT_DATA_DIR: &str = "oprc-data";

/// A node's API at `base`, with an optional bearer token.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Token,
}

/// An answer: its status, JSON body (`Null` when empty, a string when the
/// body is not JSON), and `Retry-After` in seconds when the node sent one.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub retry_after: Option<u64>,
    /// Where the token sent with the request came from.
    pub token: Token,
}

impl Client {
    pub fn new(base: Url, token: Token) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("oprc/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, base, token })
    }

    /// `base` + `/api/` + `segments`, each segment percent-encoded (an
    /// object id may contain `/`).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("api").extend(segments);
        }
        url
    }

    pub fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let rb = self.http.request(method, self.url(segments));
        match self.token.value() {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub fn get(&self, segments: &[&str]) -> RequestBuilder {
        self.request(Method::GET, segments)
    }

    /// A request to a URL the node handed out (a file's presigned URL):
    /// never with the token.
    pub fn to_url(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// A URL the node answered with, absolute or relative to the node.
    pub fn resolve(&self, url: &str) -> Result<Url, Fail> {
        self.base.join(url).map_err(|e| {
            Fail::new(
                Exit::Unavailable,
                format!("the node answered with a URL that does not parse ({e}): {url:?}"),
            )
        })
    }

    /// Sends a request to the node and hands back the response unread (a
    /// file to stream); failing to reach the node is [`Exit::Unavailable`].
    pub async fn send_raw(&self, rb: RequestBuilder) -> Result<reqwest::Response, Fail> {
        rb.send().await.map_err(|e| self.unreachable(&e))
    }

    /// Sends a request; failing to reach the node is [`Exit::Unavailable`].
    pub async fn send(&self, rb: RequestBuilder) -> Result<Reply, Fail> {
        let resp = self.send_raw(rb).await?;
        self.read(resp).await
    }

    /// Reads a whole (JSON) answer of the node.
    pub async fn read(&self, resp: reqwest::Response) -> Result<Reply, Fail> {
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(Reply {
            status,
            body,
            retry_after,
            token: self.token.clone(),
        })
    }

    /// Sends a request and refuses any answer but a 2xx.
    pub async fn call(&self, rb: RequestBuilder) -> Result<Value, Fail> {
        let reply = self.send(rb).await?;
        if reply.status.is_success() {
            Ok(reply.body)
        } else {
            Err(reply.fail())
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> Fail {
        let cause = root_cause(e);
        let origin = self.base.as_str().trim_end_matches('/');
        let what = if e.is_timeout() {
            "timed out talking to"
        } else {
            "cannot reach"
        };
        Fail::new(
            Exit::Unavailable,
            format!(
                "{what} the node at {origin}: {cause}\n\
                 hint: start one with `oprc serve`, or point --url (OPRC_URL) at a running node"
            ),
        )
    }
}

/// The innermost cause of an error: what actually went wrong.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    cause
}

/// A URL without its query, for messages: a presigned URL's query is its
/// signature, which has no place in a terminal or a log.
pub fn shown(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    u.to_string()
}

impl Reply {
    /// An invocation answer (`{invId, status, ...}`) rather than an API error.
    pub fn is_invocation(&self) -> bool {
        self.body.get("invId").is_some() && self.body.get("status").is_some()
    }

    /// The invocation status, when this is an invocation answer.
    pub fn invocation_status(&self) -> Option<&str> {
        self.body.get("status").and_then(Value::as_str)
    }

    /// The error of this answer, as `error: <message> (<code>, HTTP <status>)`
    /// prints it, with the exit code it deserves.
    pub fn fail(&self) -> Fail {
        self.fail_hinted(|r, code| r.hint(code))
    }

    /// [`fail`](Self::fail) for a request about files: a 403 may be about a
    /// file key's access modifier (which the node's message names), not a
    /// function's.
    pub fn fail_file(&self) -> Fail {
        self.fail_hinted(|r, code| match r.status {
            StatusCode::FORBIDDEN => Some(
                "only PUBLIC functions and file keys can be reached from outside (see \
                 `oprc cls get CLS`)"
                    .to_owned(),
            ),
            _ => r.hint(code),
        })
    }

    fn fail_hinted(&self, hint: impl FnOnce(&Self, Option<&str>) -> Option<String>) -> Fail {
        let status = self.status;
        let exit = if self.is_invocation() && status != StatusCode::SERVICE_UNAVAILABLE {
            // The function failed (or timed out, or answered badly): the
            // node did its job, the call was refused.
            Exit::Refused
        } else if status.is_server_error() {
            Exit::Unavailable
        } else {
            Exit::Refused
        };
        let err = self.body.get("error");
        let text = |k| err.and_then(|e| e.get(k)).and_then(Value::as_str);
        // An invocation record read with 200 says FAILED itself; no HTTP
        // status to report then.
        let http = if status.is_success() {
            String::new()
        } else {
            format!("HTTP {}", status.as_u16())
        };
        let sep = if http.is_empty() { "" } else { ", " };
        let mut message = match (text("message"), text("code")) {
            (Some(m), Some(c)) => format!("{m} ({c}{sep}{http})"),
            (Some(m), None) if http.is_empty() => m.to_owned(),
            (Some(m), None) => format!("{m} ({http})"),
            _ if self.is_invocation() => {
                let id = self
                    .body
                    .get("invId")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                let st = self.invocation_status().unwrap_or("?");
                format!("invocation {id} {st}")
            }
            _ => {
                let mut m = format!("the node answered HTTP {status}");
                if let Value::String(s) = &self.body {
                    m.push_str(": ");
                    m.extend(s.chars().take(200));
                }
                m
            }
        };
        if let Some(hint) = hint(self, text("code")) {
            message.push_str("\nhint: ");
            message.push_str(&hint);
        }
        Fail::new(exit, message)
    }

    /// What the user can do about a refusal.
    fn hint(&self, code: Option<&str>) -> Option<String> {
        Some(match self.status {
            StatusCode::UNAUTHORIZED => match &self.token {
                Token::None => format!(
                    "pass the node's token with --token (OPRC_TOKEN); for a node on this \
                     machine, oprc reads its admin token from <data dir>/admin-token: run oprc \
                     where the node's data directory is (./{DEFAULT_DATA_DIR}) or point \
                     --data-dir (OPRC_DATA_DIR) at it"
                ),
                Token::Given(_) => "the node refused the token given with --token (OPRC_TOKEN); \
                                    check it"
                    .to_owned(),
                Token::File { path, .. } => format!(
                    "the node refused the admin token in {}: it was started with another data \
                     directory or with --token; point --data-dir at its data directory or pass \
                     --token",
                    path.display()
                ),
            },
            StatusCode::FORBIDDEN if code == Some("forbidden") && self.is_invocation() => {
                "the function is not PUBLIC: only PUBLIC functions can be called from outside \
                 (see `oprc cls get CLS`)"
                    .to_owned()
            }
            StatusCode::FORBIDDEN if !self.is_invocation() && code == Some("forbidden") => {
                "only PUBLIC functions can be called from outside (see `oprc cls get CLS`); a \
                 web page's origin must be allowed with `oprc serve --allow-origin URL`"
                    .to_owned()
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                "the node takes JSON bodies (and YAML packages); pass --body/--data as JSON, \
                 and package files ending in .json, .yaml or .yml"
                    .to_owned()
            }
            StatusCode::MISDIRECTED_REQUEST => {
                "the node does not answer to this host name: use the address it listens on in \
                 --url, or start it with --public-host NAME"
                    .to_owned()
            }
            StatusCode::TOO_MANY_REQUESTS => match self.retry_after {
                Some(s) => format!("the node is busy; retry in {s} s"),
                None => "the node is busy; retry in a moment".to_owned(),
            },
            StatusCode::SERVICE_UNAVAILABLE => match self.retry_after {
                Some(s) => format!("retry in {s} s"),
                None => return None,
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(status: u16, body: Value) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            body,
            retry_after: None,
            token: Token::None,
        }
    }

    #[test]
    fn api_errors_name_message_code_and_status() {
        let f = reply(
            404,
            json!({"error": {"code": "not_found", "message": "class `x` does not exist"}}),
        )
        .fail();
        assert_eq!(f.exit, Exit::Refused);
        assert_eq!(f.message, "class `x` does not exist (not_found, HTTP 404)");
        let f = reply(
            503,
            json!({"error": {"code": "unavailable", "message": "storage is unavailable"}}),
        )
        .fail();
        assert_eq!(f.exit, Exit::Unavailable);
    }

    #[test]
    fn a_failed_invocation_is_refused_even_under_5xx() {
        let body = json!({"invId": "i", "status": "FAILED",
                          "error": {"code": "function_unreachable", "message": "connection refused"}});
        let f = reply(502, body).fail();
        assert_eq!(f.exit, Exit::Refused);
        assert_eq!(
            f.message,
            "connection refused (function_unreachable, HTTP 502)"
        );
    }

    #[test]
    fn a_failed_record_read_with_200_has_no_http_status() {
        let body = json!({"invId": "i", "status": "FAILED",
                          "error": {"code": "function_failed", "message": "boom"}});
        assert_eq!(reply(200, body).fail().message, "boom (function_failed)");
        let f = reply(200, json!({"invId": "i", "status": "DEPENDENCY_FAILED"})).fail();
        assert_eq!(
            (f.exit, f.message.as_str()),
            (Exit::Refused, "invocation i DEPENDENCY_FAILED")
        );
    }

    #[test]
    fn odd_answers_still_say_something() {
        let f = reply(500, Value::String("oops".into())).fail();
        assert_eq!(f.exit, Exit::Unavailable);
        assert!(
            f.message.contains("HTTP 500 Internal Server Error: oops"),
            "{}",
            f.message
        );
        assert!(reply(401, Value::Null).fail().message.contains("--token"));
    }

    #[test]
    fn refusals_say_what_to_do() {
        let mut r = reply(
            401,
            json!({"error": {"code": "unauthorized", "message": "m"}}),
        );
        assert!(
            r.fail().message.contains("--data-dir"),
            "{}",
            r.fail().message
        );
        r.token = Token::File {
            token: "t".into(),
            path: "d/admin-token".into(),
        };
        assert!(r.fail().message.contains("d/admin-token"));
        let mut r = reply(
            429,
            json!({"error": {"code": "too_many_requests", "message": "m"}}),
        );
        r.retry_after = Some(2);
        assert!(
            r.fail()
                .message
                .ends_with("hint: the node is busy; retry in 2 s")
        );
        let r = reply(
            415,
            json!({"error": {"code": "unsupported_media_type", "message": "m"}}),
        );
        assert!(r.fail().message.contains("JSON"));
        let r = reply(
            403,
            json!({"invId": "i", "status": "FAILED", "error": {"code": "forbidden", "message": "m"}}),
        );
        assert!(r.fail().message.contains("PUBLIC"));
    }

    #[test]
    fn a_refused_file_request_hints_at_file_keys() {
        let r = reply(
            403,
            json!({"error": {"code": "forbidden", "message": "file key `s` of class `c` is PRIVATE"}}),
        );
        assert_eq!(
            r.fail_file().message,
            "file key `s` of class `c` is PRIVATE (forbidden, HTTP 403)\nhint: only PUBLIC \
             functions and file keys can be reached from outside (see `oprc cls get CLS`)"
        );
        let r = reply(404, json!({"error": {"code": "not_found", "message": "m"}}));
        assert_eq!(r.fail_file().message, r.fail().message);
    }

    #[test]
    fn a_local_admin_token_is_sent_only_to_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin-token"), "abc\n").unwrap();
        let url = |s: &str| Url::parse(s).unwrap();
        let local = token_for(&url("http://127.0.0.1:6180"), None, Some(dir.path()));
        assert!(
            matches!(&local, Token::File { token, .. } if token == "abc"),
            "{local:?}"
        );
        let local = token_for(&url("http://localhost:6180"), None, Some(dir.path()));
        assert!(matches!(local, Token::File { .. }));
        assert_eq!(
            token_for(&url("http://10.1.2.3:6180"), None, Some(dir.path())),
            Token::None
        );
        assert_eq!(
            token_for(
                &url("http://[::1]:6180"),
                Some("g".into()),
                Some(dir.path())
            ),
            Token::Given("g".into())
        );
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            token_for(&url("http://127.0.0.1:6180"), None, Some(empty.path())),
            Token::None
        );
    }

    #[test]
    fn path_segments_are_encoded() {
        let c = Client::new(Url::parse("http://h:1").unwrap(), Token::None).unwrap();
        assert_eq!(
            c.url(&["classes", "ex.c", "objects", "a/b c"]).as_str(),
            "http://h:1/api/classes/ex.c/objects/a%2Fb%20c"
        );
        let c = Client::new(Url::parse("http://h:1/prefix/").unwrap(), Token::None).unwrap();
        assert_eq!(
            c.url(&["classes"]).as_str(),
            "http://h:1/prefix/api/classes"
        );
    }
}
