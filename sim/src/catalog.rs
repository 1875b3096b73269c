//! The built-in API catalogs: gzipped JSON arrays of legacy `APIResourceList` documents,
//! embedded in the binary so kube-sim is self-contained. Parsing happens once per catalog.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The vanilla Kubernetes catalog (built-in groups of a plain cluster).
static VANILLA_GZ: &[u8] = include_bytes!("../catalogs/vanilla.json.gz");
/// The large catalog (a cluster with many aggregated APIs and CRDs).
static LARGE_GZ: &[u8] = include_bytes!("../catalogs/large.json.gz");

/// One legacy discovery document: the resources of one group version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResourceList {
    /// `v1` for the core group, else `group/version`.
    pub group_version: String,
    /// Resources and subresources (`plural/sub`) of this group version.
    #[serde(default)]
    pub resources: Vec<ApiResourceEntry>,
}

/// One `APIResource` entry of a legacy discovery document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiResourceEntry {
    /// The plural, or `plural/subresource`.
    pub name: String,
    /// Singular name (`""` for subresources).
    #[serde(default)]
    pub singular_name: String,
    /// Whether objects live in namespaces.
    #[serde(default)]
    pub namespaced: bool,
    /// Set only when the kind lives in another group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Set only when the kind lives in another version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The object kind.
    pub kind: String,
    /// Supported verbs.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// Short names (`cm`, `deploy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub short_names: Vec<String>,
    /// Categories (`all`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Opaque storage version hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_version_hash: Option<String>,
}

impl ApiResourceEntry {
    /// True for `plural/sub` entries.
    pub fn is_subresource(&self) -> bool {
        self.name.contains('/')
    }
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn split_group_version(gv: &str) -> (&str, &str) {
    match gv.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", gv),
    }
}

/// Which built-in catalog a server starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Catalog {
    /// Plain Kubernetes built-in groups.
    #[default]
    Vanilla,
    /// A large catalog (many groups, CRDs and aggregated APIs).
    Large,
}

impl FromStr for Catalog {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "vanilla" => Ok(Catalog::Vanilla),
            "large" => Ok(Catalog::Large),
            other => anyhow::bail!("unknown catalog {other:?}: expected vanilla or large"),
        }
    }
}

impl fmt::Display for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Catalog::Vanilla => "vanilla",
            Catalog::Large => "large",
        })
    }
}

/// A top-level resource of a catalog with the group version it is served in.
#[derive(Debug, Clone)]
pub struct CatalogResource {
    /// API group (`""` for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// The discovery entry.
    pub entry: ApiResourceEntry,
}

impl Catalog {
    /// The parsed `APIResourceList` documents, in file order.
    pub fn lists(&self) -> &'static [ApiResourceList] {
        static VANILLA: OnceLock<Vec<ApiResourceList>> = OnceLock::new();
        static LARGE: OnceLock<Vec<ApiResourceList>> = OnceLock::new();
        let (cell, gz) = match self {
            Catalog::Vanilla => (&VANILLA, VANILLA_GZ),
            Catalog::Large => (&LARGE, LARGE_GZ),
        };
        cell.get_or_init(|| parse(gz).unwrap_or_default())
    }

    /// Every group version (`v1`, `apps/v1`, …) in file order.
    pub fn group_versions(&self) -> Vec<String> {
        self.lists()
            .iter()
            .map(|l| l.group_version.clone())
            .collect()
    }

    /// Every top-level resource of every group version (a resource served in two versions
    /// counts twice).
    pub fn resources(&self) -> Vec<CatalogResource> {
        self.entries(false)
    }

    /// Every subresource entry (`pods/status`, …) of every group version.
    pub fn subresources(&self) -> Vec<CatalogResource> {
        self.entries(true)
    }

    /// Distinct (group, resource) pairs among top-level resources: the number of rows
    /// `kubectl api-resources` prints (it keeps one version per group and resource).
    pub fn api_resources_count(&self) -> usize {
        self.resources()
            .into_iter()
            .map(|r| (r.group, r.entry.name))
            .collect::<BTreeSet<_>>()
            .len()
    }

    fn entries(&self, sub: bool) -> Vec<CatalogResource> {
        let mut out = Vec::new();
        for list in self.lists() {
            let (g, v) = split_group_version(&list.group_version);
            for e in &list.resources {
                if e.is_subresource() == sub {
                    out.push(CatalogResource {
                        group: g.to_string(),
                        version: v.to_string(),
                        entry: e.clone(),
                    });
                }
            }
        }
        out
    }
}

/// Decompresses and parses one catalog file.
pub fn parse(gz: &[u8]) -> anyhow::Result<Vec<ApiResourceList>> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(gz).read_to_end(&mut json)?;
    Ok(serde_json::from_slice(&json)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_catalogs_parse_and_serve_the_core_group() {
        for c in [Catalog::Vanilla, Catalog::Large] {
            let lists = c.lists();
            assert!(!lists.is_empty(), "{c} is empty");
            assert!(lists.iter().any(|l| l.group_version == "v1"));
            assert!(c.resources().iter().any(|r| r.entry.name == "configmaps"));
            assert!(c.resources().iter().any(|r| r.entry.name == "namespaces"));
        }
    }

    #[test]
    fn catalog_names_parse() {
        assert_eq!("large".parse::<Catalog>().ok(), Some(Catalog::Large));
        assert!("huge".parse::<Catalog>().is_err());
    }

    #[test]
    fn group_versions_split() {
        assert_eq!(split_group_version("apps/v1"), ("apps", "v1"));
        assert_eq!(split_group_version("v1"), ("", "v1"));
    }
}
