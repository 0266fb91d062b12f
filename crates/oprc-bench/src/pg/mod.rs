//! `oprc-bench pg`: the JSON update on a shared PostgreSQL (issue 8). One
//! run, three targets running the same function, `fill` of
//! `examples/record/record.py` (replace an object's data with 10 random
//! pairs):
//!
//! - `embedded`: a node (an `oprc` binary) on its embedded store, durable
//!   commits, as shipped;
//! - `node-pg`: the same binary with `--state postgres://...` on a fresh
//!   database (the node's group commit: concurrent calls' writes in one
//!   transaction);
//! - `faas`: plain FaaS, the baseline: the same update in a Python HTTP
//!   service (`functions/plain_pg.py`) that keeps each object as a row of
//!   its own fresh database, one `BEGIN; SELECT ... FOR UPDATE; UPDATE;
//!   COMMIT` per call on a pooled connection.
//!
//! Both nodes run the function on `--workers` Python workers (the SDK's
//! standard-library server); the FaaS service runs as many processes with
//! the same kind of server. Each target gets one object per client; after
//! a warm-up, rounds run every concurrency level with the targets of a
//! level next to each other (the one going first rotating), closed loop.
//! The report shows medians over rounds of throughput, p50 and p99, CPU
//! per call of the node, of the function's processes and of PostgreSQL
//! (see `cell.rs`), the node's group commit from its `/metrics`, and the
//! ratios of each node against plain FaaS. The machine is shared: a cell
//! during which other processes took more than `--max-others` of the CPU
//! is run again (twice at most), and the report counts those re-runs.
//! `--wal-probe` then measures PostgreSQL's WAL syncs per call of the two
//! PostgreSQL targets (see [`cell::wal_probe`]). The databases are
//! dropped at the end.

mod cell;
mod db;
mod report;
mod targets;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::files::http::Http;
use targets::{Kind, Setup, Target};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Clients in flight, each on its own object.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    concurrency: Vec<usize>,
    /// The targets, interleaved in every round.
    #[arg(long, value_delimiter = ',', default_value = "embedded,node-pg,faas")]
    targets: Vec<Kind>,
    /// Rounds of every cell; the report shows medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of timed calls per cell and round.
    #[arg(long, default_value_t = 5.0)]
    duration_secs: f64,
    /// Untimed calls per client before each cell.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Seconds of calls at the most clients on each target before
    /// anything is measured.
    #[arg(long, default_value_t = 3.0)]
    warmup_secs: f64,
    /// Pairs each `fill` writes (keys 10 chars, values 40).
    #[arg(long, default_value_t = 10)]
    pairs: usize,
    /// Python workers of each node's function, and processes of the plain
    /// FaaS service.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// PostgreSQL connections of each plain FaaS process's pool.
    #[arg(long, default_value_t = 32)]
    faas_pool: u32,
    /// The PostgreSQL server, as an admin URL (its database is only used
    /// to create and drop the targets').
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// A cell during which other processes took more than this share of
    /// the machine's CPU is run again (twice at most; the last run is
    /// kept and the report counts the re-runs).
    #[arg(long, default_value_t = 0.10)]
    max_others: f64,
    /// Also measure PostgreSQL's WAL syncs per call (waits for the
    /// server's statistics around each probe: 20 s per cell).
    #[arg(long)]
    wal_probe: bool,
    /// The `oprc` binary [default: the one next to this binary].
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// The Python that runs the functions (the FaaS service needs psycopg 3
    /// and psycopg_pool).
    #[arg(long, default_value = "python3")]
    python: String,
}

/// Runs the benchmark; on Ctrl-C or SIGTERM everything it started is
/// stopped (the measurement's future is dropped, and with it every
/// process) and its databases are dropped.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let bin = crate::files::node_bin(args.node_bin.as_ref())?;
    let server = db::Server::connect(&args.postgres).await?;
    let tag = std::process::id();
    let dbs = [
        (Kind::NodePg, format!("oprc_bench_node_{tag}")),
        (Kind::Faas, format!("oprc_bench_faas_{tag}")),
    ];
    let work = tempfile::Builder::new().prefix("oprc-bench-pg").tempdir()?;
    let setup = Setup {
        bin,
        python: args.python.clone(),
        workers: args.workers,
        faas_pool: args.faas_pool,
        dir: work.path().to_owned(),
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let result = tokio::select! {
        r = run_targets(&args, &server, &setup, &dbs) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; stopped everything")),
        _ = term.recv() => Err(anyhow::anyhow!("terminated; stopped everything")),
    };
    for (_, db) in &dbs {
        if let Err(e) = server.drop_database(db).await {
            eprintln!("oprc-bench pg: {e:#}");
        }
    }
    if result.is_err() {
        let kept = work.keep();
        eprintln!("oprc-bench pg: logs kept in {}", kept.display());
    }
    result?;
    eprintln!(
        "oprc-bench pg: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn run_targets(
    args: &Args,
    server: &db::Server,
    setup: &Setup,
    dbs: &[(Kind, String)],
) -> anyhow::Result<()> {
    let db_of = |k: Kind| {
        dbs.iter()
            .find(|(kind, _)| *kind == k)
            .map(|(_, db)| db.as_str())
            .expect("a database per PostgreSQL target")
    };
    let mut targets = Vec::new();
    let mut started = Ok(());
    for &kind in &args.targets {
        let t = async {
            if kind.on_pg() {
                server.create(db_of(kind)).await?;
            }
            match kind {
                Kind::Embedded => Target::node(setup, None).await,
                Kind::NodePg => {
                    let db = db_of(kind);
                    Target::node(setup, Some((db, server.url(db)?))).await
                }
                Kind::Faas => {
                    let db = db_of(kind);
                    Target::faas(setup, db, &server.url(db)?).await
                }
            }
        }
        .await;
        match t {
            Ok(t) => targets.push(t),
            Err(e) => {
                started = Err(e);
                break;
            }
        }
    }
    let result = match started {
        Ok(()) => measure(args, server, &targets).await,
        Err(e) => Err(e),
    };
    for t in targets {
        t.stop().await;
    }
    result
}

/// Calls `fill` on object 0 until it succeeds (the workers are up).
async fn first_call(http: &Http, t: &Target, pairs: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = match http.send(t.call(0, pairs)).await {
            Ok((status, body)) => t.check(status, &body, pairs),
            Err(e) => Err(format!("{e:#}")),
        };
        match last {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                anyhow::bail!("{} never answered a call: {e}", t.kind.name())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn measure(args: &Args, server: &db::Server, targets: &[Target]) -> anyhow::Result<()> {
    anyhow::ensure!(!targets.is_empty(), "no targets");
    let max_c = args.concurrency.iter().copied().max().unwrap_or(1);
    let http = Http::new(4);
    for t in targets {
        // The same data in every target.
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for i in 0..max_c {
            let data = crate::setup::random_pairs(args.pairs, &mut seed);
            t.create(&http, i, data).await?;
        }
        first_call(&http, t, args.pairs).await?;
    }
    let o = cell::Options {
        duration: Duration::from_secs_f64(args.warmup_secs),
        warmup: args.warmup,
        pairs: args.pairs,
    };
    for t in targets {
        let m = cell::run(t, server, [0.0; 3], max_c, &o).await?;
        eprintln!(
            "oprc-bench pg: warm-up of {}: {:.0} req/s at {max_c} clients, {} errors",
            t.kind.name(),
            m.rps,
            m.errors
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = cell::idle(targets, server, Duration::from_secs(4)).await?;
    for (t, i) in targets.iter().zip(&idle) {
        eprintln!(
            "oprc-bench pg: idle CPU of {}: node {:.1} ms/s, function {:.1} ms/s, postgres {:.1} ms/s",
            t.kind.name(),
            i[0] * 1000.0 / crate::external::TICKS_PER_SEC,
            i[1] * 1000.0 / crate::external::TICKS_PER_SEC,
            i[2] * 1000.0 / crate::external::TICKS_PER_SEC,
        );
    }
    eprintln!(
        "oprc-bench pg: {}; concurrency {:?}, {} rounds of {} s per cell, {} pairs, {} workers, \
         FaaS pool {} per worker",
        server.describe().await?,
        args.concurrency,
        args.rounds,
        args.duration_secs,
        args.pairs,
        args.workers,
        args.faas_pool,
    );
    let o = cell::Options {
        duration: Duration::from_secs_f64(args.duration_secs),
        ..o
    };
    let mut rows = Vec::new();
    for round in 0..args.rounds.max(1) {
        for &c in &args.concurrency {
            // A different target goes first in each round.
            let n = targets.len();
            for k in 0..n {
                let i = (k + round) % n;
                let t = &targets[i];
                let mut m = cell::run(t, server, idle[i], c, &o).await?;
                while m.others > args.max_others && m.reruns < 2 {
                    eprintln!(
                        "  round {} c={c:<2} {:<8} disturbed: others took {:.0} % of the CPU; again",
                        round + 1,
                        t.kind.name(),
                        m.others * 100.0
                    );
                    let reruns = m.reruns + 1;
                    m = cell::run(t, server, idle[i], c, &o).await?;
                    m.reruns = reruns;
                }
                eprintln!(
                    "  round {} c={c:<2} {:<8} {:>6.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}  \
                     cpu/call node {:.3} fn {:.3} pg {} ms  writes/commit {}  machine busy {:.0} %, others {:.0} %",
                    round + 1,
                    t.kind.name(),
                    m.rps,
                    m.p50_ms,
                    m.p99_ms,
                    m.errors,
                    m.cpu_ms.0,
                    m.cpu_ms.1,
                    m.cpu_ms.2.map_or("-".to_owned(), |v| format!("{v:.3}")),
                    m.writes_per_commit
                        .map_or("-".to_owned(), |v| format!("{v:.2}")),
                    m.machine_busy * 100.0,
                    m.others * 100.0,
                );
                rows.push(report::Row {
                    round,
                    c,
                    kind: t.kind,
                    m,
                });
            }
        }
    }
    report::print(&rows, &args.concurrency, &args.targets);
    if args.wal_probe {
        let mut probes = Vec::new();
        for &c in &args.concurrency {
            for t in targets.iter().filter(|t| t.kind.on_pg()) {
                let (m, per_call) = cell::wal_probe(t, server, c, &o, Duration::from_secs(11))
                    .await
                    .context("the WAL probe failed")?;
                eprintln!(
                    "  probe c={c:<2} {:<8} {:>6.0} req/s  WAL syncs/call {per_call:.3}",
                    t.kind.name(),
                    m.rps
                );
                probes.push(report::Probe {
                    c,
                    kind: t.kind,
                    m,
                    wal_syncs_per_call: per_call,
                });
            }
        }
        report::print_probes(&probes);
    }
    Ok(())
}
