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

mod load;
mod setup;

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
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let max_clients = args.concurrency.iter().copied().max().unwrap_or(1);
    let env = setup::Env::start(max_clients, args.pairs, args.with_nosync).await?;
    let duration = Duration::from_secs(args.duration_secs);
    eprintln!(
        "oprc-bench: {} s per run, concurrency {:?}, {} pairs",
        args.duration_secs, args.concurrency, args.pairs
    );
    let mut rows = Vec::new();
    let env_ref = &env;
    for &c in &args.concurrency {
        let env = env_ref;
        let mut scenarios: Vec<(&str, MakeRequest)> = vec![
            ("direct", Box::new(|_, _| env.direct_task())),
            (
                "node",
                Box::new(|client, _| env.node_fill(&env.node, client)),
            ),
            // Every client on one object: localized locking under contention.
            ("node-hot", Box::new(|_, _| env.node_fill(&env.node, 0))),
            ("noop", Box::new(|_, _| env.noop())),
            (
                "get",
                Box::new(|client, _| env.builtin_get(&env.node, client)),
            ),
            (
                "update",
                Box::new(|client, n| env.builtin_update(&env.node, client, n)),
            ),
        ];
        if let Some(nosync) = &env.nosync {
            scenarios.push((
                "node-nosync",
                Box::new(move |client, _| env.node_fill(nosync, client)),
            ));
        }
        for (name, make) in &scenarios {
            // Warm up (connections, workers, caches), then measure.
            load::run(c, Duration::from_millis(300), make.as_ref()).await?;
            let s = load::run(c, duration, make.as_ref()).await?;
            eprintln!(
                "  c={c:<3} {name:<12} {:>8.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  errors {}",
                s.rps, s.p50_ms, s.p99_ms, s.errors
            );
            rows.push((c, name.to_string(), s));
        }
    }
    print_report(&args, &rows);
    env.stop().await;
    Ok(())
}

fn find<'a>(rows: &'a [(usize, String, Summary)], c: usize, name: &str) -> Option<&'a Summary> {
    rows.iter()
        .find(|(rc, n, _)| *rc == c && n == name)
        .map(|(_, _, s)| s)
}

fn print_report(args: &Args, rows: &[(usize, String, Summary)]) {
    println!("| concurrency | scenario | req/s | p50 ms | p99 ms | errors |");
    println!("|---:|---|---:|---:|---:|---:|");
    for (c, name, s) in rows {
        println!(
            "| {c} | {name} | {:.0} | {:.3} | {:.3} | {} |",
            s.rps, s.p50_ms, s.p99_ms, s.errors
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
