//! The dataflow benchmark's package and scenarios: what one operation of
//! each scenario sends, and how its answers are checked.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::future::join_all;
use serde_json::Value;

use crate::files::http::{Http, Req};

pub const CLASS: &str = "bench.thing";
/// Branches of the fan-out.
pub const BRANCHES: usize = 8;

/// The package: class `thing` with the two bindings of the function
/// (`step`, `sleep`) and the three macros, the function run by the
/// process engine on `instances` workers of `concurrency` calls each.
pub fn package(
    script: &Path,
    python: &str,
    sdk: &Path,
    sleep_ms: u64,
    instances: u32,
    concurrency: u32,
) -> String {
    let quoted = |p: &Path| Value::String(p.display().to_string()).to_string();
    let mut fan = String::new();
    let mut join_args = Vec::new();
    for i in 1..=BRANCHES {
        fan.push_str(&format!(
            "        - {{function: sleep, target: \"@\", as: s{i}}}\n"
        ));
        join_args.push(format!("s{i}: \"${{s{i}|body|$.ms}}\""));
    }
    format!(
        r#"name: bench
classes:
  - name: thing
    functions:
      - {{name: step, function: .work, immutable: true, outputCls: .thing}}
      - {{name: sleep, function: .work, immutable: true, defaultArgs: {{ms: "{sleep_ms}"}}}}
      - {{name: chain1, function: .chain1}}
      - {{name: chain3, function: .chain3}}
      - {{name: chain3copy, function: .chain3copy}}
      - {{name: fanout8, function: .fanout8}}
functions:
  - name: work
    provision:
      process:
        command: [{python}, {script}]
        env: {{PYTHONPATH: {sdk}}}
        minInstances: {instances}
        maxInstances: {instances}
        concurrency: {concurrency}
  - name: chain1
    type: MACRO
    macro:
      steps:
        - {{function: step, target: "@", as: a}}
      output: a
  - name: chain3
    type: MACRO
    macro:
      steps:
        - {{function: step, target: "@", as: a}}
        - {{function: step, target: a, as: b}}
        - {{function: step, target: b, as: c}}
      output: c
  - name: chain3copy
    type: MACRO
    macro:
      steps:
        - {{function: copy, target: "@", as: a}}
        - {{function: copy, target: a, as: b}}
        - {{function: copy, target: b, as: c}}
      output: c
  - name: fanout8
    type: MACRO
    macro:
      steps:
{fan}        - {{function: step, target: "@", as: join, args: {{{join}}}}}
      output: join
"#,
        script = quoted(script),
        sdk = quoted(sdk),
        join = join_args.join(", "),
    )
}

/// What a client does, once per operation, on its own object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// One call of `step` (the unit).
    Call,
    /// One call of `step` under a fresh `Idempotency-Key`, as macro steps
    /// run (their record is committed with their output).
    CallKeyed,
    /// One call of `sleep` (the slowest branch alone).
    Sleep,
    /// One call of the builtin `copy` (no function worker).
    Copy,
    /// A macro of three chained builtin `copy` steps.
    Chain3Copy,
    /// A macro of one `step` (the macro's fixed cost).
    Chain1Macro,
    /// The three chained `step` calls as one macro call.
    Chain3Macro,
    /// The same three calls by the client, each on the previous output.
    Chain3Client,
    /// The macro of 8 `sleep` steps on `@` and a `step` joining them.
    Fanout8Macro,
    /// The same 9 calls by the client, one after another.
    Fanout8Client,
    /// The same 9 calls by the client, the 8 sleeps at once: the floor of
    /// any fan-out of 8 branches on this node, macro or not.
    Fanout8ClientParallel,
}

impl Scenario {
    pub const ALL: [Scenario; 11] = [
        Self::Call,
        Self::CallKeyed,
        Self::Sleep,
        Self::Copy,
        Self::Chain3Copy,
        Self::Chain1Macro,
        Self::Chain3Macro,
        Self::Chain3Client,
        Self::Fanout8Macro,
        Self::Fanout8Client,
        Self::Fanout8ClientParallel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::CallKeyed => "call-keyed",
            Self::Sleep => "sleep",
            Self::Copy => "copy",
            Self::Chain3Copy => "chain3-copy",
            Self::Chain1Macro => "chain1-macro",
            Self::Chain3Macro => "chain3-macro",
            Self::Chain3Client => "chain3-client",
            Self::Fanout8Macro => "fanout8-macro",
            Self::Fanout8Client => "fanout8-client",
            Self::Fanout8ClientParallel => "fanout8-client-parallel",
        }
    }
}

/// Where the operations go.
pub struct Ctx {
    pub http: Http,
    pub addr: std::net::SocketAddr,
    pub sleep_ms: u64,
    /// Makes every `Idempotency-Key` of a run distinct.
    pub keys: AtomicU64,
}

/// Object `o{client}`, made by the benchmark before the cells.
pub fn object(client: usize) -> String {
    format!("o{client}")
}

impl Ctx {
    fn uri(&self, oid: &str, fb: &str, query: &str) -> http::Uri {
        format!(
            "http://{}/api/classes/{CLASS}/objects/{oid}/invokes/{fb}{query}",
            self.addr
        )
        .parse()
        .expect("a valid uri")
    }

    /// Calls `fb` on `oid`; the answer when it is a 2xx with status
    /// SUCCEEDED.
    async fn call(&self, oid: &str, fb: &str, query: &str, keyed: bool) -> Result<Value, String> {
        let mut req = Req::post(self.uri(oid, fb, query), Bytes::new());
        if keyed {
            let n = self.keys.fetch_add(1, Ordering::Relaxed);
            req = req.with_idempotency_key(format!("bench-{n}"));
        }
        let (status, body) = self
            .http
            .send(req)
            .await
            .map_err(|e| format!("{fb}: no answer: {e:#}"))?;
        let shown = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        if !status.is_success() {
            return Err(format!("{fb}: {status}: {}", shown()));
        }
        let v: Value =
            serde_json::from_slice(&body).map_err(|_| format!("{fb}: not JSON: {}", shown()))?;
        if v.get("status").and_then(Value::as_str) != Some("SUCCEEDED") {
            return Err(format!("{fb}: not SUCCEEDED: {}", shown()));
        }
        Ok(v)
    }

    /// One operation of `scenario` by client `client`.
    pub async fn op(&self, scenario: Scenario, client: usize) -> Result<(), String> {
        let oid = object(client);
        match scenario {
            Scenario::Call => output_id(&self.call(&oid, "step", "", false).await?).map(drop),
            Scenario::CallKeyed => output_id(&self.call(&oid, "step", "", true).await?).map(drop),
            Scenario::Copy => output_id(&self.call(&oid, "copy", "", false).await?).map(drop),
            Scenario::Sleep => {
                let v = self.call(&oid, "sleep", "", false).await?;
                slept(&v, self.sleep_ms).map(drop)
            }
            Scenario::Chain3Copy => macro_done(&self.call(&oid, "chain3copy", "", false).await?, 3),
            Scenario::Chain1Macro => macro_done(&self.call(&oid, "chain1", "", false).await?, 1),
            Scenario::Chain3Macro => macro_done(&self.call(&oid, "chain3", "", false).await?, 3),
            Scenario::Fanout8Macro => {
                macro_done(&self.call(&oid, "fanout8", "", false).await?, BRANCHES + 1)
            }
            Scenario::Chain3Client => {
                let mut on = oid;
                for _ in 0..3 {
                    on = output_id(&self.call(&on, "step", "", false).await?)?;
                }
                Ok(())
            }
            Scenario::Fanout8Client => {
                let mut query = String::new();
                for i in 1..=BRANCHES {
                    let v = self.call(&oid, "sleep", "", false).await?;
                    let ms = slept(&v, self.sleep_ms)?;
                    query.push(if i == 1 { '?' } else { '&' });
                    query.push_str(&format!("s{i}={ms}"));
                }
                output_id(&self.call(&oid, "step", &query, false).await?).map(drop)
            }
            Scenario::Fanout8ClientParallel => {
                let sleeps = (0..BRANCHES).map(|_| self.call(&oid, "sleep", "", false));
                let mut query = String::new();
                for (i, v) in join_all(sleeps).await.into_iter().enumerate() {
                    let ms = slept(&v?, self.sleep_ms)?;
                    query.push(if i == 0 { '?' } else { '&' });
                    query.push_str(&format!("s{}={ms}", i + 1));
                }
                output_id(&self.call(&oid, "step", &query, false).await?).map(drop)
            }
        }
    }
}

fn output_id(v: &Value) -> Result<String, String> {
    v.pointer("/output/_meta/id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("no output object in {v}"))
}

/// The milliseconds a `sleep` answered, which must be `expected`.
fn slept(v: &Value, expected: u64) -> Result<u64, String> {
    match v.pointer("/body/ms").and_then(Value::as_u64) {
        Some(ms) if ms == expected => Ok(ms),
        _ => Err(format!("sleep answered no body.ms = {expected}: {v}")),
    }
}

/// A macro's answer: `steps` steps, all SUCCEEDED, and its output object.
fn macro_done(v: &Value, steps: usize) -> Result<(), String> {
    let reports = v
        .get("steps")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("the macro answered no steps: {v}"))?;
    let ok = reports
        .iter()
        .filter(|s| s.get("status").and_then(Value::as_str) == Some("SUCCEEDED"))
        .count();
    if reports.len() != steps || ok != steps {
        return Err(format!("{ok} of {steps} steps SUCCEEDED: {v}"));
    }
    output_id(v).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_has_the_macros_and_the_join_reads_every_branch() {
        let p = package(
            Path::new("/x/dataflow.py"),
            "python3",
            Path::new("/x/sdk"),
            20,
            2,
            32,
        );
        for name in ["chain1", "chain3", "chain3copy", "fanout8"] {
            assert!(
                p.contains(&format!("  - name: {name}\n    type: MACRO")),
                "{p}"
            );
        }
        assert_eq!(
            p.matches("function: sleep, target: \"@\"").count(),
            BRANCHES
        );
        assert!(p.contains(r#"s8: "${s8|body|$.ms}""#), "{p}");
        assert!(p.contains(r#"defaultArgs: {ms: "20"}"#), "{p}");
    }

    #[test]
    fn scenarios_are_named_on_the_command_line_as_in_the_report() {
        use clap::ValueEnum;
        for s in Scenario::ALL {
            let value = s.to_possible_value().expect("no scenario is skipped");
            assert_eq!(value.get_name(), s.name());
        }
        assert_eq!(Scenario::ALL.len(), Scenario::value_variants().len());
    }
}
