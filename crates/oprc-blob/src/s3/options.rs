//! Where an S3-compatible store is, read from config or from an
//! `s3://BUCKET?endpoint=URL&region=REGION` URL. Secrets never come from a
//! URL (URLs end up in logs, shell histories and process lists).

use std::fmt;

use object_store::signer::Url;

use crate::BlobError;

/// The region when none is given (what most S3-compatible servers accept).
const DEFAULT_REGION: &str = "us-east-1";
/// Environment variables the keys fall back to (the AWS tools' names).
const ACCESS_KEY_ENV: &str = "AWS_ACCESS_KEY_ID";
const SECRET_KEY_ENV: &str = "AWS_SECRET_ACCESS_KEY";

/// Where an S3-compatible store is and how to reach it. Requests are
/// path-style (`ENDPOINT/BUCKET/KEY`), which every S3-compatible server
/// and AWS accept, and which keeps bucket names with dots working over TLS.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Options {
    /// The bucket's name (3 to 63 lowercase letters, digits, `.` and `-`).
    pub bucket: String,
    /// The server's base URL (`http://127.0.0.1:9000`); plain HTTP is
    /// allowed when it says `http://`. `None`: AWS's endpoint of `region`.
    pub endpoint: Option<String>,
    /// The SigV4 signing region.
    pub region: String,
    /// `None`: the `AWS_ACCESS_KEY_ID` environment variable.
    pub access_key_id: Option<String>,
    /// `None`: the `AWS_SECRET_ACCESS_KEY` environment variable. Never
    /// printed by `Debug`.
    pub secret_access_key: Option<String>,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl S3Options {
    /// A bucket at AWS in the default region, keys from the environment.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            endpoint: None,
            region: DEFAULT_REGION.to_owned(),
            access_key_id: None,
            secret_access_key: None,
        }
    }

    /// Reads `s3://BUCKET?endpoint=URL&region=REGION` (both parameters
    /// optional, values percent-encoded or not). Keys are not read from
    /// URLs: set them in the options or the environment.
    pub fn parse(url: &str) -> Result<Self, BlobError> {
        let bad = |why: String| BlobError::invalid(format!("bad s3 url `{url}`: {why}"));
        let parsed = Url::parse(url).map_err(|e| bad(format!("{e} (expected s3://BUCKET)")))?;
        if parsed.scheme() != "s3" {
            return Err(bad(format!(
                "the scheme is `{}`, expected s3://BUCKET",
                parsed.scheme()
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(format!(
                "credentials do not belong in a URL: set them in the config or in \
                 {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}"
            )));
        }
        let bucket = parsed.host_str().unwrap_or_default();
        if bucket.is_empty() {
            return Err(bad("the bucket is missing (s3://BUCKET)".into()));
        }
        if parsed.port().is_some() {
            return Err(bad(
                "a port after the bucket: the server goes in `?endpoint=URL`".into(),
            ));
        }
        if !matches!(parsed.path(), "" | "/") {
            return Err(bad(format!(
                "a key prefix (`{}`) is not supported: the store uses the whole bucket",
                parsed.path()
            )));
        }
        if parsed.fragment().is_some() {
            return Err(bad("a `#fragment` is not allowed".into()));
        }
        let mut options = Self::new(bucket);
        let (mut endpoint_seen, mut region_seen) = (false, false);
        for (name, value) in parsed.query_pairs() {
            let seen = match &*name {
                "endpoint" => {
                    options.endpoint = Some(value.into_owned());
                    &mut endpoint_seen
                }
                "region" => {
                    options.region = value.into_owned();
                    &mut region_seen
                }
                "access_key_id"
                | "secret_access_key"
                | "aws_access_key_id"
                | "aws_secret_access_key"
                | "session_token" => {
                    return Err(bad(format!(
                        "`{name}` is not read from URLs (secrets do not belong in URLs): \
                         set it in the config or in {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}"
                    )));
                }
                other => {
                    return Err(bad(format!(
                        "unknown parameter `{other}` (known: endpoint, region)"
                    )));
                }
            };
            if std::mem::replace(seen, true) {
                return Err(bad(format!("`{name}` is given twice")));
            }
        }
        options.validate()?;
        Ok(options)
    }

    /// Checks the bucket, endpoint and region (what `parse` and `connect`
    /// refuse).
    pub fn validate(&self) -> Result<(), BlobError> {
        check_bucket(&self.bucket).map_err(|why| {
            BlobError::invalid(format!("bad s3 bucket name `{}`: {why}", self.bucket))
        })?;
        if let Some(endpoint) = &self.endpoint {
            check_endpoint(endpoint).map_err(|why| {
                BlobError::invalid(format!("bad s3 endpoint `{endpoint}`: {why}"))
            })?;
        }
        let region_ok = !self.region.is_empty()
            && self
                .region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !region_ok {
            return Err(BlobError::invalid(format!(
                "bad s3 region `{}`: expected a name like {DEFAULT_REGION}",
                self.region
            )));
        }
        Ok(())
    }

    /// The server's base URL, without a trailing `/`.
    pub fn endpoint_url(&self) -> String {
        match &self.endpoint {
            // Normalised (`HTTP://H:80/` is `http://h`), as `validate` read it.
            Some(e) => Url::parse(e)
                .map_or_else(|_| e.clone(), String::from)
                .trim_end_matches('/')
                .to_owned(),
            None => format!("https://s3.{}.amazonaws.com", self.region),
        }
    }

    /// What names this store among all stores, stable across restarts
    /// with the same settings: `s3://BUCKET` at AWS (bucket names are
    /// global there, whatever the region), else
    /// `s3://BUCKET?endpoint=URL` with the endpoint normalised (scheme and
    /// host in lowercase, no default port, no trailing `/`). Never holds
    /// credentials; the region only signs requests, so it is not part of
    /// it.
    pub fn identity(&self) -> String {
        match &self.endpoint {
            None => format!("s3://{}", self.bucket),
            Some(_) => format!("s3://{}?endpoint={}", self.bucket, self.endpoint_url()),
        }
    }

    /// The keys, from the options or else the environment.
    pub(super) fn credentials(&self) -> Result<(String, String), BlobError> {
        let pick = |given: &Option<String>, env: &str, field: &str| {
            given
                .clone()
                .filter(|v| !v.is_empty())
                .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
                .ok_or_else(|| {
                    BlobError::invalid(format!(
                        "no s3 {field}: set `{field}` in the config or the {env} environment \
                         variable"
                    ))
                })
        };
        Ok((
            pick(&self.access_key_id, ACCESS_KEY_ENV, "access_key_id")?,
            pick(&self.secret_access_key, SECRET_KEY_ENV, "secret_access_key")?,
        ))
    }
}

/// The rules of S3 bucket names that matter for path-style requests.
fn check_bucket(bucket: &str) -> Result<(), String> {
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!(
            "it has {} characters, S3 needs 3 to 63",
            bucket.len()
        ));
    }
    if let Some(c) = bucket
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return Err(format!(
            "`{c}` is not allowed (lowercase letters, digits, `.` and `-` only)"
        ));
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge_ok(bucket.chars().next()) || !edge_ok(bucket.chars().last()) {
        return Err("it must start and end with a letter or a digit".into());
    }
    Ok(())
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let url = Url::parse(endpoint).map_err(|e| format!("{e} (expected http(s)://HOST[:PORT])"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme is `{}`, expected http or https",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials do not belong in the endpoint".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a query or fragment is not allowed".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, expected: Result<(&str, Option<&str>, &str), &str>) {
        match (S3Options::parse(url), expected) {
            (Ok(o), Ok((bucket, endpoint, region))) => {
                assert_eq!(
                    (o.bucket.as_str(), o.endpoint.as_deref(), o.region.as_str()),
                    (bucket, endpoint, region),
                    "{url}"
                );
                assert_eq!((o.access_key_id, o.secret_access_key), (None, None));
            }
            (Err(e), Err(part)) => assert!(e.message.contains(part), "{url}: {}", e.message),
            (got, want) => panic!("{url}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn urls_name_bucket_endpoint_and_region() {
        check("s3://files", Ok(("files", None, DEFAULT_REGION)));
        check("s3://files/", Ok(("files", None, DEFAULT_REGION)));
        check(
            "s3://my.files-1?endpoint=http://127.0.0.1:9000&region=eu-west-1",
            Ok(("my.files-1", Some("http://127.0.0.1:9000"), "eu-west-1")),
        );
        check(
            "s3://files?endpoint=https%3A%2F%2Fs3.example.com%2F",
            Ok(("files", Some("https://s3.example.com/"), DEFAULT_REGION)),
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        check("files", Err("expected s3://BUCKET"));
        check("http://files", Err("the scheme is `http`"));
        check("s3://", Err("the bucket is missing"));
        check("s3://?endpoint=http://h", Err("the bucket is missing"));
        check("s3://ab", Err("S3 needs 3 to 63"));
        check("s3://Files_1", Err("is not allowed"));
        check("s3://-files", Err("start and end"));
        check("s3://files:9000", Err("the server goes in `?endpoint=URL`"));
        check(
            "s3://files/prefix",
            Err("a key prefix (`/prefix`) is not supported"),
        );
        check("s3://files?bucket=x", Err("unknown parameter `bucket`"));
        check(
            "s3://files?region=a&region=b",
            Err("`region` is given twice"),
        );
        check("s3://files?region=", Err("bad s3 region"));
        check("s3://files?endpoint=ftp://h", Err("the scheme is `ftp`"));
        check("s3://files?endpoint=http://", Err("bad s3 endpoint"));
        check(
            "s3://files?endpoint=nonsense",
            Err("bad s3 endpoint `nonsense`"),
        );
        check(
            "s3://files?endpoint=http://h?x=1",
            Err("a query or fragment"),
        );
        check("s3://k:s@files", Err("credentials do not belong in a URL"));
        check(
            "s3://files?secret_access_key=s",
            Err("`secret_access_key` is not read"),
        );
        check(
            "s3://files?access_key_id=k",
            Err("`access_key_id` is not read"),
        );
    }

    #[test]
    fn endpoints_are_normalised() {
        let endpoint = |e: Option<&str>| {
            let mut o = S3Options::new("files");
            o.endpoint = e.map(Into::into);
            o.endpoint_url()
        };
        assert_eq!(endpoint(Some("HTTP://Host:9000/")), "http://host:9000");
        assert_eq!(endpoint(Some("https://h/s3/")), "https://h/s3");
        assert_eq!(endpoint(None), "https://s3.us-east-1.amazonaws.com");
    }

    #[test]
    fn identities_name_bucket_and_server_only() {
        let id = |url: &str| S3Options::parse(url).unwrap().identity();
        let local = "s3://files?endpoint=http://127.0.0.1:9000";
        assert_eq!(id(local), local);
        // The same store however it is spelt.
        for same in [
            "s3://files?endpoint=HTTP://127.0.0.1:9000/",
            "s3://files?region=eu-west-1&endpoint=http://127.0.0.1:9000",
            "s3://files/?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=r1",
        ] {
            assert_eq!(id(same), local, "{same}");
        }
        assert_eq!(
            id("s3://files?endpoint=https://S3.Example.com:443"),
            "s3://files?endpoint=https://s3.example.com"
        );
        // AWS: the bucket alone, in any region.
        assert_eq!(id("s3://files"), "s3://files");
        assert_eq!(id("s3://files?region=eu-west-1"), "s3://files");
        // Another bucket, host, port or scheme is another store.
        for other in [
            "s3://files2?endpoint=http://127.0.0.1:9000",
            "s3://files?endpoint=http://127.0.0.2:9000",
            "s3://files?endpoint=http://127.0.0.1:9001",
            "s3://files?endpoint=https://127.0.0.1:9000",
            "s3://files",
        ] {
            assert_ne!(id(other), local, "{other}");
        }
        // Keys never show.
        let mut o = S3Options::parse(local).unwrap();
        o.access_key_id = Some("AKIDEXAMPLE".into());
        o.secret_access_key = Some("wJalrXUtnFEMI".into());
        assert_eq!(o.identity(), local);
    }

    #[test]
    fn secrets_stay_out_of_logs() {
        let mut o = S3Options::new("files");
        o.access_key_id = Some("AKIDEXAMPLE".into());
        o.secret_access_key = Some("wJalrXUtnFEMI".into());
        let shown = format!("{o:?}");
        assert!(
            shown.contains("AKIDEXAMPLE") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
    }

    #[test]
    fn keys_given_win_over_the_environment() {
        let mut o = S3Options::new("files");
        o.access_key_id = Some("k".into());
        o.secret_access_key = Some("s".into());
        assert_eq!(o.credentials().unwrap(), ("k".into(), "s".into()));
    }
}
