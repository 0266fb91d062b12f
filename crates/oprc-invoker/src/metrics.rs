//! Prometheus metrics of the invoker.

use std::time::Duration;

use oprc_core::{ClassKey, InvocationStatus};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    cls: String,
    #[prometheus(flatten)]
    fb: FbLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FbLabel {
    function: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    cls: String,
    function: String,
    status: String,
}

/// Counters and histograms of invocations, labelled by class and binding.
#[derive(Clone)]
pub struct Metrics {
    invocations: Family<StatusLabels, Counter>,
    accepted: Family<CallLabels, Counter>,
    latency: Family<CallLabels, Histogram>,
    records_lost: Counter,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self::unregistered();
        registry.register(
            "oprc_invocations",
            "Invocations that ended, by class, function and status",
            m.invocations.clone(),
        );
        registry.register(
            "oprc_async_accepted",
            "Async invocations accepted into the log",
            m.accepted.clone(),
        );
        registry.register(
            "oprc_invocation_duration_seconds",
            "Time from acceptance to the end of an invocation",
            m.latency.clone(),
        );
        registry.register(
            "oprc_async_records_lost",
            "Async calls that failed for good and whose failure record could not be stored (corrupt storage)",
            m.records_lost.clone(),
        );
        m
    }

    /// Metrics that are not exported (tests, tools).
    pub fn unregistered() -> Self {
        Self {
            invocations: Family::default(),
            accepted: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_1, 2.0, 20))
            }),
            records_lost: Counter::default(),
        }
    }

    pub(crate) fn record_lost(&self) {
        self.records_lost.inc();
    }

    pub(crate) fn observe(
        &self,
        cls: &ClassKey,
        fb: &str,
        status: InvocationStatus,
        took: Duration,
    ) {
        let status = match status {
            InvocationStatus::Queue => "QUEUE",
            InvocationStatus::Doing => "DOING",
            InvocationStatus::Succeeded => "SUCCEEDED",
            InvocationStatus::Failed => "FAILED",
            InvocationStatus::DependencyFailed => "DEPENDENCY_FAILED",
        };
        self.invocations
            .get_or_create(&StatusLabels {
                cls: cls.to_string(),
                function: fb.to_owned(),
                status: status.to_owned(),
            })
            .inc();
        self.latency
            .get_or_create(&call(cls, fb))
            .observe(took.as_secs_f64());
    }

    pub(crate) fn accepted(&self, cls: &ClassKey, fb: &str) {
        self.accepted.get_or_create(&call(cls, fb)).inc();
    }
}

fn call(cls: &ClassKey, fb: &str) -> CallLabels {
    CallLabels {
        cls: cls.to_string(),
        fb: FbLabel {
            function: fb.to_owned(),
        },
    }
}
