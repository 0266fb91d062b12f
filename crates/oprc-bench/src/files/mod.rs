//! `oprc-bench files`: the file benchmark of issue 6. One run, on the S3
//! backend (`s3s-fs`): `concat` (read the file, append a few bytes, write
//! it back) on files of each size, through a node whose tasks get
//! presigned S3 URLs (`redirect`), through a node that relays the bytes
//! (`relay`, `--blob-relay`), and as plain FaaS (`faas`: the same script
//! reading and writing S3 itself). Rounds interleave the three modes per
//! cell; the report shows medians of p50 and p99 and the ratios against
//! the aims.
//!
//! `--shaped` puts the S3 server in a network namespace behind a veth pair
//! with a `tbf` bandwidth limit on both ends, and every way to it through
//! a delaying TCP proxy (this kernel has no `netem`).

mod cell;
pub(crate) mod http;
mod nodes;
mod proxy;
mod report;
mod s3;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;

use nodes::{Mode, Target};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// File sizes (suffixes k and m are KiB and MiB).
    #[arg(long, value_delimiter = ',', default_value = "10k,100k,1m,4m,16m", value_parser = parse_size)]
    sizes: Vec<usize>,
    /// Clients in flight, each on its own object.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    concurrency: Vec<usize>,
    /// The ways to the file, interleaved in every round.
    #[arg(long, value_delimiter = ',', default_value = "redirect,relay,faas")]
    modes: Vec<Mode>,
    /// Rounds of every cell; the report shows medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of calls per cell and round (at least `--min-calls` per
    /// client).
    #[arg(long, default_value_t = 2.0)]
    duration_secs: f64,
    /// Timed calls per client and cell at least (when the duration is
    /// over sooner).
    #[arg(long, default_value_t = 10)]
    min_calls: u64,
    /// Untimed calls per client before each cell.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Bytes each call appends.
    #[arg(long, default_value_t = 16)]
    append_bytes: usize,
    /// The `oprc` binary [default: the one next to this binary].
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// The `s3s-fs` binary [default: on PATH or in ~/.cargo/bin].
    #[arg(long)]
    s3s_fs: Option<PathBuf>,
    /// The Python that runs the function (no packages needed).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Where the S3 server keeps its files [default: /dev/shm when it
    /// exists: S3 on the nodes' disk would stall their fsyncs].
    #[arg(long)]
    s3_dir: Option<PathBuf>,
    /// Run s3s-fs as installed, without the shim that sets `TCP_NODELAY`
    /// on its connections (see `files/s3.rs`).
    #[arg(long)]
    s3_stock: bool,
    /// S3 in a network namespace, with a bandwidth limit and a delay.
    #[arg(long)]
    shaped: bool,
    /// The `tc tbf` rate on both ends of the veth pair (shaped).
    #[arg(long, default_value = "1gbit")]
    rate: String,
    /// Milliseconds each chunk is held per direction (shaped).
    #[arg(long, default_value_t = 2)]
    delay_ms: u64,
    /// The veth pair's /24, as its first three octets (shaped).
    #[arg(long, default_value = "10.200.0")]
    subnet: String,
}

fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, scale) = if let Some(n) = t.strip_suffix('k') {
        (n, 1 << 10)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 1 << 20)
    } else {
        (t.as_str(), 1)
    };
    num.parse::<usize>()
        .map(|n| n * scale)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("expected a size like 10k or 4m, got {s:?}"))
}

/// Runs the benchmark; on Ctrl-C or SIGTERM everything it started is
/// stopped (the run's future is dropped, and with it every process and the
/// namespace).
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = run_all(args) => r,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; stopped everything"),
        _ = term.recv() => anyhow::bail!("terminated; stopped everything"),
    }
}

/// `len` bytes of a repeating text.
fn content(len: usize) -> Bytes {
    const TEXT: &[u8] = b"the quick brown fox jumps over the lazy dog 0123456789\n";
    TEXT.iter()
        .copied()
        .cycle()
        .take(len)
        .collect::<Vec<u8>>()
        .into()
}

pub(crate) fn node_bin(given: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = match given {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the benchmark binary has no directory")?
            .join("oprc"),
    };
    anyhow::ensure!(
        bin.is_file(),
        "no oprc binary at {} (build it with `cargo build --release -p oprc`, or pass --node-bin)",
        bin.display()
    );
    Ok(bin)
}

async fn run_all(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.append_bytes > 0, "--append-bytes must be at least 1");
    let started = Instant::now();
    let bin = node_bin(args.node_bin.as_ref())?;
    let s3_bin = s3::find_binary(args.s3s_fs.as_deref())?;
    let work = tempfile::Builder::new()
        .prefix("oprc-bench-files")
        .tempdir()?;
    let script = work.path().join("concat.py");
    std::fs::write(&script, nodes::SCRIPT)?;
    let shape = args.shaped.then(|| s3::Shape {
        rate: args.rate.clone(),
        delay: Duration::from_millis(args.delay_ms),
        subnet: args.subnet.clone(),
    });
    let buckets: Vec<&str> = args.modes.iter().map(|m| m.name()).collect();
    let shm = PathBuf::from("/dev/shm");
    let s3_dir = match &args.s3_dir {
        Some(d) => d.clone(),
        None if shm.is_dir() => shm,
        None => work.path().to_owned(),
    };
    let started_s3 = s3::S3Server::start(
        &s3_bin,
        work.path(),
        &s3_dir,
        &buckets,
        shape.as_ref(),
        args.s3_stock,
    )
    .await?;
    let Some(s3) = started_s3 else {
        return Ok(());
    };
    let result = measure(&args, &bin, &s3, &script, work.path(), shape.as_ref()).await;
    s3.stop().await;
    if result.is_err() {
        let kept = work.keep();
        eprintln!("oprc-bench files: logs kept in {}", kept.display());
    }
    result?;
    eprintln!(
        "oprc-bench files: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn measure(
    args: &Args,
    bin: &std::path::Path,
    s3: &s3::S3Server,
    script: &std::path::Path,
    dir: &std::path::Path,
    shape: Option<&s3::Shape>,
) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    for &mode in &args.modes {
        let t = match mode {
            Mode::Faas => Target::faas(s3, script, &args.python, dir).await?,
            _ => Target::node(mode, bin, s3, script, &args.python, dir).await?,
        };
        targets.push(t);
    }
    let result = measure_on(args, s3, &targets, shape).await;
    for t in targets {
        t.stop().await;
    }
    result
}

/// Median milliseconds of 20 small requests to `addr` on one connection.
async fn rtt(http: &http::Http, addr: std::net::SocketAddr) -> anyhow::Result<f64> {
    let mut v = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        http.send(http::Req::get(format!("http://{addr}/").parse()?))
            .await?;
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

async fn measure_on(
    args: &Args,
    s3: &s3::S3Server,
    targets: &[Target],
    shape: Option<&s3::Shape>,
) -> anyhow::Result<()> {
    let max_c = args.concurrency.iter().copied().max().unwrap_or(1);
    let http = http::Http::new(max_c * 2);
    let first = content(args.sizes.first().copied().unwrap_or(1024));
    for t in targets {
        for i in 0..max_c {
            t.create(&http, i, first.clone())
                .await
                .with_context(|| format!("failed to create object o{i} on {}", t.mode.name()))?;
        }
    }
    let title = match shape {
        None => "loopback".to_owned(),
        Some(sh) => {
            let direct = rtt(&http, s3.direct).await?;
            let proxied = rtt(&http, s3.endpoint).await?;
            eprintln!(
                "oprc-bench files: request round trip to s3 {direct:.2} ms direct, {proxied:.2} ms \
                 through the delaying proxy"
            );
            format!(
                "shaped: tbf {} on both ends, {} ms per direction; a small request's round trip \
                 {direct:.2} ms direct, {proxied:.2} ms through the proxy",
                sh.rate,
                sh.delay.as_millis()
            )
        }
    };
    // What each process spends when nothing calls it (all targets idle
    // at once, so the S3 server's rate includes every node's collector).
    let idles = futures_util::future::join_all(
        targets
            .iter()
            .map(|t| cell::idle(t, s3.pid, Duration::from_secs(4))),
    )
    .await;
    for (t, i) in targets.iter().zip(&idles) {
        eprintln!(
            "oprc-bench files: idle CPU of {}: node {:.1} ms/s, function {:.1} ms/s, s3 {:.1} ms/s",
            t.mode.name(),
            i[0] * 1000.0 / crate::external::TICKS_PER_SEC,
            i[1] * 1000.0 / crate::external::TICKS_PER_SEC,
            i[2] * 1000.0 / crate::external::TICKS_PER_SEC,
        );
    }
    let o = cell::Options {
        duration: Duration::from_secs_f64(args.duration_secs),
        min_calls: args.min_calls,
        warmup: args.warmup,
        append: "abcdefghijklmnopqrstuvwxyz0123456789"
            .chars()
            .cycle()
            .take(args.append_bytes)
            .collect(),
    };
    eprintln!(
        "oprc-bench files ({title}): sizes {:?}, concurrency {:?}, {} rounds of {} s per cell",
        args.sizes, args.concurrency, args.rounds, args.duration_secs
    );
    let mut rows = Vec::new();
    for round in 0..args.rounds.max(1) {
        for &c in &args.concurrency {
            for &size in &args.sizes {
                let data = content(size);
                // A different mode goes first in each round.
                let n = targets.len();
                for k in 0..n {
                    let i = (k + round) % n;
                    let t = &targets[i];
                    let m = cell::run(&http, t, s3.pid, idles[i], c, &data, &o).await?;
                    eprintln!(
                        "  round {} c={c} {:>7} {:<8} p50 {:>9.2} ms  p99 {:>9.2} ms  calls {:>5}  errors {}  cpu/call node {:.3} fn {:.3} s3 {:.3} ms",
                        round + 1,
                        report::size_name(size),
                        t.mode.name(),
                        m.p50_ms,
                        m.p99_ms,
                        m.calls,
                        m.errors + m.wrong + m.reset_errors,
                        m.cpu_ms.0,
                        m.cpu_ms.1,
                        m.cpu_ms.2,
                    );
                    rows.push(report::Row {
                        round,
                        c,
                        size,
                        mode: t.mode,
                        m,
                    });
                }
            }
        }
    }
    report::print(&title, &rows, &args.modes);
    Ok(())
}

#[cfg(test)]
mod tests {
    fn check(input: &str, expected: Result<usize, ()>) {
        assert_eq!(super::parse_size(input).map_err(drop), expected, "{input}");
    }

    #[test]
    fn sizes_are_kib_and_mib() {
        check("10k", Ok(10 << 10));
        check("16M", Ok(16 << 20));
        check("100", Ok(100));
        check("0k", Err(()));
        check("1g", Err(()));
    }
}
