//! Request bodies: the media types `/api` accepts, the early 413 on a
//! declared `Content-Length`, and JSON body decoding.
//!
//! A POST, PUT or PATCH body must be declared JSON or YAML (a browser can
//! send `text/plain`, form encodings or an untyped blob cross-site without
//! a CORS preflight; it cannot send these). A request that declares no
//! content type passes only when it has no body (`Content-Length: 0`, or
//! neither `Content-Length` nor `Transfer-Encoding`): Oparaca clients and
//! the CLI call functions with such empty POSTs.

use axum::extract::Request;
use bytes::Bytes;
use http::{HeaderMap, Method, header};

use crate::AppState;
use crate::error::{ApiError, Code};

/// The media types of a JSON body.
pub const JSON_TYPES: &[&str] = &["application/json"];
/// The media types of a YAML body.
pub const YAML_TYPES: &[&str] = &[
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
];

/// How a request declares its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyType {
    Json,
    Yaml,
    /// No `Content-Type` and provably no body.
    Empty,
}

/// The declared media type, without parameters (`application/json;
/// charset=utf-8` is JSON).
fn essence(headers: &HeaderMap) -> Option<Result<String, ()>> {
    let v = headers.get(header::CONTENT_TYPE)?;
    Some(
        v.to_str()
            .map(|s| {
                s.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .map_err(|_| ()),
    )
}

/// Whether the request provably carries no body.
fn no_body(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_LENGTH) {
        Some(len) => len.as_bytes() == b"0",
        None => !headers.contains_key(header::TRANSFER_ENCODING),
    }
}

fn unsupported(given: Option<&str>, accepted: &[&[&str]]) -> ApiError {
    let names: Vec<&str> = accepted.iter().flat_map(|l| l.iter().copied()).collect();
    let what = match given {
        Some(t) => format!("a request body of type {t:?} is not accepted here"),
        None => "a request body needs a Content-Type".to_owned(),
    };
    ApiError::new(
        Code::UnsupportedMediaType,
        format!(
            "{what}; send it as {} (e.g. curl -H 'Content-Type: application/json')",
            names.join(", ")
        ),
    )
}

/// The body type of a request, if it is one of `accepted`.
pub(crate) fn body_type(headers: &HeaderMap, accepted: &[&[&str]]) -> Result<BodyType, ApiError> {
    let Some(essence) = essence(headers) else {
        return if no_body(headers) {
            Ok(BodyType::Empty)
        } else {
            Err(unsupported(None, accepted))
        };
    };
    let Ok(essence) = essence else {
        return Err(unsupported(Some("<not ASCII>"), accepted));
    };
    if !accepted.iter().any(|list| list.contains(&essence.as_str())) {
        return Err(unsupported(Some(&essence), accepted));
    }
    Ok(if JSON_TYPES.contains(&essence.as_str()) {
        BodyType::Json
    } else {
        BodyType::Yaml
    })
}

/// Refuses a request whose declared length is above the limit at once,
/// before any of the body is read; refuses `/api` bodies that are neither
/// JSON nor YAML. Chunked bodies are limited while they stream
/// (`DefaultBodyLimit`).
pub(crate) fn check(state: &AppState, req: &Request) -> Result<(), ApiError> {
    if is_file_route(req) {
        // Bytes, not JSON; only PUT takes a body (other methods are 405).
        return if req.method() == Method::PUT {
            file_media_type(req.headers())
        } else {
            Ok(())
        };
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.options.max_body_bytes as u64) {
        return Err(too_large());
    }
    let has_body_method = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    if has_body_method && req.uri().path().starts_with("/api/") {
        body_type(req.headers(), &[JSON_TYPES, YAML_TYPES])?;
    }
    Ok(())
}

/// Whether the request is for a file route
/// (`/api/classes/{cls}/objects/{oid}/files/{key}`): an upload's body is
/// bytes, limited by the file size limit, not the API's.
fn is_file_route(req: &Request) -> bool {
    let parts: Vec<&str> = req.uri().path().split('/').collect();
    matches!(
        parts.as_slice(),
        ["", "api", "classes", _, "objects", _, "files", key] if !key.is_empty()
    )
}

/// The media types a web page may send cross-site without a CORS
/// preflight (or no type at all): refused for file uploads, as JSON-only
/// bodies are refused elsewhere (ADR 0008).
const SIMPLE_TYPES: &[&str] = &[
    "text/plain",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
];

fn file_media_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let refuse = |what: String| {
        Err(ApiError::new(
            Code::UnsupportedMediaType,
            format!(
                "{what}; upload files as application/octet-stream or their own type \
                 (e.g. curl -T FILE -H 'Content-Type: application/octet-stream')"
            ),
        ))
    };
    match essence(headers) {
        None if no_body(headers) => Ok(()),
        None => refuse("a file upload needs a Content-Type".into()),
        Some(Err(())) => refuse("the Content-Type is not ASCII".into()),
        Some(Ok(t)) if SIMPLE_TYPES.contains(&t.as_str()) => {
            refuse(format!("a file upload of type {t:?} is not accepted"))
        }
        Some(Ok(_)) => Ok(()),
    }
}

pub(crate) fn too_large() -> ApiError {
    ApiError::new(
        Code::PayloadTooLarge,
        "request body is larger than the node's limit (--max-body-bytes)",
    )
}

/// Reads an optional JSON body (an invocation's), mapping every rejection
/// to our error shape. YAML is refused here: function bodies are JSON.
pub(crate) fn json_body(
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Option<serde_json::Value>, ApiError> {
    let bytes = body?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if body_type(headers, &[JSON_TYPES])? == BodyType::Empty {
        // A GET with a body and no type: browsers cannot send one.
        return Err(unsupported(None, &[JSON_TYPES]));
    }
    check_depth(&bytes)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))
}

/// Deepest nesting of arrays and objects an invocation body may have. The
/// platform wraps a body in its own JSON (the async log entry, the task,
/// stored records), and JSON decoders refuse 128 levels; 64 leaves room.
pub(crate) const MAX_BODY_DEPTH: usize = 64;

/// Refuses a body nested deeper than [`MAX_BODY_DEPTH`], with where it
/// goes too deep, in one pass over the bytes.
fn check_depth(bytes: &[u8]) -> Result<(), ApiError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let (mut line, mut column) = (1usize, 0usize);
    for &b in bytes {
        column += 1;
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_BODY_DEPTH {
                    return Err(ApiError::bad_request(format!(
                        "request body nests arrays and objects more than {MAX_BODY_DEPTH} deep \
                         (at line {line} column {column})"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'\n' => {
                line += 1;
                column = 0;
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn bodies_nested_too_deep_are_refused_with_their_position() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_BODY_DEPTH),
            "]".repeat(MAX_BODY_DEPTH)
        );
        assert!(check_depth(ok.as_bytes()).is_ok());
        let deep = format!(
            "{{\"a\":\n{}1{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let err = check_depth(deep.as_bytes()).unwrap_err();
        assert!(
            err.message
                .contains("more than 64 deep (at line 2 column 64)"),
            "{}",
            err.message
        );
        // Brackets inside strings do not count.
        let quoted = format!("{{\"a\": \"{}\\\"{}\"}}", "[".repeat(200), "{".repeat(200));
        assert!(check_depth(quoted.as_bytes()).is_ok());
    }

    fn check(pairs: &[(&str, &str)], expected: Result<BodyType, Code>) {
        let got = body_type(&headers(pairs), &[JSON_TYPES, YAML_TYPES]).map_err(|e| e.code);
        assert_eq!(got, expected, "{pairs:?}");
    }

    #[test]
    fn json_and_yaml_bodies_are_accepted_with_parameters() {
        check(&[("content-type", "application/json")], Ok(BodyType::Json));
        check(
            &[("content-type", "Application/JSON; charset=utf-8")],
            Ok(BodyType::Json),
        );
        for t in YAML_TYPES {
            check(&[("content-type", t)], Ok(BodyType::Yaml));
        }
    }

    #[test]
    fn other_types_and_untyped_bodies_are_refused() {
        let refused = Err(Code::UnsupportedMediaType);
        check(&[("content-type", "text/plain;charset=UTF-8")], refused);
        check(
            &[("content-type", "application/x-www-form-urlencoded")],
            refused,
        );
        check(
            &[("content-type", "multipart/form-data; boundary=x")],
            refused,
        );
        check(&[("content-length", "5")], refused);
        check(&[("transfer-encoding", "chunked")], refused);
    }

    #[test]
    fn untyped_empty_bodies_pass() {
        check(&[], Ok(BodyType::Empty));
        check(&[("content-length", "0")], Ok(BodyType::Empty));
    }

    #[test]
    fn the_refusal_names_the_accepted_types() {
        let e = body_type(
            &headers(&[("content-type", "text/plain")]),
            &[JSON_TYPES, YAML_TYPES],
        )
        .unwrap_err();
        for t in JSON_TYPES.iter().chain(YAML_TYPES) {
            assert!(e.message.contains(t), "{}", e.message);
        }
    }
}
