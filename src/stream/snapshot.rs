//! Snapshots of the streams' state for a checkpoint (see `crate::checkpoint` for the file):
//! every object set is locked while it is read, so that its objects, the resume points of its
//! streams and their counts of batches built agree.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::checkpoint::{OutputMark, Snapshot};
use crate::gvr::Gvr;

use super::state::{ObjectSet, StreamId, Uid};

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
    let index: HashMap<StreamId, usize> =
        streams.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    let mut built = HashMap::new();
    let mut rvs: Vec<Option<String>> = vec![None; streams.len()];
    let mut objects = Vec::new();
    objects.extend_from_slice(b"[");
    let mut first_gvr = true;
    for (gvr, set) in sets {
        let set = set.lock().unwrap_or_else(|e| e.into_inner());
        for (id, progress) in set.progress() {
            built.insert(*id, progress.built);
            if let Some(&i) = index.get(id) {
                rvs[i] = progress.rv.clone();
            }
        }
        // Objects grouped by namespace.
        let mut tracked: Vec<_> = set
            .tracked()
            .filter(|t| {
                index.contains_key(&t.first_holder)
                    || t.more_holders.iter().any(|h| index.contains_key(h))
            })
            .collect();
        if tracked.is_empty() {
            continue;
        }
        tracked.sort_unstable_by(|a, b| a.namespace.cmp(&b.namespace));
        if !first_gvr {
            objects.push(b',');
        }
        first_gvr = false;
        objects.extend_from_slice(b"{\"gvr\":");
        json_str(&mut objects, &gvr.to_string());
        objects.extend_from_slice(b",\"namespaces\":[");
        let mut current: Option<Option<&str>> = None;
        for t in &tracked {
            if current != Some(t.namespace) {
                if current.is_some() {
                    objects.extend_from_slice(b"]},");
                }
                objects.extend_from_slice(b"{\"namespace\":");
                match t.namespace {
                    Some(ns) => json_str(&mut objects, ns),
                    None => objects.extend_from_slice(b"null"),
                }
                objects.extend_from_slice(b",\"objects\":[");
                current = Some(t.namespace);
            } else {
                objects.push(b',');
            }
            objects.push(b'[');
            json_str(&mut objects, t.name);
            objects.push(b',');
            json_str(&mut objects, &Uid::to_string(t.uid));
            objects.push(b',');
            json_str(&mut objects, &t.rv.to_string());
            objects.extend_from_slice(b",[");
            let mut first = true;
            for holder in std::iter::once(&t.first_holder).chain(t.more_holders) {
                if let Some(i) = index.get(holder) {
                    if !first {
                        objects.push(b',');
                    }
                    first = false;
                    objects.extend_from_slice(i.to_string().as_bytes());
                }
            }
            objects.extend_from_slice(b"]]");
        }
        objects.extend_from_slice(b"]}]}");
    }
    objects.extend_from_slice(b"]");

    let mut body = Vec::with_capacity(objects.len() + 256 * streams.len() + 256);
    body.extend_from_slice(b"{\"written\":");
    json_str(
        &mut body,
        &humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    );
    if let Some(mark) = &output {
        body.extend_from_slice(b",\"output\":{\"path\":");
        json_str(&mut body, &mark.path.to_string_lossy());
        body.extend_from_slice(format!(",\"offset\":{}}}", mark.offset).as_bytes());
    }
    body.extend_from_slice(b",\"streams\":[");
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
    body.extend_from_slice(b"],\"objects\":");
    body.extend_from_slice(&objects);
    body.push(b'}');
    Snapshot { body, built, last }
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::stream::state::Rv;

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
                .all(|s| s.objects.iter().all(|o| o.uid != "u-gone")),
            "only the objects of the streams asked for"
        );
    }
}
