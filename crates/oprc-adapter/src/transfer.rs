//! Streaming between HTTP and a [`BlobStore`]: a stored version into a
//! response (ranges, entity tags), a request body into the store (with a
//! size limit). Never a whole file in memory.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use oprc_blob::{BlobError, BlobErrorKind, BlobMeta, BlobPath, BlobStore, ByteRange};
use serde_json::json;

/// An error answer in the API's shape: `{"error": {"code", "message"}}`.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": {"code": code, "message": message.into()}});
    (status, axum::Json(body)).into_response()
}

fn store_error(e: &BlobError) -> Response {
    match e.kind {
        BlobErrorKind::Invalid => error(StatusCode::BAD_REQUEST, "bad_request", e.message.clone()),
        BlobErrorKind::Unavailable | BlobErrorKind::Denied => {
            tracing::warn!(error = %e, "blob store call failed");
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the file store is unavailable; retry",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    }
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// Answers a GET (or HEAD) of `path` from `store`: 200 with the whole
/// file, 206 with the one range asked for, 304 when `If-None-Match` holds
/// its entity tag, 416 for a range outside the file, 404 when it is not
/// stored.
pub async fn download(store: &dyn BlobStore, path: &BlobPath, headers: &HeaderMap) -> Response {
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(ByteRange::parse_header);
    if headers.contains_key(header::IF_NONE_MATCH) {
        match store.head(path).await {
            Ok(Some(meta))
                if meta
                    .etag
                    .as_deref()
                    .is_some_and(|t| etag_matches(headers, t)) =>
            {
                let mut r = StatusCode::NOT_MODIFIED.into_response();
                put_etag(r.headers_mut(), &meta);
                return r;
            }
            Ok(_) => {}
            Err(e) => return store_error(&e),
        }
    }
    let d = match store.get(path, range).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no file at `{path}`"),
            );
        }
        Err(e) if e.kind == BlobErrorKind::Invalid && range.is_some() => {
            let size = store.head(path).await.ok().flatten().map_or(0, |m| m.size);
            let mut r = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                e.message,
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
        Err(e) => return store_error(&e),
    };
    let len = d.len();
    let status = if d.range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut r = Response::new(Body::from_stream(d.body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some((a, b)) = d.range
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{}", d.meta.size))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    put_etag(h, &d.meta);
    r
}

fn put_etag(h: &mut HeaderMap, meta: &BlobMeta) {
    if let Some(v) = meta
        .etag
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        h.insert(header::ETAG, v);
    }
}

/// Why an upload was not stored.
#[derive(Debug)]
pub enum UploadError {
    /// Larger than allowed (413).
    TooLarge { limit: u64 },
    /// The store failed, or the body ended early.
    Store(BlobError),
}

impl IntoResponse for UploadError {
    fn into_response(self) -> Response {
        match self {
            Self::TooLarge { limit } => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("a file may have at most {limit} bytes"),
            ),
            Self::Store(e) => store_error(&e),
        }
    }
}

/// Stores a request body at `path`, streamed; at most `limit` bytes (a
/// declared `Content-Length` above it is refused before anything is read).
pub async fn upload(
    store: &dyn BlobStore,
    path: &BlobPath,
    headers: &HeaderMap,
    body: Body,
    limit: u64,
) -> Result<BlobMeta, UploadError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(UploadError::TooLarge { limit });
    }
    let too_large = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = too_large.clone();
    let mut seen = 0u64;
    let stream = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .and_then(move |chunk| {
            seen += chunk.len() as u64;
            let over = seen > limit;
            if over {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            async move {
                if over {
                    Err(std::io::Error::other("the file is larger than allowed"))
                } else {
                    Ok(chunk)
                }
            }
        })
        .boxed();
    match store.put(path, stream).await {
        Ok(meta) => Ok(meta),
        Err(_) if too_large.load(std::sync::atomic::Ordering::Relaxed) => {
            Err(UploadError::TooLarge { limit })
        }
        Err(e) => Err(UploadError::Store(e)),
    }
}
