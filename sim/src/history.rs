//! The retained event history: one global log (bounded by `history_limit`) indexed per
//! resource and per (resource, namespace), so that a watcher reads only the events it may
//! care about. Watchers pull from here; the store never pushes into watcher buffers.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::event::Event;
use crate::registry::ResourceKey;

/// Events of one index, oldest first, with the RV of the newest event trimmed from it.
#[derive(Debug, Default)]
struct Index {
    events: VecDeque<Arc<Event>>,
    trimmed_upto: u64,
}

impl Index {
    fn pop_if(&mut self, ev: &Arc<Event>) {
        if self.events.front().is_some_and(|f| Arc::ptr_eq(f, ev)) {
            self.events.pop_front();
            self.trimmed_upto = ev.rv;
        }
    }
}

#[derive(Debug, Default)]
struct ResourceIndex {
    all: Index,
    by_namespace: HashMap<String, Index>,
}

/// What a watcher reading after its cursor gets.
#[derive(Debug)]
pub enum Read {
    /// Events after the cursor (at most the requested number), oldest first.
    Events(Vec<Arc<Event>>),
    /// Nothing new; every event up to this RV has been seen.
    UpToDate(u64),
    /// Events after the cursor were trimmed before the watcher read them.
    Lagged,
}

/// The history log.
#[derive(Debug)]
pub struct History {
    limit: usize,
    global: VecDeque<Arc<Event>>,
    per_resource: HashMap<ResourceKey, ResourceIndex>,
    trimmed_upto: u64,
}

impl History {
    /// An empty history keeping at most `limit` events.
    pub fn new(limit: usize) -> History {
        History {
            limit: limit.max(1),
            global: VecDeque::new(),
            per_resource: HashMap::new(),
            trimmed_upto: 0,
        }
    }

    /// Appends a committed event, trimming the oldest ones past the limit.
    pub fn push(&mut self, ev: Arc<Event>) {
        if !self.per_resource.contains_key(&ev.key) {
            self.per_resource
                .insert(ev.key.clone(), ResourceIndex::default());
        }
        if let Some(idx) = self.per_resource.get_mut(&ev.key) {
            idx.all.events.push_back(ev.clone());
            match idx.by_namespace.get_mut(&ev.namespace) {
                Some(ns) => ns.events.push_back(ev.clone()),
                None => {
                    let mut ns = Index::default();
                    ns.events.push_back(ev.clone());
                    idx.by_namespace.insert(ev.namespace.clone(), ns);
                }
            }
        }
        self.global.push_back(ev);
        while self.global.len() > self.limit {
            let Some(old) = self.global.pop_front() else {
                break;
            };
            self.trimmed_upto = old.rv;
            if let Some(idx) = self.per_resource.get_mut(&old.key) {
                idx.all.pop_if(&old);
                if let Some(ns) = idx.by_namespace.get_mut(&old.namespace) {
                    ns.pop_if(&old);
                    if ns.events.is_empty() {
                        idx.by_namespace.remove(&old.namespace);
                    }
                }
            }
        }
    }

    /// The RV of the newest trimmed event: a watch must start at or after it.
    pub fn trimmed_upto(&self) -> u64 {
        self.trimmed_upto
    }

    /// Events of `key` (in `namespace`, or all namespaces) with RV > `cursor`, at most `max`.
    pub fn read(
        &self,
        key: &ResourceKey,
        namespace: Option<&str>,
        cursor: u64,
        max: usize,
        current: u64,
    ) -> Read {
        let Some(res) = self.per_resource.get(key) else {
            return self.missing(cursor, current);
        };
        let index = match namespace {
            Some(ns) => match res.by_namespace.get(ns) {
                Some(i) => i,
                None => return self.missing(cursor, current),
            },
            None => &res.all,
        };
        if cursor < index.trimmed_upto {
            return Read::Lagged;
        }
        let start = index.events.partition_point(|e| e.rv <= cursor);
        if start >= index.events.len() {
            return Read::UpToDate(current);
        }
        Read::Events(index.events.range(start..).take(max).cloned().collect())
    }

    /// An index that does not exist (never written, or fully trimmed): lagged only if the
    /// global trim passed the cursor (its events may have been trimmed).
    fn missing(&self, cursor: u64, current: u64) -> Read {
        if cursor < self.trimmed_upto {
            Read::Lagged
        } else {
            Read::UpToDate(current)
        }
    }

    /// Every retained event with RV > `since`, oldest first.
    pub fn since(&self, since: u64) -> Vec<Arc<Event>> {
        let start = self.global.partition_point(|e| e.rv <= since);
        self.global.range(start..).cloned().collect()
    }

    /// Number of retained events.
    pub fn len(&self) -> usize {
        self.global.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;
    use serde_json::json;

    fn ev(rv: u64, res: &str, ns: &str) -> Arc<Event> {
        Arc::new(Event::new(
            rv,
            EventType::Added,
            ResourceKey::new("", res),
            ns.into(),
            format!("o{rv}"),
            "u".into(),
            Arc::new(json!({})),
            None,
        ))
    }

    #[test]
    fn reads_return_events_after_the_cursor_for_the_index() {
        let mut h = History::new(100);
        h.push(ev(1, "configmaps", "a"));
        h.push(ev(2, "secrets", "a"));
        h.push(ev(3, "configmaps", "b"));
        let key = ResourceKey::new("", "configmaps");
        match h.read(&key, None, 0, 10, 3) {
            Read::Events(e) => assert_eq!(e.iter().map(|e| e.rv).collect::<Vec<_>>(), vec![1, 3]),
            other => panic!("{other:?}"),
        }
        match h.read(&key, Some("b"), 1, 10, 3) {
            Read::Events(e) => assert_eq!(e.len(), 1),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            h.read(&key, Some("a"), 1, 10, 3),
            Read::UpToDate(3)
        ));
    }

    #[test]
    fn trimming_past_a_cursor_reports_lag() {
        let mut h = History::new(2);
        for rv in 1..=4 {
            h.push(ev(rv, "configmaps", "a"));
        }
        assert_eq!(h.len(), 2);
        assert_eq!(h.trimmed_upto(), 2);
        let key = ResourceKey::new("", "configmaps");
        assert!(matches!(h.read(&key, None, 1, 10, 4), Read::Lagged));
        assert!(matches!(h.read(&key, Some("a"), 2, 10, 4), Read::Events(_)));
        assert!(matches!(
            h.read(&ResourceKey::new("", "pods"), None, 1, 10, 4),
            Read::Lagged
        ));
        assert_eq!(h.since(3).len(), 1);
    }
}
