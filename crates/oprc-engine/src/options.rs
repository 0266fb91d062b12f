//! Engine configuration.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Configuration of the engine [`Service`](crate::Service). Durations are
/// written in milliseconds (`*_ms` keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Longest wait for a TCP connection to a function.
    #[serde(rename = "connect_timeout_ms", with = "millis")]
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per function endpoint (host:port).
    pub pool_max_idle_per_host: usize,
    /// How long an idle keep-alive connection is kept open.
    #[serde(rename = "pool_idle_timeout_ms", with = "millis")]
    pub pool_idle_timeout: Duration,
    /// Largest function answer accepted, in bytes; a larger one fails the
    /// call with [`InvokeError::ResponseTooLarge`](crate::InvokeError).
    pub max_response_bytes: usize,
    /// How many bytes of a non-200 answer are kept in
    /// [`InvokeError::Status`](crate::InvokeError).
    pub error_snippet_bytes: usize,
    /// Time a worker gets between SIGTERM and SIGKILL when it is stopped
    /// (scale-down, replacement, undeploy, shutdown).
    #[serde(rename = "stop_grace_ms", with = "millis")]
    pub stop_grace: Duration,
    /// How often the supervisor checks idle instances, `min_instances` and
    /// restart back-off. Scale-up and crashes are handled at once, not on
    /// this tick.
    #[serde(rename = "reconcile_interval_ms", with = "millis")]
    pub reconcile_interval: Duration,
    /// Where the stdout and stderr lines of worker processes go.
    pub worker_output: WorkerOutput,
    /// Directory of the workers' Unix sockets (`OPRC_SOCKET`). It is
    /// created when missing and must be a directory of this user with mode
    /// 0700, short enough for socket paths (at most 66 bytes). `None` (the
    /// default): a fresh private directory under the temporary directory,
    /// removed at shutdown. When it cannot be used, workers are called on
    /// their `PORT` only (an error is logged).
    pub socket_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            pool_max_idle_per_host: 64,
            pool_idle_timeout: Duration::from_secs(90),
            max_response_bytes: 32 * 1024 * 1024,
            error_snippet_bytes: 512,
            stop_grace: Duration::from_secs(5),
            reconcile_interval: Duration::from_millis(250),
            worker_output: WorkerOutput::Tracing,
            socket_dir: None,
        }
    }
}

/// Where worker output lines go. The last stderr lines are kept in every
/// mode, to explain a worker that dies before it is ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerOutput {
    /// One `tracing` event per line (target `oprc_engine::worker`, level
    /// INFO) with the fields `function`, `instance` and `stream`.
    #[default]
    Tracing,
    /// Written to the engine's own stdout/stderr, each line prefixed with
    /// `[<function>#<instance>] `.
    Prefixed,
    /// Dropped.
    Discard,
}

/// Serde of a `Duration` as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_milliseconds_and_keep_defaults() {
        let o: Options = serde_json::from_str(
            r#"{"stop_grace_ms": 1500, "worker_output": "prefixed",
                                     "socket_dir": "/run/oprc"}"#,
        )
        .expect("valid options");
        assert_eq!(o.stop_grace, Duration::from_millis(1500));
        assert_eq!(o.worker_output, WorkerOutput::Prefixed);
        assert_eq!(o.socket_dir, Some(PathBuf::from("/run/oprc")));
        assert_eq!(o.connect_timeout, Options::default().connect_timeout);
        let back = serde_json::to_value(&o).expect("serializes");
        assert_eq!(back["stop_grace_ms"], 1500);
    }

    #[test]
    fn unknown_option_is_rejected() {
        let err = serde_json::from_str::<Options>(r#"{"stop_grace": 1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}
