//! Group/version/resource names as faro's configs and output spell them.
//!
//! `v1/configmaps` for the core group, `group/version/resource` otherwise
//! (`apps/v1/deployments`). Parsing is strict so that typos fail at start-up.

use std::fmt;
use std::str::FromStr;

/// A group, version and resource (plural), e.g. `apps/v1/deployments`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvr {
    /// API group; empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Resource name: the lowercase plural, e.g. `deployments`.
    pub resource: String,
}

impl Gvr {
    /// Builds a GVR from its parts.
    pub fn new(group: &str, version: &str, resource: &str) -> Gvr {
        Gvr {
            group: group.to_owned(),
            version: version.to_owned(),
            resource: resource.to_owned(),
        }
    }

    /// `v1/namespaces`, which faro watches for itself (namespace patterns, workloads).
    pub fn namespaces() -> Gvr {
        Gvr::new("", "v1", "namespaces")
    }

    /// Whether this is `v1/namespaces`.
    pub fn is_namespaces(&self) -> bool {
        self.group.is_empty() && self.version == "v1" && self.resource == "namespaces"
    }

    /// `v1` or `group/version`, as in an object's `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The URL path prefix of this GVR's group-version: `/api/v1` or `/apis/{group}/{version}`.
    pub fn api_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// The collection URL, cluster-wide or in one namespace.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) => format!("{}/namespaces/{}/{}", self.api_prefix(), ns, self.resource),
            None => format!("{}/{}", self.api_prefix(), self.resource),
        }
    }
}

impl fmt::Display for Gvr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}/{}", self.version, self.resource)
        } else {
            write!(f, "{}/{}/{}", self.group, self.version, self.resource)
        }
    }
}

/// Why a GVR string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GvrError(pub String);

impl fmt::Display for GvrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GvrError {}

impl FromStr for Gvr {
    type Err = GvrError;

    fn from_str(s: &str) -> Result<Gvr, GvrError> {
        let invalid = |why: &str| {
            Err(GvrError(format!(
                "invalid GVR {s:?}: {why}; expected \"v1/pods\" for the core group or \"group/version/resource\" such as \"apps/v1/deployments\""
            )))
        };
        let parts: Vec<&str> = s.split('/').collect();
        let (group, version, resource) = match parts.as_slice() {
            [version, resource] => ("", *version, *resource),
            [group, version, resource] => (*group, *version, *resource),
            _ => return invalid("wrong number of '/'-separated parts"),
        };
        if group.is_empty() && parts.len() == 3 {
            return invalid("empty group (write the core group as \"v1/...\")");
        }
        if !group.is_empty() && !is_dns_subdomain(group) {
            return invalid("the group is not a DNS subdomain");
        }
        if !is_version(version) {
            return invalid("the version must look like v1, v1beta1 or v2alpha3");
        }
        if !is_resource_name(resource) {
            return invalid("the resource must be a lowercase plural such as \"deployments\"");
        }
        Ok(Gvr::new(group, version, resource))
    }
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_version(s: &str) -> bool {
    // Kubernetes API versions: v<major>[(alpha|beta)<minor>].
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let major_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    if major_len == 0 {
        return false;
    }
    let rest = &rest[major_len..];
    if rest.is_empty() {
        return true;
    }
    let minor = rest
        .strip_prefix("alpha")
        .or_else(|| rest.strip_prefix("beta"));
    minor.is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
}

fn is_resource_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Orders API versions by Kubernetes version priority: GA before beta before alpha, higher
/// numbers first (`v2 > v1 > v1beta2 > v1beta1 > v1alpha1`), anything unparseable last,
/// alphabetically. Returns `Less` when `a` has the higher priority.
pub fn version_priority(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(v: &str) -> (u8, u64, u64, String) {
        let parsed = v.strip_prefix('v').and_then(|rest| {
            let major_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let major: u64 = rest[..major_len].parse().ok()?;
            let rest = &rest[major_len..];
            if rest.is_empty() {
                return Some((0, major, 0));
            }
            let (stability, minor) = if let Some(m) = rest.strip_prefix("beta") {
                (1, m)
            } else if let Some(m) = rest.strip_prefix("alpha") {
                (2, m)
            } else {
                return None;
            };
            Some((stability, major, minor.parse().ok()?))
        });
        match parsed {
            // Higher major/minor first: invert them for an ascending sort.
            Some((stability, major, minor)) => {
                (stability, u64::MAX - major, u64::MAX - minor, String::new())
            }
            None => (3, 0, 0, v.to_owned()),
        }
    }
    key(a).cmp(&key(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_and_grouped_gvrs_parse_and_print_back() {
        for s in [
            "v1/pods",
            "apps/v1/deployments",
            "example.com/v1alpha1/widgets",
        ] {
            assert_eq!(s.parse::<Gvr>().unwrap().to_string(), s);
        }
        let g: Gvr = "apps/v1/deployments".parse().unwrap();
        assert_eq!(g.api_version(), "apps/v1");
        assert_eq!(
            g.collection_path(Some("prod")),
            "/apis/apps/v1/namespaces/prod/deployments"
        );
        let core: Gvr = "v1/configmaps".parse().unwrap();
        assert_eq!(core.collection_path(None), "/api/v1/configmaps");
    }

    #[test]
    fn malformed_gvrs_are_rejected() {
        for bad in [
            "",
            "pods",
            "v1",
            "/v1/pods",
            "apps//deployments",
            "apps/v1/deployments/scale",
            "Apps/v1/deployments",
            "apps/1/deployments",
            "apps/v1/Deployments",
            "apps/v1beta/deployments",
            "v1/",
        ] {
            assert!(bad.parse::<Gvr>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn versions_sort_by_kubernetes_priority() {
        let mut v = vec![
            "v1alpha1", "v1beta1", "v1", "v2beta1", "v2", "v10", "foo", "v1beta2",
        ];
        v.sort_by(|a, b| version_priority(a, b));
        assert_eq!(
            v,
            [
                "v10", "v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "foo"
            ]
        );
    }
}
