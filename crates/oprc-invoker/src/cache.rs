//! The hot-object cache: recently read or written objects in memory, so
//! reads skip the store and its decoding.
//!
//! Writers are authoritative: every committed change (including a delete,
//! kept as a tombstone) is put in the cache after its commit. Readers only
//! fill a slot that is empty, so a reader that loaded an object just before
//! a commit can never overwrite the newer state the writer put there. A
//! failed commit forgets the object (its state is then unknown). Objects
//! are evicted at random when a shard is full.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use oprc_core::ObjectRecord;
use parking_lot::Mutex;

use crate::inbox::ObjectKey;

const SHARDS: usize = 64;

/// What the cache knows of an object.
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    Live(Arc<ObjectRecord>),
    /// Known not to exist (deleted, or never created).
    Gone,
}

pub(crate) struct ObjectCache {
    shards: Vec<Mutex<HashMap<ObjectKey, Slot>>>,
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl ObjectCache {
    /// A cache of about `capacity` objects (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &ObjectKey) -> &Mutex<HashMap<ObjectKey, Slot>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Slot> {
        if self.per_shard == 0 {
            return None;
        }
        self.shard(key).lock().get(key).cloned()
    }

    fn entry(obj: Option<Arc<ObjectRecord>>) -> Slot {
        obj.map_or(Slot::Gone, Slot::Live)
    }

    /// Read path: remembers what the store said, unless a writer got there
    /// first.
    pub fn fill(&self, key: ObjectKey, obj: Option<Arc<ObjectRecord>>) {
        if self.per_shard == 0 {
            return;
        }
        let mut map = self.shard(&key).lock();
        if map.contains_key(&key) {
            return;
        }
        self.make_room(&mut map);
        map.insert(key, Self::entry(obj));
    }

    /// Write path: the state just committed (`None`: deleted).
    pub fn set(&self, key: ObjectKey, obj: Option<Arc<ObjectRecord>>) {
        if self.per_shard == 0 {
            return;
        }
        let mut map = self.shard(&key).lock();
        if !map.contains_key(&key) {
            self.make_room(&mut map);
        }
        map.insert(key, Self::entry(obj));
    }

    /// The state is unknown (a commit failed): read it again next time.
    pub fn forget(&self, key: &ObjectKey) {
        self.shard(key).lock().remove(key);
    }

    fn make_room(&self, map: &mut HashMap<ObjectKey, Slot>) {
        if map.len() >= self.per_shard {
            // Hash maps iterate in a random order: this evicts at random.
            if let Some(victim) = map.keys().next().cloned() {
                map.remove(&victim);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use oprc_core::{ClassKey, ObjectId};

    use super::*;

    fn key(i: usize) -> ObjectKey {
        (
            ClassKey::new("t.c").unwrap(),
            ObjectId::new(format!("o{i}")).unwrap(),
        )
    }

    fn obj(rev: u64) -> ObjectRecord {
        let mut o = ObjectRecord::new(key(0).0, key(0).1, serde_json::json!({}));
        o.meta.revision = rev;
        o
    }

    fn revision(c: Option<Slot>) -> Option<u64> {
        match c {
            Some(Slot::Live(o)) => Some(o.meta.revision),
            _ => None,
        }
    }

    #[test]
    fn a_late_reader_never_overwrites_a_writer() {
        let cache = ObjectCache::new(100);
        cache.set(key(0), Some(Arc::new(obj(2))));
        cache.fill(key(0), Some(Arc::new(obj(1))));
        assert_eq!(revision(cache.get(&key(0))), Some(2));
        // A delete is remembered, so a stale read cannot resurrect it.
        cache.set(key(0), None);
        cache.fill(key(0), Some(Arc::new(obj(2))));
        assert!(matches!(cache.get(&key(0)), Some(Slot::Gone)));
        cache.forget(&key(0));
        assert!(cache.get(&key(0)).is_none());
    }

    #[test]
    fn capacity_is_bounded() {
        let cache = ObjectCache::new(SHARDS * 2);
        for i in 0..1000 {
            cache.fill(key(i), Some(Arc::new(obj(1))));
        }
        let total: usize = cache.shards.iter().map(|s| s.lock().len()).sum();
        assert!(total <= SHARDS * 2, "{total}");
        let off = ObjectCache::new(0);
        off.set(key(1), Some(Arc::new(obj(1))));
        assert!(off.get(&key(1)).is_none());
    }
}
