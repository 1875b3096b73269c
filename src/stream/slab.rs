//! A keyed table laid out for a million entries: the entries end to end in one `Vec`, and a
//! hash index of 4-byte positions into it.
//!
//! A `HashMap<Uid, Tracked>` keeps its entries in the hash table itself, and hashbrown keeps a
//! table at most 7/8 full and doubles it: with 1,000,000 tracked objects it holds 2^21 buckets
//! of 73 bytes (153 MB) for 1,000,000 used ones, and while it doubles the old table lives
//! beside the new one (230 MB at once; faro's peak RSS was 252 MiB at a million ConfigMaps).
//! Here the half-empty table holds only `u32` positions (5 bytes a bucket with its control
//! byte), and the `Vec` of entries grows by copying dense entries only.
//!
//! Removal swaps the last entry into the hole (`Vec::swap_remove`) and repoints its index
//! entry, so the entries stay dense and positions are not stable across removals; iteration
//! order is arbitrary, as a `HashMap`'s is.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

/// Entries `(K, V)` found by key; see the module documentation.
#[derive(Debug)]
pub struct Slab<K, V, S> {
    entries: Vec<(K, V)>,
    /// Positions into `entries`, hashed by their entry's key.
    index: HashTable<u32>,
    hasher: S,
}

impl<K, V, S: Default> Default for Slab<K, V, S> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            index: HashTable::new(),
            hasher: S::default(),
        }
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> Slab<K, V, S> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Makes room for `more` entries.
    pub fn reserve(&mut self, more: usize) {
        let Self {
            entries,
            index,
            hasher,
        } = self;
        entries.reserve(more);
        index.reserve(more, |&at| hasher.hash_one(&entries[at as usize].0));
    }

    /// The hash of `key`, for the calls that take one (computed once per observation).
    pub fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The position of `key` (whose hash is `hash`).
    pub fn find(&self, hash: u64, key: &K) -> Option<usize> {
        self.index
            .find(hash, |&at| self.entries[at as usize].0 == *key)
            .map(|&at| at as usize)
    }

    /// The entry at `at` (a position [`Slab::find`] or [`Slab::push`] returned since the last
    /// removal).
    pub fn at_mut(&mut self, at: usize) -> (&K, &mut V) {
        let (key, value) = &mut self.entries[at];
        (key, value)
    }

    /// Adds `key` (whose hash is `hash`), which must not be present; returns its position.
    pub fn push(&mut self, hash: u64, key: K, value: V) -> usize {
        let Self {
            entries,
            index,
            hasher,
        } = self;
        let at = entries.len();
        // Positions are u32 (4-byte index buckets): no GVR holds four billion objects.
        let position = u32::try_from(at).unwrap_or(u32::MAX);
        entries.push((key, value));
        index.insert_unique(hash, position, |&at| {
            hasher.hash_one(&entries[at as usize].0)
        });
        at
    }

    /// Removes the entry at `at`, whose key hashes to `hash`.
    pub fn remove_at(&mut self, hash: u64, at: usize) -> (K, V) {
        if let Ok(found) = self.index.find_entry(hash, |&p| p as usize == at) {
            found.remove();
        }
        let last = self.entries.len() - 1;
        let removed = self.entries.swap_remove(at);
        if at != last {
            let moved = self.hasher.hash_one(&self.entries[at].0);
            if let Some(p) = self.index.find_mut(moved, |&p| p as usize == last) {
                *p = at as u32;
            }
        }
        removed
    }

    /// Every entry.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Every value.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::hash::RandomState;

    /// Random inserts and removals agree with a `HashMap` at every step.
    #[test]
    fn behaves_as_a_map_through_pushes_and_swap_removals() {
        let mut slab = Slab::<u64, u64, RandomState>::default();
        let mut map = HashMap::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = x % 500;
            let hash = slab.hash(&key);
            match slab.find(hash, &key) {
                Some(at) if x % 3 == 0 => {
                    let (k, v) = slab.remove_at(hash, at);
                    assert_eq!(map.remove(&k), Some(v));
                }
                Some(at) => {
                    *slab.at_mut(at).1 = step;
                    map.insert(key, step);
                }
                None => {
                    assert!(!map.contains_key(&key));
                    slab.push(hash, key, step);
                    map.insert(key, step);
                }
            }
            assert_eq!(slab.len(), map.len());
        }
        for (k, v) in &map {
            let at = slab.find(slab.hash(k), k).expect("present");
            assert_eq!(*slab.at_mut(at).1, *v);
        }
        let all: HashMap<u64, u64> = slab.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(all, map);
        for k in map.keys() {
            let hash = slab.hash(k);
            let at = slab.find(hash, k).expect("present");
            assert_eq!(slab.remove_at(hash, at).0, *k);
        }
        assert_eq!(slab.len(), 0);
    }
}
