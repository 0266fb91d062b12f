//! Prometheus metrics of the invoker.

use std::time::Duration;

use oprc_core::{ClassKey, InvocationStatus};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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
    in_flight: Gauge,
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
            "oprc_invocations_in_flight",
            "Invocations running or queued in an object inbox on this node",
            m.in_flight.clone(),
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
            in_flight: Gauge::default(),
        }
    }

    /// Counts a call as in flight until the guard is dropped.
    pub(crate) fn running(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
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

/// Decrements the in-flight gauge when dropped.
pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
