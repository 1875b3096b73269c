//! Watch streams. Each open watch is one task that pulls the events of its resource (and
//! namespace) from the history after its cursor, filters them through its selectors (an update
//! leaving the selector becomes DELETED, one entering it ADDED), and writes the shared
//! pre-serialized lines into a small bounded channel feeding the chunked response body.
//! Nothing is ever pushed into a watcher: a slow client only delays its own task, and one
//! whose unread events are trimmed from the history is closed (clients re-watch from their
//! last RV), like the apiserver closing unresponsive watchers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::body::Body;
use crate::event::{Event, EventType, Line};
use crate::field_selector::FieldSelector;
use crate::history::Read;
use crate::label_selector::LabelSelector;
use crate::object::{meta_str, rfc3339_nanos};
use crate::registry::{ResourceInfo, ResourceKey};
use crate::sim::Sim;

/// Events read from the history per lock acquisition.
const BATCH: usize = 4096;
/// Copied lines are coalesced into chunks of about this size.
const CHUNK: usize = 64 * 1024;
/// Zero-copy runs of pre-rendered lines are cut at this size.
const MAX_RUN: usize = 4 * 1024 * 1024;
/// Chunks buffered between a watch task and its socket.
const CHANNEL: usize = 8;

/// Where a watch starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Synthetic ADDED events for the current state, then changes (RV unset or "0").
    State,
    /// Changes strictly after this RV.
    After(u64),
    /// A streaming list: current state, the initial-events-end bookmark, then changes.
    StreamingList,
}

/// A validated watch request.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    /// The watched resource (in the requested version).
    pub info: Arc<ResourceInfo>,
    /// Namespace (None = all namespaces or cluster-scoped).
    pub namespace: Option<String>,
    /// Object name, when the path names one.
    pub name: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
    /// KEP-5866 shard selector, when honoured.
    pub shard: Option<crate::shard_selector::ShardSelector>,
    /// Where to start.
    pub start: Start,
    /// Send BOOKMARK events.
    pub bookmarks: bool,
    /// Close cleanly after this long.
    pub timeout: Option<Duration>,
    /// For `/_sim/watches`: the request path, raw selectors and RV.
    pub path: String,
    /// Raw `labelSelector`.
    pub label_selector_raw: String,
    /// Raw `fieldSelector`.
    pub field_selector_raw: String,
    /// Raw `resourceVersion`.
    pub resource_version_raw: String,
}

impl WatchRequest {
    fn filtered(&self) -> bool {
        self.name.is_some()
            || !self.labels.is_empty()
            || !self.fields.is_empty()
            || self.shard.is_some()
    }

    fn matches(&self, obj: &Value) -> bool {
        if let Some(n) = &self.name
            && meta_str(obj, "name") != Some(n.as_str())
        {
            return false;
        }
        self.labels.matches_object(obj)
            && self.fields.matches(obj)
            && self.shard.as_ref().is_none_or(|s| s.matches(obj))
    }
}

/// One open watch, as `/_sim/watches` lists it.
#[derive(Debug, Clone)]
struct OpenWatch {
    request: Arc<WatchRequest>,
    started: SystemTime,
    cancel: CancellationToken,
    /// Cancelled to make the stream go silent: open, but sending nothing more.
    silence: CancellationToken,
}

/// The registry of open watch streams.
#[derive(Debug, Default)]
pub struct Watches {
    next: AtomicU64,
    open: Mutex<HashMap<u64, OpenWatch>>,
}

/// Removes a watch from the registry when its task ends.
struct Registration {
    sim: Arc<Sim>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.sim.watches.open.lock().remove(&self.id);
    }
}

impl Watches {
    /// Closes watches of `resource` (and `group`, when given), or all; returns how many.
    /// Each stream first sends what was committed before the call.
    pub fn close(&self, group: Option<&str>, resource: Option<&str>) -> usize {
        let open = self.open.lock();
        let mut n = 0;
        for w in open.values() {
            let i = &w.request.info;
            if resource.is_none_or(|r| r == i.plural) && group.is_none_or(|g| g == i.group) {
                w.cancel.cancel();
                n += 1;
            }
        }
        n
    }

    /// Makes the open watches of `resource` (and `group`, when given), or all, silent: the
    /// connection stays open until the watch's timeout, but nothing more is sent, neither events
    /// nor bookmarks (a watch that "goes quiet", as users of long-running watches report). New
    /// watches are not affected. Returns how many.
    pub fn silence(&self, group: Option<&str>, resource: Option<&str>) -> usize {
        let open = self.open.lock();
        let mut n = 0;
        for w in open.values() {
            let i = &w.request.info;
            if resource.is_none_or(|r| r == i.plural) && group.is_none_or(|g| g == i.group) {
                w.silence.cancel();
                n += 1;
            }
        }
        n
    }

    /// The open watches as JSON.
    pub fn describe(&self) -> Value {
        let open = self.open.lock();
        let mut items: Vec<(u64, Value)> = open
            .iter()
            .map(|(id, w)| {
                let r = &w.request;
                (
                    *id,
                    json!({
                        "id": id,
                        "path": r.path,
                        "group": r.info.group,
                        "version": r.info.version,
                        "resource": r.info.plural,
                        "namespace": r.namespace,
                        "name": r.name,
                        "labelSelector": r.label_selector_raw,
                        "fieldSelector": r.field_selector_raw,
                        "resourceVersion": r.resource_version_raw,
                        "sendInitialEvents": r.start == Start::StreamingList,
                        "allowWatchBookmarks": r.bookmarks,
                        "timeoutSeconds": r.timeout.map(|t| t.as_secs()),
                        "started": rfc3339_nanos(w.started),
                        "silenced": w.silence.is_cancelled(),
                    }),
                )
            })
            .collect();
        items.sort_by_key(|(id, _)| *id);
        json!({ "count": items.len(), "watches": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>() })
    }
}

/// The single ERROR event of a watch whose start RV is older than the history floor
/// (HTTP 200 + this event, never an HTTP 410: k8s-protocol.md §3.4).
pub fn expired_line(requested: u64, floor: u64) -> Bytes {
    let ev = json!({
        "type": "ERROR",
        "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {requested} ({floor})"),
            "reason": "Expired", "code": 410
        }
    });
    let mut s = ev.to_string();
    s.push('\n');
    Bytes::from(s)
}

fn bookmark_line(info: &ResourceInfo, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let ev = json!({
        "type": "BOOKMARK",
        "object": {"kind": info.kind, "apiVersion": info.api_version(), "metadata": meta}
    });
    let mut s = ev.to_string();
    s.push('\n');
    Bytes::from(s)
}

/// Coalesces lines into few large chunks; runs of lines that are adjacent slices of one
/// pre-rendered buffer are passed on as a single zero-copy slice.
struct Out {
    sink: mpsc::Sender<Bytes>,
    copy: BytesMut,
    run: Option<Line>,
    ready: Vec<Bytes>,
    ready_len: usize,
}

impl Out {
    fn new(sink: mpsc::Sender<Bytes>) -> Out {
        Out {
            sink,
            copy: BytesMut::new(),
            run: None,
            ready: Vec::new(),
            ready_len: 0,
        }
    }

    fn seal_run(&mut self) {
        if let Some(r) = self.run.take() {
            self.ready_len += r.end - r.start;
            self.ready.push(r.bytes());
        }
    }

    fn seal_copy(&mut self) {
        if !self.copy.is_empty() {
            let b = self.copy.split().freeze();
            self.ready_len += b.len();
            self.ready.push(b);
        }
    }

    fn line(&mut self, line: &Line) {
        if line.end - line.start < line.buf.len() {
            if let Some(r) = &mut self.run
                && r.buf.as_ptr() == line.buf.as_ptr()
                && r.end == line.start
                && r.end - r.start < MAX_RUN
            {
                r.end = line.end;
                return;
            }
            self.seal_run();
            self.seal_copy();
            self.run = Some(line.clone());
        } else {
            self.bytes(&line.buf[line.start..line.end]);
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        self.seal_run();
        self.copy.extend_from_slice(b);
        if self.copy.len() >= CHUNK {
            self.seal_copy();
        }
    }

    fn pending(&self) -> usize {
        self.ready_len + self.copy.len()
    }

    async fn flush(&mut self) -> Result<(), ()> {
        self.seal_run();
        self.seal_copy();
        self.ready_len = 0;
        for b in self.ready.drain(..) {
            self.sink.send(b).await.map_err(|_| ())?;
        }
        Ok(())
    }
}

fn render(req: &WatchRequest, api_version: &str, ev: &Event, out: &mut Out) {
    let etype = if !req.filtered() {
        Some(ev.etype)
    } else {
        match ev.etype {
            EventType::Added => req.matches(&ev.object).then_some(EventType::Added),
            EventType::Deleted => req.matches(&ev.object).then_some(EventType::Deleted),
            EventType::Modified => {
                let was = ev.prev.as_deref().is_some_and(|p| req.matches(p));
                match (was, req.matches(&ev.object)) {
                    (true, true) => Some(EventType::Modified),
                    (false, true) => Some(EventType::Added),
                    (true, false) => Some(EventType::Deleted),
                    (false, false) => None,
                }
            }
        }
    };
    let Some(etype) = etype else { return };
    if ev.api_version() != api_version {
        out.bytes(&ev.line_for_version(etype, api_version));
    } else if etype == ev.etype {
        out.line(&ev.line);
    } else if etype == EventType::Deleted {
        out.bytes(&ev.leave_line());
    } else {
        out.bytes(&ev.line_as(etype));
    }
}

/// How a drain ended.
enum Drained {
    /// Caught up with everything committed up to this RV.
    UpTo(u64),
    /// The client went away or the watcher lagged past the history: close.
    Close,
}

struct Task {
    sim: Arc<Sim>,
    req: Arc<WatchRequest>,
    /// `req.info.key()`, built once.
    key: ResourceKey,
    api_version: String,
    cursor: u64,
    out: Out,
    notify: tokio::sync::watch::Receiver<u64>,
}

impl Task {
    async fn drain(&mut self) -> Drained {
        loop {
            self.notify.borrow_and_update();
            let read = {
                let tx = self.sim.store.tx();
                tx.read(&self.key, self.req.namespace.as_deref(), self.cursor, BATCH)
            };
            match read {
                Read::Events(evs) => {
                    for ev in &evs {
                        render(&self.req, &self.api_version, ev, &mut self.out);
                        if self.out.pending() >= MAX_RUN && self.out.flush().await.is_err() {
                            return Drained::Close;
                        }
                    }
                    if let Some(last) = evs.last() {
                        self.cursor = last.rv;
                    }
                }
                Read::UpToDate(rv) => {
                    if self.out.flush().await.is_err() {
                        return Drained::Close;
                    }
                    return Drained::UpTo(rv);
                }
                Read::Lagged => {
                    let _ = self.out.flush().await;
                    return Drained::Close;
                }
            }
        }
    }

    async fn bookmark(&mut self, rv: u64) -> Result<(), ()> {
        self.out.bytes(&bookmark_line(&self.req.info, rv, false));
        self.out.flush().await
    }

    async fn run(
        mut self,
        initial: Vec<Arc<Event>>,
        cancel: CancellationToken,
        silence: CancellationToken,
    ) {
        for ev in &initial {
            if self.req.matches(&ev.object) {
                if ev.api_version() == self.api_version {
                    self.out.bytes(&ev.line_as(EventType::Added));
                } else {
                    self.out
                        .bytes(&ev.line_for_version(EventType::Added, &self.api_version));
                }
                if self.out.pending() >= MAX_RUN && self.out.flush().await.is_err() {
                    return;
                }
            }
        }
        drop(initial);
        if self.req.start == Start::StreamingList
            && self.req.bookmarks
            && self.sim.watch_list() != crate::sim::WatchList::NoEndBookmark
        {
            self.out
                .bytes(&bookmark_line(&self.req.info, self.cursor, true));
        }
        if self.out.flush().await.is_err() {
            return;
        }
        let deadline = self.req.timeout.map(|t| Instant::now() + t);
        let interval =
            || Duration::from_millis(self.sim.bookmark_ms.load(Ordering::Relaxed).max(10));
        let mut next_bookmark = Instant::now() + interval();
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        loop {
            // Checked before draining, and first in the select below: nothing committed after
            // the silence may go out, even when the task was busy as it came.
            if silence.is_cancelled() {
                break;
            }
            let current = match self.drain().await {
                Drained::UpTo(rv) => rv,
                Drained::Close => return,
            };
            if cancel.is_cancelled() {
                return;
            }
            // Biased: a silence or a drop wins over changes ready at the same time.
            tokio::select! {
                biased;
                _ = silence.cancelled() => break,
                // The client went away (its connection closed or cut, or its HTTP/2 stream
                // reset): end now rather than at the next event or bookmark.
                _ = self.out.sink.closed() => return,
                _ = cancel.cancelled() => {
                    let _ = self.drain().await;
                    return;
                }
                _ = tokio::time::sleep_until(next_bookmark), if self.req.bookmarks => {
                    let rv = match self.drain().await {
                        Drained::UpTo(rv) => rv.max(current),
                        Drained::Close => return,
                    };
                    if self.bookmark(rv).await.is_err() {
                        return;
                    }
                    next_bookmark = Instant::now() + Duration::from_millis(self.sim.bookmark_ms.load(Ordering::Relaxed).max(10));
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                    if let Drained::UpTo(rv) = self.drain().await
                        && self.req.bookmarks
                    {
                        let _ = self.bookmark(rv).await;
                    }
                    return;
                }
                // Last, so that timers still fire while changes keep coming.
                changed = self.notify.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
        // Silenced: open but mute until the deadline (or the server's shutdown, a drop, or the
        // client going away).
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = self.out.sink.closed() => {}
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => {}
        }
    }
}

/// Starts a watch: snapshots what it needs under the store lock, registers it, spawns its
/// task and returns the streaming body.
pub fn start(sim: &Arc<Sim>, req: WatchRequest) -> Body {
    let (sink, rx) = mpsc::channel(CHANNEL);
    let key = req.info.key();
    let ns = req.namespace.clone();
    let (initial, cursor, notify) = {
        let mut tx = sim.store.tx();
        if let Start::After(x) = req.start {
            let floor = tx.floor();
            if x < floor {
                let line = expired_line(x, floor);
                drop(tx);
                let _ = sink.try_send(line);
                return Body::Stream(rx);
            }
        }
        let notify = tx.subscribe(&key, ns.as_deref());
        match req.start {
            Start::After(x) => (Vec::new(), x, notify),
            Start::State | Start::StreamingList => {
                let items = match &req.name {
                    Some(n) => tx
                        .get(&key, ns.as_deref().unwrap_or(""), n)
                        .cloned()
                        .into_iter()
                        .collect(),
                    None => tx.list(&key, ns.as_deref()),
                };
                (items, tx.rv(), notify)
            }
        }
    };
    let req = Arc::new(req);
    let cancel = sim.shutdown.child_token();
    let silence = CancellationToken::new();
    let id = sim.watches.next.fetch_add(1, Ordering::Relaxed) + 1;
    sim.watches.open.lock().insert(
        id,
        OpenWatch {
            request: req.clone(),
            started: SystemTime::now(),
            cancel: cancel.clone(),
            silence: silence.clone(),
        },
    );
    let registration = Registration {
        sim: sim.clone(),
        id,
    };
    let task = Task {
        sim: sim.clone(),
        key,
        api_version: req.info.api_version(),
        req,
        cursor,
        out: Out::new(sink),
        notify,
    };
    tokio::spawn(async move {
        let _registration = registration;
        task.run(initial, cancel, silence).await;
    });
    Body::Stream(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_events_carry_code_410_and_reason_expired() {
        let v: Value = serde_json::from_slice(&expired_line(3, 9)).expect("json");
        assert_eq!(v["type"], "ERROR");
        assert_eq!(v["object"]["code"], 410);
        assert_eq!(v["object"]["reason"], "Expired");
        assert_eq!(v["object"]["message"], "too old resource version: 3 (9)");
    }

    #[tokio::test]
    async fn adjacent_slices_of_one_buffer_leave_as_one_chunk() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut out = Out::new(tx);
        let buf = Bytes::from_static(b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
        out.line(&Line {
            buf: buf.clone(),
            start: 0,
            end: 8,
        });
        out.line(&Line {
            buf: buf.clone(),
            start: 8,
            end: 16,
        });
        out.bytes(b"x\n");
        out.line(&Line {
            buf: buf.clone(),
            start: 16,
            end: 24,
        });
        out.flush().await.expect("open");
        drop(out);
        let mut chunks = Vec::new();
        while let Some(c) = rx.recv().await {
            chunks.push(c);
        }
        assert_eq!(chunks.len(), 3);
        assert_eq!(&chunks[0][..], b"{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(chunks[0].as_ptr(), buf.as_ptr());
        assert_eq!(&chunks[1][..], b"x\n");
    }
}
