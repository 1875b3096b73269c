//! Borrowed parsing of watch lines and list pages: only the metadata faro needs is decoded;
//! the rest of each object is skipped (or kept as raw JSON for `--include-object`).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// The type of a watch event line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchType {
    /// `ADDED`.
    Added,
    /// `MODIFIED`.
    Modified,
    /// `DELETED`.
    Deleted,
    /// `BOOKMARK`: only the resourceVersion is meaningful.
    Bookmark,
    /// `ERROR`: the object is a `Status`.
    Error,
}

/// The metadata of an object, borrowed from the line or page it came from.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta<'a> {
    /// `metadata.name`.
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    /// `metadata.namespace`.
    #[serde(borrow, default)]
    pub namespace: Option<Cow<'a, str>>,
    /// `metadata.uid`.
    #[serde(borrow, default)]
    pub uid: Cow<'a, str>,
    /// `metadata.resourceVersion`.
    #[serde(borrow, default)]
    pub resource_version: Cow<'a, str>,
    /// `metadata.labels`, raw.
    #[serde(borrow, default)]
    pub labels: Option<&'a RawValue>,
    /// `metadata.annotations`, raw.
    #[serde(borrow, default)]
    pub annotations: Option<&'a RawValue>,
    /// `metadata.deletionTimestamp`, set while an object (a namespace) is terminating.
    #[serde(borrow, default)]
    pub deletion_timestamp: Option<Cow<'a, str>>,
}

/// What faro reads of an object: its type fields and metadata.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Head<'a> {
    /// `kind` (list items of built-in types come without it).
    #[serde(borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    /// `metadata`.
    #[serde(borrow, default)]
    pub metadata: Meta<'a>,
}

#[derive(Deserialize)]
struct LineHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    object: Head<'a>,
}

#[derive(Deserialize)]
struct LineRaw<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    object: &'a RawValue,
}

/// One decoded watch event.
#[derive(Debug)]
pub struct WatchEvent<'a> {
    /// Event type.
    pub kind: WatchType,
    /// The object's head.
    pub head: Head<'a>,
    /// The raw object, when asked for (and always for `ERROR`, whose object is a Status).
    pub raw: Option<&'a RawValue>,
}

/// Decodes one watch line. With `want_raw` the object is also returned raw (a second pass over
/// the line: only paid by `--include-object`).
pub fn watch_event(line: &[u8], want_raw: bool) -> Result<WatchEvent<'_>, String> {
    let head: LineHead = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let kind = match head.kind.as_ref() {
        "ADDED" => WatchType::Added,
        "MODIFIED" => WatchType::Modified,
        "DELETED" => WatchType::Deleted,
        "BOOKMARK" => WatchType::Bookmark,
        "ERROR" => WatchType::Error,
        other => return Err(format!("unknown watch event type {other:?}")),
    };
    let raw = if want_raw || kind == WatchType::Error {
        let raw: LineRaw = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        debug_assert_eq!(raw.kind, head.kind);
        Some(raw.object)
    } else {
        None
    };
    Ok(WatchEvent {
        kind,
        head: head.object,
        raw,
    })
}

/// `metadata` of a list response.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta<'a> {
    /// The snapshot's resourceVersion (the same on every page).
    #[serde(borrow, default)]
    pub resource_version: Cow<'a, str>,
    /// Token for the next page; empty on the last one.
    #[serde(borrow, default, rename = "continue")]
    pub continue_token: Option<Cow<'a, str>>,
}

/// One page of a list response, items still raw.
#[derive(Debug, Deserialize)]
pub struct ListPage<'a> {
    /// List metadata.
    #[serde(borrow, default)]
    pub metadata: ListMeta<'a>,
    /// The items, raw (null on an empty list from some servers).
    #[serde(borrow, default)]
    pub items: Option<Vec<&'a RawValue>>,
}

/// Decodes a list page.
pub fn list_page(body: &[u8]) -> Result<ListPage<'_>, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// Decodes an item's head.
pub fn head(raw: &RawValue) -> Result<Head<'_>, String> {
    serde_json::from_str(raw.get()).map_err(|e| e.to_string())
}

/// Decodes a raw label (or annotation) map into borrowed pairs.
pub fn string_map(raw: Option<&RawValue>) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let Some(raw) = raw else { return Vec::new() };
    let map: Result<std::collections::BTreeMap<Cow<str>, Cow<str>>, _> =
        serde_json::from_str(raw.get());
    map.map(|m| m.into_iter().collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_line_metadata_is_decoded_and_the_rest_skipped() {
        let line = br#"{"type":"MODIFIED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm1","namespace":"default","uid":"0c2d6c8e-1111-2222-3333-444455556666","resourceVersion":"42","labels":{"app":"web"},"annotations":{"a":"b"}},"data":{"k":"v \" quoted"}}}"#;
        let event = watch_event(line, false).unwrap();
        assert_eq!(event.kind, WatchType::Modified);
        let meta = &event.head.metadata;
        assert_eq!(meta.name, "cm1");
        assert_eq!(meta.namespace.as_deref(), Some("default"));
        assert_eq!(meta.resource_version, "42");
        assert_eq!(meta.labels.unwrap().get(), r#"{"app":"web"}"#);
        assert!(event.raw.is_none());
    }

    #[test]
    fn raw_object_is_kept_when_asked_for_and_on_errors() {
        let line = br#"{"type":"ADDED","object":{"metadata":{"name":"a","uid":"u","resourceVersion":"1"},"spec":{}}}"#;
        let event = watch_event(line, true).unwrap();
        assert!(event.raw.unwrap().get().starts_with(r#"{"metadata""#));
        let error = br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}}"#;
        let event = watch_event(error, false).unwrap();
        assert_eq!(event.kind, WatchType::Error);
        assert!(event.raw.unwrap().get().contains("410"));
    }

    #[test]
    fn bookmarks_carry_only_a_resource_version() {
        let line = br#"{"type":"BOOKMARK","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":"77"}}}"#;
        let event = watch_event(line, false).unwrap();
        assert_eq!(event.kind, WatchType::Bookmark);
        assert_eq!(event.head.metadata.resource_version, "77");
    }

    #[test]
    fn escaped_names_are_decoded() {
        let line = br#"{"type":"ADDED","object":{"metadata":{"name":"a\u0062","uid":"u","resourceVersion":"1"}}}"#;
        assert_eq!(watch_event(line, false).unwrap().head.metadata.name, "ab");
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        for bad in [
            &b"{"[..],
            b"",
            b"{\"type\":\"ADDED\"",
            b"{\"type\":\"WHAT\",\"object\":{}}",
            b"[]",
        ] {
            assert!(watch_event(bad, false).is_err());
        }
    }

    #[test]
    fn list_pages_give_rv_continue_and_raw_items() {
        let body = br#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"9","continue":"tok"},"items":[{"metadata":{"name":"a","uid":"u1","resourceVersion":"3"}}]}"#;
        let page = list_page(body).unwrap();
        assert_eq!(page.metadata.resource_version, "9");
        assert_eq!(page.metadata.continue_token.as_deref(), Some("tok"));
        let items = page.items.unwrap();
        assert_eq!(head(items[0]).unwrap().metadata.name, "a");
        let empty = list_page(br#"{"metadata":{"resourceVersion":"1"},"items":null}"#).unwrap();
        assert!(empty.items.is_none());
    }

    #[test]
    fn label_maps_decode_to_pairs() {
        let raw: &RawValue = serde_json::from_str(r#"{"app":"web","tier":"db"}"#).unwrap();
        let pairs = string_map(Some(raw));
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0], ("app".into(), "web".into()));
    }
}
