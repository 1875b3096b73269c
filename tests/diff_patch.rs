//! Applying a diff (without its `old` members) to the old version gives the new one, minus the
//! ignored paths: checked over random JSON pairs with an independent RFC 6902 implementation.

use faro::diff::{DiffOptions, write_diff, write_diff_str};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Keys from a small set (so that random pairs share structure), including ones that need
/// RFC 6901 or JSON escaping.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("c".to_owned()),
        Just("x/y".to_owned()),
        Just("t~1".to_owned()),
        Just("0".to_owned()),
        // Escaped in JSON text: the text diff's borrowed keys cannot take it.
        Just("q\"k".to_owned()),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0i64..4).prop_map(Value::from),
        prop_oneof![Just("s"), Just("t"), Just("")].prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 40, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object shaped like a Kubernetes one: metadata with the members diffs always skip.
fn object() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map(key(), value(), 0..4),
        prop::option::of(0u32..3),
        prop::option::of(value()),
    )
        .prop_map(|(members, rv, labels)| {
            let mut object: Map<String, Value> = members.into_iter().collect();
            if let Some(rv) = rv {
                let mut meta = json!({
                    "resourceVersion": rv.to_string(),
                    "generation": rv,
                    "managedFields": [{"manager": "m", "time": rv.to_string()}],
                });
                if let Some(labels) = labels {
                    meta["labels"] = labels;
                }
                object.insert("metadata".into(), meta);
            }
            Value::Object(object)
        })
}

/// A pointer made of the same keys (and indices), for `--diff-ignore`.
fn pointer() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![key(), (0usize..3).prop_map(|i| i.to_string())],
        1..3,
    )
    .prop_map(|segments| {
        segments
            .iter()
            .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
            .collect()
    })
}

/// `value` without what lies under `pointers` (array elements become null, as in faro).
fn strip(value: &mut Value, path: &str, pointers: &[String]) {
    let under = |p: &str| {
        pointers.iter().any(|i| {
            p.strip_prefix(i.as_str())
                .is_some_and(|r| r.is_empty() || r.starts_with('/'))
        })
    };
    match value {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let child = format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"));
                if under(&child) {
                    map.remove(&k);
                } else {
                    strip(map.get_mut(&k).unwrap(), &child, pointers);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let child = format!("{path}/{i}");
                if under(&child) {
                    *item = Value::Null;
                } else {
                    strip(item, &child, pointers);
                }
            }
        }
        _ => {}
    }
}

fn check(old: &Value, new: &Value, ignore: &[String]) -> Result<(), TestCaseError> {
    let mut options = DiffOptions::new();
    for p in ignore {
        options = options.ignore(p).unwrap();
    }
    let mut out = Vec::new();
    write_diff(old, new, &options, &mut out);
    // The diff of the texts, which parses only what differs, is the same, byte for byte.
    let mut from_text = Vec::new();
    write_diff_str(&old.to_string(), &new.to_string(), &options, &mut from_text).unwrap();
    prop_assert_eq!(
        String::from_utf8_lossy(&from_text),
        String::from_utf8_lossy(&out)
    );
    let mut ops: Vec<Value> = serde_json::from_slice(&out).unwrap();
    for op in &mut ops {
        let op = op.as_object_mut().unwrap();
        prop_assert!(matches!(
            op["op"].as_str(),
            Some("add" | "remove" | "replace")
        ));
        prop_assert_eq!(op.contains_key("old"), op["op"] != "add");
        op.remove("old");
    }
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops)).unwrap();
    let mut patched = old.clone();
    json_patch::patch(&mut patched, &patch).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut ignored: Vec<String> = ignore.to_vec();
    ignored.extend(
        [
            "/metadata/resourceVersion",
            "/metadata/managedFields",
            "/metadata/generation",
        ]
        .map(String::from),
    );
    let mut want = new.clone();
    strip(&mut patched, "", &ignored);
    strip(&mut want, "", &ignored);
    prop_assert_eq!(patched, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_diff_applied_to_the_old_version_gives_the_new(old in object(), new in object()) {
        check(&old, &new, &[])?;
    }

    #[test]
    fn the_same_holds_minus_ignored_paths(
        old in object(),
        new in object(),
        ignore in prop::collection::vec(pointer(), 1..3),
    ) {
        check(&old, &new, &ignore)?;
    }

    #[test]
    fn equal_versions_have_an_empty_diff(old in object()) {
        let mut out = Vec::new();
        write_diff(&old, &old, &DiffOptions::new(), &mut out);
        prop_assert_eq!(out, b"[]".to_vec());
    }
}

/// The random pairs above share keys but rarely whole subtrees; this one checks a realistic
/// edit of a Deployment.
#[test]
fn a_deployment_edit() {
    let old = json!({"metadata": {"name": "web", "resourceVersion": "5", "generation": 2,
        "labels": {"app": "web"}},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}},
        "status": {"replicas": 2}});
    let mut new = old.clone();
    new["metadata"]["resourceVersion"] = json!("6");
    new["metadata"]["generation"] = json!(3);
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    new["metadata"]["labels"]["tier"] = json!("front");
    let mut out = Vec::new();
    write_diff(&old, &new, &DiffOptions::new(), &mut out);
    assert_eq!(
        serde_json::from_slice::<Value>(&out).unwrap(),
        json!([
            {"op": "add", "path": "/metadata/labels/tier", "value": "front"},
            {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:2", "old": "nginx:1"},
        ])
    );
    check(&old, &new, &["/status".to_owned()]).unwrap();
}
