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
//!
//! With a [`Shard`] (`--shard i/N`), the plan above is cut to the shard's part as a last step, so
//! that every shard makes the same choices (the cluster-wide threshold counts every matching
//! namespace, owned or not): namespace-scoped watches of namespaces other shards own are left
//! out; cluster-wide watches of namespaced resources carry the shard (sent to the server as a
//! `shardSelector`, and checked by the stream); cluster-scoped resources are watched by shard 0
//! only. Control streams run on every shard (each needs the namespaces and CRDs for itself), but
//! only shard 0 emits the namespace events of workload watching.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::config::{self, NamespaceFilter, WatchConfig};
use crate::discovery::Discovery;
use crate::gvr::Gvr;
use crate::matcher::{EntryFilter, Matcher};
use crate::selector;
use crate::shard::Shard;
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
    /// The shard of a cluster-wide watch of a namespaced resource under `--shard`: asked of the
    /// server as a `shardSelector` and checked on every object.
    pub shard: Option<Shard>,
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
    /// Per pattern entry (by index), how many namespaces it resolved to at the last plan that
    /// looked at every namespace, kept up to date by [`Planner::note_namespace`] since: what a
    /// namespace-scoped plan compares with the threshold instead of counting every namespace.
    /// Absent: not known (the entry was skipped, or no such plan ran yet).
    resolved: BTreeMap<usize, usize>,
    /// Messages already logged (once per GVR and reason).
    told: Told,
    /// Until the first plan succeeds a scope problem is an error (the config is wrong); later it
    /// is a warning (a CRD created with another scope than the config expects).
    strict: bool,
    /// The part of the plan this process runs (`--shard i/N`, N > 1).
    shard: Option<Shard>,
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

/// A part of the plan: what one change can affect. A namespace joining or leaving changes only
/// the streams in that namespace; a CRD arriving or going only the streams of its GVR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope<'a> {
    /// Every stream.
    All,
    /// The streams watching in this namespace (namespace-scoped watches).
    Namespace(&'a str),
    /// The streams of this GVR.
    Gvr(&'a Gvr),
}

impl Scope<'_> {
    /// Whether a stream of this GVR and namespace is in the scope.
    pub fn holds(&self, gvr: &Gvr, namespace: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Namespace(ns) => namespace == Some(*ns),
            Scope::Gvr(g) => gvr == *g,
        }
    }

    /// Whether a stream is in the scope.
    pub fn contains(&self, key: &StreamKey) -> bool {
        self.holds(&key.gvr, key.namespace.as_deref())
    }
}

/// Streams by key, indexed so that the streams of one [`Scope`] are found without looking at
/// the others: the map is ordered by namespace first (see [`StreamKey`]), so one namespace's
/// streams are one range of it, and `by_gvr` lists the keys of each GVR.
///
/// Invariant: `by_gvr` holds exactly the keys of `streams`, each under its own GVR (every
/// mutation goes through `insert` and `remove`).
#[derive(Debug)]
pub(crate) struct Streams<V> {
    streams: BTreeMap<StreamKey, V>,
    by_gvr: HashMap<Gvr, BTreeSet<StreamKey>>,
}

impl<V> Default for Streams<V> {
    fn default() -> Self {
        Streams {
            streams: BTreeMap::new(),
            by_gvr: HashMap::new(),
        }
    }
}

impl<V> Streams<V> {
    /// Adds or replaces a stream.
    pub fn insert(&mut self, key: StreamKey, value: V) -> Option<V> {
        self.by_gvr
            .entry(key.gvr.clone())
            .or_default()
            .insert(key.clone());
        self.streams.insert(key, value)
    }

    /// Removes a stream.
    pub fn remove(&mut self, key: &StreamKey) -> Option<V> {
        let value = self.streams.remove(key)?;
        if let Some(keys) = self.by_gvr.get_mut(&key.gvr) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_gvr.remove(&key.gvr);
            }
        }
        Some(value)
    }

    /// A stream.
    pub fn get_mut(&mut self, key: &StreamKey) -> Option<&mut V> {
        self.streams.get_mut(key)
    }

    /// Whether a stream is there.
    pub fn contains_key(&self, key: &StreamKey) -> bool {
        self.streams.contains_key(key)
    }

    /// Every stream's value.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.streams.values()
    }

    /// Number of streams.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Takes every stream out.
    pub fn take(&mut self) -> BTreeMap<StreamKey, V> {
        self.by_gvr.clear();
        std::mem::take(&mut self.streams)
    }

    /// The keys in a scope, touching only those (plus a lookup).
    pub fn keys_in<'s>(&'s self, scope: &Scope<'_>) -> Vec<&'s StreamKey> {
        match scope {
            Scope::All => self.streams.keys().collect(),
            Scope::Gvr(gvr) => self
                .by_gvr
                .get(*gvr)
                .map(|keys| keys.iter().collect())
                .unwrap_or_default(),
            Scope::Namespace(ns) => {
                // The smallest key of the namespace: every other field at its minimum.
                let first = StreamKey {
                    namespace: Some((*ns).to_owned()),
                    gvr: Gvr::new("", "", ""),
                    label_selector: None,
                    field_selector: None,
                    role: Role::Emit(Vec::new()),
                };
                self.streams
                    .range(first..)
                    .map(|(k, _)| k)
                    .take_while(|k| k.namespace.as_deref() == Some(*ns))
                    .collect()
            }
        }
    }
}

/// What brings the streams of a scope in line with the desired ones of that scope.
#[derive(Debug, Default)]
pub(crate) struct Delta {
    /// Streams to start.
    pub start: Vec<(StreamKey, Desired)>,
    /// Streams to stop.
    pub stop: Vec<StreamKey>,
    /// Running streams looked at: those of the scope, never the others.
    pub visited: usize,
}

/// The difference between the running streams of `scope` and `desired`, the plan of that same
/// scope ([`Planner::plan_scope`]).
pub(crate) fn delta<V>(running: &Streams<V>, scope: &Scope<'_>, desired: Plan) -> Delta {
    let in_scope = running.keys_in(scope);
    let stop = in_scope
        .iter()
        .filter(|k| !desired.contains_key(**k))
        .map(|k| (*k).clone())
        .collect();
    let start = desired
        .into_iter()
        .filter(|(k, _)| !running.contains_key(k))
        .collect();
    Delta {
        start,
        stop,
        visited: in_scope.len(),
    }
}

/// The server-side part of a watch: GVR, namespace, label selector, field selector.
type ServerSide = (Gvr, Option<String>, Option<String>, Option<String>);

impl Planner {
    /// A planner for a mode.
    pub fn new(mode: Mode) -> Planner {
        Planner {
            mode,
            cluster_wide: BTreeSet::new(),
            resolved: BTreeMap::new(),
            told: Told::default(),
            strict: true,
            shard: None,
        }
    }

    /// Runs only `shard`'s part of the plan (see the module comment); a shard of 1 is the
    /// whole plan.
    pub fn shard(mut self, shard: Option<Shard>) -> Planner {
        self.shard = shard.filter(|s| s.count() > 1);
        self
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
    #[cfg(test)]
    pub fn plan(
        &mut self,
        discovery: &Discovery,
        namespaces: Option<&BTreeMap<String, NamespaceInfo>>,
        membership: Option<&Membership>,
    ) -> Result<Plan, config::Error> {
        let plan = self.plan_scope(&Scope::All, discovery, namespaces, membership)?;
        Ok(plan.unwrap_or_default())
    }

    /// The desired streams within `scope`: exactly the streams of the full plan
    /// ([`Scope::All`]) that `scope` contains, computed at the cost of that scope (one
    /// namespace: the config's entries or GVRs; one GVR: that GVR's streams) instead of every
    /// stream.
    ///
    /// None when a namespace-scoped plan cannot stand alone: the namespace makes a pattern
    /// entry cross `cluster_wide_threshold` (or its count is unknown), which changes that
    /// entry's streams in every namespace. Plan [`Scope::All`] then.
    pub fn plan_scope(
        &mut self,
        scope: &Scope,
        discovery: &Discovery,
        namespaces: Option<&BTreeMap<String, NamespaceInfo>>,
        membership: Option<&Membership>,
    ) -> Result<Option<Plan>, config::Error> {
        let mut out = BTreeMap::new();
        if !matches!(scope, Scope::Namespace(_)) {
            // Control streams are cluster-wide: no namespace scope holds them.
            self.control_streams(discovery, &mut out);
            out.retain(|k, _| scope.contains(k));
        }
        let complete = match &self.mode {
            Mode::Watch(_) => self.plan_watch(scope, discovery, namespaces, &mut out)?,
            Mode::Workload(_) => {
                self.plan_workload(scope, discovery, membership, &mut out);
                true
            }
        };
        self.strict = false;
        if let Some(shard) = self.shard {
            cut_to_shard(shard, discovery, &mut out);
        }
        Ok(complete.then_some(out))
    }

    /// Notes that a namespace appeared (`live`) or disappeared, for the counts a later
    /// namespace-scoped plan compares with the threshold. Call once per namespace whose
    /// presence changed, before planning its scope.
    pub fn note_namespace(&mut self, namespace: &str, live: bool) {
        let Mode::Watch(config) = &self.mode else {
            return;
        };
        for (index, count) in self.resolved.iter_mut() {
            let Some(entry) = config.entries.get(*index) else {
                continue;
            };
            if let NamespaceFilter::Only { exact, patterns } = &entry.namespaces
                && !exact.contains(namespace)
                && patterns.iter().any(|p| p.is_match(namespace))
            {
                *count = if live {
                    *count + 1
                } else {
                    count.saturating_sub(1)
                };
            }
        }
    }

    /// The GVRs the plan reads from discovery: those whose discovery entry changing can
    /// change the plan.
    pub fn gvrs(&self) -> Vec<Gvr> {
        let mut out = vec![Gvr::new(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
        )];
        match &self.mode {
            Mode::Watch(config) => out.extend(config.entries.iter().map(|e| e.gvr.clone())),
            Mode::Workload(tiers) => out.extend(tiers.named()),
        }
        out.sort();
        out.dedup();
        out
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
                    shard: None,
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
                    shard: None,
                },
            );
        }
    }

    /// Plans the watch config's entries within `scope`; false when a namespace scope cannot
    /// stand alone (see [`Planner::plan_scope`]).
    fn plan_watch(
        &mut self,
        scope: &Scope,
        discovery: &Discovery,
        namespaces: Option<&BTreeMap<String, NamespaceInfo>>,
        out: &mut Plan,
    ) -> Result<bool, config::Error> {
        let Planner {
            mode,
            cluster_wide,
            resolved,
            told,
            strict,
            ..
        } = self;
        let Mode::Watch(config) = mode else {
            return Ok(true);
        };
        let threshold = config.cluster_wide_threshold;
        // (server-side key) → (kind, [(entry index, client filter)])
        let mut groups: BTreeMap<ServerSide, (String, Vec<(usize, EntryFilter)>)> = BTreeMap::new();
        for (index, entry) in config.entries.iter().enumerate() {
            if let Scope::Gvr(gvr) = scope
                && entry.gvr != **gvr
            {
                continue;
            }
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
                    if let Scope::Namespace(only) = scope {
                        // One namespace: whether it is in the set, and the size of the set as
                        // counted at the last full look (see `resolved`).
                        let inside = exact.contains(*only)
                            || namespaces.is_some_and(|live| live.contains_key(*only))
                                && patterns.iter().any(|p| p.is_match(only));
                        if !patterns.is_empty() {
                            if namespaces.is_none() || cluster_wide.contains(&index) {
                                continue; // one cluster-wide watch: nothing in this namespace
                            }
                            let Some(count) = resolved.get(&index) else {
                                return Ok(false);
                            };
                            if exact.len() + count > threshold {
                                return Ok(false); // crosses the threshold: a full plan switches
                            }
                        }
                        if inside {
                            add(Some((*only).to_owned()), client(None));
                        }
                        continue;
                    }
                    let mut set: BTreeSet<String> = exact.clone();
                    if !patterns.is_empty() {
                        match namespaces {
                            Some(live) => {
                                let matching = live.keys().filter(|ns| {
                                    !exact.contains(*ns) && entry.namespaces.matches(ns)
                                });
                                let before = set.len();
                                set.extend(matching.cloned());
                                resolved.insert(index, set.len() - before);
                            }
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
            if !scope.holds(&gvr, namespace.as_deref()) {
                continue;
            }
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
                    shard: None,
                },
            );
        }
        Ok(true)
    }

    fn plan_workload(
        &mut self,
        scope: &Scope,
        discovery: &Discovery,
        membership: Option<&Membership>,
        out: &mut Plan,
    ) {
        let Planner { mode, told, .. } = self;
        let Mode::Workload(tiers) = mode else {
            return;
        };
        let members: Vec<&str> = match (scope, membership) {
            (_, None) => Vec::new(),
            (Scope::Namespace(ns), Some(m)) => m.get(ns).map(|_| *ns).into_iter().collect(),
            (_, Some(m)) => m.namespaces().map(|(ns, _)| ns.as_str()).collect(),
        };
        for gvr in tiers.named() {
            if let Scope::Gvr(only) = scope
                && gvr != **only
            {
                continue;
            }
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
                shard: None,
            };
            match decision {
                Decision::WorkloadNamespaces(_) if namespaced => {
                    told.watching(&gvr);
                    for ns in &members {
                        out.insert(key(Some((*ns).to_owned())), desired());
                    }
                }
                Decision::WorkloadNamespaces(rule) => {
                    told.once(format!("cluster-scoped {gvr}"), || {
                        format!("{} is cluster-scoped, so it cannot be watched per workload namespace; add it to the allowed tier (-allowedgvrs) to watch it", rule.entry)
                    });
                }
                _ => {
                    told.watching(&gvr);
                    if scope.holds(&gvr, None) {
                        out.insert(key(None), desired());
                    }
                }
            }
        }
    }
}

/// Cuts a plan to one shard's part (see the module comment).
fn cut_to_shard(shard: Shard, discovery: &Discovery, plan: &mut Plan) {
    plan.retain(|key, desired| {
        if desired.control.is_some() {
            if desired.emit && !shard.owns(None) {
                // Namespaces are cluster-scoped: their events are shard 0's.
                desired.emit = false;
                desired.filter = "control".into();
            }
            return true;
        }
        match &key.namespace {
            Some(ns) => shard.owns(Some(ns)),
            None if discovery.find(&key.gvr).is_some_and(|r| r.namespaced) => {
                desired.shard = Some(shard);
                // Another shard's (or an unsharded run's) checkpoint holds other objects.
                desired.filter = format!("{} shard {shard}", desired.filter);
                true
            }
            None => shard.owns(None),
        }
    });
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
    fn shards_split_the_plan_and_together_make_it_whole() {
        let yaml = "resources:\n  - gvr: v1/pods\n  - gvr: v1/configmaps\n    namespace_names: [alpha, bravo, charlie, delta, echo, foxtrot]\n  - gvr: v1/configmaps\n    namespace_patterns: [\"team-.*\"]\n  - gvr: v1/nodes\n";
        let live = namespaces(&["team-a", "team-b", "team-c", "team-d", "team-e", "other"]);
        let whole = watch_planner(yaml)
            .plan(&discovery(), Some(&live), None)
            .unwrap();
        let mut namespaced: Vec<StreamKey> = Vec::new();
        for i in 0..3 {
            let shard = Shard::new(i, 3).unwrap();
            let plan = watch_planner(yaml)
                .shard(Some(shard))
                .plan(&discovery(), Some(&live), None)
                .unwrap();
            for (key, desired) in &plan {
                match (&key.namespace, desired.control) {
                    (_, Some(_)) => assert!(desired.shard.is_none(), "{key}"),
                    (Some(ns), None) => {
                        assert!(shard.owns(Some(ns)), "{key} on shard {shard}");
                        assert!(desired.shard.is_none());
                        namespaced.push(key.clone());
                    }
                    (None, None) if key.gvr == g("v1/nodes") => assert_eq!(i, 0),
                    (None, None) => {
                        assert_eq!(desired.shard, Some(shard), "{key}");
                        assert!(desired.filter.ends_with(&format!("shard {i}/3")));
                    }
                }
            }
            // Every shard runs the control streams and the cluster-wide pods watch.
            let control = plan.values().filter(|d| d.control.is_some()).count();
            assert_eq!(control, 2, "namespaces and CRDs on shard {i}");
            assert!(plan.keys().any(|k| k.gvr == g("v1/pods")));
        }
        namespaced.sort();
        let mut expected: Vec<StreamKey> = whole
            .keys()
            .filter(|k| k.namespace.is_some())
            .cloned()
            .collect();
        expected.sort();
        assert_eq!(
            namespaced, expected,
            "each namespace-scoped watch on one shard"
        );
        assert!(expected.len() > 6);
        // A shard of one is the whole plan.
        let one = watch_planner(yaml)
            .shard(Some(Shard::new(0, 1).unwrap()))
            .plan(&discovery(), Some(&live), None)
            .unwrap();
        assert!(one.values().all(|d| d.shard.is_none()));
        assert_eq!(one.len(), whole.len());
    }

    #[test]
    fn only_shard_zero_emits_the_namespaces_of_workload_watching() {
        let tiers = Tiers::new(
            vec![g("v1/nodes")],
            vec![g("v1/pods"), g("v1/namespaces")],
            vec![],
        )
        .unwrap();
        for i in 0..2 {
            let plan = Planner::new(Mode::Workload(tiers.clone()))
                .shard(Some(Shard::new(i, 2).unwrap()))
                .plan(&discovery(), None, None)
                .unwrap();
            let ns = plan
                .iter()
                .find(|(k, _)| k.is_namespace_control())
                .map(|(_, d)| d)
                .expect("every shard detects workloads");
            assert_eq!(ns.emit, i == 0, "shard {i}");
        }
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

    /// A small deterministic generator (xorshift), so that a failing sequence replays.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    fn keys<V>(streams: &Streams<V>) -> Vec<StreamKey> {
        streams.keys_in(&Scope::All).into_iter().cloned().collect()
    }

    fn apply(streams: &mut Streams<()>, delta: Delta) {
        for key in delta.stop {
            streams.remove(&key);
        }
        for (key, _) in delta.start {
            streams.insert(key, ());
        }
    }

    /// Random namespace changes (create, relabel, delete) over a cluster with `background`
    /// namespaces, planned incrementally as the registry does (one namespace scope per moved
    /// namespace; a full plan when a scope cannot stand alone) and compared after every step
    /// with a full plan of a second planner. Also checks that each namespace scope looked only
    /// at its own streams, however many run.
    fn incremental_equals_full(
        make: impl Fn() -> Planner,
        detector: Option<Detector>,
        background: usize,
        seed: u64,
    ) -> usize {
        const L: &str = "team";
        let names: Vec<String> = ["p-0", "p-1", "p-2", "p-3", "q-0", "q-1", "q-2", "a", "b"]
            .iter()
            .map(|s| s.to_string())
            .chain((0..4).map(|i| format!("ocm-logs-{i}")))
            .chain((0..4).map(|i| format!("ocm-staging-{i}")))
            .collect();
        let values = [None, Some("toda-a"), Some("toda-b"), Some("other")];
        let d = discovery();
        let mut live: BTreeMap<String, NamespaceInfo> = BTreeMap::new();
        for i in 0..background {
            live.insert(
                format!("w{i:04}"),
                NamespaceInfo {
                    labels: vec![(L.into(), format!("toda-w{i}"))],
                    terminating: false,
                },
            );
        }
        let base = detector.map(Membership::new);
        let mut membership = base.as_ref().map(|m| m.recompute(&live));
        let (mut incremental, mut full) = (make(), make());
        let mut running: Streams<()> = Streams::default();
        let first = incremental
            .plan(&d, Some(&live), membership.as_ref())
            .unwrap();
        let all = delta(&running, &Scope::All, first);
        apply(&mut running, all);
        full.plan(&d, Some(&live), membership.as_ref()).unwrap();
        let mut rng = Rng(seed);
        let mut fallbacks = 0;
        for step in 0..400 {
            let ns = &names[rng.below(names.len())];
            let was_live = live.contains_key(ns);
            if rng.below(4) == 0 {
                live.remove(ns);
            } else {
                let labels = values[rng.below(values.len())]
                    .map(|v| vec![(L.to_string(), v.to_string())])
                    .unwrap_or_default();
                live.insert(
                    ns.clone(),
                    NamespaceInfo {
                        labels,
                        terminating: false,
                    },
                );
            }
            let moved: Vec<String> = match membership.as_mut() {
                Some(m) => m
                    .update(ns, live.get(ns).map(|i| i.labels.as_slice()))
                    .into_iter()
                    .map(|m| m.namespace)
                    .collect(),
                None => {
                    if was_live != live.contains_key(ns) {
                        incremental.note_namespace(ns, live.contains_key(ns));
                    }
                    vec![ns.clone()]
                }
            };
            for ns in &moved {
                let scope = Scope::Namespace(ns);
                match incremental
                    .plan_scope(&scope, &d, Some(&live), membership.as_ref())
                    .unwrap()
                {
                    Some(desired) => {
                        let delta = delta(&running, &scope, desired);
                        assert!(
                            delta.visited <= 2,
                            "step {step}: {ns} looked at {} streams of {}",
                            delta.visited,
                            running.len()
                        );
                        apply(&mut running, delta);
                    }
                    None => {
                        fallbacks += 1;
                        let desired = incremental
                            .plan(&d, Some(&live), membership.as_ref())
                            .unwrap();
                        let all = delta(&running, &Scope::All, desired);
                        apply(&mut running, all);
                        break;
                    }
                }
            }
            // The membership kept one namespace at a time equals one computed from scratch.
            if let (Some(m), Some(base)) = (&membership, &base) {
                let scratch = base.recompute(&live);
                let assigned = |m: &Membership| {
                    let mut v: Vec<(String, WorkloadRefText)> = m
                        .namespaces()
                        .map(|(ns, w)| (ns.clone(), (w.id.clone(), w.name.clone())))
                        .collect();
                    v.sort();
                    v
                };
                assert_eq!(assigned(m), assigned(&scratch), "step {step}");
                assert_eq!(m.workload_count(), scratch.workload_count(), "step {step}");
                for n in &names {
                    assert_eq!(
                        m.classify(n, []),
                        scratch.classify(n, []),
                        "step {step} {n}"
                    );
                }
            }
            let want: Vec<StreamKey> = full
                .plan(&d, Some(&live), membership.as_ref())
                .unwrap()
                .into_keys()
                .collect();
            assert_eq!(keys(&running), want, "step {step}: after changing {ns}");
        }
        fallbacks
    }

    type WorkloadRefText = (String, String);

    #[test]
    fn workload_joins_and_leaves_plan_only_their_namespace_and_equal_a_full_plan() {
        let tiers = || {
            Tiers::new(
                vec![g("v1/nodes")],
                vec![g("v1/pods"), g("v1/configmaps"), g("v1/namespaces")],
                vec![],
            )
            .unwrap()
        };
        for seed in [1, 7, 42, 1234] {
            let detector = Detector::new("team")
                .unwrap()
                .pattern("toda-.*")
                .unwrap()
                .id_pattern("ocm-(?:staging|logs)-(.+)")
                .unwrap();
            let fallbacks = incremental_equals_full(
                || Planner::new(Mode::Workload(tiers())),
                Some(detector),
                300,
                seed,
            );
            assert_eq!(fallbacks, 0, "workload changes never need a full plan");
        }
    }

    #[test]
    fn namespace_pattern_changes_plan_only_their_namespace_and_equal_a_full_plan() {
        // Entry 1 crosses its threshold of 3 during the run (sticky from then on); entry 0
        // has exact namespaces besides its pattern; entry 2 shares entry 0's watches in `a`.
        let yaml = "cluster_wide_threshold: 3\nresources:\n  - gvr: v1/pods\n    namespace_patterns: [\"p-.*\"]\n    namespace_names: [a]\n  - gvr: v1/configmaps\n    namespace_patterns: [\"q-.*\"]\n  - gvr: v1/pods\n    namespace_names: [a, b]\n    name_pattern: x-.*\n";
        let mut fallbacks = 0;
        for seed in [3, 9, 77, 4321] {
            fallbacks += incremental_equals_full(|| watch_planner(yaml), None, 300, seed);
        }
        assert!(fallbacks > 0, "the threshold was crossed");
    }

    #[test]
    fn sharded_incremental_plans_equal_full_ones() {
        let tiers = || {
            Tiers::new(
                vec![g("v1/nodes")],
                vec![g("v1/pods"), g("v1/configmaps"), g("v1/namespaces")],
                vec![],
            )
            .unwrap()
        };
        for i in 0..3 {
            let shard = Some(Shard::new(i, 3).unwrap());
            let detector = Detector::new("team")
                .unwrap()
                .pattern("toda-.*")
                .unwrap()
                .id_pattern("ocm-(?:staging|logs)-(.+)")
                .unwrap();
            incremental_equals_full(
                || Planner::new(Mode::Workload(tiers())).shard(shard),
                Some(detector),
                100,
                11 + u64::from(i),
            );
            let yaml = "cluster_wide_threshold: 3\nresources:\n  - gvr: v1/pods\n    namespace_patterns: [\"p-.*\"]\n    namespace_names: [a]\n  - gvr: v1/configmaps\n    namespace_patterns: [\"q-.*\"]\n";
            incremental_equals_full(
                || watch_planner(yaml).shard(shard),
                None,
                100,
                5 + u64::from(i),
            );
        }
    }

    #[test]
    fn a_namespace_scope_is_one_range_of_the_index_and_a_gvr_scope_its_own_keys() {
        let key = |ns: Option<&str>, gvr: &str, labels: Option<&str>| StreamKey {
            namespace: ns.map(str::to_owned),
            gvr: g(gvr),
            label_selector: labels.map(str::to_owned),
            field_selector: None,
            role: Role::Emit(vec![]),
        };
        let mut streams: Streams<()> = Streams::default();
        for k in [
            key(None, "v1/nodes", None),
            key(Some("a"), "v1/pods", None),
            key(Some("a"), "v1/pods", Some("x=y")),
            key(Some("a"), "v1/configmaps", None),
            key(Some("ab"), "v1/pods", None),
            key(Some(""), "v1/pods", None),
        ] {
            streams.insert(k, ());
        }
        let in_a: Vec<String> = streams
            .keys_in(&Scope::Namespace("a"))
            .iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(
            in_a,
            [
                "v1/configmaps in a",
                "v1/pods in a",
                "v1/pods in a labels \"x=y\""
            ]
        );
        assert_eq!(streams.keys_in(&Scope::Gvr(&g("v1/pods"))).len(), 4);
        streams.remove(&key(Some("a"), "v1/pods", None));
        assert_eq!(streams.keys_in(&Scope::Gvr(&g("v1/pods"))).len(), 3);
        assert!(streams.keys_in(&Scope::Gvr(&g("v1/secrets"))).is_empty());
    }

    #[test]
    fn a_gvr_arriving_or_going_plans_only_its_streams_and_equals_a_full_plan() {
        let tiers = Tiers::new(vec![], vec![g("v1/pods"), g("v1/configmaps")], vec![]).unwrap();
        let mut live: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for i in 0..50 {
            live.insert(format!("w{i}"), vec![("team".into(), format!("t{i}"))]);
        }
        let membership = Membership::new(Detector::new("team").unwrap()).recompute(&live);
        let mut without = discovery();
        without.resources.retain(|r| r.gvr != g("v1/configmaps"));
        let mut planner = Planner::new(Mode::Workload(tiers.clone()));
        let mut running: Streams<()> = Streams::default();
        let first = planner.plan(&without, None, Some(&membership)).unwrap();
        let all = delta(&running, &Scope::All, first);
        apply(&mut running, all);
        for d in [discovery(), without.clone(), discovery()] {
            let gvr = g("v1/configmaps");
            let scope = Scope::Gvr(&gvr);
            let desired = planner
                .plan_scope(&scope, &d, None, Some(&membership))
                .unwrap()
                .unwrap();
            let delta = delta(&running, &scope, desired);
            assert!(
                delta.visited <= 50,
                "only configmaps streams: {}",
                delta.visited
            );
            apply(&mut running, delta);
            let full = Planner::new(Mode::Workload(tiers.clone()))
                .plan(&d, None, Some(&membership))
                .unwrap();
            assert_eq!(keys(&running), full.into_keys().collect::<Vec<_>>());
        }
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
