//! How a stream's observations become events in an [`EventBatch`]: the strings of the
//! metadata are kept where they lie in the frame, and what must be made (a Secret's redacted
//! object and annotations, the kind and apiVersion that list items of built-in types lack,
//! the names of synthesised deletions) goes into the batch's own bytes.

use std::borrow::Cow;
use std::sync::Arc;

use crate::event::{EventBatch, EventType, Matched, Record, flag, push_str};
use crate::workload::WorkloadRef;

use super::managers::ManagedEntry;
use super::parse::Meta;
use super::state::Orphan;

/// The annotation `kubectl apply` stores the whole applied object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One event to add.
pub(super) struct NewEvent<'m, 'a> {
    pub event_type: EventType,
    pub meta: &'m Meta<'a>,
    pub initial: bool,
    /// The object, already typed and redacted (see [`object_text`]).
    pub object: Option<Cow<'a, str>>,
    pub workload: Option<Arc<WorkloadRef>>,
    pub matched: Matched,
    /// The object is a Secret: drop the last-applied annotation.
    pub secret: bool,
    /// Derived from a relist comparison.
    pub resync: bool,
    /// The managedFields entry of the change, and whether that is a guess.
    pub changed_by: Option<(&'m ManagedEntry<'a>, bool)>,
    /// The diff from the previous version (a JSON array).
    pub diff: Option<&'m [u8]>,
}

/// Appends an event seen on the wire.
pub(super) fn push(batch: &mut EventBatch, e: NewEvent) {
    let meta = e.meta;
    // Strings borrowed from the wire hold no escapes (the scanner gives up on any, serde
    // borrows only unescaped strings): they can be copied into the output as they are.
    let verbatim = [&meta.name, &meta.uid, &meta.resource_version]
        .iter()
        .all(|c| matches!(c, Cow::Borrowed(_)))
        && !matches!(meta.namespace, Some(Cow::Owned(_)));
    let annotations = match meta.annotations {
        Some(raw) if e.secret && raw.contains(LAST_APPLIED) => {
            without_last_applied(raw).map(|clean| batch.side_span(clean.as_bytes()))
        }
        Some(raw) => Some(batch.span(raw)),
        None => None,
    };
    let changed_by = e.changed_by.map(|(entry, _)| {
        let start = batch.side.len();
        let out = &mut batch.side;
        out.extend_from_slice(b"{\"manager\":");
        push_str(out, &entry.manager());
        out.extend_from_slice(b",\"operation\":");
        push_str(out, &entry.operation());
        if let Some(sub) = entry.subresource() {
            out.extend_from_slice(b",\"subresource\":");
            push_str(out, &sub);
        }
        if let Some(time) = entry.time() {
            out.extend_from_slice(b",\"time\":");
            push_str(out, time);
        }
        out.push(b'}');
        batch.side_tail(start)
    });
    let ambiguous = e.changed_by.is_some_and(|(_, guess)| guess);
    let record = Record {
        event_type: e.event_type,
        flags: if e.initial { flag::INITIAL } else { 0 }
            | if verbatim { flag::VERBATIM } else { 0 }
            | if e.resync { flag::RESYNC } else { 0 }
            | if ambiguous { flag::AMBIGUOUS } else { 0 },
        name: batch.span(&meta.name),
        namespace: meta.namespace.as_deref().map(|ns| batch.span(ns)),
        uid: batch.span(&meta.uid),
        resource_version: batch.span(&meta.resource_version),
        labels: meta.labels.map(|raw| batch.span(raw)),
        annotations,
        object: e.object.as_deref().map(|o| batch.span(o)),
        changed_by,
        diff: e.diff.map(|d| batch.side_span(d)),
        workload: e.workload,
        matched: e.matched,
    };
    batch.records.push(record);
}

/// Appends the DELETED event of an object that lost its last holder without a server event:
/// always a resync (faro concluded it, no watch event said it).
pub(super) fn push_orphan(
    batch: &mut EventBatch,
    orphan: &Orphan,
    workload: Option<Arc<WorkloadRef>>,
) {
    let uid = orphan.uid.to_string();
    let rv = orphan.rv.to_string();
    // Names kept from earlier events may need escaping: never verbatim.
    let record = Record {
        event_type: EventType::Deleted,
        flags: flag::RESYNC,
        name: batch.side_span(orphan.name.as_bytes()),
        namespace: orphan
            .namespace
            .as_deref()
            .map(|ns| batch.side_span(ns.as_bytes())),
        uid: batch.side_span(uid.as_bytes()),
        resource_version: batch.side_span(rv.as_bytes()),
        labels: None,
        annotations: None,
        object: None,
        changed_by: None,
        diff: None,
        workload,
        matched: Matched::All,
    };
    batch.records.push(record);
}

/// The object as events carry it: list items of built-in types get the `kind` and
/// `apiVersion` they lack (`type_prefix` is `{"kind":…,"apiVersion":…` without the closing
/// brace), and Secrets lose their values.
pub(super) fn object_text<'r>(
    raw: &'r str,
    missing_type: bool,
    type_prefix: &str,
    secret: bool,
) -> Cow<'r, str> {
    let text = if missing_type {
        let mut with_type = type_prefix.to_owned();
        let rest = raw
            .trim_start()
            .strip_prefix('{')
            .unwrap_or("}")
            .trim_start();
        if !rest.starts_with('}') {
            with_type.push(',');
        }
        with_type.push_str(rest);
        Cow::Owned(with_type)
    } else {
        Cow::Borrowed(raw)
    };
    if secret {
        Cow::Owned(redact_secret(&text))
    } else {
        text
    }
}

/// The annotations without the last-applied configuration; None when nothing is left, or
/// when they do not decode (then nothing of them can be shown safely).
fn without_last_applied(raw: &str) -> Option<String> {
    let mut map = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw).ok()?;
    map.remove(LAST_APPLIED);
    if map.is_empty() {
        return None;
    }
    serde_json::to_string(&map).ok()
}

/// Replaces the values of a Secret's `data` and `stringData` with `"<redacted>"` and drops the
/// last-applied annotation. Returns the object as JSON (`null` when it does not decode: a
/// Secret that cannot be redacted is not shown).
pub(super) fn redact_secret(raw: &str) -> String {
    let Ok(mut object) = serde_json::from_str::<serde_json::Value>(raw) else {
        return "null".to_owned();
    };
    // Fail closed: a map keeps its keys (which values exist is not secret, and diffs name
    // them), anything else under these keys (a string, a list, a number) is replaced whole.
    let redacted = || serde_json::Value::String("<redacted>".to_owned());
    for field in ["data", "stringData"] {
        match object.get_mut(field) {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(map)) => {
                for value in map.values_mut() {
                    *value = redacted();
                }
            }
            Some(other) => *other = redacted(),
        }
    }
    if let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(|v| v.as_object_mut())
    {
        annotations.remove(LAST_APPLIED);
    }
    object.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{JsonEncoder, StreamInfo};
    use bytes::Bytes;

    fn batch(frame: &'static [u8]) -> EventBatch {
        let gvr: crate::Gvr = "v1/secrets".parse().unwrap();
        EventBatch::new(
            Arc::new(StreamInfo {
                id: 1,
                gvr_text: Arc::from(gvr.to_string()),
                gvr,
                kind: "Secret".into(),
                entries: Arc::from([]),
            }),
            Bytes::from_static(frame),
            None,
        )
    }

    #[test]
    fn secrets_lose_last_applied_annotation_and_data_values() {
        let line: &'static [u8] = br#"{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","namespace":"default","uid":"u1","resourceVersion":"5","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"data\":{\"p\":\"c2VjcmV0\"}}","team":"a"}},"data":{"p":"c2VjcmV0"},"stringData":{"q":"plain"}}}"#;
        let mut b = batch(line);
        let frame = b.frame.clone();
        let event = super::super::parse::watch_event(&frame, true, true).unwrap();
        let object = object_text(event.raw.unwrap(), false, "", true);
        push(
            &mut b,
            NewEvent {
                event_type: EventType::Added,
                meta: &event.head.metadata,
                initial: false,
                object: Some(object),
                workload: None,
                matched: Matched::All,
                secret: true,
                resync: false,
                changed_by: None,
                diff: None,
            },
        );
        let mut out = Vec::new();
        JsonEncoder::new().encode(&b.event(0).unwrap(), &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["gvr"], "v1/secrets");
        assert_eq!(v["annotations"], serde_json::json!({"team": "a"}));
        assert_eq!(v["object"]["data"]["p"], "<redacted>");
        assert_eq!(v["object"]["stringData"]["q"], "<redacted>");
        let text = v.to_string();
        assert!(
            !text.contains("c2VjcmV0") && !text.contains("plain"),
            "{text}"
        );
        let event = b.event(0).unwrap();
        assert!(event.annotations().get(LAST_APPLIED).is_none());
        assert!(!event.raw_object().unwrap().contains("c2VjcmV0"));
    }

    #[test]
    fn secret_values_of_any_shape_are_redacted() {
        for (data, want) in [
            (r#""U0VDUkVU""#, serde_json::json!("<redacted>")),
            (r#"["U0VDUkVU"]"#, serde_json::json!("<redacted>")),
            ("42", serde_json::json!("<redacted>")),
            (
                r#"{"k":{"nested":"U0VDUkVU"}}"#,
                serde_json::json!({"k": "<redacted>"}),
            ),
            ("null", serde_json::Value::Null),
        ] {
            let raw = format!(r#"{{"kind":"Secret","data":{data},"stringData":{data}}}"#);
            let v: serde_json::Value = serde_json::from_str(&redact_secret(&raw)).unwrap();
            assert_eq!(v["data"], want, "{data}");
            assert_eq!(v["stringData"], want, "{data}");
            assert!(!v.to_string().contains("U0VDUkVU"));
        }
        assert_eq!(redact_secret("{not json"), "null");
    }

    #[test]
    fn borrowed_strings_point_into_the_frame_and_are_verbatim() {
        let line: &'static [u8] = br#"{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm","namespace":"ns","uid":"u","resourceVersion":"9","labels":{"a":"b"}}}}"#;
        let mut b = batch(line);
        let frame = b.frame.clone();
        let event = super::super::parse::watch_event(&frame, false, false).unwrap();
        push(
            &mut b,
            NewEvent {
                event_type: EventType::Updated,
                meta: &event.head.metadata,
                initial: false,
                object: None,
                workload: None,
                matched: Matched::All,
                secret: false,
                resync: false,
                changed_by: None,
                diff: None,
            },
        );
        assert!(b.side.is_empty(), "nothing copied");
        let event = b.event(0).unwrap();
        assert_eq!((event.name(), event.namespace()), ("cm", Some("ns")));
        assert_eq!(event.labels().get("a").as_deref(), Some("b"));
        assert_ne!(b.records[0].flags & flag::VERBATIM, 0);
    }

    #[test]
    fn list_items_get_their_kind_and_api_version() {
        let prefix = r#"{"kind":"ConfigMap","apiVersion":"v1""#;
        assert_eq!(
            object_text(r#"{"metadata":{"name":"a"}}"#, true, prefix, false),
            r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a"}}"#
        );
        assert_eq!(
            object_text("{}", true, prefix, false),
            r#"{"kind":"ConfigMap","apiVersion":"v1"}"#
        );
    }
}
