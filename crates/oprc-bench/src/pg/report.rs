//! The PostgreSQL benchmark's tables: medians over rounds per cell, then
//! the ratios of each node against plain FaaS, each the median of the
//! ratios within a round (the targets of a round ran next to each other),
//! against the aim.

use super::cell::Measured;
use super::targets::Kind;

/// The node on PostgreSQL must serve at least this many times plain
/// FaaS's calls per second from [`AIM_FROM`] clients up.
pub const AIM: f64 = 2.0;
pub const AIM_FROM: usize = 32;

pub struct Row {
    pub round: usize,
    pub c: usize,
    pub kind: Kind,
    pub m: Measured,
}

/// A cell of the WAL probe.
pub struct Probe {
    pub c: usize,
    pub kind: Kind,
    pub m: Measured,
    pub wal_syncs_per_call: f64,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn of(rows: &[Row], c: usize, kind: Kind) -> Vec<&Row> {
    rows.iter().filter(|r| r.c == c && r.kind == kind).collect()
}

/// Median over rounds of `a`'s figure / `b`'s, paired by round.
fn ratio(rows: &[Row], c: usize, a: Kind, b: Kind, f: fn(&Measured) -> f64) -> Option<f64> {
    let bs = of(rows, c, b);
    median(
        of(rows, c, a)
            .iter()
            .filter_map(|x| {
                let y = bs.iter().find(|y| y.round == x.round)?;
                let (fx, fy) = (f(&x.m), f(&y.m));
                (fx > 0.0 && fy > 0.0).then(|| fx / fy)
            })
            .collect(),
    )
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

pub fn print(rows: &[Row], concurrency: &[usize], kinds: &[Kind]) {
    println!(
        "\n| clients | target | req/s | p50 ms | p99 ms | calls | errors | node CPU ms/call | function CPU ms/call | PostgreSQL CPU ms/call | total CPU ms/call | commits/call | writes/commit | PG txn ms | writer's ceiling req/s |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut failures = Vec::new();
    for &c in concurrency {
        for &kind in kinds {
            let runs = of(rows, c, kind);
            if runs.is_empty() {
                continue;
            }
            let med = |f: &dyn Fn(&Measured) -> Option<f64>| {
                median(runs.iter().filter_map(|r| f(&r.m)).collect())
            };
            let calls: u64 = runs.iter().map(|r| r.m.calls).sum();
            let errors: u64 = runs.iter().map(|r| r.m.errors).sum();
            let errors = if errors > 0 {
                format!("**{errors}**")
            } else {
                "0".to_owned()
            };
            let node = match kind {
                Kind::Faas => "-".to_owned(),
                _ => fmt(med(&|m| Some(m.cpu_ms.0)), 3),
            };
            let total = med(&|m| Some(m.cpu_ms.0 + m.cpu_ms.1 + m.cpu_ms.2.unwrap_or(0.0)));
            println!(
                "| {c} | {} | {} | {} | {} | {calls} | {errors} | {node} | {} | {} | {} | {} | {} | {} | {} |",
                kind.name(),
                fmt(med(&|m| Some(m.rps)), 0),
                fmt(med(&|m| Some(m.p50_ms)), 2),
                fmt(med(&|m| Some(m.p99_ms)), 2),
                fmt(med(&|m| Some(m.cpu_ms.1)), 3),
                fmt(med(&|m| m.cpu_ms.2), 3),
                fmt(total, 3),
                fmt(med(&|m| m.commits_per_call), 2),
                fmt(med(&|m| m.writes_per_commit), 2),
                fmt(med(&|m| m.txn_ms), 2),
                // One writer runs the groups one after another: at most a
                // group per transaction time.
                fmt(med(&|m| Some(m.writes_per_commit? * 1000.0 / m.txn_ms?)), 0),
            );
            for r in runs {
                for f in &r.m.failures {
                    failures.push(format!("c={c} {} round {}: {f}", kind.name(), r.round + 1));
                }
            }
        }
    }
    println!();
    println!(
        "| clients | node-pg / faas req/s | p50 | p99 | total CPU/call | embedded / faas req/s | p50 | p99 | total CPU/call | aim (node-pg ≥ {AIM:.1}× faas req/s from {AIM_FROM} clients) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let rps = |m: &Measured| m.rps;
    let p50 = |m: &Measured| m.p50_ms;
    let p99 = |m: &Measured| m.p99_ms;
    let cpu = |m: &Measured| m.cpu_ms.0 + m.cpu_ms.1 + m.cpu_ms.2.unwrap_or(0.0);
    for &c in concurrency {
        let pg = ratio(rows, c, Kind::NodePg, Kind::Faas, rps);
        let verdict = match pg {
            _ if c < AIM_FROM => "-",
            None => "-",
            Some(r) if r >= AIM => "met",
            Some(_) => "**missed**",
        };
        println!(
            "| {c} | {} | {} | {} | {} | {} | {} | {} | {} | {verdict} |",
            fmt(pg, 2),
            fmt(ratio(rows, c, Kind::NodePg, Kind::Faas, p50), 2),
            fmt(ratio(rows, c, Kind::NodePg, Kind::Faas, p99), 2),
            fmt(ratio(rows, c, Kind::NodePg, Kind::Faas, cpu), 2),
            fmt(ratio(rows, c, Kind::Embedded, Kind::Faas, rps), 2),
            fmt(ratio(rows, c, Kind::Embedded, Kind::Faas, p50), 2),
            fmt(ratio(rows, c, Kind::Embedded, Kind::Faas, p99), 2),
            fmt(ratio(rows, c, Kind::Embedded, Kind::Faas, cpu), 2),
        );
    }
    println!();
    println!(
        "| clients | target | machine busy | others' share | machine CPU ms/call | target's CPU ms/call | load generator CPU ms/call | the rest ms/call | re-runs |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for &c in concurrency {
        for &kind in kinds {
            let runs = of(rows, c, kind);
            if runs.is_empty() {
                continue;
            }
            let med = |f: &dyn Fn(&Measured) -> f64| median(runs.iter().map(|r| f(&r.m)).collect());
            let target = |m: &Measured| m.cpu_ms.0 + m.cpu_ms.1 + m.cpu_ms.2.unwrap_or(0.0);
            println!(
                "| {c} | {} | {} % | {} % | {} | {} | {} | {} | {} |",
                kind.name(),
                fmt(med(&|m| m.machine_busy * 100.0), 0),
                fmt(med(&|m| m.others * 100.0), 1),
                fmt(med(&|m| m.machine_cpu_ms), 3),
                fmt(med(&target), 3),
                fmt(med(&|m| m.client_cpu_ms), 3),
                fmt(med(&|m| m.machine_cpu_ms - target(m) - m.client_cpu_ms), 3),
                runs.iter().map(|r| r.m.reruns).sum::<u32>(),
            );
        }
    }
    if !failures.is_empty() {
        println!("\nFailures (first few per cell and round):\n");
        for f in failures {
            println!("- {f}");
        }
    }
}

pub fn print_probes(probes: &[Probe]) {
    if probes.is_empty() {
        return;
    }
    println!(
        "\n| clients | target | req/s | calls | errors | WAL syncs/call | calls/WAL sync | writes/commit |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for p in probes {
        let per = (p.wal_syncs_per_call > 0.0).then(|| 1.0 / p.wal_syncs_per_call);
        println!(
            "| {} | {} | {:.0} | {} | {} | {:.3} | {} | {} |",
            p.c,
            p.kind.name(),
            p.m.rps,
            p.m.calls,
            p.m.errors,
            p.wal_syncs_per_call,
            fmt(per, 2),
            fmt(p.m.writes_per_commit, 2),
        );
    }
}
