//! Sharding by namespace (`--shard i/N`): which namespaces one of N faro replicas owns.
//!
//! The hash is 64-bit FNV-1a over the namespace name's bytes, the hash KEP-5866 server-side
//! sharding (`shardSelector`, alpha in Kubernetes 1.36) computes, and the 2^64 hash space is cut
//! into N contiguous ranges: shard `i` owns `[start(i), start(i+1))` with
//! `start(i) = floor(i * 2^64 / N)`. Ranges rather than `hash % N`, so that the same partition
//! can be asked of the API server as one `shardRange(...)` and computed by faro itself when the
//! server does not support it. Cluster-scoped objects belong to shard 0.
//!
//! [`Watcher::shard`](crate::Watcher::shard) applies a shard to a watcher. The hash is of the
//! namespace's name, so a namespace never moves between shards while faro runs: namespaces
//! created or deleted change nothing of the others' owners. Changing N re-partitions every
//! namespace (run all shards with the same N).

use std::fmt;
use std::str::FromStr;

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// One shard of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// A shard that cannot exist (`N` < 1 or `i` ≥ `N`, or not `i/N`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid shard {0:?}: expected i/N with N >= 1 and 0 <= i < N, e.g. 0/3")]
pub struct ShardError(String);

impl Shard {
    /// Shard `index` of `count`.
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 || index >= count {
            return Err(ShardError(format!("{index}/{count}")));
        }
        Ok(Shard { index, count })
    }

    /// The index `i`.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The count `N`.
    pub fn count(&self) -> u32 {
        self.count
    }

    fn start(i: u32, n: u32) -> u128 {
        (u128::from(i) << 64) / u128::from(n)
    }

    /// The owned hash range `[start, end)`; `end` may be 2^64.
    pub fn range(&self) -> (u128, u128) {
        (
            Shard::start(self.index, self.count),
            Shard::start(self.index + 1, self.count),
        )
    }

    /// Whether this shard owns objects of `namespace` (`None` = cluster-scoped: shard 0).
    pub fn owns(&self, namespace: Option<&str>) -> bool {
        match namespace {
            None => self.index == 0,
            Some(ns) => {
                let h = u128::from(fnv1a64(ns.as_bytes()));
                let (s, e) = self.range();
                s <= h && h < e
            }
        }
    }

    /// The KEP-5866 `shardSelector` asking the server for this shard's namespaces.
    pub fn selector(&self) -> String {
        let (s, e) = self.range();
        let hex = |v: u128| {
            if v == 1u128 << 64 {
                "0x10000000000000000".to_string()
            } else {
                format!("0x{v:016x}")
            }
        };
        format!(
            "shardRange(object.metadata.namespace, '{}', '{}')",
            hex(s),
            hex(e)
        )
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let bad = || ShardError(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let i = i.trim().parse::<u32>().map_err(|_| bad())?;
        let n = n.trim().parse::<u32>().map_err(|_| bad())?;
        Shard::new(i, n).map_err(|_| bad())
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!("1/3".parse::<Shard>(), Shard::new(1, 3));
        for bad in ["3/3", "0/0", "-1/3", "x", "1/", "/3", "1/3/4"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_namespace_has_exactly_one_owner() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        let mut counts = [0usize; 3];
        for k in 0..3000 {
            let ns = format!("team-{k}");
            let owners: Vec<usize> = (0..3).filter(|&i| shards[i].owns(Some(&ns))).collect();
            assert_eq!(owners.len(), 1, "{ns}");
            counts[owners[0]] += 1;
        }
        assert!(counts.iter().all(|&c| c > 700), "{counts:?}");
        assert!(shards[0].owns(None) && !shards[1].owns(None));
        assert!(Shard::new(0, 1).unwrap().owns(Some("any")));
    }

    #[test]
    fn selectors_cover_the_hash_space() {
        assert_eq!(
            Shard::new(0, 2).unwrap().selector(),
            "shardRange(object.metadata.namespace, '0x0000000000000000', '0x8000000000000000')"
        );
        assert_eq!(
            Shard::new(1, 2).unwrap().selector(),
            "shardRange(object.metadata.namespace, '0x8000000000000000', '0x10000000000000000')"
        );
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }
}
