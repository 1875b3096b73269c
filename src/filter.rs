//! What to watch: config entries or workload tiers → the smallest set of server-side watches
//! (with selectors pushed down) plus the client-side filters that remain. Pure; no I/O.
//!
//! Push-down rules (design.md §3): an exact object name becomes `fieldSelector=metadata.name=…`;
//! `label_selector` becomes `labelSelector`; exact namespaces become namespace-scoped watches;
//! namespace patterns are resolved against the live namespace list, one watch per matching
//! namespace, until more than `cluster_wide_threshold` match: then one cluster-wide watch with
//! client-side namespace filtering is cheaper (and stays so for the rest of the run, so the
//! choice does not flap). Entries whose server-side part is identical share one watch; an
//! object passes it when any of their client-side filters accepts it.
//!
//! `faro workload` decides per GVR with three tiers, in this order (the first decisive tier
//! wins): **denied** (never watched, whatever else says), **allowed** (cluster-wide),
//! **workload** (namespace-scoped in each workload namespace). `v1/namespaces` is always
//! watched for detection; its events are emitted only if a tier asks for them (allowed: all
//! namespaces; workload: workload namespaces only).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, RwLock};

use crate::config::{Entry, NamespaceFilter};
use crate::discovery::Discovery;
use crate::gvr::Gvr;
use crate::selector::{LabelPattern, NamePattern};
use crate::stream::{ControlKind, StreamKey};
use crate::workload::Membership;

/// The client-side part of one config entry.
#[derive(Debug, Clone)]
pub struct EntryFilter {
    /// Namespace filter, when the watch is wider than the entry (cluster-wide fallback).
    pub namespaces: Option<NamespaceFilter>,
    /// Name filters (all must match).
    pub names: Vec<NamePattern>,
    /// Label patterns (all must match).
    pub label_patterns: Vec<LabelPattern>,
}

impl EntryFilter {
    fn matches(
        &self,
        namespace: Option<&str>,
        name: &str,
        labels: &[(Cow<str>, Cow<str>)],
    ) -> bool {
        if let Some(filter) = &self.namespaces
            && !namespace.is_some_and(|ns| filter.matches(ns))
        {
            return false;
        }
        self.names.iter().all(|n| n.matches(name))
            && self
                .label_patterns
                .iter()
                .all(|p| p.matches(labels.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))))
    }

    fn is_trivial(&self) -> bool {
        self.namespaces.is_none() && self.names.is_empty() && self.label_patterns.is_empty()
    }
}

/// Client-side filtering of a stream's objects.
#[derive(Debug)]
pub enum ObjectFilter {
    /// Passes objects any of the entries accepts.
    Any(Vec<EntryFilter>),
    /// Passes namespaces (the objects of `v1/namespaces`) that belong to a workload.
    WorkloadNamespaces(Arc<RwLock<Membership>>),
}

impl ObjectFilter {
    /// Whether `matches` looks at labels.
    pub fn needs_labels(&self) -> bool {
        match self {
            ObjectFilter::Any(entries) => entries.iter().any(|e| !e.label_patterns.is_empty()),
            ObjectFilter::WorkloadNamespaces(_) => true,
        }
    }

    /// Whether an object passes.
    pub fn matches(
        &self,
        namespace: Option<&str>,
        name: &str,
        labels: &[(Cow<str>, Cow<str>)],
    ) -> bool {
        match self {
            ObjectFilter::Any(entries) => {
                entries.iter().any(|e| e.matches(namespace, name, labels))
            }
            ObjectFilter::WorkloadNamespaces(membership) => membership
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .classify(name, labels.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
                .is_some(),
        }
    }
}

/// A tier of `faro workload`'s GVR filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// `-allowedgvrs`: cluster-wide.
    Allowed,
    /// `-workloadgvrs`: namespace-scoped in workload namespaces.
    Workload,
    /// `-deniedgvrs`: never.
    Denied,
}

/// Which tier and entry decided, for logs and explanations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The deciding tier.
    pub tier: Tier,
    /// The entry of that tier that matched.
    pub entry: Gvr,
}

/// The three-tier decision for one GVR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Watch cluster-wide.
    ClusterWide(Rule),
    /// Watch in each workload namespace.
    WorkloadNamespaces(Rule),
    /// Never watch.
    Never(Rule),
    /// No tier names it: not watched.
    NoOpinion,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::ClusterWide(r) => {
                write!(f, "watched cluster-wide (-allowedgvrs {})", r.entry)
            }
            Decision::WorkloadNamespaces(r) => {
                write!(
                    f,
                    "watched in workload namespaces (-workloadgvrs {})",
                    r.entry
                )
            }
            Decision::Never(r) => write!(f, "never watched (-deniedgvrs {})", r.entry),
            Decision::NoOpinion => f.write_str("not named by any tier"),
        }
    }
}

/// `faro workload`'s three tiers.
#[derive(Debug, Clone, Default)]
pub struct Tiers {
    allowed: Vec<Gvr>,
    workload: Vec<Gvr>,
    denied: Vec<Gvr>,
}

impl Tiers {
    /// Builds the tiers; a GVR both allowed and denied is a usage error.
    pub fn new(allowed: Vec<Gvr>, workload: Vec<Gvr>, denied: Vec<Gvr>) -> Result<Tiers, String> {
        if let Some(both) = allowed.iter().find(|g| denied.contains(g)) {
            return Err(format!(
                "{both} is in both -allowedgvrs and -deniedgvrs; remove it from one of them"
            ));
        }
        Ok(Tiers {
            allowed,
            workload,
            denied,
        })
    }

    /// Decides for one GVR: denied, then allowed, then workload.
    pub fn decide(&self, gvr: &Gvr) -> Decision {
        let rule = |tier, entry: &Gvr| Rule {
            tier,
            entry: entry.clone(),
        };
        if let Some(e) = self.denied.iter().find(|e| *e == gvr) {
            return Decision::Never(rule(Tier::Denied, e));
        }
        if let Some(e) = self.allowed.iter().find(|e| *e == gvr) {
            return Decision::ClusterWide(rule(Tier::Allowed, e));
        }
        if let Some(e) = self.workload.iter().find(|e| *e == gvr) {
            return Decision::WorkloadNamespaces(rule(Tier::Workload, e));
        }
        Decision::NoOpinion
    }

    /// Every GVR named by the allowed or workload tiers, once.
    pub fn named(&self) -> Vec<Gvr> {
        let mut out: Vec<Gvr> = Vec::new();
        for g in self.allowed.iter().chain(&self.workload) {
            if !out.contains(g) {
                out.push(g.clone());
            }
        }
        out
    }
}

/// What the planner knows of a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
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

/// One stream the plan wants running.
#[derive(Debug, Clone)]
pub struct Desired {
    /// Kind of the objects.
    pub kind: String,
    /// Client-side filter.
    pub filter: Option<Arc<ObjectFilter>>,
    /// Emit its objects.
    pub emit: bool,
    /// Feed the registry.
    pub control: Option<ControlKind>,
}

/// The filter id of control streams (no config entry has it).
pub const CONTROL_FILTER: u32 = u32::MAX;

/// What faro watches.
#[derive(Debug)]
pub enum Mode {
    /// `faro watch`: config entries.
    Watch {
        /// The entries.
        entries: Vec<Entry>,
        /// Namespaces past which a pattern entry goes cluster-wide.
        threshold: usize,
    },
    /// `faro workload`: three tiers over workload namespaces.
    Workload {
        /// The tiers.
        tiers: Tiers,
        /// Current membership (shared with the streams).
        membership: Arc<RwLock<Membership>>,
    },
}

/// Turns the mode, discovery and namespaces into the desired set of streams.
#[derive(Debug)]
pub struct Planner {
    mode: Mode,
    /// Entries switched to one cluster-wide watch (sticky for the run).
    cluster_wide: BTreeSet<usize>,
    /// Messages already logged (once per GVR and reason).
    told: Told,
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
            Some(r) => {
                if !self.0.is_empty()
                    && (self.0.remove(&format!("unknown {gvr}"))
                        || self.0.remove(&format!("failed {gvr}")))
                {
                    tracing::info!("{gvr} is now served: watching it");
                }
                Some((r.kind.clone(), r.namespaced))
            }
        }
    }
}

impl Planner {
    /// A planner for a mode.
    pub fn new(mode: Mode) -> Planner {
        Planner {
            mode,
            cluster_wide: BTreeSet::new(),
            told: Told::default(),
        }
    }

    /// Whether the plan depends on the live namespace list.
    pub fn needs_namespaces(&self) -> bool {
        match &self.mode {
            Mode::Watch { entries, .. } => entries.iter().any(|e| e.namespaces.has_patterns()),
            Mode::Workload { .. } => true,
        }
    }

    /// Computes the desired streams. `namespaces` is the live namespace list when it is
    /// known (None before the namespace stream has listed, or when it is not needed).
    pub fn plan(
        &mut self,
        discovery: &Discovery,
        namespaces: Option<&BTreeMap<String, NamespaceInfo>>,
    ) -> BTreeMap<StreamKey, Desired> {
        let mut out = BTreeMap::new();
        self.control_streams(discovery, &mut out);
        match &self.mode {
            Mode::Watch { .. } => self.plan_watch(discovery, namespaces, &mut out),
            Mode::Workload { .. } => self.plan_workload(discovery, &mut out),
        }
        out
    }

    fn control_streams(&mut self, discovery: &Discovery, out: &mut BTreeMap<StreamKey, Desired>) {
        let crds = Gvr::new("apiextensions.k8s.io", "v1", "customresourcedefinitions");
        if let Some(r) = discovery.find(&crds).filter(|r| r.watchable()) {
            out.insert(
                control_key(crds),
                Desired {
                    kind: r.kind.clone(),
                    filter: None,
                    emit: false,
                    control: Some(ControlKind::Crds),
                },
            );
        }
        if self.needs_namespaces() {
            let gvr = Gvr::namespaces();
            // Workload mode emits namespace events from this same stream, so that each
            // namespace event carries the workload computed from its own labels.
            let (emit, filter) = match &self.mode {
                Mode::Workload { tiers, membership } => match tiers.decide(&gvr) {
                    Decision::ClusterWide(_) => (true, None),
                    Decision::WorkloadNamespaces(_) => (
                        true,
                        Some(Arc::new(ObjectFilter::WorkloadNamespaces(
                            membership.clone(),
                        ))),
                    ),
                    _ => (false, None),
                },
                Mode::Watch { .. } => (false, None),
            };
            out.insert(
                control_key(gvr),
                Desired {
                    kind: "Namespace".into(),
                    filter,
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
        out: &mut BTreeMap<StreamKey, Desired>,
    ) {
        let Planner {
            mode,
            cluster_wide,
            told,
        } = self;
        let Mode::Watch { entries, threshold } = mode else {
            return;
        };
        let threshold = *threshold;
        // (server-side key without filter id) → [(entry index, client filter)]
        let mut groups: BTreeMap<ServerSide, (String, Vec<(u32, EntryFilter)>)> = BTreeMap::new();
        for (index, entry) in entries.iter().enumerate() {
            let Some((kind, namespaced)) = told.watchable_kind(discovery, &entry.gvr) else {
                continue;
            };
            if let Some(problem) = crate::config::scope_problem(entry, namespaced) {
                // A CRD created after start-up with another scope than the config expects:
                // watching it anyway would drop the namespace filter and show every object.
                told.once(format!("scope of entry {index}"), || {
                    format!("{problem}; not watching it")
                });
                continue;
            }
            let label_selector = entry.label_selector.clone();
            let field_selector = entry.exact_name().map(|n| format!("metadata.name={n}"));
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
                    .push((index as u32, filter));
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
                    tracing::info!(
                        "{}: {} namespaces match, more than the threshold of {threshold}: using one cluster-wide watch of {} filtered by namespace here",
                        entry.location,
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
            let filter_id: Vec<u32> = filters.iter().map(|(i, _)| *i).collect();
            let filter = if filters.iter().any(|(_, f)| f.is_trivial()) {
                None
            } else {
                Some(Arc::new(ObjectFilter::Any(
                    filters.into_iter().map(|(_, f)| f).collect(),
                )))
            };
            out.insert(
                StreamKey {
                    gvr,
                    namespace,
                    label_selector,
                    field_selector,
                    filter_id,
                },
                Desired {
                    kind,
                    filter,
                    emit: true,
                    control: None,
                },
            );
        }
    }

    fn plan_workload(&mut self, discovery: &Discovery, out: &mut BTreeMap<StreamKey, Desired>) {
        let Planner { mode, told, .. } = self;
        let Mode::Workload { tiers, membership } = mode else {
            return;
        };
        let members: BTreeSet<String> = membership
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .namespaces()
            .map(|(ns, _)| ns.clone())
            .collect();
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
                filter_id: Vec::new(),
            };
            let desired = || Desired {
                kind: kind.clone(),
                filter: None,
                emit: true,
                control: None,
            };
            match decision {
                Decision::WorkloadNamespaces(_) if namespaced => {
                    for ns in &members {
                        out.insert(key(Some(ns.clone())), desired());
                    }
                }
                Decision::WorkloadNamespaces(rule) => {
                    told.once(format!("cluster-scoped {gvr}"), || {
                        format!("{} is cluster-scoped, so it cannot be watched per workload namespace; add it to -allowedgvrs to watch it", rule.entry)
                    });
                }
                _ => {
                    out.insert(key(None), desired());
                }
            }
        }
    }
}

/// The server-side part of a watch: GVR, namespace, label selector, field selector.
type ServerSide = (Gvr, Option<String>, Option<String>, Option<String>);

fn control_key(gvr: Gvr) -> StreamKey {
    StreamKey {
        gvr,
        namespace: None,
        label_selector: None,
        field_selector: None,
        filter_id: vec![CONTROL_FILTER],
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

    fn watch_plan(yaml: &str, live: &[&str]) -> Vec<String> {
        let cfg = config::parse(yaml, "t.yaml").unwrap();
        let mut planner = Planner::new(Mode::Watch {
            entries: cfg.entries,
            threshold: cfg.cluster_wide_threshold,
        });
        let live = namespaces(live);
        planner
            .plan(&discovery(), Some(&live))
            .into_iter()
            .filter(|(k, _)| k.filter_id != vec![CONTROL_FILTER])
            .map(|(k, d)| format!("{k}{}", if d.filter.is_some() { " +client" } else { "" }))
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
                // One entry without client filters: the shared watch passes everything.
                "resources:\n  - gvr: v1/pods\n  - gvr: v1/pods\n    name_pattern: b-.*\n",
                &[],
                &["v1/pods"],
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
    fn pattern_entries_need_the_namespace_stream() {
        let cfg = config::parse(
            "resources:\n  - gvr: v1/pods\n    namespace_patterns: [\"p-.*\"]\n",
            "t",
        )
        .unwrap();
        let mut planner = Planner::new(Mode::Watch {
            entries: cfg.entries,
            threshold: 50,
        });
        assert!(planner.needs_namespaces());
        let plan = planner.plan(&discovery(), None);
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
        let cfg = config::parse(
            "cluster_wide_threshold: 1\nresources:\n  - gvr: v1/pods\n    namespace_patterns: [\"p-.*\"]\n",
            "t",
        )
        .unwrap();
        let mut planner = Planner::new(Mode::Watch {
            entries: cfg.entries,
            threshold: 1,
        });
        let two = namespaces(&["p-1", "p-2"]);
        let one = namespaces(&["p-1"]);
        let pods = |plan: &BTreeMap<StreamKey, Desired>| {
            plan.keys()
                .filter(|k| k.gvr == g("v1/pods"))
                .map(|k| k.namespace.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            pods(&planner.plan(&discovery(), Some(&one))),
            vec![Some("p-1".to_string())]
        );
        assert_eq!(pods(&planner.plan(&discovery(), Some(&two))), vec![None]);
        assert_eq!(pods(&planner.plan(&discovery(), Some(&one))), vec![None]);
    }

    #[test]
    fn client_filters_combine_namespaces_names_and_labels() {
        let filter = ObjectFilter::Any(vec![EntryFilter {
            namespaces: Some(NamespaceFilter::Only {
                exact: ["a".to_string()].into(),
                patterns: vec![],
            }),
            names: vec![NamePattern::new("web-.*").unwrap()],
            label_patterns: vec![LabelPattern::parse("app=^nginx-.*$").unwrap()],
        }]);
        let labels = vec![(Cow::from("app"), Cow::from("nginx-1"))];
        assert!(filter.matches(Some("a"), "web-1", &labels));
        assert!(!filter.matches(Some("b"), "web-1", &labels));
        assert!(!filter.matches(Some("a"), "db-1", &labels));
        assert!(!filter.matches(Some("a"), "web-1", &[]));
        assert!(filter.needs_labels());
    }

    #[test]
    fn denied_beats_allowed_and_workload() {
        let tiers = Tiers::new(
            vec![g("v1/namespaces"), g("v1/configmaps")],
            vec![g("v1/pods"), g("coordination.k8s.io/v1/leases")],
            vec![g("coordination.k8s.io/v1/leases")],
        )
        .unwrap();
        assert!(matches!(
            tiers.decide(&g("v1/configmaps")),
            Decision::ClusterWide(_)
        ));
        assert!(matches!(
            tiers.decide(&g("v1/pods")),
            Decision::WorkloadNamespaces(_)
        ));
        let Decision::Never(rule) = tiers.decide(&g("coordination.k8s.io/v1/leases")) else {
            panic!("denied must win");
        };
        assert_eq!(rule.tier, Tier::Denied);
        assert_eq!(tiers.decide(&g("v1/secrets")), Decision::NoOpinion);
        assert!(
            tiers
                .decide(&g("v1/pods"))
                .to_string()
                .contains("-workloadgvrs v1/pods")
        );
    }

    #[test]
    fn allowed_and_denied_at_once_is_an_error() {
        let err = Tiers::new(vec![g("v1/pods")], vec![], vec![g("v1/pods")]).unwrap_err();
        assert!(err.contains("both"), "{err}");
    }

    #[test]
    fn allowed_wins_over_workload() {
        let tiers = Tiers::new(vec![g("v1/pods")], vec![g("v1/pods")], vec![]).unwrap();
        assert!(matches!(
            tiers.decide(&g("v1/pods")),
            Decision::ClusterWide(_)
        ));
    }

    #[test]
    fn workload_plan_watches_workload_gvrs_in_member_namespaces_only() {
        let detector = Detector {
            label: "team".into(),
            pattern: regex::Regex::new("^(?:.*)$").unwrap(),
            id_pattern: None,
        };
        let membership = Arc::new(RwLock::new(Membership::new(detector)));
        let mut live: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        live.insert("w1".into(), vec![("team".into(), "a".into())]);
        live.insert("other".into(), vec![]);
        membership.write().unwrap().recompute(&live);
        let tiers = Tiers::new(
            vec![g("v1/nodes")],
            vec![g("v1/pods"), g("v1/configmaps"), g("v1/namespaces")],
            vec![g("v1/configmaps")],
        )
        .unwrap();
        let mut planner = Planner::new(Mode::Workload { tiers, membership });
        let plan = planner.plan(&discovery(), None);
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
        assert!(
            ns.emit
                && matches!(
                    ns.filter.as_deref(),
                    Some(ObjectFilter::WorkloadNamespaces(_))
                )
        );
    }
}
