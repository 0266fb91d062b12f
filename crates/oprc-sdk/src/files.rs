//! Objects' files through the task's presigned URLs: streamed GETs and
//! PUTs over one shared HTTP client. No credential is ever added to these
//! requests: the URLs carry their own signature.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskCx, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use crate::{Object, TaskError};

/// How long a transfer may wait on the network at a time (one read), not
/// for the whole transfer.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of an error answer's body a message quotes.
const EXCERPT: usize = 200;

static HTTP: LazyLock<Result<reqwest::Client, String>> = LazyLock::new(|| {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(READ_TIMEOUT)
        .user_agent(concat!("oprc-sdk/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| TaskError::from(e).message().to_owned())
});

pub(crate) fn http() -> Result<&'static reqwest::Client, TaskError> {
    HTTP.as_ref()
        .map_err(|e| TaskError::new(format!("cannot make an HTTP client: {e}")))
}

/// The body of a file, streamed from its GET URL: a [`Stream`] of chunks.
///
/// A body that ends before its announced length (or breaks off) ends the
/// stream with an error rather than passing for a whole file.
pub struct FileStream {
    len: Option<u64>,
    chunks: Pin<Box<dyn Stream<Item = Result<Bytes, TaskError>> + Send>>,
}

impl FileStream {
    /// The length the server announced (`Content-Length`), if any.
    pub fn content_length(&self) -> Option<u64> {
        self.len
    }
}

impl std::fmt::Debug for FileStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStream")
            .field("len", &self.len)
            .finish()
    }
}

impl Stream for FileStream {
    type Item = Result<Bytes, TaskError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Option<Self::Item>> {
        self.chunks.as_mut().poll_next(cx)
    }
}

/// Files, through the URLs the platform sent with the task.
impl Object {
    /// Keys of the files that can be read (their GET URLs): the object's
    /// own, and `REF.KEY` for the files of the objects it references.
    pub fn file_keys(&self) -> impl Iterator<Item = &str> {
        self.get_urls().keys().map(String::as_str)
    }

    /// File `key` (or `REF.KEY`) as a stream of chunks from its GET URL.
    pub async fn open_file(&self, key: &str) -> Result<FileStream, TaskError> {
        let url = self.get_url(key)?;
        let what = format!("download of file {key:?}");
        let resp = http()?
            .get(url)
            .send()
            .await
            .map_err(|e| unreachable(&what, url, e))?;
        if !resp.status().is_success() {
            return Err(refused(&what, url, resp).await);
        }
        let len = resp.content_length();
        struct State {
            resp: reqwest::Response,
            got: u64,
            what: String,
        }
        let state = State {
            resp,
            got: 0,
            what: format!("{what} from {} broke off", shown(url)),
        };
        let chunks = futures_util::stream::try_unfold(state, move |mut s| async move {
            let broke = |s: &State, why: String| {
                let of = len.map_or_else(String::new, |n| format!(" of {n}"));
                TaskError::new(format!("{} after {}{of} bytes: {why}", s.what, s.got))
            };
            match s.resp.chunk().await {
                Ok(Some(chunk)) => {
                    s.got += chunk.len() as u64;
                    Ok(Some((chunk, s)))
                }
                Ok(None) if len.is_some_and(|n| n != s.got) => {
                    Err(broke(&s, "the connection closed".into()))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(broke(
                    &s,
                    TaskError::from(e.without_url()).message().to_owned(),
                )),
            }
        });
        Ok(FileStream {
            len,
            chunks: Box::pin(chunks),
        })
    }

    /// File `key` whole, in memory (use [`open_file`](Self::open_file) or
    /// [`download_file`](Self::download_file) for large files).
    pub async fn read_file(&self, key: &str) -> Result<Bytes, TaskError> {
        let mut stream = self.open_file(key).await?;
        let mut all = BytesMut::with_capacity(stream.len.unwrap_or(0).min(1 << 24) as usize);
        while let Some(chunk) = stream.next().await {
            all.extend_from_slice(&chunk?);
        }
        Ok(all.freeze())
    }

    /// Streams file `key` to `path` and answers the bytes written. The bytes
    /// go to a temporary file beside `path`, renamed to it once complete: a
    /// failed (or dropped) download leaves no half file.
    pub async fn download_file(&self, key: &str, path: impl AsRef<Path>) -> Result<u64, TaskError> {
        let path = path.as_ref();
        let mut stream = self.open_file(key).await?;
        let tmp = Partial::create(path).await?;
        let failed = |e: std::io::Error| {
            TaskError::new(format!(
                "cannot write file {key:?} to {}: {e}",
                path.display()
            ))
        };
        let mut out = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&tmp.path)
            .await
            .map_err(failed)?;
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            out.write_all(&chunk).await.map_err(failed)?;
            n += chunk.len() as u64;
        }
        out.flush().await.map_err(failed)?;
        out.sync_all().await.map_err(failed)?;
        tmp.persist(path).await.map_err(failed)?;
        Ok(n)
    }

    /// Uploads a new version of file `key` to its PUT URL: `body`, exactly
    /// `len` bytes (sent as `Content-Length`; presigned PUTs take no chunked
    /// body), e.g. `Bytes`, a `Vec<u8>`, or a stream with
    /// [`Body::wrap_stream`](reqwest::Body::wrap_stream). Records `key` in
    /// the completion's `updatedKeys` once the PUT succeeded. The new
    /// version becomes the file's when the completion is committed.
    pub async fn write_file(
        &mut self,
        key: &str,
        body: impl Into<reqwest::Body>,
        len: u64,
    ) -> Result<(), TaskError> {
        let url = self.put_url(key)?;
        let what = format!("upload of file {key:?}");
        let resp = http()?
            .put(url)
            .header(CONTENT_LENGTH, len)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(&what, url, e))?;
        if !resp.status().is_success() {
            return Err(refused(&what, url, resp).await);
        }
        self.mark_key_updated(key);
        Ok(())
    }

    /// Uploads the local file at `path` as a new version of file `key`,
    /// streamed; see [`write_file`](Self::write_file). Answers its length.
    pub async fn upload_file(
        &mut self,
        key: &str,
        path: impl AsRef<Path>,
    ) -> Result<u64, TaskError> {
        let path = path.as_ref();
        let failed =
            |e: std::io::Error| TaskError::new(format!("cannot upload {}: {e}", path.display()));
        let file = tokio::fs::File::open(path).await.map_err(failed)?;
        let len = file.metadata().await.map_err(failed)?.len();
        let body = reqwest::Body::wrap_stream(ReaderStream::new(file.take(len)));
        self.write_file(key, body, len).await?;
        Ok(len)
    }
}

/// A temporary file beside a download's destination, removed unless
/// persisted (also when the download is dropped).
struct Partial {
    path: PathBuf,
    kept: bool,
}

impl Partial {
    async fn create(dest: &Path) -> Result<Self, TaskError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = dest
            .file_name()
            .ok_or_else(|| TaskError::new(format!("{} does not name a file", dest.display())))?;
        let path = dest.with_file_name(format!(
            ".{}.{}-{}.part",
            name.to_string_lossy(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| TaskError::new(format!("cannot create {}: {e}", path.display())))?;
        Ok(Self { path, kept: false })
    }

    async fn persist(mut self, dest: &Path) -> std::io::Result<()> {
        tokio::fs::rename(&self.path, dest).await?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.kept {
            // Small and rare (a failed download): not worth a blocking task.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `url` without its query: a presigned URL's query is its signature.
fn shown(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

fn unreachable(what: &str, url: &str, e: reqwest::Error) -> TaskError {
    let cause = TaskError::from(e.without_url());
    TaskError::new(format!(
        "{what}: cannot reach {}: {}",
        shown(url),
        cause.message()
    ))
}

/// An error answer: its status and the start of its body (S3 explains
/// itself in XML there).
async fn refused(what: &str, url: &str, mut resp: reqwest::Response) -> TaskError {
    let status = resp.status();
    let mut body = Vec::new();
    while body.len() < 4 * EXCERPT {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&body);
    let text: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(EXCERPT)
        .collect();
    let sep = if text.is_empty() { "" } else { ": " };
    TaskError::new(format!(
        "{what}: {} answered HTTP {status}{sep}{text}",
        shown(url)
    ))
}
