//! Desired watches: a watch config or the workload tiers, with discovery and the live namespaces,
//! become the smallest set of server-side watches (selectors pushed down) plus the client-side
//! [`Matcher`]s that remain. Pure; no I/O.
//!
//! Push-down rules (design.md §3): an exact object name becomes `fieldSelector=metadata.name=…`;
//! `label_selector` becomes `labelSelector`; exact namespaces become namespace-scoped watches;
//! namespace patterns are resolved against the live namespace list, one watch per matching
//! namespace, until more than `cluster_wide_threshold` match: then one cluster-wide watch with
//! client-side namespace filtering is cheaper (and stays so for the rest of the run, so the
//! choice does not flap). Entries whose server-side part is identical share one watch; an
//! object passes it when any of their client-side filters accepts it.
//!
//! In workload mode each GVR is decided by the [`Tiers`]; workload GVRs are watched in every
//! namespace of the [`Membership`].
//!
//! Besides the watches that emit, faro runs *control* streams for itself: CustomResourceDefinitions
//! (re-discovery) and, when namespace patterns or workloads need them, `v1/namespaces`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use crate::config::{self, NamespaceFilter, WatchConfig};
use crate::discovery::Discovery;
use crate::gvr::Gvr;
use crate::matcher::{EntryFilter, Matcher};
use crate::selector;
use crate::tiers::{Decision, Tiers};
use crate::workload::Membership;

/// The registry's bookkeeping streams (not emitted unless also asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ControlKind {
    /// `v1/namespaces`: drives namespace patterns and workloads.
    Namespaces,
    /// CustomResourceDefinitions: drive re-discovery.
    Crds,
}

/// What a stream is for, as part of its identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Role {
    /// Emits the objects of these config entries (by index; none in workload mode). A different
    /// set of entries is a different stream, since its client-side filter differs.
    Emit(Vec<usize>),
    /// One of faro's own streams.
    Control(ControlKind),
}

/// What identifies a server-side watch: the collection and the selectors sent with it, plus
/// what it is for.
///
/// The field order is the sort order. The namespace comes first: `faro workload` keeps thousands
/// of keys that share a few GVRs and differ by namespace, and the registry compares them all on
/// every change of a namespace; deciding on the first field keeps that cheap.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct StreamKey {
    /// Namespace of a namespace-scoped watch; None for cluster-wide.
    pub namespace: Option<String>,
    /// The resource.
    pub gvr: Gvr,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// What it is for.
    pub role: Role,
}

impl StreamKey {
    fn control(kind: ControlKind, gvr: Gvr) -> StreamKey {
        StreamKey {
            gvr,
            namespace: None,
            label_selector: None,
            field_selector: None,
            role: Role::Control(kind),
        }
    }

    /// Whether this is the namespace control stream.
    pub fn is_namespace_control(&self) -> bool {
        self.role == Role::Control(ControlKind::Namespaces)
    }
}

impl std::fmt::Display for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.gvr)?;
        if let Some(ns) = &self.namespace {
            write!(f, " in {ns}")?;
        }
        if let Some(ls) = &self.label_selector {
            write!(f, " labels {ls:?}")?;
        }
        if let Some(fs) = &self.field_selector {
            write!(f, " fields {fs:?}")?;
        }
        Ok(())
    }
}

/// A stream's identity across runs (a checkpoint's key): `gvr|namespace|labels|fields|filter`,
/// what it watches on the server and the client-side filter it applies, never this run's stream
/// ids nor the order of the config's entries.
pub(crate) fn identity(key: &StreamKey, filter: &str) -> String {
    format!(
        "{}|{}|{}|{}|{filter}",
        key.gvr,
        key.namespace.as_deref().unwrap_or(""),
        key.label_selector.as_deref().unwrap_or(""),
        key.field_selector.as_deref().unwrap_or("")
    )
}

/// The resource of an [`identity`].
pub(crate) fn identity_gvr(identity: &str) -> Option<Gvr> {
    identity.split('|').next()?.parse().ok()
}

/// The namespace of an [`identity`] (None: cluster-wide).
pub(crate) fn identity_namespace(identity: &str) -> Option<&str> {
    identity.split('|').nth(1).filter(|ns| !ns.is_empty())
}

/// One stream the plan wants running.
#[derive(Debug, Clone)]
pub(crate) struct Desired {
    /// Kind of the objects.
    pub kind: String,
    /// Client-side filter; None passes everything.
    pub matcher: Option<Arc<Matcher>>,
    /// The config entries it serves (what [`Event::matched_entries`] reports when there is no
    /// matcher to ask).
    ///
    /// [`Event::matched_entries`]: crate::Event::matched_entries
    pub entries: Arc<[usize]>,
    /// Emit its objects.
    pub emit: bool,
    /// Feed the registry.
    pub control: Option<ControlKind>,
    /// What the client-side filter accepts, as text (part of the stream's [`identity`]).
    pub filter: String,
}

/// What faro watches.
#[derive(Debug)]
pub(crate) enum Mode {
    /// A watch config's entries.
    Watch(WatchConfig),
    /// Three tiers over workload namespaces.
    Workload(Tiers),
}

/// Turns the mode, discovery and namespaces into the desired set of streams.
#[derive(Debug)]
pub(crate) struct Planner {
    mode: Mode,
    /// Entries switched to one cluster-wide watch (sticky for the run).
    cluster_wide: BTreeSet<usize>,
    /// Messages already logged (once per GVR and reason).
    told: Told,
    /// Until the first plan succeeds a scope problem is an error (the config is wrong); later it
    /// is a warning (a CRD created with another scope than the config expects).
    strict: bool,
}

/// Warnings already logged, so that each is logged once (not on every plan).
#[derive(Debug, Default)]
struct Told(HashSet<String>);

impl Told {
    fn once(&mut self, key: String, message: impl FnOnce() -> String) {
        if self.0.insert(key) {
            tracing::warn!("{}", message());
        }
    }

    /// Looks a GVR up, warning once when it cannot be watched (yet).
    fn watchable_kind(&mut self, discovery: &Discovery, gvr: &Gvr) -> Option<(String, bool)> {
        match discovery.find(gvr) {
            None => {
                if discovery.group_version_failed(gvr) {
                    self.once(format!("failed {gvr}"), || {
                        format!("{gvr}: its API group is unavailable; it will be watched once discovery succeeds")
                    });
                } else {
                    self.once(format!("unknown {gvr}"), || {
                        format!("{gvr} is not served by this cluster (yet); it will be watched as soon as it is (e.g. when its CRD is created)")
                    });
                }
                None
            }
            Some(r) if !r.watchable() => {
                let verbs = r.verbs.join(",");
                self.once(format!("unwatchable {gvr}"), || {
                    format!("{gvr} cannot be watched (verbs: {verbs}); skipping it")
                });
                None
            }
            Some(r) => Some((r.kind.clone(), r.namespaced)),
        }
    }

    /// Notes that a GVR is watched: says so once if it was unknown or unavailable before.
    /// Called only once the GVR passed every check (a CRD that arrives with another scope than
    /// the config expects is "not watched", never "now watched").
    fn watching(&mut self, gvr: &Gvr) {
        if !self.0.is_empty()
            && (self.0.remove(&format!("unknown {gvr}")) || self.0.remove(&format!("failed {gvr}")))
        {
            tracing::info!("{gvr} is now served: watching it");
        }
    }
}

/// What the planner knows of a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NamespaceInfo {
    /// Its labels.
    pub labels: Vec<(String, String)>,
    /// It is being deleted.
    pub terminating: bool,
}

impl AsRef<[(String, String)]> for NamespaceInfo {
    fn as_ref(&self) -> &[(String, String)] {
        &self.labels
    }
}

/// The desired streams.
pub(crate) type Plan = BTreeMap<StreamKey, Desired>;

/// The server-side part of a watch: GVR, namespace, label selector, field selector.
type ServerSide = (Gvr, Option<String>, Option<String>, Option<String>);

impl Planner {
    /// A planner for a mode.
    pub fn new(mode: Mode) -> Planner {
        Planner {
            mode,
            cluster_wide: BTreeSet::new(),
            told: Told::default(),
            strict: true,
        }
    }

    /// Whether the plan depends on the live namespace list.
    pub fn needs_namespaces(&self) -> bool {
        match &self.mode {
            Mode::Watch(config) => config.entries.iter().any(|e| e.namespaces.has_patterns()),
            Mode::Workload(_) => true,
        }
    }

    /// Computes the desired streams. `namespaces` is the live namespace list when it is
    /// known (None before the namespace stream has listed, or when it is not needed);
    /// `membership` the workload assignment (workload mode).
    ///
    /// The first call fails on an entry whose scope contradicts the cluster; later calls warn
    /// (once) and leave such an entry out.
    pub fn plan(
        &mut self,
        discovery: &Discovery,
        namespaces: Option<&BTreeMap<String, NamespaceInfo>>,
        membership: Option<&Membership>,
    ) -> Result<Plan, config::Error> {
        let mut out = BTreeMap::new();
        self.control_streams(discovery, &mut out);
        match &self.mode {
            Mode::Watch(_) => self.plan_watch(discovery, namespaces, &mut out)?,
            Mode::Workload(_) => self.plan_workload(discovery, membership, &mut out),
        }
        self.strict = false;
        Ok(out)
    }

    fn control_streams(&mut self, discovery: &Discovery, out: &mut Plan) {
        let crds = Gvr::new("apiextensions.k8s.io", "v1", "customresourcedefinitions");
        if let Some(r) = discovery.find(&crds).filter(|r| r.watchable()) {
            out.insert(
                StreamKey::control(ControlKind::Crds, crds),
                Desired {
                    kind: r.kind.clone(),
                    matcher: None,
                    entries: Arc::from([]),
                    emit: false,
                    control: Some(ControlKind::Crds),
                    filter: "control".into(),
                },
            );
        }
        if self.needs_namespaces() {
            let gvr = Gvr::namespaces();
            // Workload mode emits namespace events from this same stream, so that each
            // namespace event carries the workload computed from its own labels.
            let (emit, matcher) = match &self.mode {
                Mode::Workload(tiers) => match tiers.decide(&gvr) {
                    Decision::ClusterWide(_) => (true, None),
                    Decision::WorkloadNamespaces(_) => {
                        (true, Some(Arc::new(Matcher::WorkloadNamespaces)))
                    }
                    _ => (false, None),
                },
                Mode::Watch(_) => (false, None),
            };
            out.insert(
                StreamKey::control(ControlKind::Namespaces, gvr),
                Desired {
                    kind: "Namespace".into(),
                    filter: match &matcher {
                        Some(m) => format!("control {}", m.describe()),
                        None if emit => "control all".into(),
                        None => "control".into(),
                    },
                    matcher,
                    entries: Arc::from([]),
                    emit,
                    control: Some(ControlKind::Namespaces),
                },
            );
        }
    }

    fn plan_watch(
        &mut self,
        discovery: &Discovery,
        namespaces: Option<&BTreeMap<String, NamespaceInfo>>,
        out: &mut Plan,
    ) -> Result<(), config::Error> {
        let Planner {
            mode,
            cluster_wide,
            told,
            strict,
        } = self;
        let Mode::Watch(config) = mode else {
            return Ok(());
        };
        let threshold = config.cluster_wide_threshold;
        // (server-side key) → (kind, [(entry index, client filter)])
        let mut groups: BTreeMap<ServerSide, (String, Vec<(usize, EntryFilter)>)> = BTreeMap::new();
        for (index, entry) in config.entries.iter().enumerate() {
            let Some((kind, namespaced)) = told.watchable_kind(discovery, &entry.gvr) else {
                continue;
            };
            if let Some(problem) = entry.scope_problem(namespaced) {
                if *strict {
                    return Err(problem);
                }
                // A CRD created after start-up with another scope than the config expects:
                // watching it anyway would drop the namespace filter and show every object.
                told.once(format!("scope of entry {index}"), || {
                    format!("{problem}; not watching it")
                });
                continue;
            }
            told.watching(&entry.gvr);
            let label_selector = entry.label_selector.clone();
            let name = entry
                .exact_name()
                .map(|n| format!("metadata.name={}", selector::escape_field_value(n)));
            let field_selector = match (name, &entry.field_selector) {
                (Some(name), Some(fields)) => Some(format!("{name},{fields}")),
                (name, fields) => name.or_else(|| fields.clone()),
            };
            // The exact name the server filters on needs no second look here.
            let mut names = entry.names.clone();
            if let Some(pushed) = names.iter().position(|n| n.exact().is_some()) {
                names.remove(pushed);
            }
            let client = |namespaces: Option<NamespaceFilter>| EntryFilter {
                namespaces,
                names: names.clone(),
                label_patterns: entry.label_patterns.clone(),
            };
            let mut add = |ns: Option<String>, filter: EntryFilter| {
                groups
                    .entry((
                        entry.gvr.clone(),
                        ns,
                        label_selector.clone(),
                        field_selector.clone(),
                    ))
                    .or_insert_with(|| (kind.clone(), Vec::new()))
                    .1
                    .push((index, filter));
            };
            let namespace_set = match (&entry.namespaces, namespaced) {
                (_, false) | (NamespaceFilter::All, true) => {
                    add(None, client(None));
                    continue;
                }
                (NamespaceFilter::Only { exact, patterns }, true) => {
                    let mut set: BTreeSet<String> = exact.clone();
                    if !patterns.is_empty() {
                        match namespaces {
                            Some(live) => set.extend(
                                live.keys()
                                    .filter(|ns| entry.namespaces.matches(ns))
                                    .cloned(),
                            ),
                            // The namespace list is not known yet (or not readable): one
                            // cluster-wide watch filtered here still shows everything asked for.
                            None => {
                                add(None, client(Some(entry.namespaces.clone())));
                                continue;
                            }
                        }
                    }
                    set
                }
            };
            let sticky = cluster_wide.contains(&index);
            if entry.namespaces.has_patterns() && (sticky || namespace_set.len() > threshold) {
                if cluster_wide.insert(index) {
                    let location = entry
                        .location
                        .as_ref()
                        .map_or_else(|| format!("entry {index}"), ToString::to_string);
                    tracing::info!(
                        "{location}: {} namespaces match, more than the threshold of {threshold}: using one cluster-wide watch of {} filtered by namespace here",
                        namespace_set.len(),
                        entry.gvr
                    );
                }
                add(None, client(Some(entry.namespaces.clone())));
                continue;
            }
            for ns in namespace_set {
                add(Some(ns), client(None));
            }
        }
        for ((gvr, namespace, label_selector, field_selector), (kind, filters)) in groups {
            let entries: Vec<usize> = filters.iter().map(|(i, _)| *i).collect();
            let matcher = if filters.iter().all(|(_, f)| f.is_trivial()) {
                None
            } else {
                Some(Arc::new(Matcher::Entries(filters)))
            };
            let filter = matcher
                .as_ref()
                .map_or_else(|| "all".to_owned(), |m| m.describe());
            out.insert(
                StreamKey {
                    gvr,
                    namespace,
                    label_selector,
                    field_selector,
                    role: Role::Emit(entries.clone()),
                },
                Desired {
                    kind,
                    matcher,
                    entries: entries.into(),
                    emit: true,
                    control: None,
                    filter,
                },
            );
        }
        Ok(())
    }

    fn plan_workload(
        &mut self,
        discovery: &Discovery,
        membership: Option<&Membership>,
        out: &mut Plan,
    ) {
        let Planner { mode, told, .. } = self;
        let Mode::Workload(tiers) = mode else {
            return;
        };
        let members: BTreeSet<&String> = membership
            .map(|m| m.namespaces().map(|(ns, _)| ns).collect())
            .unwrap_or_default();
        for gvr in tiers.named() {
            let decision = tiers.decide(&gvr);
            if gvr.is_namespaces() {
                continue; // served by the control stream
            }
            if matches!(decision, Decision::Never(_) | Decision::NoOpinion) {
                continue;
            }
            let Some((kind, namespaced)) = told.watchable_kind(discovery, &gvr) else {
                continue;
            };
            let key = |namespace: Option<String>| StreamKey {
                gvr: gvr.clone(),
                namespace,
                label_selector: None,
                field_selector: None,
                role: Role::Emit(Vec::new()),
            };
            let desired = || Desired {
                kind: kind.clone(),
                matcher: None,
                entries: Arc::from([]),
                emit: true,
                control: None,
                filter: "workload".into(),
            };
            match decision {
                Decision::WorkloadNamespaces(_) if namespaced => {
                    told.watching(&gvr);
                    for ns in &members {
                        out.insert(key(Some((*ns).clone())), desired());
                    }
                }
                Decision::WorkloadNamespaces(rule) => {
                    told.once(format!("cluster-scoped {gvr}"), || {
                        format!("{} is cluster-scoped, so it cannot be watched per workload namespace; add it to the allowed tier (-allowedgvrs) to watch it", rule.entry)
                    });
                }
                _ => {
                    told.watching(&gvr);
                    out.insert(key(None), desired());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::discovery::{Mode as DiscoveryMode, Resource};
    use crate::workload::Detector;

    fn g(s: &str) -> Gvr {
        s.parse().unwrap()
    }

    fn resource(gvr: &str, namespaced: bool, verbs: &[&str]) -> Resource {
        Resource {
            gvr: g(gvr),
            kind: "Kind".into(),
            namespaced,
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            short_names: vec![],
            singular: String::new(),
            preferred: true,
            subresources: vec![],
        }
    }

    fn discovery() -> Discovery {
        let w = &["get", "list", "watch"];
        Discovery {
            resources: vec![
                resource("v1/pods", true, w),
                resource("v1/configmaps", true, w),
                resource("v1/namespaces", false, w),
                resource("v1/nodes", false, w),
                resource("v1/componentstatuses", false, &["get", "list"]),
                resource(
                    "apiextensions.k8s.io/v1/customresourcedefinitions",
                    false,
                    w,
                ),
            ],
            warnings: vec![],
            mode: DiscoveryMode::Aggregated,
        }
    }

    fn namespaces(names: &[&str]) -> BTreeMap<String, NamespaceInfo> {
        names
            .iter()
            .map(|n| (n.to_string(), NamespaceInfo::default()))
            .collect()
    }

    fn watch_planner(yaml: &str) -> Planner {
        Planner::new(Mode::Watch(config::parse(yaml, "t.yaml").unwrap().watch))
    }

    fn watch_plan(yaml: &str, live: &[&str]) -> Vec<String> {
        let live = namespaces(live);
        watch_planner(yaml)
            .plan(&discovery(), Some(&live), None)
            .unwrap()
            .into_iter()
            .filter(|(k, _)| matches!(k.role, Role::Emit(_)))
            .map(|(k, d)| format!("{k}{}", if d.matcher.is_some() { " +client" } else { "" }))
            .collect()
    }

    #[test]
    fn push_down_table() {
        // (config, live namespaces, expected streams)
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("resources:\n  - gvr: v1/pods\n", &[], &["v1/pods"]),
            (
                "resources:\n  - gvr: v1/pods\n    name_selector: web\n",
                &[],
                &["v1/pods fields \"metadata.name=web\""],
            ),
            (
                "resources:\n  - gvr: v1/pods\n    name_pattern: web\n",
                &[],
                &["v1/pods fields \"metadata.name=web\""],
            ),
            (
                "resources:\n  - gvr: v1/pods\n    name_pattern: web-.*\n",
                &[],
                &["v1/pods +client"],
            ),
            (
                "resources:\n  - gvr: v1/pods\n    label_selector: app=web\n",
                &[],
                &["v1/pods labels \"app=web\""],
            ),
            (
                "resources:\n  - gvr: v1/pods\n    field_selector: status.phase=Running\n",
                &[],
                &["v1/pods fields \"status.phase=Running\""],
            ),
            (
                "resources:\n  - gvr: v1/pods\n    name_selector: web\n    field_selector: spec.nodeName=n1\n",
                &[],
                &["v1/pods fields \"metadata.name=web,spec.nodeName=n1\""],
            ),
            (
                "resources:\n  - gvr: v1/pods\n    namespace_names: [a, b]\n",
                &[],
                &["v1/pods in a", "v1/pods in b"],
            ),
            (
                "resources:\n  - gvr: v1/pods\n    namespace_patterns: [\"prod-.*\"]\n",
                &["prod-1", "dev", "prod-2"],
                &["v1/pods in prod-1", "v1/pods in prod-2"],
            ),
            (
                "cluster_wide_threshold: 2\nresources:\n  - gvr: v1/pods\n    namespace_patterns: [\"prod-.*\"]\n",
                &["prod-1", "prod-2", "prod-3"],
                &["v1/pods +client"],
            ),
            (
                // Two entries with the same server-side part share one watch.
                "resources:\n  - gvr: v1/pods\n    name_pattern: a-.*\n  - gvr: v1/pods\n    name_pattern: b-.*\n",
                &[],
                &["v1/pods +client"],
            ),
            (
                // One entry without client filters: the shared watch still asks the other
                // entry's filter, to report which entries matched.
                "resources:\n  - gvr: v1/pods\n  - gvr: v1/pods\n    name_pattern: b-.*\n",
                &[],
                &["v1/pods +client"],
            ),
            (
                "resources:\n  - gvr: v1/nodes\n    name_pattern: n-.*\n",
                &[],
                &["v1/nodes +client"],
            ),
            ("resources:\n  - gvr: example.com/v1/widgets\n", &[], &[]),
            ("resources:\n  - gvr: v1/componentstatuses\n", &[], &[]),
        ];
        for (yaml, live, want) in cases {
            assert_eq!(watch_plan(yaml, live), *want, "{yaml}");
        }
    }

    #[test]
    fn a_shared_watch_serves_every_entry_and_only_asks_the_ones_with_filters() {
        let mut planner = watch_planner(
            "resources:\n  - gvr: v1/pods\n  - gvr: v1/configmaps\n  - gvr: v1/pods\n    name_pattern: b-.*\n",
        );
        let plan = planner.plan(&discovery(), None, None).unwrap();
        let (key, pods) = plan.iter().find(|(k, _)| k.gvr == g("v1/pods")).unwrap();
        assert_eq!(key.role, Role::Emit(vec![0, 2]));
        assert_eq!(&*pods.entries, &[0, 2]);
        let mut matched = Vec::new();
        let view = |name| crate::matcher::ObjectView {
            namespace: Some("ns"),
            name,
            labels: &[],
        };
        let matcher = pods.matcher.as_ref().unwrap();
        assert!(matcher.matches(&view("a-1"), None, &mut matched));
        assert_eq!(matched, [0]);
        matched.clear();
        assert!(matcher.matches(&view("b-1"), None, &mut matched));
        assert_eq!(matched, [0, 2]);
    }

    #[test]
    fn pattern_entries_need_the_namespace_stream() {
        let mut planner =
            watch_planner("resources:\n  - gvr: v1/pods\n    namespace_patterns: [\"p-.*\"]\n");
        assert!(planner.needs_namespaces());
        let plan = planner.plan(&discovery(), None, None).unwrap();
        let control: Vec<_> = plan.values().filter_map(|d| d.control).collect();
        assert_eq!(control.len(), 2, "namespaces and CRDs");
        // Before the namespace list is known: one cluster-wide watch filtered client-side.
        assert!(
            plan.keys()
                .any(|k| k.gvr == g("v1/pods") && k.namespace.is_none())
        );
    }

    #[test]
    fn cluster_wide_switch_is_sticky() {
        let mut planner = watch_planner(
            "cluster_wide_threshold: 1\nresources:\n  - gvr: v1/pods\n    namespace_patterns: [\"p-.*\"]\n",
        );
        let two = namespaces(&["p-1", "p-2"]);
        let one = namespaces(&["p-1"]);
        let mut pods = |live: &BTreeMap<String, NamespaceInfo>| {
            planner
                .plan(&discovery(), Some(live), None)
                .unwrap()
                .keys()
                .filter(|k| k.gvr == g("v1/pods"))
                .map(|k| k.namespace.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(pods(&one), vec![Some("p-1".to_string())]);
        assert_eq!(pods(&two), vec![None]);
        assert_eq!(pods(&one), vec![None]);
    }

    #[test]
    fn a_scope_problem_fails_the_first_plan_and_is_left_out_later() {
        let yaml = "resources:\n  - gvr: v1/nodes\n    namespace_names: [a]\n  - gvr: v1/pods\n";
        let err = watch_planner(yaml)
            .plan(&discovery(), None, None)
            .unwrap_err();
        assert!(err.to_string().starts_with("t.yaml:3:"), "{err}");
        // Start-up passed (the resource was not served then); it appears later, cluster-scoped.
        let mut planner = watch_planner(yaml);
        let mut without_nodes = discovery();
        without_nodes.resources.retain(|r| r.gvr != g("v1/nodes"));
        planner.plan(&without_nodes, None, None).unwrap();
        let later = planner.plan(&discovery(), None, None).unwrap();
        assert!(later.keys().all(|k| k.gvr != g("v1/nodes")));
        assert!(later.keys().any(|k| k.gvr == g("v1/pods")));
    }

    #[test]
    fn workload_plan_watches_workload_gvrs_in_member_namespaces_only() {
        let detector = Detector::new("team").unwrap();
        let mut live: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        live.insert("w1".into(), vec![("team".into(), "a".into())]);
        live.insert("other".into(), vec![]);
        let membership = Membership::new(detector).recompute(&live);
        let tiers = Tiers::new(
            vec![g("v1/nodes")],
            vec![g("v1/pods"), g("v1/configmaps"), g("v1/namespaces")],
            vec![g("v1/configmaps")],
        )
        .unwrap();
        let mut planner = Planner::new(Mode::Workload(tiers));
        let plan = planner.plan(&discovery(), None, Some(&membership)).unwrap();
        let keys: Vec<String> = plan.keys().map(|k| k.to_string()).collect();
        assert!(keys.contains(&"v1/pods in w1".to_string()), "{keys:?}");
        assert!(keys.contains(&"v1/nodes".to_string()), "{keys:?}");
        assert!(
            !keys.iter().any(|k| k.contains("configmaps")),
            "denied: {keys:?}"
        );
        assert!(!keys.iter().any(|k| k.contains("in other")), "{keys:?}");
        let ns = plan
            .iter()
            .find(|(k, _)| k.gvr == g("v1/namespaces"))
            .map(|(_, d)| d)
            .unwrap();
        assert!(ns.emit && matches!(ns.matcher.as_deref(), Some(Matcher::WorkloadNamespaces)));
    }
}
