//! Snapshots of the streams' state for a checkpoint (see `crate::checkpoint` for the file):
//! every object set is locked while it is read, so that its objects, the resume points of its
//! streams and their counts of batches built agree.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::gvr::Gvr;

use super::state::{IdMap, ObjectSet, StreamId, TrackedView, write_number};

/// Where a snapshot was taken in the handler's output file: its length then.
#[derive(serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct OutputMark {
    /// The file.
    pub path: std::path::PathBuf,
    /// Its length when the snapshot was taken.
    pub offset: u64,
}

/// A snapshot on its way to the consumer, written once every batch it covers is delivered.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The body, serialised.
    pub body: Vec<u8>,
    /// Per stream (by this run's stream id), the batches built when it was taken.
    pub built: HashMap<StreamId, u64>,
    /// Taken when the watcher stopped.
    pub last: bool,
}

/// A stream as a snapshot sees it.
pub(crate) struct SnapshotStream {
    pub id: StreamId,
    pub identity: Arc<str>,
}

/// Serialises a snapshot of the given streams over their GVRs' object sets (each locked while
/// it is read, so that objects and resume points agree).
pub(crate) fn snapshot(
    streams: &[SnapshotStream],
    sets: &[(Gvr, Arc<Mutex<ObjectSet>>)],
    output: Option<OutputMark>,
    last: bool,
) -> Snapshot {
    let index: IdMap<usize> = streams.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    let mut built = HashMap::new();
    let mut rvs: Vec<Option<String>> = vec![None; streams.len()];
    // Key order does not matter to a reader: the objects come first, so that the streams'
    // resume points, read with them, can follow without a second buffer.
    let mut body = Vec::new();
    body.extend_from_slice(b"{\"written\":");
    json_str(
        &mut body,
        &humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    );
    if let Some(mark) = &output {
        body.extend_from_slice(b",\"output\":{\"path\":");
        json_str(&mut body, &mark.path.to_string_lossy());
        body.extend_from_slice(b",\"offset\":");
        write_number(&mut body, mark.offset);
        body.push(b'}');
    }
    body.extend_from_slice(b",\"objects\":[");
    let mut first_gvr = true;
    for (gvr, set) in sets {
        let set = set.lock().unwrap_or_else(|e| e.into_inner());
        for (id, progress) in set.progress() {
            built.insert(*id, progress.built);
            if let Some(&i) = index.get(id) {
                rvs[i] = progress.rv.clone();
            }
        }
        let saved = |t: &TrackedView| {
            index.contains_key(&t.first_holder)
                || t.more_holders.iter().any(|h| index.contains_key(h))
        };
        // In the set's own order (sorting, or grouping by namespace, would visit the entries in
        // a random order of memory: a cache miss each); namespaces are indexes into a table.
        let mut namespaces: IdMap<u32> = IdMap::default();
        let mut names_table: Vec<Option<&str>> = Vec::new();
        let mut wrote_any = false;
        for t in set.tracked().filter(saved) {
            if !wrote_any {
                if !first_gvr {
                    body.push(b',');
                }
                first_gvr = false;
                body.reserve(set_len_hint(&set) * 72);
                body.extend_from_slice(b"{\"gvr\":");
                json_str(&mut body, &gvr.to_string());
                body.extend_from_slice(b",\"objects\":[");
                wrote_any = true;
            } else {
                body.push(b',');
            }
            let ns = *namespaces.entry(t.namespace_index).or_insert_with(|| {
                names_table.push(t.namespace);
                (names_table.len() - 1) as u32
            });
            body.push(b'[');
            json_str(&mut body, t.name);
            body.extend_from_slice(b",\"");
            t.uid.write_to(&mut body);
            body.extend_from_slice(b"\",\"");
            t.rv.write_to(&mut body);
            body.extend_from_slice(b"\",");
            write_number(&mut body, u64::from(ns));
            body.extend_from_slice(b",[");
            let mut first = true;
            for holder in std::iter::once(&t.first_holder).chain(t.more_holders) {
                if let Some(&i) = index.get(holder) {
                    if !first {
                        body.push(b',');
                    }
                    first = false;
                    write_number(&mut body, i as u64);
                }
            }
            body.extend_from_slice(b"]]");
        }
        if !wrote_any {
            continue;
        }
        body.extend_from_slice(b"],\"namespaces\":[");
        for (i, ns) in names_table.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            match ns {
                Some(ns) => json_str(&mut body, ns),
                None => body.extend_from_slice(b"null"),
            }
        }
        body.extend_from_slice(b"]}");
    }
    body.extend_from_slice(b"],\"streams\":[");
    for (i, stream) in streams.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"id\":");
        json_str(&mut body, &stream.identity);
        body.extend_from_slice(b",\"rv\":");
        match &rvs[i] {
            Some(rv) => json_str(&mut body, rv),
            None => body.extend_from_slice(b"null"),
        }
        body.push(b'}');
    }
    body.extend_from_slice(b"]}");
    Snapshot { body, built, last }
}

/// About how many objects a set holds.
fn set_len_hint(set: &ObjectSet) -> usize {
    set.tracked_len()
}

/// A JSON string; names and uids almost never need escaping, so they are copied as they are.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::stream::state::{Rv, Uid};

    #[test]
    fn a_snapshot_reads_back_as_the_objects_each_stream_holds_with_their_resume_points() {
        let gvr: Gvr = "v1/configmaps".parse().unwrap();
        let mut set = ObjectSet::default();
        set.seed(1, Uid::parse("u-a"), Rv::Num(5), Some("ns"), "a");
        set.seed(1, Uid::parse("u-b"), Rv::Num(7), Some("ns"), "b\"quoted");
        set.seed(2, Uid::parse("u-b"), Rv::Num(7), Some("ns"), "b\"quoted");
        set.seed(2, Uid::parse("u-c"), Rv::Num(9), None, "c");
        set.seed(
            3,
            Uid::parse("u-gone"),
            Rv::Num(9),
            None,
            "of a stream not saved",
        );
        set.note_progress(1, Some("10"), true);
        set.note_progress(2, Some("11"), false);
        set.note_progress(2, None, true);
        let streams = [
            SnapshotStream {
                id: 1,
                identity: Arc::from("v1/configmaps|ns|||all"),
            },
            SnapshotStream {
                id: 2,
                identity: Arc::from("v1/configmaps||||all"),
            },
        ];
        let snap = snapshot(&streams, &[(gvr, Arc::new(Mutex::new(set)))], None, false);
        assert_eq!((snap.built[&1], snap.built[&2]), (1, 1));
        let d = tempfile::tempdir().unwrap();
        let checkpoint = Checkpoint::file(d.path().join("state"), "c");
        checkpoint.write(&snap.body).unwrap();
        let saved = checkpoint.load().unwrap().unwrap();
        let a = &saved.streams["v1/configmaps|ns|||all"];
        assert_eq!(a.rv.as_deref(), Some("10"));
        assert_eq!(a.objects.len(), 2);
        let b = &saved.streams["v1/configmaps||||all"];
        assert_eq!(b.rv.as_deref(), Some("11"));
        assert_eq!(b.objects.len(), 2);
        assert!(
            saved
                .streams
                .values()
                .all(|s| s.objects.iter().all(|o| o.uid != Uid::parse("u-gone"))),
            "only the objects of the streams asked for"
        );
    }
}
