//! Small helpers over JSON objects: metadata accessors, timestamps, uids and name rules.
//! Objects are plain `serde_json::Value`s; nothing here touches the store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// The `metadata.<field>` string of an object, if present.
/// Serializes an object with its top-level keys in the order kube-apiserver writes them:
/// `kind`, `apiVersion`, `metadata`, the body (`data`, `spec`, …), `status` last. The apiserver
/// encodes Go structs in field order (TypeMeta, ObjectMeta, then the rest), while a
/// `serde_json::Value` map is sorted by key and would put `data` before `metadata`; clients
/// that read metadata first (faro, for one) would see an unrealistically slow server. Nested
/// maps stay sorted, which is what Go's encoding/json does for map-typed fields.
pub struct Canonical<'a>(pub &'a Value);

impl serde::Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WithManagedFields {
            object: self.0,
            managed_fields: None,
        }
        .serialize(serializer)
    }
}

/// [`Canonical`] with `metadata.managedFields` taken from elsewhere: objects that share one
/// managedFields value (bulk loads) are serialized as if each carried it.
pub struct WithManagedFields<'a> {
    /// The object (its own `metadata.managedFields`, if any, are replaced).
    pub object: &'a Value,
    /// The managedFields to write into `metadata`.
    pub managed_fields: Option<&'a Value>,
}

impl serde::Serialize for WithManagedFields<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Value::Object(map) = self.object else {
            return self.object.serialize(serializer);
        };
        let mut out = serializer.serialize_map(Some(map.len()))?;
        for key in ["kind", "apiVersion", "metadata"] {
            match (map.get(key), self.managed_fields) {
                (Some(Value::Object(meta)), Some(mf)) if key == "metadata" => {
                    out.serialize_entry(key, &MetaWith { meta, mf })?;
                }
                (Some(v), _) => out.serialize_entry(key, v)?,
                (None, _) => {}
            }
        }
        for (key, v) in map {
            if !matches!(key.as_str(), "kind" | "apiVersion" | "metadata" | "status") {
                out.serialize_entry(key, v)?;
            }
        }
        if let Some(v) = map.get("status") {
            out.serialize_entry("status", v)?;
        }
        out.end()
    }
}

/// A metadata map with `managedFields` inserted in key order.
struct MetaWith<'a> {
    meta: &'a Map<String, Value>,
    mf: &'a Value,
}

impl serde::Serialize for MetaWith<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut out = serializer.serialize_map(None)?;
        let mut done = false;
        for (k, v) in self.meta {
            if k == "managedFields" {
                continue;
            }
            if !done && k.as_str() > "managedFields" {
                out.serialize_entry("managedFields", self.mf)?;
                done = true;
            }
            out.serialize_entry(k, v)?;
        }
        if !done {
            out.serialize_entry("managedFields", self.mf)?;
        }
        out.end()
    }
}

/// An object as JSON text in the apiserver's key order (see [`Canonical`]).
pub fn to_canonical_string(obj: &Value) -> String {
    // Serializing a Value into memory cannot fail.
    serde_json::to_string(&Canonical(obj)).unwrap_or_default()
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// The `metadata` map, created if absent (and replacing a non-object).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(root) = obj else {
        unreachable!("just made an object")
    };
    let m = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    let Value::Object(meta) = m else {
        unreachable!("just made an object")
    };
    meta
}

/// RFC 3339 UTC with whole seconds (`creationTimestamp` format).
pub fn rfc3339_seconds(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// RFC 3339 UTC with nanoseconds.
pub fn rfc3339_nanos(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

static RNG: AtomicU64 = AtomicU64::new(0);

/// A fast non-cryptographic random u64 (SplitMix64 over a global counter seeded from the clock).
pub fn random_u64() -> u64 {
    if RNG.load(Ordering::Relaxed) == 0 {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ u64::from(std::process::id()).rotate_left(32);
        let _ = RNG.compare_exchange(0, seed | 1, Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut z = RNG.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A random version-4-shaped UUID string.
pub fn new_uid() -> String {
    let a = random_u64();
    let b = random_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// The 5-character suffix apiservers append to `generateName` (alphabet of `utilrand.String`).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
            r /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Checks an object name: an RFC 1123 DNS label for namespaces, else a DNS subdomain.
pub fn validate_name(name: &str, dns_label: bool) -> Result<(), String> {
    let max = if dns_label { 63 } else { 253 };
    let allowed = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (!dns_label && c == '.')
    };
    let ends_ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() || name.len() > max || !ends_ok || !name.chars().all(allowed) {
        let what = if dns_label {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        };
        return Err(format!("Invalid value: {name:?}: {what}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_serialize_in_apiserver_key_order() {
        let obj = serde_json::json!({"apiVersion": "v1", "data": {"b": "1", "a": "2"}, "kind": "ConfigMap", "metadata": {"name": "x"}, "status": {}, "spec": 1});
        assert_eq!(
            to_canonical_string(&obj),
            r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x"},"data":{"a":"2","b":"1"},"spec":1,"status":{}}"#
        );
    }

    #[test]
    fn shared_managed_fields_serialize_as_if_embedded() {
        let mf = json!([{"manager": "m"}]);
        let obj = json!({"kind": "ConfigMap", "metadata": {"name": "x", "labels": {"a": "b"}}, "data": {}});
        let mut full = obj.clone();
        full["metadata"]["managedFields"] = mf.clone();
        let shared = serde_json::to_string(&WithManagedFields {
            object: &obj,
            managed_fields: Some(&mf),
        })
        .expect("serializes");
        assert_eq!(shared, to_canonical_string(&full));
    }

    #[test]
    fn uids_look_like_uuids_and_differ() {
        let a = new_uid();
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert_ne!(a, new_uid());
    }

    #[test]
    fn names_follow_dns_rules() {
        assert!(validate_name("cm-1.a", false).is_ok());
        assert!(validate_name("cm-1.a", true).is_err());
        assert!(validate_name("Upper", false).is_err());
        assert!(validate_name("-x", false).is_err());
        assert!(validate_name("", false).is_err());
    }

    #[test]
    fn meta_mut_creates_metadata() {
        let mut v = json!({"kind": "X"});
        meta_mut(&mut v).insert("name".into(), json!("n"));
        assert_eq!(meta_str(&v, "name"), Some("n"));
    }

    #[test]
    fn suffixes_have_five_chars() {
        assert_eq!(random_suffix().len(), 5);
    }
}
