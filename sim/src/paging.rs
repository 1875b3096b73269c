//! Paged lists (`limit`/`continue`): the first page snapshots the whole matching result set
//! and its resourceVersion; later pages are served from that snapshot, so every page carries
//! the same RV (k8s-protocol.md §2.3). Tokens expire after five minutes, like etcd's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::event::Event;
use crate::registry::ResourceKey;

const TOKEN_TTL: Duration = Duration::from_secs(300);
const MAX_SNAPSHOTS: usize = 1024;

/// A list result set frozen at its first page.
#[derive(Debug)]
pub struct Snapshot {
    /// The resource listed.
    pub key: ResourceKey,
    /// RV of the first page.
    pub rv: u64,
    /// Matching objects.
    pub items: Vec<Arc<Event>>,
    /// Whether a selector filtered the set (then `remainingItemCount` is not sent).
    pub filtered: bool,
    created: Instant,
}

/// The open snapshots.
#[derive(Debug, Default)]
pub struct Pages {
    next: Mutex<u64>,
    snapshots: Mutex<HashMap<u64, Arc<Snapshot>>>,
}

/// One page cut from a snapshot.
#[derive(Debug)]
pub struct Page {
    /// Items of this page.
    pub items: Vec<Arc<Event>>,
    /// Token for the next page, if any.
    pub continue_token: Option<String>,
    /// Items after this page (unfiltered lists only).
    pub remaining: Option<usize>,
    /// The snapshot's RV.
    pub rv: u64,
}

impl Pages {
    /// Stores a snapshot and cuts its first page.
    pub fn first(
        &self,
        key: ResourceKey,
        rv: u64,
        items: Vec<Arc<Event>>,
        filtered: bool,
        limit: usize,
    ) -> Page {
        if items.len() <= limit {
            return Page {
                items,
                continue_token: None,
                remaining: None,
                rv,
            };
        }
        let id = {
            let mut n = self.next.lock();
            *n += 1;
            *n
        };
        let snap = Arc::new(Snapshot {
            key,
            rv,
            items,
            filtered,
            created: Instant::now(),
        });
        {
            let mut m = self.snapshots.lock();
            m.retain(|_, s| s.created.elapsed() < TOKEN_TTL);
            if m.len() >= MAX_SNAPSHOTS
                && let Some(oldest) = m.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k)
            {
                m.remove(&oldest);
            }
            m.insert(id, snap.clone());
        }
        cut(id, &snap, 0, limit)
    }

    /// Serves the page a continue token points at; None if it expired or is unknown.
    pub fn next(&self, key: &ResourceKey, token: &str, limit: usize) -> Option<Page> {
        let (id, offset) = parse_token(token)?;
        let snap = self.snapshots.lock().get(&id).cloned()?;
        if &snap.key != key || snap.created.elapsed() >= TOKEN_TTL {
            return None;
        }
        let page = cut(id, &snap, offset, limit);
        if page.continue_token.is_none() {
            // Last page served: release the snapshot (and the old objects it keeps alive).
            self.snapshots.lock().remove(&id);
        }
        Some(page)
    }
}

fn cut(id: u64, snap: &Snapshot, offset: usize, limit: usize) -> Page {
    let end = offset.saturating_add(limit).min(snap.items.len());
    let items = snap
        .items
        .get(offset..end)
        .map(<[_]>::to_vec)
        .unwrap_or_default();
    let more = end < snap.items.len();
    Page {
        items,
        continue_token: more.then(|| format!("ks1.{id}.{end}")),
        remaining: (more && !snap.filtered).then(|| snap.items.len() - end),
        rv: snap.rv,
    }
}

fn parse_token(token: &str) -> Option<(u64, usize)> {
    let mut parts = token.split('.');
    if parts.next()? != "ks1" {
        return None;
    }
    let id = parts.next()?.parse().ok()?;
    let offset = parts.next()?.parse().ok()?;
    Some((id, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;
    use serde_json::json;

    fn items(n: u64) -> Vec<Arc<Event>> {
        (1..=n)
            .map(|rv| {
                Arc::new(Event::new(
                    rv,
                    EventType::Added,
                    ResourceKey::new("", "configmaps"),
                    "a".into(),
                    format!("c{rv}"),
                    "u".into(),
                    Arc::new(json!({})),
                    None,
                ))
            })
            .collect()
    }

    #[test]
    fn pages_share_the_snapshot_rv_and_end_without_a_token() {
        let pages = Pages::default();
        let key = ResourceKey::new("", "configmaps");
        let p1 = pages.first(key.clone(), 9, items(5), false, 2);
        assert_eq!(p1.items.len(), 2);
        assert_eq!(p1.remaining, Some(3));
        let t = p1.continue_token.expect("more");
        let p2 = pages.next(&key, &t, 2).expect("page 2");
        assert_eq!(p2.rv, 9);
        let p3 = pages
            .next(&key, &p2.continue_token.expect("more"), 2)
            .expect("page 3");
        assert_eq!(p3.items.len(), 1);
        assert!(p3.continue_token.is_none());
        assert!(
            pages.next(&key, &t, 2).is_none(),
            "released after the last page"
        );
    }

    #[test]
    fn unknown_tokens_are_rejected() {
        let pages = Pages::default();
        let key = ResourceKey::new("", "configmaps");
        assert!(pages.next(&key, "garbage", 2).is_none());
        assert!(pages.next(&key, "ks1.99.0", 2).is_none());
        let p = pages.first(key.clone(), 1, items(3), true, 1);
        assert_eq!(p.remaining, None);
        assert!(
            pages
                .next(
                    &ResourceKey::new("", "secrets"),
                    &p.continue_token.expect("token"),
                    1
                )
                .is_none()
        );
    }
}
