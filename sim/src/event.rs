//! Committed changes. Each event owns its watch line (`{"type":…,"object":…}\n`), serialized
//! once at commit and shared as `Bytes` by every watcher, list and history reader; the stored
//! object of a resource is the last ADDED/MODIFIED event that wrote it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};

use crate::registry::ResourceKey;

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created (or entered a watcher's selector).
    Added,
    /// Updated.
    Modified,
    /// Deleted (or left a watcher's selector).
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }

    /// `{"type":"…","object":` — what precedes the object on a watch line.
    pub fn prefix(self) -> &'static [u8] {
        match self {
            EventType::Added => br#"{"type":"ADDED","object":"#,
            EventType::Modified => br#"{"type":"MODIFIED","object":"#,
            EventType::Deleted => br#"{"type":"DELETED","object":"#,
        }
    }
}

/// What follows the object on a watch line.
pub const SUFFIX: &[u8] = b"}\n";

/// A watch line stored as a range of a (possibly shared) buffer, so that lines serialized
/// back to back (pre-rendered bursts) can be sent as one zero-copy slice.
#[derive(Debug, Clone)]
pub struct Line {
    /// The buffer holding the line.
    pub buf: Bytes,
    /// Start offset of the line in `buf`.
    pub start: usize,
    /// End offset (exclusive, after the `\n`).
    pub end: usize,
}

impl Line {
    /// The line as its own `Bytes` (no copy).
    pub fn bytes(&self) -> Bytes {
        self.buf.slice(self.start..self.end)
    }
}

/// One committed change.
#[derive(Debug)]
pub struct Event {
    /// The resourceVersion this change committed at.
    pub rv: u64,
    /// ADDED, MODIFIED or DELETED.
    pub etype: EventType,
    /// The resource.
    pub key: ResourceKey,
    /// Namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// Object uid.
    pub uid: String,
    /// The object after the change (for DELETED: its last state with the deletion's RV),
    /// without its `metadata.managedFields` when `managed_fields` holds them.
    pub object: Arc<Value>,
    /// The object before the change (MODIFIED only), for selector enter/leave decisions
    /// (likewise without `prev_managed_fields`).
    pub prev: Option<Arc<Value>>,
    /// The serialized watch line (managedFields included).
    pub line: Line,
    /// The object's `metadata.managedFields`, kept apart and shared: objects written in the
    /// same second by the same managers (bulk loads, churn) hold one copy. The line has them;
    /// [`Event::full_object`] puts them back.
    pub managed_fields: Option<Arc<Value>>,
    /// The same for `prev`.
    pub prev_managed_fields: Option<Arc<Value>>,
    /// Wall-clock commit time, nanoseconds since the epoch (settable through an `Arc`, so
    /// pre-rendered events get stamped when they are finally committed).
    time_ns: AtomicU64,
    leave_line: OnceLock<Bytes>,
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `object` with `managed` as its `metadata.managedFields` (itself when there are none).
fn with_managed(object: &Arc<Value>, managed: Option<&Arc<Value>>) -> Arc<Value> {
    match managed {
        None => object.clone(),
        Some(mf) => {
            let mut obj = (**object).clone();
            crate::object::meta_mut(&mut obj).insert("managedFields".into(), (**mf).clone());
            Arc::new(obj)
        }
    }
}

/// Serializes one watch line.
pub fn render_line(etype: EventType, object: &Value) -> Bytes {
    render_line_with(etype, object, None)
}

/// Serializes one watch line whose object carries `managed_fields` (when given).
pub fn render_line_with(etype: EventType, object: &Value, managed_fields: Option<&Value>) -> Bytes {
    let mut buf = BytesMut::with_capacity(256).writer();
    let _ = std::io::Write::write_all(&mut buf, etype.prefix());
    // Serializing a Value into memory cannot fail.
    let _ = serde_json::to_writer(
        &mut buf,
        &crate::object::WithManagedFields {
            object,
            managed_fields,
        },
    );
    let _ = std::io::Write::write_all(&mut buf, SUFFIX);
    buf.into_inner().freeze()
}

impl Event {
    /// Builds an event and serializes its line (the object keeps any managedFields inline).
    #[cfg(test)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rv: u64,
        etype: EventType,
        key: ResourceKey,
        namespace: String,
        name: String,
        uid: String,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) -> Event {
        Event::with_managed_fields(
            rv, etype, key, namespace, name, uid, object, None, prev, None,
        )
    }

    /// Builds an event around a line serialized in advance.
    #[allow(clippy::too_many_arguments)]
    pub fn with_line(
        rv: u64,
        etype: EventType,
        key: ResourceKey,
        namespace: String,
        name: String,
        uid: String,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
        line: Line,
    ) -> Event {
        Event {
            rv,
            etype,
            key,
            namespace,
            name,
            uid,
            object,
            prev,
            line,
            managed_fields: None,
            prev_managed_fields: None,
            time_ns: AtomicU64::new(nanos(SystemTime::now())),
            leave_line: OnceLock::new(),
        }
    }

    /// Builds an event whose object's managedFields (and its previous object's) are kept
    /// apart from it; the line is rendered with them.
    #[allow(clippy::too_many_arguments)]
    pub fn with_managed_fields(
        rv: u64,
        etype: EventType,
        key: ResourceKey,
        namespace: String,
        name: String,
        uid: String,
        object: Arc<Value>,
        managed_fields: Option<Arc<Value>>,
        prev: Option<Arc<Value>>,
        prev_managed_fields: Option<Arc<Value>>,
    ) -> Event {
        let buf = render_line_with(etype, &object, managed_fields.as_deref());
        let end = buf.len();
        let mut ev = Event::with_line(
            rv,
            etype,
            key,
            namespace,
            name,
            uid,
            object,
            prev,
            Line { buf, start: 0, end },
        );
        ev.managed_fields = managed_fields;
        ev.prev_managed_fields = prev_managed_fields;
        ev
    }

    /// The object as served, `metadata.managedFields` included.
    pub fn full_object(&self) -> Arc<Value> {
        with_managed(&self.object, self.managed_fields.as_ref())
    }

    /// The previous object (MODIFIED only) as it was served.
    pub fn full_prev(&self) -> Option<Arc<Value>> {
        self.prev
            .as_ref()
            .map(|p| with_managed(p, self.prev_managed_fields.as_ref()))
    }

    /// The object's managedFields, wherever they are kept.
    pub fn managed_fields(&self) -> Option<&Value> {
        self.managed_fields
            .as_deref()
            .or_else(|| self.object.pointer("/metadata/managedFields"))
    }

    /// Wall-clock commit time.
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.time_ns.load(Ordering::Relaxed))
    }

    /// Stamps the commit time.
    pub fn set_time(&self, t: SystemTime) {
        self.time_ns.store(nanos(t), Ordering::Relaxed);
    }

    /// The object's JSON (a zero-copy slice of the line).
    pub fn object_bytes(&self) -> Bytes {
        let p = self.etype.prefix().len();
        self.line
            .buf
            .slice(self.line.start + p..self.line.end - SUFFIX.len())
    }

    /// The line re-typed (`ADDED` for an update that entered a watcher's selector).
    pub fn line_as(&self, etype: EventType) -> Bytes {
        if etype == self.etype {
            return self.line.bytes();
        }
        let obj = self.object_bytes();
        let mut b = BytesMut::with_capacity(obj.len() + 32);
        b.put_slice(etype.prefix());
        b.put_slice(&obj);
        b.put_slice(SUFFIX);
        b.freeze()
    }

    /// The DELETED line a watcher gets when this update takes the object out of its selector:
    /// the previous content with this event's resourceVersion (apiserver `cache_watcher.go`).
    pub fn leave_line(&self) -> Bytes {
        self.leave_line
            .get_or_init(|| {
                let mut prev =
                    Arc::unwrap_or_clone(self.full_prev().unwrap_or_else(|| self.full_object()));
                prev["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                render_line(EventType::Deleted, &prev)
            })
            .clone()
    }

    /// The `apiVersion` the object was written with.
    pub fn api_version(&self) -> &str {
        self.object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The line for a watcher of another version of the same resource: the object is
    /// re-rendered with that `apiVersion` (no schema conversion).
    pub fn line_for_version(&self, etype: EventType, api_version: &str) -> Bytes {
        let mut obj = match etype {
            EventType::Deleted if self.etype == EventType::Modified => {
                let mut p =
                    Arc::unwrap_or_clone(self.full_prev().unwrap_or_else(|| self.full_object()));
                p["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                p
            }
            _ => Arc::unwrap_or_clone(self.full_object()),
        };
        obj["apiVersion"] = json!(api_version);
        render_line(etype, &obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(etype: EventType, obj: Value, prev: Option<Value>) -> Event {
        Event::new(
            7,
            etype,
            ResourceKey::new("", "configmaps"),
            "ns".into(),
            "a".into(),
            "u".into(),
            Arc::new(obj),
            prev.map(Arc::new),
        )
    }

    #[test]
    fn lines_are_compact_and_newline_terminated() {
        let e = ev(
            EventType::Added,
            json!({"kind": "ConfigMap", "metadata": {"name": "a"}}),
            None,
        );
        let line = e.line.bytes();
        assert!(line.ends_with(b"}\n"));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let parsed: Value = serde_json::from_slice(&line).expect("valid json");
        assert_eq!(parsed["type"], "ADDED");
        assert_eq!(
            serde_json::from_slice::<Value>(&e.object_bytes()).ok(),
            Some(json!({"kind": "ConfigMap", "metadata": {"name": "a"}}))
        );
    }

    #[test]
    fn leaving_a_selector_sends_the_previous_object_with_the_event_rv() {
        let e = ev(
            EventType::Modified,
            json!({"metadata": {"name": "a", "labels": {"x": "2"}, "resourceVersion": "7"}}),
            Some(json!({"metadata": {"name": "a", "labels": {"x": "1"}, "resourceVersion": "5"}})),
        );
        let v: Value = serde_json::from_slice(&e.leave_line()).expect("json");
        assert_eq!(v["type"], "DELETED");
        assert_eq!(v["object"]["metadata"]["labels"]["x"], "1");
        assert_eq!(v["object"]["metadata"]["resourceVersion"], "7");
        let added: Value = serde_json::from_slice(&e.line_as(EventType::Added)).expect("json");
        assert_eq!(added["type"], "ADDED");
        assert_eq!(added["object"]["metadata"]["labels"]["x"], "2");
    }
}
