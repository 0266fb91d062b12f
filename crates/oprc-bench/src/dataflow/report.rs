//! The dataflow benchmark's tables: medians over rounds per cell, and the
//! derived figures against the aims, each the median of the figures
//! computed within a round (the scenarios of a round ran next to each
//! other).

use super::cell::Measured;
use super::scenario::Scenario;

/// The macro's overhead per step must stay under this (ms).
pub const STEP_AIM_MS: f64 = 0.5;

pub struct Row {
    pub round: usize,
    pub c: usize,
    pub scenario: Scenario,
    pub m: Measured,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

fn of(rows: &[Row], c: usize, s: Scenario) -> Vec<&Row> {
    rows.iter()
        .filter(|r| r.c == c && r.scenario == s)
        .collect()
}

/// Median over rounds of `f` of the p50s of `scenarios`, paired
/// by round (a round missing one of them is left out).
fn derived<const N: usize>(
    rows: &[Row],
    c: usize,
    scenarios: [Scenario; N],
    f: impl Fn([f64; N]) -> f64,
) -> Option<f64> {
    let rounds: Vec<usize> = {
        let mut r: Vec<usize> = rows.iter().map(|r| r.round).collect();
        r.sort_unstable();
        r.dedup();
        r
    };
    median(
        rounds
            .into_iter()
            .filter_map(|round| {
                let mut p50 = [0.0; N];
                for (slot, s) in p50.iter_mut().zip(scenarios) {
                    let row = rows
                        .iter()
                        .find(|r| r.round == round && r.c == c && r.scenario == s)?;
                    *slot = row.m.p50_ms;
                }
                Some(f(p50))
            })
            .collect(),
    )
}

pub fn print(rows: &[Row], concurrency: &[usize], sleep_ms: u64) {
    println!(
        "\n| clients | scenario | ops/s | p50 ms | p99 ms | ops | errors | node CPU ms/op | worker CPU ms/op | fsyncs/op | writes/op |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut failures = Vec::new();
    for &c in concurrency {
        for s in Scenario::ALL {
            let runs = of(rows, c, s);
            if runs.is_empty() {
                continue;
            }
            let med = |f: fn(&Measured) -> f64| median(runs.iter().map(|r| f(&r.m)).collect());
            let ops: u64 = runs.iter().map(|r| r.m.ops).sum();
            let errors: u64 = runs.iter().map(|r| r.m.errors).sum();
            println!(
                "| {c} | {} | {} | {} | {} | {ops} | {errors} | {} | {} | {} | {} |",
                s.name(),
                fmt(med(|m| m.ops_per_s), 0),
                fmt(med(|m| m.p50_ms), 3),
                fmt(med(|m| m.p99_ms), 3),
                fmt(med(|m| m.cpu_ms.0), 3),
                fmt(med(|m| m.cpu_ms.1), 3),
                fmt(med(|m| m.commits), 2),
                fmt(med(|m| m.writes), 2),
            );
            for r in runs {
                for f in &r.m.failures {
                    failures.push(format!("c={c} {} round {}: {f}", s.name(), r.round + 1));
                }
            }
        }
    }
    use Scenario::*;
    println!(
        "\n| clients | macro per-step overhead ms | client chain per-step overhead ms | builtin macro per-step overhead ms | keyed − plain call ms | aim (macro < {STEP_AIM_MS} ms) |"
    );
    println!("|---:|---:|---:|---:|---:|---|");
    for &c in concurrency {
        // (a chain of three − three single calls) / 3
        let per_step = |chain, one| derived(rows, c, [chain, one], |[m, u]| (m - 3.0 * u) / 3.0);
        let step = per_step(Chain3Macro, Call);
        let verdict = match step {
            _ if c != 1 => "-",
            None => "-",
            Some(v) if v < STEP_AIM_MS => "met",
            Some(_) => "**missed**",
        };
        println!(
            "| {c} | {} | {} | {} | {} | {verdict} |",
            fmt(step, 3),
            fmt(per_step(Chain3Client, Call), 3),
            fmt(per_step(Chain3Copy, Copy), 3),
            fmt(derived(rows, c, [CallKeyed, Call], |[k, u]| k - u), 3),
        );
    }
    println!(
        "\n| clients | macro fixed cost: chain1-macro − call ms | macro step: (chain3-macro − chain1-macro) / 2 ms | client step: (chain3-client − call) / 2 ms |"
    );
    println!("|---:|---:|---:|---:|");
    for &c in concurrency {
        let fixed = derived(rows, c, [Chain1Macro, Call], |[m, u]| m - u);
        let macro_step = derived(rows, c, [Chain3Macro, Chain1Macro], |[a, b]| (a - b) / 2.0);
        let client_step = derived(rows, c, [Chain3Client, Call], |[a, b]| (a - b) / 2.0);
        println!(
            "| {c} | {} | {} | {} |",
            fmt(fixed, 3),
            fmt(macro_step, 3),
            fmt(client_step, 3),
        );
    }
    println!(
        "\n| clients | fanout8-macro / (sleep + call) | fanout8-macro − (sleep + call) ms | fanout8-client-parallel − (sleep + call) ms | fanout8-macro − fanout8-client-parallel ms | fanout8-client / (sleep + call) | fanout8-client / fanout8-macro |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for &c in concurrency {
        // Each against the floor: the slowest branch alone and the join.
        let ratio = |s| derived(rows, c, [s, Sleep, Call], |[f, s, u]| f / (s + u));
        let excess = |s| derived(rows, c, [s, Sleep, Call], |[f, s, u]| f - (s + u));
        let macro_over_parallel =
            derived(rows, c, [Fanout8Macro, Fanout8ClientParallel], |[m, p]| {
                m - p
            });
        let client_over_macro = derived(rows, c, [Fanout8Client, Fanout8Macro], |[f, m]| f / m);
        println!(
            "| {c} | {} | {} | {} | {} | {} | {} |",
            fmt(ratio(Fanout8Macro), 2),
            fmt(excess(Fanout8Macro), 3),
            fmt(excess(Fanout8ClientParallel), 3),
            fmt(macro_over_parallel, 3),
            fmt(ratio(Fanout8Client), 2),
            fmt(client_over_macro, 2),
        );
    }
    println!(
        "\n(per-step overhead = (chain3 − 3 × one call) / 3 on p50; a branch sleeps {sleep_ms} ms; each figure is the median over rounds of the figure within a round)"
    );
    if !failures.is_empty() {
        println!("\nFailures (first few per cell and round):\n");
        for f in failures {
            println!("- {f}");
        }
    }
}
