//! redb's errors and undecodable records, mapped to the [`ErrorKind`]s that
//! callers decide on: trouble with the disk is `Unavailable` (retrying
//! later may work, a full disk says so), a corrupt record or database is
//! `Internal` and names what is corrupt.

use oprc_store::{Error, ErrorKind, Result};

/// Maps any redb error (`StorageError`, `TableError`, `TransactionError`,
/// `CommitError`, `DatabaseError`, ...).
pub(crate) fn storage(e: impl Into<redb::Error>) -> Error {
    match e.into() {
        redb::Error::Io(io) => io_error(io),
        redb::Error::PreviousIo => Error::new(
            ErrorKind::Unavailable,
            "an earlier io error left the database unusable until it is reopened",
        ),
        redb::Error::DatabaseAlreadyOpen => Error::new(
            ErrorKind::Unavailable,
            "the database is already open (another process or store holds it)",
        ),
        redb::Error::Corrupted(detail) => {
            Error::internal(format!("the database file is corrupt: {detail}"))
        }
        other => Error::internal(format!("database error: {other}")),
    }
}

fn io_error(io: std::io::Error) -> Error {
    use std::io::ErrorKind as Io;
    let message = if matches!(io.kind(), Io::StorageFull | Io::QuotaExceeded) {
        format!("disk full, cannot write the database: {io}")
    } else {
        format!("io error on the database: {io}")
    };
    Error::with_source(ErrorKind::Unavailable, message, io)
}

/// Decodes a stored JSON record; a record that does not decode is reported
/// as corrupt with its table and key.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    table: &str,
    key: &str,
    bytes: &[u8],
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::internal(format!(
            "corrupt record in table {table} at key {key:?}: {e}"
        ))
    })
}

/// Encodes a record to store.
pub(crate) fn encode<T: serde::Serialize>(what: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::internal(format!("cannot encode {what}: {e}")))
}

/// A copy of an error to answer several callers with (the kind and the
/// message; the source stays with the first).
pub(crate) fn copy(e: &Error) -> Error {
    Error::new(e.kind, e.message.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(e: redb::Error, kind: ErrorKind, says: &str) {
        let got = storage(e);
        assert_eq!(got.kind, kind, "{got}");
        assert!(got.message.contains(says), "{got}");
    }

    #[test]
    fn redb_errors_map_to_kinds_a_caller_can_act_on() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        check(redb::Error::Io(full), ErrorKind::Unavailable, "disk full");
        let eio = std::io::Error::from_raw_os_error(5);
        check(redb::Error::Io(eio), ErrorKind::Unavailable, "io error");
        check(redb::Error::PreviousIo, ErrorKind::Unavailable, "reopened");
        check(
            redb::Error::Corrupted("bad page".into()),
            ErrorKind::Internal,
            "corrupt: bad page",
        );
        check(
            redb::Error::ValueTooLarge(1 << 40),
            ErrorKind::Internal,
            "database error",
        );
        // The errors of each step convert too.
        let e = redb::StorageError::Io(std::io::Error::from_raw_os_error(28));
        let got = storage(redb::CommitError::Storage(e));
        assert_eq!(got.kind, ErrorKind::Unavailable);
        assert!(got.message.starts_with("disk full"), "{got}");
    }

    #[test]
    fn a_corrupt_record_names_its_table_and_key() {
        let e = decode::<u64>("objects", "t.c\0o", b"\xff garbage").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(
            e.message
                .starts_with(r#"corrupt record in table objects at key "t.c\0o""#),
            "{e}"
        );
    }
}
