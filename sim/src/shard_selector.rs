//! KEP-5866 server-side sharded LIST and WATCH (alpha in Kubernetes 1.36, feature gate
//! `ServerSideShardedListWatch`): the `shardSelector` query parameter.
//!
//! The grammar is the one `k8s.io/apiserver/pkg/sharding.Parse` accepts: one or more
//! `shardRange(FIELD, 'START', 'END')` terms joined by `||`, where FIELD is
//! `object.metadata.uid` or `object.metadata.namespace`, and START/END are `0x`-prefixed hex
//! numbers (END may be `0x10000000000000000`, 2^64). An object matches when the 64-bit FNV-1a
//! hash of the field's value lies in `[START, END)` of any term. A list answered with a
//! selector echoes it in `metadata.shardInfo.selector`.

use serde_json::Value;

/// The 64-bit FNV-1a hash of `bytes` (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Uid,
    Namespace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Range {
    field: Field,
    start: u128,
    end: u128,
}

/// A parsed `shardSelector`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSelector {
    ranges: Vec<Range>,
    raw: String,
}

fn hex(s: &str) -> Result<u128, String> {
    let t = s.trim();
    let t = t
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .ok_or_else(|| format!("expected a quoted hex string, got {s:?}"))?;
    let digits = t
        .strip_prefix("0x")
        .ok_or_else(|| format!("hex value must start with 0x: {t:?}"))?;
    if digits.is_empty() || digits.len() > 17 {
        return Err(format!("invalid hex value {t:?}"));
    }
    let v = u128::from_str_radix(digits, 16).map_err(|_| format!("invalid hex value {t:?}"))?;
    if v > 1u128 << 64 {
        return Err(format!("hex value {t:?} is above 0x10000000000000000"));
    }
    Ok(v)
}

impl ShardSelector {
    /// Parses a selector; errors are the message of a 400 Bad Request.
    pub fn parse(raw: &str) -> Result<ShardSelector, String> {
        let mut ranges = Vec::new();
        for term in raw.split("||") {
            let term = term.trim();
            let inner = term
                .strip_prefix("shardRange(")
                .and_then(|t| t.strip_suffix(')'))
                .ok_or_else(|| format!("invalid shard selector term {term:?}: expected shardRange(field, 'start', 'end')"))?;
            let parts: Vec<&str> = inner.split(',').collect();
            let [field, start, end] = parts.as_slice() else {
                return Err(format!("shardRange takes 3 arguments: {term:?}"));
            };
            let field = match field.trim() {
                "object.metadata.uid" => Field::Uid,
                "object.metadata.namespace" => Field::Namespace,
                f => {
                    return Err(format!(
                        "unsupported shardRange field {f:?}: supported are object.metadata.uid and object.metadata.namespace"
                    ));
                }
            };
            let (start, end) = (hex(start)?, hex(end)?);
            if start >= end {
                return Err(format!("shardRange start must be below end: {term:?}"));
            }
            ranges.push(Range { field, start, end });
        }
        Ok(ShardSelector {
            ranges,
            raw: raw.to_string(),
        })
    }

    /// The selector as the request sent it (what `shardInfo.selector` echoes).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Whether `obj` lies in any of the ranges.
    pub fn matches(&self, obj: &Value) -> bool {
        self.ranges.iter().any(|r| {
            let key = match r.field {
                Field::Uid => "uid",
                Field::Namespace => "namespace",
            };
            let v = obj
                .get("metadata")
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .unwrap_or("");
            let h = u128::from(fnv1a64(v.as_bytes()));
            r.start <= h && h < r.end
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn ranges_select_by_namespace_hash() {
        let all = ShardSelector::parse(
            "shardRange(object.metadata.namespace, '0x0000000000000000', '0x8000000000000000') || shardRange(object.metadata.namespace, '0x8000000000000000', '0x10000000000000000')",
        )
        .unwrap();
        let low = ShardSelector::parse(
            "shardRange(object.metadata.namespace, '0x0000000000000000', '0x8000000000000000')",
        )
        .unwrap();
        let a = json!({"metadata": {"namespace": "a"}}); // 0xaf63... high half
        assert!(all.matches(&a));
        assert!(!low.matches(&a));
        assert!(ShardSelector::parse("shardRange(object.metadata.name, '0x0', '0x1')").is_err());
        assert!(ShardSelector::parse("shardRange(object.metadata.uid, '0x1', '0x1')").is_err());
        assert!(ShardSelector::parse("bogus").is_err());
    }
}
