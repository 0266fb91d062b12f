//! async-nats errors mapped to the [`ErrorKind`]s callers decide on, and
//! the server URL without its secrets (the only form of it that goes into
//! a message or a log line).
//!
//! The rule: whatever a retry may cure (no answer in time, no responder,
//! no connection, JetStream not ready) is `Unavailable`; a request the
//! server refuses for what it is (bad config, payload too large, a reply
//! that does not decode) is `Internal`.

use std::error::Error as _;
use std::fmt::Display;

use async_nats::jetstream;
use async_nats::jetstream::context::{PublishErrorKind, RequestErrorKind};
use async_nats::jetstream::stream::DirectGetErrorKind;
use oprc_store::{Error, ErrorKind};

/// An error of a JetStream API request: the request failed, or the server
/// answered with an error.
#[derive(Debug)]
pub(crate) enum ApiError {
    Request(jetstream::context::RequestError),
    Server(jetstream::Error),
}

impl ApiError {
    /// The server's JetStream error code, when it answered with an error.
    pub(crate) fn code(&self) -> Option<jetstream::ErrorCode> {
        match self {
            Self::Server(e) => Some(e.error_code()),
            Self::Request(_) => None,
        }
    }
}

/// Maps a JetStream API error; `what` names the request ("creating the
/// stream OPRC_INVOCATIONS"), `url` is already redacted.
pub(crate) fn api(e: ApiError, what: &str, url: &str) -> Error {
    match e {
        ApiError::Request(e) => {
            let decode = e
                .source()
                .is_some_and(|s| s.downcast_ref::<serde_json::Error>().is_some());
            let (kind, message) = match e.kind() {
                RequestErrorKind::TimedOut => (
                    ErrorKind::Unavailable,
                    format!("nats at {url} did not answer {what} in time"),
                ),
                RequestErrorKind::NoResponders => (
                    ErrorKind::Unavailable,
                    format!(
                        "no jetstream answered {what} at {url}: is jetstream enabled \
                         (nats-server -js) and ready?"
                    ),
                ),
                RequestErrorKind::Other if decode => (
                    ErrorKind::Internal,
                    format!("the answer of nats at {url} to {what} does not decode"),
                ),
                RequestErrorKind::Other => (
                    ErrorKind::Unavailable,
                    format!("{what} failed: cannot reach nats at {url}"),
                ),
                RequestErrorKind::InvalidSubject => {
                    (ErrorKind::Internal, format!("{what}: invalid subject"))
                }
            };
            Error::with_source(kind, message, e)
        }
        ApiError::Server(e) => {
            let kind = server_kind(&e);
            let message = if e.error_code() == jetstream::ErrorCode::JETSTREAM_NOT_ENABLED
                || e.error_code() == jetstream::ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT
            {
                format!("{what}: jetstream is not enabled at {url} (start nats-server with -js)")
            } else {
                format!("{what}: jetstream at {url} refused: {e}")
            };
            Error::with_source(kind, message, e)
        }
    }
}

/// Unavailable for what the server says is temporary (HTTP-like 503 and
/// 408: JetStream not ready, no quorum, a timeout inside the server).
fn server_kind(e: &jetstream::Error) -> ErrorKind {
    match e.code() {
        503 | 408 => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

pub(crate) fn publish(e: jetstream::context::PublishError, subject: &str, url: &str) -> Error {
    let (kind, message) = match e.kind() {
        PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => (
            ErrorKind::Unavailable,
            format!(
                "nats at {url} did not acknowledge the append to {subject} in time; the \
                 outcome is unknown: retry with the same dedup id"
            ),
        ),
        PublishErrorKind::StreamNotFound => (
            ErrorKind::Unavailable,
            format!("no jetstream stream took the append to {subject} at {url}"),
        ),
        PublishErrorKind::MaxAckPending => (
            ErrorKind::Unavailable,
            format!("too many appends wait for their acknowledgement from {url}"),
        ),
        PublishErrorKind::MaxPayloadExceeded => (
            ErrorKind::Internal,
            format!("the entry is larger than the max_payload of nats at {url}"),
        ),
        PublishErrorKind::Other => match e.source().and_then(|s| s.downcast_ref()) {
            Some(js) => (
                server_kind(js),
                format!("jetstream refused the append: {js}"),
            ),
            None => (
                ErrorKind::Unavailable,
                format!("appending to {subject} failed: cannot reach nats at {url}"),
            ),
        },
        other => (
            ErrorKind::Internal,
            format!("jetstream refused the append to {subject}: {other}"),
        ),
    };
    Error::with_source(kind, message, e)
}

/// A direct get that failed for another reason than a missing message.
pub(crate) fn direct_get(e: jetstream::stream::DirectGetError, what: &str, url: &str) -> Error {
    let (kind, message) = match e.kind() {
        DirectGetErrorKind::TimedOut => (
            ErrorKind::Unavailable,
            format!("nats at {url} did not answer {what} in time"),
        ),
        DirectGetErrorKind::ErrorResponse(status, description) => {
            let kind = match status.as_u16() {
                503 | 408 => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            };
            (kind, format!("{what} at {url}: {status} {description}"))
        }
        DirectGetErrorKind::Request | DirectGetErrorKind::Other => (
            ErrorKind::Unavailable,
            format!("{what} failed: cannot reach nats at {url}"),
        ),
        other => (ErrorKind::Internal, format!("{what}: {other}")),
    };
    Error::with_source(kind, message, e)
}

/// A failure of the connection or of a request made through it (acks,
/// subscriptions, pull streams): worth retrying.
pub(crate) fn unavailable(
    what: impl Display,
    e: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::with_source(ErrorKind::Unavailable, format!("{what}: {e}"), e)
}

pub(crate) fn connect(e: async_nats::ConnectError, url: &str) -> Error {
    use async_nats::ConnectErrorKind as K;
    let (kind, message) = match e.kind() {
        K::ServerParse => (ErrorKind::Internal, format!("invalid nats url {url}")),
        K::Authentication | K::AuthorizationViolation => (
            ErrorKind::Internal,
            format!("nats at {url} refused the credentials"),
        ),
        K::Tls => (
            ErrorKind::Unavailable,
            format!("tls handshake with nats at {url} failed"),
        ),
        K::Dns | K::TimedOut | K::Io | K::MaxReconnects => (
            ErrorKind::Unavailable,
            format!("cannot reach nats at {url} (is nats-server running?)"),
        ),
    };
    Error::with_source(kind, message, e)
}

/// One server URL with its secrets stripped, and the credentials found in
/// it (async-nats does not read credentials from the URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) user: Option<(String, String)>,
    pub(crate) token: Option<String>,
}

/// Splits a comma-separated list of server URLs into URLs without user
/// info, and the credentials of the first one that has some.
pub(crate) fn split_credentials(urls: &str) -> (Vec<String>, Credentials) {
    let mut creds = Credentials {
        user: None,
        token: None,
    };
    let mut plain = Vec::new();
    for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let (scheme, rest) = match url.find("://") {
            Some(i) => (&url[..i + 3], &url[i + 3..]),
            None => ("", url),
        };
        let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(auth_end);
        match authority.rfind('@') {
            Some(at) => {
                let (userinfo, host) = (&authority[..at], &authority[at + 1..]);
                if creds.user.is_none() && creds.token.is_none() {
                    match userinfo.split_once(':') {
                        Some((u, p)) => creds.user = Some((decode(u), decode(p))),
                        None => creds.token = Some(decode(userinfo)),
                    }
                }
                plain.push(format!("{scheme}{host}{tail}"));
            }
            None => plain.push(url.to_owned()),
        }
    }
    (plain, creds)
}

/// Percent-decoding of URL user info (invalid escapes stay as they are).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(v as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `urls` (one or a comma-separated list) with passwords and tokens
/// replaced by `***`: `nats://app:***@host:4222`, `nats://***@host`.
pub fn redact_url(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let url = url.trim();
            let (scheme, rest) = match url.find("://") {
                Some(i) => (&url[..i + 3], &url[i + 3..]),
                None => ("", url),
            };
            let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(auth_end);
            let authority = match authority.rfind('@') {
                Some(at) => {
                    let (userinfo, host) = authority.split_at(at);
                    match userinfo.find(':') {
                        Some(colon) => format!("{}:***{host}", &userinfo[..colon]),
                        None => format!("***{host}"),
                    }
                }
                None => authority.to_owned(),
            };
            format!("{scheme}{authority}{tail}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_redact(url: &str, expected: &str) {
        assert_eq!(redact_url(url), expected, "{url}");
    }

    #[test]
    fn urls_lose_their_passwords_and_tokens() {
        check_redact("nats://app:hunter2@nats:4222", "nats://app:***@nats:4222");
        check_redact("nats://s3cr3t@nats:4222", "nats://***@nats:4222");
        check_redact("tls://u:p@a:1, nats://b:2", "tls://u:***@a:1,nats://b:2");
        check_redact("nats://127.0.0.1:4222", "nats://127.0.0.1:4222");
        check_redact("127.0.0.1:4222", "127.0.0.1:4222");
        check_redact("nats://u:p@w@h", "nats://u:***@h");
    }

    #[test]
    fn credentials_are_taken_out_of_the_urls() {
        let (urls, creds) = split_credentials("nats://app:p%40ss@a:1,nats://b:2");
        assert_eq!(urls, vec!["nats://a:1", "nats://b:2"]);
        assert_eq!(creds.user, Some(("app".into(), "p@ss".into())));
        assert_eq!(creds.token, None);
        let (urls, creds) = split_credentials("nats://tok@a:1/");
        assert_eq!(urls, vec!["nats://a:1/"]);
        assert_eq!(creds.token.as_deref(), Some("tok"));
        let (urls, creds) = split_credentials(" a:1 ,, ");
        assert_eq!(urls, vec!["a:1"]);
        assert_eq!(creds.user, None);
        assert_eq!(decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn connect_errors_name_the_redacted_url() {
        use async_nats::ConnectErrorKind as K;
        let url = redact_url("nats://app:hunter2@db:4222");
        let e = connect(async_nats::ConnectError::new(K::Io), &url);
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.message.contains("nats://app:***@db:4222"), "{e}");
        assert!(!e.message.contains("hunter2"), "{e}");
        let e = connect(
            async_nats::ConnectError::new(K::AuthorizationViolation),
            &url,
        );
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(e.message.contains("credentials"), "{e}");
    }

    #[test]
    fn request_failures_are_unavailable() {
        let timeout = jetstream::context::RequestError::new(RequestErrorKind::TimedOut);
        let e = api(ApiError::Request(timeout), "reading x", "nats://h");
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.message.contains("in time"), "{e}");
        let none = jetstream::context::RequestError::new(RequestErrorKind::NoResponders);
        let e = api(ApiError::Request(none), "reading x", "nats://h");
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.message.contains("-js"), "{e}");
        let e = publish(
            jetstream::context::PublishError::new(PublishErrorKind::TimedOut),
            "oprc.inv.0",
            "nats://h",
        );
        assert_eq!(e.kind, ErrorKind::Unavailable);
        let e = publish(
            jetstream::context::PublishError::new(PublishErrorKind::MaxPayloadExceeded),
            "oprc.inv.0",
            "nats://h",
        );
        assert_eq!(e.kind, ErrorKind::Internal);
    }
}
