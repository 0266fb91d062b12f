//! What one closed-loop client of a cell saw (latencies of the calls that
//! succeeded, failures counted and the first few kept), and all clients of
//! the cell summed. Shared by the cells of `pg` and `dataflow`.

use std::time::Instant;

use hdrhistogram::Histogram;

/// One client's calls.
pub struct Tally {
    /// Microseconds, 1 µs to 10 min.
    pub hist: Histogram<u64>,
    /// Calls that succeeded.
    pub done: u64,
    pub errors: u64,
    /// The first 3 distinct failures.
    pub failures: Vec<String>,
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

impl Tally {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            hist: histogram()?,
            done: 0,
            errors: 0,
            failures: Vec::new(),
        })
    }

    /// Keeps `e` if it is among the first 3 distinct failures.
    pub fn note(&mut self, e: String) {
        if self.failures.len() < 3 && !self.failures.contains(&e) {
            self.failures.push(e);
        }
    }

    /// A timed call that started at `started` and ended now with `result`.
    pub fn observe(&mut self, started: Instant, result: Result<(), String>) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match result {
            Ok(()) => {
                let _ = self.hist.record(micros.max(1));
                self.done += 1;
            }
            Err(e) => {
                self.errors += 1;
                self.note(e);
            }
        }
    }
}

/// The clients of a cell together: one histogram, the sums, and the first
/// 4 distinct failures.
pub struct Total {
    pub hist: Histogram<u64>,
    pub done: u64,
    pub errors: u64,
    pub failures: Vec<String>,
}

pub fn total(clients: Vec<Tally>) -> anyhow::Result<Total> {
    let mut t = Total {
        hist: histogram()?,
        done: 0,
        errors: 0,
        failures: Vec::new(),
    };
    for c in clients {
        t.hist.add(&c.hist)?;
        t.done += c.done;
        t.errors += c.errors;
        for f in c.failures {
            if t.failures.len() < 4 && !t.failures.contains(&f) {
                t.failures.push(f);
            }
        }
    }
    Ok(t)
}
