//! The hot-object cache: recently read or written objects in memory, so
//! reads skip the store and its decoding. Bounded in bytes (an estimate of
//! each object's size), evicting by quick_cache's CLOCK-Pro policy.
//!
//! Writers are authoritative: every committed change is put in the cache
//! after its commit (a delete removes the entry: creates run outside the
//! object's inbox, so a late delete must not bury a newer create). A
//! reader that loaded from the store fills the cache, absent objects as
//! tombstones, only if no write to a key of its stripe happened since it
//! started loading (a write epoch per stripe, checked and bumped under the
//! stripe's lock). So a read that raced a commit can never put back an
//! older state, even when the newer one was evicted in between. A failed
//! commit forgets the object (its state is unknown).

use std::hash::BuildHasher;
use std::sync::Arc;

use oprc_core::ObjectRecord;
use parking_lot::Mutex;

use crate::types::ObjectKey;

const STRIPES: usize = 64;
/// Bookkeeping per entry beyond the object's own bytes.
const ENTRY_OVERHEAD: u64 = 96;

/// What the cache knows of an object.
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    Live(Arc<ObjectRecord>),
    /// Known not to exist (deleted, or never created).
    Gone,
}

#[derive(Clone)]
struct Entry {
    slot: Slot,
    weight: u64,
}

#[derive(Clone)]
struct Weigh;

impl quick_cache::Weighter<ObjectKey, Entry> for Weigh {
    fn weight(&self, _key: &ObjectKey, entry: &Entry) -> u64 {
        entry.weight
    }
}

/// Where a reader stood before it loaded: pass it back to [`ObjectCache::fill`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

pub(crate) struct ObjectCache {
    entries: Option<quick_cache::sync::Cache<ObjectKey, Entry, Weigh>>,
    epochs: Vec<Mutex<u64>>,
    hasher: std::collections::hash_map::RandomState,
}

impl ObjectCache {
    /// A cache holding about `bytes` of objects (0 disables it).
    pub fn new(bytes: u64) -> Self {
        let entries = (bytes > 0).then(|| {
            let estimated_items = usize::try_from(bytes / 2048).unwrap_or(usize::MAX).max(64);
            quick_cache::sync::Cache::with_weighter(estimated_items, bytes, Weigh)
        });
        Self {
            entries,
            epochs: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            hasher: Default::default(),
        }
    }

    fn epoch(&self, key: &ObjectKey) -> &Mutex<u64> {
        &self.epochs[(self.hasher.hash_one(key) as usize) % STRIPES]
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Slot> {
        self.entries.as_ref()?.get(key).map(|e| e.slot)
    }

    /// Call before loading `key` from the store.
    pub fn ticket(&self, key: &ObjectKey) -> Ticket {
        Ticket(*self.epoch(key).lock())
    }

    /// Read path: remembers what the store said, unless a writer got there
    /// first (or since the ticket was taken).
    pub fn fill(&self, key: ObjectKey, obj: Option<Arc<ObjectRecord>>, ticket: Ticket) {
        let Some(entries) = &self.entries else { return };
        let epoch = self.epoch(&key).lock();
        if *epoch == ticket.0 && entries.peek(&key).is_none() {
            let entry = entry(&key, obj);
            entries.insert(key, entry);
        }
    }

    /// Write path: the state just committed.
    pub fn set(&self, key: ObjectKey, obj: Arc<ObjectRecord>) {
        let Some(entries) = &self.entries else { return };
        let entry = entry(&key, Some(obj));
        let mut epoch = self.epoch(&key).lock();
        *epoch += 1;
        entries.insert(key, entry);
    }

    /// The state is unknown (a commit failed) or gone: read it again next
    /// time.
    pub fn forget(&self, key: &ObjectKey) {
        let Some(entries) = &self.entries else { return };
        let mut epoch = self.epoch(key).lock();
        *epoch += 1;
        entries.remove(key);
    }

    /// The estimated bytes held.
    pub fn weight(&self) -> u64 {
        self.entries.as_ref().map_or(0, |e| e.weight())
    }
}

fn entry(key: &ObjectKey, obj: Option<Arc<ObjectRecord>>) -> Entry {
    let key_bytes = (key.0.as_str().len() + key.1.as_str().len()) as u64;
    let object = obj.as_deref().map_or(0, |o| {
        let files: usize = o.meta.ver_ids.iter().map(|(k, v)| k.len() + v.len()).sum();
        let refs: usize = o
            .meta
            .refs
            .iter()
            .map(|(k, v)| k.len() + v.as_str().len())
            .sum();
        files + refs + json_size(&o.data)
    });
    Entry {
        slot: obj.map_or(Slot::Gone, Slot::Live),
        weight: ENTRY_OVERHEAD + 2 * key_bytes + object as u64,
    }
}

/// A cheap estimate of a JSON value's size in memory. Values come from
/// parsers whose nesting is bounded, so the recursion is too.
pub(crate) fn json_size(v: &serde_json::Value) -> usize {
    use serde_json::Value as V;
    const NODE: usize = 32;
    match v {
        V::Null | V::Bool(_) | V::Number(_) => NODE,
        V::String(s) => NODE + s.len(),
        V::Array(items) => NODE + items.iter().map(json_size).sum::<usize>(),
        V::Object(map) => {
            NODE + map
                .iter()
                .map(|(k, v)| NODE + k.len() + json_size(v))
                .sum::<usize>()
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

    fn obj(rev: u64) -> Arc<ObjectRecord> {
        let mut o = ObjectRecord::new(key(0).0, key(0).1, serde_json::json!({"k": "v"}));
        o.meta.revision = rev;
        Arc::new(o)
    }

    fn revision(c: Option<Slot>) -> Option<u64> {
        match c {
            Some(Slot::Live(o)) => Some(o.meta.revision),
            _ => None,
        }
    }

    #[test]
    fn a_late_reader_never_overwrites_a_writer() {
        let cache = ObjectCache::new(1 << 20);
        let t = cache.ticket(&key(0));
        cache.set(key(0), obj(2));
        cache.fill(key(0), Some(obj(1)), t);
        assert_eq!(revision(cache.get(&key(0))), Some(2));
        // A delete forgets, so a stale read that started before it cannot
        // resurrect the object.
        let t = cache.ticket(&key(0));
        cache.forget(&key(0));
        cache.fill(key(0), Some(obj(2)), t);
        assert!(cache.get(&key(0)).is_none());
        // Absence read from the store is remembered.
        let t = cache.ticket(&key(0));
        cache.fill(key(0), None, t);
        assert!(matches!(cache.get(&key(0)), Some(Slot::Gone)));
    }

    #[test]
    fn a_reader_that_raced_an_evicted_write_does_not_fill() {
        let cache = ObjectCache::new(1 << 20);
        let t = cache.ticket(&key(0));
        cache.set(key(0), obj(2));
        // The newer state left the cache (evicted, or forgotten).
        cache.entries.as_ref().unwrap().remove(&key(0));
        cache.fill(key(0), Some(obj(1)), t);
        assert!(cache.get(&key(0)).is_none(), "stale state put back");
        let t = cache.ticket(&key(0));
        cache.fill(key(0), Some(obj(2)), t);
        assert_eq!(revision(cache.get(&key(0))), Some(2));
    }

    #[test]
    fn the_cache_is_bounded_in_bytes() {
        let cache = ObjectCache::new(64 * 1024);
        let big = {
            let mut o = ObjectRecord::new(
                key(0).0,
                key(0).1,
                serde_json::json!({"blob": "x".repeat(4096)}),
            );
            o.meta.revision = 1;
            Arc::new(o)
        };
        for i in 0..1000 {
            let t = cache.ticket(&key(i));
            cache.fill(key(i), Some(big.clone()), t);
            let t = cache.ticket(&key(i + 5000));
            cache.fill(key(i + 5000), None, t);
        }
        assert!(cache.weight() <= 64 * 1024, "{}", cache.weight());
        let off = ObjectCache::new(0);
        off.set(key(1), obj(1));
        assert!(off.get(&key(1)).is_none());
    }
}
