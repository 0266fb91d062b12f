//! One cell of the file benchmark: `c` clients calling `concat` in a
//! closed loop, each on its own object, for a duration.
//!
//! `concat` grows the file by the appended string, so the measurement runs
//! in batches: every client's file is reset to the starting size, then each
//! client makes at most as many calls as grow its file by 1 %, and so on
//! until the duration is over and every client has made `min_calls`. The
//! resets are neither timed nor counted in the CPU per call (CPU is read
//! before and after each batch), and neither is what the processes spend
//! when idle (the node's collector, timers): that rate, measured before the
//! cells, is subtracted for the time the batches took, so that the CPU per
//! call is what the calls cost.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;

use super::http::Http;
use super::nodes::Target;
use crate::external::{self, TICKS_PER_SEC};

/// How each cell runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub duration: Duration,
    pub min_calls: u64,
    /// Calls per client after a reset, before the measurement (not timed).
    pub warmup: u64,
    /// What each call appends.
    pub append: String,
}

/// What one cell measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Timed calls that succeeded.
    pub calls: u64,
    /// Calls answered with a non-2xx status (or not answered).
    pub errors: u64,
    /// Successful calls whose new size was not the expected one (a lost or
    /// repeated update).
    pub wrong: u64,
    /// Failed resets (the file's size is then unknown until the next one).
    pub reset_errors: u64,
    /// CPU milliseconds per call: the node process, the function's
    /// processes, the S3 server.
    pub cpu_ms: (f64, f64, f64),
    /// The first few failures, as status and body.
    pub failures: Vec<String>,
}

impl Measured {
    fn note(&mut self, what: String) {
        if self.failures.len() < 4 && !self.failures.contains(&what) {
            self.failures.push(what);
        }
    }
}

struct Client {
    /// The file's size as far as this client knows.
    expected: Option<usize>,
    /// Timed calls so far.
    total: u64,
    hist: hdrhistogram::Histogram<u64>,
    m: Measured,
}

/// The size a call answered: `body.size` through a node, `size` from the
/// plain FaaS service.
fn answered_size(body: &[u8]) -> Option<usize> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let n = v.pointer("/body/size").or_else(|| v.get("size"))?;
    usize::try_from(n.as_u64()?).ok()
}

fn shown(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

async fn call(http: &Http, target: &Target, i: usize, st: &mut Client, append: &str, timed: bool) {
    let t = Instant::now();
    let r = http.send(target.call(i, append)).await;
    let micros = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
    match r {
        Ok((status, body)) if status.is_success() => {
            if timed {
                let _ = st.hist.record(micros.max(1));
                st.m.calls += 1;
            }
            let size = answered_size(&body);
            if let (Some(exp), Some(size)) = (st.expected, size)
                && size != exp + append.len()
            {
                st.m.wrong += 1;
                st.m.note(format!(
                    "answered size {size}, expected {}",
                    exp + append.len()
                ));
            }
            st.expected = size;
        }
        Ok((status, body)) => {
            st.m.errors += 1;
            st.m.note(format!("{status}: {}", shown(&body)));
            st.expected = None;
        }
        Err(e) => {
            st.m.errors += 1;
            st.m.note(format!("no answer: {e:#}"));
            st.expected = None;
        }
    }
}

async fn reset_all(http: &Http, target: &Target, clients: &mut [Client], data: &Bytes) {
    let resets = (0..clients.len()).map(|i| http.send(target.reset(i, data.clone())));
    let answers = join_all(resets).await;
    for (st, r) in clients.iter_mut().zip(answers) {
        match r {
            Ok((status, _)) if status.is_success() => st.expected = Some(data.len()),
            Ok((status, body)) => {
                st.m.reset_errors += 1;
                st.m.note(format!("reset: {status}: {}", shown(&body)));
                st.expected = None;
            }
            Err(e) => {
                st.m.reset_errors += 1;
                st.m.note(format!("reset: no answer: {e:#}"));
                st.expected = None;
            }
        }
    }
}

/// CPU ticks per second of the node, the function and the S3 server
/// when nothing calls them.
pub type Idle = [f64; 3];

/// Measures [`Idle`] over `over`.
pub async fn idle(target: &Target, s3_pid: Option<u32>, over: Duration) -> Idle {
    let before = cpu(target, s3_pid);
    tokio::time::sleep(over).await;
    let after = cpu(target, s3_pid);
    let mut rate = [0.0; 3];
    for ((r, a), b) in rate.iter_mut().zip(after).zip(before) {
        *r = a.saturating_sub(b) as f64 / over.as_secs_f64();
    }
    rate
}

/// CPU ticks so far of the node, the function and the S3 server.
fn cpu(target: &Target, s3_pid: Option<u32>) -> [u64; 3] {
    let t = target.cpu();
    let s3 = s3_pid.and_then(external::ticks).unwrap_or(0);
    [t.node, t.children, s3]
}

/// Runs one cell: `c` clients on files of `data.len()` bytes.
pub async fn run(
    http: &Http,
    target: &Target,
    s3_pid: Option<u32>,
    idle: Idle,
    c: usize,
    data: &Bytes,
    o: &Options,
) -> anyhow::Result<Measured> {
    let mut clients = (0..c)
        .map(|_| {
            Ok(Client {
                expected: None,
                total: 0,
                hist: hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3)?,
                m: Measured::default(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let append = o.append.as_str();
    reset_all(http, target, &mut clients, data).await;
    join_all(clients.iter_mut().enumerate().map(|(i, st)| async move {
        for _ in 0..o.warmup {
            call(http, target, i, st, append, false).await;
        }
    }))
    .await;
    // Calls that grow the file by 1 % at most between resets.
    let batch = (data.len() / 100 / append.len().max(1)).max(1) as u64;
    let deadline = Instant::now() + o.duration;
    let over = |st: &Client| Instant::now() >= deadline && st.total >= o.min_calls;
    let mut ticks = [0u64; 3];
    let mut calls = 0u64;
    let mut busy = Duration::ZERO;
    while !clients.iter().all(over) {
        reset_all(http, target, &mut clients, data).await;
        let before = cpu(target, s3_pid);
        let t = Instant::now();
        let made = join_all(clients.iter_mut().enumerate().map(|(i, st)| async move {
            let mut n = 0;
            while n < batch && !over(st) {
                call(http, target, i, st, append, true).await;
                st.total += 1;
                n += 1;
            }
            n
        }))
        .await;
        let after = cpu(target, s3_pid);
        busy += t.elapsed();
        for ((t, a), b) in ticks.iter_mut().zip(after).zip(before) {
            *t += a.saturating_sub(b);
        }
        calls += made.iter().sum::<u64>();
    }
    let mut all = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut m = Measured::default();
    for st in clients {
        all.add(&st.hist)?;
        m.calls += st.m.calls;
        m.errors += st.m.errors;
        m.wrong += st.m.wrong;
        m.reset_errors += st.m.reset_errors;
        for f in st.m.failures {
            m.note(f);
        }
    }
    let per_call = |k: usize| {
        let spent = (ticks[k] as f64 - idle[k] * busy.as_secs_f64()).max(0.0);
        spent * 1000.0 / TICKS_PER_SEC / calls.max(1) as f64
    };
    m.cpu_ms = (per_call(0), per_call(1), per_call(2));
    m.p50_ms = all.value_at_quantile(0.5) as f64 / 1000.0;
    m.p99_ms = all.value_at_quantile(0.99) as f64 / 1000.0;
    Ok(m)
}
