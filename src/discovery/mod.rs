//! API discovery: every served group-version and resource of a cluster. Nothing is filtered here.
//!
//! Aggregated discovery (apidiscovery.k8s.io/v2: `GET /api` and `GET /apis`, two requests) comes
//! first; servers without it get legacy discovery with all group-version documents fetched
//! concurrently. We parse the documents ourselves rather than through kube's `Discovery`: it
//! drops short names (the SHORTNAMES column), ignores `freshness: Stale`, and its
//! `run_aggregated` silently returns nothing from a server without aggregated discovery
//! (kube-rs-notes.md §4), while its legacy `run` fetches group-versions one after another.

use std::collections::BTreeMap;

use bytes::Bytes;
use kube::Client;
use serde::Deserialize;
use tokio::task::JoinSet;

use crate::client::{self, ApiError, RequestError};
use crate::gvr::{Gvr, version_priority};

mod resolve;

pub use resolve::{ResolveError, Resolved};

/// The Accept header asking for aggregated discovery, falling back to the legacy documents
/// (the same string kubectl 1.32 and kube-core send; k8s-protocol.md §1.3).
const ACCEPT_AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

/// One served resource of one group-version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Group, version and plural.
    pub gvr: Gvr,
    /// Kind of the objects, e.g. `Deployment`.
    pub kind: String,
    /// Namespaced (true) or cluster-scoped (false).
    pub namespaced: bool,
    /// Verbs the server supports on the collection.
    pub verbs: Vec<String>,
    /// Short names (`deploy`), possibly none.
    pub short_names: Vec<String>,
    /// Singular name (`deployment`): the server's, else the lowercased kind, as kubectl's
    /// RESTMapper falls back to.
    pub singular: String,
    /// Whether this version is the group's preferred version.
    pub preferred: bool,
    /// Names of the subresources (`status`, `scale`), kept apart from top-level resources.
    pub subresources: Vec<String>,
}

impl Resource {
    /// Whether faro can watch this resource (see [`is_watchable`]).
    pub fn watchable(&self) -> bool {
        is_watchable(&self.gvr.group, &self.gvr.resource, &self.verbs)
    }
}

/// Whether a resource can be watched: its verbs include `list` and `watch`, it is not a
/// subresource (`pods/log`), and it is not in the known-problematic set: `componentstatuses`
/// (deprecated, served by a synthetic storage that fails in many clusters), `bindings`
/// (create-only) and the `metrics.k8s.io` group (computed on the fly, list only).
pub fn is_watchable(group: &str, resource: &str, verbs: &[String]) -> bool {
    let has = |verb: &str| verbs.iter().any(|v| v == verb);
    has("list")
        && has("watch")
        && !resource.contains('/')
        && !(group.is_empty() && matches!(resource, "componentstatuses" | "bindings"))
        && group != "metrics.k8s.io"
}

/// Which discovery protocol the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// apidiscovery.k8s.io/v2 documents at `/api` and `/apis`.
    Aggregated,
    /// `/api`, `/apis` and one document per group-version.
    Legacy,
}

/// Why discovery failed as a whole. A failing group-version is not an error but a [`Warning`].
///
/// Retry policy: [`Error::is_permanent`] errors (rejected credentials, forbidden discovery)
/// will not fix themselves; the others (unreachable server, 5xx, a malformed answer from a
/// server being restarted) are worth retrying with a backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 401: the server rejected the credentials.
    #[error("GET {path}: {status}: the credentials were rejected; check the kubeconfig user")]
    Unauthorized {
        /// The discovery document asked for.
        path: &'static str,
        /// The server's answer.
        status: ApiError,
    },
    /// 403: the user may not read discovery.
    #[error("GET {path}: {status}: the user may not read API discovery")]
    Forbidden {
        /// The discovery document asked for.
        path: &'static str,
        /// The server's answer.
        status: ApiError,
    },
    /// The server could not be reached (connection, TLS, auth plugin).
    #[error("GET {path}: {source}")]
    Unreachable {
        /// The discovery document asked for.
        path: &'static str,
        /// The transport failure.
        #[source]
        source: RequestError,
    },
    /// The server answered with another error.
    #[error("GET {path}: {status}")]
    Api {
        /// The discovery document asked for.
        path: &'static str,
        /// The server's answer.
        status: ApiError,
    },
    /// A discovery document did not decode.
    #[error("malformed {document}: {message}")]
    Malformed {
        /// Which document.
        document: &'static str,
        /// The decoder's message.
        message: String,
    },
}

impl Error {
    /// Whether retrying cannot help (the credentials or the RBAC rules must change).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::Unauthorized { .. } | Error::Forbidden { .. })
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A group-version that could not be discovered; its resources are unknown, not absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `v1` or `group/version`.
    pub group_version: String,
    /// What went wrong (the server's error, or "discovery document is stale").
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.group_version, self.message)
    }
}

/// Result of a discovery run: the resources, and the group-versions that could not be read.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// Every served resource of every readable group-version, sorted like
    /// `kubectl api-resources` (group, then name), versions by priority.
    pub resources: Vec<Resource>,
    /// The group-versions that failed (e.g. an unavailable aggregated API service).
    pub warnings: Vec<Warning>,
    /// The protocol used.
    pub mode: Mode,
}

impl Discovery {
    /// Looks up a resource by GVR.
    pub fn find(&self, gvr: &Gvr) -> Option<&Resource> {
        self.resources.iter().find(|r| &r.gvr == gvr)
    }

    /// Whether the group-version of `gvr` failed to be discovered (so its resources are unknown,
    /// not absent).
    pub fn group_version_failed(&self, gvr: &Gvr) -> bool {
        let gv = gvr.api_version();
        self.warnings.iter().any(|w| w.group_version == gv)
    }
}

/// Runs discovery against the server. Fails only when the server cannot be read at all
/// (unreachable, 401/403 on `/api` or `/apis`); a failing group-version is a warning.
pub async fn discover(client: &Client) -> Result<Discovery> {
    let (core, groups) = tokio::join!(
        client::get_document(client, "/api", Some(ACCEPT_AGGREGATED)),
        client::get_document(client, "/apis", Some(ACCEPT_AGGREGATED)),
    );
    let core = core.map_err(|e| discovery_error("/api", e))?;
    let groups = groups.map_err(|e| discovery_error("/apis", e))?;
    let discovery = if is_aggregated(&core.0) && is_aggregated(&groups.0) {
        let mut warnings = Vec::new();
        let mut resources = parse_aggregated(&core.1, &mut warnings)?;
        resources.extend(parse_aggregated(&groups.1, &mut warnings)?);
        Discovery {
            resources,
            warnings,
            mode: Mode::Aggregated,
        }
    } else {
        legacy(client, &core.1, &groups.1).await?
    };
    Ok(sorted(discovery))
}

/// [`discover`], retried for up to `timeout` while the server is unreachable or failing (a
/// permanent error, such as rejected credentials, is returned at once). Group-versions that
/// could not be read are logged as warnings.
pub async fn discover_patiently(
    client: &Client,
    timeout: std::time::Duration,
) -> Result<Discovery> {
    let mut delay = std::time::Duration::from_millis(250);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match discover(client).await {
            Ok(found) => {
                for warning in &found.warnings {
                    tracing::warn!("unable to discover {warning}");
                }
                return Ok(found);
            }
            Err(e) if e.is_permanent() || tokio::time::Instant::now() + delay > deadline => {
                return Err(e);
            }
            Err(e) => {
                tracing::warn!("{e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(4));
            }
        }
    }
}

fn discovery_error(path: &'static str, err: RequestError) -> Error {
    match err {
        RequestError::Api(status) if status.code == 401 => Error::Unauthorized { path, status },
        RequestError::Api(status) if status.code == 403 => Error::Forbidden { path, status },
        RequestError::Api(status) => Error::Api { path, status },
        source => Error::Unreachable { path, source },
    }
}

fn is_aggregated(content_type: &str) -> bool {
    // e.g. "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    content_type.contains("as=APIGroupDiscoveryList")
        && content_type.contains("apidiscovery.k8s.io")
}

fn sorted(mut discovery: Discovery) -> Discovery {
    discovery.resources.sort_by(|a, b| {
        (&a.gvr.group, &a.gvr.resource)
            .cmp(&(&b.gvr.group, &b.gvr.resource))
            .then_with(|| version_priority(&a.gvr.version, &b.gvr.version))
    });
    discovery
}

// ---- aggregated discovery (apidiscovery.k8s.io/v2) ----

#[derive(Deserialize)]
struct GroupDiscoveryList {
    #[serde(default)]
    items: Vec<GroupDiscovery>,
}

#[derive(Deserialize)]
struct GroupDiscovery {
    #[serde(default)]
    metadata: NameMeta,
    #[serde(default)]
    versions: Vec<VersionDiscovery>,
}

#[derive(Deserialize, Default)]
struct NameMeta {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct VersionDiscovery {
    #[serde(default)]
    version: String,
    #[serde(default)]
    resources: Vec<ResourceDiscovery>,
    #[serde(default)]
    freshness: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceDiscovery {
    #[serde(default)]
    resource: String,
    response_kind: Option<KindRef>,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    short_names: Vec<String>,
    #[serde(default)]
    singular_resource: String,
    #[serde(default)]
    subresources: Vec<SubresourceDiscovery>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubresourceDiscovery {
    #[serde(default)]
    subresource: String,
    response_kind: Option<KindRef>,
}

#[derive(Deserialize)]
struct KindRef {
    #[serde(default)]
    kind: String,
}

fn parse_aggregated(body: &Bytes, warnings: &mut Vec<Warning>) -> Result<Vec<Resource>> {
    let list: GroupDiscoveryList = serde_json::from_slice(body).map_err(|e| Error::Malformed {
        document: "aggregated discovery document",
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for group in list.items {
        // The server lists versions in preference order; the first one that is not stale is
        // the preferred one (client-go treats stale versions as failed).
        let mut preferred_taken = false;
        for version in group.versions {
            let gvr_prefix = Gvr::new(&group.metadata.name, &version.version, "");
            if version.freshness == "Stale" {
                warnings.push(Warning {
                    group_version: gvr_prefix.api_version(),
                    message: "the API service is unavailable (discovery document is stale)".into(),
                });
                continue;
            }
            let preferred = !preferred_taken;
            preferred_taken = true;
            for r in version.resources {
                // client-go drops resources without a responseKind; so do we.
                let Some(kind) = r.response_kind.filter(|k| !k.kind.is_empty()) else {
                    continue;
                };
                if r.resource.is_empty() {
                    continue;
                }
                out.push(Resource {
                    gvr: Gvr::new(&group.metadata.name, &version.version, &r.resource),
                    singular: singular_or_kind(r.singular_resource, &kind.kind),
                    kind: kind.kind,
                    namespaced: r.scope == "Namespaced",
                    verbs: r.verbs,
                    short_names: r.short_names,
                    preferred,
                    subresources: r
                        .subresources
                        .into_iter()
                        .filter(|s| {
                            !s.subresource.is_empty()
                                && s.response_kind.as_ref().is_some_and(|k| !k.kind.is_empty())
                        })
                        .map(|s| s.subresource)
                        .collect(),
                });
            }
        }
    }
    Ok(out)
}

// ---- legacy discovery ----

#[derive(Deserialize)]
struct ApiVersions {
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiGroupList {
    #[serde(default)]
    groups: Vec<ApiGroup>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiGroup {
    name: String,
    #[serde(default)]
    versions: Vec<GroupVersionRef>,
    preferred_version: Option<GroupVersionRef>,
}

#[derive(Deserialize)]
struct GroupVersionRef {
    #[serde(default)]
    version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiResourceList {
    #[serde(default)]
    resources: Vec<LegacyResource>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyResource {
    name: String,
    #[serde(default)]
    namespaced: bool,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    short_names: Vec<String>,
    #[serde(default)]
    singular_name: String,
}

/// The singular name, or the lowercased kind when the server sends none (built-in legacy
/// documents leave `singularName` empty; client-go's discovery RESTMapper then uses the kind).
fn singular_or_kind(singular: String, kind: &str) -> String {
    if singular.is_empty() {
        kind.to_ascii_lowercase()
    } else {
        singular
    }
}

async fn legacy(client: &Client, core: &Bytes, groups: &Bytes) -> Result<Discovery> {
    let malformed = |document: &'static str| {
        move |e: serde_json::Error| Error::Malformed {
            document,
            message: e.to_string(),
        }
    };
    let core: ApiVersions = serde_json::from_slice(core).map_err(malformed("/api document"))?;
    let groups: ApiGroupList =
        serde_json::from_slice(groups).map_err(malformed("/apis document"))?;

    // (group, version, preferred) for every served group-version.
    let mut targets: Vec<(String, String, bool)> = Vec::new();
    let core_preferred = core.versions.first().cloned();
    for version in &core.versions {
        targets.push((
            String::new(),
            version.clone(),
            Some(version) == core_preferred.as_ref(),
        ));
    }
    for group in &groups.groups {
        let preferred = group
            .preferred_version
            .as_ref()
            .map(|p| p.version.clone())
            .or_else(|| group.versions.first().map(|v| v.version.clone()));
        for version in &group.versions {
            targets.push((
                group.name.clone(),
                version.version.clone(),
                Some(&version.version) == preferred.as_ref(),
            ));
        }
    }

    // All group-version documents at once: with ~60 of them, sequential round trips (kube's
    // `Discovery::run`) dominate the wall time.
    let mut tasks = JoinSet::new();
    for (index, (group, version, _)) in targets.iter().enumerate() {
        let client = client.clone();
        let path = Gvr::new(group, version, "").api_prefix();
        tasks.spawn(async move { (index, client::get_document(&client, &path, None).await) });
    }
    let mut documents: BTreeMap<usize, Result<Bytes, RequestError>> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        // A task only panics if the runtime is shutting down; its group-version then counts
        // as not discovered.
        if let Ok((index, result)) = joined {
            documents.insert(index, result.map(|(_, body)| body));
        }
    }

    let mut resources = Vec::new();
    let mut warnings = Vec::new();
    for (index, (group, version, preferred)) in targets.iter().enumerate() {
        let gv = Gvr::new(group, version, "").api_version();
        let body = match documents.remove(&index) {
            Some(Ok(body)) => body,
            Some(Err(err)) => {
                warnings.push(Warning {
                    group_version: gv,
                    message: err.to_string(),
                });
                continue;
            }
            None => {
                warnings.push(Warning {
                    group_version: gv,
                    message: "not fetched".into(),
                });
                continue;
            }
        };
        let list: ApiResourceList = match serde_json::from_slice(&body) {
            Ok(list) => list,
            Err(err) => {
                warnings.push(Warning {
                    group_version: gv,
                    message: format!("malformed APIResourceList: {err}"),
                });
                continue;
            }
        };
        let mut subresources: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut top = Vec::new();
        for r in list.resources {
            // Subresources come as "parent/sub"; keep them apart, attached to the parent.
            if let Some((parent, sub)) = r.name.split_once('/') {
                subresources
                    .entry(parent.to_owned())
                    .or_default()
                    .push(sub.to_owned());
            } else {
                top.push(r);
            }
        }
        for r in top {
            resources.push(Resource {
                subresources: subresources.remove(&r.name).unwrap_or_default(),
                gvr: Gvr::new(group, version, &r.name),
                singular: singular_or_kind(r.singular_name, &r.kind),
                kind: r.kind,
                namespaced: r.namespaced,
                verbs: r.verbs,
                short_names: r.short_names,
                preferred: *preferred,
            });
        }
    }
    Ok(Discovery {
        resources,
        warnings,
        mode: Mode::Legacy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verbs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn watchability_needs_list_and_watch() {
        let all = verbs(&["get", "list", "watch"]);
        assert!(is_watchable("", "pods", &all));
        assert!(is_watchable("apps", "deployments", &all));
        assert!(!is_watchable("", "pods", &verbs(&["get", "list"])));
        assert!(!is_watchable("", "pods", &verbs(&["watch"])));
        assert!(!is_watchable(
            "authentication.k8s.io",
            "tokenreviews",
            &verbs(&["create"])
        ));
    }

    #[test]
    fn known_problematic_resources_are_not_watchable() {
        let all = verbs(&["get", "list", "watch"]);
        assert!(!is_watchable("", "componentstatuses", &all));
        assert!(!is_watchable("", "bindings", &all));
        assert!(!is_watchable("metrics.k8s.io", "pods", &all));
        assert!(!is_watchable("", "pods/log", &all));
        // Only the core group's bindings are the problematic one.
        assert!(is_watchable("example.com", "bindings", &all));
    }

    #[test]
    fn aggregated_document_is_parsed_with_subresources_and_preference() {
        let doc = br#"{"kind":"APIGroupDiscoveryList","apiVersion":"apidiscovery.k8s.io/v2","items":[
          {"metadata":{"name":"autoscaling"},"versions":[
            {"version":"v2","freshness":"Current","resources":[
              {"resource":"horizontalpodautoscalers","responseKind":{"group":"autoscaling","version":"v2","kind":"HorizontalPodAutoscaler"},
               "scope":"Namespaced","verbs":["get","list","watch"],"shortNames":["hpa"],
               "subresources":[{"subresource":"status","responseKind":{"kind":"HorizontalPodAutoscaler"},"verbs":["get"]}]}]},
            {"version":"v1","resources":[
              {"resource":"horizontalpodautoscalers","responseKind":{"kind":"HorizontalPodAutoscaler"},"scope":"Namespaced","verbs":["get"]},
              {"resource":"nokind","scope":"Cluster","verbs":["get"]}]}]},
          {"metadata":{"name":"metrics.k8s.io"},"versions":[{"version":"v1beta1","freshness":"Stale","resources":[]}]}]}"#;
        let mut warnings = Vec::new();
        let resources = parse_aggregated(&Bytes::from_static(doc), &mut warnings).unwrap();
        assert_eq!(
            resources.len(),
            2,
            "the resource without responseKind is dropped"
        );
        let v2 = &resources[0];
        assert_eq!(
            v2.gvr.to_string(),
            "autoscaling/v2/horizontalpodautoscalers"
        );
        assert!(v2.preferred && v2.namespaced);
        assert_eq!(v2.short_names, ["hpa"]);
        assert_eq!(v2.subresources, ["status"]);
        assert!(!resources[1].preferred);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].group_version, "metrics.k8s.io/v1beta1");
    }

    #[test]
    fn content_type_decides_the_protocol() {
        assert!(is_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ));
        assert!(!is_aggregated("application/json"));
    }
}
