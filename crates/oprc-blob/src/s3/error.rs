//! object_store's errors as [`BlobErrorKind`]s. Kinds are decided on
//! object_store's error variants and on the transport error type in the
//! source chain, never on a server's message (which only goes into the
//! error's text).
//!
//! [`BlobErrorKind`]: crate::BlobErrorKind

use object_store::Error as E;
use object_store::client::HttpError;

use crate::BlobError;

/// `what` failed with `e`.
pub(super) fn failure(what: &str, e: &E) -> BlobError {
    match e {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => BlobError::denied(format!(
            "{what}: the s3 server refused the credentials: {e}"
        )),
        E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::UnknownConfigurationKey { .. } => BlobError::invalid(format!("{what}: {e}")),
        // Server errors, transport errors, and statuses object_store does
        // not name (it reports those as `Generic`): a later try may work.
        _ => BlobError::unavailable(format!("{what}: {e}")),
    }
}

pub(super) fn is_not_found(e: &E) -> bool {
    matches!(e, E::NotFound { .. })
}

/// Whether the request never got an answer (connect, timeout, reset).
pub(super) fn is_transport(e: &E) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if err.downcast_ref::<HttpError>().is_some() {
            return true;
        }
        current = err.source();
    }
    false
}
