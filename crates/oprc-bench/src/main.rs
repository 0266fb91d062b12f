//! `oprc-bench`: measures what the platform adds, side by side in one run.
//!
//! - `direct`: the JSON-update function (`examples/record/record.py`,
//!   `fill`) called directly with a task, as the node would call it.
//! - `node`: the same function invoked through a node (`POST .../invokes/fill`),
//!   each client on its own object, with durable (fsync'd) commits.
//! - `node-hot`: the same, every client on one object (calls queue in its
//!   inbox; commits are pipelined and merged).
//! - `noop`: a no-op HTTP handler in this process.
//! - `get` / `update`: the builtins through the node.
//!
//! Every scenario runs at each concurrency level, interleaved, and is
//! reported as throughput and p50/p99 latency with ratios against its
//! baseline. Run from the repository root:
//! `cargo run --release -p oprc-bench -- --duration-secs 3`.
//!
//! `--node-bin LABEL=PATH` (repeatable) adds nodes started from `oprc`
//! binaries (say, builds of two commits): the node scenarios run against
//! each, interleaved, with the CPU time of each node process and of its
//! function workers per call.
//!
//! `oprc-bench files` is the file benchmark (issue 6): `concat` on files of
//! 10 KiB to 16 MiB on an S3 server, through a node with presigned URLs,
//! through a relaying node and as plain FaaS (see `files/mod.rs`).
//!
//! `oprc-bench dataflow` is the macro benchmark (issue 7): chains and a
//! fan-out as macro calls against the same calls made by a client (see
//! `dataflow/mod.rs`).
//!
//! `oprc-bench pg` is the PostgreSQL benchmark (issue 8): the JSON update
//! through a node on its embedded store, through the same node on
//! PostgreSQL, and as plain FaaS keeping its state in PostgreSQL (see
//! `pg/mod.rs`).

mod dataflow;
mod external;
mod files;
mod load;
mod pg;
mod setup;
mod tally;

use std::time::Duration;

use clap::Parser;

// The same allocator as the `oprc` binary, so the node measured here is the
// node users run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use crate::load::{Request, Summary};

/// Builds the request of client `client`, `n`-th of its set.
type MakeRequest<'a> = Box<dyn Fn(usize, u64) -> Request + Sync + 'a>;

#[derive(Parser, Debug)]
#[command(about = "Side-by-side benchmark of an Oparaca node")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Seconds of measurement per scenario and concurrency level.
    #[arg(long, default_value_t = 3)]
    duration_secs: u64,
    /// Concurrency levels (clients in flight).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    concurrency: Vec<usize>,
    /// Key-value pairs in the JSON state (keys 10 chars, values 40).
    #[arg(long, default_value_t = 10)]
    pairs: usize,
    /// Also run the node with write-behind storage (`--no-sync`).
    #[arg(long)]
    with_nosync: bool,
    /// A node from an `oprc` binary to measure too, as `LABEL=PATH`
    /// (repeatable).
    #[arg(long = "node-bin")]
    node_bins: Vec<String>,
    /// Only the scenarios on `--node-bin` nodes.
    #[arg(long)]
    only_bins: bool,
    /// Only these scenarios (names before `@`, e.g. `update,get`).
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Rounds of every scenario (interleaved); the report shows medians.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Files on S3: redirect, relay and plain FaaS side by side (issue 6).
    Files(files::Args),
    /// Macro chains and fan-out against client-side calls (issue 7).
    Dataflow(dataflow::Args),
    /// The node on embedded storage and on PostgreSQL against plain FaaS
    /// on PostgreSQL (issue 8).
    Pg(pg::Args),
}

/// What one scenario measured, and where.
struct Row {
    c: usize,
    name: String,
    summary: Summary,
    /// CPU milliseconds per call of the node process and of its workers,
    /// for `--node-bin` nodes.
    cpu_ms: Option<(f64, f64)>,
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.command.take() {
        Some(Command::Files(files)) => rt.block_on(files::run(files)),
        Some(Command::Dataflow(dataflow)) => rt.block_on(dataflow::run(dataflow)),
        Some(Command::Pg(pg)) => rt.block_on(pg::run(pg)),
        None => rt.block_on(run(args)),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let max_clients = args.concurrency.iter().copied().max().unwrap_or(1);
    let env = setup::Env::start(max_clients, args.pairs, args.with_nosync).await?;
    let mut externals = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1d;
    for spec in &args.node_bins {
        let node = external::External::start(spec, &setup::package()).await?;
        setup::create_objects(node.addr, max_clients, args.pairs, &mut seed).await?;
        externals.push(node);
    }
    let duration = Duration::from_secs(args.duration_secs);
    eprintln!(
        "oprc-bench: {} s per run, concurrency {:?}, {} pairs",
        args.duration_secs, args.concurrency, args.pairs
    );
    let mut rows: Vec<Row> = Vec::new();
    let env_ref = &env;
    for round in 0..args.rounds.max(1) {
        if args.rounds > 1 {
            eprintln!("round {}", round + 1);
        }
        for &c in &args.concurrency {
            let env = env_ref;
            let node = env.node.addr;
            let mut scenarios: Vec<(String, MakeRequest, Option<&external::External>)> = Vec::new();
            if !args.only_bins {
                scenarios.extend([
                    (
                        "direct".to_owned(),
                        Box::new(|_, _| env.direct_task()) as MakeRequest,
                        None,
                    ),
                    (
                        "node".to_owned(),
                        Box::new(move |client, _| env.node_fill(node, client)),
                        None,
                    ),
                    // Every client on one object: localized locking under contention.
                    (
                        "node-hot".to_owned(),
                        Box::new(move |_, _| env.node_fill(node, 0)),
                        None,
                    ),
                    ("noop".to_owned(), Box::new(|_, _| env.noop()), None),
                    (
                        "get".to_owned(),
                        Box::new(move |client, _| env.builtin_get(node, client)),
                        None,
                    ),
                    (
                        "update".to_owned(),
                        Box::new(move |client, n| env.builtin_update(node, client, n)),
                        None,
                    ),
                ]);
                if let Some(nosync) = &env.nosync {
                    let addr = nosync.addr;
                    scenarios.push((
                        "node-nosync".to_owned(),
                        Box::new(move |client, _| env.node_fill(addr, client)),
                        None,
                    ));
                }
            }
            // Interleaved per scenario: each binary's run next to the others'.
            type Make = fn(&setup::Env, std::net::SocketAddr, usize, u64) -> load::Request;
            let kinds: [(&str, Make); 4] = [
                ("node", |e, a, client, _| e.node_fill(a, client)),
                ("node-hot", |e, a, _, _| e.node_fill(a, 0)),
                ("get", |e, a, client, _| e.builtin_get(a, client)),
                ("update", |e, a, client, n| e.builtin_update(a, client, n)),
            ];
            for (kind, make) in kinds {
                for ext in &externals {
                    let addr = ext.addr;
                    scenarios.push((
                        format!("{kind}@{}", ext.label),
                        Box::new(move |client, n| make(env, addr, client, n)),
                        Some(ext),
                    ));
                }
            }
            for (name, make, ext) in &scenarios {
                let base = name.split('@').next().unwrap_or(name);
                if !args.scenarios.is_empty() && !args.scenarios.iter().any(|s| s == base) {
                    continue;
                }
                // Warm up (connections, workers, caches), then measure.
                load::run(c, Duration::from_millis(300), make.as_ref()).await?;
                let before = ext.map(|e| e.cpu());
                let s = load::run(c, duration, make.as_ref()).await?;
                let cpu_ms = ext.zip(before).map(|(e, before)| {
                    let after = e.cpu();
                    let calls = (s.rps * duration.as_secs_f64()).max(1.0);
                    let per_call =
                        |ticks: u64| ticks as f64 * 1000.0 / external::TICKS_PER_SEC / calls;
                    (
                        per_call(after.node.saturating_sub(before.node)),
                        per_call(after.children.saturating_sub(before.children)),
                    )
                });
                eprintln!(
                    "  c={c:<3} {name:<16} {:>8.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  errors {}{}",
                    s.rps,
                    s.p50_ms,
                    s.p99_ms,
                    s.errors,
                    cpu_ms.map_or(String::new(), |(n, w)| format!(
                        "  cpu/call node {n:.3} ms, workers {w:.3} ms"
                    )),
                );
                rows.push(Row {
                    c,
                    name: name.clone(),
                    summary: s,
                    cpu_ms,
                });
            }
        }
    }
    let rows = medians(rows);
    print_report(&args, &rows);
    print_comparison(&args, &externals, &rows);
    for e in externals {
        e.stop().await;
    }
    env.stop().await;
    Ok(())
}

/// One row per concurrency and scenario: the median of its rounds for
/// each figure.
fn medians(rows: Vec<Row>) -> Vec<Row> {
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
    let mut keys: Vec<(usize, String)> = Vec::new();
    for r in &rows {
        if !keys.iter().any(|(c, n)| *c == r.c && *n == r.name) {
            keys.push((r.c, r.name.clone()));
        }
    }
    keys.into_iter()
        .map(|(c, name)| {
            let runs: Vec<&Row> = rows.iter().filter(|r| r.c == c && r.name == name).collect();
            let of = |f: fn(&Row) -> f64| median(runs.iter().map(|r| f(r)).collect());
            let cpu_ms = runs[0].cpu_ms.map(|_| {
                (
                    of(|r| r.cpu_ms.map_or(0.0, |x| x.0)),
                    of(|r| r.cpu_ms.map_or(0.0, |x| x.1)),
                )
            });
            Row {
                c,
                summary: Summary {
                    rps: of(|r| r.summary.rps),
                    p50_ms: of(|r| r.summary.p50_ms),
                    p99_ms: of(|r| r.summary.p99_ms),
                    errors: runs.iter().map(|r| r.summary.errors).sum(),
                },
                name,
                cpu_ms,
            }
        })
        .collect()
}

fn find<'a>(rows: &'a [Row], c: usize, name: &str) -> Option<&'a Summary> {
    rows.iter()
        .find(|r| r.c == c && r.name == name)
        .map(|r| &r.summary)
}

fn print_report(args: &Args, rows: &[Row]) {
    println!(
        "| concurrency | scenario | req/s | p50 ms | p99 ms | errors | node CPU ms/call | worker CPU ms/call |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let s = &r.summary;
        let (n, w) = r.cpu_ms.map_or(("".to_owned(), "".to_owned()), |(n, w)| {
            (format!("{n:.3}"), format!("{w:.3}"))
        });
        println!(
            "| {} | {} | {:.0} | {:.3} | {:.3} | {} | {n} | {w} |",
            r.c, r.name, s.rps, s.p50_ms, s.p99_ms, s.errors
        );
    }
    println!();
    println!(
        "| concurrency | node − direct p50 (ms) | node / direct req/s | get / noop req/s | update / noop req/s |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for &c in &args.concurrency {
        let (Some(d), Some(n), Some(noop), Some(g), Some(u)) = (
            find(rows, c, "direct"),
            find(rows, c, "node"),
            find(rows, c, "noop"),
            find(rows, c, "get"),
            find(rows, c, "update"),
        ) else {
            continue;
        };
        println!(
            "| {c} | {:+.3} | {:.2} | {:.2} | {:.2} |",
            n.p50_ms - d.p50_ms,
            n.rps / d.rps,
            g.rps / noop.rps,
            u.rps / noop.rps
        );
    }
}

/// Each `--node-bin` node against the first one, per scenario.
fn print_comparison(args: &Args, externals: &[external::External], rows: &[Row]) {
    let Some((base, others)) = externals.split_first() else {
        return;
    };
    if others.is_empty() {
        return;
    }
    println!();
    println!(
        "| concurrency | scenario | binary | req/s vs {0} | p50 vs {0} | p99 vs {0} | node CPU/call vs {0} |",
        base.label
    );
    println!("|---:|---|---|---:|---:|---:|---:|");
    let row = |c: usize, name: &str| rows.iter().find(|r| r.c == c && r.name == name);
    for &c in &args.concurrency {
        for kind in ["node", "node-hot", "get", "update"] {
            let Some(b) = row(c, &format!("{kind}@{}", base.label)) else {
                continue;
            };
            for o in others {
                let Some(r) = row(c, &format!("{kind}@{}", o.label)) else {
                    continue;
                };
                let cpu = match (r.cpu_ms, b.cpu_ms) {
                    (Some((n, _)), Some((bn, _))) if bn > 0.0 => format!("{:.2}", n / bn),
                    _ => String::new(),
                };
                println!(
                    "| {c} | {kind} | {} | {:.2} | {:.2} | {:.2} | {cpu} |",
                    o.label,
                    r.summary.rps / b.summary.rps,
                    r.summary.p50_ms / b.summary.p50_ms,
                    r.summary.p99_ms / b.summary.p99_ms,
                );
            }
        }
    }
}
