//! One cell of the PostgreSQL benchmark: `c` clients calling `fill` on one
//! target in a closed loop, each on its own object, for a duration; every
//! answer checked. Each cell opens its own connections (during the
//! untimed warm-up calls), so the FaaS workers share out a cell's
//! connections afresh, as the node's engine shares out calls.
//!
//! CPU is read from `/proc` before and after the timed calls, for the
//! node process, the function's processes and the PostgreSQL processes
//! that serve the target's database (with the server's own: the WAL
//! writer, the checkpointer; cells run one at a time), minus what each
//! spends when idle (measured before the cells) over the cell's time.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::db::{self, Server, Ticks};
use super::targets::{StoreCounters, Target};
use crate::external::TICKS_PER_SEC;
use crate::files::http::Http;
use crate::tally::{Tally, total};

/// How each cell runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub duration: Duration,
    /// Untimed calls per client first.
    pub warmup: u64,
    /// Pairs per `fill`.
    pub pairs: usize,
}

/// What one cell measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Timed calls that succeeded.
    pub calls: u64,
    /// Calls that failed (status, or an unexpected answer), warm-up
    /// included.
    pub errors: u64,
    /// CPU milliseconds per call: node, function, PostgreSQL (`None` for
    /// a target without a database).
    pub cpu_ms: (f64, f64, Option<f64>),
    /// CPU milliseconds per call of this process (the load generator),
    /// and of the whole machine (every core, every process).
    pub client_cpu_ms: f64,
    pub machine_cpu_ms: f64,
    /// Share of the machine's CPU time that was busy during the cell,
    /// and the share taken by everything but the target and the load
    /// generator (other tenants; also the kernel's softirq time).
    pub machine_busy: f64,
    pub others: f64,
    /// Times the cell ran before this measurement and was thrown away
    /// as disturbed (see `--max-others`).
    pub reruns: u32,
    /// Storage transactions per call and write requests per transaction
    /// (the group commit), and the mean PostgreSQL transaction in ms: a
    /// node's, from its `/metrics`.
    pub commits_per_call: Option<f64>,
    pub writes_per_commit: Option<f64>,
    pub txn_ms: Option<f64>,
    /// The first few failures.
    pub failures: Vec<String>,
}

/// CPU ticks per second of the node, the function and PostgreSQL, idle.
pub type Idle = [f64; 3];

struct Reading {
    cpu: [u64; 2],
    pg: Option<Ticks>,
    client: u64,
    /// The machine's busy and total ticks (`/proc/stat`).
    machine: (u64, u64),
}

/// Busy and total ticks of all cores so far: user, nice, system, irq,
/// softirq and steal are busy; idle and iowait are not.
fn machine_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    (busy, busy + at(3) + at(4))
}

async fn read(target: &Target, server: &Server) -> anyhow::Result<Reading> {
    let pg = match &target.db {
        Some(db) => Some(server.ticks(db).await?),
        None => None,
    };
    Ok(Reading {
        cpu: target.cpu(),
        pg,
        client: crate::external::ticks(std::process::id()).unwrap_or(0),
        machine: machine_ticks(),
    })
}

/// Ticks spent between two readings: node, function, PostgreSQL.
fn spent(before: &Reading, after: &Reading) -> [u64; 3] {
    let pg = match (&before.pg, &after.pg) {
        (Some(b), Some(a)) => db::spent(b, a),
        _ => 0,
    };
    [
        after.cpu[0].saturating_sub(before.cpu[0]),
        after.cpu[1].saturating_sub(before.cpu[1]),
        pg,
    ]
}

/// Measures [`Idle`] of each target over `over`, all at once.
pub async fn idle(
    targets: &[Target],
    server: &Server,
    over: Duration,
) -> anyhow::Result<Vec<Idle>> {
    let mut before = Vec::new();
    for t in targets {
        before.push(read(t, server).await?);
    }
    tokio::time::sleep(over).await;
    let mut rates = Vec::new();
    for (t, b) in targets.iter().zip(&before) {
        let a = read(t, server).await?;
        rates.push(spent(b, &a).map(|x| x as f64 / over.as_secs_f64()));
    }
    Ok(rates)
}

/// One call; `Err` with what went wrong.
async fn call(http: &Http, target: &Target, client: usize, pairs: usize) -> Result<(), String> {
    match http.send(target.call(client, pairs)).await {
        Ok((status, body)) => target.check(status, &body, pairs),
        Err(e) => Err(format!("no answer: {e:#}")),
    }
}

/// Runs one cell of `c` clients on `target`.
pub async fn run(
    target: &Target,
    server: &Server,
    idle: Idle,
    c: usize,
    o: &Options,
) -> anyhow::Result<Measured> {
    let http = Http::new(c);
    let mut clients = (0..c)
        .map(|_| Tally::new())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let pairs = o.pairs;
    join_all(clients.iter_mut().enumerate().map(|(i, st)| {
        let http = &http;
        async move {
            for _ in 0..o.warmup {
                if let Err(e) = call(http, target, i, pairs).await {
                    st.errors += 1;
                    st.note(format!("warm-up: {e}"));
                }
            }
        }
    }))
    .await;
    let store_before = target.store_counters(&http).await?;
    let before = read(target, server).await?;
    let start = Instant::now();
    let deadline = start + o.duration;
    join_all(clients.iter_mut().enumerate().map(|(i, st)| {
        let http = &http;
        async move {
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = call(http, target, i, pairs).await;
                st.observe(t, r);
            }
        }
    }))
    .await;
    let elapsed = start.elapsed();
    let after = read(target, server).await?;
    let store_after = target.store_counters(&http).await?;
    let t = total(clients)?;
    let all = t.hist;
    let mut m = Measured {
        calls: t.done,
        errors: t.errors,
        failures: t.failures,
        ..Measured::default()
    };
    let per_call = m.calls.max(1) as f64;
    let ticks = spent(&before, &after);
    let cpu = |k: usize| {
        let t = (ticks[k] as f64 - idle[k] * elapsed.as_secs_f64()).max(0.0);
        t * 1000.0 / TICKS_PER_SEC / per_call
    };
    m.cpu_ms = (cpu(0), cpu(1), target.db.as_ref().map(|_| cpu(2)));
    let ms = |ticks: u64| ticks as f64 * 1000.0 / TICKS_PER_SEC / per_call;
    m.client_cpu_ms = ms(after.client.saturating_sub(before.client));
    let busy = after.machine.0.saturating_sub(before.machine.0);
    let total = after.machine.1.saturating_sub(before.machine.1);
    m.machine_cpu_ms = ms(busy);
    m.machine_busy = busy as f64 / total.max(1) as f64;
    let ours = ticks.iter().sum::<u64>() + after.client.saturating_sub(before.client);
    m.others = busy.saturating_sub(ours) as f64 / total.max(1) as f64;
    if let (Some(b), Some(a)) = (store_before, store_after) {
        let d = StoreCounters {
            commits: a.commits - b.commits,
            writes: a.writes - b.writes,
            txn_seconds: a.txn_seconds - b.txn_seconds,
        };
        m.commits_per_call = Some(d.commits / per_call);
        m.writes_per_commit = (d.commits > 0.0).then(|| d.writes / d.commits);
        m.txn_ms =
            (target.kind.on_pg() && d.commits > 0.0).then(|| d.txn_seconds * 1000.0 / d.commits);
    }
    m.rps = m.calls as f64 / elapsed.as_secs_f64();
    m.p50_ms = all.value_at_quantile(0.5) as f64 / 1000.0;
    m.p99_ms = all.value_at_quantile(0.99) as f64 / 1000.0;
    Ok(m)
}

/// The WAL probe: a cell of `c` clients, with PostgreSQL's statistics
/// settled before and after (backends report their WAL syncs when idle,
/// up to 10 s late): the server's WAL syncs per call.
pub async fn wal_probe(
    target: &Target,
    server: &Server,
    c: usize,
    o: &Options,
    settle: Duration,
) -> anyhow::Result<(Measured, f64)> {
    tokio::time::sleep(settle).await;
    let before = server.wal_syncs().await?;
    let m = run(target, server, [0.0; 3], c, o).await?;
    tokio::time::sleep(settle).await;
    let after = server.wal_syncs().await?;
    // The warm-up calls synced too.
    let calls = m.calls + c as u64 * o.warmup;
    Ok((m, after.saturating_sub(before) as f64 / calls.max(1) as f64))
}
