//! Discovery documents rendered from the registry: `/version`, the legacy documents
//! (`APIVersions`, `APIGroupList`, `APIGroup`, `APIResourceList`) and aggregated discovery
//! (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`), per k8s-protocol.md §1.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceInfo};

/// The Content-Type aggregated discovery replies must carry; kubectl ignores an aggregated
/// body sent as plain `application/json` (k8s-protocol.md §1.3).
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an Accept header asks for aggregated discovery v2.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    })
}

/// The `/version` document; minor 32 makes the kubectl dispatcher run kubectl 1.32.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T00:00:00Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `GET /api`.
pub fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]
    })
}

fn group_entry(reg: &Registry, group: &str) -> Value {
    let versions: Vec<Value> = reg
        .versions_of(group)
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({ "name": group, "versions": versions, "preferredVersion": preferred })
}

/// `GET /apis` (legacy).
pub fn api_group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg.groups().iter().map(|g| group_entry(reg, g)).collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `GET /apis/{group}`, if the group is served.
pub fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    if !reg.groups().iter().any(|g| g == group) {
        return None;
    }
    let mut v = group_entry(reg, group);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Some(v)
}

/// `GET /api/v1` or `GET /apis/{group}/{version}`, if served.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let gv = reg.group_version(group, version)?;
    let resources: Vec<Value> = gv
        .resources
        .iter()
        .flat_map(|r| r.legacy_entries())
        .filter_map(|e| serde_json::to_value(e).ok())
        .collect();
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources
    }))
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            json!({
                "subresource": s.name,
                "responseKind": {
                    "group": s.group.clone().unwrap_or_else(|| r.group.clone()),
                    "version": s.version.clone().unwrap_or_else(|| r.version.clone()),
                    "kind": s.kind
                },
                "verbs": s.verbs
            })
        })
        .collect();
    let mut v = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        v["subresources"] = json!(subresources);
    }
    v
}

fn aggregated_group(reg: &Registry, group: &str, stale: bool) -> Value {
    let versions: Vec<Value> = reg
        .versions_of(group)
        .iter()
        .filter_map(|v| reg.group_version(group, v))
        .map(|gv| {
            let resources: Vec<Value> = gv
                .resources
                .iter()
                .map(|r| aggregated_resource(r))
                .collect();
            json!({
                "version": gv.version,
                "resources": resources,
                "freshness": if stale { "Stale" } else { "Current" }
            })
        })
        .collect();
    let mut item = json!({ "metadata": {}, "versions": versions });
    if !group.is_empty() {
        item["metadata"]["name"] = json!(group);
    }
    item
}

/// Aggregated discovery for `/api` (`core = true`) or `/apis`; groups in `stale` are marked
/// `freshness: Stale`, as a real server does for an unavailable aggregated API service.
pub fn aggregated(reg: &Registry, core: bool, stale: &HashSet<String>) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group(reg, "", false)]
    } else {
        reg.groups()
            .iter()
            .map(|g| aggregated_group(reg, g, stale.contains(g)))
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn aggregated_accept_is_recognised() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(kubectl));
        assert!(!wants_aggregated("application/json, */*"));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        ));
    }

    #[test]
    fn aggregated_subresources_all_carry_a_response_kind() {
        let reg = Registry::from_catalog(Catalog::Vanilla.lists());
        for core in [true, false] {
            let doc = aggregated(&reg, core, &HashSet::new());
            for item in doc["items"].as_array().expect("items") {
                for v in item["versions"].as_array().expect("versions") {
                    for r in v["resources"].as_array().expect("resources") {
                        assert!(!r["responseKind"]["kind"].as_str().unwrap_or("").is_empty());
                        for s in r["subresources"]
                            .as_array()
                            .map(Vec::as_slice)
                            .unwrap_or(&[])
                        {
                            assert!(!s["responseKind"]["kind"].as_str().unwrap_or("").is_empty());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn group_list_prefers_the_highest_priority_version() {
        let reg = Registry::from_catalog(Catalog::Vanilla.lists());
        let doc = api_group_list(&reg);
        let auto = doc["groups"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["name"] == "autoscaling"))
            .cloned()
            .expect("autoscaling served");
        assert_eq!(auto["preferredVersion"]["version"], "v2");
        assert_eq!(auto["versions"][0]["version"], "v2");
    }

    #[test]
    fn stale_groups_are_marked() {
        let reg = Registry::from_catalog(Catalog::Vanilla.lists());
        let stale: HashSet<String> = ["apps".to_string()].into();
        let doc = aggregated(&reg, false, &stale);
        let apps = doc["items"]
            .as_array()
            .and_then(|i| i.iter().find(|g| g["metadata"]["name"] == "apps"))
            .cloned()
            .expect("apps");
        assert_eq!(apps["versions"][0]["freshness"], "Stale");
    }

    #[test]
    fn legacy_resource_list_includes_subresources() {
        let reg = Registry::from_catalog(Catalog::Vanilla.lists());
        let doc = resource_list(&reg, "", "v1").expect("core served");
        assert_eq!(doc["groupVersion"], "v1");
        let names: Vec<&str> = doc["resources"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["name"].as_str()).collect())
            .unwrap_or_default();
        assert!(names.contains(&"pods/status"));
        assert!(resource_list(&reg, "nope", "v1").is_none());
    }
}
