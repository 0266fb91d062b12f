//! One cell of the dataflow benchmark: `c` clients, each on its own
//! object, running one scenario's operations in a closed loop for a
//! duration (and at least `min_ops` each).
//!
//! CPU is read from `/proc` before and after the timed part, for the node
//! process and for its function workers; what they spend when nothing
//! calls them (measured before the cells) is subtracted for the time the
//! cell took, so that the CPU per operation is what the operations cost.
//! The node's storage counters (`/metrics`) give the transactions (one
//! fsync each) and the write requests per operation.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::scenario::{Ctx, Scenario};
use crate::external::{External, TICKS_PER_SEC};
use crate::files::http::Req;
use crate::tally::{Tally, total};

#[derive(Debug, Clone)]
pub struct Options {
    pub duration: Duration,
    pub min_ops: u64,
    /// Untimed operations per client before the timed ones.
    pub warmup: u64,
}

/// What one cell measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Operations per second, all clients together.
    pub ops_per_s: f64,
    /// Timed operations that succeeded.
    pub ops: u64,
    pub errors: u64,
    /// CPU milliseconds per operation: the node process, its workers.
    pub cpu_ms: (f64, f64),
    /// Storage transactions (fsyncs) and write requests per operation.
    pub commits: f64,
    pub writes: f64,
    /// The first few failures.
    pub failures: Vec<String>,
}

/// CPU ticks per second of the node and of its workers when idle.
pub type Idle = [f64; 2];

fn ticks(node: &External) -> [u64; 2] {
    let c = node.cpu();
    [c.node, c.children]
}

/// Measures [`Idle`] over `over`.
pub async fn idle(node: &External, over: Duration) -> Idle {
    let before = ticks(node);
    tokio::time::sleep(over).await;
    let after = ticks(node);
    [0, 1].map(|k| after[k].saturating_sub(before[k]) as f64 / over.as_secs_f64())
}

/// The node's storage counters: transactions, write requests.
async fn store_counters(ctx: &Ctx) -> anyhow::Result<[u64; 2]> {
    let uri = format!("http://{}/metrics", ctx.addr).parse()?;
    let text = ctx.http.ok(Req::get(uri)).await?;
    let text = String::from_utf8_lossy(&text);
    let read = |name: &str| -> anyhow::Result<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("/metrics has no {name}"))
    };
    Ok([
        read("oprc_store_commits_total")?,
        read("oprc_store_write_requests_total")?,
    ])
}

pub async fn run(
    ctx: &Ctx,
    node: &External,
    idle: Idle,
    scenario: Scenario,
    c: usize,
    o: &Options,
) -> anyhow::Result<Measured> {
    let mut clients = (0..c)
        .map(|_| Tally::new())
        .collect::<anyhow::Result<Vec<_>>>()?;
    join_all(clients.iter_mut().enumerate().map(|(i, st)| async move {
        for _ in 0..o.warmup {
            if let Err(e) = ctx.op(scenario, i).await {
                st.note(format!("warm-up: {e}"));
            }
        }
    }))
    .await;
    let store_before = store_counters(ctx).await?;
    let cpu_before = ticks(node);
    let start = Instant::now();
    let deadline = start + o.duration;
    join_all(clients.iter_mut().enumerate().map(|(i, st)| async move {
        let mut n = 0u64;
        while Instant::now() < deadline || n < o.min_ops {
            let t = Instant::now();
            let r = ctx.op(scenario, i).await;
            n += 1;
            st.observe(t, r);
        }
    }))
    .await;
    let elapsed = start.elapsed();
    let cpu_after = ticks(node);
    let store_after = store_counters(ctx).await?;
    let t = total(clients)?;
    let all = t.hist;
    let mut m = Measured {
        ops: t.done,
        errors: t.errors,
        failures: t.failures,
        ..Measured::default()
    };
    let per_op = m.ops.max(1) as f64;
    let cpu = |k: usize| {
        let spent = cpu_after[k].saturating_sub(cpu_before[k]) as f64;
        let spent = (spent - idle[k] * elapsed.as_secs_f64()).max(0.0);
        spent * 1000.0 / TICKS_PER_SEC / per_op
    };
    m.cpu_ms = (cpu(0), cpu(1));
    // The /metrics reads write nothing, nor does the idle node (the
    // `sleep` cells, which commit nothing, show 0).
    m.commits = store_after[0].saturating_sub(store_before[0]) as f64 / per_op;
    m.writes = store_after[1].saturating_sub(store_before[1]) as f64 / per_op;
    m.ops_per_s = m.ops as f64 / elapsed.as_secs_f64();
    m.p50_ms = all.value_at_quantile(0.5) as f64 / 1000.0;
    m.p99_ms = all.value_at_quantile(0.99) as f64 / 1000.0;
    Ok(m)
}
