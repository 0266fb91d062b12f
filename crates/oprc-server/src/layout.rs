//! The settings stored with the data ([`oprc_store::Layout`]): the
//! partition count and the blob store's identity. A node started with
//! other ones refuses to start, saying what to do.
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
pub(crate) struct Pending(Option<Layout>);

/// Refuses to use data written with another layout: the partition count
/// decides where objects and their async calls live, the blob store where
/// the files their `verIds` name are.
pub(crate) async fn check(store: &dyn StateStore, config: &Config) -> anyhow::Result<Pending> {
    let blobs = crate::files::identity(&config.files, &config.data_dir)?;
    let proposed = Layout {
        partitions: config.invoker.partitions,
        blobs: None,
    };
    let stored = store
        .layout(&proposed)
        .await
        .context("failed to read the data layout")?;
    if stored.partitions != proposed.partitions {
        anyhow::bail!(
            "the data in {} was written with {} partitions, but this node was started with {}: \
             start it with --partitions {} (or `partitions: {}` in the config file, or \
             OPRC_PARTITIONS={}); changing the partition count of existing data is not supported",
            config.data_dir.display(),
            stored.partitions,
            proposed.partitions,
            stored.partitions,
            stored.partitions,
            stored.partitions,
        );
    }
    match stored.blobs {
        Some(stored) if stored != blobs => Err(mismatch(config, &stored, &blobs)),
        Some(_) => Ok(Pending(None)),
        // A fresh data directory, or one written by a version that did not
        // record its blob store: this one is adopted once it opens.
        None => Ok(Pending(Some(Layout {
            blobs: Some(blobs),
            ..proposed
        }))),
    }
}

impl Pending {
    /// Stores the blob store's identity with data that has none yet.
    pub(crate) async fn record(
        self,
        store: &dyn StateStore,
        config: &Config,
    ) -> anyhow::Result<()> {
        let Some(proposed) = self.0 else {
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
                config,
                s.as_deref().unwrap_or("none"),
                p.as_deref().unwrap_or("none"),
            )),
        }
    }
}

fn mismatch(config: &Config, stored: &str, proposed: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the files of the data in {} are in {} (`{stored}`), but this node was started with {} \
         (`{proposed}`): start it again with {}, or point --data-dir at a new data directory to \
         use the other store; objects name file versions in the store they were written to, so \
         changing the blob store of existing data is not supported",
        config.data_dir.display(),
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
        let config = Config {
            data_dir: "/srv/oprc-data".into(),
            ..Config::default()
        };
        let s3 = "s3://files?endpoint=http://127.0.0.1:9000";
        let text = mismatch(&config, "dir:files", s3).to_string();
        for part in [
            "/srv/oprc-data",
            "the embedded store in the data directory (`dir:files`)",
            &format!("the S3 store (`{s3}`)"),
            "start it again with no --blobs",
            "a new data directory",
        ] {
            assert!(text.contains(part), "{part:?} in {text}");
        }
        let text = mismatch(&config, s3, "dir:files").to_string();
        assert!(
            text.contains(&format!("start it again with --blobs '{s3}'")),
            "{text}"
        );
    }
}
