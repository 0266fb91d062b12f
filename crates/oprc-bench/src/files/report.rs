//! The file benchmark's tables: medians over rounds per cell, and the
//! ratios redirect / relay and redirect / plain FaaS against the issue's
//! aims, each the median of the ratios within a round (the three modes of
//! a round ran next to each other).

use super::cell::Measured;
use super::nodes::Mode;

/// Redirect must take at most this share of relay's time from
/// [`RELAY_AIM_FROM`] bytes up ("at least 30 % faster").
pub const RELAY_AIM: f64 = 0.70;
pub const RELAY_AIM_FROM: usize = 1 << 20;
/// Redirect within 20 % of plain FaaS.
pub const FAAS_AIM: f64 = 1.20;

pub struct Row {
    pub round: usize,
    pub c: usize,
    pub size: usize,
    pub mode: Mode,
    pub m: Measured,
}

pub fn size_name(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn cells(rows: &[Row]) -> Vec<(usize, usize)> {
    let mut keys: Vec<(usize, usize)> = Vec::new();
    for r in rows {
        if !keys.contains(&(r.c, r.size)) {
            keys.push((r.c, r.size));
        }
    }
    keys
}

fn of(rows: &[Row], c: usize, size: usize, mode: Mode) -> Vec<&Row> {
    rows.iter()
        .filter(|r| r.c == c && r.size == size && r.mode == mode)
        .collect()
}

/// Median over rounds of `a`'s figure / `b`'s, paired by round.
fn ratio(
    rows: &[Row],
    c: usize,
    size: usize,
    a: Mode,
    b: Mode,
    f: fn(&Measured) -> f64,
) -> Option<f64> {
    let bs = of(rows, c, size, b);
    median(
        of(rows, c, size, a)
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

pub fn print(title: &str, rows: &[Row], modes: &[Mode]) {
    println!("\n### {title}\n");
    println!(
        "| size | clients | mode | p50 ms | p99 ms | calls | errors | node CPU ms/call | function CPU ms/call | S3 CPU ms/call |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut failures = Vec::new();
    for (c, size) in cells(rows) {
        for &mode in modes {
            let runs = of(rows, c, size, mode);
            if runs.is_empty() {
                continue;
            }
            let med = |f: fn(&Measured) -> f64| median(runs.iter().map(|r| f(&r.m)).collect());
            let calls: u64 = runs.iter().map(|r| r.m.calls).sum();
            let errors: u64 = runs.iter().map(|r| r.m.errors).sum();
            let wrong: u64 = runs.iter().map(|r| r.m.wrong).sum();
            let resets: u64 = runs.iter().map(|r| r.m.reset_errors).sum();
            let mut err = errors.to_string();
            if wrong > 0 {
                err += &format!(" (+{wrong} wrong size)");
            }
            if resets > 0 {
                err += &format!(" (+{resets} failed resets)");
            }
            let node = match mode {
                Mode::Faas => "-".to_owned(),
                _ => fmt(med(|m| m.cpu_ms.0), 3),
            };
            println!(
                "| {} | {c} | {} | {} | {} | {calls} | {err} | {node} | {} | {} |",
                size_name(size),
                mode.name(),
                fmt(med(|m| m.p50_ms), 2),
                fmt(med(|m| m.p99_ms), 2),
                fmt(med(|m| m.cpu_ms.1), 3),
                fmt(med(|m| m.cpu_ms.2), 3),
            );
            for r in runs {
                for f in &r.m.failures {
                    failures.push(format!(
                        "{} c={c} {} round {}: {f}",
                        size_name(size),
                        mode.name(),
                        r.round + 1
                    ));
                }
            }
        }
    }
    println!();
    println!(
        "| size | clients | redirect / relay p50 | p99 | redirect / faas p50 | p99 | aim vs relay (≤ {RELAY_AIM:.2} from 1 MiB) | aim vs faas (≤ {FAAS_AIM:.2}) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---|---|");
    for (c, size) in cells(rows) {
        let p50 = |m: &Measured| m.p50_ms;
        let p99 = |m: &Measured| m.p99_ms;
        let relay = ratio(rows, c, size, Mode::Redirect, Mode::Relay, p50);
        let faas = ratio(rows, c, size, Mode::Redirect, Mode::Faas, p50);
        let verdict = |r: Option<f64>, aim: f64, applies: bool| match r {
            _ if !applies => "-".to_owned(),
            None => "-".to_owned(),
            Some(r) if r <= aim => "met".to_owned(),
            Some(_) => "**missed**".to_owned(),
        };
        println!(
            "| {} | {c} | {} | {} | {} | {} | {} | {} |",
            size_name(size),
            fmt(relay, 2),
            fmt(ratio(rows, c, size, Mode::Redirect, Mode::Relay, p99), 2),
            fmt(faas, 2),
            fmt(ratio(rows, c, size, Mode::Redirect, Mode::Faas, p99), 2),
            verdict(relay, RELAY_AIM, size >= RELAY_AIM_FROM),
            verdict(faas, FAAS_AIM, true),
        );
    }
    if !failures.is_empty() {
        println!("\nFailures (first few per cell and round):\n");
        for f in failures {
            println!("- {f}");
        }
    }
}
