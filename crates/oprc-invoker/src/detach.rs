//! Running a call's work in its caller's task without tying the work to
//! the caller (G10): the work is polled inline until the caller has its
//! answer, and whatever is left of it then, or when the caller goes away
//! mid-call, is moved to a task of its own. A boxed future can move between
//! tasks while half done, so nothing is ever cut short, and a call on an
//! idle object costs no task hop.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

/// A call's work, boxed where it is made: the futures of the callers that
/// wait on it then hold a pointer, not the work's whole state.
pub(crate) type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Work that moves to a task of its own when dropped unfinished.
struct Detached {
    work: Option<Work>,
    tracker: TaskTracker,
}

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(work) = self.work.take() {
            // Outside a runtime (the process is ending) there is nowhere to
            // run it.
            if tokio::runtime::Handle::try_current().is_ok() {
                self.tracker.spawn(work);
            }
        }
    }
}

/// Polls `work` in this task until `answer` is ready and returns it; what
/// is left of `work` then goes on in a task of `tracker`.
pub(crate) async fn until_answered<T>(
    tracker: &TaskTracker,
    work: Work,
    mut answer: oneshot::Receiver<T>,
) -> Result<T, oneshot::error::RecvError> {
    let mut detached = Detached {
        work: Some(work),
        tracker: tracker.clone(),
    };
    std::future::poll_fn(|cx| {
        if let Some(work) = detached.work.as_mut()
            && work.as_mut().poll(cx).is_ready()
        {
            detached.work = None;
        }
        // The work may have answered in the poll above (and then finished
        // too, which spares a spawn).
        // (Work that finished without answering dropped its sender, and
        // the receiver reports that.)
        Pin::new(&mut answer).poll(cx)
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn work_left_after_the_answer_goes_on_in_a_task() {
        let tracker = TaskTracker::new();
        let (tx, rx) = oneshot::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let f = finished.clone();
        let work = async move {
            let _ = tx.send(7);
            tokio::task::yield_now().await;
            f.store(true, Ordering::SeqCst);
        };
        assert_eq!(until_answered(&tracker, Box::pin(work), rx).await, Ok(7));
        tracker.close();
        tracker.wait().await;
        assert!(finished.load(Ordering::SeqCst), "the rest of the work ran");
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_leaves_the_work_running() {
        let tracker = TaskTracker::new();
        let (tx, rx) = oneshot::channel::<u8>();
        let (go, gate) = oneshot::channel::<()>();
        let finished = Arc::new(AtomicBool::new(false));
        let f = finished.clone();
        let work = async move {
            let _ = gate.await;
            f.store(true, Ordering::SeqCst);
            let _ = tx.send(1);
        };
        let caller = until_answered(&tracker, Box::pin(work), rx);
        // The caller waits a moment, then gives up.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(5), caller)
                .await
                .is_err()
        );
        let _ = go.send(());
        tracker.close();
        tracker.wait().await;
        assert!(
            finished.load(Ordering::SeqCst),
            "the work was not cut short"
        );
    }

    #[tokio::test]
    async fn work_that_answers_nothing_reports_it() {
        let tracker = TaskTracker::new();
        let (tx, rx) = oneshot::channel::<u8>();
        let work = async move { drop(tx) };
        assert!(until_answered(&tracker, Box::pin(work), rx).await.is_err());
    }
}
