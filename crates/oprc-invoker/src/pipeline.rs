//! One object's mutating calls as a state machine (pure; the worker in
//! `worker.rs` does the IO).
//!
//! Calls run one at a time in order (G1). When calls queue up, the next one
//! runs on the state the previous one computed while that one's commit is
//! in flight (early lock release, ADR 4); computed calls wait in order and
//! are committed together as one merged batch once the commit in flight
//! lands. Answers leave only after their own commit (G4).
//!
//! When a commit fails, every call computed on the state it would have
//! made is doomed: its answer came from a state that never existed. The
//! failed group's calls are retried or failed as [`retry::decide`] says;
//! the doomed ones run again on reloaded state, in their order, before
//! anything newer (a new *generation*).
//!
//! [`retry::decide`]: crate::retry::decide

use std::collections::VecDeque;
use std::time::Duration;

use oprc_store::ErrorKind;

use crate::retry::Decision;
use crate::step::Current;

/// A call as the machine sees it.
pub(crate) trait Entry {
    /// Storage failed under this call: count the attempt and decide.
    fn on_failure(&mut self, error: ErrorKind) -> Decision;
}

/// What the worker must do next.
#[derive(Debug)]
pub(crate) enum Action<C> {
    /// Commit the group now in [`Pipeline::committing_mut`] as one batch.
    Commit,
    /// Their commit landed: answer them, in order.
    Answer(Vec<C>),
    /// Storage failed under them for good: answer the failure.
    Fail(Vec<C>, ErrorKind),
}

/// The state of one object's worker.
#[derive(Debug)]
pub(crate) struct Pipeline<C> {
    current: Current,
    generation: u64,
    /// The generation the running call started in.
    running: Option<u64>,
    /// The group whose commit is in flight, in order; empty when none is.
    committing: Vec<C>,
    /// Computed calls waiting for the commit in flight, in order.
    waiting: Vec<C>,
    /// Calls to run again before anything from the inbox, in order. `None`
    /// holds the place of the running call when it is doomed.
    redo: VecDeque<Option<C>>,
    /// No call starts until the worker has waited this long.
    pause: Option<Duration>,
    /// Most computed calls held (committing, waiting, to run again): new
    /// calls stay in the bounded inbox beyond, so its bound holds.
    max_held: usize,
}

impl<C> Default for Pipeline<C> {
    fn default() -> Self {
        Self::with_bound(usize::MAX)
    }
}

impl<C> Pipeline<C> {
    /// A machine that holds at most `max_held` computed calls.
    pub fn with_bound(max_held: usize) -> Self {
        Self {
            current: Current::Unknown,
            generation: 0,
            running: None,
            committing: Vec::new(),
            waiting: Vec::new(),
            redo: VecDeque::new(),
            pause: None,
            max_held: max_held.max(1),
        }
    }
}

impl<C: Entry> Pipeline<C> {
    /// Whether a call may start now (one to run again, or a new one). Not
    /// on an object this worker saw deleted while that delete's commit is
    /// in flight: the object may be created again right after it lands (a
    /// create does not go through the inbox), so the next call waits and
    /// loads.
    pub fn can_start(&self) -> bool {
        self.running.is_none()
            && self.pause.is_none()
            && (self.committing.is_empty() || !matches!(self.current, Current::Gone))
    }

    /// Whether a new call from the inbox may start now: nothing is to run
    /// again first, and there is room for what it computes.
    pub fn can_take_new(&self) -> bool {
        self.can_start()
            && self.redo.is_empty()
            && self.committing.len() + self.waiting.len() < self.max_held
    }

    /// The pause the worker must wait out before starting a call.
    pub fn pause(&self) -> Option<Duration> {
        self.pause
    }

    pub fn resume(&mut self) {
        self.pause = None;
    }

    /// The next call to run again, if any (before the inbox's).
    pub fn take_redo(&mut self) -> Option<C> {
        match self.redo.front() {
            Some(Some(_)) => self.redo.pop_front().flatten(),
            // The doomed running call comes first: it is still running.
            Some(None) | None => None,
        }
    }

    /// Marks a call as started: the state it runs on and its generation.
    /// The state is `Unknown` only when nothing is in flight, so a load
    /// then sees every commit before it. An object this worker saw gone is
    /// loaded again once nothing is in flight: it may have been created
    /// since (a create does not go through its inbox).
    pub fn start(&mut self) -> (Current, u64) {
        debug_assert!(self.can_start());
        if matches!(self.current, Current::Gone) && self.committing.is_empty() {
            self.current = Current::Unknown;
        }
        debug_assert!(
            !matches!(self.current, Current::Unknown) || self.committing.is_empty(),
            "a load must not race a commit in flight"
        );
        self.running = Some(self.generation);
        (self.current.clone(), self.generation)
    }

    /// The running call finished (it ran, or was refused): it waits for
    /// the commit of everything before it, then for its own. `loaded` is
    /// the state it loaded, `after` the state its commit makes.
    pub fn finished(
        &mut self,
        call: C,
        generation: u64,
        loaded: Option<Current>,
        after: Option<Current>,
    ) -> Vec<Action<C>> {
        self.running = None;
        if generation != self.generation {
            // Computed on a state that never landed: run it again, in its
            // place.
            match self.redo.iter_mut().find(|slot| slot.is_none()) {
                Some(slot) => *slot = Some(call),
                None => self.redo.push_back(Some(call)),
            }
            return Vec::new();
        }
        if let Some(state) = loaded {
            self.current = state;
        }
        if let Some(state) = after {
            self.current = state;
        }
        if self.committing.is_empty() {
            self.committing.push(call);
            vec![Action::Commit]
        } else {
            self.waiting.push(call);
            Vec::new()
        }
    }

    /// The running call could not load its object.
    pub fn load_failed(&mut self, mut call: C, error: ErrorKind) -> Vec<Action<C>> {
        self.running = None;
        match call.on_failure(error) {
            Decision::Retry(pause) => {
                self.redo.push_front(Some(call));
                self.pause = Some(pause);
                Vec::new()
            }
            Decision::Fail => vec![Action::Fail(vec![call], error)],
        }
    }

    /// The group being committed, to take its batches from.
    pub fn committing_mut(&mut self) -> &mut [C] {
        &mut self.committing
    }

    /// The commit in flight ended.
    pub fn committed(&mut self, result: Result<(), ErrorKind>) -> Vec<Action<C>> {
        let group = std::mem::take(&mut self.committing);
        let error = match result {
            Ok(()) => {
                let mut actions = vec![Action::Answer(group)];
                if !self.waiting.is_empty() {
                    self.committing = std::mem::take(&mut self.waiting);
                    actions.push(Action::Commit);
                }
                return actions;
            }
            Err(error) => error,
        };
        // Everything computed so far built on the failed state.
        self.current = Current::Unknown;
        self.generation += 1;
        let mut failed = Vec::new();
        let mut again: VecDeque<Option<C>> = VecDeque::new();
        for mut call in group {
            match call.on_failure(error) {
                Decision::Retry(pause) => {
                    self.pause = Some(self.pause.map_or(pause, |p| p.max(pause)));
                    again.push_back(Some(call));
                }
                Decision::Fail => failed.push(call),
            }
        }
        again.extend(self.waiting.drain(..).map(Some));
        if self.running.is_some() && !self.redo.iter().any(Option::is_none) {
            again.push_back(None);
        }
        again.extend(self.redo.drain(..));
        self.redo = again;
        if failed.is_empty() {
            Vec::new()
        } else {
            vec![Action::Fail(failed, error)]
        }
    }

    /// Gives up every call waiting to run again or to be committed (the
    /// node is stopping; nothing is running or in flight).
    pub fn abandon(&mut self) -> Vec<C> {
        debug_assert!(self.running.is_none() && self.committing.is_empty());
        self.pause = None;
        let mut all: Vec<C> = self.waiting.drain(..).collect();
        all.extend(self.redo.drain(..).flatten());
        all
    }

    /// Nothing running, queued again or in flight.
    pub fn is_idle(&self) -> bool {
        self.running.is_none()
            && self.committing.is_empty()
            && self.waiting.is_empty()
            && self.redo.is_empty()
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
