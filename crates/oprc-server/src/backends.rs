//! The node's storage engines, as its configuration names them: the state
//! store (embedded redb in the data directory, or PostgreSQL) and the
//! invocation log (embedded, in the same redb database, or NATS
//! JetStream). Any combination works; the redb database is opened only
//! when one of the two is embedded.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use oprc_store::{InvocationLog, StateStore};

use crate::Config;

/// An engine the monitor checks, and its name in `/readyz`.
pub(crate) type Watched<E> = Option<(E, String)>;

/// The opened engines.
pub(crate) struct Backends {
    pub state: Arc<dyn StateStore>,
    pub log: Arc<dyn InvocationLog>,
    /// The identity of the log, stored with the state (see `layout.rs`).
    pub log_identity: String,
    /// The embedded database, when the state or the log is embedded.
    pub embedded: Option<oprc_store_redb::Store>,
    pub pg: Option<oprc_store_pg::PgStore>,
    pub nats: Option<oprc_log_nats::NatsLog>,
    nats_metrics: Option<NatsMetrics>,
    /// Where the state lives, in words, for messages (credentials
    /// redacted).
    pub state_place: String,
}

impl Backends {
    /// Opens the state store and the log the configuration names. A server
    /// that does not answer fails the start, with its (redacted) URL.
    pub(crate) async fn open(config: &Config) -> anyhow::Result<Self> {
        let needs_embedded = config.state.is_none() || config.invocation_log.is_none();
        let embedded = if needs_embedded {
            Some(open_embedded(config)?)
        } else {
            None
        };
        let state_place = state_place(config);
        let (state, pg): (Arc<dyn StateStore>, _) = match &config.state {
            None => (Arc::new(embedded.clone().expect("opened above")), None),
            Some(url) => {
                let store = open_pg(url, config.sync).await?;
                (Arc::new(store.clone()), Some(store))
            }
        };
        let (log, nats, log_identity): (Arc<dyn InvocationLog>, _, _) = match &config.invocation_log
        {
            None => {
                let store = embedded.clone().expect("opened above");
                let identity = store.log_identity().to_owned();
                (Arc::new(store), None, identity)
            }
            Some(url) => {
                // The URL's query may name the stream, its subjects and
                // consumers (`?stream=NAME&subjects=PREFIX`).
                let log = oprc_log_nats::NatsLog::connect(url, Default::default())
                    .await
                    .with_context(|| {
                        format!("failed to open the invocation log at {}", redact(url))
                    })?;
                let identity = log.identity();
                (Arc::new(log.clone()), Some(log), identity)
            }
        };
        let nats_metrics = nats.clone().map(|log| NatsMetrics {
            log,
            lag: Arc::default(),
        });
        let backends = Self {
            state,
            log,
            log_identity,
            embedded,
            pg,
            nats,
            nats_metrics,
            state_place,
        };
        backends.announce(config);
        Ok(backends)
    }

    pub(crate) fn nats_metrics(&self) -> Option<NatsMetrics> {
        self.nats_metrics.clone()
    }

    /// The networked engines to watch, with their names in `/readyz`.
    pub(crate) fn watched(
        &self,
        config: &Config,
    ) -> (
        Watched<oprc_store_pg::PgStore>,
        Watched<oprc_log_nats::NatsLog>,
    ) {
        let pg = self.pg.clone().zip(
            config
                .state
                .as_deref()
                .map(|url| format!("state store (postgresql {})", redact(url))),
        );
        let nats = self.nats.clone().zip(
            config
                .invocation_log
                .as_deref()
                .map(|url| format!("invocation log (nats jetstream {})", redact(url))),
        );
        (pg, nats)
    }

    /// Logs the engines in use, credentials redacted.
    fn announce(&self, config: &Config) {
        let dir = config.data_dir.display();
        let state = match &config.state {
            None => format!("embedded ({dir}/oprc.redb)"),
            Some(url) => format!("postgresql {}", redact(url)),
        };
        let log = match &config.invocation_log {
            None => format!("embedded ({dir}/oprc.redb)"),
            Some(url) => format!("nats jetstream {}", redact(url)),
        };
        tracing::info!(%state, invocation_log = %log, log_identity = %self.log_identity, "storage backends");
    }

    /// Completes once the engines are closed: the embedded database has
    /// committed what was queued and released its file, the pool its
    /// connections. Call after every other holder is gone.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let embedded = self.embedded.as_ref().map(|s| s.closed());
        let pg = self.pg.clone();
        async move {
            if let Some(pg) = pg {
                pg.close().await;
            }
            if let Some(closed) = embedded {
                closed.await;
            }
        }
    }
}

/// The JetStream log's counters and, refreshed by [`monitor`], its
/// consumer lag per partition.
#[derive(Clone)]
pub(crate) struct NatsMetrics {
    log: oprc_log_nats::NatsLog,
    lag: Arc<parking_lot::Mutex<Vec<(u16, u64)>>>,
}

impl NatsMetrics {
    pub(crate) fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::gauge::ConstGauge;
        let s = self.log.stats();
        let counters: [(&str, &str, u64); 5] = [
            (
                "oprc_nats_appends",
                "Async calls appended to the JetStream log",
                s.appends,
            ),
            (
                "oprc_nats_duplicates",
                "Appends the JetStream dedup window answered with an earlier entry",
                s.duplicates,
            ),
            (
                "oprc_nats_acks",
                "Log entries acknowledged after their commit",
                s.acks,
            ),
            (
                "oprc_nats_errors",
                "Calls of the JetStream log that failed",
                s.errors,
            ),
            (
                "oprc_nats_recovered_consumers",
                "Consumers recreated to deliver again what a stopped node left unacknowledged",
                s.recovered_consumers,
            ),
        ];
        crate::metrics::encode_counters(encoder, &counters)?;
        let lag = self.lag.lock().clone();
        let gauge = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "oprc_nats_consumer_lag",
            "Entries of a partition not applied yet (not delivered, or delivered and not committed)",
            None,
            gauge.metric_type(),
        )?;
        for (partition, n) in lag {
            let labels = [("partition", partition.to_string())];
            ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    async fn refresh(&self, partitions: u16) {
        if !self.log.connected() {
            return;
        }
        let mut lag = Vec::with_capacity(usize::from(partitions));
        for p in 0..partitions {
            if let Ok(Some(n)) = self.log.consumer_lag(oprc_core::PartitionId(p)).await {
                lag.push((p, n));
            }
        }
        *self.lag.lock() = lag;
    }
}

/// Checks every second that the networked engines answer and reports
/// them to `health` (`/readyz`), logging each change, until `cancel`.
/// The embedded store is a file of this process: it has nothing to check.
pub(crate) async fn monitor(
    pg: Watched<oprc_store_pg::PgStore>,
    nats: Watched<oprc_log_nats::NatsLog>,
    nats_metrics: Option<(NatsMetrics, u16)>,
    health: Arc<oprc_ingress::Health>,
    cancel: tokio_util::sync::CancellationToken,
) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(1);
    const WAIT: std::time::Duration = std::time::Duration::from_secs(2);
    if pg.is_none() && nats.is_none() {
        return;
    }
    let report = |engine: &str, problem: Option<String>| {
        let changed = health.set(engine, problem.clone());
        match (changed, problem) {
            (true, Some(why)) => {
                tracing::warn!(engine, error = %why, "storage engine does not answer; the node is not ready")
            }
            (true, None) => tracing::info!(engine, "storage engine answers again"),
            (false, _) => {}
        }
    };
    // The lag takes a request per partition (every 5 s is enough), each
    // up to the log's request timeout while NATS is away: on a task of its
    // own, so the checks below never wait for it.
    if let Some((m, partitions)) = nats_metrics {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY * 5);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    _ = tick.tick() => m.refresh(partitions).await,
                }
            }
        });
    }
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Some((store, engine)) = &pg {
            let problem = match tokio::time::timeout(WAIT, store.ping()).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {}s", WAIT.as_secs())),
            };
            report(engine, problem);
        }
        if let Some((log, engine)) = &nats {
            let problem = match tokio::time::timeout(WAIT, log.ping()).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {}s", WAIT.as_secs())),
            };
            report(engine, problem);
        }
    }
}

/// The state store and the blob store a configuration names, opened
/// without a node, for offline tools (`oprc export`, `oprc import`). An
/// embedded store in use by a running node cannot be opened (its file is
/// locked): stop the node first.
pub struct Stores {
    pub state: Arc<dyn StateStore>,
    pub blobs: Arc<dyn oprc_blob::BlobStore>,
    /// Where the state is and where the files are, in words.
    pub state_place: String,
    pub blobs_place: String,
    embedded: Option<oprc_store_redb::Store>,
    pg: Option<oprc_store_pg::PgStore>,
}

impl Stores {
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let (state, embedded, pg): (Arc<dyn StateStore>, _, _) = match &config.state {
            None => {
                let store = open_embedded(config)
                    .context("is a node running on this data directory? stop it first")?;
                (Arc::new(store.clone()), Some(store), None)
            }
            Some(url) => {
                let store = open_pg(url, true).await?;
                (Arc::new(store.clone()), None, Some(store))
            }
        };
        // Offline: no URL is handed out, so the base of the signer is moot.
        let files = crate::files::open(
            &config.files,
            &config.data_dir,
            "http://127.0.0.1".to_owned(),
        )
        .await?;
        let blobs_place = match &config.files.blobs {
            None => format!("{}/files", config.data_dir.display()),
            Some(url) => url.clone(),
        };
        Ok(Self {
            state,
            blobs: files.store,
            state_place: state_place(config),
            blobs_place,
            embedded,
            pg,
        })
    }

    /// Commits what is queued and closes the stores.
    pub async fn close(self) {
        let Self {
            state,
            blobs,
            embedded,
            pg,
            ..
        } = self;
        drop((state, blobs));
        if let Some(pg) = pg {
            pg.close().await;
        }
        if let Some(store) = embedded {
            let closed = store.closed();
            drop(store);
            closed.await;
        }
    }
}

/// The embedded database of the data directory.
fn open_embedded(config: &Config) -> anyhow::Result<oprc_store_redb::Store> {
    let mut options = oprc_store_redb::Options::new(config.data_dir.join("oprc.redb"));
    options.sync = config.sync;
    oprc_store_redb::Store::open(options).with_context(|| {
        format!(
            "failed to open the data directory {}",
            config.data_dir.display()
        )
    })
}

/// The PostgreSQL state store at `url`.
async fn open_pg(url: &str, sync: bool) -> anyhow::Result<oprc_store_pg::PgStore> {
    let options = oprc_store_pg::Options {
        sync,
        ..Default::default()
    };
    oprc_store_pg::PgStore::connect(url, options)
        .await
        .with_context(|| format!("failed to open the state store at {}", redact(url)))
}

/// Where the state lives, in words (credentials redacted).
fn state_place(config: &Config) -> String {
    match &config.state {
        None => format!("the data directory {}", config.data_dir.display()),
        Some(url) => format!("the PostgreSQL database {}", redact(url)),
    }
}

/// `url` without its credentials: a password (or, for NATS, a token or
/// a password) shows as `***`.
pub fn redact(url: &str) -> String {
    if url.starts_with("nats://") {
        oprc_log_nats::redact_url(url)
    } else {
        oprc_store_pg::redact_url(url)
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn credentials_never_show() {
        for (url, shown) in [
            (
                "postgres://app:s3cret@db:5432/oprc",
                "postgres://app:***@db:5432/oprc",
            ),
            ("postgres://app@db/oprc", "postgres://app@db/oprc"),
            ("nats://tok3n@mq:4222", "nats://***@mq:4222"),
            ("nats://u:p4ss@mq:4222", "nats://u:***@mq:4222"),
            ("nats://mq:4222", "nats://mq:4222"),
        ] {
            assert_eq!(redact(url), shown);
        }
    }
}
