//! The typed event faro delivers, and its wire format.
//!
//! An [`Event`] is a borrowed view: the stream that saw a change decodes only the metadata of
//! the object, and the event's strings point into the network frame or list page they came in
//! (no copy, no `DynamicObject` tree). [`Event::to_owned`] makes an [`OwnedEvent`] that keeps
//! just that event's bytes, for handlers that need to hold on to it.
//!
//! # What an event says
//! - [`EventType::Added`]: the object appeared, or entered the watched set (a namespace joined
//!   a workload, a label now matches). [`Event::initial`] is true for objects listed when a
//!   stream started before the watcher was ready (kube's `Init`/`InitApply` phase).
//! - [`EventType::Updated`]: the object changed.
//! - [`EventType::Deleted`]: the object went away or left the watched set. Deletions that faro
//!   synthesises (a relist no longer shows the object, its namespace left a workload, its CRD
//!   went away) carry the resourceVersion of the change that caused them and no object.
//! - [`Event::resync`] marks events that faro derived from comparing a relist with what it
//!   knew (after `410 Gone`, when a namespace or CRD went away), not from a watch event:
//!   versions of the object between the last one delivered and this one may be missing.
//! - Per object, events come in resourceVersion order, and a (uid, resourceVersion) is delivered
//!   at most once, even when several config entries match the object.
//!
//! # Wire format
//!
//! One JSON object per line (design.md §2), written by [`JsonEncoder`]. Keys, in this order:
//! `timestamp` (RFC 3339 UTC, microseconds, when faro observed the change), `eventType`
//! (`ADDED`, `UPDATED`, `DELETED`), `gvr` (`v1/configmaps`, `apps/v1/deployments`), `namespace`
//! (namespaced objects), `name`, `uid`, `resourceVersion`, `labels` and `annotations` (when
//! non-empty), `initial` (`true` only on ADDED events of the start-up listing), `workload_id` and
//! `workload_name` (workload watching), `changedBy` (the managedFields entry of the change:
//! `manager`, `operation`, `subresource`, `time`; see [`Event::changed_by`]) and
//! `changedByAmbiguous` (`true` when that is a guess), `diff` (UPDATED events of diffed
//! resources, see [`Event::diff`]), `object` (with `include_object`), `resync` (`true` only
//! on events derived from a relist comparison, see above). Keys may be added in
//! later versions; none will be renamed. For Secrets, `data` and `stringData` values are
//! `"<redacted>"` and the `kubectl.kubernetes.io/last-applied-configuration` annotation (which
//! holds them) is left out, in the line and in every accessor of [`Event`].

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::gvr::Gvr;
use crate::workload::WorkloadRef;

/// The event types faro delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// An object appeared (created, or entered the watched set).
    Added = 0,
    /// An object changed.
    Updated,
    /// An object went away (deleted, or left the watched set).
    Deleted,
}

impl EventType {
    /// The wire name: `ADDED`, `UPDATED` or `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Updated => "UPDATED",
            EventType::Deleted => "DELETED",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why [`Event::object`] gave no object.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The watcher was built without `include_object(true)`, or the event is a deletion faro
    /// synthesised (it keeps no object cache).
    #[error("the event carries no object (build the Watcher with include_object(true))")]
    Missing,
    /// The object does not decode into the type asked for.
    #[error("decoding the object: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Where a string of an event lies: in the frame or in the batch's own bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

/// The high bit of [`Span::start`] marks the batch's own bytes.
const SIDE: u32 = 1 << 31;

/// What one stream's events share.
#[derive(Debug)]
pub(crate) struct StreamInfo {
    /// The stream (checkpoints count its batches).
    pub id: u32,
    /// The resource.
    pub gvr: Gvr,
    /// `gvr` as the wire spells it.
    pub gvr_text: Arc<str>,
    /// The objects' kind.
    pub kind: String,
    /// The config entries the stream serves.
    pub entries: Arc<[usize]>,
}

/// Bit flags of a [`Record`].
pub(crate) mod flag {
    /// From the start-up listing.
    pub const INITIAL: u8 = 1;
    /// Name, namespace, uid and resourceVersion hold no character JSON must escape.
    pub const VERBATIM: u8 = 2;
    /// Derived from comparing a relist with what faro knew, not from a watch event.
    pub const RESYNC: u8 = 4;
    /// `changed_by` is a guess among several (or no) advanced managedFields entries.
    pub const AMBIGUOUS: u8 = 8;
}

/// Which config entries matched: all the stream serves, or a range of the batch's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Matched {
    /// Every entry of [`StreamInfo::entries`].
    All,
    /// `matched[start..start + len]` of the batch.
    Range(u32, u32),
}

/// One event of a batch.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub event_type: EventType,
    pub flags: u8,
    pub name: Span,
    pub namespace: Option<Span>,
    pub uid: Span,
    pub resource_version: Span,
    pub labels: Option<Span>,
    pub annotations: Option<Span>,
    pub object: Option<Span>,
    /// `{"manager":…,"operation":…}`: the managedFields entry of this change, as JSON.
    pub changed_by: Option<Span>,
    /// The RFC 6902 operations from the previous version, as a JSON array.
    pub diff: Option<Span>,
    pub workload: Option<Arc<WorkloadRef>>,
    pub matched: Matched,
}

/// Spare batch buffers, handed back when a batch is dropped: allocating and freeing the record
/// and byte buffers of every network frame costs more than filling them.
#[derive(Debug, Default)]
pub(crate) struct BatchPool(Mutex<Vec<Spare>>);

/// The buffers of a batch: records, own bytes, matched entries.
type Spare = (Vec<Record>, Vec<u8>, Vec<usize>);

impl BatchPool {
    /// Spares kept: about the batches in flight between the streams and the consumer.
    const KEEP: usize = 16;
    /// A buffer grown past this (a relist page) is not kept, so that it does not pin memory.
    const MAX_RECORDS: usize = 2048;
    const MAX_BYTES: usize = 256 << 10;

    fn take(&self) -> Spare {
        self.0
            .lock()
            .ok()
            .and_then(|mut spares| spares.pop())
            .unwrap_or_default()
    }

    fn give(&self, mut records: Vec<Record>, mut side: Vec<u8>, mut matched: Vec<usize>) {
        if records.capacity() > Self::MAX_RECORDS || side.capacity() > Self::MAX_BYTES {
            return;
        }
        records.clear();
        side.clear();
        matched.clear();
        if let Ok(mut spares) = self.0.lock()
            && spares.len() < Self::KEEP
        {
            spares.push((records, side, matched));
        }
    }
}

/// The events one stream saw in one network frame or list page, sharing its bytes.
#[derive(Debug)]
pub(crate) struct EventBatch {
    pub stream: Arc<StreamInfo>,
    /// When faro observed them (one clock reading per frame).
    pub observed: SystemTime,
    /// The frame or page the borrowed strings point into.
    pub frame: Bytes,
    /// Strings that are not in the frame: unescaped, redacted, or kept from earlier events.
    pub side: Vec<u8>,
    pub records: Vec<Record>,
    /// Matched config entries of the records whose [`Matched::Range`] points here.
    pub matched: Vec<usize>,
    /// Counted as built for checkpoints.
    pub counted: bool,
    pool: Option<Arc<BatchPool>>,
}

impl Drop for EventBatch {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give(
                std::mem::take(&mut self.records),
                std::mem::take(&mut self.side),
                std::mem::take(&mut self.matched),
            );
        }
    }
}

impl EventBatch {
    /// An empty batch over `frame`, with buffers from `pool`.
    pub fn new(stream: Arc<StreamInfo>, frame: Bytes, pool: Option<Arc<BatchPool>>) -> EventBatch {
        let (records, side, matched) = pool.as_ref().map(|p| p.take()).unwrap_or_default();
        EventBatch {
            stream,
            observed: SystemTime::now(),
            frame,
            side,
            records,
            matched,
            counted: false,
            pool,
        }
    }

    /// Whether it holds no event.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The span of `text`: where it is in the frame, else a copy in the batch's own bytes.
    pub fn span(&mut self, text: &str) -> Span {
        let frame = self.frame.as_ptr() as usize;
        let at = text.as_ptr() as usize;
        if at >= frame && at + text.len() <= frame + self.frame.len() && text.len() < SIDE as usize
        {
            return Span {
                start: (at - frame) as u32,
                len: text.len() as u32,
            };
        }
        self.side_span(text.as_bytes())
    }

    /// A copy of `bytes` in the batch's own bytes.
    pub fn side_span(&mut self, bytes: &[u8]) -> Span {
        let start = self.side.len();
        self.side.extend_from_slice(bytes);
        Span {
            start: u32::try_from(start).unwrap_or(0) | SIDE,
            len: u32::try_from(bytes.len()).unwrap_or(0),
        }
    }

    /// The span of what was appended to the batch's own bytes since `start`.
    pub fn side_tail(&mut self, start: usize) -> Span {
        Span {
            start: u32::try_from(start).unwrap_or(0) | SIDE,
            len: u32::try_from(self.side.len() - start).unwrap_or(0),
        }
    }

    /// The bytes of a span (valid UTF-8: every span was made from a `&str`).
    pub fn bytes(&self, span: Span) -> &[u8] {
        let (source, start) = if span.start & SIDE != 0 {
            (&self.side[..], (span.start & !SIDE) as usize)
        } else {
            (&self.frame[..], span.start as usize)
        };
        source
            .get(start..start + span.len as usize)
            .unwrap_or_default()
    }

    fn text(&self, span: Span) -> &str {
        // Spans are only ever made from `&str`s, so this cannot fail; an empty string is the
        // harmless answer if it ever did.
        std::str::from_utf8(self.bytes(span)).unwrap_or_default()
    }

    /// The event at `index`.
    pub fn event(&self, index: usize) -> Option<Event<'_>> {
        self.records.get(index).map(|record| Event {
            batch: self,
            record,
        })
    }

    /// The events, in order.
    pub fn events(&self) -> impl Iterator<Item = Event<'_>> {
        self.records.iter().map(move |record| Event {
            batch: self,
            record,
        })
    }
}

/// One change of one object, borrowed from the frame it arrived in. See the
/// [module documentation](self) for what each type of event means.
#[derive(Clone, Copy)]
pub struct Event<'a> {
    batch: &'a EventBatch,
    record: &'a Record,
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("event_type", &self.event_type())
            .field("gvr", &self.batch.stream.gvr_text)
            .field("namespace", &self.namespace())
            .field("name", &self.name())
            .field("uid", &self.uid())
            .field("resource_version", &self.resource_version())
            .field("initial", &self.initial())
            .finish_non_exhaustive()
    }
}

impl<'a> Event<'a> {
    /// ADDED, UPDATED or DELETED.
    pub fn event_type(&self) -> EventType {
        self.record.event_type
    }

    /// The resource, e.g. `apps/v1/deployments`.
    pub fn gvr(&self) -> &'a Gvr {
        &self.batch.stream.gvr
    }

    /// The objects' kind, e.g. `Deployment`.
    pub fn kind(&self) -> &'a str {
        &self.batch.stream.kind
    }

    /// The namespace of a namespaced object.
    pub fn namespace(&self) -> Option<&'a str> {
        self.record.namespace.map(|s| self.batch.text(s))
    }

    /// `metadata.name`.
    pub fn name(&self) -> &'a str {
        self.batch.text(self.record.name)
    }

    /// `metadata.uid` (also on DELETED).
    pub fn uid(&self) -> &'a str {
        self.batch.text(self.record.uid)
    }

    /// The object's resourceVersion in this event (for a synthesised deletion, that of the
    /// change that caused it).
    pub fn resource_version(&self) -> &'a str {
        self.batch.text(self.record.resource_version)
    }

    /// `metadata.labels` (empty on synthesised deletions: faro keeps no object cache).
    pub fn labels(&self) -> StringMap<'a> {
        StringMap(self.record.labels.map(|s| self.batch.text(s)))
    }

    /// `metadata.annotations` (never the last-applied configuration of a Secret).
    pub fn annotations(&self) -> StringMap<'a> {
        StringMap(self.record.annotations.map(|s| self.batch.text(s)))
    }

    /// True only on ADDED events of objects listed by a stream started before the watcher
    /// was ready (the objects that existed at start-up).
    pub fn initial(&self) -> bool {
        self.record.flags & flag::INITIAL != 0
    }

    /// True on events derived from a relist comparison (after `410 Gone`, or a synthesised
    /// deletion when a namespace or CRD went away): intermediate versions of the object may be
    /// missing. False on events of watch events and of initial listings.
    pub fn resync(&self) -> bool {
        self.record.flags & flag::RESYNC != 0
    }

    /// The workload the object's namespace belongs to (workload watching), or, for a
    /// namespace's own events, the workload its labels put it in.
    pub fn workload(&self) -> Option<&'a WorkloadRef> {
        self.record.workload.as_deref()
    }

    /// When faro observed the change (the `timestamp` of the wire format).
    pub fn observed(&self) -> SystemTime {
        self.batch.observed
    }

    /// The object as JSON text, with `include_object(true)`; Secret values are redacted.
    pub fn raw_object(&self) -> Option<&'a str> {
        self.record.object.map(|s| self.batch.text(s))
    }

    /// Which field manager made this change: the `metadata.managedFields` entry that this
    /// write created or advanced (on ADDED, the creating one), when the object has
    /// managedFields. It names the client or controller that declared itself
    /// (`kubectl-edit`, `kube-controller-manager`, `helm`), not the authenticated user.
    pub fn changed_by(&self) -> Option<ChangedBy<'a>> {
        let raw = self.batch.text(self.record.changed_by?);
        let mut by: ChangedBy = serde_json::from_str(raw).ok()?;
        by.ambiguous = self.record.flags & flag::AMBIGUOUS != 0;
        Some(by)
    }

    /// The changes from the previous version, for UPDATED events of diffed resources (see
    /// [`crate::diff`]): a JSON array of RFC 6902 operations with the old value as an extra
    /// `old` member. None when the resource is not diffed, or the previous version is not
    /// known (the first change after a restart from a checkpoint).
    pub fn diff(&self) -> Option<&'a str> {
        self.record.diff.map(|s| self.batch.text(s))
    }

    /// Decodes the object into a type, e.g. a `k8s_openapi` one:
    /// `event.object::<k8s_openapi::api::core::v1::ConfigMap>()`.
    pub fn object<K: DeserializeOwned>(&self) -> Result<K, ObjectError> {
        let raw = self.raw_object().ok_or(ObjectError::Missing)?;
        Ok(serde_json::from_str(raw)?)
    }

    /// Indexes into [`WatchConfig::entries`](crate::WatchConfig::entries) of the entries that
    /// match the object (the Go tool's `MatchedEvent.Config`); empty in workload watching.
    ///
    /// An object matched by entries that are served by different server-side watches (say, one
    /// with a label selector and one without) is delivered once, by the watch that saw the
    /// change first: the entries of that watch are the ones reported.
    pub fn matched_entries(&self) -> &'a [usize] {
        match self.record.matched {
            Matched::All => &self.batch.stream.entries,
            Matched::Range(start, len) => self
                .batch
                .matched
                .get(start as usize..(start + len) as usize)
                .unwrap_or_default(),
        }
    }

    /// A copy that owns just this event's bytes (not the frame it came in).
    pub fn to_owned(&self) -> OwnedEvent {
        let mut batch = EventBatch::new(self.batch.stream.clone(), Bytes::new(), None);
        batch.observed = self.batch.observed;
        let mut copy = |span: Span| batch.side_span(self.batch.bytes(span));
        let mut record = Record {
            name: copy(self.record.name),
            namespace: self.record.namespace.map(&mut copy),
            uid: copy(self.record.uid),
            resource_version: copy(self.record.resource_version),
            labels: self.record.labels.map(&mut copy),
            annotations: self.record.annotations.map(&mut copy),
            object: self.record.object.map(&mut copy),
            changed_by: self.record.changed_by.map(&mut copy),
            diff: self.record.diff.map(&mut copy),
            ..self.record.clone()
        };
        if let Matched::Range(..) = record.matched {
            batch.matched.extend_from_slice(self.matched_entries());
            record.matched = Matched::Range(0, batch.matched.len() as u32);
        }
        batch.records.push(record);
        OwnedEvent {
            batch: Arc::new(batch),
            index: 0,
        }
    }

    /// The event as one JSON line of the wire format, without the newline.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        JsonEncoder::new().encode(self, &mut out);
        out.pop();
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The managedFields entry of a change ([`Event::changed_by`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[non_exhaustive]
pub struct ChangedBy<'a> {
    /// The field manager.
    #[serde(borrow)]
    pub manager: Cow<'a, str>,
    /// `Update` or `Apply` (server-side apply).
    #[serde(borrow)]
    pub operation: Cow<'a, str>,
    /// `status` or `scale` for writes to a subresource.
    #[serde(borrow, default)]
    pub subresource: Option<Cow<'a, str>>,
    /// The entry's time (to the second), when it has one.
    #[serde(borrow, default)]
    pub time: Option<Cow<'a, str>>,
    /// Several entries advanced (versions in between were not seen), or none did (two writes
    /// in one second): this is the most recent entry, a guess.
    #[serde(skip)]
    pub ambiguous: bool,
}

/// An event that can be kept: sent to another task, stored, retried later.
///
/// Events of a watcher's [`EventStream`](crate::watcher::EventStream) share the frame they came
/// in until the last of them is dropped; [`Event::to_owned`] copies one event alone.
#[derive(Clone)]
pub struct OwnedEvent {
    batch: Arc<EventBatch>,
    index: usize,
}

impl OwnedEvent {
    /// The `index`-th event of a shared batch.
    pub(crate) fn shared(batch: Arc<EventBatch>, index: usize) -> OwnedEvent {
        OwnedEvent { batch, index }
    }

    /// The event.
    pub fn as_event(&self) -> Event<'_> {
        Event {
            batch: &self.batch,
            // Invariant: an OwnedEvent is only made for an index of its batch (`shared` from
            // the stream's loop over the batch, `to_owned` for its one record).
            record: &self.batch.records[self.index],
        }
    }
}

impl fmt::Debug for OwnedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_event().fmt(f)
    }
}

/// A label or annotation map of an event, decoded on demand.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringMap<'a>(Option<&'a str>);

impl<'a> StringMap<'a> {
    /// The map as the server sent it (JSON text), if present.
    pub fn as_json(&self) -> Option<&'a str> {
        self.0
    }

    /// Whether the map is absent or empty.
    pub fn is_empty(&self) -> bool {
        is_empty_map(self.0)
    }

    /// The pairs, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)> + use<'a> {
        string_map(self.0).into_iter()
    }

    /// The value of one key.
    pub fn get(&self, key: &str) -> Option<Cow<'a, str>> {
        self.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Decodes a raw label (or annotation) map into pairs, in key order (nothing when it does not
/// decode).
pub(crate) fn string_map(raw: Option<&str>) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    #[derive(serde::Deserialize)]
    struct Map<'a>(#[serde(borrow)] std::collections::BTreeMap<Cow<'a, str>, Cow<'a, str>>);
    let Some(raw) = raw else { return Vec::new() };
    serde_json::from_str::<Map>(raw)
        .map(|m| m.0.into_iter().collect())
        .unwrap_or_default()
}

fn is_empty_map(raw: Option<&str>) -> bool {
    raw.is_none_or(|r| {
        let t = r.trim();
        t == "{}" || t == "null"
    })
}

/// Writes events as JSON lines of the wire format (see the [module documentation](self)).
///
/// It keeps the start of the line it wrote last (`{"timestamp":…,"eventType":…,"gvr":…`), which
/// the events of one frame share, so that each of those is rendered once per frame.
#[derive(Debug, Default)]
pub struct JsonEncoder {
    /// The observation time and GVR of the cached prefixes.
    key: Option<(SystemTime, Arc<str>)>,
    /// The line start per event type.
    prefixes: [Vec<u8>; 3],
}

impl JsonEncoder {
    /// An encoder.
    pub fn new() -> JsonEncoder {
        JsonEncoder::default()
    }

    /// Appends one line (with its `\n`) for `event` to `out`.
    pub fn encode(&mut self, event: &Event, out: &mut Vec<u8>) {
        let batch = event.batch;
        let r = event.record;
        out.reserve(128);
        out.extend_from_slice(self.prefix(batch, r.event_type));
        let verbatim = r.flags & flag::VERBATIM != 0;
        let string = |out: &mut Vec<u8>, span: Span| {
            let bytes = batch.bytes(span);
            if verbatim {
                out.push(b'"');
                out.extend_from_slice(bytes);
                out.push(b'"');
            } else {
                push_str(out, batch.text(span));
            }
        };
        if let Some(ns) = r.namespace {
            out.extend_from_slice(b",\"namespace\":");
            string(out, ns);
        }
        out.extend_from_slice(b",\"name\":");
        string(out, r.name);
        out.extend_from_slice(b",\"uid\":");
        string(out, r.uid);
        out.extend_from_slice(b",\"resourceVersion\":");
        string(out, r.resource_version);
        if let Some(labels) = r.labels {
            let raw = batch.bytes(labels);
            if !is_empty_json_map(raw) {
                out.extend_from_slice(b",\"labels\":");
                out.extend_from_slice(raw);
            }
        }
        if let Some(annotations) = r.annotations {
            let raw = batch.bytes(annotations);
            if !is_empty_json_map(raw) {
                out.extend_from_slice(b",\"annotations\":");
                out.extend_from_slice(raw);
            }
        }
        if r.flags & flag::INITIAL != 0 {
            out.extend_from_slice(b",\"initial\":true");
        }
        if let Some(w) = &r.workload {
            out.extend_from_slice(b",\"workload_id\":");
            push_str(out, &w.id);
            out.extend_from_slice(b",\"workload_name\":");
            push_str(out, &w.name);
        }
        if let Some(by) = r.changed_by {
            out.extend_from_slice(b",\"changedBy\":");
            out.extend_from_slice(batch.bytes(by));
            if r.flags & flag::AMBIGUOUS != 0 {
                out.extend_from_slice(b",\"changedByAmbiguous\":true");
            }
        }
        if let Some(diff) = r.diff {
            out.extend_from_slice(b",\"diff\":");
            out.extend_from_slice(batch.bytes(diff));
        }
        if let Some(object) = r.object {
            out.extend_from_slice(b",\"object\":");
            out.extend_from_slice(batch.bytes(object));
        }
        if r.flags & flag::RESYNC != 0 {
            out.extend_from_slice(b",\"resync\":true");
        }
        out.extend_from_slice(b"}\n");
    }

    fn prefix(&mut self, batch: &EventBatch, event_type: EventType) -> &[u8] {
        let fresh = self.key.as_ref().is_some_and(|(observed, gvr)| {
            *observed == batch.observed && **gvr == *batch.stream.gvr_text
        });
        if !fresh {
            let timestamp = timestamp(batch.observed);
            for (i, t) in [EventType::Added, EventType::Updated, EventType::Deleted]
                .into_iter()
                .enumerate()
            {
                let out = &mut self.prefixes[i];
                out.clear();
                out.extend_from_slice(b"{\"timestamp\":\"");
                out.extend_from_slice(timestamp.as_bytes());
                out.extend_from_slice(b"\",\"eventType\":\"");
                out.extend_from_slice(t.as_str().as_bytes());
                out.extend_from_slice(b"\",\"gvr\":");
                push_str(out, &batch.stream.gvr_text);
            }
            self.key = Some((batch.observed, batch.stream.gvr_text.clone()));
        }
        &self.prefixes[event_type as usize]
    }
}

fn is_empty_json_map(raw: &[u8]) -> bool {
    let t = raw.trim_ascii();
    t == b"{}" || t == b"null"
}

/// A time as the wire format writes it: RFC 3339 UTC with microseconds.
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    // Names, uids and resourceVersions almost never need escaping: copy them as they are.
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // serde_json escapes exactly what JSON requires; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A batch of one event built from plain strings (all copied into the batch's own bytes).
    pub(crate) struct Sample<'s> {
        pub gvr: &'s str,
        pub event_type: EventType,
        pub namespace: Option<&'s str>,
        pub name: &'s str,
        pub uid: &'s str,
        pub labels: Option<&'s str>,
        pub annotations: Option<&'s str>,
        pub object: Option<&'s str>,
        pub initial: bool,
        pub workload: Option<(&'s str, &'s str)>,
        pub changed_by: Option<(&'s str, bool)>,
        pub diff: Option<&'s str>,
    }

    impl Default for Sample<'_> {
        fn default() -> Self {
            Sample {
                gvr: "v1/configmaps",
                event_type: EventType::Added,
                namespace: Some("default"),
                name: "cm1",
                uid: "u1",
                labels: None,
                annotations: None,
                object: None,
                initial: false,
                workload: None,
                changed_by: None,
                diff: None,
            }
        }
    }

    impl Sample<'_> {
        pub(crate) fn batch(&self, observed: SystemTime) -> EventBatch {
            let gvr: Gvr = self.gvr.parse().unwrap();
            let stream = Arc::new(StreamInfo {
                id: 1,
                gvr_text: Arc::from(gvr.to_string()),
                gvr,
                kind: "ConfigMap".into(),
                entries: Arc::from([0]),
            });
            let mut batch = EventBatch::new(stream, Bytes::new(), None);
            batch.observed = observed;
            let record = Record {
                event_type: self.event_type,
                flags: if self.initial { flag::INITIAL } else { 0 }
                    | if self.changed_by.is_some_and(|(_, a)| a) {
                        flag::AMBIGUOUS
                    } else {
                        0
                    },
                name: batch.span(self.name),
                namespace: self.namespace.map(|n| batch.span(n)),
                uid: batch.span(self.uid),
                resource_version: batch.span("42"),
                labels: self.labels.map(|l| batch.span(l)),
                annotations: self.annotations.map(|a| batch.span(a)),
                object: self.object.map(|o| batch.span(o)),
                changed_by: self.changed_by.map(|(c, _)| batch.span(c)),
                diff: self.diff.map(|d| batch.span(d)),
                workload: self.workload.map(|(id, name)| {
                    Arc::new(WorkloadRef {
                        id: id.into(),
                        name: name.into(),
                    })
                }),
                matched: Matched::All,
            };
            batch.records.push(record);
            batch
        }
    }

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000)
    }

    fn line(sample: &Sample) -> String {
        let batch = sample.batch(t0());
        let mut out = Vec::new();
        JsonEncoder::new().encode(&batch.event(0).unwrap(), &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(out.last(), Some(&b'\n'));
        String::from_utf8(out).unwrap()
    }

    fn json(sample: &Sample) -> serde_json::Value {
        serde_json::from_str(&line(sample)).unwrap()
    }

    #[test]
    fn json_lines_have_the_contract_keys_in_order() {
        let text = line(&Sample {
            labels: Some(r#"{"app":"web"}"#),
            initial: true,
            workload: Some(("w1", "tenant")),
            ..Sample::default()
        });
        assert_eq!(
            text,
            "{\"timestamp\":\"2026-11-18T11:06:40.000000Z\",\"eventType\":\"ADDED\",\"gvr\":\"v1/configmaps\",\"namespace\":\"default\",\"name\":\"cm1\",\"uid\":\"u1\",\"resourceVersion\":\"42\",\"labels\":{\"app\":\"web\"},\"initial\":true,\"workload_id\":\"w1\",\"workload_name\":\"tenant\"}\n"
        );
    }

    #[test]
    fn empty_maps_and_absent_options_are_left_out() {
        let v = json(&Sample {
            labels: Some("{}"),
            annotations: Some("{}"),
            namespace: None,
            ..Sample::default()
        });
        for key in [
            "labels",
            "annotations",
            "namespace",
            "initial",
            "workload_id",
            "object",
        ] {
            assert!(v.get(key).is_none(), "{key} should be absent: {v}");
        }
    }

    #[test]
    fn names_that_need_escaping_are_escaped() {
        let v = json(&Sample {
            name: "we\"ird\n",
            ..Sample::default()
        });
        assert_eq!(v["name"], "we\"ird\n");
    }

    #[test]
    fn accessors_read_what_the_line_says() {
        let batch = Sample {
            labels: Some(r#"{"app":"web","tier":"d\"b"}"#),
            object: Some(r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm1","namespace":"default"},"data":{"k":"v"}}"#),
            workload: Some(("w1", "tenant")),
            ..Sample::default()
        }
        .batch(t0());
        let event = batch.event(0).unwrap();
        assert_eq!(event.event_type(), EventType::Added);
        assert_eq!(event.gvr().to_string(), "v1/configmaps");
        assert_eq!(
            (event.namespace(), event.name(), event.uid()),
            (Some("default"), "cm1", "u1")
        );
        assert_eq!(event.resource_version(), "42");
        assert_eq!(event.labels().get("tier").as_deref(), Some("d\"b"));
        assert_eq!(event.labels().iter().count(), 2);
        assert!(event.annotations().is_empty());
        assert_eq!(event.workload().map(|w| w.id.as_str()), Some("w1"));
        assert_eq!(event.matched_entries(), &[0]);
        let cm: k8s_openapi::api::core::v1::ConfigMap = event.object().unwrap();
        assert_eq!(cm.data.unwrap()["k"], "v");
    }

    #[test]
    fn changed_by_and_diff_follow_the_workload_and_precede_the_object() {
        let by = r#"{"manager":"kubectl-edit","operation":"Update","time":"2026-12-02T10:00:00Z"}"#;
        let diff = r#"[{"op":"replace","path":"/data/k","value":"b","old":"a"}]"#;
        let text = line(&Sample {
            event_type: EventType::Updated,
            changed_by: Some((by, true)),
            diff: Some(diff),
            object: Some("{}"),
            ..Sample::default()
        });
        assert!(
            text.ends_with(&format!(
                ",\"changedBy\":{by},\"changedByAmbiguous\":true,\"diff\":{diff},\"object\":{{}}}}\n"
            )),
            "{text}"
        );
        let batch = Sample {
            changed_by: Some((by, false)),
            diff: Some(diff),
            ..Sample::default()
        }
        .batch(t0());
        let event = batch.event(0).unwrap();
        let changed = event.changed_by().unwrap();
        assert_eq!(
            (
                changed.manager.as_ref(),
                changed.operation.as_ref(),
                changed.ambiguous
            ),
            ("kubectl-edit", "Update", false)
        );
        assert_eq!(changed.subresource, None);
        assert_eq!(event.diff(), Some(diff));
        assert_eq!(event.to_owned().as_event().diff(), Some(diff));
        assert!(!line(&Sample::default()).contains("changedBy"));
    }

    #[test]
    fn an_owned_copy_keeps_everything_but_the_frame() {
        let batch = Sample {
            labels: Some(r#"{"app":"web"}"#),
            object: Some(r#"{"metadata":{}}"#),
            ..Sample::default()
        }
        .batch(t0());
        let event = batch.event(0).unwrap();
        let owned = event.to_owned();
        assert_eq!(
            owned.as_event().to_json(),
            batch.event(0).unwrap().to_json()
        );
        assert_eq!(owned.as_event().observed(), t0());
    }

    #[test]
    fn an_event_without_object_says_so() {
        let batch = Sample::default().batch(t0());
        let err = batch
            .event(0)
            .unwrap()
            .object::<serde_json::Value>()
            .unwrap_err();
        assert!(matches!(err, ObjectError::Missing));
    }

    #[test]
    fn the_line_start_is_rebuilt_for_another_frame_or_gvr() {
        let mut encoder = JsonEncoder::new();
        let mut out = Vec::new();
        let a = Sample::default().batch(t0());
        let b = Sample {
            gvr: "v1/secrets",
            ..Sample::default()
        }
        .batch(t0());
        let c = Sample::default().batch(t0() + std::time::Duration::from_micros(1));
        for batch in [&a, &b, &c] {
            encoder.encode(&batch.event(0).unwrap(), &mut out);
        }
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[1]["gvr"], "v1/secrets");
        assert_eq!(lines[2]["timestamp"], "2026-11-18T11:06:40.000001Z");
    }
}
