//! Resource names as kubectl takes them, resolved against what the server serves
//! ([`Discovery::resolve`]).

use super::{Discovery, Resource};
use crate::gvr::Gvr;

/// The resource a name resolved to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Resolved<'a> {
    /// The resource, in its preferred version unless the name gave one.
    pub resource: &'a Resource,
    /// Resources of lower-priority groups that the name also matches (as `resource.group`),
    /// for a warning such as kubectl's `short name "ev" could also match lower priority resource
    /// events.events.k8s.io`.
    pub shadowed: Vec<String>,
}

/// Why a name does not resolve to one watchable resource. Not retried: the name is the
/// problem, or the cluster does not serve what it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// Nothing served has this name (kubectl's wording), with near names.
    #[error(
        "the server doesn't have a resource type {name:?}{}",
        did_you_mean(suggestions)
    )]
    Unknown {
        /// The name as given.
        name: String,
        /// Served names close to it (`resource` or `resource.group`), best first.
        suggestions: Vec<String>,
    },
    /// Several groups serve a resource of this name, none of them core or built in.
    #[error("{name:?} is ambiguous: it names {}; use one of these names", candidates.join(", "))]
    Ambiguous {
        /// The name as given.
        name: String,
        /// Each resource it could mean, as `resource.group`.
        candidates: Vec<String>,
    },
    /// The resource exists but cannot be listed and watched (`tokenreviews`, `bindings`).
    #[error("{name:?} ({gvr}) cannot be watched: {}", not_watchable(verbs))]
    NotWatchable {
        /// The name as given.
        name: String,
        /// The resource it names.
        gvr: Gvr,
        /// The verbs the server offers on it.
        verbs: Vec<String>,
    },
    /// Not a resource name at all (empty, or with characters no name has).
    #[error("{name:?} is not a resource name (e.g. pods, deploy, deployments.apps)")]
    Invalid {
        /// The name as given.
        name: String,
    },
}

fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!(" (did you mean {one:?}?)"),
        many => {
            let quoted: Vec<String> = many.iter().map(|s| format!("{s:?}")).collect();
            format!(" (did you mean one of {}?)", quoted.join(", "))
        }
    }
}

fn not_watchable(verbs: &[String]) -> String {
    if verbs.iter().any(|v| v == "list") && verbs.iter().any(|v| v == "watch") {
        "faro does not watch it (see `faro discover --watchable`)".to_owned()
    } else {
        format!(
            "the server offers only {} on it, and watching needs list and watch",
            if verbs.is_empty() {
                "no verbs".to_owned()
            } else {
                verbs.join(", ")
            }
        )
    }
}

/// One way of reading a typed name.
#[derive(Debug, Clone, Copy)]
struct Form<'a> {
    resource: &'a str,
    version: Option<&'a str>,
    group: Option<&'a str>,
}

/// `a` → (a); `a.b` → (a, group b); `a.b.c…` → (a, version b, group c…), then (a, group b.c…).
fn forms(name: &str) -> Vec<Form<'_>> {
    let Some((resource, rest)) = name.split_once('.') else {
        return vec![Form {
            resource: name,
            version: None,
            group: None,
        }];
    };
    let mut out = Vec::new();
    if let Some((version, group)) = rest.split_once('.') {
        out.push(Form {
            resource,
            version: Some(version),
            group: Some(group),
        });
    }
    out.push(Form {
        resource,
        version: None,
        group: Some(rest),
    });
    out
}

/// The order in which groups win a name: the core group, then kube-apiserver's own groups
/// (`apps`, `batch`, `*.k8s.io`; CRDs need a dotted group and cannot take `*.k8s.io` without an
/// API review), then every other group, equally.
fn group_rank(group: &str) -> u8 {
    if group.is_empty() {
        0
    } else if !group.contains('.') || group.ends_with(".k8s.io") {
        1
    } else {
        2
    }
}

/// `deployments.apps`, or `pods` for the core group: the name kubectl users type to be exact.
pub(crate) fn qualified(resource: &Resource) -> String {
    if resource.gvr.group.is_empty() {
        resource.gvr.resource.clone()
    } else {
        format!("{}.{}", resource.gvr.resource, resource.gvr.group)
    }
}

impl Discovery {
    /// Resolves a resource name as `kubectl get` does: `pods`, `pod`, `po`, `Pod`,
    /// `deployments.apps`, `deploy.v1.apps`, a CRD's plural, kind or short name.
    ///
    /// The rules are kubectl's: `a.b.c` is read as resource `a`, version `b` and group `c`
    /// first, then as resource `a` of group `b.c` (apimachinery's `ParseResourceArg`); names are
    /// compared in lowercase (the RESTMapper's `coerceResourceForMatching`) against the plural,
    /// the singular and the kind; a short name counts only when no resource has that full name,
    /// and with a group given, a short name may name its group by a prefix (`hpa.autoscal`;
    /// client-go `restmapper/shortcut.go`: "avoid expanding if there's an exact match to a full
    /// resource name", "match on group prefixing"). Without a version, the group's preferred
    /// version is taken.
    ///
    /// Where kubectl picks among groups by discovery order (the core group, then
    /// kube-apiserver's own groups, then the rest), faro does the same for the first two, with
    /// the others in [`Resolved::shadowed`], but refuses to guess among other groups: `builds`
    /// on OpenShift is both `builds.build.openshift.io` and `builds.config.openshift.io`, and a
    /// tool of record should not watch one of them because its group sorts first. That is
    /// [`ResolveError::Ambiguous`], listing the `resource.group` names that say which.
    ///
    /// Only watchable resources are chosen; a name that only matches resources that cannot be
    /// watched is [`ResolveError::NotWatchable`].
    pub fn resolve(&self, name: &str) -> Result<Resolved<'_>, ResolveError> {
        let typed = name.trim();
        let lower = typed.to_ascii_lowercase();
        let valid = !lower.is_empty()
            && lower
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !lower.starts_with('.')
            && !lower.ends_with('.');
        if !valid {
            return Err(ResolveError::Invalid { name: typed.into() });
        }
        for form in forms(&lower) {
            let found = self.matching(form);
            if !found.is_empty() {
                return pick(typed, found);
            }
        }
        Err(ResolveError::Unknown {
            name: typed.into(),
            suggestions: self.suggest(&lower),
        })
    }

    /// The resources `form` names, in the first pass that finds any: full names, short names,
    /// short names with a group prefix.
    fn matching(&self, form: Form<'_>) -> Vec<&Resource> {
        let version_ok = |r: &Resource| form.version.is_none_or(|v| r.gvr.version == v);
        let in_group = |r: &Resource| form.group.is_none_or(|g| r.gvr.group == g);
        let full = |r: &Resource| {
            r.gvr.resource == form.resource
                || r.singular == form.resource
                || r.kind.eq_ignore_ascii_case(form.resource)
        };
        let short = |r: &Resource| r.short_names.iter().any(|s| s == form.resource);
        let pass = |keep: &dyn Fn(&Resource) -> bool| -> Vec<&Resource> {
            self.resources
                .iter()
                .filter(|r| version_ok(r) && keep(r))
                .collect()
        };
        let found = pass(&|r| in_group(r) && full(r));
        if !found.is_empty() {
            return found;
        }
        let found = pass(&|r| in_group(r) && short(r));
        if !found.is_empty() || form.group.is_none() {
            return found;
        }
        let prefix = form.group.unwrap_or_default();
        pass(&|r| r.gvr.group.starts_with(prefix) && short(r))
    }

    /// Served watchable names close to `name`, as `resource` or `resource.group`.
    fn suggest(&self, name: &str) -> Vec<String> {
        let mut scored: Vec<(usize, u8, String)> = Vec::new();
        for r in self.resources.iter().filter(|r| r.watchable()) {
            let full = qualified(r);
            let mut names: Vec<&str> = vec![&r.gvr.resource, &r.singular, &full];
            names.extend(r.short_names.iter().map(String::as_str));
            let best = names
                .iter()
                .filter_map(|candidate| closeness(name, candidate))
                .min();
            if let Some(score) = best
                && !scored.iter().any(|(_, _, s)| *s == full)
            {
                scored.push((score, group_rank(&r.gvr.group), full));
            }
        }
        scored.sort();
        // Only the closest: "podz" suggests pods, not also nodes.
        let best = scored.first().map_or(0, |(score, _, _)| *score);
        scored
            .into_iter()
            .take_while(|(score, _, _)| *score == best)
            .take(3)
            .map(|(_, _, s)| s)
            .collect()
    }
}

/// How close a typed name is to a served one (lower is closer), if close enough to suggest:
/// a few edits (a transposition counts as one), or the start of it.
fn closeness(typed: &str, served: &str) -> Option<usize> {
    if typed == served {
        return Some(0);
    }
    if typed.len() >= 3 && served.starts_with(typed) {
        return Some(1);
    }
    let distance = edit_distance(typed, served);
    let allowed = match typed.len() {
        0..=3 => 1,
        4..=7 => 2,
        _ => 3,
    };
    (distance <= allowed).then_some(distance)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent
/// transpositions each cost one.
fn edit_distance(a: &str, b: &str) -> usize {
    let a = a.as_bytes();
    let b = b.as_bytes();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// Chooses among the resources a name matched: watchable ones only, the best-ranked group, the
/// preferred (else highest-priority) version.
fn pick<'a>(typed: &str, found: Vec<&'a Resource>) -> Result<Resolved<'a>, ResolveError> {
    let watchable: Vec<&Resource> = found.iter().copied().filter(|r| r.watchable()).collect();
    if watchable.is_empty() {
        let first = found
            .iter()
            .min_by_key(|r| group_rank(&r.gvr.group))
            .copied()
            .unwrap_or(found[0]);
        return Err(ResolveError::NotWatchable {
            name: typed.into(),
            gvr: first.gvr.clone(),
            verbs: first.verbs.clone(),
        });
    }
    // Distinct (group, resource) pairs, each with its versions in priority order (discovery
    // keeps resources sorted by group, resource, then version priority).
    let mut kinds: Vec<(&str, &str)> = Vec::new();
    for r in &watchable {
        let key = (r.gvr.group.as_str(), r.gvr.resource.as_str());
        if !kinds.contains(&key) {
            kinds.push(key);
        }
    }
    let best_rank = kinds.iter().map(|(g, _)| group_rank(g)).min().unwrap_or(2);
    let winners: Vec<(&str, &str)> = kinds
        .iter()
        .copied()
        .filter(|(g, _)| group_rank(g) == best_rank)
        .collect();
    let label = |(group, resource): (&str, &str)| {
        if group.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}.{group}")
        }
    };
    if winners.len() > 1 {
        let mut candidates: Vec<String> = winners.into_iter().map(label).collect();
        candidates.sort();
        return Err(ResolveError::Ambiguous {
            name: typed.into(),
            candidates,
        });
    }
    let (group, resource) = winners[0];
    let versions: Vec<&Resource> = watchable
        .iter()
        .copied()
        .filter(|r| r.gvr.group == group && r.gvr.resource == resource)
        .collect();
    let chosen = versions
        .iter()
        .copied()
        .find(|r| r.preferred)
        .unwrap_or(versions[0]);
    let shadowed = kinds
        .into_iter()
        .filter(|&(g, _)| group_rank(g) > best_rank)
        .map(label)
        .collect();
    Ok(Resolved {
        resource: chosen,
        shadowed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Mode;

    /// Discovery of one of kube-sim's catalogs (legacy documents), as faro would see it.
    fn catalog(catalog: kube_sim::Catalog) -> Discovery {
        let mut resources = Vec::new();
        let lists = catalog.lists();
        for list in lists {
            let (group, version) = match list.group_version.split_once('/') {
                Some((g, v)) => (g, v),
                None => ("", list.group_version.as_str()),
            };
            // The first version a group lists is its preferred one in these catalogs.
            let preferred = lists
                .iter()
                .find(|l| match l.group_version.split_once('/') {
                    Some((g, _)) => g == group,
                    None => group.is_empty(),
                })
                .is_some_and(|l| l.group_version == list.group_version);
            for e in list.resources.iter().filter(|e| !e.is_subresource()) {
                resources.push(Resource {
                    gvr: Gvr::new(group, version, &e.name),
                    kind: e.kind.clone(),
                    namespaced: e.namespaced,
                    verbs: e.verbs.clone(),
                    short_names: e.short_names.clone(),
                    singular: super::super::singular_or_kind(e.singular_name.clone(), &e.kind),
                    preferred,
                    subresources: Vec::new(),
                });
            }
        }
        super::super::sorted(Discovery {
            resources,
            warnings: Vec::new(),
            mode: Mode::Legacy,
        })
    }

    fn resolved(d: &Discovery, name: &str) -> String {
        match d.resolve(name) {
            Ok(r) => r.resource.gvr.to_string(),
            Err(e) => panic!("{name}: {e}"),
        }
    }

    #[test]
    fn plural_singular_kind_and_short_names_resolve_case_insensitively() {
        let d = catalog(kube_sim::Catalog::Vanilla);
        for name in ["pods", "pod", "po", "Pod", "PODS", " pods "] {
            assert_eq!(resolved(&d, name), "v1/pods", "{name}");
        }
        for name in ["deploy", "deployment", "Deployment", "deployments.apps"] {
            assert_eq!(resolved(&d, name), "apps/v1/deployments", "{name}");
        }
        assert_eq!(resolved(&d, "cm"), "v1/configmaps");
        assert_eq!(resolved(&d, "deploy.apps"), "apps/v1/deployments");
        assert_eq!(resolved(&d, "deployments.v1.apps"), "apps/v1/deployments");
        assert_eq!(
            resolved(&d, "EndpointSlice"),
            "discovery.k8s.io/v1/endpointslices"
        );
    }

    #[test]
    fn an_explicit_version_is_kept_and_a_short_name_takes_a_group_prefix() {
        let d = catalog(kube_sim::Catalog::Vanilla);
        let versions: Vec<String> = d
            .resources
            .iter()
            .filter(|r| {
                r.gvr.group == "autoscaling" && r.gvr.resource == "horizontalpodautoscalers"
            })
            .map(|r| r.gvr.version.clone())
            .collect();
        assert!(versions.len() >= 2, "{versions:?}");
        for v in &versions {
            assert_eq!(
                resolved(&d, &format!("hpa.{v}.autoscaling")),
                format!("autoscaling/{v}/horizontalpodautoscalers")
            );
        }
        let preferred = d
            .resources
            .iter()
            .find(|r| r.gvr.resource == "horizontalpodautoscalers" && r.preferred)
            .unwrap();
        assert_eq!(resolved(&d, "hpa"), preferred.gvr.to_string());
        assert_eq!(resolved(&d, "hpa.autoscal"), preferred.gvr.to_string());
    }

    #[test]
    fn the_core_group_and_built_in_groups_win_and_the_rest_is_ambiguous() {
        let d = catalog(kube_sim::Catalog::Large);
        let events = d.resolve("ev").unwrap();
        assert_eq!(events.resource.gvr.to_string(), "v1/events");
        assert_eq!(events.shadowed, ["events.events.k8s.io"]);
        assert_eq!(
            resolved(&d, "events.events.k8s.io"),
            "events.k8s.io/v1/events"
        );
        assert_eq!(
            resolved(&d, "roles"),
            "rbac.authorization.k8s.io/v1/roles",
            "kube-apiserver's group wins over authorization.openshift.io"
        );
        assert_eq!(
            resolved(&d, "ingress").split('/').next(),
            Some("networking.k8s.io")
        );
        match d.resolve("builds").unwrap_err() {
            ResolveError::Ambiguous { candidates, .. } => assert_eq!(
                candidates,
                ["builds.build.openshift.io", "builds.config.openshift.io"]
            ),
            other => panic!("{other}"),
        }
        let message = d.resolve("builds").unwrap_err().to_string();
        assert!(message.contains("builds.config.openshift.io"), "{message}");
        assert!(d.resolve("builds.build.openshift.io").is_ok());
    }

    #[test]
    fn a_full_name_beats_a_short_name() {
        let mut d = catalog(kube_sim::Catalog::Vanilla);
        // A CRD whose short name is another resource's plural does not take that plural.
        d.resources.push(Resource {
            gvr: Gvr::new("example.com", "v1", "gadgets"),
            kind: "Gadget".into(),
            namespaced: true,
            verbs: ["list", "watch"].map(String::from).to_vec(),
            short_names: vec!["pods".into(), "gd".into()],
            singular: "gadget".into(),
            preferred: true,
            subresources: Vec::new(),
        });
        assert_eq!(resolved(&d, "pods"), "v1/pods");
        assert_eq!(resolved(&d, "gd"), "example.com/v1/gadgets");
        assert_eq!(resolved(&d, "gadget"), "example.com/v1/gadgets");
    }

    #[test]
    fn unknown_names_get_suggestions() {
        let d = catalog(kube_sim::Catalog::Vanilla);
        let err = d.resolve("podz").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the server doesn't have a resource type \"podz\" (did you mean \"pods\"?)"
        );
        let err = d.resolve("deploymnets").unwrap_err().to_string();
        assert!(err.contains("\"deployments.apps\""), "{err}");
        let err = d.resolve("configmap.appz").unwrap_err().to_string();
        assert!(err.contains("doesn't have a resource type"), "{err}");
        let err = d.resolve("zzzzzzzz").unwrap_err();
        assert!(
            matches!(&err, ResolveError::Unknown { suggestions, .. } if suggestions.is_empty()),
            "{err}"
        );
        for bad in ["", "pods/web", "a b", ".pods"] {
            assert!(
                matches!(d.resolve(bad), Err(ResolveError::Invalid { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn resources_that_cannot_be_watched_are_refused() {
        let d = catalog(kube_sim::Catalog::Vanilla);
        let err = d.resolve("tokenreviews").unwrap_err();
        assert!(matches!(err, ResolveError::NotWatchable { .. }), "{err}");
        assert!(err.to_string().contains("create"), "{err}");
        let err = d.resolve("componentstatuses").unwrap_err();
        assert!(err.to_string().contains("get, list on it"), "{err}");
    }

    #[test]
    fn edit_distance_counts_transpositions_once() {
        assert_eq!(edit_distance("pods", "pods"), 0);
        assert_eq!(edit_distance("podz", "pods"), 1);
        assert_eq!(edit_distance("dpeloy", "deploy"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
