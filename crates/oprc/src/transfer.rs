//! File transfers: streamed uploads and downloads of objects' files, with
//! a progress bar when stderr is a terminal.
//!
//! Nothing here holds a whole file in memory: an upload streams from the
//! file with its length as `Content-Length` (presigned PUTs take no chunked
//! body), a download goes chunk by chunk to a temporary file beside the
//! destination that is renamed to it once complete, so a download that
//! breaks off (or is dropped, e.g. on Ctrl-C) leaves no half file.

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::BytesMut;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{RequestBuilder, Response, Url};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::client::{root_cause, shown};
use crate::exit::{Exit, Fail};

/// Transfers smaller than this show no progress bar.
const BAR_FROM: u64 = 1 << 20;
/// Read size of uploads.
const CHUNK: usize = 64 * 1024;
/// How much of an error answer's body a message quotes.
const EXCERPT: usize = 200;

/// A local file to upload, opened, and its length.
#[derive(Debug)]
pub struct Source {
    file: File,
    len: u64,
    /// The path as given, or `stdin`.
    name: String,
}

impl Source {
    /// Opens `path` (`-`: stdin). Stdin that is not a regular file (a pipe,
    /// a terminal) is first copied to an anonymous temporary file: an upload
    /// needs its length before it starts.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        if path == Path::new("-") {
            return Self::stdin().await;
        }
        let name = path.display().to_string();
        let file = File::open(path)
            .await
            .with_context(|| format!("failed to open {name}"))?;
        let meta = file
            .metadata()
            .await
            .with_context(|| format!("failed to read {name}"))?;
        anyhow::ensure!(meta.is_file(), "{name} is not a regular file");
        Ok(Self {
            file,
            len: meta.len(),
            name,
        })
    }

    async fn stdin() -> anyhow::Result<Self> {
        use std::io::Seek;
        use std::os::fd::AsFd;

        let name = "stdin".to_owned();
        let fd = io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("failed to read stdin")?;
        let mut input = std::fs::File::from(fd);
        let meta = input.metadata().context("failed to read stdin")?;
        if meta.is_file() {
            // `< file`: read it in place, from where stdin stands.
            let at = input.stream_position().context("failed to read stdin")?;
            return Ok(Self {
                file: File::from_std(input),
                len: meta.len().saturating_sub(at),
                name,
            });
        }
        let spool = tempfile::tempfile().context("failed to create a temporary file for stdin")?;
        let mut spool = File::from_std(spool);
        let len = tokio::io::copy(&mut tokio::io::stdin(), &mut spool)
            .await
            .context("failed to copy stdin to a temporary file")?;
        spool.flush().await?;
        let mut spool = spool.into_std().await;
        spool.rewind()?;
        Ok(Self {
            file: File::from_std(spool),
            len,
            name,
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// The body of an upload: the file's bytes, exactly `len` of them (a
    /// file that shrinks meanwhile fails the upload), counted on `bar`.
    fn into_body(self, bar: ProgressBar) -> reqwest::Body {
        struct State {
            reader: tokio::io::Take<File>,
            sent: u64,
            len: u64,
            name: String,
            bar: ProgressBar,
        }
        let state = State {
            reader: self.file.take(self.len),
            sent: 0,
            len: self.len,
            name: self.name,
            bar,
        };
        let chunks = futures_util::stream::try_unfold(state, |mut s| async move {
            let mut buf = BytesMut::with_capacity(CHUNK);
            let n = s.reader.read_buf(&mut buf).await?;
            if n == 0 {
                if s.sent < s.len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{} shrank while it was uploaded ({} of {} bytes read)",
                            s.name, s.sent, s.len
                        ),
                    ));
                }
                return Ok(None);
            }
            s.sent += n as u64;
            s.bar.inc(n as u64);
            Ok(Some((buf.freeze(), s)))
        });
        reqwest::Body::wrap_stream(chunks)
    }
}

/// A progress bar on stderr for a transfer of `len` bytes (unknown: a
/// spinner), or a hidden one when stderr is not a terminal or the file is
/// small.
pub fn bar(len: Option<u64>, label: &str) -> ProgressBar {
    if !io::stderr().is_terminal() || len.is_some_and(|n| n < BAR_FROM) {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(n) => (
            ProgressBar::new(n),
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{msg} {spinner} {bytes} {bytes_per_sec}",
        ),
    };
    let style = ProgressStyle::with_template(template)
        .expect("the templates above are valid")
        .progress_chars("=> ");
    bar.with_style(style).with_message(label.to_owned())
}

/// Sends `rb` (a PUT to `url`) with `source` as its streamed body and its
/// length as `Content-Length`. A transport failure is [`Exit::Unavailable`];
/// the answer, whatever its status, is the caller's to judge.
pub async fn upload(
    rb: RequestBuilder,
    url: &Url,
    source: Source,
    label: &str,
) -> Result<Response, Fail> {
    let bar = bar(Some(source.len), label);
    let rb = rb
        .header(CONTENT_LENGTH, source.len)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(source.into_body(bar.clone()));
    let sent = rb.send().await;
    bar.finish_and_clear();
    sent.map_err(|e| {
        Fail::new(
            Exit::Unavailable,
            format!(
                "upload of {label} to {} failed: {}",
                shown(url),
                root_cause(&e)
            ),
        )
    })
}

/// The error for a file URL that answered `resp` (not a 2xx): its status
/// and the start of its body (S3 explains itself in XML there).
pub async fn url_refused(what: &str, url: &Url, resp: Response) -> Fail {
    let status = resp.status();
    let exit = if status.is_server_error() {
        Exit::Unavailable
    } else {
        Exit::Refused
    };
    let mut body = Vec::new();
    let mut resp = resp;
    while body.len() < 4 * EXCERPT {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    let text: String = String::from_utf8_lossy(&body)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(EXCERPT)
        .collect();
    let mut message = format!("{what} {} answered HTTP {status}", shown(url));
    if !text.is_empty() {
        message.push_str(": ");
        message.push_str(&text);
    }
    Fail::new(exit, message)
}

/// Where a download goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Stdout,
    File(PathBuf),
}

impl Dest {
    /// `-` is stdout; an existing directory means `dir/key`.
    pub fn new(path: &Path, key: &str) -> Self {
        if path == Path::new("-") {
            Self::Stdout
        } else if path.is_dir() {
            Self::File(path.join(key))
        } else {
            Self::File(path.to_owned())
        }
    }
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdout => f.write_str("stdout"),
            Self::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Streams the body of `resp` to `dest` and answers the bytes written. A
/// file is complete when it appears: the bytes go to a temporary file in
/// the same directory, renamed over `dest` at the end; a body shorter than
/// its `Content-Length` or cut by the network is [`Exit::Unavailable`] and
/// leaves nothing behind (nor does dropping this future).
pub async fn download(resp: Response, dest: &Dest, bar: &ProgressBar) -> anyhow::Result<u64> {
    match dest {
        Dest::Stdout => match copy(resp, &mut tokio::io::stdout(), bar).await {
            // `oprc obj file get ... - | head`: the reader had enough.
            Err(Copy::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
            Err(Copy::Write(e)) => Err(anyhow::Error::new(e).context("failed to write to stdout")),
            Err(Copy::Read(f)) => Err(f.into()),
            Ok(n) => Ok(n),
        },
        Dest::File(path) => save(resp, path, bar).await,
    }
}

async fn save(resp: Response, path: &Path, bar: &ProgressBar) -> anyhow::Result<u64> {
    use std::os::unix::fs::PermissionsExt;

    let shown = path.display();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{shown} does not name a file"))?;
    // Created like any new file (the umask applies), not 0600 as temporary
    // files are; removed when dropped unless persisted.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".oprc-part")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|e| {
            // Not tempfile's message: it names the temporary file.
            let why = match e.kind() {
                io::ErrorKind::NotFound => format!("{} does not exist", dir.display()),
                io::ErrorKind::PermissionDenied => {
                    format!("no permission to create files in {}", dir.display())
                }
                _ => e.to_string(),
            };
            anyhow::anyhow!("failed to write {shown}: {why}")
        })?;
    let mut out = File::from_std(
        tmp.as_file()
            .try_clone()
            .context("failed to open the temporary file")?,
    );
    let n = match copy(resp, &mut out, bar).await {
        Ok(n) => n,
        Err(Copy::Read(f)) => {
            return Err(
                Fail::new(f.exit, format!("{}; {shown} was not written", f.message)).into(),
            );
        }
        Err(Copy::Write(e)) => {
            return Err(anyhow::Error::new(e).context(format!("failed to write {shown}")));
        }
    };
    out.sync_all()
        .await
        .with_context(|| format!("failed to write {shown}"))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("failed to write {shown}"))?;
    Ok(n)
}

/// Why a copy stopped.
enum Copy {
    /// The body broke off (network, short body).
    Read(Fail),
    /// The destination refused the bytes.
    Write(io::Error),
}

async fn copy(
    mut resp: Response,
    out: &mut (impl AsyncWrite + Unpin),
    bar: &ProgressBar,
) -> Result<u64, Copy> {
    let expected = resp.content_length();
    let of = expected.map_or_else(String::new, |n| format!(" of {n}"));
    let mut got = 0u64;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                out.write_all(&chunk).await.map_err(Copy::Write)?;
                got += chunk.len() as u64;
                bar.inc(chunk.len() as u64);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(Copy::Read(Fail::new(
                    Exit::Unavailable,
                    format!(
                        "the download broke off after {got}{of} bytes: {}",
                        root_cause(&e)
                    ),
                )));
            }
        }
    }
    if let Some(n) = expected
        && got != n
    {
        return Err(Copy::Read(Fail::new(
            Exit::Unavailable,
            format!("the download broke off after {got} of {n} bytes"),
        )));
    }
    out.flush().await.map_err(Copy::Write)?;
    Ok(got)
}
