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
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    detector: Arc<Detector>,
    by_namespace: HashMap<String, Arc<WorkloadRef>>,
    /// workload id → workload name, for namespaces joining by name.
    workloads: HashMap<String, String>,
    /// labelled namespace → the workload id it yields.
    labelled: HashMap<String, String>,
}

impl Membership {
    /// An empty assignment.
    pub(crate) fn new(detector: Detector) -> Membership {
        Membership {
            detector: Arc::new(detector),
            by_namespace: HashMap::new(),
            workloads: HashMap::new(),
            labelled: HashMap::new(),
        }
    }

    /// The assignment for every namespace and its labels (this one is left as it was, so that
    /// the two can be compared).
    pub(crate) fn recompute<L: AsRef<[(String, String)]>>(
        &self,
        namespaces: &BTreeMap<String, L>,
    ) -> Membership {
        let mut workloads: HashMap<String, String> = HashMap::new();
        let mut by_namespace = HashMap::new();
        let mut labelled = HashMap::new();
        // Labelled namespaces first (BTreeMap order: the first namespace names a workload).
        for (ns, labels) in namespaces {
            if let Some(name) = self.detector.labelled_name(
                labels
                    .as_ref()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            ) {
                let id = self.detector.id_of(ns);
                let name = workloads.entry(id.clone()).or_insert(name).clone();
                labelled.insert(ns.clone(), id.clone());
                by_namespace.insert(ns.clone(), self.reuse(ns, WorkloadRef { id, name }));
            }
        }
        // Then namespaces related by name.
        for ns in namespaces.keys() {
            if by_namespace.contains_key(ns) {
                continue;
            }
            let id = self.detector.id_of(ns);
            if let Some(name) = workloads.get(&id) {
                let workload = WorkloadRef {
                    id,
                    name: name.clone(),
                };
                by_namespace.insert(ns.clone(), self.reuse(ns, workload));
            }
        }
        Membership {
            detector: self.detector.clone(),
            by_namespace,
            workloads,
            labelled,
        }
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
        let other_labelled = self
            .labelled
            .iter()
            .any(|(ns, labelled_id)| ns != namespace && *labelled_id == id);
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

    /// Number of distinct workloads.
    #[cfg(test)]
    pub(crate) fn workload_count(&self) -> usize {
        self.workloads.len()
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
    fn losing_the_label_leaves_the_workload() {
        let m = Membership::new(detector(None));
        let m = m.recompute(&namespaces(&[("a", &[(L, "toda-x")])]));
        assert!(m.get("a").is_some());
        let m = m.recompute(&namespaces(&[("a", &[])]));
        assert!(m.get("a").is_none());
    }
}
