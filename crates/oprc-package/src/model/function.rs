//! Functions: what runs, where it runs, and macro definitions.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{FunctionType, is_default, is_false};
use crate::Duration;

/// A function of the package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-compat" = [
    "_key", "pkg", "variableDescriptions", "status", "deploymentStatus", "state", "qos",
    "constraint", "requirements", "validation", "image"
]))]
pub struct Function {
    /// Function name; the key is `<package>.<name>`. May contain `.`
    /// (`record.random`).
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "is_default")]
    pub kind: FunctionType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Class of the output object (`none`/`void` for none); bindings may
    /// override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_cls: Option<String>,
    /// The function never changes its main object.
    #[serde(default, skip_serializing_if = "is_false")]
    pub immutable: bool,
    /// Where the code runs (TASK functions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision: Option<Provision>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub config: FunctionConfig,
    /// The dataflow of a MACRO function.
    #[serde(rename = "macro", default, skip_serializing_if = "Option::is_none")]
    pub macro_spec: Option<MacroSpec>,
}

/// Invocation settings of a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-compat" = ["offloadingMode", "offloadingConfig", "http2", "apiPath"]))]
pub struct FunctionConfig {
    /// An existing HTTP endpoint that serves the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_url: Option<String>,
    /// Environment given to the function's code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, String>,
    /// How long one call may take.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
}

impl Default for FunctionConfig {
    fn default() -> Self {
        Self {
            static_url: None,
            custom: BTreeMap::new(),
            timeout: default_timeout(),
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Where a TASK function's code runs; at most one engine per function.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(
    extend("x-compat" = ["type"]),
    extend("x-aliases" = { "staticUrl": "http" })
)]
pub struct Provision {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProvision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessProvision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knative: Option<KnativeProvision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentProvision>,
}

/// An existing HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpProvision {
    pub url: String,
}

/// Local worker processes started by the node (the embedded engine). The
/// worker gets its port in `PORT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessProvision {
    /// A shell command (run with `sh -c`) or an argv array.
    pub command: Command,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory of the workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Workers kept running when idle (0 scales to zero).
    #[serde(default)]
    pub min_instances: u32,
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// In-flight calls per worker before another one is started.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1))]
    pub concurrency: u32,
    /// Idle time after which a worker above `minInstances` is stopped.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Duration,
    /// How long a new worker may take to accept connections.
    #[serde(default = "default_readiness_timeout")]
    pub readiness_timeout: Duration,
}

fn default_max_instances() -> u32 {
    4
}
fn default_concurrency() -> u32 {
    8
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_readiness_timeout() -> Duration {
    Duration::from_secs(30)
}

/// How to start a worker process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Command {
    /// Run with `sh -c`.
    Shell(String),
    /// Program and arguments, run directly.
    Argv(Vec<String>),
}

impl Command {
    /// The argv to execute. A shell command becomes `["sh", "-c", text]`,
    /// with `exec` put before the command when `text` is one simple command
    /// (`python3 fn.py`, `A=1 ./worker`), so the worker is the process
    /// started and gets its signals; other scripts (`a; b`, `a && b`,
    /// pipelines, ...) run as written.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Shell(text) => {
                vec![
                    "sh".into(),
                    "-c".into(),
                    oprc_core::shell::exec_script(text),
                ]
            }
            Command::Argv(argv) => argv.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Command;

    #[test]
    fn shell_commands_exec_a_single_command() {
        let argv = |c: Command| c.argv();
        assert_eq!(
            argv(Command::Shell("python3 fn.py".into())),
            ["sh", "-c", "exec python3 fn.py"]
        );
        assert_eq!(
            argv(Command::Shell("python3 a.py; python3 b.py".into())),
            ["sh", "-c", "python3 a.py; python3 b.py"]
        );
        assert_eq!(
            argv(Command::Argv(vec!["python3".into(), "fn.py".into()])),
            ["python3", "fn.py"]
        );
    }
}

/// A Knative Service rendered by the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-compat" = ["http2"]))]
pub struct KnativeProvision {
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_scale: Option<i32>,
    /// `-1` (or absent) for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_scale: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_concurrency: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits_cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits_memory: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// A Kubernetes Deployment rendered by the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentProvision {
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits_cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits_memory: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<String>,
}

/// The dataflow of a MACRO function: steps over objects, run in
/// dependency order (independent ones in parallel). Values in `args` and
/// `bodyTemplate` may hold `${SRC|KIND|PATH}` substitutions: SRC `@` (the
/// macro call) or a step's name, KIND `args`, `body` or `output`, PATH a
/// JSONPath (`$.data.x`); `$${` is a literal `${`. Checked when the
/// package is applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(
    extend("x-compat" = ["respBody", "atomic"]),
    extend("x-aliases" = { "export": "output" })
)]
pub struct MacroSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<MacroStep>,
    /// The step (its name: `as`, or `_INDEX`) whose object is the macro's
    /// output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Template of the macro's response body; may use `@` and any step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_template: Option<serde_json::Value>,
}

/// One call in a macro.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-compat" = ["targetCls", "mappings", "argRefs", "inputRefs"]))]
pub struct MacroStep {
    /// Binding name to call on the target (a binding of the target's
    /// class, which the macro may call).
    pub function: String,
    /// `@` (the default) for the macro's main object, `@.REF` for the
    /// object it refers to as `REF`, or an earlier step's `as` name for
    /// that step's output object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Name of this step (and of its output object): a letter, then up to
    /// 63 letters, digits, `_` and `-`; unique in the macro. Without it the
    /// step is `_INDEX` (`_0` for the first).
    #[serde(rename = "as", default, skip_serializing_if = "Option::is_none")]
    pub as_name: Option<String>,
    /// Arguments of the call; values may hold substitutions (rendered as
    /// text).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// Body of the call; its strings may hold substitutions (one that is
    /// the whole string keeps its JSON type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_template: Option<serde_json::Value>,
}
