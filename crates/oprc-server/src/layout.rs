//! The settings stored with the data ([`oprc_store::Layout`]): the
//! partition count, the invocation log's identity and the blob store's
//! identity. A node started with other ones refuses to start, saying what
//! to do.
//!
//! Two steps: [`check`] before the blob store is opened (so a mismatch is
//! reported at once, without reaching for a store that may not answer),
//! [`Pending::record`] after (so a store that could not be opened is never
//! recorded: a typo in `--blobs` at the first start does not stick).

use anyhow::Context;
use oprc_store::{Layout, StateStore};

use crate::Config;

/// What is left to store once the blob store is open.
#[must_use = "the blob store's identity is stored by `record`"]
pub(crate) struct Pending {
    layout: Option<Layout>,
    place: String,
}

/// Refuses to use data written with another layout: the partition count
/// decides where objects and their async calls live, the log whose
/// offsets the objects' `lastOffset` count, the blob store where the files
/// their `verIds` name are. `place` says where the state is, in words.
pub(crate) async fn check(
    store: &dyn StateStore,
    config: &Config,
    place: &str,
    log: &str,
) -> anyhow::Result<Pending> {
    let blobs = crate::files::identity(&config.files, &config.data_dir)?;
    let proposed = Layout {
        partitions: config.invoker.partitions,
        blobs: None,
        log: Some(log.to_owned()),
    };
    let stored = store
        .layout(&proposed)
        .await
        .context("failed to read the data layout")?;
    if stored.partitions != proposed.partitions {
        anyhow::bail!(
            "the data in {place} was written with {} partitions, but this node was started with {}: \
             start it with --partitions {} (or `partitions: {}` in the config file, or \
             OPRC_PARTITIONS={}); changing the partition count of existing data is not supported",
            stored.partitions,
            proposed.partitions,
            stored.partitions,
            stored.partitions,
            stored.partitions,
        );
    }
    if let Some(stored) = &stored.log
        && stored != log
    {
        return Err(log_mismatch(place, stored, log));
    }
    match stored.blobs {
        Some(stored) if stored != blobs => Err(mismatch(place, &stored, &blobs)),
        Some(_) => Ok(Pending {
            layout: None,
            place: place.to_owned(),
        }),
        // A fresh store, or one written by a version that did not record
        // its blob store: this one is adopted once it opens.
        None => Ok(Pending {
            layout: Some(Layout {
                blobs: Some(blobs),
                ..proposed
            }),
            place: place.to_owned(),
        }),
    }
}

impl Pending {
    /// Stores the blob store's identity with data that has none yet.
    pub(crate) async fn record(self, store: &dyn StateStore) -> anyhow::Result<()> {
        let Some(proposed) = self.layout else {
            return Ok(());
        };
        let stored = store
            .layout(&proposed)
            .await
            .context("failed to store the blob store's identity with the data")?;
        match (&stored.blobs, &proposed.blobs) {
            (Some(s), Some(p)) if s == p => {
                tracing::info!(blobs = %p, "blob store recorded with the data");
                Ok(())
            }
            (s, p) => Err(mismatch(
                &self.place,
                s.as_deref().unwrap_or("none"),
                p.as_deref().unwrap_or("none"),
            )),
        }
    }
}

fn log_mismatch(place: &str, stored: &str, proposed: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the objects in {place} count the async calls of the invocation log `{stored}`, but \
         this node uses the log `{proposed}` ({}): start it with the log the data was written \
         with ({}). A new or recreated log numbers its calls from the start again, and the \
         node would skip them as already applied. To move the data onto another log, export \
         it and import it into an empty store (`oprc export`, `oprc import`), which resets \
         the objects' log positions",
        describe_log(proposed),
        log_setting(stored),
    )
}

/// A log's identity in words.
fn describe_log(identity: &str) -> &'static str {
    if identity.starts_with("embedded:") {
        "an embedded log, in a data directory's database"
    } else {
        "a NATS JetStream stream"
    }
}

/// The setting that selects the log of `identity`.
fn log_setting(identity: &str) -> &'static str {
    if identity.starts_with("embedded:") {
        "no --invocation-log, and the data directory that holds it"
    } else {
        "--invocation-log and the NATS server and stream that hold it, not a recreated stream"
    }
}

fn mismatch(place: &str, stored: &str, proposed: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the files of the data in {place} are in {} (`{stored}`), but this node was started with {} \
         (`{proposed}`): start it again with {}, or start on an empty store to use the other \
         blob store; objects name file versions in the store they were written to, so \
         changing the blob store of existing data is not supported (`oprc export` and \
         `oprc import` move the data and its files to other stores)",
        describe(stored),
        describe(proposed),
        setting(stored),
    )
}

/// A blob store's identity in words (the identity itself follows).
fn describe(identity: &str) -> &'static str {
    match identity.strip_prefix("dir:") {
        Some("files") => "the embedded store in the data directory",
        Some(_) => "an embedded store",
        None => "the S3 store",
    }
}

/// The setting that selects the store of `identity`.
fn setting(identity: &str) -> String {
    if identity.starts_with("dir:") {
        "no --blobs (and no `blobs` in the config file or OPRC_BLOBS)".to_owned()
    } else {
        format!(
            "--blobs '{identity}' (or `blobs` in the config file, or OPRC_BLOBS; the same bucket \
             and endpoint, any region)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mismatch_names_both_stores_and_what_to_do() {
        let place = "the data directory /srv/oprc-data";
        let s3 = "s3://files?endpoint=http://127.0.0.1:9000";
        let text = mismatch(place, "dir:files", s3).to_string();
        for part in [
            "/srv/oprc-data",
            "the embedded store in the data directory (`dir:files`)",
            &format!("the S3 store (`{s3}`)"),
            "start it again with no --blobs",
            "an empty store",
        ] {
            assert!(text.contains(part), "{part:?} in {text}");
        }
        let text = mismatch(place, s3, "dir:files").to_string();
        assert!(
            text.contains(&format!("start it again with --blobs '{s3}'")),
            "{text}"
        );
    }

    #[test]
    fn a_log_mismatch_says_what_would_go_wrong_and_what_to_do() {
        let text = log_mismatch(
            "the PostgreSQL database postgres://db/oprc",
            "nats:OPRC_INVOCATIONS@2026-12-01T10:00:00Z",
            "embedded:1234",
        )
        .to_string();
        for part in [
            "postgres://db/oprc",
            "`nats:OPRC_INVOCATIONS@2026-12-01T10:00:00Z`",
            "uses the log `embedded:1234` (an embedded log",
            "start it with the log the data was written with (--invocation-log",
            "skip them",
            "`oprc export`, `oprc import`",
        ] {
            assert!(text.contains(part), "{part:?} in {text}");
        }
    }
}
