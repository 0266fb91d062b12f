//! The node's own signed URLs: HMAC-SHA256 over what the URL allows (the
//! method, the path or allocation it names, and its expiry), with a key
//! only the node holds. Used for the embedded backend's files, for relayed
//! files and for the allocation endpoints of tasks. Pure: the caller gives
//! the time.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use oprc_core::{ClassKey, ObjectId};
use sha2::Sha256;

use crate::{BlobPath, Method};

/// Where the storage adapter serves file versions.
pub const BLOBS_ROUTE: &str = "/blobs/";
/// Where it serves allocations of new versions.
pub const ALLOC_ROUTE: &str = "/alloc/";

/// Why a signed URL is refused. Each is a 403, except `Malformed` (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the URL is not a signed file URL: {0}")]
    Malformed(String),
    #[error("the URL expired {0} s ago; ask for a new one")]
    Expired(u64),
    #[error(
        "the URL's signature does not match what it names (altered, or signed by another node)"
    )]
    BadSignature,
    #[error("the URL allows {allowed}, not {used}")]
    WrongMethod {
        allowed: &'static str,
        used: &'static str,
    },
}

impl UrlError {
    /// A stable code for the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_url",
            Self::Expired(_) => "url_expired",
            Self::BadSignature => "bad_signature",
            Self::WrongMethod { .. } => "wrong_method",
        }
    }
}

/// An allocation URL, checked: new versions of `keys` of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub cls: ClassKey,
    pub oid: ObjectId,
    pub version: String,
    pub keys: Vec<String>,
}

/// Makes and checks signed URLs under one base URL (`http://host:port`).
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
    base: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The query parameters of a signed URL: `(m, exp, sig, keys)`.
struct Query<'a> {
    method: Option<&'a str>,
    exp: Option<&'a str>,
    sig: Option<&'a str>,
    keys: Option<&'a str>,
}

fn parse_query(query: &str) -> Query<'_> {
    let mut q = Query {
        method: None,
        exp: None,
        sig: None,
        keys: None,
    };
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "m" => q.method = Some(value),
            "exp" => q.exp = Some(value),
            "sig" => q.sig = Some(value),
            "keys" => q.keys = Some(value),
            _ => {}
        }
    }
    q
}

impl Signer {
    /// `key` should be 32 random bytes kept by the node; `base` is the URL
    /// the node is reached at (no trailing slash needed).
    pub fn new(key: impl Into<Vec<u8>>, base: impl Into<String>) -> Self {
        let base = base.into().trim_end_matches('/').to_owned();
        Self {
            key: key.into(),
            base,
        }
    }

    fn mac(&self, parts: &[&str]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        for p in parts {
            mac.update(p.as_bytes());
            mac.update(b"\n");
        }
        mac
    }

    fn sign(&self, parts: &[&str]) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(parts).finalize().into_bytes())
    }

    fn check(&self, parts: &[&str], sig: &str, exp: &str, now: u64) -> Result<(), UrlError> {
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| UrlError::BadSignature)?;
        self.mac(parts)
            .verify_slice(&sig)
            .map_err(|_| UrlError::BadSignature)?;
        // Only a genuine URL tells whether it expired.
        let exp: u64 = exp
            .parse()
            .map_err(|_| UrlError::Malformed("`exp` is not a number".into()))?;
        if now > exp {
            return Err(UrlError::Expired(now - exp));
        }
        Ok(())
    }

    /// A URL of the adapter that allows `method` on `path` for `ttl`.
    pub fn blob_url(&self, method: Method, path: &BlobPath, ttl: Duration) -> String {
        self.blob_url_at(method, path, unix_now() + ttl.as_secs().max(1))
    }

    fn blob_url_at(&self, method: Method, path: &BlobPath, exp: u64) -> String {
        let (m, exp) = (method.as_str(), exp.to_string());
        let path = path.to_string();
        let sig = self.sign(&["blob", m, &path, &exp]);
        format!("{}{BLOBS_ROUTE}{path}?m={m}&exp={exp}&sig={sig}", self.base)
    }

    /// Checks a request for `path` (what follows [`BLOBS_ROUTE`]) with
    /// `query`, made with `used` (`HEAD` counts as `GET`).
    pub fn verify_blob(&self, used: Method, path: &str, query: &str) -> Result<BlobPath, UrlError> {
        self.verify_blob_at(used, path, query, unix_now())
    }

    fn verify_blob_at(
        &self,
        used: Method,
        path: &str,
        query: &str,
        now: u64,
    ) -> Result<BlobPath, UrlError> {
        let q = parse_query(query);
        let (Some(m), Some(exp), Some(sig)) = (q.method, q.exp, q.sig) else {
            return Err(UrlError::Malformed(
                "it needs the `m`, `exp` and `sig` parameters".into(),
            ));
        };
        self.check(&["blob", m, path, exp], sig, exp, now)?;
        if m != used.as_str() {
            let allowed = if m == "PUT" { "PUT" } else { "GET" };
            return Err(UrlError::WrongMethod {
                allowed,
                used: used.as_str(),
            });
        }
        BlobPath::parse(path).map_err(|e| UrlError::Malformed(e.to_string()))
    }

    /// A URL of the adapter that hands out PUT URLs for new versions
    /// (`version`) of `keys` of one object: GET answers all of them, POST
    /// those in its JSON list.
    pub fn alloc_url(
        &self,
        cls: &ClassKey,
        oid: &ObjectId,
        version: &str,
        keys: &[String],
        ttl: Duration,
    ) -> String {
        let exp = (unix_now() + ttl.as_secs().max(1)).to_string();
        let resource = format!("{cls}/{oid}/{version}");
        let keys = keys.join(",");
        let sig = self.sign(&["alloc", &resource, &keys, &exp]);
        format!(
            "{}{ALLOC_ROUTE}{resource}?keys={keys}&exp={exp}&sig={sig}",
            self.base
        )
    }

    /// Checks an allocation request for `resource` (what follows
    /// [`ALLOC_ROUTE`]) with `query`.
    pub fn verify_alloc(&self, resource: &str, query: &str) -> Result<Verified, UrlError> {
        let q = parse_query(query);
        let (Some(keys), Some(exp), Some(sig)) = (q.keys, q.exp, q.sig) else {
            return Err(UrlError::Malformed(
                "it needs the `keys`, `exp` and `sig` parameters".into(),
            ));
        };
        self.check(&["alloc", resource, keys, exp], sig, exp, unix_now())?;
        let malformed = |e: String| UrlError::Malformed(e);
        let parts: Vec<&str> = resource.split('/').collect();
        let [cls, oid, version] = parts.as_slice() else {
            return Err(malformed("it names no object version".into()));
        };
        Ok(Verified {
            cls: ClassKey::new(*cls).map_err(|e| malformed(e.to_string()))?,
            oid: ObjectId::new(*oid).map_err(|e| malformed(e.to_string()))?,
            version: (*version).to_owned(),
            keys: keys
                .split(',')
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> BlobPath {
        BlobPath::parse(s).unwrap()
    }

    /// The path and query of a URL the signer made.
    fn split(url: &str) -> (String, String) {
        let rest = url.split_once(BLOBS_ROUTE).unwrap().1;
        let (p, q) = rest.split_once('?').unwrap();
        (p.to_owned(), q.to_owned())
    }

    #[test]
    fn signed_urls_allow_what_they_name_and_nothing_else() {
        let s = Signer::new(b"k".to_vec(), "http://n:1/");
        let p = path("a.b/o/v1/data");
        let url = s.blob_url_at(Method::Get, &p, 1000);
        assert!(url.starts_with("http://n:1/blobs/a.b/o/v1/data?m=GET&exp=1000&sig="));
        let (rp, q) = split(&url);
        assert_eq!(s.verify_blob_at(Method::Get, &rp, &q, 999), Ok(p));
        assert_eq!(
            s.verify_blob_at(Method::Get, &rp, &q, 1010),
            Err(UrlError::Expired(10))
        );
        assert_eq!(
            s.verify_blob_at(Method::Put, &rp, &q, 999),
            Err(UrlError::WrongMethod {
                allowed: "GET",
                used: "PUT"
            })
        );
        // Another key, another object, a later expiry, another method in
        // the query, another node's key: all fail the signature.
        for (rp2, q2) in [
            ("a.b/o/v1/other".to_owned(), q.clone()),
            ("a.b/o2/v1/data".to_owned(), q.clone()),
            (rp.clone(), q.replace("exp=1000", "exp=9999")),
            (rp.clone(), q.replace("m=GET", "m=PUT")),
        ] {
            assert_eq!(
                s.verify_blob_at(Method::Get, &rp2, &q2, 999)
                    .or_else(|_| s.verify_blob_at(Method::Put, &rp2, &q2, 999)),
                Err(UrlError::BadSignature),
                "{rp2}?{q2}"
            );
        }
        let other = Signer::new(b"k2".to_vec(), "http://n:1");
        assert_eq!(
            other.verify_blob_at(Method::Get, &rp, &q, 999),
            Err(UrlError::BadSignature)
        );
        assert!(matches!(
            s.verify_blob_at(Method::Get, &rp, "m=GET", 999),
            Err(UrlError::Malformed(_))
        ));
    }

    #[test]
    fn allocation_urls_carry_their_keys() {
        let s = Signer::new(b"k".to_vec(), "http://n:1");
        let cls = ClassKey::new("a.b").unwrap();
        let oid = ObjectId::new("o").unwrap();
        let keys = vec!["x".to_owned(), "y".to_owned()];
        let url = s.alloc_url(&cls, &oid, "v", &keys, Duration::from_secs(60));
        let rest = url.split_once(ALLOC_ROUTE).unwrap().1;
        let (res, q) = rest.split_once('?').unwrap();
        let v = s.verify_alloc(res, q).unwrap();
        assert_eq!((v.version.as_str(), v.keys), ("v", keys));
        let more = q.replace("keys=x,y", "keys=x,y,z");
        assert_eq!(s.verify_alloc(res, &more), Err(UrlError::BadSignature));
    }
}
