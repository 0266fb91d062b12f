//! Metrics read at scrape time from components that keep their own
//! counters: the storage engines, the FaaS engine's workers, the invoker
//! and the file collector.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `(name, help, value)` of metrics without labels.
type Plain<'a, T> = [(&'a str, &'a str, T)];

pub(crate) fn encode_counters(
    encoder: &mut DescriptorEncoder,
    metrics: &Plain<u64>,
) -> std::fmt::Result {
    for &(name, help, value) in metrics {
        let counter = ConstCounter::new(value);
        counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
    }
    Ok(())
}

pub(crate) fn encode_gauges(
    encoder: &mut DescriptorEncoder,
    metrics: &Plain<i64>,
) -> std::fmt::Result {
    for &(name, help, value) in metrics {
        let gauge = ConstGauge::new(value);
        gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
    }
    Ok(())
}

/// The storage engines: group commit of the state store (embedded or
/// PostgreSQL), PostgreSQL's pool and transaction time, and the JetStream
/// log's counters and consumer lag.
pub(crate) struct StoreCollector {
    /// The embedded store, when it holds the state.
    embedded: Option<oprc_store_redb::Store>,
    pg: Option<oprc_store_pg::PgStore>,
    nats: Option<crate::backends::NatsMetrics>,
}

impl StoreCollector {
    pub(crate) fn new(backends: &crate::backends::Backends) -> Self {
        Self {
            embedded: backends
                .pg
                .is_none()
                .then(|| backends.embedded.clone())
                .flatten(),
            pg: backends.pg.clone(),
            nats: backends.nats_metrics(),
        }
    }
}

impl std::fmt::Debug for StoreCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCollector")
            .field("embedded", &self.embedded.is_some())
            .field("pg", &self.pg.is_some())
            .field("nats", &self.nats.is_some())
            .finish()
    }
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (commits, durable, requests) = match (&self.embedded, &self.pg) {
            (Some(store), _) => {
                let s = store.stats();
                (s.commits, s.durable_commits, s.requests)
            }
            (None, Some(pg)) => {
                let s = pg.stats();
                (s.commits, s.durable_commits, s.requests)
            }
            (None, None) => (0, 0, 0),
        };
        let counters: [(&str, &str, u64); 3] = [
            (
                "oprc_store_commits",
                "Storage transactions committed (one fsync each in sync mode)",
                commits,
            ),
            (
                "oprc_store_durable_commits",
                "Transactions made durable before they were acknowledged (the rest are write-behind)",
                durable,
            ),
            (
                "oprc_store_write_requests",
                "Write requests served by those transactions; requests / commits is the average group-commit batch",
                requests,
            ),
        ];
        encode_counters(&mut encoder, &counters)?;
        if let Some(pg) = &self.pg {
            let seconds = ConstCounter::new(pg.stats().transaction_seconds);
            seconds.encode(encoder.encode_descriptor(
                "oprc_postgres_transaction_seconds",
                "Seconds the state store's group-commit transactions took (BEGIN to the end of COMMIT); over oprc_store_commits, the mean latency",
                None,
                seconds.metric_type(),
            )?)?;
            let (open, idle) = pg.pool_connections();
            let gauges: [(&str, &str, i64); 2] = [
                (
                    "oprc_postgres_pool_in_use",
                    "PostgreSQL connections of the pool in use now",
                    i64::from(open.saturating_sub(idle)),
                ),
                (
                    "oprc_postgres_pool_open",
                    "PostgreSQL connections the pool holds open (in use and idle)",
                    i64::from(open),
                ),
            ];
            encode_gauges(&mut encoder, &gauges)?;
        }
        if let Some(nats) = &self.nats {
            nats.encode(&mut encoder)?;
        }
        Ok(())
    }
}

/// A metric's name, help text, and how to read its value.
type Described<F> = (&'static str, &'static str, F);
type GaugeOf = fn(&oprc_engine::DeploymentStatus) -> i64;
type CounterOf = fn(&oprc_engine::Counters) -> u64;

/// Workers and calls of each deployed function.
#[derive(Debug)]
pub(crate) struct EngineCollector(pub oprc_engine::Handle);

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = self.0.status();
        let gauges: [Described<GaugeOf>; 2] = [
            (
                "oprc_function_instances",
                "Worker processes of a function",
                |d| d.instances.len() as i64,
            ),
            (
                "oprc_function_in_flight",
                "Calls to a function in progress",
                |d| d.counters.in_flight as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let mut family =
                encoder.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
            for d in &status.deployments {
                let labels = [("function", d.function.as_str())];
                ConstGauge::new(value(d)).encode(family.encode_family(&labels)?)?;
            }
        }
        let counters: [Described<CounterOf>; 3] = [
            (
                "oprc_function_calls",
                "Calls to a function that ended",
                |c| c.invocations,
            ),
            (
                "oprc_function_worker_starts",
                "Worker processes started",
                |c| c.starts,
            ),
            (
                "oprc_function_worker_crashes",
                "Ready workers that exited unasked",
                |c| c.crashes,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for d in &status.deployments {
                let labels = [("function", d.function.as_str())];
                ConstCounter::new(value(&d.counters)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// What the invoker holds: busy inboxes, admitted calls, cached bytes.
#[derive(Clone)]
pub(crate) struct InvokerCollector(pub oprc_invoker::Handle);

impl std::fmt::Debug for InvokerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("InvokerCollector")
            .field(&self.0.stats())
            .finish()
    }
}

impl Collector for InvokerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        let gauges: [(&str, &str, i64); 3] = [
            (
                "oprc_objects_busy",
                "Objects with mutating calls queued or running on this node",
                i64::try_from(stats.busy_objects).unwrap_or(i64::MAX),
            ),
            (
                "oprc_invocations_in_flight",
                "Calls of waiting callers admitted and not yet answered on this node",
                i64::try_from(stats.admitted).unwrap_or(i64::MAX),
            ),
            (
                "oprc_object_cache_bytes",
                "Estimated bytes of objects in the hot-object cache",
                i64::try_from(stats.cache_bytes).unwrap_or(i64::MAX),
            ),
        ];
        encode_gauges(&mut encoder, &gauges)
    }
}

/// The file collector: progress and backlog.
pub(crate) struct FilesCollector(pub std::sync::Arc<oprc_adapter::collector::Stats>);

impl std::fmt::Debug for FilesCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FilesCollector").field(&self.0).finish()
    }
}

impl Collector for FilesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.0;
        let counters: [(&str, &str, u64); 5] = [
            (
                "oprc_file_gc_passes",
                "Passes of the file collector over the blob store",
                s.passes.load(Relaxed),
            ),
            (
                "oprc_file_gc_scanned",
                "File versions the collector looked at",
                s.scanned.load(Relaxed),
            ),
            (
                "oprc_file_gc_deleted",
                "Dead file versions (superseded, orphaned or of deleted objects) deleted",
                s.deleted.load(Relaxed),
            ),
            (
                "oprc_file_gc_deleted_bytes",
                "Bytes of the dead file versions deleted",
                s.deleted_bytes.load(Relaxed),
            ),
            (
                "oprc_file_gc_failures",
                "Collector passes or deletes that failed (retried at the next pass)",
                s.failures.load(Relaxed),
            ),
        ];
        encode_counters(&mut encoder, &counters)?;
        let gauges: [(&str, &str, i64); 4] = [
            (
                "oprc_file_gc_backlog",
                "Dead file versions seen in the last pass that are still within the grace period",
                i64::try_from(s.backlog.load(Relaxed)).unwrap_or(i64::MAX),
            ),
            (
                "oprc_file_gc_backlog_bytes",
                "Bytes of those versions",
                i64::try_from(s.backlog_bytes.load(Relaxed)).unwrap_or(i64::MAX),
            ),
            (
                "oprc_file_versions_live",
                "File versions objects held at the last pass",
                i64::try_from(s.live.load(Relaxed)).unwrap_or(i64::MAX),
            ),
            (
                "oprc_file_gc_last_pass_timestamp_ms",
                "When the last collector pass ended (ms since the Unix epoch; 0: none yet)",
                s.last_pass_ms.load(Relaxed),
            ),
        ];
        encode_gauges(&mut encoder, &gauges)
    }
}
