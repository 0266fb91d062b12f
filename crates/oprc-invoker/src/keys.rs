//! Idempotency keys of calls running now: a repeat of a running call waits
//! for its answer instead of running again; a key reused for a different
//! request is refused. (Finished calls are remembered by their durable
//! records; see `handle.rs`.)
//!
//! An entry lives exactly as long as its leader's [`Lead`] guard, which the
//! detached task running the call owns: a caller that goes away cannot
//! remove it early.

use std::collections::HashMap;
use std::sync::Arc;

use oprc_core::{InvocationRequest, InvocationResponse};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::Error;

type Answer = watch::Receiver<Option<InvocationResponse>>;

struct Running {
    req: InvocationRequest,
    answer: Answer,
}

/// The running keys of this node. Bounded by the calls admitted.
#[derive(Default)]
pub(crate) struct Keys {
    running: Mutex<HashMap<String, Running>>,
}

/// The outcome of [`Keys::claim`].
pub(crate) enum Claim {
    /// No call with this key runs: this one does.
    Lead(Lead),
    /// The same request runs already: wait for its answer.
    Follow(Answer),
}

/// The running call of a key. Dropping it frees the key; waiters that got
/// no answer then claim it again.
pub(crate) struct Lead {
    keys: Arc<Keys>,
    key: String,
    answer: watch::Sender<Option<InvocationResponse>>,
}

impl Lead {
    /// Gives every waiter this answer.
    pub fn finish(&self, resp: &InvocationResponse) {
        self.answer.send_replace(Some(resp.clone()));
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        self.keys.running.lock().remove(&self.key);
    }
}

impl Keys {
    /// Leads or follows the call running with `key`; refuses a different
    /// request under a running key.
    pub fn claim(self: &Arc<Self>, key: &str, req: &InvocationRequest) -> Result<Claim, Error> {
        let mut running = self.running.lock();
        if let Some(r) = running.get(key) {
            if !same_call(&r.req, req) {
                return Err(reused(key, &r.req));
            }
            return Ok(Claim::Follow(r.answer.clone()));
        }
        let (tx, rx) = watch::channel(None);
        running.insert(
            key.to_owned(),
            Running {
                req: req.clone(),
                answer: rx,
            },
        );
        Ok(Claim::Lead(Lead {
            keys: self.clone(),
            key: key.to_owned(),
            answer: tx,
        }))
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.running.lock().len()
    }
}

/// Whether `again` may take the answer of `first`, under one key: the same
/// request, or the same invocation of the same binding on the same object
/// (a macro step run again: its inputs may render differently, but it is
/// the same step of the same macro; a step that is another call under the
/// same name, after the package changed, is not).
pub(crate) fn same_call(first: &InvocationRequest, again: &InvocationRequest) -> bool {
    let same_step = first.inv_id == again.inv_id
        && first.cls == again.cls
        && first.oid == again.oid
        && first.fb == again.fb
        && first.macro_revision == again.macro_revision;
    same_step || first.same_call(again)
}

/// The refusal of a key used for `first` and now for another request.
pub(crate) fn reused(key: &str, first: &InvocationRequest) -> Error {
    let target = match &first.oid {
        Some(oid) => format!("`{}` on object `{oid}` of `{}`", first.fb, first.cls),
        None => format!("`{}` of class `{}`", first.fb, first.cls),
    };
    Error::KeyReused {
        key: key.to_owned(),
        first: target,
    }
}

/// Waits for a followed call's answer; `None` when its leader ended
/// without one (refused before it ran): claim again.
pub(crate) async fn follow(mut answer: Answer) -> Option<InvocationResponse> {
    match answer.wait_for(Option::is_some).await {
        Ok(resp) => resp.clone(),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use oprc_core::{ClassKey, ObjectId};

    use super::*;

    fn req(oid: &str) -> InvocationRequest {
        InvocationRequest::new(
            ClassKey::new("t.c").unwrap(),
            Some(ObjectId::new(oid).unwrap()),
            "f",
        )
    }

    #[test]
    fn a_step_takes_the_answer_of_the_same_step_only() {
        let mut first = req("a");
        first.macro_revision = Some(7);
        first.args.insert("n".into(), "1".into());
        // The same step of the same macro, its inputs rendered otherwise.
        let mut again = first.clone();
        again.args.insert("n".into(), "2".into());
        assert!(same_call(&first, &again));
        // The same name in a changed macro, or another binding or object.
        let changed = InvocationRequest {
            macro_revision: Some(8),
            ..again.clone()
        };
        assert!(!same_call(&first, &changed));
        let other_fb = InvocationRequest {
            fb: "g".into(),
            ..again.clone()
        };
        assert!(!same_call(&first, &other_fb));
        let other_object = InvocationRequest {
            oid: Some(ObjectId::new("b").unwrap()),
            ..again
        };
        assert!(!same_call(&first, &other_object));
    }

    #[tokio::test]
    async fn a_repeat_follows_and_another_request_is_refused() {
        let keys = Arc::new(Keys::default());
        let Ok(Claim::Lead(lead)) = keys.claim("k", &req("a")) else {
            panic!("first claim leads");
        };
        let Ok(Claim::Follow(answer)) = keys.claim("k", &req("a")) else {
            panic!("repeat follows");
        };
        let err = keys
            .claim("k", &req("b"))
            .err()
            .expect("other object refused");
        assert!(matches!(err, Error::KeyReused { .. }), "{err}");
        let waiter = tokio::spawn(follow(answer));
        let resp =
            InvocationResponse::status(req("a").inv_id, oprc_core::InvocationStatus::Succeeded);
        lead.finish(&resp);
        drop(lead);
        assert_eq!(waiter.await.unwrap(), Some(resp));
        assert_eq!(keys.len(), 0, "the guard frees the key");
    }

    #[tokio::test]
    async fn followers_of_a_leader_without_answer_claim_again() {
        let keys = Arc::new(Keys::default());
        let Ok(Claim::Lead(lead)) = keys.claim("k", &req("a")) else {
            panic!("first claim leads");
        };
        let Ok(Claim::Follow(answer)) = keys.claim("k", &req("a")) else {
            panic!("repeat follows");
        };
        drop(lead);
        assert_eq!(follow(answer).await, None);
        assert!(matches!(keys.claim("k", &req("a")), Ok(Claim::Lead(_))));
    }
}
