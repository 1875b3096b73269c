//! Diffs between versions of an object, for resources with diff on.
//!
//! The previous version is kept as compact JSON bytes (not a `serde_json::Value` tree, which
//! takes several times the bytes) without what never takes part in a diff: `managedFields`
//! (often as large as the rest of the metadata), `kind` and `apiVersion` (fixed per stream,
//! and missing from list items of built-in types, which would make every first diff after a
//! list show them as added). A Secret's `data` and `stringData` values are kept only as keyed
//! hashes: a changed value is still a `replace` (shown `"<redacted>"`), but faro holds no secret
//! in memory.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::diff::{DiffOptions, write_diff};
use crate::gvr::Gvr;

/// Which resources are diffed, and how.
#[derive(Debug, Clone, Default)]
pub(crate) struct DiffSettings {
    /// Every resource (`--diff`).
    pub all: bool,
    /// These resources (config entries with `diff: true`).
    pub gvrs: HashSet<Gvr>,
    /// Ignored paths.
    pub options: DiffOptions,
}

impl DiffSettings {
    /// The options for `gvr`, if it is diffed (Secrets always redacted).
    pub fn for_gvr(settings: &Option<Arc<DiffSettings>>, gvr: &Gvr) -> Option<Arc<DiffOptions>> {
        let settings = settings.as_ref()?;
        if !settings.all && !settings.gvrs.contains(gvr) {
            return None;
        }
        let secret = gvr.group.is_empty() && gvr.resource == "secrets";
        Some(Arc::new(settings.options.clone().redact(secret)))
    }
}

/// The version of an object as diffs compare it; None when it does not decode.
pub(crate) fn comparable(raw: &str, secret: bool) -> Option<Value> {
    let mut object: Value = serde_json::from_str(raw).ok()?;
    let map = object.as_object_mut()?;
    map.remove("kind");
    map.remove("apiVersion");
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if secret {
        for field in ["data", "stringData"] {
            match map.get_mut(field) {
                Some(Value::Object(values)) => {
                    for value in values.values_mut() {
                        *value = Value::String(keyed_hash(value));
                    }
                }
                None | Some(Value::Null) => {}
                Some(other) => *other = Value::String(keyed_hash(other)),
            }
        }
    }
    Some(object)
}

/// A hash of a secret value under a key drawn at random once per process: equal values
/// compare equal, and nothing of the value can be read back.
fn keyed_hash(value: &Value) -> String {
    static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let key = KEY.get_or_init(std::collections::hash_map::RandomState::new);
    format!("#{:016x}", key.hash_one(value.to_string()))
}

/// The bytes kept of a version.
pub(crate) fn stored(object: &Value) -> Box<[u8]> {
    serde_json::to_vec(object)
        .unwrap_or_default()
        .into_boxed_slice()
}

/// Appends the diff from the kept bytes of the previous version to `new` to `out`; false when
/// the previous version does not decode (then there is no diff to show).
pub(crate) fn diff(previous: &[u8], new: &Value, options: &DiffOptions, out: &mut Vec<u8>) -> bool {
    let Ok(old) = serde_json::from_slice::<Value>(previous) else {
        return false;
    };
    write_diff(&old, new, options, out);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_never_takes_part_is_left_out_and_secrets_are_hashed() {
        let raw = r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","managedFields":[{"manager":"m"}]},"data":{"p":"c2VjcmV0"},"stringData":"x"}"#;
        let v = comparable(raw, true).unwrap();
        assert!(v.get("kind").is_none() && v.get("apiVersion").is_none());
        assert!(v["metadata"].get("managedFields").is_none());
        let hashed = v["data"]["p"].as_str().unwrap();
        assert!(hashed.starts_with('#') && !hashed.contains("c2VjcmV0"));
        assert_eq!(v["data"]["p"], comparable(raw, true).unwrap()["data"]["p"]);
        assert_ne!(
            v["data"]["p"],
            comparable(&raw.replace("c2VjcmV0", "b3RoZXI="), true).unwrap()["data"]["p"]
        );
        assert!(v["stringData"].as_str().unwrap().starts_with('#'));
        let plain = comparable(raw, false).unwrap();
        assert_eq!(plain["data"]["p"], "c2VjcmV0");
        assert!(comparable("[1]", false).is_none());
        assert!(comparable("{", false).is_none());
    }
}
