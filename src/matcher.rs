//! The client-side object predicate: what the server cannot filter for faro (regex names,
//! label patterns, the namespace filter of a cluster-wide fallback watch, workload namespaces).
//! Pure; no I/O.

use std::borrow::Cow;

use crate::config::NamespaceFilter;
use crate::selector::{LabelPattern, NamePattern};
use crate::workload::Membership;

/// What the predicate looks at of an object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ObjectView<'o, 'a> {
    /// Its namespace (namespaced objects).
    pub namespace: Option<&'o str>,
    /// Its name.
    pub name: &'o str,
    /// Its labels, when [`Matcher::needs_labels`] (else empty).
    pub labels: &'o [(Cow<'a, str>, Cow<'a, str>)],
}

/// The client-side part of one config entry.
#[derive(Debug, Clone)]
pub(crate) struct EntryFilter {
    /// Namespace filter, when the watch is wider than the entry (cluster-wide fallback).
    pub namespaces: Option<NamespaceFilter>,
    /// Name filters (all must match).
    pub names: Vec<NamePattern>,
    /// Label patterns (all must match).
    pub label_patterns: Vec<LabelPattern>,
}

impl EntryFilter {
    fn matches(&self, object: &ObjectView) -> bool {
        if let Some(filter) = &self.namespaces
            && !object.namespace.is_some_and(|ns| filter.matches(ns))
        {
            return false;
        }
        self.names.iter().all(|n| n.matches(object.name))
            && self
                .label_patterns
                .iter()
                .all(|p| p.matches(object.labels.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))))
    }

    /// What it accepts, as text that is equal for equal filters (a stream's identity across
    /// runs).
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.names.iter().map(NamePattern::describe).collect();
        let labels: Vec<String> = self
            .label_patterns
            .iter()
            .map(|p| format!("{}={}", p.key, p.value.as_str()))
            .collect();
        let namespaces = match &self.namespaces {
            None => String::new(),
            Some(NamespaceFilter::All) => "*".into(),
            Some(NamespaceFilter::Only { exact, patterns }) => {
                let mut all: Vec<String> = exact.iter().cloned().collect();
                all.extend(patterns.iter().map(|p| p.as_str().to_owned()));
                all.join(",")
            }
        };
        format!(
            "names[{}] labels[{}] namespaces[{namespaces}]",
            names.join(","),
            labels.join(",")
        )
    }

    /// Whether it accepts everything its watch delivers.
    pub fn is_trivial(&self) -> bool {
        self.namespaces.is_none() && self.names.is_empty() && self.label_patterns.is_empty()
    }
}

/// Client-side filtering of one stream's objects.
#[derive(Debug)]
pub(crate) enum Matcher {
    /// The config entries the stream serves (by index); an object passes when any accepts it.
    Entries(Vec<(usize, EntryFilter)>),
    /// Namespaces (the objects of `v1/namespaces`) that belong to a workload.
    WorkloadNamespaces,
}

impl Matcher {
    /// What it accepts, as text that is equal for equal matchers (see
    /// [`EntryFilter::describe`]); the entries' order does not matter.
    pub fn describe(&self) -> String {
        match self {
            Matcher::Entries(entries) => {
                let mut all: Vec<String> = entries.iter().map(|(_, e)| e.describe()).collect();
                all.sort();
                all.dedup();
                all.join(" | ")
            }
            Matcher::WorkloadNamespaces => "workload namespaces".into(),
        }
    }

    /// Whether [`Matcher::matches`] looks at labels (decoding them costs on the hot path).
    pub fn needs_labels(&self) -> bool {
        match self {
            Matcher::Entries(entries) => entries.iter().any(|(_, e)| !e.label_patterns.is_empty()),
            Matcher::WorkloadNamespaces => true,
        }
    }

    /// Whether the object passes; pushes the index of every config entry that accepts it onto
    /// `matched`. `membership` is the current workload assignment (workload mode).
    pub fn matches(
        &self,
        object: &ObjectView,
        membership: Option<&Membership>,
        matched: &mut Vec<usize>,
    ) -> bool {
        match self {
            Matcher::Entries(entries) => {
                let before = matched.len();
                matched.extend(
                    entries
                        .iter()
                        .filter(|(_, e)| e.matches(object))
                        .map(|(index, _)| *index),
                );
                matched.len() > before
            }
            Matcher::WorkloadNamespaces => membership.is_some_and(|m| {
                m.classify(
                    object.name,
                    object.labels.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
                )
                .is_some()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_filters_combine_namespaces_names_and_labels() {
        let entry = crate::config::Entry::new("v1/pods".parse().unwrap())
            .namespace("a")
            .unwrap()
            .name_pattern("web-.*")
            .unwrap()
            .label_pattern("app=^nginx-.*$")
            .unwrap();
        let filter = Matcher::Entries(vec![
            (
                3,
                EntryFilter {
                    namespaces: Some(entry.namespaces.clone()),
                    names: entry.names.clone(),
                    label_patterns: entry.label_patterns.clone(),
                },
            ),
            (
                5,
                EntryFilter {
                    namespaces: None,
                    names: vec![NamePattern::new("db-.*").unwrap()],
                    label_patterns: vec![],
                },
            ),
        ]);
        let labels = vec![(Cow::from("app"), Cow::from("nginx-1"))];
        let view = |namespace, name, labels| ObjectView {
            namespace: Some(namespace),
            name,
            labels,
        };
        let mut matched = Vec::new();
        assert!(filter.matches(&view("a", "web-1", &labels), None, &mut matched));
        assert_eq!(matched, [3]);
        matched.clear();
        assert!(!filter.matches(&view("b", "web-1", &labels), None, &mut matched));
        assert!(filter.matches(&view("a", "db-1", &labels), None, &mut matched));
        assert_eq!(matched, [5], "only the entry that accepts it");
        matched.clear();
        assert!(!filter.matches(&view("a", "web-1", &[]), None, &mut matched));
        assert!(matched.is_empty());
        assert!(filter.needs_labels());
    }
}
