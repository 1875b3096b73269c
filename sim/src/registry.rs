//! The registry of served resources: the catalog's resources plus those of established CRDs,
//! grouped by group version in serving order. Discovery, OpenAPI and request routing all read
//! it; only CRD establishment and deletion change it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::catalog::{ApiResourceEntry, ApiResourceList, split_group_version};
use crate::version_priority;

/// Identifies stored objects of one resource across its versions: (group, plural).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource name.
    pub resource: String,
}

impl ResourceKey {
    /// Builds a key.
    pub fn new(group: &str, resource: &str) -> Self {
        ResourceKey {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

/// A subresource of a served resource (`status`, `scale`, `log`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct SubresourceInfo {
    /// The subresource name (`status`).
    pub name: String,
    /// The kind it returns.
    pub kind: String,
    /// Group of that kind when it differs from the parent's.
    pub group: Option<String>,
    /// Version of that kind when it differs from the parent's.
    pub version: Option<String>,
    /// Verbs.
    pub verbs: Vec<String>,
}

/// One served resource in one group version.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInfo {
    /// API group (`""` for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Plural name.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Verbs.
    pub verbs: Vec<String>,
    /// Short names.
    pub short_names: Vec<String>,
    /// Categories.
    pub categories: Vec<String>,
    /// Storage version hash, if the catalog had one.
    pub storage_version_hash: Option<String>,
    /// Subresources.
    pub subresources: Vec<SubresourceInfo>,
    /// Extra field-selector paths (CRD `selectableFields`).
    pub selectable_fields: Vec<String>,
    /// The CRD serving this resource, if any.
    pub crd: Option<String>,
}

impl ResourceInfo {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage key of its objects.
    pub fn key(&self) -> ResourceKey {
        ResourceKey::new(&self.group, &self.plural)
    }

    /// Whether discovery lists `verb`.
    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// The subresource named `name`.
    pub fn subresource(&self, name: &str) -> Option<&SubresourceInfo> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// The legacy discovery entries: the resource, then its `plural/sub` entries.
    pub fn legacy_entries(&self) -> Vec<ApiResourceEntry> {
        let mut out = vec![ApiResourceEntry {
            name: self.plural.clone(),
            singular_name: self.singular.clone(),
            namespaced: self.namespaced,
            group: None,
            version: None,
            kind: self.kind.clone(),
            verbs: self.verbs.clone(),
            short_names: self.short_names.clone(),
            categories: self.categories.clone(),
            storage_version_hash: self.storage_version_hash.clone(),
        }];
        for s in &self.subresources {
            out.push(ApiResourceEntry {
                name: format!("{}/{}", self.plural, s.name),
                singular_name: String::new(),
                namespaced: self.namespaced,
                group: s.group.clone(),
                version: s.version.clone(),
                kind: s.kind.clone(),
                verbs: s.verbs.clone(),
                short_names: vec![],
                categories: vec![],
                storage_version_hash: None,
            });
        }
        out
    }
}

/// The resources of one group version, in serving order.
#[derive(Debug, Clone)]
pub struct GroupVersion {
    /// Group.
    pub group: String,
    /// Version.
    pub version: String,
    /// Top-level resources.
    pub resources: Vec<Arc<ResourceInfo>>,
}

/// All served resources.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    gvs: Vec<GroupVersion>,
    by_gvr: HashMap<(String, String, String), Arc<ResourceInfo>>,
    /// Bumped on every change (OpenAPI hashes and caches key on it).
    pub generation: u64,
}

impl Registry {
    /// Builds the registry of a catalog.
    pub fn from_catalog(lists: &[ApiResourceList]) -> Registry {
        let mut reg = Registry::default();
        for list in lists {
            let (g, v) = split_group_version(&list.group_version);
            let mut infos: Vec<ResourceInfo> = Vec::new();
            for e in list.resources.iter().filter(|e| !e.is_subresource()) {
                infos.push(ResourceInfo {
                    group: g.to_string(),
                    version: v.to_string(),
                    plural: e.name.clone(),
                    singular: if e.singular_name.is_empty() {
                        e.kind.to_lowercase()
                    } else {
                        e.singular_name.clone()
                    },
                    kind: e.kind.clone(),
                    namespaced: e.namespaced,
                    verbs: e.verbs.clone(),
                    short_names: e.short_names.clone(),
                    categories: e.categories.clone(),
                    storage_version_hash: e.storage_version_hash.clone(),
                    subresources: vec![],
                    selectable_fields: vec![],
                    crd: None,
                });
            }
            for e in list.resources.iter().filter(|e| e.is_subresource()) {
                let Some((parent, sub)) = e.name.split_once('/') else {
                    continue;
                };
                if let Some(p) = infos.iter_mut().find(|i| i.plural == parent) {
                    p.subresources.push(SubresourceInfo {
                        name: sub.to_string(),
                        kind: e.kind.clone(),
                        group: e.group.clone(),
                        version: e.version.clone(),
                        verbs: e.verbs.clone(),
                    });
                }
            }
            for info in infos {
                reg.insert(info);
            }
        }
        reg
    }

    fn insert(&mut self, info: ResourceInfo) {
        let info = Arc::new(info);
        self.by_gvr.insert(
            (
                info.group.clone(),
                info.version.clone(),
                info.plural.clone(),
            ),
            info.clone(),
        );
        match self
            .gvs
            .iter_mut()
            .find(|gv| gv.group == info.group && gv.version == info.version)
        {
            Some(gv) => {
                gv.resources.retain(|r| r.plural != info.plural);
                gv.resources.push(info);
            }
            None => self.gvs.push(GroupVersion {
                group: info.group.clone(),
                version: info.version.clone(),
                resources: vec![info],
            }),
        }
        self.generation += 1;
    }

    /// Serves the resources of a CRD, replacing whatever that CRD served before.
    pub fn set_crd(&mut self, crd: &str, infos: Vec<ResourceInfo>) {
        self.remove_crd(crd);
        for i in infos {
            self.insert(i);
        }
    }

    /// Stops serving the resources of a CRD.
    pub fn remove_crd(&mut self, crd: &str) {
        self.by_gvr.retain(|_, r| r.crd.as_deref() != Some(crd));
        for gv in &mut self.gvs {
            gv.resources.retain(|r| r.crd.as_deref() != Some(crd));
        }
        self.gvs.retain(|gv| !gv.resources.is_empty());
        self.generation += 1;
    }

    /// The resource `plural` served in `group`/`version`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.by_gvr
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// The resource in the group's preferred version that serves `plural` (any version serving
    /// it when the preferred one does not).
    pub fn lookup_preferred(&self, group: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.versions_of(group)
            .iter()
            .find_map(|v| self.lookup(group, v, plural))
    }

    /// The group version, if served.
    pub fn group_version(&self, group: &str, version: &str) -> Option<&GroupVersion> {
        self.gvs
            .iter()
            .find(|gv| gv.group == group && gv.version == version)
    }

    /// Every served group version in serving order.
    pub fn group_versions(&self) -> &[GroupVersion] {
        &self.gvs
    }

    /// Served non-core groups in order of first appearance.
    pub fn groups(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for gv in &self.gvs {
            if !gv.group.is_empty() && !out.contains(&gv.group) {
                out.push(gv.group.clone());
            }
        }
        out
    }

    /// The versions of a group, preferred first.
    pub fn versions_of(&self, group: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .gvs
            .iter()
            .filter(|gv| gv.group == group)
            .map(|gv| gv.version.clone())
            .collect();
        version_priority::sort(&mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn catalog_subresources_attach_to_their_parents() {
        let reg = Registry::from_catalog(Catalog::Vanilla.lists());
        let pods = reg.lookup("", "v1", "pods").expect("pods served");
        assert!(pods.subresource("status").is_some());
        assert!(reg.lookup("", "v1", "pods/status").is_none());
        let entries = pods.legacy_entries();
        assert!(entries.iter().any(|e| e.name == "pods/status"));
    }

    #[test]
    fn crd_resources_come_and_go() {
        let mut reg = Registry::from_catalog(Catalog::Vanilla.lists());
        let info = ResourceInfo {
            group: "example.com".into(),
            version: "v1".into(),
            plural: "widgets".into(),
            singular: "widget".into(),
            kind: "Widget".into(),
            namespaced: true,
            verbs: vec!["get".into()],
            short_names: vec![],
            categories: vec![],
            storage_version_hash: None,
            subresources: vec![],
            selectable_fields: vec![],
            crd: Some("widgets.example.com".into()),
        };
        let mut beta = info.clone();
        beta.version = "v1beta1".into();
        reg.set_crd("widgets.example.com", vec![beta, info]);
        assert_eq!(reg.versions_of("example.com"), vec!["v1", "v1beta1"]);
        assert!(reg.groups().contains(&"example.com".to_string()));
        reg.remove_crd("widgets.example.com");
        assert!(reg.lookup("example.com", "v1", "widgets").is_none());
        assert!(!reg.groups().contains(&"example.com".to_string()));
    }
}
