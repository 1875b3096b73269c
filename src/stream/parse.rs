//! Borrowed decoding of watch lines and list pages: only the metadata faro needs is read; the
//! rest of each object is skipped (or kept as raw JSON for `--include-object`).
//!
//! Two decoders give the same result:
//! - [`scan`], a small hand-written scanner for the way API servers write objects: `type`
//!   first, then `kind`, `apiVersion`, `metadata`, then the body (`data`, `spec`, `status`),
//!   which is most of the bytes and which it never reads. It stops after `metadata`. Anything
//!   it does not expect (an escape inside a name, keys in another order, odd whitespace) makes
//!   it give up;
//! - serde_json over the whole line, the reference, used whenever the scanner gives up, for
//!   `ERROR` events and when the raw object is wanted.
//!
//! Label and annotation maps are returned as raw JSON text (validated), so they can be copied
//! to the output as they came.

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

impl WatchType {
    fn parse(text: &[u8]) -> Option<WatchType> {
        Some(match text {
            b"ADDED" => WatchType::Added,
            b"MODIFIED" => WatchType::Modified,
            b"DELETED" => WatchType::Deleted,
            b"BOOKMARK" => WatchType::Bookmark,
            b"ERROR" => WatchType::Error,
            _ => return None,
        })
    }
}

/// The metadata of an object, borrowed from the line or page it came from.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Meta<'a> {
    /// `metadata.name`.
    pub name: Cow<'a, str>,
    /// `metadata.namespace`.
    pub namespace: Option<Cow<'a, str>>,
    /// `metadata.uid`.
    pub uid: Cow<'a, str>,
    /// `metadata.resourceVersion`.
    pub resource_version: Cow<'a, str>,
    /// `metadata.labels` as raw JSON text.
    pub labels: Option<&'a str>,
    /// `metadata.annotations` as raw JSON text.
    pub annotations: Option<&'a str>,
    /// `metadata.deletionTimestamp` is set (an object, e.g. a namespace, is terminating).
    pub deleting: bool,
    /// The entries of `metadata.managedFields` (for `changedBy`), when it is an array of
    /// objects.
    pub managed_fields: Option<Vec<super::managers::ManagedEntry<'a>>>,
    /// The text of that array, `[` to `]` (a slice of the object's text: diffs cut it out of
    /// the version they keep).
    pub managed_fields_text: Option<&'a [u8]>,
}

/// What faro reads of an object: its kind (when present) and metadata.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Head<'a> {
    /// `kind` (list items of built-in types come without it).
    pub kind: Option<Cow<'a, str>>,
    /// `metadata`.
    pub metadata: Meta<'a>,
}

/// One decoded watch event.
#[derive(Debug)]
pub struct WatchEvent<'a> {
    /// Event type.
    pub kind: WatchType,
    /// The object's head.
    pub head: Head<'a>,
    /// The raw object, when asked for (and always for `ERROR`, whose object is a Status).
    pub raw: Option<&'a str>,
}

/// Decodes one watch line. With `want_raw` the object is also returned raw; with `checked`
/// too, it has been validated as JSON (it is written out as it is), else only delimited
/// (whoever reads it parses it: a diff).
pub fn watch_event(line: &[u8], want_raw: bool, checked: bool) -> Result<WatchEvent<'_>, String> {
    if !(want_raw && checked)
        && let Some(event) = scan::watch_event(line, want_raw)
    {
        return Ok(event);
    }
    full::watch_event(line)
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
    /// The KEP-5866 echo of the `shardSelector` the server applied (absent: it applied none).
    #[serde(borrow, default)]
    pub shard_info: Option<ShardInfo<'a>>,
}

/// `metadata.shardInfo` of a list response (KEP-5866).
#[derive(Debug, Default, Deserialize)]
pub struct ShardInfo<'a> {
    /// The selector, as the request gave it.
    #[serde(borrow, default)]
    pub selector: Cow<'a, str>,
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
    if let Some(head) = scan::head(raw.get().as_bytes()) {
        return Ok(head);
    }
    full::head(raw.get())
}

pub(crate) use crate::event::string_map;

/// The reference decoder: serde_json over the whole text.
mod full {
    use super::*;

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct SerdeMeta<'a> {
        #[serde(borrow, default)]
        name: Cow<'a, str>,
        #[serde(borrow, default)]
        namespace: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        uid: Cow<'a, str>,
        #[serde(borrow, default)]
        resource_version: Cow<'a, str>,
        #[serde(borrow, default)]
        labels: Option<&'a RawValue>,
        #[serde(borrow, default)]
        annotations: Option<&'a RawValue>,
        #[serde(borrow, default)]
        deletion_timestamp: Option<&'a RawValue>,
        #[serde(borrow, default)]
        managed_fields: Option<&'a RawValue>,
    }

    #[derive(Deserialize, Default)]
    struct SerdeHead<'a> {
        #[serde(borrow, default)]
        kind: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        metadata: SerdeMeta<'a>,
    }

    impl<'a> From<SerdeHead<'a>> for Head<'a> {
        fn from(h: SerdeHead<'a>) -> Head<'a> {
            let map = |raw: Option<&'a RawValue>| raw.map(RawValue::get).filter(|t| *t != "null");
            Head {
                kind: h.kind,
                metadata: Meta {
                    name: h.metadata.name,
                    namespace: h.metadata.namespace,
                    uid: h.metadata.uid,
                    resource_version: h.metadata.resource_version,
                    labels: map(h.metadata.labels),
                    annotations: map(h.metadata.annotations),
                    deleting: h
                        .metadata
                        .deletion_timestamp
                        .is_some_and(|t| t.get() != "null"),
                    managed_fields: h
                        .metadata
                        .managed_fields
                        .and_then(|raw| super::super::managers::entries(raw.get())),
                    managed_fields_text: h
                        .metadata
                        .managed_fields
                        .map(|raw| raw.get().as_bytes())
                        .filter(|t| t.starts_with(b"[")),
                },
            }
        }
    }

    #[derive(Deserialize)]
    struct Line<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(borrow)]
        object: &'a RawValue,
    }

    pub fn watch_event(line: &[u8]) -> Result<WatchEvent<'_>, String> {
        let line: Line = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        let kind = WatchType::parse(line.kind.as_bytes())
            .ok_or_else(|| format!("unknown watch event type {:?}", line.kind))?;
        let head = if kind == WatchType::Error {
            Head::default()
        } else {
            head(line.object.get())?
        };
        Ok(WatchEvent {
            kind,
            head,
            raw: Some(line.object.get()),
        })
    }

    pub fn head(object: &str) -> Result<Head<'_>, String> {
        serde_json::from_str::<SerdeHead>(object)
            .map(Head::from)
            .map_err(|e| e.to_string())
    }
}

pub(super) use scan::managed_fields;

/// The fast path (see the module comment). Every function returns None to mean "not the shape
/// I expect: use the reference decoder".
mod scan {
    use super::*;
    use crate::stream::managers::ManagedEntry;

    struct Cursor<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Cursor<'a> {
        fn peek(&self) -> Option<u8> {
            self.b.get(self.i).copied()
        }

        fn skip_ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.i += 1;
            }
        }

        fn eat(&mut self, c: u8) -> Option<()> {
            self.skip_ws();
            (self.peek()? == c).then(|| self.i += 1)
        }

        /// The bytes of a string without escapes or control characters (the cursor moves past
        /// its closing quote). Strings faro reads are short (keys, names, uids), so a plain loop
        /// beats a vectorised search here.
        fn raw_string(&mut self) -> Option<&'a [u8]> {
            self.eat(b'"')?;
            let start = self.i;
            loop {
                match *self.b.get(self.i)? {
                    b'"' => break,
                    b'\\' => return None, // an escape: leave it to serde
                    c if c < 0x20 => return None, // invalid JSON
                    _ => self.i += 1,
                }
            }
            let text = &self.b[start..self.i];
            self.i += 1;
            Some(text)
        }

        /// A string without escapes, borrowed.
        fn string(&mut self) -> Option<&'a str> {
            std::str::from_utf8(self.raw_string()?).ok()
        }

        fn skip_string(&mut self) -> Option<()> {
            self.eat(b'"')?;
            loop {
                let end = memchr::memchr2(b'"', b'\\', &self.b[self.i..])?;
                self.i += end;
                if self.b[self.i] == b'"' {
                    self.i += 1;
                    return Some(());
                }
                self.i += 2; // a backslash and the escaped character
            }
        }

        /// The contents of a string, escapes kept (the cursor moves past its closing quote).
        fn escaped_string(&mut self) -> Option<&'a [u8]> {
            self.skip_ws();
            let start = self.i + 1;
            self.skip_string()?;
            Some(&self.b[start..self.i - 1])
        }

        /// Skips any JSON value.
        fn skip_value(&mut self) -> Option<()> {
            self.skip_ws();
            match self.peek()? {
                b'"' => self.skip_string(),
                b'{' | b'[' => {
                    let mut depth = 0usize;
                    loop {
                        match self.peek()? {
                            b'"' => self.skip_string()?,
                            b'{' | b'[' => {
                                depth += 1;
                                self.i += 1;
                            }
                            b'}' | b']' => {
                                depth -= 1;
                                self.i += 1;
                                if depth == 0 {
                                    return Some(());
                                }
                            }
                            _ => self.i += 1,
                        }
                    }
                }
                _ => {
                    let start = self.i;
                    while matches!(self.peek()?, b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'E')
                    {
                        self.i += 1;
                    }
                    (self.i > start).then_some(())
                }
            }
        }

        /// A JSON object as raw text, validated by serde_json (label maps are small).
        fn raw_object(&mut self) -> Option<Option<&'a str>> {
            self.skip_ws();
            if self.b[self.i..].starts_with(b"null") {
                self.i += 4;
                return Some(None);
            }
            if self.peek()? != b'{' {
                return None;
            }
            let start = self.i;
            self.skip_value()?;
            let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
            serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
            Some(Some(text))
        }

        /// Walks an object's members, calling `member` with each key; `member` consumes the
        /// value and returns whether to go on.
        fn members(
            &mut self,
            mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<bool>,
        ) -> Option<bool> {
            self.eat(b'{')?;
            self.skip_ws();
            if self.peek()? == b'}' {
                self.i += 1;
                return Some(true);
            }
            loop {
                // Keys are only compared with ASCII names: no UTF-8 check needed.
                let key = self.raw_string()?;
                self.eat(b':')?;
                if !member(self, key)? {
                    return Some(false);
                }
                self.skip_ws();
                match self.peek()? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        return Some(true);
                    }
                    _ => return None,
                }
            }
        }

        fn meta(&mut self) -> Option<Meta<'a>> {
            let mut meta = Meta::default();
            self.members(|c, key| {
                match key {
                    b"name" => meta.name = Cow::Borrowed(c.string()?),
                    b"namespace" => meta.namespace = Some(Cow::Borrowed(c.string()?)),
                    b"uid" => meta.uid = Cow::Borrowed(c.string()?),
                    b"resourceVersion" => meta.resource_version = Cow::Borrowed(c.string()?),
                    b"labels" => meta.labels = c.raw_object()?,
                    b"annotations" => meta.annotations = c.raw_object()?,
                    b"deletionTimestamp" => {
                        c.skip_ws();
                        meta.deleting = c.peek()? == b'"';
                        c.skip_value()?;
                    }
                    b"managedFields" => {
                        // Read in the same pass; anything but an array of objects is skipped.
                        c.skip_ws();
                        match managed_fields(c.b, c.i) {
                            Some((entries, end)) => {
                                meta.managed_fields = Some(entries);
                                meta.managed_fields_text = Some(&c.b[c.i..end]);
                                c.i = end;
                            }
                            None => c.skip_value()?,
                        }
                    }
                    _ => c.skip_value()?,
                }
                Some(true)
            })?;
            Some(meta)
        }

        /// An object's head; stops right after `metadata` unless `finish` (then the cursor is
        /// past the object's closing brace). `kind` is read only when `want_kind` (list items
        /// of built-in types lack it; watch events need it not).
        fn head(&mut self, finish: bool, want_kind: bool) -> Option<Head<'a>> {
            let mut kind = None;
            let mut metadata = None;
            self.members(|c, key| {
                match key {
                    b"kind" if want_kind => kind = Some(Cow::Borrowed(c.string()?)),
                    b"metadata" => {
                        metadata = Some(c.meta()?);
                        return Some(finish);
                    }
                    _ => c.skip_value()?,
                }
                Some(true)
            })?;
            Some(Head {
                kind,
                metadata: metadata?,
            })
        }
    }

    /// The entries of the `managedFields` array at `i` of `b` (whitespace before it allowed),
    /// and the index after it; None when it is not an array of objects.
    pub fn managed_fields(b: &[u8], i: usize) -> Option<(Vec<ManagedEntry<'_>>, usize)> {
        let mut c = Cursor { b, i };
        c.eat(b'[')?;
        let mut out = Vec::with_capacity(2);
        c.skip_ws();
        if c.peek()? == b']' {
            return Some((out, c.i + 1));
        }
        loop {
            c.skip_ws();
            let start = c.i;
            let [mut manager, mut operation, mut subresource, mut time] = [None; 4];
            c.members(|c, key| {
                let slot = match key {
                    b"manager" => &mut manager,
                    b"operation" => &mut operation,
                    b"subresource" => &mut subresource,
                    b"time" => &mut time,
                    _ => {
                        c.skip_value()?;
                        return Some(true);
                    }
                };
                c.skip_ws();
                if c.peek()? == b'"' {
                    *slot = Some(c.escaped_string()?);
                } else {
                    c.skip_value()?;
                }
                Some(true)
            })?;
            out.push(ManagedEntry::new(
                &b[start..c.i],
                manager,
                operation,
                subresource,
                time,
            ));
            c.skip_ws();
            match c.peek()? {
                b',' => c.i += 1,
                b']' => return Some((out, c.i + 1)),
                _ => return None,
            }
        }
    }

    pub fn watch_event(line: &[u8], want_raw: bool) -> Option<WatchEvent<'_>> {
        let mut c = Cursor { b: line, i: 0 };
        let mut kind = None;
        let mut head = None;
        let mut raw = None;
        c.members(|c, key| {
            match key {
                b"type" => {
                    let k = WatchType::parse(c.raw_string()?)?;
                    if k == WatchType::Error {
                        return None; // the Status is decoded by the reference decoder
                    }
                    kind = Some(k);
                }
                // With the type known, the rest of the line is not needed.
                b"object" => {
                    c.skip_ws();
                    let start = c.i;
                    head = Some(c.head(kind.is_none(), false)?);
                    if want_raw {
                        let mut whole = Cursor { b: c.b, i: start };
                        whole.skip_value()?;
                        raw = Some(std::str::from_utf8(&c.b[start..whole.i]).ok()?);
                    }
                    return Some(kind.is_none());
                }
                _ => c.skip_value()?,
            }
            Some(true)
        })?;
        Some(WatchEvent {
            kind: kind?,
            head: head?,
            raw,
        })
    }

    pub fn head(item: &[u8]) -> Option<Head<'_>> {
        Cursor { b: item, i: 0 }.head(false, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &[&str] = &[
        // The apiserver's order.
        r#"{"type":"MODIFIED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm1","namespace":"default","uid":"0c2d6c8e-1111-2222-3333-444455556666","resourceVersion":"42","creationTimestamp":"2026-01-01T00:00:00Z","labels":{"app":"web"},"annotations":{"a":"b \" q"},"managedFields":[{"manager":"x","fieldsV1":{"f:data":{}}}]},"data":{"k":"v \" quoted","n":[1,2,{"x":null}]}}}"#,
        // Sorted keys (data before metadata), type last, whitespace.
        r#"{ "object" : { "apiVersion":"v1", "data":{"k":"}"} , "kind":"ConfigMap", "metadata":{ "resourceVersion":"42","uid":"0c2d6c8e-1111-2222-3333-444455556666","namespace":"default","name":"cm1","labels":{"app":"web"},"annotations":{"a":"b \" q"}} } , "type":"MODIFIED" }"#,
        // Escaped name: the scanner gives up, serde decodes.
        r#"{"type":"MODIFIED","object":{"kind":"ConfigMap","metadata":{"name":"cm\u0031","namespace":"default","uid":"0c2d6c8e-1111-2222-3333-444455556666","resourceVersion":"42","labels":{"app":"web"},"annotations":{"a":"b \" q"}}}}"#,
    ];

    #[test]
    fn scanner_and_serde_agree_on_every_shape() {
        for line in LINES {
            let fast = watch_event(line.as_bytes(), false, false).unwrap();
            let full = full::watch_event(line.as_bytes()).unwrap();
            // Delimited by the scanner for a diff, it is the object the parser sees.
            let delimited = watch_event(line.as_bytes(), true, false).unwrap();
            assert_eq!(delimited.raw, full.raw, "{line}");
            assert_eq!(fast.kind, WatchType::Modified, "{line}");
            assert_eq!(fast.head.metadata, full.head.metadata, "{line}");
            let meta = &fast.head.metadata;
            assert_eq!(meta.name, "cm1");
            assert_eq!(meta.namespace.as_deref(), Some("default"));
            assert_eq!(meta.resource_version, "42");
            assert_eq!(meta.labels, Some(r#"{"app":"web"}"#));
            assert!(!meta.deleting);
        }
        assert!(
            scan::watch_event(LINES[0].as_bytes(), false).is_some(),
            "the common shape is scanned"
        );
        assert!(
            scan::watch_event(LINES[2].as_bytes(), false).is_none(),
            "escapes go to serde"
        );
    }

    #[test]
    fn raw_object_is_kept_when_asked_for_and_on_errors() {
        let line = br#"{"type":"ADDED","object":{"metadata":{"name":"a","uid":"u","resourceVersion":"1"},"spec":{}}}"#;
        let event = watch_event(line, true, true).unwrap();
        assert!(event.raw.unwrap().starts_with(r#"{"metadata""#));
        let error = br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}}"#;
        let event = watch_event(error, false, false).unwrap();
        assert_eq!(event.kind, WatchType::Error);
        assert!(event.raw.unwrap().contains("410"));
    }

    #[test]
    fn bookmarks_carry_only_a_resource_version() {
        let line = br#"{"type":"BOOKMARK","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":"77"}}}"#;
        let event = watch_event(line, false, false).unwrap();
        assert_eq!(event.kind, WatchType::Bookmark);
        assert_eq!(event.head.metadata.resource_version, "77");
    }

    #[test]
    fn deletion_timestamp_marks_terminating_objects() {
        let line = br#"{"type":"MODIFIED","object":{"metadata":{"name":"ns","uid":"u","resourceVersion":"3","deletionTimestamp":"2026-01-01T00:00:00Z"}}}"#;
        assert!(
            watch_event(line, false, false)
                .unwrap()
                .head
                .metadata
                .deleting
        );
        assert!(full::watch_event(line).unwrap().head.metadata.deleting);
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        for bad in [
            &b"{"[..],
            b"",
            b"{\"type\":\"ADDED\"",
            b"{\"type\":\"WHAT\",\"object\":{}}",
            b"[]",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":5}}}",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"labels\":{\"x\":}}}}",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\xff\"}}}",
        ] {
            assert!(
                watch_event(bad, false, false).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn list_pages_give_rv_continue_and_raw_items() {
        let body = br#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"9","continue":"tok"},"items":[{"metadata":{"name":"a","uid":"u1","resourceVersion":"3"}}]}"#;
        let page = list_page(body).unwrap();
        assert_eq!(page.metadata.resource_version, "9");
        assert_eq!(page.metadata.continue_token.as_deref(), Some("tok"));
        assert!(page.metadata.shard_info.is_none());
        let sharded = list_page(br#"{"metadata":{"resourceVersion":"9","shardInfo":{"selector":"shardRange(object.metadata.namespace, '0x0', '0x8')"}},"items":[]}"#).unwrap();
        assert_eq!(
            sharded.metadata.shard_info.unwrap().selector,
            "shardRange(object.metadata.namespace, '0x0', '0x8')"
        );
        let items = page.items.unwrap();
        assert_eq!(head(items[0]).unwrap().metadata.name, "a");
        let empty = list_page(br#"{"metadata":{"resourceVersion":"1"},"items":null}"#).unwrap();
        assert!(empty.items.is_none());
    }

    #[test]
    fn label_maps_decode_to_pairs() {
        let pairs = string_map(Some(r#"{"app":"web","tier":"d\"b"}"#));
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0], ("app".into(), "web".into()));
        assert_eq!(pairs[1].1, "d\"b");
    }
}
