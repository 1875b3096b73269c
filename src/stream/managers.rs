//! `changedBy`: which managedFields entry a write created or advanced.
//!
//! kube-apiserver's field manager keeps one `metadata.managedFields` entry per (manager,
//! operation, subresource); a write by a manager records or advances its entry: `time` (to the
//! second) and the `fieldsV1` it owns change. So the entry of the manager that made a change is
//! the one that differs from the previous version's. faro keeps, per object, a 16-bit hash of
//! each of the most recent entries ([`Digest`], 8 bytes, inline in the object's record) and
//! picks the entry whose hash is new (an unchanged entry is never taken for new; a changed one
//! whose hash collides, 4 in 65,536, falls back to the most recent entry, marked ambiguous). When several are new (events in between were not seen,
//! e.g. after a relist or a restart) or none is (two writes of the same fields in one second),
//! the most recent entry wins and the choice is marked ambiguous.
//!
//! On an ADDED event the creating manager is wanted: with one entry, it; with several (an object
//! listed long after its creation), the oldest, marked ambiguous.
//!
//! This names the *field manager*: the client or controller name a request declared
//! (`fieldManager`) or its User-Agent's program name. It is not the authenticated user, which
//! only the audit log records.

use std::borrow::Cow;

/// Entries whose hashes a [`Digest`] keeps: objects rarely have more managers, and when they do
/// the most recent ones are those that change.
const KEPT: usize = 4;

/// Hashes of the most recent managedFields entries of a version, most recent first; 0 is
/// "none".
pub type Digest = [u16; KEPT];

/// One managedFields entry, borrowed from the object's text.
///
/// Read without a JSON parser, on every ADDED and UPDATED event: the object scanner's pass
/// over the metadata delimits each entry and notes where its top-level string members
/// (`manager`, `operation`, `subresource`, `time`) are; `fieldsV1` is only skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManagedEntry<'a> {
    /// The entry's JSON text, `{` to `}`.
    text: &'a [u8],
    /// The raw (still escaped) string members.
    manager: Option<&'a [u8]>,
    operation: Option<&'a [u8]>,
    subresource: Option<&'a [u8]>,
    /// When the entry last changed, to the second (absent on `/scale` entries).
    time: Option<&'a str>,
    /// A hash of `text`.
    hash: u16,
}

impl<'a> ManagedEntry<'a> {
    /// An entry of JSON text `text` whose string members (raw, still escaped) are these.
    pub(super) fn new(
        text: &'a [u8],
        manager: Option<&'a [u8]>,
        operation: Option<&'a [u8]>,
        subresource: Option<&'a [u8]>,
        time: Option<&'a [u8]>,
    ) -> ManagedEntry<'a> {
        let h = crc32fast::hash(text);
        ManagedEntry {
            text,
            manager,
            operation,
            subresource,
            time: time.and_then(|t| std::str::from_utf8(t).ok()),
            hash: ((h ^ (h >> 16)) as u16).max(1),
        }
    }

    /// The field manager.
    pub fn manager(&self) -> Cow<'a, str> {
        unescape(self.manager).unwrap_or_default()
    }

    /// `Update` or `Apply`.
    pub fn operation(&self) -> Cow<'a, str> {
        unescape(self.operation).unwrap_or_default()
    }

    /// `status`, `scale`, or none.
    pub fn subresource(&self) -> Option<Cow<'a, str>> {
        unescape(self.subresource).filter(|s| !s.is_empty())
    }

    /// When the entry last changed.
    pub fn time(&self) -> Option<&'a str> {
        self.time
    }

    /// A hash of the entry's text: it changes with its time or its fields (never 0).
    fn hash(&self) -> u16 {
        self.hash
    }

    fn time_text(&self) -> &str {
        self.time.unwrap_or("")
    }
}

/// A raw JSON string's contents, unescaped.
fn unescape(raw: Option<&[u8]>) -> Option<Cow<'_, str>> {
    let raw = std::str::from_utf8(raw?).ok()?;
    if raw.contains('\\') {
        serde_json::from_str::<String>(&format!("\"{raw}\""))
            .ok()
            .map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(raw))
    }
}

/// The entries of a `managedFields` array (`None` when it is not an array of objects).
pub fn entries(raw: &str) -> Option<Vec<ManagedEntry<'_>>> {
    let (out, end) = super::parse::managed_fields(raw.as_bytes(), 0)?;
    raw[end..].trim().is_empty().then_some(out)
}

/// The digest of a version's entries.
pub fn digest(entries: &[ManagedEntry]) -> Digest {
    // Most recent first: entries without a time (scale writes) may be recent, so they come
    // first; RFC 3339 times of one format sort as text. An insertion into KEPT slots: no
    // allocation on this path, which every event takes.
    let mut top: [Option<&ManagedEntry>; KEPT] = [None; KEPT];
    let newer = |a: &ManagedEntry, b: &ManagedEntry| {
        (a.time.is_none(), a.time_text()) > (b.time.is_none(), b.time_text())
    };
    for entry in entries {
        let mut slot = KEPT;
        for (i, kept) in top.iter().enumerate() {
            if kept.is_none_or(|k| newer(entry, k)) {
                slot = i;
                break;
            }
        }
        if slot < KEPT {
            top[slot..].rotate_right(1);
            top[slot] = Some(entry);
        }
    }
    top.map(|e| e.map_or(0, ManagedEntry::hash))
}

/// Which entry made this version, and whether that is a guess: `added` for an ADDED event,
/// else against the previous version's digest (all zero when unknown); `gap` when versions
/// may have been missed since that one (a relist).
///
/// An entry can differ from the previous version's without its manager having written: a
/// write that takes fields over from another manager shrinks that manager's entry, whose time
/// stays. So of the entries that differ, the writer's is the one without a time (the apiserver
/// records none for `/scale` writes) or else the one with the newest time. After a gap,
/// several entries may have advanced in versions faro did not see: the newest wins, marked
/// ambiguous.
pub fn changed_by(
    entries: &[ManagedEntry],
    added: bool,
    previous: &Digest,
    gap: bool,
) -> Option<(usize, bool)> {
    if entries.is_empty() {
        return None;
    }
    let all = 0..entries.len();
    let latest = |candidates: &mut dyn Iterator<Item = usize>| {
        candidates.max_by(|&a, &b| entries[a].time_text().cmp(entries[b].time_text()))
    };
    if added {
        // The creator's entry is the oldest one with a time (entries without one are scale
        // writes, which come later).
        let oldest = all
            .clone()
            .filter(|&i| entries[i].time.is_some())
            .min_by(|&a, &b| entries[a].time_text().cmp(entries[b].time_text()))
            .unwrap_or(0);
        return Some((oldest, entries.len() > 1));
    }
    // Counted over the entries again rather than collected: no allocation per event.
    let fresh = |i: &usize| !previous.contains(&entries[*i].hash);
    let fresh_count = all.clone().filter(fresh).count();
    let unknown = gap || previous.iter().all(|&h| h == 0);
    let timeless = all.clone().filter(fresh).any(|i| entries[i].time.is_none());
    let newest = all
        .clone()
        .filter(fresh)
        .map(|i| entries[i].time_text())
        .max();
    let candidate = |i: &usize| {
        fresh(i)
            && if timeless {
                entries[*i].time.is_none()
            } else {
                Some(entries[*i].time_text()) == newest
            }
    };
    match all.clone().filter(candidate).count() {
        0 => latest(&mut all.clone()).map(|i| (i, true)),
        1 => all
            .clone()
            .find(candidate)
            .map(|i| (i, unknown && fresh_count > 1)),
        _ => latest(&mut all.clone().filter(candidate)).map(|i| (i, true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"[{"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"apps/v1","time":"2026-12-02T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:replicas":{}}}},{"manager":"kube-controller-manager","operation":"Update","apiVersion":"apps/v1","time":"2026-12-02T10:00:01Z","fieldsType":"FieldsV1","fieldsV1":{"f:status":{}},"subresource":"status"}]"#;

    fn pick(raw: &str, added: bool, previous: &Digest) -> Option<(String, bool)> {
        let entries = entries(raw)?;
        changed_by(&entries, added, previous, false)
            .map(|(i, ambiguous)| (entries[i].manager().to_string(), ambiguous))
    }

    #[test]
    fn the_entry_that_advanced_made_the_change() {
        let before = digest(&entries(V1).unwrap());
        // kubectl scale: the client's entry gets a new time (and here the same fields).
        let scaled = V1.replace("10:00:00Z", "10:05:00Z");
        assert_eq!(
            pick(&scaled, false, &before),
            Some(("kubectl-client-side-apply".into(), false))
        );
        // The controller writes status: its entry's fields change within the same second.
        let status = V1.replace(r#"{"f:status":{}}"#, r#"{"f:status":{"f:replicas":{}}}"#);
        assert_eq!(
            pick(&status, false, &before),
            Some(("kube-controller-manager".into(), false))
        );
        // A new manager.
        let labelled = V1.replace(
            "]",
            r#",{"manager":"kubectl-label","operation":"Update","apiVersion":"apps/v1","time":"2026-12-02T10:09:00Z","fieldsV1":{"f:metadata":{}}}]"#,
        );
        assert_eq!(
            pick(&labelled, false, &before),
            Some(("kubectl-label".into(), false))
        );
    }

    #[test]
    fn an_entry_that_only_lost_fields_did_not_write() {
        // kubectl scale takes spec.replicas from the client-side apply entry (which shrinks,
        // its time unchanged) and records a scale entry without a time.
        let before = digest(&entries(V1).unwrap());
        let scaled = V1.replace(r#"{"f:spec":{"f:replicas":{}}}"#, r#"{"f:spec":{"f:paused":{}}}"#).replace(
            "]",
            r#",{"manager":"kubectl","operation":"Update","apiVersion":"autoscaling/v1","fieldsV1":{"f:spec":{"f:replicas":{}}},"subresource":"scale"}]"#,
        );
        assert_eq!(
            pick(&scaled, false, &before),
            Some(("kubectl".into(), false))
        );
        // An editor takes them from the controller: the newest entry is the writer's.
        let edited = V1.replace(r#"{"f:status":{}}"#, r#"{"f:status":{"f:x":{}}}"#).replace(
            "]",
            r#",{"manager":"kubectl-edit","operation":"Update","apiVersion":"apps/v1","time":"2026-12-02T10:07:00Z","fieldsV1":{"f:status":{}}}]"#,
        );
        assert_eq!(
            pick(&edited, false, &before),
            Some(("kubectl-edit".into(), false))
        );
    }

    #[test]
    fn several_or_no_new_entries_are_a_marked_guess_for_the_latest() {
        let both = V1
            .replace("10:00:00Z", "10:05:00Z")
            .replace("10:00:01Z", "10:05:01Z");
        let before = digest(&entries(V1).unwrap());
        let list = entries(&both).unwrap();
        let (i, ambiguous) = changed_by(&list, false, &before, true).unwrap();
        assert_eq!(
            (list[i].manager().as_ref(), ambiguous),
            ("kube-controller-manager", true),
            "after a gap"
        );
        let (i, ambiguous) = changed_by(&list, false, &before, false).unwrap();
        assert_eq!(
            (list[i].manager().as_ref(), ambiguous),
            ("kube-controller-manager", false),
            "the newest wrote"
        );
        let same_second = V1
            .replace("10:00:00Z", "10:05:01Z")
            .replace("10:00:01Z", "10:05:01Z");
        assert_eq!(
            pick(&same_second, false, &before).map(|p| p.1),
            Some(true),
            "two entries advanced in one second"
        );
        assert_eq!(
            pick(V1, false, &before),
            Some(("kube-controller-manager".into(), true)),
            "nothing advanced: the latest, ambiguous"
        );
        assert_eq!(
            pick(V1, false, &[0; KEPT]),
            Some(("kube-controller-manager".into(), true)),
            "no previous version known"
        );
    }

    #[test]
    fn added_names_the_creator() {
        let one = r#"[{"manager":"kubectl-create","operation":"Update","time":"2026-12-02T10:00:00Z","fieldsV1":{}}]"#;
        assert_eq!(
            pick(one, true, &[0; KEPT]),
            Some(("kubectl-create".into(), false))
        );
        assert_eq!(
            pick(V1, true, &[0; KEPT]),
            Some(("kubectl-client-side-apply".into(), true))
        );
        assert_eq!(pick("[]", true, &[0; KEPT]), None);
        assert!(entries("[{").is_none());
        assert!(entries("[1]").is_none());
        assert!(entries("{}").is_none());
    }

    #[test]
    fn members_are_read_from_the_top_level_of_an_entry() {
        let raw = r#" [ {"fieldsV1":{"f:manager":{},"k:{\"manager\":\"x\"}":{},"f:data":{"f:time":{}}},"manager":"ci \"bot\"","operation":"Apply","time":"2026-12-02T10:00:00Z"} , {"manager":"kubectl","operation":"Update","subresource":"scale","fieldsV1":{"f:spec":{"f:replicas":{}}}}]"#;
        let list = entries(raw).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].manager(), "ci \"bot\"");
        assert_eq!(list[0].operation(), "Apply");
        assert_eq!(list[0].time(), Some("2026-12-02T10:00:00Z"));
        assert_eq!(list[0].subresource(), None);
        assert_eq!(list[1].manager(), "kubectl");
        assert_eq!(list[1].subresource().as_deref(), Some("scale"));
        assert_eq!(list[1].time(), None);
        assert_eq!(entries("[]").unwrap().len(), 0);
    }

    #[test]
    fn digests_keep_the_most_recent_entries() {
        let many: Vec<String> = (0..6)
            .map(|i| {
                format!(
                    r#"{{"manager":"m{i}","operation":"Update","time":"2026-12-02T10:00:0{i}Z","fieldsV1":{{}}}}"#
                )
            })
            .collect();
        let raw = format!("[{}]", many.join(","));
        let list = entries(&raw).unwrap();
        let d = digest(&list);
        assert_eq!(d[0], list[5].hash());
        assert_eq!(d[3], list[2].hash());
        assert!(d.iter().all(|&h| h != 0));
    }
}
