//! Per-object FIFO inboxes (localized locking, G1), bounded.
//!
//! Every mutating call on an object goes into that object's inbox; one
//! worker task per non-empty inbox runs them in arrival order and retires
//! when the inbox is empty. Only the map of inboxes is locked, briefly,
//! never across an await. An inbox holds at most `per_object` calls: a
//! waiting caller is refused beyond that (`429`), the async consumer waits
//! for room instead (backpressure, never a dropped call).

use std::collections::HashMap;
use std::hash::BuildHasher;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::types::ObjectKey;

const SHARDS: usize = 64;

/// All inboxes of this node, holding jobs of type `J`.
pub(crate) struct Inboxes<J> {
    shards: Vec<Mutex<HashMap<ObjectKey, mpsc::Sender<J>>>>,
    hasher: std::collections::hash_map::RandomState,
    per_object: usize,
}

/// The outcome of a push.
pub(crate) enum Pushed<J> {
    /// Queued behind the running jobs.
    Queued,
    /// The object had no inbox: one was opened with the job in it; the
    /// caller starts its worker with this receiver.
    Opened(mpsc::Receiver<J>),
    /// The inbox is full.
    Full(J),
}

impl<J> Inboxes<J> {
    pub fn new(per_object: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
            per_object: per_object.max(1),
        }
    }

    fn shard(&self, key: &ObjectKey) -> &Mutex<HashMap<ObjectKey, mpsc::Sender<J>>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    fn open(
        &self,
        map: &mut HashMap<ObjectKey, mpsc::Sender<J>>,
        key: &ObjectKey,
        job: J,
    ) -> mpsc::Receiver<J> {
        let (tx, rx) = mpsc::channel(self.per_object);
        if tx.try_send(job).is_err() {
            unreachable!("a new channel has room for one job");
        }
        map.insert(key.clone(), tx);
        rx
    }

    /// Appends a job, or opens the object's inbox, or refuses when full.
    pub fn push(&self, key: &ObjectKey, job: J) -> Pushed<J> {
        let mut map = self.shard(key).lock();
        let job = match map.get(key) {
            Some(tx) => match tx.try_send(job) {
                Ok(()) => return Pushed::Queued,
                Err(mpsc::error::TrySendError::Full(job)) => return Pushed::Full(job),
                // Its worker is gone (it panicked): open a new inbox.
                Err(mpsc::error::TrySendError::Closed(job)) => job,
            },
            None => job,
        };
        Pushed::Opened(self.open(&mut map, key, job))
    }

    /// Appends a job, waiting for room when the inbox is full. `Some` when
    /// an inbox was opened (start its worker).
    pub async fn push_waiting(&self, key: &ObjectKey, mut job: J) -> Option<mpsc::Receiver<J>> {
        loop {
            let tx = {
                let mut map = self.shard(key).lock();
                let Some(tx) = map.get(key) else {
                    return Some(self.open(&mut map, key, job));
                };
                match tx.try_send(job) {
                    Ok(()) => return None,
                    Err(mpsc::error::TrySendError::Full(back)) => {
                        job = back;
                        tx.clone()
                    }
                    Err(mpsc::error::TrySendError::Closed(back)) => {
                        return Some(self.open(&mut map, key, back));
                    }
                }
            };
            // Wait for room outside the lock; then send under it, and only
            // into the inbox that is still the object's: a worker retires
            // under this lock, so a job sent here is never left in a
            // channel nobody reads.
            let Ok(permit) = tx.reserve().await else {
                continue;
            };
            let map = self.shard(key).lock();
            if map.get(key).is_some_and(|t| t.same_channel(&tx)) {
                permit.send(job);
                return None;
            }
        }
    }

    /// Retires the inbox if no job is queued, else hands back the next one.
    /// Pushes send under the same lock, so an empty inbox seen here stays
    /// empty.
    pub fn retire(&self, key: &ObjectKey, rx: &mut mpsc::Receiver<J>) -> Option<J> {
        let mut map = self.shard(key).lock();
        match rx.try_recv() {
            Ok(job) => Some(job),
            Err(_) => {
                map.remove(key);
                None
            }
        }
    }

    /// Number of objects with a busy inbox.
    pub fn busy(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use oprc_core::{ClassKey, ObjectId};

    use super::*;

    fn key() -> ObjectKey {
        (ClassKey::new("t.c").unwrap(), ObjectId::new("o").unwrap())
    }

    #[test]
    fn the_first_push_opens_and_a_full_inbox_refuses() {
        let inboxes = Inboxes::new(2);
        let Pushed::Opened(mut rx) = inboxes.push(&key(), 1) else {
            panic!("opens")
        };
        assert!(matches!(inboxes.push(&key(), 2), Pushed::Queued));
        assert!(matches!(inboxes.push(&key(), 3), Pushed::Full(3)));
        assert_eq!(rx.try_recv().ok(), Some(1));
        assert_eq!(inboxes.retire(&key(), &mut rx), Some(2));
        assert_eq!(inboxes.retire(&key(), &mut rx), None);
        assert_eq!(inboxes.busy(), 0);
    }

    #[tokio::test]
    async fn a_waiting_push_gets_in_once_there_is_room() {
        let inboxes = std::sync::Arc::new(Inboxes::new(1));
        let Pushed::Opened(mut rx) = inboxes.push(&key(), 1) else {
            panic!("opens")
        };
        let waiting = tokio::spawn({
            let inboxes = inboxes.clone();
            async move { inboxes.push_waiting(&key(), 2).await.is_none() }
        });
        assert_eq!(rx.recv().await, Some(1));
        assert!(waiting.await.unwrap(), "queued behind, no new inbox");
        assert_eq!(rx.recv().await, Some(2));
    }

    #[tokio::test]
    async fn a_waiting_push_after_retirement_opens_a_new_inbox() {
        let inboxes = Inboxes::new(1);
        let Pushed::Opened(mut rx) = inboxes.push(&key(), 1) else {
            panic!("opens")
        };
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(inboxes.retire(&key(), &mut rx), None);
        drop(rx);
        let mut again = inboxes.push_waiting(&key(), 2).await.expect("opens anew");
        assert_eq!(again.recv().await, Some(2));
    }
}
