//! What keeps web pages out: the `Host` check (against DNS rebinding), the
//! cross-site check (`Sec-Fetch-Site`, `Origin`) and the CORS layer for the
//! origins an operator allows.
//!
//! - `Host` must name this node: its listen address; for a loopback
//!   listener also `localhost`, `127.0.0.1` and `[::1]`; for a wildcard
//!   listener (`0.0.0.0`, `[::]`) any IP address (an address literal
//!   cannot be rebound); with the listen port, or any configured public
//!   name. Otherwise 421. A request without `Host` (not from a browser)
//!   passes.
//! - A request with an `Origin` passes when the origin is allowed or is
//!   this node itself (same origin); `Sec-Fetch-Site: same-site` or
//!   `cross-site` passes only with an allowed `Origin`. Otherwise 403.
//!   Requests with neither header (curl, the CLI, SDKs) pass. Browsers
//!   that send neither (old ones) can still fire a GET from an `<img>`;
//!   `docs/api.md` says so.
//!
//! Health probes (`/healthz`, `/readyz`) skip both checks.

use std::net::{IpAddr, SocketAddr};

use axum::extract::Request;
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::AppState;
use crate::error::{ApiError, Code};

/// Checks `Host` and refuses cross-site browser requests.
pub(crate) fn check(state: &AppState, req: &Request) -> Result<(), ApiError> {
    if matches!(req.uri().path(), "/healthz" | "/readyz") {
        return Ok(());
    }
    let opts = &state.options;
    let host = authority(req);
    // The common case, the listen address itself, costs no allocation.
    let exact = |listen: SocketAddr, host: &str| host.parse::<SocketAddr>() == Ok(listen);
    if let (Some(listen), Some(host)) = (opts.listen, host)
        && !exact(listen, host)
        && !host_allowed(host, listen, &opts.public_hosts)
    {
        tracing::warn!(host, "request for a host this node does not serve");
        return Err(ApiError::new(
            Code::Misdirected,
            format!(
                "this node does not serve the host {host:?}; use the address it listens on, \
                 or add the name with --public-host NAME (OPRC_PUBLIC_HOSTS)"
            ),
        ));
    }
    cross_site(req.headers(), host, &opts.allowed_origins)
}

/// The request's authority: `Host`, or the URI's (HTTP/2).
fn authority(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// Splits `name[:port]` / `[v6][:port]`; the port defaults to 80.
fn split_host(host: &str) -> Option<(String, u16)> {
    let host = host.trim().to_ascii_lowercase();
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 80,
            None => return None,
        };
        (format!("[{v6}]"), port)
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n.to_owned(), p.parse().ok()?),
            None => (host.clone(), 80),
        }
    };
    let name = name.strip_suffix('.').unwrap_or(&name).to_owned();
    (!name.is_empty()).then_some((name, port))
}

fn ip_of(name: &str) -> Option<IpAddr> {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    bare.parse().ok()
}

/// Whether `host` (a `Host` header) names this node.
pub(crate) fn host_allowed(host: &str, listen: SocketAddr, public: &[String]) -> bool {
    let Some((name, port)) = split_host(host) else {
        return false;
    };
    let public_match = public.iter().any(|p| match split_host(p) {
        // A public name without a port matches on any port (behind a proxy).
        Some((pname, pport)) if p.contains(':') && !p.ends_with(']') => {
            pname == name && pport == port
        }
        Some((pname, _)) => pname == name,
        None => false,
    });
    if public_match {
        return true;
    }
    if port != listen.port() {
        return false;
    }
    let listen_ip = listen.ip();
    match ip_of(&name) {
        Some(ip) => {
            ip == listen_ip
                || listen_ip.is_unspecified()
                || (listen_ip.is_loopback() && ip.is_loopback())
        }
        None => name == "localhost" && (listen_ip.is_loopback() || listen_ip.is_unspecified()),
    }
}

/// The `scheme://host[:port]` of an origin, lowercased; `None` when it is
/// not one (`null`, paths, other schemes).
fn origin_of(s: &str) -> Option<String> {
    let s = s.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = s.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains(['/', '?', '#', '@'])
    {
        return None;
    }
    split_host(rest)?;
    Some(s)
}

/// Checks an allowed origin as written by an operator.
pub fn parse_origin(s: &str) -> Result<String, String> {
    if s.trim() == "*" {
        return Err("`*` would let every web page call this node; list each origin".into());
    }
    origin_of(s).ok_or_else(|| {
        format!("{s:?} is not an origin; expected scheme://host[:port], e.g. http://localhost:3000")
    })
}

/// Checks a public host name as written by an operator (`name` or
/// `name:port`).
pub fn parse_public_host(s: &str) -> Result<String, String> {
    let s = s.trim().to_ascii_lowercase();
    if s.contains(['/', '@', '?', '#', ' ']) || split_host(&s).is_none() {
        return Err(format!(
            "{s:?} is not a host name; expected NAME or NAME:PORT, e.g. oprc.example.com"
        ));
    }
    Ok(s)
}

fn refused(origin: Option<&str>) -> ApiError {
    let message = match origin {
        Some(o) => format!(
            "cross-origin request from {o} refused; to allow this origin, start the node with \
             --allow-origin {o} (or OPRC_ALLOW_ORIGINS, or allowOrigins in the config file)"
        ),
        None => "cross-site request refused: browsers may call this node only from its own \
                 pages or from an allowed origin (--allow-origin URL), with an Origin header"
            .to_owned(),
    };
    ApiError::new(Code::Forbidden, message)
}

/// Refuses a browser request that a page of another origin made.
pub(crate) fn cross_site(
    headers: &HeaderMap,
    host: Option<&str>,
    allowed: &[String],
) -> Result<(), ApiError> {
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("null"));
    let normalized = origin.and_then(origin_of);
    let is_allowed = normalized
        .as_ref()
        .is_some_and(|o| allowed.iter().any(|a| origin_of(a).as_ref() == Some(o)));
    if let Some(o) = origin {
        let same_origin = normalized
            .as_deref()
            .and_then(|n| n.split_once("://"))
            .zip(host)
            .is_some_and(|((_, authority), host)| authority.eq_ignore_ascii_case(host.trim()));
        if !is_allowed && !same_origin {
            return Err(refused(Some(o)));
        }
    }
    let site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or("cross-site"));
    match site {
        None | Some("same-origin" | "none") => Ok(()),
        Some(_) if is_allowed => Ok(()),
        Some(_) => Err(refused(origin)),
    }
}

/// CORS for the allowed origins (preflights included); `None` without
/// any: no CORS headers are sent, and browsers keep other origins out.
pub(crate) fn cors(allowed: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = allowed
        .iter()
        .filter_map(|o| origin_of(o))
        .filter_map(|o| HeaderValue::from_str(&o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("traceparent"),
        ])
        .expose_headers([header::RETRY_AFTER, header::LOCATION])
        .max_age(std::time::Duration::from_secs(600));
    Some(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_loopback_listener_answers_to_loopback_names() {
        let l = listen("127.0.0.1:6180");
        for host in [
            "127.0.0.1:6180",
            "localhost:6180",
            "LOCALHOST:6180",
            "[::1]:6180",
            "127.0.0.2:6180",
        ] {
            assert!(host_allowed(host, l, &[]), "{host}");
        }
        for host in [
            "evil.example:6180",
            "localhost:6181",
            "127.0.0.1",
            "10.0.0.1:6180",
            "",
            "[::1",
        ] {
            assert!(!host_allowed(host, l, &[]), "{host}");
        }
    }

    #[test]
    fn a_wildcard_listener_answers_to_addresses_and_public_names() {
        let l = listen("0.0.0.0:80");
        assert!(host_allowed("192.168.1.5", l, &[]));
        assert!(host_allowed("192.168.1.5:80", l, &[]));
        assert!(!host_allowed("rebound.example", l, &[]));
        let public = ["oprc.example.com".to_owned(), "alt.example:8443".to_owned()];
        assert!(host_allowed("oprc.example.com", l, &public));
        assert!(host_allowed("oprc.example.com.:443", l, &public));
        assert!(host_allowed("alt.example:8443", l, &public));
        assert!(!host_allowed("alt.example", l, &public));
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn check(pairs: &[(&str, &str)], ok: bool) {
        let allowed = ["http://console.example:3000".to_owned()];
        let got = cross_site(&headers(pairs), Some("127.0.0.1:6180"), &allowed);
        assert_eq!(got.is_ok(), ok, "{pairs:?}");
    }

    #[test]
    fn browsers_are_kept_to_same_origin_and_allowed_origins() {
        check(&[], true);
        check(&[("sec-fetch-site", "same-origin")], true);
        check(&[("sec-fetch-site", "none")], true);
        check(&[("origin", "http://127.0.0.1:6180")], true);
        check(
            &[
                ("origin", "http://console.example:3000"),
                ("sec-fetch-site", "cross-site"),
            ],
            true,
        );
        check(&[("origin", "http://Console.example:3000/")], true);
        check(&[("sec-fetch-site", "cross-site")], false);
        check(&[("sec-fetch-site", "same-site")], false);
        check(
            &[
                ("sec-fetch-site", "same-site"),
                ("origin", "http://127.0.0.1:6181"),
            ],
            false,
        );
        check(&[("origin", "http://evil.example")], false);
        check(&[("origin", "null")], false);
        check(
            &[
                ("origin", "http://127.0.0.1:6180"),
                ("sec-fetch-site", "cross-site"),
            ],
            false,
        );
    }

    #[test]
    fn operators_write_origins_and_hosts_plainly() {
        assert_eq!(
            parse_origin("http://Localhost:3000/"),
            Ok("http://localhost:3000".into())
        );
        assert!(parse_origin("*").unwrap_err().contains("every web page"));
        assert!(parse_origin("localhost:3000").is_err());
        assert!(parse_origin("http://x/path").is_err());
        assert!(parse_origin("ftp://x").is_err());
        assert_eq!(
            parse_public_host("Oprc.Example.com"),
            Ok("oprc.example.com".into())
        );
        assert!(parse_public_host("http://x").is_err());
    }
}
