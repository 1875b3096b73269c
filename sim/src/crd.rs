//! CustomResourceDefinitions: validation and synchronous establishment (status conditions,
//! acceptedNames, storedVersions), the resources each served version adds to the registry,
//! and deletion (all custom resources, then the CRD, then its discovery entries and watches).
//! Simplification of k8s-protocol.md §5: no Terminating phase, no conversion between versions.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::object::{meta_str, rfc3339_seconds};
use crate::registry::{ResourceInfo, ResourceKey, SubresourceInfo};
use crate::sim::Sim;
use crate::status::ApiError;

/// Group of the CRD resource.
pub const GROUP: &str = "apiextensions.k8s.io";
/// Plural of the CRD resource.
pub const PLURAL: &str = "customresourcedefinitions";

/// Whether a resource is the CRD resource itself.
pub fn is_crd(info: &ResourceInfo) -> bool {
    info.group == GROUP && info.plural == PLURAL
}

fn invalid(name: &str, field: &str, msg: String) -> ApiError {
    ApiError::invalid(
        GROUP,
        "CustomResourceDefinition",
        name,
        &[(field, "FieldValueInvalid", msg)],
    )
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// Validates a CRD about to be written and fills in its status as an established CRD.
pub fn establish(obj: &mut Value, previous: Option<&Value>) -> Result<(), ApiError> {
    let name = meta_str(obj, "name").unwrap_or("").to_string();
    let group = str_at(obj, "/spec/group").to_string();
    let plural = str_at(obj, "/spec/names/plural").to_string();
    let kind = str_at(obj, "/spec/names/kind").to_string();
    if group.is_empty() {
        return Err(invalid(&name, "spec.group", "Required value".into()));
    }
    if plural.is_empty() {
        return Err(invalid(&name, "spec.names.plural", "Required value".into()));
    }
    if kind.is_empty() {
        return Err(invalid(&name, "spec.names.kind", "Required value".into()));
    }
    if name != format!("{plural}.{group}") {
        return Err(invalid(
            &name,
            "metadata.name",
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let scope = str_at(obj, "/spec/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        return Err(invalid(
            &name,
            "spec.scope",
            format!("Unsupported value: {scope:?}: supported values: \"Cluster\", \"Namespaced\""),
        ));
    }
    let versions = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        return Err(invalid(
            &name,
            "spec.versions",
            "Invalid value: null: must have exactly one version marked as storage version".into(),
        ));
    }
    let storage: Vec<&str> = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();
    if storage.len() != 1 {
        return Err(invalid(
            &name,
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version".into(),
        ));
    }
    let mut names = obj
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if str_at(&names, "/singular").is_empty() {
        names["singular"] = json!(kind.to_lowercase());
    }
    if str_at(&names, "/listKind").is_empty() {
        names["listKind"] = json!(format!("{kind}List"));
    }
    let mut stored: Vec<String> = previous
        .and_then(|p| p.pointer("/status/storedVersions"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if !stored.iter().any(|s| s == storage[0]) {
        stored.push(storage[0].to_string());
    }
    let now = previous
        .and_then(|p| p.pointer("/status/conditions/0/lastTransitionTime"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| rfc3339_seconds(SystemTime::now()));
    obj["spec"]["names"] = names.clone();
    obj["status"] = json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now}
        ],
        "storedVersions": stored
    });
    Ok(())
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The resources an established CRD serves: one per `served: true` version.
pub fn resources(crd: &Value) -> Vec<ResourceInfo> {
    let name = meta_str(crd, "name").unwrap_or("").to_string();
    let group = str_at(crd, "/spec/group");
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let kind = str_at(&names, "/kind").to_string();
    let namespaced = str_at(crd, "/spec/scope") == "Namespaced";
    let mut out = Vec::new();
    for v in crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let mut subresources = Vec::new();
        if v.pointer("/subresources/status").is_some() {
            subresources.push(SubresourceInfo {
                name: "status".into(),
                kind: kind.clone(),
                group: None,
                version: None,
                verbs: vec!["get".into(), "patch".into(), "update".into()],
            });
        }
        if v.pointer("/subresources/scale").is_some() {
            subresources.push(SubresourceInfo {
                name: "scale".into(),
                kind: "Scale".into(),
                group: Some("autoscaling".into()),
                version: Some("v1".into()),
                verbs: vec!["get".into(), "patch".into(), "update".into()],
            });
        }
        let selectable_fields = v
            .get("selectableFields")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                    .map(|p| p.trim_start_matches('.').to_string())
                    .collect()
            })
            .unwrap_or_default();
        out.push(ResourceInfo {
            group: group.to_string(),
            version: str_at(v, "/name").to_string(),
            plural: str_at(&names, "/plural").to_string(),
            singular: str_at(&names, "/singular").to_string(),
            kind: kind.clone(),
            namespaced,
            verbs: [
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "create",
                "update",
                "watch",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            storage_version_hash: None,
            subresources,
            selectable_fields,
            crd: Some(name.clone()),
        });
    }
    out
}

/// Publishes (or refreshes) the resources of a written CRD.
pub fn publish(sim: &Sim, crd: &Value) {
    let name = meta_str(crd, "name").unwrap_or("").to_string();
    sim.registry.write().set_crd(&name, resources(crd));
}

/// Deletes a CRD: its custom resources (DELETED events), the CRD (DELETED), its discovery
/// entries, then the watch streams open on its resource.
pub fn delete(
    sim: &Sim,
    crd_info: &ResourceInfo,
    name: &str,
) -> Result<Arc<crate::event::Event>, ApiError> {
    let (ev, group, plural) = {
        let mut tx = sim.store.tx();
        let crd_key = crd_info.key();
        let Some(crd) = tx.get(&crd_key, "", name).cloned() else {
            return Err(ApiError::not_found(GROUP, PLURAL, name));
        };
        let group = str_at(&crd.object, "/spec/group").to_string();
        let plural = str_at(&crd.object, "/spec/names/plural").to_string();
        for cr in tx.list(&ResourceKey::new(&group, &plural), None) {
            tx.remove(&cr);
        }
        (tx.remove(&crd), group, plural)
    };
    sim.registry.write().remove_crd(name);
    sim.watches.close(Some(&group), Some(&plural));
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widget() -> Value {
        json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}, "scale": {}},
                     "selectableFields": [{"jsonPath": ".spec.color"}]},
                    {"name": "v1beta1", "served": true, "storage": false},
                    {"name": "v1alpha1", "served": false, "storage": false}
                ]
            }
        })
    }

    #[test]
    fn establishing_sets_conditions_and_accepted_names() {
        let mut crd = widget();
        establish(&mut crd, None).expect("valid");
        assert_eq!(crd["status"]["conditions"][1]["type"], "Established");
        assert_eq!(crd["status"]["conditions"][1]["status"], "True");
        assert_eq!(crd["status"]["acceptedNames"]["singular"], "widget");
        assert_eq!(crd["status"]["acceptedNames"]["listKind"], "WidgetList");
        assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
    }

    #[test]
    fn served_versions_become_resources() {
        let mut crd = widget();
        establish(&mut crd, None).expect("valid");
        let rs = resources(&crd);
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].version, "v1");
        assert!(rs[0].subresource("status").is_some());
        assert_eq!(
            rs[0]
                .subresource("scale")
                .and_then(|s| s.group.clone())
                .as_deref(),
            Some("autoscaling")
        );
        assert_eq!(rs[0].selectable_fields, vec!["spec.color"]);
        assert_eq!(rs[0].short_names, vec!["wd"]);
    }

    #[test]
    fn invalid_crds_are_rejected() {
        let mut bad = widget();
        bad["metadata"]["name"] = json!("wrong");
        assert_eq!(establish(&mut bad, None).expect_err("name").code, 422);
        let mut bad = widget();
        bad["spec"]["versions"][0]["storage"] = json!(false);
        assert_eq!(establish(&mut bad, None).expect_err("storage").code, 422);
    }
}
