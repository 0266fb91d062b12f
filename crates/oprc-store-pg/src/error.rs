//! sqlx errors mapped to the [`ErrorKind`]s callers decide on, and the
//! database URL with its password redacted (the only form of the URL that
//! goes into a message or a log line).

use oprc_store::{Error, ErrorKind};

/// The kind of a PostgreSQL error by its SQLSTATE code.
pub(crate) fn kind_of_code(code: &str) -> ErrorKind {
    match code {
        // unique_violation (a create racing another one), serialization
        // failure, deadlock: someone else changed it first; retry.
        "23505" | "40001" | "40P01" => ErrorKind::Conflict,
        // query_canceled: statement_timeout (or a cancel): outcome unknown.
        "57014" => ErrorKind::Timeout,
        // admin/crash shutdown, cannot connect now (starting, recovering),
        // too many connections, out of resources, lock not available.
        "57P01" | "57P02" | "57P03" | "55P03" => ErrorKind::Unavailable,
        c if c.starts_with("08") || c.starts_with("53") => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

/// Maps a sqlx error. `url` is already redacted.
pub(crate) fn map(e: sqlx::Error, url: &str) -> Error {
    let (kind, message) = match &e {
        sqlx::Error::Io(io) => (
            ErrorKind::Unavailable,
            format!("cannot reach postgresql at {url}: {io}"),
        ),
        sqlx::Error::Tls(_) => (
            ErrorKind::Unavailable,
            format!("tls handshake with postgresql at {url} failed"),
        ),
        sqlx::Error::PoolTimedOut => (
            ErrorKind::Unavailable,
            format!(
                "no postgresql connection became free in time ({url}); the server is down or the pool is too small"
            ),
        ),
        sqlx::Error::PoolClosed => (ErrorKind::Unavailable, "the store is closed".to_owned()),
        sqlx::Error::WorkerCrashed => (
            ErrorKind::Unavailable,
            format!("the connection to postgresql at {url} broke"),
        ),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let kind = kind_of_code(&code);
            let message = match (kind, code.as_str()) {
                (ErrorKind::Timeout, _) => {
                    format!("a postgresql statement timed out (statement_timeout): {db}")
                }
                (_, "28P01" | "28000") => {
                    format!("postgresql at {url} refused the credentials: {db}")
                }
                (_, "3D000") => format!(
                    "the database of {url} does not exist: create it (`createdb`, or CREATE \
                     DATABASE), or point the state store at one that does"
                ),
                _ => format!("postgresql error {code}: {db}"),
            };
            (kind, message)
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => (
            ErrorKind::Internal,
            format!("corrupt data in postgresql: {e}"),
        ),
        other => (ErrorKind::Internal, format!("postgresql: {other}")),
    };
    Error::with_source(kind, message, e)
}

/// A copy of an error to answer several callers with.
pub(crate) fn copy(e: &Error) -> Error {
    Error::new(e.kind, e.message.clone())
}

/// Decodes a stored JSON record; one that does not decode is reported as
/// corrupt with its table and key.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    table: &str,
    key: &str,
    bytes: &[u8],
) -> oprc_store::Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::internal(format!(
            "corrupt record in table {table} at key {key:?}: {e}"
        ))
    })
}

pub(crate) fn encode<T: serde::Serialize>(what: &str, value: &T) -> oprc_store::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::internal(format!("cannot encode {what}: {e}")))
}

/// `url` with the password of its user info and any `password=` query
/// parameter replaced by `***`.
pub fn redact_url(url: &str) -> String {
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
                None => authority.to_owned(),
            }
        }
        None => authority.to_owned(),
    };
    let tail = match tail.find('?') {
        Some(q) => {
            let (path, query) = tail.split_at(q + 1);
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_redact(url: &str, expected: &str) {
        assert_eq!(redact_url(url), expected, "{url}");
    }

    #[test]
    fn passwords_never_leave_the_url() {
        check_redact(
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://postgres@127.0.0.1:5432/postgres",
        );
        check_redact(
            "postgres://app:s3cr:et@db.example:5432/oprc",
            "postgres://app:***@db.example:5432/oprc",
        );
        check_redact(
            "postgresql://app:p%40ss@db/oprc?sslmode=disable",
            "postgresql://app:***@db/oprc?sslmode=disable",
        );
        check_redact(
            "postgres://db/oprc?user=app&password=hunter2&application_name=x",
            "postgres://db/oprc?user=app&password=***&application_name=x",
        );
        check_redact("postgres://:pw@db", "postgres://:***@db");
        check_redact("postgres://db", "postgres://db");
    }

    fn check_code(code: &str, kind: ErrorKind) {
        assert_eq!(kind_of_code(code), kind, "{code}");
    }

    #[test]
    fn sqlstates_map_to_kinds_a_caller_can_act_on() {
        check_code("23505", ErrorKind::Conflict);
        check_code("40001", ErrorKind::Conflict);
        check_code("40P01", ErrorKind::Conflict);
        check_code("57014", ErrorKind::Timeout);
        check_code("57P01", ErrorKind::Unavailable);
        check_code("57P03", ErrorKind::Unavailable);
        check_code("08006", ErrorKind::Unavailable);
        check_code("53300", ErrorKind::Unavailable);
        check_code("42P01", ErrorKind::Internal);
        check_code("22P02", ErrorKind::Internal);
    }

    #[test]
    fn driver_errors_map_to_kinds_and_name_the_redacted_url() {
        let url = redact_url("postgres://app:hunter2@db:5432/oprc");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = map(sqlx::Error::Io(refused), &url);
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.message.contains("postgres://app:***@db:5432/oprc"), "{e}");
        assert!(!e.message.contains("hunter2"), "{e}");
        assert_eq!(
            map(sqlx::Error::PoolTimedOut, &url).kind,
            ErrorKind::Unavailable
        );
        assert_eq!(
            map(sqlx::Error::PoolClosed, &url).kind,
            ErrorKind::Unavailable
        );
        let corrupt = sqlx::Error::Decode("bad".into());
        let e = map(corrupt, &url);
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(e.message.starts_with("corrupt data"), "{e}");
        assert_eq!(
            map(sqlx::Error::RowNotFound, &url).kind,
            ErrorKind::Internal
        );
    }

    #[test]
    fn a_corrupt_record_names_its_table_and_key() {
        let e = decode::<u64>("oprc_objects", "t.c/o", b"\xff garbage").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(
            e.message
                .starts_with(r#"corrupt record in table oprc_objects at key "t.c/o""#),
            "{e}"
        );
    }
}
