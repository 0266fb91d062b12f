//! The command line: clap definitions and the parsers of argument values.
//! Everything that can be checked without the node is checked here, so a
//! malformed argument is a usage error (exit 2) before any request is sent.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::Url;

use crate::output::Format;

const LONG_ABOUT: &str = "\
Oparaca: objects as a service.

`oprc serve` runs a node (HTTP API, embedded storage in ./oprc-data by default).
The other commands are clients of a node's HTTP API (--url / OPRC_URL).

Tokens: changing packages needs the node's admin token. For a node on this
machine, client commands read it from its data directory (--data-dir /
OPRC_DATA_DIR, default ./oprc-data); a node started with --token needs
that token on every /api request (pass --token / OPRC_TOKEN).

Files: objects of classes with `stateSpec.keySpecs` carry named files.
`oprc obj new CLS -f KEY=PATH` creates an object with its files; `oprc obj
file get|put CLS/OID KEY PATH` downloads or uploads one (streamed, never whole
in memory; a progress bar on stderr when it is a terminal).

Output: data goes to stdout, progress, warnings and errors to stderr.
-o/--output picks the format of the data: lists (`pkg list`, `cls list`,
`fn list`, `obj list`) default to `table`, single documents (`get`, `new`,
`apply`, `invoke`, `inv get`) default to `json`.

Exit codes:
  0  success
  1  the request was refused (HTTP 4xx), the invocation FAILED, or a local
     error (e.g. an unreadable file)
  2  usage error (bad flags or arguments, unparsable --body/--data)
  3  cannot reach the node (or a file's URL), the node failed (HTTP 5xx
     other than a function's own failure), or a file transfer broke off
  4  `invoke --async --wait` timed out";

#[derive(Debug, Parser)]
#[command(name = "oprc", version, about = "Oparaca: objects as a service", long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// URL of the node's HTTP API (client commands).
    #[arg(long, global = true, env = "OPRC_URL", value_name = "URL",
          default_value = "http://127.0.0.1:6180", value_parser = parse_url)]
    pub url: Url,
    /// Bearer token: sent by client commands (default: the admin token in
    /// the data directory, for a node on this machine); with `serve`,
    /// required on every `/api` route and the admin token.
    #[arg(
        long,
        global = true,
        env = "OPRC_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Data directory: where `serve` keeps its data and admin token, and
    /// where client commands talking to a node on this machine read that
    /// token [default: ./oprc-data].
    #[arg(long, global = true, env = "OPRC_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Format of the data on stdout [default: table for lists, json otherwise].
    #[arg(short = 'o', long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node.
    Serve(ServeArgs),
    /// Write the packages, objects and file versions of stopped stores
    /// into a directory (a backup, or the first half of a move).
    Export(ArchiveArgs),
    /// Load an export into empty stores (the other half of a move).
    Import(ArchiveArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

/// The commands that talk to a node.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Packages: apply, get, delete, list.
    #[command(subcommand)]
    Pkg(PkgCmd),
    /// Classes (resolved: inherited bindings and keys included).
    #[command(subcommand)]
    Cls(ClsCmd),
    /// Functions.
    #[command(subcommand, name = "fn")]
    Func(FnCmd),
    /// Objects: new, get, list, delete, and their files.
    #[command(subcommand)]
    Obj(ObjCmd),
    /// Invoke a function of a class (CLS) or of an object (CLS/OID).
    Invoke(InvokeArgs),
    /// Invocations (status and result of async calls).
    #[command(subcommand)]
    Inv(InvCmd),
}

/// Flags of `export` and `import`: the directory and the stores, named as
/// `serve` names them (`--data-dir` for the embedded ones).
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// The archive directory (export: must not exist or be empty).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// A node's config file, for its stores (`dataDir`, `state`, `blobs`
    /// and the S3 credentials).
    #[arg(long, env = "OPRC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The state store: `postgres://...` [default: embedded, in the data
    /// directory].
    #[arg(long, env = "OPRC_STATE", value_name = "URL")]
    pub state: Option<String>,
    /// The blob store: `s3://BUCKET?endpoint=URL&region=REGION`
    /// [default: the data directory].
    #[arg(long, env = "OPRC_BLOBS", value_name = "URL")]
    pub blobs: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags of `serve`. Config: defaults < --config file < OPRC_* environment
/// < flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the HTTP API [default: 127.0.0.1:6180].
    #[arg(long, env = "OPRC_LISTEN", value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Package file to apply at start (repeatable).
    #[arg(long, env = "OPRC_APPLY", value_name = "FILE", value_delimiter = ',')]
    pub apply: Vec<PathBuf>,
    /// Config file (YAML or JSON; camelCase keys: listen, dataDir, apply,
    /// token, maxBodyBytes, partitions, retentionSecs, sync,
    /// processFunctions, state, invocationLog, allowOrigins, publicHosts,
    /// blobs, s3AccessKeyId,
    /// s3SecretAccessKey, blobRelay, urlTtl, maxFileBytes, fileGcGrace,
    /// fileGcInterval, publicUrl).
    #[arg(long, env = "OPRC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Partitions of the object space and async log.
    #[arg(long, env = "OPRC_PARTITIONS", value_name = "N")]
    pub partitions: Option<u16>,
    /// Request body limit in bytes.
    #[arg(long, env = "OPRC_MAX_BODY_BYTES", value_name = "N")]
    pub max_body_bytes: Option<usize>,
    /// How long invocation records are kept, in seconds.
    #[arg(long, env = "OPRC_RETENTION_SECS", value_name = "N")]
    pub retention_secs: Option<u64>,
    /// Write-behind storage: faster, but a crash may lose the last moments of writes.
    #[arg(long, env = "OPRC_NO_SYNC", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub no_sync: bool,
    /// Refuse functions with `provision.process`: the node then runs no
    /// command that a package names.
    #[arg(long, env = "OPRC_NO_PROCESS_FUNCTIONS", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub no_process_functions: bool,
    /// Origin whose web pages may call the API, e.g. http://localhost:3000
    /// (repeatable; answered with CORS headers). Other origins are refused.
    #[arg(long = "allow-origin", env = "OPRC_ALLOW_ORIGINS", value_name = "URL",
          value_delimiter = ',', value_parser = parse_origin)]
    pub allow_origins: Vec<String>,
    /// Host name this node answers to besides its listen address, e.g.
    /// behind a proxy: NAME (any port) or NAME:PORT (repeatable).
    #[arg(long = "public-host", env = "OPRC_PUBLIC_HOSTS", value_name = "NAME",
          value_delimiter = ',', value_parser = parse_public_host)]
    pub public_hosts: Vec<String>,
    /// Where files live: s3://BUCKET?endpoint=URL&region=REGION (credentials
    /// from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) [default: the data
    /// directory].
    #[arg(long, env = "OPRC_BLOBS", value_name = "URL")]
    pub blobs: Option<String>,
    /// Where objects, packages and invocation records live:
    /// `postgres://USER[:PASSWORD]@HOST:PORT/DB` for a shared PostgreSQL
    /// [default: embedded, in the data directory].
    #[arg(long, env = "OPRC_STATE", value_name = "URL")]
    pub state: Option<String>,
    /// Where accepted async calls wait: `nats://HOST:4222` for NATS
    /// JetStream [default: embedded, in the data directory].
    #[arg(long, env = "OPRC_INVOCATION_LOG", value_name = "URL")]
    pub invocation_log: Option<String>,
    /// Relay mode: file URLs point at this node, which streams the bytes
    /// from and to the blob store (for clients and functions that cannot
    /// reach it).
    #[arg(long, env = "OPRC_BLOB_RELAY", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub blob_relay: bool,
    /// Lifetime of the file URLs handed out, e.g. 15m (units: ms, s, m, h;
    /// a bare number is seconds) [default: 15m].
    #[arg(long, env = "OPRC_URL_TTL", value_name = "DURATION", value_parser = parse_duration)]
    pub url_ttl: Option<std::time::Duration>,
    /// Largest file the node receives itself, in bytes [default: 5 GiB].
    #[arg(long, env = "OPRC_MAX_FILE_BYTES", value_name = "N")]
    pub max_file_bytes: Option<u64>,
    /// Age after which file versions no object holds are deleted, e.g. 1h
    /// (units: ms, s, m, h); uploads must be committed within half of it
    /// [default: 1h].
    #[arg(long, env = "OPRC_FILE_GC_GRACE", value_name = "DURATION", value_parser = parse_duration)]
    pub file_gc_grace: Option<std::time::Duration>,
    /// Time between passes of the file collector, e.g. 60s [default: 60s].
    #[arg(long, env = "OPRC_FILE_GC_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub file_gc_interval: Option<std::time::Duration>,
    /// The URL this node is reached at, the base of its file URLs, e.g.
    /// http://node.example:6180 [default: http:// and the listen address].
    #[arg(long, env = "OPRC_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Log format on stderr (filter with OPRC_LOG or RUST_LOG; default `info`).
    #[arg(long, env = "OPRC_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum PkgCmd {
    /// Create or update a package from a YAML or JSON file (`-`: stdin).
    Apply { file: PathBuf },
    /// Show a resolved package.
    Get { name: String },
    /// Delete a package.
    Delete { name: String },
    /// List packages.
    List,
    /// Print the Kubernetes manifests of a package file's functions
    /// provisioned with `knative` (a Knative Service each) or `deployment`
    /// (a Deployment and a Service), for `kubectl apply -f -`. Local: no
    /// node is needed.
    Render {
        file: PathBuf,
        /// `metadata.namespace` of every manifest [default: none, for
        /// `kubectl -n`].
        #[arg(long, short = 'n', value_name = "NAMESPACE")]
        namespace: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClsCmd {
    /// List classes.
    List,
    /// Show a resolved class.
    Get { cls: String },
}

#[derive(Debug, Subcommand)]
pub enum FnCmd {
    /// List functions.
    List,
    /// Show a function.
    Get { key: String },
}

#[derive(Debug, Subcommand)]
pub enum ObjCmd {
    /// Create an object (the class's `new` binding); prints the new object.
    ///
    /// With -f/--file, the object is created with those file keys, each file
    /// is uploaded to its upload URL, then all are committed; the object is
    /// printed after the commit.
    New {
        cls: String,
        /// Object id [default: generated by the node].
        #[arg(long)]
        id: Option<String>,
        /// Initial data: inline JSON, @FILE, or - for stdin.
        #[arg(long, value_name = "JSON|@FILE|-", value_parser = parse_json_source)]
        data: Option<JsonSource>,
        /// File to upload as key KEY (repeatable; KEY must be one of the
        /// class's `stateSpec.keySpecs`).
        #[arg(short = 'f', long = "file", value_name = "KEY=PATH", value_parser = parse_file_arg)]
        files: Vec<(String, PathBuf)>,
    },
    /// Show an object.
    Get { cls: String, oid: String },
    /// List the objects of a class.
    List {
        cls: String,
        /// Page size.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: Option<u16>,
        /// Start after this cursor (the `next` of a previous page).
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        /// Follow `next` until the last page.
        #[arg(long)]
        all: bool,
    },
    /// Delete an object.
    Delete { cls: String, oid: String },
    /// Files of an object: get (download), put (upload a new version).
    #[command(subcommand)]
    File(FileCmd),
}

#[derive(Debug, Subcommand)]
pub enum FileCmd {
    /// Download file KEY of an object to PATH (`-`: stdout).
    ///
    /// Follows the node's redirect to the file's URL (or, with --relay, has
    /// the node stream it). The bytes go to a temporary file beside PATH,
    /// renamed to PATH once complete: a broken-off download leaves no half
    /// file. An existing directory as PATH means PATH/KEY.
    Get(FileArgs),
    /// Upload PATH (`-`: stdin) as a new version of file KEY of an object;
    /// prints the object.
    ///
    /// Asks the node for an upload URL, streams the file there, then commits
    /// it (the object shows the new version only after the commit). With
    /// --relay, one PUT streams the file through the node, which commits it.
    Put(FileArgs),
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// The object.
    #[arg(value_name = "CLS/OID", value_parser = parse_object_target)]
    pub target: ObjectTarget,
    /// File key (one of the class's `stateSpec.keySpecs`).
    #[arg(value_name = "KEY", value_parser = parse_file_key)]
    pub key: String,
    /// Local file; `-` for stdout (get) or stdin (put).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Stream the bytes through the node instead of using the file's own URL.
    #[arg(long)]
    pub relay: bool,
}

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// CLS for a class-level call (e.g. `new`), CLS/OID for an object call.
    #[arg(value_name = "CLS[/OID]", value_parser = parse_target)]
    pub target: Target,
    /// Binding (function) name.
    #[arg(value_name = "FN")]
    pub function: String,
    /// Argument passed to the function as `args` (repeatable).
    #[arg(long = "arg", value_name = "KEY=VALUE", value_parser = parse_arg)]
    pub args: Vec<(String, String)>,
    /// Request body: inline JSON, @FILE, or - for stdin.
    #[arg(long, value_name = "JSON|@FILE|-", value_parser = parse_json_source)]
    pub body: Option<JsonSource>,
    /// Queue the call and answer at once (status QUEUE).
    #[arg(long = "async")]
    pub run_async: bool,
    /// With --async: poll until the invocation finishes and print its result.
    #[arg(long, requires = "run_async")]
    pub wait: bool,
    /// With --wait: give up after this long (e.g. 500ms, 30s, 2m; bare numbers are seconds).
    #[arg(long, requires = "wait", value_name = "DURATION", default_value = "60s",
          value_parser = parse_duration)]
    pub timeout: Duration,
    /// Idempotency-Key header: a retried call with the same key runs once.
    #[arg(long, value_name = "KEY", value_parser = parse_idempotency_key)]
    pub idempotency_key: Option<String>,
    /// Include the main object in the answer.
    #[arg(long)]
    pub show_main: bool,
}

#[derive(Debug, Subcommand)]
pub enum InvCmd {
    /// Show an invocation (status and result).
    Get { id: String },
}

/// What an invocation is addressed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub cls: String,
    pub oid: Option<String>,
}

/// One object: `CLS/OID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectTarget {
    pub cls: String,
    pub oid: String,
}

impl std::fmt::Display for ObjectTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.cls, self.oid)
    }
}

/// A JSON document given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonSource {
    Inline(serde_json::Value),
    File(PathBuf),
    Stdin,
}

fn parse_origin(s: &str) -> Result<String, String> {
    oprc_server::parse_origin(s)
}

fn parse_public_host(s: &str) -> Result<String, String> {
    oprc_server::parse_public_host(s)
}

fn parse_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "http" => Ok(url),
        "https" => Err(
            "https is not supported by this build; use http:// (or a TLS-terminating proxy)".into(),
        ),
        other => Err(format!(
            "unsupported scheme `{other}`; use http://HOST:PORT"
        )),
    }
}

/// `CLS` or `CLS/OID`; the object id is everything after the first `/`.
pub fn parse_target(s: &str) -> Result<Target, String> {
    let (cls, oid) = match s.split_once('/') {
        None => (s, None),
        Some((cls, oid)) => (cls, Some(oid)),
    };
    if cls.is_empty() {
        return Err("the class is empty; expected CLS or CLS/OID".into());
    }
    if oid == Some("") {
        return Err("the object id after `/` is empty; expected CLS or CLS/OID".into());
    }
    Ok(Target {
        cls: cls.to_owned(),
        oid: oid.map(str::to_owned),
    })
}

/// `CLS/OID` (the object id is everything after the first `/`).
pub fn parse_object_target(s: &str) -> Result<ObjectTarget, String> {
    match parse_target(s)? {
        Target {
            cls,
            oid: Some(oid),
        } => Ok(ObjectTarget { cls, oid }),
        Target { oid: None, .. } => Err("expected CLS/OID (an object, not a class)".into()),
    }
}

/// A file key: not empty, no `/` (keys are names, not paths).
pub fn parse_file_key(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the file key is empty".into());
    }
    if s.contains('/') {
        return Err(format!("file key {s:?} contains `/`; keys are plain names"));
    }
    Ok(s.to_owned())
}

/// `KEY=PATH` of `obj new -f`; the path is checked when the command runs.
pub fn parse_file_arg(s: &str) -> Result<(String, PathBuf), String> {
    let (k, p) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=PATH, got {s:?} (no `=`)"))?;
    let key = parse_file_key(k).map_err(|e| format!("expected KEY=PATH: {e}"))?;
    if p.is_empty() {
        return Err(format!("expected KEY=PATH, got {s:?} (empty path)"));
    }
    Ok((key, p.into()))
}

/// `KEY=VALUE`; the value may be empty and may contain `=`.
pub fn parse_arg(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?} (no `=`)"))?;
    if k.is_empty() {
        return Err(format!("expected KEY=VALUE, got {s:?} (empty key)"));
    }
    if k.starts_with('_') {
        return Err(format!(
            "argument `{k}` starts with `_`, which is reserved for platform flags"
        ));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Inline JSON, `@FILE` or `-`. Inline JSON is checked here; files and
/// stdin are read (and checked) when the command runs.
pub fn parse_json_source(s: &str) -> Result<JsonSource, String> {
    if s == "-" {
        return Ok(JsonSource::Stdin);
    }
    if let Some(path) = s.strip_prefix('@') {
        if path.is_empty() {
            return Err("expected a file name after `@`".into());
        }
        return Ok(JsonSource::File(path.into()));
    }
    serde_json::from_str(s)
        .map(JsonSource::Inline)
        .map_err(|e| format!("not valid JSON ({e}); use @FILE to read a file"))
}

/// `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds (fractions
/// allowed): the node's duration syntax.
pub use oprc_server::parse_duration;

fn parse_idempotency_key(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be 1 to 255 visible ASCII characters".into());
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn targets_split_at_the_first_slash() {
        let t = |s: &str| parse_target(s).map(|t| (t.cls, t.oid));
        assert_eq!(t("ex.rec"), Ok(("ex.rec".into(), None)));
        assert_eq!(t("ex.rec/o1"), Ok(("ex.rec".into(), Some("o1".into()))));
        assert_eq!(t("ex.rec/a/b"), Ok(("ex.rec".into(), Some("a/b".into()))));
        assert!(t("ex.rec/").is_err());
        assert!(t("/o1").is_err());
        assert!(t("").is_err());
    }

    #[test]
    fn args_need_an_equals_sign_and_a_plain_key() {
        assert_eq!(parse_arg("n=5"), Ok(("n".into(), "5".into())));
        assert_eq!(parse_arg("q=a=b"), Ok(("q".into(), "a=b".into())));
        assert_eq!(parse_arg("e="), Ok(("e".into(), String::new())));
        assert!(parse_arg("n").unwrap_err().contains("KEY=VALUE"));
        assert!(parse_arg("=5").is_err());
        assert!(parse_arg("_async=true").unwrap_err().contains("reserved"));
    }

    #[test]
    fn json_sources() {
        assert_eq!(parse_json_source("-"), Ok(JsonSource::Stdin));
        assert_eq!(
            parse_json_source("@d.json"),
            Ok(JsonSource::File("d.json".into()))
        );
        assert_eq!(
            parse_json_source(r#"{"n": 1}"#),
            Ok(JsonSource::Inline(serde_json::json!({"n": 1})))
        );
        assert!(parse_json_source("{n: 1}").unwrap_err().contains("@FILE"));
        assert!(parse_json_source("@").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn urls_must_be_http() {
        assert!(parse_url("http://127.0.0.1:6180").is_ok());
        assert!(parse_url("https://node").is_err());
        assert!(parse_url("127.0.0.1:6180").is_err());
    }

    #[test]
    fn browser_settings_are_checked_on_the_command_line() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        let ok = ["oprc", "serve", "--allow-origin", "http://localhost:3000/"];
        let Command::Serve(a) = parse(&ok).unwrap().command else {
            panic!("serve")
        };
        assert_eq!(a.allow_origins, ["http://localhost:3000"]);
        assert!(parse(&["oprc", "serve", "--allow-origin", "*"]).is_err());
        assert!(parse(&["oprc", "serve", "--public-host", "http://x"]).is_err());
        assert!(parse(&["oprc", "serve", "--data-dir", "d", "--no-process-functions"]).is_ok());
    }

    #[test]
    fn file_commands_take_an_object_a_key_and_a_path() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        let Command::Client(ClientCommand::Obj(ObjCmd::File(FileCmd::Get(a)))) =
            parse(&["oprc", "obj", "file", "get", "ex.img/o/1", "image", "-"])
                .unwrap()
                .command
        else {
            panic!("obj file get")
        };
        assert_eq!(
            (a.target.to_string(), a.key.as_str(), a.path, a.relay),
            ("ex.img/o/1".into(), "image", PathBuf::from("-"), false)
        );
        let Command::Client(ClientCommand::Obj(ObjCmd::File(FileCmd::Put(a)))) =
            parse(&["oprc", "obj", "file", "put", "c/o", "k", "x.bin", "--relay"])
                .unwrap()
                .command
        else {
            panic!("obj file put")
        };
        assert!(a.relay);
        assert!(parse(&["oprc", "obj", "file", "get", "c", "k", "p"]).is_err());
        assert!(parse(&["oprc", "obj", "file", "get", "c/o", "a/b", "p"]).is_err());
        assert!(parse(&["oprc", "obj", "file", "put", "c/o", "k"]).is_err());
    }

    #[test]
    fn new_takes_repeated_files() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        let cli = parse(&[
            "oprc", "obj", "new", "c", "-f", "a=x.png", "--file", "b=d/y=z",
        ])
        .unwrap();
        let Command::Client(ClientCommand::Obj(ObjCmd::New { files, .. })) = cli.command else {
            panic!("obj new")
        };
        assert_eq!(
            files,
            [
                ("a".to_owned(), PathBuf::from("x.png")),
                ("b".to_owned(), PathBuf::from("d/y=z"))
            ]
        );
        assert!(parse_file_arg("x.png").unwrap_err().contains("KEY=PATH"));
        assert!(parse_file_arg("=x.png").is_err());
        assert!(parse_file_arg("a=").is_err());
        assert!(parse_object_target("c").unwrap_err().contains("CLS/OID"));
    }

    #[test]
    fn wait_needs_async() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        assert!(parse(&["oprc", "invoke", "c/o", "f", "--wait"]).is_err());
        assert!(parse(&["oprc", "invoke", "c/o", "f", "--async", "--wait"]).is_ok());
        assert!(parse(&["oprc", "invoke", "c/o", "f", "--arg", "x"]).is_err());
    }
}
