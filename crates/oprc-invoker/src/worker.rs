//! The worker of one object's inbox: drives the [`Pipeline`] machine with
//! the IO it asks for (load, run, commit, answer). One task per busy
//! object; it owns the object's view and its commit in flight, and exits
//! when the inbox is empty and nothing is in flight.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use oprc_core::{InvocationResponse, InvocationStatus};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::answer;
use crate::context::{Doing, Shared};
use crate::merge::merge;
use crate::pipeline::{Action, Entry, Pipeline};
use crate::plan;
use crate::retry::{self, Decision};
use crate::step::{Current, Prepared, prepare};
use crate::types::{Call, CallKind, ObjectKey, span_of};
use crate::{Error, exec};

/// A call in the worker, with what became of it.
pub(crate) struct Job {
    pub call: Call,
    outcome: Option<Outcome>,
    /// Its commit conflicted because an object it creates exists already:
    /// no retry changes that.
    output_exists: bool,
    _doing: Option<Doing>,
}

enum Outcome {
    /// It ran: commit this.
    Ran(Prepared),
    /// Nothing to run: it was applied before (an async replay).
    Done(InvocationResponse),
    /// Refused when its turn came (object gone, binding removed).
    Refused(Error),
}

impl Entry for Job {
    fn on_failure(&mut self, error: oprc_store::ErrorKind) -> Decision {
        self.call.attempts += 1;
        self.outcome = None;
        if self.output_exists {
            return Decision::Fail;
        }
        retry::decide(self.call.kind, error, self.call.attempts)
    }
}

/// What a run gave back to the worker.
struct Ran {
    job: Job,
    generation: u64,
    loaded: Option<Current>,
    failed: Option<oprc_store::Error>,
}

type Running = Pin<Box<dyn Future<Output = Ran> + Send>>;
type Committing = Pin<Box<dyn Future<Output = oprc_store::Result<()>> + Send>>;

/// Runs the inbox of `key` until it is empty and nothing is in flight.
pub(crate) async fn run(shared: Arc<Shared>, key: ObjectKey, mut rx: mpsc::Receiver<Call>) {
    let mut p: Pipeline<Job> = Pipeline::with_bound(shared.options.max_queued_per_object);
    let mut running: Option<Running> = None;
    let mut committing: Option<Committing> = None;
    loop {
        if running.is_none() && committing.is_none() && shared.stopping.is_cancelled() {
            return abandon(&shared, &key, &mut p, &mut rx);
        }
        if running.is_none() && p.can_start() {
            let mut next = p.take_redo();
            if next.is_none() && p.can_take_new() {
                next = rx.try_recv().ok().map(Job::new);
                if next.is_none() && committing.is_none() && p.is_idle() {
                    match shared.inboxes.retire(&key, &mut rx) {
                        Some(call) => next = Some(Job::new(call)),
                        None => return,
                    }
                }
            }
            if let Some(job) = next {
                running = Some(start(&shared, &mut p, &key, job));
            }
        }
        let pause = p.pause();
        let take_new = running.is_none() && p.can_take_new();
        let actions = tokio::select! {
            result = async { committing.as_mut().expect("guarded").await }, if committing.is_some() => {
                committing = None;
                if let Err(e) = &result {
                    tracing::warn!(cls = %key.0, oid = %key.1, error = %e, "commit failed");
                    for job in p.committing_mut() {
                        job.forget(&shared);
                        if e.kind == oprc_store::ErrorKind::Conflict {
                            job.output_exists = job.creates_existing(&shared).await;
                        }
                    }
                }
                p.committed(result.map_err(|e| e.kind))
            }
            ran = async { running.as_mut().expect("guarded").await }, if running.is_some() => {
                running = None;
                match ran.failed {
                    Some(e) => {
                        tracing::warn!(cls = %key.0, oid = %key.1, error = %e, "loading the object failed");
                        p.load_failed(ran.job, e.kind)
                    }
                    None => {
                        let after = ran.job.after();
                        p.finished(ran.job, ran.generation, ran.loaded, after)
                    }
                }
            }
            call = rx.recv(), if take_new => {
                if let Some(call) = call {
                    running = Some(start(&shared, &mut p, &key, Job::new(call)));
                }
                Vec::new()
            }
            () = tokio::time::sleep(pause.unwrap_or_default()), if pause.is_some() && running.is_none() => {
                p.resume();
                Vec::new()
            }
            () = shared.stopping.cancelled(), if running.is_none() && committing.is_none() => Vec::new(),
        };
        act(&shared, &mut p, &mut committing, actions);
    }
}

/// The node is stopping (the drain is over): nothing more runs here.
/// Waiting callers are told; async calls are left unanswered, so they stay
/// in the log and run at the next start. (None may commit after one that
/// is left, or its `lastOffset` would hide the one left at the replay.)
fn abandon(shared: &Shared, key: &ObjectKey, p: &mut Pipeline<Job>, rx: &mut mpsc::Receiver<Call>) {
    let mut left: Vec<Call> = p.abandon().into_iter().map(|j| j.call).collect();
    rx.close();
    while let Some(call) = shared.inboxes.retire(key, rx) {
        left.push(call);
    }
    for mut call in left {
        if !matches!(call.kind, CallKind::Async { .. }) {
            call.answer(Err(Error::ShuttingDown));
        }
    }
}

/// Starts running a call, in its invocation's span.
fn start(shared: &Arc<Shared>, p: &mut Pipeline<Job>, key: &ObjectKey, job: Job) -> Running {
    let span = span_of(&job.call.req);
    let (current, generation) = p.start();
    Box::pin(execute(shared.clone(), key.clone(), job, current, generation).instrument(span))
}

/// Carries out what the machine asked for.
fn act(
    shared: &Arc<Shared>,
    p: &mut Pipeline<Job>,
    committing: &mut Option<Committing>,
    actions: Vec<Action<Job>>,
) {
    let mut actions = std::collections::VecDeque::from(actions);
    while let Some(action) = actions.pop_front() {
        match action {
            Action::Commit => {
                let batch = merge(p.committing_mut().iter_mut().filter_map(Job::take_batch));
                if batch.writes.is_empty() {
                    actions.extend(p.committed(Ok(())));
                } else {
                    let state = shared.state.clone();
                    *committing = Some(Box::pin(async move { state.commit(batch).await }));
                }
            }
            Action::Answer(jobs) => {
                for job in jobs {
                    job.answer(shared);
                }
            }
            Action::Fail(jobs, kind) => {
                for job in jobs {
                    if job.output_exists {
                        let code = crate::error::codes::ALREADY_EXISTS;
                        let message =
                            "an object this call creates exists already; nothing was committed";
                        answer::failed_for_good(shared, job.call, code, message);
                    } else {
                        answer::storage_failed(shared, job.call, kind);
                    }
                }
            }
        }
    }
}

impl Job {
    fn new(call: Call) -> Self {
        Self {
            call,
            outcome: None,
            output_exists: false,
            _doing: None,
        }
    }

    fn after(&self) -> Option<Current> {
        match &self.outcome {
            Some(Outcome::Ran(p)) => p.after.clone(),
            _ => None,
        }
    }

    fn take_batch(&mut self) -> Option<oprc_store::WriteBatch> {
        match &mut self.outcome {
            Some(Outcome::Ran(p)) => Some(std::mem::take(&mut p.batch)),
            _ => None,
        }
    }

    /// Whether an object this call creates (an output object) exists in the
    /// store: then its conflict is for good.
    async fn creates_existing(&self, shared: &Shared) -> bool {
        let Some(Outcome::Ran(p)) = &self.outcome else {
            return false;
        };
        let main = self.call.key();
        for (key, _) in p.committed.iter().filter(|(k, _)| Some(k) != main.as_ref()) {
            if let Ok(Some(_)) = shared.state.get_object(&key.0, &key.1).await {
                return true;
            }
        }
        false
    }

    /// The commit failed: the cache no longer knows these objects.
    fn forget(&self, shared: &Shared) {
        if let Some(Outcome::Ran(p)) = &self.outcome {
            for (key, _) in &p.committed {
                shared.cache.forget(key);
            }
        }
    }

    /// Its commit landed (or it had nothing to commit): answer.
    fn answer(self, shared: &Arc<Shared>) {
        let Job { call, outcome, .. } = self;
        match outcome {
            Some(Outcome::Ran(prepared)) => answer::committed(shared, call, prepared),
            Some(Outcome::Done(resp)) => answer::done(shared, call, resp),
            Some(Outcome::Refused(e)) => answer::refused(shared, call, e),
            None => answer::refused(
                shared,
                call,
                Error::Internal("a call was answered before it ran".into()),
            ),
        }
    }
}

/// Loads (when the worker does not know the object), checks and runs one
/// call; the machine decides what happens next.
async fn execute(
    shared: Arc<Shared>,
    key: ObjectKey,
    mut job: Job,
    current: Current,
    generation: u64,
) -> Ran {
    let mut loaded = None;
    let current = match current {
        Current::Unknown => match shared.load(&key.0, &key.1).await {
            Ok(obj) => {
                let c = Current::of(obj);
                loaded = Some(c.clone());
                c
            }
            Err(e) => {
                return Ran {
                    job,
                    generation,
                    loaded,
                    failed: Some(e),
                };
            }
        },
        known => known,
    };
    if matches!(job.call.kind, CallKind::Async { .. }) && job._doing.is_none() {
        job._doing = Some(shared.doing(&job.call.req.inv_id));
    }
    let failed = match run_on(&shared, &job, &current).await {
        Ok(outcome) => {
            job.outcome = Some(outcome);
            None
        }
        Err(e) => Some(e),
    };
    Ran {
        job,
        generation,
        loaded,
        failed,
    }
}

/// What the call does on `current`. `Err` only for storage failing while
/// checking whether a replayed call was applied.
async fn run_on(
    shared: &Shared,
    job: &Job,
    current: &Current,
) -> Result<Outcome, oprc_store::Error> {
    let call = &job.call;
    // The package may have changed while the call was queued: it runs
    // whole on the version current now, or not at all.
    let replanned;
    let plan = match plan::again(&shared.catalog.load(), &call.req, &call.plan) {
        Ok(None) => &call.plan,
        Ok(Some(p)) => {
            replanned = p;
            &replanned
        }
        Err(e) => return Ok(Outcome::Refused(e)),
    };
    // A recorded call that may have landed before (a replay, or a retry
    // after a commit whose outcome was unknown) answers its record.
    let replayed = matches!(call.kind, CallKind::Async { .. }) || call.attempts > 0;
    if call.kind.records()
        && replayed
        && let Some(r) = shared.state.get_invocation(&call.req.inv_id).await?
        && r.response.status.is_terminal()
    {
        return Ok(Outcome::Done(r.response));
    }
    let Current::Live(main) = current else {
        return Ok(Outcome::Refused(crate::Error::object_not_found(
            &call.req.cls,
            call.req.oid.as_ref().expect("inbox calls have an object"),
        )));
    };
    if let Some(offset) = call.kind.offset()
        && main.meta.last_offset >= offset
    {
        // Applied before the crash; its record went with it.
        let done = InvocationResponse::status(call.req.inv_id.clone(), InvocationStatus::Succeeded);
        return Ok(Outcome::Done(done));
    }
    let step = match exec::run(shared, plan, &call.req, Some(main), true).await {
        Ok(step) => step,
        Err(exec::Refusal::Now(e)) => return Ok(Outcome::Refused(e)),
        Err(exec::Refusal::Mutating(_)) => unreachable!("a call in its inbox is never moved"),
        Err(exec::Refusal::Storage(e)) => return Err(e),
    };
    Ok(Outcome::Ran(prepare(
        &shared.step_context(call, plan),
        Some(main),
        step,
    )))
}
