//! The HTTP client of a node's API, and how its answers map to exit codes.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde_json::Value;

use crate::exit::{Exit, Fail};

/// A node's API at `base`, with an optional bearer token.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

/// An answer: its status and JSON body (`Null` when empty, a string when
/// the body is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Client {
    pub fn new(base: Url, token: Option<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
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
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub fn get(&self, segments: &[&str]) -> RequestBuilder {
        self.request(Method::GET, segments)
    }

    /// Sends a request; failing to reach the node is [`Exit::Unavailable`].
    pub async fn send(&self, rb: RequestBuilder) -> Result<Reply, Fail> {
        let resp = rb.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(Reply { status, body })
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
        let mut cause = String::new();
        let mut source: Option<&dyn std::error::Error> = Some(e);
        while let Some(s) = source {
            cause = s.to_string();
            source = s.source();
        }
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
        if status == StatusCode::UNAUTHORIZED {
            message.push_str("\nhint: pass the node's token with --token or OPRC_TOKEN");
        }
        Fail::new(exit, message)
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
    fn path_segments_are_encoded() {
        let c = Client::new(Url::parse("http://h:1").unwrap(), None).unwrap();
        assert_eq!(
            c.url(&["classes", "ex.c", "objects", "a/b c"]).as_str(),
            "http://h:1/api/classes/ex.c/objects/a%2Fb%20c"
        );
        let c = Client::new(Url::parse("http://h:1/prefix/").unwrap(), None).unwrap();
        assert_eq!(
            c.url(&["classes"]).as_str(),
            "http://h:1/prefix/api/classes"
        );
    }
}
