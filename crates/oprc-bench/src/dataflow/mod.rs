//! `oprc-bench dataflow`: macro functions against the same calls made by a
//! client (issue 7). One node (an `oprc` binary, durable commits) with a
//! trivial Python function (`functions/dataflow.py`, the Python SDK, run
//! by the process engine) and, side by side, interleaved over rounds, at
//! each concurrency level (closed loop, every client on its own object):
//!
//! - `call`: one immutable call creating an output object (the unit);
//! - `chain3-macro` / `chain3-client`: three such calls, each on the
//!   previous one's output, as one macro call or made by the client, and
//!   `chain1-macro` (a macro of one: its fixed cost);
//! - `sleep`: one call sleeping `--sleep-ms` in the function;
//! - `fanout8-macro` / `fanout8-client`: 8 sleeps on the object and a
//!   join depending on all 8 (through its args), as one macro call or as
//!   9 calls one after another by the client, and by a client making the
//!   8 sleeps at once (`fanout8-client-parallel`);
//! - to tell where a macro's time goes: `call-keyed` (a call under an
//!   `Idempotency-Key`, as every macro step runs), `copy` (the builtin:
//!   no worker) and `chain3-copy` (three chained `copy` steps as a macro).
//!
//! The report shows medians over rounds of p50, p99, throughput, CPU per
//! operation of the node and of its workers, and fsyncs per operation,
//! then the per-step overhead of the chains and the fan-out against its
//! floor (the slowest branch and the join call).

mod cell;
mod report;
mod scenario;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;

use crate::external::{External, TICKS_PER_SEC};
use crate::files::http::{Http, Req};
use scenario::{Ctx, Scenario};

/// The function, owned by the benchmark and written next to its other
/// temporary files.
const SCRIPT: &str = include_str!("../../functions/dataflow.py");
const SDK: &str = "sdk/python";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Clients in flight, each on its own object.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    concurrency: Vec<usize>,
    /// Only these scenarios [default: all].
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Rounds of every cell; the report shows medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of operations per cell and round (at least `--min-ops`
    /// per client).
    #[arg(long, default_value_t = 3.0)]
    duration_secs: f64,
    /// Timed operations per client and cell at least.
    #[arg(long, default_value_t = 30)]
    min_ops: u64,
    /// Untimed operations per client before each cell.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Milliseconds each fan-out branch (and `sleep`) sleeps.
    #[arg(long, default_value_t = 20)]
    sleep_ms: u64,
    /// Function workers (minInstances = maxInstances).
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// Calls in flight per worker; workers × this should hold every
    /// branch of every client's fan-out at once (8 × clients).
    #[arg(long, default_value_t = 32)]
    worker_concurrency: u32,
    /// The `oprc` binary [default: the one next to this binary].
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// The Python that runs the function.
    #[arg(long, default_value = "python3")]
    python: String,
}

/// Runs the benchmark; on Ctrl-C or SIGTERM the node and its workers are
/// stopped (the run's future is dropped, and with it the node process).
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = run_all(args) => r,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; stopped everything"),
        _ = term.recv() => anyhow::bail!("terminated; stopped everything"),
    }
}

async fn run_all(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let bin = crate::files::node_bin(args.node_bin.as_ref())?;
    let sdk = std::env::current_dir()?.join(SDK);
    anyhow::ensure!(
        sdk.join("oprc").is_dir(),
        "run from the repository root ({SDK} not found)"
    );
    let work = tempfile::Builder::new()
        .prefix("oprc-bench-dataflow")
        .tempdir()?;
    let script = work.path().join("dataflow.py");
    std::fs::write(&script, SCRIPT)?;
    let package = scenario::package(
        &script,
        &args.python,
        &sdk,
        args.sleep_ms,
        args.workers,
        args.worker_concurrency,
    );
    let log = work.path().join("node.log");
    let node = External::spawn(
        "dataflow",
        &bin,
        &package,
        &[],
        &[("RUST_LOG", "warn")],
        Some(&log),
    )
    .await
    .with_context(|| format!("failed to start the node (log: {})", log.display()))?;
    let result = measure(&args, &node).await;
    node.stop().await;
    if result.is_err() {
        let kept = work.keep();
        eprintln!("oprc-bench dataflow: logs kept in {}", kept.display());
    }
    result?;
    eprintln!(
        "oprc-bench dataflow: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn measure(args: &Args, node: &External) -> anyhow::Result<()> {
    let max_c = args.concurrency.iter().copied().max().unwrap_or(1);
    let ctx = Ctx {
        // Enough kept connections for every call in flight (the parallel
        // fan-out has 8 per client), so no cell opens new ones.
        http: Http::new(max_c * (scenario::BRANCHES + 1)),
        addr: node.addr,
        sleep_ms: args.sleep_ms,
        keys: Default::default(),
    };
    for i in 0..max_c {
        let body = serde_json::json!({"id": scenario::object(i), "data": {}}).to_string();
        let uri = format!(
            "http://{}/api/classes/{}/invokes/new",
            node.addr,
            scenario::CLASS
        )
        .parse()?;
        ctx.http
            .ok(Req::post(uri, Bytes::from(body)))
            .await
            .with_context(|| format!("failed to create object o{i}"))?;
    }
    // The workers (started eagerly: minInstances) take calls before
    // anything is measured or called idle; then they settle.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !workers_ready(&ctx).await {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the function's workers never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = cell::idle(node, Duration::from_secs(4)).await;
    eprintln!(
        "oprc-bench dataflow: idle CPU: node {:.1} ms/s, workers {:.1} ms/s",
        idle[0] * 1000.0 / TICKS_PER_SEC,
        idle[1] * 1000.0 / TICKS_PER_SEC,
    );
    let scenarios: Vec<Scenario> = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        Scenario::ALL
            .into_iter()
            .filter(|s| args.scenarios.contains(s))
            .collect()
    };
    let o = cell::Options {
        duration: Duration::from_secs_f64(args.duration_secs),
        min_ops: args.min_ops,
        warmup: args.warmup,
    };
    eprintln!(
        "oprc-bench dataflow: concurrency {:?}, {} rounds of {} s (at least {} ops per client) per cell, \
         branches sleep {} ms, {} workers × {} calls",
        args.concurrency,
        args.rounds,
        args.duration_secs,
        args.min_ops,
        args.sleep_ms,
        args.workers,
        args.worker_concurrency
    );
    let mut rows = Vec::new();
    for round in 0..args.rounds.max(1) {
        for &c in &args.concurrency {
            // A different scenario goes first in each round.
            let n = scenarios.len();
            for k in 0..n {
                let s = scenarios[(k + round) % n];
                let m = cell::run(&ctx, node, idle, s, c, &o).await?;
                eprintln!(
                    "  round {} c={c} {:<15} {:>7.0} ops/s  p50 {:>8.3} ms  p99 {:>8.3} ms  ops {:>5}  errors {}  cpu/op node {:.3} workers {:.3} ms  fsyncs/op {:.2}",
                    round + 1,
                    s.name(),
                    m.ops_per_s,
                    m.p50_ms,
                    m.p99_ms,
                    m.ops,
                    m.errors,
                    m.cpu_ms.0,
                    m.cpu_ms.1,
                    m.commits,
                );
                rows.push(report::Row {
                    round,
                    c,
                    scenario: s,
                    m,
                });
            }
        }
    }
    report::print(&rows, &args.concurrency, args.sleep_ms);
    Ok(())
}

/// Whether a `sleep 0` answers: the function's workers take calls.
async fn workers_ready(ctx: &Ctx) -> bool {
    let Ok(uri) = format!(
        "http://{}/api/classes/{}/objects/{}/invokes/sleep?ms=0",
        ctx.addr,
        scenario::CLASS,
        scenario::object(0)
    )
    .parse() else {
        return false;
    };
    ctx.http.ok(Req::post(uri, Bytes::new())).await.is_ok()
}
