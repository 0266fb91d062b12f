//! The run state of one macro call: which steps may start, which are
//! running, which are done. Pure: the orchestrator tells it what happened
//! and asks what to start next.

use serde::{Deserialize, Serialize};

use super::Dag;

/// Where a step of a macro call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepStatus {
    /// Not started: waits for the steps it needs.
    Waiting,
    /// Started, not finished.
    Running,
    Succeeded,
    Failed,
    /// Never to start: a step it needs (directly or not) failed.
    DependencyFailed,
}

impl StepStatus {
    /// Whether the step has nothing more to do.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Failed | StepStatus::DependencyFailed
        )
    }
}

/// The pure run state of one macro call: a status per step (all
/// [`StepStatus::Waiting`] at first). Steps are named by their index in
/// [`Dag::steps`]; an index out of range is ignored (and reads as
/// `Waiting`), never a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    status: Vec<StepStatus>,
    /// What each step needs (indices in range only).
    deps: Vec<Vec<usize>>,
    /// The steps that need each step.
    dependents: Vec<Vec<usize>>,
}

impl Progress {
    /// Every step of `dag` waiting.
    pub fn new(dag: &Dag) -> Progress {
        let n = dag.steps.len();
        let deps: Vec<Vec<usize>> = dag
            .steps
            .iter()
            .map(|s| {
                let mut d: Vec<usize> = s.deps.iter().copied().filter(|&j| j < n).collect();
                d.sort_unstable();
                d.dedup();
                d
            })
            .collect();
        let mut dependents = vec![Vec::new(); n];
        for (i, d) in deps.iter().enumerate() {
            for &j in d {
                dependents[j].push(i);
            }
        }
        Progress {
            status: vec![StepStatus::Waiting; n],
            deps,
            dependents,
        }
    }

    /// Steps whose deps all succeeded and that have not started: marks them
    /// Running and returns them (in step order).
    pub fn start_ready(&mut self) -> Vec<usize> {
        let ready: Vec<usize> = (0..self.status.len())
            .filter(|&i| self.is_ready(i))
            .collect();
        for &i in &ready {
            self.status[i] = StepStatus::Running;
        }
        ready
    }

    /// Marks a Running `step` Succeeded (anything else is ignored), so the
    /// steps that need it may become ready.
    pub fn succeeded(&mut self, step: usize) {
        if let Some(s) = self.status.get_mut(step)
            && *s == StepStatus::Running
        {
            *s = StepStatus::Succeeded;
        }
    }

    /// Marks `step` Failed (when it is Waiting or Running; anything else is
    /// ignored) and every step depending on it, transitively,
    /// DependencyFailed (they never start). Returns those dependents, in
    /// step order.
    pub fn failed(&mut self, step: usize) -> Vec<usize> {
        match self.status.get_mut(step) {
            Some(s @ (StepStatus::Waiting | StepStatus::Running)) => *s = StepStatus::Failed,
            _ => return Vec::new(),
        }
        let mut marked = Vec::new();
        let mut todo = vec![step];
        while let Some(v) = todo.pop() {
            for &w in &self.dependents[v] {
                if self.status[w] == StepStatus::Waiting {
                    self.status[w] = StepStatus::DependencyFailed;
                    marked.push(w);
                    todo.push(w);
                }
            }
        }
        marked.sort_unstable();
        marked
    }

    /// The status of `step` (`Waiting` for an index out of range).
    pub fn status(&self, step: usize) -> StepStatus {
        self.status
            .get(step)
            .copied()
            .unwrap_or(StepStatus::Waiting)
    }

    /// The status of every step, in step order.
    pub fn statuses(&self) -> &[StepStatus] {
        &self.status
    }

    /// Nothing is Running and nothing more can start.
    pub fn is_done(&self) -> bool {
        !self.status.contains(&StepStatus::Running)
            && !(0..self.status.len()).any(|i| self.is_ready(i))
    }

    /// Whether any step failed (the call fails as a whole).
    pub fn any_failed(&self) -> bool {
        self.status.contains(&StepStatus::Failed)
    }

    fn is_ready(&self, i: usize) -> bool {
        // A step that needs itself (only in a hand-made `Dag`) never starts.
        self.status[i] == StepStatus::Waiting
            && self.deps[i]
                .iter()
                .all(|&j| j != i && self.status[j] == StepStatus::Succeeded)
    }
}
