//! URL paths to API targets: discovery documents, OpenAPI, the admin API, and resource paths
//! (`/api/v1/...`, `/apis/{g}/{v}/...`, with or without `namespaces/{ns}/`, the deprecated
//! `watch/` prefix, names and subresources). Resolution against the registry decides the
//! ambiguous `namespaces/{x}/{y}` form.

use std::sync::Arc;

use percent_encoding::percent_decode_str;

use crate::registry::{Registry, ResourceInfo};
use crate::status::ApiError;

/// What a path names, before the registry is consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/version`.
    Version,
    /// `/api`.
    Api,
    /// `/apis`.
    Apis,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/{v}` or `/apis/{g}/{v}`.
    GroupVersion(String, String),
    /// `/openapi/v3`.
    OpenApiIndex,
    /// `/openapi/v3/{api/v1 | apis/g/v}`.
    OpenApiDoc(String),
    /// `/healthz`, `/livez`, `/readyz`.
    Health,
    /// `/_sim/{name}`.
    Admin(String),
    /// Something under a group version.
    Resource {
        /// Group.
        group: String,
        /// Version.
        version: String,
        /// Path segments after the version (the `watch` prefix removed).
        segments: Vec<String>,
        /// Whether the deprecated `/watch/` prefix was used.
        watch_prefix: bool,
    },
    /// Anything else.
    Unknown,
}

/// A resolved resource target.
#[derive(Debug, Clone)]
pub struct Target {
    /// The served resource.
    pub info: Arc<ResourceInfo>,
    /// Namespace from the path (namespaced resources only).
    pub namespace: Option<String>,
    /// Object name, if the path names one.
    pub name: Option<String>,
    /// Subresource, if any.
    pub subresource: Option<String>,
}

/// Parses a request path.
pub fn parse(path: &str) -> Route {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::Api,
        ["apis"] => Route::Apis,
        ["apis", g] => Route::Group(g.to_string()),
        ["api", v] => Route::GroupVersion(String::new(), v.to_string()),
        ["apis", g, v] => Route::GroupVersion(g.to_string(), v.to_string()),
        ["openapi", "v3"] => Route::OpenApiIndex,
        ["openapi", "v3", rest @ ..] => Route::OpenApiDoc(rest.join("/")),
        ["healthz" | "livez" | "readyz", ..] => Route::Health,
        ["_sim", name] => Route::Admin(name.to_string()),
        ["api", v, rest @ ..] => resource(String::new(), v, rest),
        ["apis", g, v, rest @ ..] => resource(g.to_string(), v, rest),
        _ => Route::Unknown,
    }
}

fn resource(group: String, version: &str, rest: &[&str]) -> Route {
    let (watch_prefix, rest) = match rest {
        ["watch", tail @ ..] if !tail.is_empty() => (true, tail),
        _ => (false, rest),
    };
    Route::Resource {
        group,
        version: version.to_string(),
        segments: rest.iter().map(|s| s.to_string()).collect(),
        watch_prefix,
    }
}

/// Resolves resource segments against the registry (404 Status when nothing matches).
pub fn resolve(
    reg: &Registry,
    group: &str,
    version: &str,
    segments: &[String],
) -> Result<Target, ApiError> {
    let lookup = |plural: &str| reg.lookup(group, version, plural);
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let target =
        |info: Arc<ResourceInfo>, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| Target {
            info,
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        };
    let found = match s.as_slice() {
        ["namespaces", ns, plural] => match lookup(plural) {
            Some(info) if info.namespaced => Some(target(info, Some(ns), None, None)),
            _ => lookup("namespaces")
                .filter(|i| i.subresource(plural).is_some())
                .map(|info| target(info, None, Some(ns), Some(plural))),
        },
        ["namespaces", ns, plural, name] => lookup(plural)
            .filter(|i| i.namespaced)
            .map(|info| target(info, Some(ns), Some(name), None)),
        ["namespaces", ns, plural, name, sub] => lookup(plural)
            .filter(|i| i.namespaced)
            .map(|info| target(info, Some(ns), Some(name), Some(sub))),
        [plural] => lookup(plural).map(|info| target(info, None, None, None)),
        [plural, name] => lookup(plural)
            .filter(|i| !i.namespaced)
            .map(|info| target(info, None, Some(name), None)),
        [plural, name, sub] => lookup(plural)
            .filter(|i| !i.namespaced)
            .map(|info| target(info, None, Some(name), Some(sub))),
        _ => None,
    };
    let t = found.ok_or_else(ApiError::path_not_found)?;
    if let Some(sub) = &t.subresource
        && t.info.subresource(sub).is_none()
    {
        return Err(ApiError::path_not_found());
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn segs(p: &str) -> (String, String, Vec<String>) {
        match parse(p) {
            Route::Resource {
                group,
                version,
                segments,
                ..
            } => (group, version, segments),
            other => panic!("{p}: {other:?}"),
        }
    }

    #[test]
    fn discovery_paths_parse() {
        assert_eq!(parse("/version"), Route::Version);
        assert_eq!(parse("/api"), Route::Api);
        assert_eq!(
            parse("/apis/apps/v1"),
            Route::GroupVersion("apps".into(), "v1".into())
        );
        assert_eq!(
            parse("/api/v1"),
            Route::GroupVersion("".into(), "v1".into())
        );
        assert_eq!(
            parse("/openapi/v3/apis/apps/v1"),
            Route::OpenApiDoc("apis/apps/v1".into())
        );
        assert_eq!(parse("/_sim/state"), Route::Admin("state".into()));
        assert_eq!(parse("/nope"), Route::Unknown);
    }

    #[test]
    fn resource_paths_resolve() {
        let reg = Registry::from_catalog(Catalog::Vanilla.lists());
        let (g, v, s) = segs("/api/v1/namespaces/default/configmaps/cm1");
        let t = resolve(&reg, &g, &v, &s).expect("resolves");
        assert_eq!(t.info.plural, "configmaps");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("cm1"));
        let (g, v, s) = segs("/api/v1/namespaces/foo/status");
        let t = resolve(&reg, &g, &v, &s).expect("namespace status");
        assert_eq!(t.info.plural, "namespaces");
        assert_eq!(t.name.as_deref(), Some("foo"));
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let (g, v, s) = segs("/api/v1/namespaces/foo");
        assert_eq!(
            resolve(&reg, &g, &v, &s)
                .expect("namespace")
                .name
                .as_deref(),
            Some("foo")
        );
        let (g, v, s) = segs("/apis/apps/v1/deployments");
        assert!(
            resolve(&reg, &g, &v, &s)
                .expect("all deployments")
                .namespace
                .is_none()
        );
    }

    #[test]
    fn wrong_scopes_and_unknown_resources_are_not_found() {
        let reg = Registry::from_catalog(Catalog::Vanilla.lists());
        for p in [
            "/api/v1/configmaps/x",
            "/api/v1/namespaces/a/nodes/n",
            "/api/v1/widgets",
            "/api/v1/namespaces/a/pods/p/bogus",
        ] {
            let (g, v, s) = segs(p);
            assert_eq!(resolve(&reg, &g, &v, &s).expect_err(p).code, 404, "{p}");
        }
    }

    #[test]
    fn the_watch_prefix_is_stripped() {
        match parse("/api/v1/watch/namespaces/a/configmaps") {
            Route::Resource {
                segments,
                watch_prefix,
                ..
            } => {
                assert!(watch_prefix);
                assert_eq!(segments, vec!["namespaces", "a", "configmaps"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
