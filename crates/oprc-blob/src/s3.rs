//! The S3-compatible backend, over `object_store`'s S3 client: files in a
//! bucket at their [`BlobPath`]s, SigV4 presigned URLs handed to functions
//! so that their bytes go to the S3 server directly.
//!
//! - Puts stream: up to [`S3Store::MULTIPART_THRESHOLD`] bytes are buffered
//!   and sent in one `PutObject`; a longer body becomes a multipart upload
//!   of [`S3Store::PART_SIZE`] parts, [`S3Store::PARTS_IN_FLIGHT`] at once
//!   (so a put holds about 24 MiB of its body at most). An upload whose
//!   body fails is aborted; S3 shows nothing of it, and what was at the
//!   path stays. A put whose future is dropped midway cannot abort: its
//!   parts stay on the server, invisible, until the bucket's lifecycle rule
//!   for incomplete multipart uploads removes them (set one).
//! - Credentials are static keys (from the options or the environment).
//!   That is what keeps [`BlobStore::presign`] synchronous: object_store's
//!   `Signer` is async only because some credential providers fetch keys
//!   over the network; with static keys its future is ready when first
//!   polled, so `presign` polls it once and never blocks a runtime.

mod error;
mod options;

use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::signer::Signer as _;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutPayload, RetryConfig, WriteMultipart,
};

pub use options::S3Options;

use crate::{
    BlobError, BlobMeta, BlobPath, BlobStore, ByteRange, Download, Listed, Method, Upload,
};
use error::{failure, is_not_found, is_transport};

/// The longest a SigV4 presigned URL may live.
const MAX_URL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Keys listed per request at most (S3's own cap).
const MAX_KEYS: usize = 1000;

/// Files in an S3 bucket.
pub struct S3Store {
    s3: AmazonS3,
    bucket: String,
    endpoint: String,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// An object_store S3 client for `options`, retrying as `retry` says.
fn client(
    options: &S3Options,
    (key_id, secret): &(String, String),
    retry: RetryConfig,
) -> Result<AmazonS3, BlobError> {
    let endpoint = options.endpoint_url();
    // No timeout for a whole request: a large download to a slow reader
    // may take long. A connection that stops answering is caught by the
    // read timeout instead (object_store then resumes a download where it
    // stopped).
    let client = ClientOptions::new()
        .with_timeout_disabled()
        .with_connect_timeout(Duration::from_secs(5))
        .with_read_timeout(Duration::from_secs(60))
        .with_allow_http(endpoint.starts_with("http://"));
    AmazonS3Builder::new()
        .with_bucket_name(&options.bucket)
        .with_region(&options.region)
        .with_endpoint(endpoint)
        .with_virtual_hosted_style_request(false)
        .with_access_key_id(key_id)
        .with_secret_access_key(secret)
        .with_client_options(client)
        .with_retry(retry)
        .build()
        .map_err(|e| BlobError::invalid(format!("bad s3 options: {e}")))
}

impl S3Store {
    /// Bodies longer than this are sent as multipart uploads.
    pub const MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;
    /// The size of each part of a multipart upload but the last (S3 needs
    /// 5 MiB at least).
    pub const PART_SIZE: usize = 8 * 1024 * 1024;
    /// Parts of one upload sent at once.
    pub const PARTS_IN_FLIGHT: usize = 2;

    /// Builds the client and checks that the bucket is there and that the
    /// keys are accepted, by listing one entry.
    pub async fn connect(options: S3Options) -> Result<Self, BlobError> {
        options.validate()?;
        let keys = options.credentials()?;
        let endpoint = options.endpoint_url();
        // Requests are retried for a few seconds, then the caller decides
        // (on the error's kind).
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 5,
            retry_timeout: Duration::from_secs(30),
        };
        let s3 = client(&options, &keys, retry)?;
        // The check at startup gives up fast: a wrong address should not
        // take half a minute to report.
        let probe = client(
            &options,
            &keys,
            RetryConfig {
                max_retries: 1,
                retry_timeout: Duration::from_secs(5),
                ..RetryConfig::default()
            },
        )?;
        let store = Self {
            s3,
            bucket: options.bucket,
            endpoint,
        };
        store.check(&probe, &keys.0).await?;
        Ok(store)
    }

    /// Lists one entry of the bucket; when that fails, tells apart a
    /// server that does not answer, keys that are refused and a bucket
    /// that is missing.
    async fn check(&self, probe: &AmazonS3, key_id: &str) -> Result<(), BlobError> {
        let (bucket, endpoint) = (&self.bucket, &self.endpoint);
        let listed = probe
            .list_paginated(
                None,
                PaginatedListOptions {
                    max_keys: Some(1),
                    ..PaginatedListOptions::default()
                },
            )
            .await;
        let e = match listed {
            // A first key object_store cannot read is still an answer.
            Ok(_) | Err(object_store::Error::InvalidPath { .. }) => return Ok(()),
            Err(e) => e,
        };
        if is_transport(&e) {
            return Err(BlobError::unavailable(format!(
                "cannot reach the s3 server at {endpoint}: {e}"
            )));
        }
        // Listing errors carry no status object_store names; a HEAD of a
        // key that is not there does.
        let nothing = Path::from(format!(".oprc-probe-{}", uuid::Uuid::now_v7().simple()));
        match probe.head(&nothing).await {
            Err(
                h @ (object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }),
            ) => Err(BlobError::denied(format!(
                "the s3 server at {endpoint} refused access key `{key_id}` for bucket \
                 `{bucket}`: check the access key id and secret ({h})"
            ))),
            Err(h) if is_not_found(&h) => Err(BlobError::invalid(format!(
                "bucket `{bucket}` does not exist at {endpoint} (or cannot be listed with \
                 access key `{key_id}`): create it first ({e})"
            ))),
            _ => Err(failure(
                &format!("checking bucket `{bucket}` at {endpoint}"),
                &e,
            )),
        }
    }
}

fn location(path: &BlobPath) -> Result<Path, BlobError> {
    Path::parse(path.to_string()).map_err(|e| BlobError::invalid(format!("{path}: {e}")))
}

fn meta_of(m: &ObjectMeta) -> BlobMeta {
    BlobMeta {
        size: m.size,
        etag: m.e_tag.as_deref().map(quoted),
        modified_ms: m.last_modified.timestamp_millis(),
    }
}

/// An entity tag as HTTP writes it (S3 sends them quoted; some servers
/// list them bare).
fn quoted(etag: &str) -> String {
    if etag.starts_with('"') || etag.starts_with("W/\"") {
        etag.to_owned()
    } else {
        format!("\"{etag}\"")
    }
}

fn get_range(range: ByteRange) -> GetRange {
    match range {
        ByteRange::Bounded(a, b) => GetRange::Bounded(a..b.saturating_add(1)),
        ByteRange::From(a) => GetRange::Offset(a),
        ByteRange::Suffix(n) => GetRange::Suffix(n),
    }
}

fn outside(size: u64) -> BlobError {
    BlobError::invalid(format!("the range is outside the file ({size} bytes)"))
}

impl S3Store {
    /// A single `PutObject` of what was buffered.
    async fn put_whole(&self, at: &Path, parts: Vec<bytes::Bytes>) -> Result<(), BlobError> {
        let payload: PutPayload = parts.into_iter().collect();
        self.s3
            .put(at, payload)
            .await
            .map(drop)
            .map_err(|e| failure(&format!("writing {at} to s3"), &e))
    }

    /// A multipart upload of `first` and then the rest of `body`; aborted
    /// when the body or a part fails.
    async fn put_parts(
        &self,
        at: &Path,
        first: Vec<bytes::Bytes>,
        body: &mut Upload,
    ) -> Result<(), BlobError> {
        let upload = self
            .s3
            .put_multipart(at)
            .await
            .map_err(|e| failure(&format!("starting an upload of {at} to s3"), &e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, Self::PART_SIZE);
        for chunk in first {
            writer.put(chunk);
        }
        let streamed = loop {
            if let Err(e) = writer.wait_for_capacity(Self::PARTS_IN_FLIGHT).await {
                break Err(failure(&format!("uploading a part of {at} to s3"), &e));
            }
            match body.next().await {
                None => break Ok(()),
                Some(Ok(chunk)) => writer.put(chunk),
                Some(Err(e)) => {
                    break Err(BlobError::invalid(format!(
                        "the upload stopped before its end: {e}"
                    )));
                }
            }
        };
        match streamed {
            // `finish` aborts the upload itself when completing fails.
            Ok(()) => writer
                .finish()
                .await
                .map(drop)
                .map_err(|e| failure(&format!("completing the upload of {at} to s3"), &e)),
            Err(e) => {
                // Parts already sent are let finish first: a part the
                // server is still receiving when the abort arrives is
                // stored after it, and stays (S3 documents the same).
                // Each failed wait takes one part out, so this ends.
                while writer.wait_for_capacity(0).await.is_err() {}
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(path = %at, error = %abort, "aborting a multipart upload failed");
                }
                Err(e)
            }
        }
    }
}

#[async_trait::async_trait]
impl BlobStore for S3Store {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn presign(&self, method: Method, path: &BlobPath, ttl: Duration) -> Result<String, BlobError> {
        if ttl > MAX_URL_TTL {
            return Err(BlobError::invalid(format!(
                "an s3 url lives {} seconds at most, {} asked",
                MAX_URL_TTL.as_secs(),
                ttl.as_secs()
            )));
        }
        let method = match method {
            Method::Get => object_store::signer::Method::GET,
            Method::Put => object_store::signer::Method::PUT,
        };
        let at = location(path)?;
        // Ready at the first poll with static credentials (see the module
        // docs); `None` would mean a credential provider that fetches.
        match self.s3.signed_url(method, &at, ttl).now_or_never() {
            Some(Ok(url)) => Ok(url.to_string()),
            Some(Err(e)) => Err(failure(&format!("signing a url for {path}"), &e)),
            None => Err(BlobError::unavailable(
                "signing an s3 url needs static credentials",
            )),
        }
    }

    async fn head(&self, path: &BlobPath) -> Result<Option<BlobMeta>, BlobError> {
        match self.s3.head(&location(path)?).await {
            Ok(m) => Ok(Some(meta_of(&m))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(failure(&format!("reading {path} from s3"), &e)),
        }
    }

    async fn get(
        &self,
        path: &BlobPath,
        range: Option<ByteRange>,
    ) -> Result<Option<Download>, BlobError> {
        // Ranges no file satisfies are not sent (S3 would answer with the
        // whole file to some of them).
        if matches!(range, Some(ByteRange::Suffix(0)))
            || matches!(range, Some(ByteRange::Bounded(a, b)) if a > b)
        {
            return match self.head(path).await? {
                None => Ok(None),
                Some(meta) => Err(outside(meta.size)),
            };
        }
        let at = location(path)?;
        let options = GetOptions::new().with_range(range.map(get_range));
        let got = match self.s3.get_opts(&at, options).await {
            Ok(got) => got,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => {
                // object_store names no status for an unsatisfiable range
                // (416): whether it was one is decided here, on the size.
                if let (Some(r), false) = (range, is_transport(&e))
                    && let Some(meta) = self.head(path).await?
                    && r.resolve(meta.size).is_none()
                {
                    return Err(outside(meta.size));
                }
                return Err(failure(&format!("reading {path} from s3"), &e));
            }
        };
        let meta = meta_of(&got.meta);
        if range.is_some() && got.range.is_empty() {
            return Err(outside(meta.size));
        }
        let sent = range.map(|_| (got.range.start, got.range.end - 1));
        let body = got
            .into_stream()
            .map(|r| r.map_err(std::io::Error::from))
            .boxed();
        Ok(Some(Download {
            meta,
            range: sent,
            body,
        }))
    }

    async fn put(&self, path: &BlobPath, mut body: Upload) -> Result<BlobMeta, BlobError> {
        let at = location(path)?;
        let mut first = Vec::new();
        let mut buffered = 0;
        let whole = loop {
            match body.next().await {
                None => break true,
                Some(Ok(chunk)) => {
                    buffered += chunk.len();
                    first.push(chunk);
                    if buffered > Self::MULTIPART_THRESHOLD {
                        break false;
                    }
                }
                Some(Err(e)) => {
                    return Err(BlobError::invalid(format!(
                        "the upload stopped before its end: {e}"
                    )));
                }
            }
        };
        if whole {
            self.put_whole(&at, first).await?;
        } else {
            self.put_parts(&at, first, &mut body).await?;
        }
        self.head(path)
            .await?
            .ok_or_else(|| BlobError::unavailable(format!("{path} vanished as it was written")))
    }

    async fn copy(&self, from: &BlobPath, to: &BlobPath) -> Result<(), BlobError> {
        match self.s3.copy(&location(from)?, &location(to)?).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Err(BlobError::invalid(format!(
                "cannot copy {from}: it is not stored"
            ))),
            Err(e) => Err(failure(&format!("copying {from} to {to} in s3"), &e)),
        }
    }

    async fn delete(&self, path: &BlobPath) -> Result<(), BlobError> {
        match self.s3.delete(&location(path)?).await {
            Err(e) if !is_not_found(&e) => Err(failure(&format!("deleting {path} from s3"), &e)),
            _ => Ok(()),
        }
    }

    async fn list(&self, after: Option<&BlobPath>, limit: usize) -> Result<Vec<Listed>, BlobError> {
        let mut listed = Vec::new();
        // S3 lists keys in byte order, which is the order of paths.
        let mut options = PaginatedListOptions {
            offset: after.map(ToString::to_string),
            max_keys: Some(limit.min(MAX_KEYS)),
            ..PaginatedListOptions::default()
        };
        while listed.len() < limit {
            let page = self
                .s3
                .list_paginated(None, options.clone())
                .await
                .map_err(|e| failure("listing files in s3", &e))?;
            for object in &page.result.objects {
                // Keys written by something else are skipped.
                let Ok(path) = BlobPath::parse(object.location.as_ref()) else {
                    continue;
                };
                listed.push(Listed {
                    path,
                    size: object.size,
                    modified_ms: object.last_modified.timestamp_millis(),
                });
                if listed.len() == limit {
                    break;
                }
            }
            match page.page_token {
                Some(token) => options.page_token = Some(token),
                None => break,
            }
        }
        Ok(listed)
    }
}
