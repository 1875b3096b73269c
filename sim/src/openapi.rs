//! The minimal OpenAPI v3 that lets kubectl's default (`Strict`) field validation hand the
//! work to the server (k8s-protocol.md §1.4): an index of every served group version, and per
//! group version one PATCH operation per kind carrying `x-kubernetes-group-version-kind` and
//! a `fieldValidation` query parameter. No schemas (so `kubectl explain` will not work).

use serde_json::{Map, Value, json};

use crate::registry::{GroupVersion, Registry};

/// The index path of a group version (`api/v1`, `apis/apps/v1`).
fn gv_path(gv: &GroupVersion) -> String {
    if gv.group.is_empty() {
        format!("api/{}", gv.version)
    } else {
        format!("apis/{}/{}", gv.group, gv.version)
    }
}

/// A stable content hash of a group version's document (FNV-1a, hex).
fn hash(gv: &GroupVersion) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for r in &gv.resources {
        for b in r
            .plural
            .bytes()
            .chain(r.kind.bytes())
            .chain([u8::from(r.namespaced)])
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016X}")
}

/// `GET /openapi/v3`.
pub fn index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    for gv in reg.group_versions() {
        let p = gv_path(gv);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(gv))}),
        );
    }
    json!({ "paths": paths })
}

/// `GET /openapi/v3/{api/v1 | apis/g/v}`, if served.
pub fn document(reg: &Registry, path: &str) -> Option<Value> {
    let gv = reg.group_versions().iter().find(|gv| gv_path(gv) == path)?;
    let mut paths = Map::new();
    for r in &gv.resources {
        let base = if gv.group.is_empty() {
            format!("/api/{}", gv.version)
        } else {
            format!("/apis/{}/{}", gv.group, gv.version)
        };
        let item = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let gvk = json!({"group": gv.group, "version": gv.version, "kind": r.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "force", "in": "query", "schema": {"type": "boolean"}}
        ]);
        paths.insert(
            item,
            json!({
                "patch": {
                    "operationId": format!("patch{}", r.kind),
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": params,
                    "responses": {"200": {"description": "OK"}, "201": {"description": "Created"}}
                }
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn index_lists_every_group_version() {
        let reg = Registry::from_catalog(Catalog::Vanilla.lists());
        let idx = index(&reg);
        let url = idx["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap_or("");
        assert!(url.starts_with("/openapi/v3/api/v1?hash="));
        assert!(idx["paths"]["apis/apps/v1"].is_object());
    }

    #[test]
    fn documents_carry_patch_operations_with_field_validation() {
        let reg = Registry::from_catalog(Catalog::Vanilla.lists());
        let doc = document(&reg, "api/v1").expect("core doc");
        let op = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "ConfigMap");
        assert!(
            op["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|x| x["name"] == "fieldValidation"))
        );
        assert!(doc["paths"]["/api/v1/namespaces/{name}"].is_object());
        assert!(document(&reg, "apis/nope/v1").is_none());
    }
}
