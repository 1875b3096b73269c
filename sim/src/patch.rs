//! PATCH bodies applied to stored objects: JSON merge patch (RFC 7396), JSON patch (RFC 6902,
//! via the `json-patch` crate), an approximate strategic merge patch and server-side apply.
//!
//! Strategic merge patch without the Go type schemas is a heuristic: maps merge, `null`
//! deletes, lists of objects merge by the first common merge key among [`MERGE_KEYS`], other
//! lists are replaced; the `$patch`, `$setElementOrder/`, `$deleteFromPrimitiveList/` and
//! `$retainKeys` directives are honoured. Server-side apply requests are merged by
//! `fieldset::merge` instead, with field ownership, pruning and conflicts (`managed_fields`);
//! [`apply`] of a [`PatchKind::Apply`] body is only the schema-less strategic merge.

use serde_json::{Map, Value};

/// Candidate list merge keys, in the order they are tried (from the `patchMergeKey` tags of
/// `k8s.io/api`: containers, env and volumes use `name`; ports `containerPort` or `port`;
/// volumeMounts `mountPath`; volumeDevices `devicePath`; conditions `type`; owner references `uid`).
pub const MERGE_KEYS: &[&str] = &[
    "name",
    "containerPort",
    "port",
    "mountPath",
    "devicePath",
    "ip",
    "type",
    "uid",
];

/// The kinds of PATCH kube-sim accepts, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/json-patch+json`.
    Json,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchKind {
    /// Maps a Content-Type (parameters ignored) to a patch kind.
    pub fn from_content_type(ct: &str) -> Option<PatchKind> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

/// Parses a patch body: JSON, or (for apply patches) YAML.
pub fn parse_body(kind: PatchKind, body: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(e) if kind == PatchKind::Apply => {
            let text = std::str::from_utf8(body).map_err(|_| format!("invalid apply body: {e}"))?;
            serde_saphyr::from_str::<Value>(text).map_err(|y| format!("error decoding YAML: {y}"))
        }
        Err(e) => Err(format!("error decoding patch: {e}")),
    }
}

/// Applies a parsed patch of `kind` to `target`.
pub fn apply(kind: PatchKind, target: &mut Value, patch: &Value) -> Result<(), String> {
    match kind {
        PatchKind::Merge => {
            if !patch.is_object() {
                return Err("merge patch must be a JSON object".into());
            }
            json_patch::merge(target, patch);
            Ok(())
        }
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| format!("invalid JSON patch: {e}"))?;
            json_patch::patch(target, &ops).map_err(|e| {
                format!("the server rejected our request due to an error in our request: {e}")
            })
        }
        PatchKind::Strategic | PatchKind::Apply => {
            if !patch.is_object() {
                return Err("patch must be a JSON object".into());
            }
            strategic_merge(target, patch);
            Ok(())
        }
    }
}

/// Merges a strategic-merge-patch map into `target`.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Some(pmap) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if pmap.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    if let Some(tmap) = target.as_object_mut() {
        for (k, v) in pmap {
            if let Some(list) = k.strip_prefix("$setElementOrder/") {
                orders.push((list.to_string(), v.as_array().cloned().unwrap_or_default()));
                continue;
            }
            if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
                if let (Some(Value::Array(items)), Some(remove)) =
                    (tmap.get_mut(list), v.as_array())
                {
                    items.retain(|i| !remove.contains(i));
                }
                continue;
            }
            if k.starts_with('$') {
                continue;
            }
            match v {
                Value::Null => {
                    tmap.remove(k);
                }
                Value::Object(inner)
                    if inner.get("$patch").and_then(Value::as_str) == Some("delete") =>
                {
                    tmap.remove(k);
                }
                Value::Object(_) => {
                    let slot = tmap.entry(k.clone()).or_insert(Value::Null);
                    strategic_merge(slot, v);
                }
                Value::Array(items) => {
                    let slot = tmap.entry(k.clone()).or_insert(Value::Null);
                    merge_list(slot, items);
                }
                _ => {
                    tmap.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(Value::Array(keep)) = pmap.get("$retainKeys") {
            let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
            tmap.retain(|k, _| keep.contains(&k.as_str()));
        }
        for (list, order) in orders {
            if let Some(Value::Array(items)) = tmap.get_mut(&list) {
                reorder(items, &order);
            }
        }
    }
}

/// Removes `$`-directives from a patch fragment (used where it replaces content wholesale).
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// The first merge key every object of both lists carries.
fn merge_key(existing: &[Value], patch: &[Value]) -> Option<&'static str> {
    let patch_items: Vec<&Value> = patch
        .iter()
        .filter(|p| p.get("$patch").and_then(Value::as_str) != Some("replace"))
        .collect();
    if patch_items.is_empty() || !patch_items.iter().all(|p| p.is_object()) {
        return None;
    }
    MERGE_KEYS.iter().copied().find(|k| {
        patch_items.iter().all(|p| p.get(*k).is_some())
            && existing.iter().all(|e| e.get(*k).is_some())
    })
}

fn merge_list(slot: &mut Value, patch: &[Value]) {
    if patch
        .iter()
        .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *slot = Value::Array(
            patch
                .iter()
                .filter(|p| p.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        );
        return;
    }
    let existing: Vec<Value> = match slot {
        Value::Array(items) => std::mem::take(items),
        _ => Vec::new(),
    };
    let Some(key) = merge_key(&existing, patch) else {
        *slot = Value::Array(patch.iter().map(strip_directives).collect());
        return;
    };
    let mut out = existing;
    for p in patch {
        let id = p.get(key);
        let pos = out.iter().position(|e| e.get(key) == id);
        let delete = p.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut out[i], p),
            (None, false) => out.push(strip_directives(p)),
        }
    }
    *slot = Value::Array(out);
}

/// Orders list items as `$setElementOrder` says; items it does not name keep their relative
/// order after the named ones.
fn reorder(items: &mut Vec<Value>, order: &[Value]) {
    let rank = |item: &Value| -> usize {
        order
            .iter()
            .position(|o| match o.as_object() {
                Some(m) => m.iter().all(|(k, v)| item.get(k) == Some(v)),
                None => o == item,
            })
            .unwrap_or(usize::MAX)
    };
    let mut ranked: Vec<(usize, usize, Value)> = items
        .drain(..)
        .enumerate()
        .map(|(i, v)| (rank(&v), i, v))
        .collect();
    ranked.sort_by_key(|(r, i, _)| (*r, *i));
    items.extend(ranked.into_iter().map(|(_, _, v)| v));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_null_removes_a_label() {
        let mut obj = json!({"metadata": {"labels": {"tier": "web", "app": "a"}}});
        apply(
            PatchKind::Merge,
            &mut obj,
            &json!({"metadata": {"labels": {"tier": null}}}),
        )
        .expect("applies");
        assert_eq!(obj, json!({"metadata": {"labels": {"app": "a"}}}));
    }

    #[test]
    fn json_patch_operations_apply_and_failures_are_reported() {
        let mut obj = json!({"data": {"a": "1"}});
        let ops = json!([{"op": "add", "path": "/data/b", "value": "2"}, {"op": "remove", "path": "/data/a"}]);
        apply(PatchKind::Json, &mut obj, &ops).expect("applies");
        assert_eq!(obj, json!({"data": {"b": "2"}}));
        let bad = json!([{"op": "remove", "path": "/nope"}]);
        assert!(apply(PatchKind::Json, &mut obj, &bad).is_err());
        assert!(apply(PatchKind::Json, &mut obj, &json!({"op": 1})).is_err());
    }

    #[test]
    fn strategic_patch_merges_containers_by_name_and_keeps_unpatched_fields() {
        let mut obj = json!({"spec": {"containers": [
            {"name": "a", "image": "img:1", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "other"}
        ]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"image": "img:2", "name": "a"}, {"$patch": "delete", "name": "b"}]
        }});
        apply(PatchKind::Strategic, &mut obj, &patch).expect("applies");
        assert_eq!(
            obj,
            json!({"spec": {"containers": [{"name": "a", "image": "img:2", "ports": [{"containerPort": 80}]}]}})
        );
    }

    #[test]
    fn strategic_patch_replace_and_primitive_list_directives() {
        let mut obj =
            json!({"spec": {"x": {"a": 1, "b": 2}, "args": ["p", "q"], "fin": ["f1", "f2"]}});
        let patch = json!({"spec": {
            "x": {"$patch": "replace", "c": 3},
            "args": ["r"],
            "$deleteFromPrimitiveList/fin": ["f1"]
        }});
        apply(PatchKind::Strategic, &mut obj, &patch).expect("applies");
        assert_eq!(
            obj,
            json!({"spec": {"x": {"c": 3}, "args": ["r"], "fin": ["f2"]}})
        );
    }

    #[test]
    fn retain_keys_drops_unlisted_fields() {
        let mut obj =
            json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}});
        let patch = json!({"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}});
        apply(PatchKind::Strategic, &mut obj, &patch).expect("applies");
        assert_eq!(obj, json!({"strategy": {"type": "Recreate"}}));
    }

    #[test]
    fn apply_bodies_may_be_yaml() {
        let v = parse_body(PatchKind::Apply, b"a: 1\nb: [x]\n").expect("yaml parses");
        assert_eq!(v, json!({"a": 1, "b": ["x"]}));
        assert!(parse_body(PatchKind::Merge, b"a: 1").is_err());
    }

    #[test]
    fn content_types_map_to_patch_kinds() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchKind::Merge)
        );
        assert_eq!(
            PatchKind::from_content_type("application/apply-patch+yaml"),
            Some(PatchKind::Apply)
        );
        assert_eq!(PatchKind::from_content_type("text/plain"), None);
    }
}
