//! Diffs between versions of an object, for resources with diff on.
//!
//! The previous version is kept as the server's JSON bytes (not a `serde_json::Value` tree,
//! which takes several times the bytes) without `managedFields` (often as large as the rest of
//! the metadata), cut out as bytes. Diffs then parse only the members whose text changed
//! ([`write_diff_str`]). A Secret's `data` and `stringData` values are kept only as keyed
//! hashes: a changed value is still a `replace` (shown `"<redacted>"`), but faro holds no
//! secret in memory.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::diff::{DiffOptions, write_diff_str};
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

/// The bytes kept of a version for the next diff: the object's text with its managedFields
/// array emptied (a byte splice: `[]` in place of the array, never parsed); a Secret's
/// decoded, with its `data` and `stringData` values as keyed hashes. None when a Secret does
/// not decode.
pub(crate) fn keep(raw: &str, managed_fields: Option<&[u8]>, secret: bool) -> Option<Box<[u8]>> {
    if secret {
        return comparable(raw, true).map(|v| stored(&v));
    }
    // The array is a slice of `raw` (the scanner's): find where.
    let cut = managed_fields.and_then(|array| {
        let start = (array.as_ptr() as usize).checked_sub(raw.as_ptr() as usize)?;
        let end = start.checked_add(array.len())?;
        (end <= raw.len() && array.len() > 2).then_some((start, end))
    });
    Some(match cut {
        Some((start, end)) => {
            let mut kept = Vec::with_capacity(raw.len() - (end - start) + 2);
            kept.extend_from_slice(&raw.as_bytes()[..start]);
            kept.extend_from_slice(b"[]");
            kept.extend_from_slice(&raw.as_bytes()[end..]);
            kept.into_boxed_slice()
        }
        None => raw.as_bytes().into(),
    })
}

/// The version of a Secret as diffs compare it; None when it does not decode.
fn comparable(raw: &str, secret: bool) -> Option<Value> {
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

/// The bytes kept of a decoded version.
fn stored(object: &Value) -> Box<[u8]> {
    serde_json::to_vec(object)
        .unwrap_or_default()
        .into_boxed_slice()
}

/// Appends the diff between two kept versions to `out`; false when one does not decode (then
/// there is no diff to show).
pub(crate) fn diff(previous: &[u8], new: &[u8], options: &DiffOptions, out: &mut Vec<u8>) -> bool {
    let (Ok(old), Ok(new)) = (std::str::from_utf8(previous), std::str::from_utf8(new)) else {
        return false;
    };
    write_diff_str(old, new, options, out).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_fields_are_cut_out_as_bytes() {
        let raw =
            r#"{"metadata":{"name":"a","managedFields":[{"manager":"m"}],"uid":"u"},"data":{}}"#;
        let at = raw.find("[{").unwrap();
        let array = &raw.as_bytes()[at..at + r#"[{"manager":"m"}]"#.len()];
        let kept = keep(raw, Some(array), false).unwrap();
        assert_eq!(
            std::str::from_utf8(&kept).unwrap(),
            r#"{"metadata":{"name":"a","managedFields":[],"uid":"u"},"data":{}}"#
        );
        // A slice of something else is not cut.
        let other = b"[{}]".to_vec();
        assert_eq!(&*keep(raw, Some(&other), false).unwrap(), raw.as_bytes());
        let secret = keep(r#"{"data":{"p":"c2VjcmV0"}}"#, None, true).unwrap();
        assert!(!std::str::from_utf8(&secret).unwrap().contains("c2VjcmV0"));
    }

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
