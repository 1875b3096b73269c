//! Workload detection: which namespaces belong to which workload, from namespace labels and
//! names (design.md §4). Pure; no I/O.
//!
//! - A namespace carrying the label `-label KEY` with a value matching `-pattern` is a workload
//!   namespace; the value is the workload name.
//! - `-namespace-pattern` (anchored) is applied to the namespace name; its first capture group
//!   is the workload id. Without a match or a group, the id is the namespace name.
//! - A namespace without the label joins a workload when its name yields the id of a workload
//!   detected from a labelled namespace ("related" namespaces, e.g. `ocm-staging-abc` and
//!   `ocm-production-abc` with pattern `ocm-(?:staging|production)-(.+)`).
//! - When several labelled namespaces yield the same id with different label values, the
//!   alphabetically first namespace names the workload.
//!
//! A `Membership` is an immutable assignment: the registry, its one owner, computes a new one
//! whenever the namespaces change and hands it to the streams as a shared snapshot.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use regex::Regex;

use crate::selector;

/// A detector that cannot be built: a bad label key or regex.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The label key is not a valid Kubernetes label key.
    #[error("label {key:?}: {message}")]
    Label {
        /// The key given.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A pattern is not a valid regex.
    #[error("{which}: {message}")]
    Pattern {
        /// `pattern` or `namespace pattern`.
        which: &'static str,
        /// The regex error.
        message: String,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A workload as printed on event lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRef {
    /// `workload_id`: from the namespace name.
    pub id: String,
    /// `workload_name`: the label value.
    pub name: String,
}

/// How workloads are recognised.
///
/// ```
/// # fn main() -> Result<(), faro::workload::Error> {
/// let detector = faro::Detector::new("api.openshift.com/name")?
///     .pattern("toda-.*")?
///     .id_pattern("ocm-staging-(.+)")?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Detector {
    /// The namespace label marking a workload.
    label: String,
    /// Anchored regex on the label value (workload names to follow).
    pattern: Regex,
    /// Anchored regex on namespace names; first capture group = workload id.
    id_pattern: Option<Regex>,
}

impl Detector {
    /// Namespaces carrying the label `label` (any value) are workload namespaces; the value is
    /// the workload name, the namespace name the workload id.
    pub fn new(label: &str) -> Result<Detector> {
        selector::validate_key(label).map_err(|message| Error::Label {
            key: label.to_owned(),
            message,
        })?;
        Ok(Detector {
            label: label.to_owned(),
            pattern: Regex::new("^(?:.*)$").map_err(|e| Error::Pattern {
                which: "pattern",
                message: e.to_string(),
            })?,
            id_pattern: None,
        })
    }

    /// Only label values the anchored regex matches are workloads (default `.*`).
    pub fn pattern(mut self, pattern: &str) -> Result<Detector> {
        self.pattern = selector::anchored_regex(pattern).map_err(|message| Error::Pattern {
            which: "pattern",
            message,
        })?;
        Ok(self)
    }

    /// An anchored regex on namespace names whose first capture group is the workload id; an
    /// unlabelled namespace whose name yields the id of a detected workload joins it.
    pub fn id_pattern(mut self, pattern: &str) -> Result<Detector> {
        self.id_pattern =
            Some(
                selector::anchored_regex(pattern).map_err(|message| Error::Pattern {
                    which: "namespace pattern",
                    message,
                })?,
            );
        Ok(self)
    }

    /// The namespace label marking a workload.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The workload id a namespace name yields.
    pub(crate) fn id_of(&self, namespace: &str) -> String {
        self.id_pattern
            .as_ref()
            .and_then(|re| re.captures(namespace))
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_owned())
            .unwrap_or_else(|| namespace.to_owned())
    }

    /// The workload name a namespace's labels give, if it is a labelled workload namespace.
    pub(crate) fn labelled_name<'a>(
        &self,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<String> {
        labels
            .into_iter()
            .find(|(k, _)| *k == self.label)
            .filter(|(_, v)| self.pattern.is_match(v))
            .map(|(_, v)| v.to_owned())
    }
}

/// A namespace → workload assignment.
///
/// Kept up to date one namespace at a time ([`Membership::update`]): a namespace's assignment
/// depends only on the namespaces that yield the same workload id (its *group*: the labelled
/// ones name the workload, the others join it by name), so a change recomputes that group and
/// nothing else. `groups` holds every live namespace, labelled or not, under its id; the other
/// maps are derived from it and always equal what [`Membership::recompute`] computes from the
/// whole namespace list (a property test checks this).
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    detector: Arc<Detector>,
    by_namespace: HashMap<String, Arc<WorkloadRef>>,
    /// workload id → workload name, for namespaces joining by name.
    workloads: HashMap<String, String>,
    /// workload id → every live namespace yielding it, with the workload name its labels give
    /// (None: not a labelled workload namespace).
    groups: HashMap<String, BTreeMap<String, Option<String>>>,
}

/// A namespace whose workload changed in an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Moved {
    /// The namespace.
    pub namespace: String,
    /// Its workload before (None: in none).
    pub before: Option<Arc<WorkloadRef>>,
    /// Its workload now.
    pub after: Option<Arc<WorkloadRef>>,
}

impl Membership {
    /// An empty assignment.
    pub(crate) fn new(detector: Detector) -> Membership {
        Membership {
            detector: Arc::new(detector),
            by_namespace: HashMap::new(),
            workloads: HashMap::new(),
            groups: HashMap::new(),
        }
    }

    /// The assignment for every namespace and its labels (this one is left as it was, so that
    /// the two can be compared). Costs a pass over every namespace: used when the whole list
    /// is (re)read; single changes go through [`Membership::update`].
    pub(crate) fn recompute<L: AsRef<[(String, String)]>>(
        &self,
        namespaces: &BTreeMap<String, L>,
    ) -> Membership {
        let mut next = Membership {
            detector: self.detector.clone(),
            by_namespace: HashMap::new(),
            workloads: HashMap::new(),
            groups: HashMap::new(),
        };
        for (ns, labels) in namespaces {
            let name = next.detector.labelled_name(
                labels
                    .as_ref()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            let id = next.detector.id_of(ns);
            next.groups.entry(id).or_default().insert(ns.clone(), name);
        }
        let ids: Vec<String> = next.groups.keys().cloned().collect();
        for id in ids {
            next.assign_group(&id, Some(self));
        }
        next
    }

    /// Applies the change of one namespace: its labels now (None: deleted). Returns the
    /// namespaces whose workload changed (the namespace itself and those related to it by
    /// name), in no particular order. Costs the size of the namespace's group, not the number
    /// of namespaces.
    pub(crate) fn update(
        &mut self,
        namespace: &str,
        labels: Option<&[(String, String)]>,
    ) -> Vec<Moved> {
        let id = self.detector.id_of(namespace);
        let group = self.groups.entry(id.clone()).or_default();
        match labels {
            Some(labels) => {
                let name = self
                    .detector
                    .labelled_name(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                group.insert(namespace.to_owned(), name);
            }
            None => {
                group.remove(namespace);
            }
        }
        let mut before: Vec<(String, Option<Arc<WorkloadRef>>)> = group
            .keys()
            .map(|ns| (ns.clone(), self.by_namespace.get(ns).cloned()))
            .collect();
        if labels.is_none() {
            before.push((
                namespace.to_owned(),
                self.by_namespace.get(namespace).cloned(),
            ));
        }
        // Clear the group's derived entries, then assign it again.
        for (ns, _) in &before {
            self.by_namespace.remove(ns);
        }
        self.workloads.remove(&id);
        if self.groups.get(&id).is_some_and(BTreeMap::is_empty) {
            self.groups.remove(&id);
        } else {
            self.assign_group(&id, None);
        }
        before
            .into_iter()
            .filter_map(|(ns, before)| {
                let after = self.by_namespace.get(&ns).cloned();
                let same = match (&before, &after) {
                    (Some(b), Some(a)) => b == a,
                    (None, None) => true,
                    _ => false,
                };
                if same {
                    // Keep the shared copy events already point at.
                    if let Some(b) = before {
                        self.by_namespace.insert(ns, b);
                    }
                    None
                } else {
                    Some(Moved {
                        namespace: ns,
                        before,
                        after,
                    })
                }
            })
            .collect()
    }

    /// Derives `by_namespace`, `workloads` and `labelled` for one group (whose derived entries
    /// are absent): the alphabetically first labelled namespace names the workload, and every
    /// namespace of the group belongs to it; without a labelled namespace, none does.
    /// `previous` lends its shared copies of unchanged assignments.
    fn assign_group(&mut self, id: &str, previous: Option<&Membership>) {
        let Some(group) = self.groups.get(id) else {
            return;
        };
        let Some(name) = group.values().flatten().next().cloned() else {
            return;
        };
        for ns in group.keys() {
            let workload = WorkloadRef {
                id: id.to_owned(),
                name: name.clone(),
            };
            let shared = match previous.and_then(|p| p.by_namespace.get(ns)) {
                Some(current) if **current == workload => current.clone(),
                _ => Arc::new(workload),
            };
            self.by_namespace.insert(ns.clone(), shared);
        }
        self.workloads.insert(id.to_owned(), name);
    }

    /// Number of distinct workloads.
    pub(crate) fn workload_count(&self) -> usize {
        self.workloads.len()
    }

    /// The shared copy of an unchanged assignment, so that events keep pointing at one.
    fn reuse(&self, namespace: &str, workload: WorkloadRef) -> Arc<WorkloadRef> {
        match self.by_namespace.get(namespace) {
            Some(current) if **current == workload => current.clone(),
            _ => Arc::new(workload),
        }
    }

    /// The workload of a namespace, if any.
    pub(crate) fn get(&self, namespace: &str) -> Option<&Arc<WorkloadRef>> {
        self.by_namespace.get(namespace)
    }

    /// The workload a namespace belongs to given its *current* labels (which may be newer than
    /// the last recompute): used for the namespace's own events.
    pub(crate) fn classify<'a>(
        &self,
        namespace: &str,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<Arc<WorkloadRef>> {
        let id = self.detector.id_of(namespace);
        if let Some(name) = self.detector.labelled_name(labels) {
            let name = self.workloads.get(&id).cloned().unwrap_or(name);
            return Some(self.reuse(namespace, WorkloadRef { id, name }));
        }
        // Not labelled: related by name to another, labelled namespace of a workload?
        // (Its group: the namespaces yielding the same id, a handful, not every namespace.)
        let other_labelled = self.groups.get(&id).is_some_and(|group| {
            group
                .iter()
                .any(|(ns, name)| ns != namespace && name.is_some())
        });
        if other_labelled {
            return self.workloads.get(&id).map(|name| {
                self.reuse(
                    namespace,
                    WorkloadRef {
                        id,
                        name: name.clone(),
                    },
                )
            });
        }
        None
    }

    /// Namespaces currently in a workload.
    pub(crate) fn namespaces(&self) -> impl Iterator<Item = (&String, &Arc<WorkloadRef>)> {
        self.by_namespace.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(id_pattern: Option<&str>) -> Detector {
        let d = Detector::new("api.openshift.com/name")
            .unwrap()
            .pattern("toda-.*")
            .unwrap();
        match id_pattern {
            Some(p) => d.id_pattern(p).unwrap(),
            None => d,
        }
    }

    fn namespaces(items: &[(&str, &[(&str, &str)])]) -> BTreeMap<String, Vec<(String, String)>> {
        items
            .iter()
            .map(|(ns, labels)| {
                (
                    ns.to_string(),
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )
            })
            .collect()
    }

    const L: &str = "api.openshift.com/name";

    #[test]
    fn labelled_namespace_with_matching_value_is_a_workload() {
        let m = Membership::new(detector(Some("ocm-staging-(.+)")));
        let m = m.recompute(&namespaces(&[
            ("ocm-staging-abc", &[(L, "toda-one")]),
            ("other", &[(L, "not-toda")]),
            ("plain", &[]),
        ]));
        assert_eq!(
            m.get("ocm-staging-abc").map(|w| &**w),
            Some(&WorkloadRef {
                id: "abc".into(),
                name: "toda-one".into()
            })
        );
        assert_eq!(m.get("other"), None, "value does not match -pattern");
        assert_eq!(m.get("plain"), None);
        assert_eq!(m.workload_count(), 1);
    }

    #[test]
    fn without_a_match_or_group_the_id_is_the_namespace_name() {
        let d = detector(Some("ocm-staging-(.+)"));
        assert_eq!(d.id_of("team-a"), "team-a");
        let d = detector(Some("ocm-staging-.+"));
        assert_eq!(d.id_of("ocm-staging-x"), "ocm-staging-x");
        assert_eq!(detector(None).id_of("ns"), "ns");
    }

    #[test]
    fn related_namespace_joins_by_name() {
        let m = Membership::new(detector(Some("ocm-(?:staging|logs)-(.+)")));
        let m = m.recompute(&namespaces(&[
            ("ocm-staging-abc", &[(L, "toda-one")]),
            ("ocm-logs-abc", &[]),
            ("ocm-logs-xyz", &[]),
        ]));
        assert_eq!(m.get("ocm-logs-abc").map(|w| w.id.as_str()), Some("abc"));
        assert_eq!(
            m.get("ocm-logs-abc").map(|w| w.name.as_str()),
            Some("toda-one")
        );
        assert_eq!(m.get("ocm-logs-xyz"), None, "no workload with id xyz");
    }

    #[test]
    fn two_workloads_with_overlapping_names_stay_apart() {
        let m = Membership::new(detector(Some("ns-(.+)")));
        let m = m.recompute(&namespaces(&[
            ("ns-a", &[(L, "toda-a")]),
            ("ns-ab", &[(L, "toda-ab")]),
        ]));
        assert_eq!(m.get("ns-a").unwrap().id, "a");
        assert_eq!(m.get("ns-ab").unwrap().id, "ab");
        assert_eq!(m.get("ns-ab").unwrap().name, "toda-ab");
    }

    #[test]
    fn classify_uses_the_current_labels_of_a_namespace() {
        let m = Membership::new(detector(None));
        let m = m.recompute(&namespaces(&[("a", &[])]));
        assert_eq!(
            m.classify("a", [(L, "toda-x")]).map(|w| w.name.clone()),
            Some("toda-x".into())
        );
        assert_eq!(m.classify("a", []), None);
    }

    #[test]
    fn a_namespace_that_loses_its_label_does_not_stay_by_its_related_namespaces() {
        let m = Membership::new(detector(Some("ocm-(?:staging|logs)-(.+)")));
        let m = m.recompute(&namespaces(&[
            ("ocm-staging-abc", &[(L, "toda-one")]),
            ("ocm-logs-abc", &[]),
        ]));
        assert_eq!(m.classify("ocm-staging-abc", []), None);
        assert!(m.classify("ocm-logs-abc", []).is_some());
    }

    #[test]
    fn an_update_moves_only_the_namespace_and_its_group_and_equals_a_recompute() {
        let mut m = Membership::new(detector(Some("ocm-(?:staging|logs)-(.+)")));
        let mut live = namespaces(&[("ocm-logs-abc", &[]), ("other", &[(L, "toda-o")])]);
        m = m.recompute(&live);
        let moved = |changes: Vec<Moved>| {
            let mut v: Vec<String> = changes.into_iter().map(|c| c.namespace).collect();
            v.sort();
            v
        };
        // Labelling a namespace brings the unlabelled one with the same id along.
        let labels = vec![(L.to_string(), "toda-one".to_string())];
        live.insert("ocm-staging-abc".into(), labels.clone());
        assert_eq!(
            moved(m.update("ocm-staging-abc", Some(&labels))),
            ["ocm-logs-abc", "ocm-staging-abc"]
        );
        let scratch = m.recompute(&live);
        for ns in live.keys() {
            assert_eq!(m.get(ns), scratch.get(ns), "{ns}");
        }
        // A namespace of another id is not looked at; relabelling without effect moves nothing.
        assert_eq!(
            moved(m.update("ocm-staging-abc", Some(&labels))),
            Vec::<String>::new()
        );
        // Deleting the labelled namespace takes the related one out too.
        live.remove("ocm-staging-abc");
        assert_eq!(
            moved(m.update("ocm-staging-abc", None)),
            ["ocm-logs-abc", "ocm-staging-abc"]
        );
        assert!(m.get("ocm-logs-abc").is_none());
        assert!(m.get("other").is_some());
        assert_eq!(m.workload_count(), 1);
    }

    #[test]
    fn losing_the_label_leaves_the_workload() {
        let m = Membership::new(detector(None));
        let m = m.recompute(&namespaces(&[("a", &[(L, "toda-x")])]));
        assert!(m.get("a").is_some());
        let m = m.recompute(&namespaces(&[("a", &[])]));
        assert!(m.get("a").is_none());
    }
}
