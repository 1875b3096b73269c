//! One server-side watch, run as a task: list, then watch from the list's resourceVersion,
//! resume after every disconnect, relist after `410 Expired`, and turn what it sees into faro
//! events through the shared per-GVR [`state::ObjectSet`].
//!
//! faro speaks list/watch itself over kube's `Client::send` instead of using kube-runtime's
//! `watcher`, because the guarantees and targets of design.md need what the watcher hides:
//! - ADDED and MODIFIED stay apart, and objects that vanished during a relist are reported
//!   (the watcher merges the first two and silently drops the last, kube-rs-notes.md §6.5);
//! - 403 is reported once with the missing permission, and 404/410 at watch start end the
//!   attempt (the watcher retries those forever, §6.3);
//! - each line is decoded once, borrowing only the metadata, and the raw object bytes are at
//!   hand for `--include-object`: decoding every event into a `DynamicObject` tree costs
//!   several times more than the throughput target allows (design.md §8).
//!
//! # Recovery
//! - stream end or timeout: re-watch from the last resourceVersion seen (events and bookmarks);
//!   nothing is lost or repeated;
//! - `ERROR` 410 on the stream or HTTP 410 at watch start: relist, then emit only the
//!   difference (UPDATED for changed objects, DELETED for vanished ones, nothing for the rest);
//! - a line that does not decode: the stream is dropped and resumed from the last good
//!   resourceVersion, so the event is read again rather than lost;
//! - other failures: exponential backoff (250 ms to 30 s; 5 min for 403) and retry.

pub mod parse;
pub mod state;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use kube::Client;
use tokio::sync::{mpsc, watch};

use crate::emit::{self, Batch, EventType, Record, Renderer, Sink, Stamp};
use crate::filter::ObjectFilter;
use crate::gvr::Gvr;
use crate::kubeclient::{self, ApiError, RequestError};
use crate::workload::{Membership, WorkloadRef};
use parse::{Meta, WatchType, string_map};
use state::{Change, ObjectSet, Rv, StreamId, Uid};

/// What identifies a server-side watch: the collection and the selectors sent with it, plus
/// the client-side filter set it serves (a different filter set is a different stream).
///
/// The field order is the sort order. The namespace comes first: `faro workload` keeps thousands
/// of keys that share a few GVRs and differ by namespace, and the registry compares them all on
/// every change of a namespace; deciding on the first field keeps that cheap.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// Namespace of a namespace-scoped watch; None for cluster-wide.
    pub namespace: Option<String>,
    /// The resource.
    pub gvr: Gvr,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// Identifies the client-side filter set (indexes of the config entries served).
    pub filter_id: Vec<u32>,
}

impl std::fmt::Display for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.gvr)?;
        if let Some(ns) = &self.namespace {
            write!(f, " in {ns}")?;
        }
        if let Some(ls) = &self.label_selector {
            write!(f, " labels {ls:?}")?;
        }
        if let Some(fs) = &self.field_selector {
            write!(f, " fields {fs:?}")?;
        }
        Ok(())
    }
}

/// The registry's bookkeeping streams (not emitted unless also configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlKind {
    /// `v1/namespaces`: drives namespace patterns and workloads.
    Namespaces,
    /// CustomResourceDefinitions: drive re-discovery.
    Crds,
}

/// How to run one stream.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Unique id of this stream for the run.
    pub id: StreamId,
    /// The watch.
    pub key: StreamKey,
    /// Kind and apiVersion of the objects (list items of built-in types lack them).
    pub kind: String,
    /// Client-side filters; None passes everything.
    pub filter: Option<Arc<ObjectFilter>>,
    /// Whether matching objects are emitted (control streams may only feed the registry).
    pub emit: bool,
    /// Feed the registry with this stream's objects.
    pub control: Option<ControlKind>,
    /// ADDED events of the first listing are `initial` (streams started before ready).
    pub initial: bool,
}

/// A change seen by a control stream.
#[derive(Debug, Clone)]
pub enum ControlChange {
    /// A (re)list begins.
    ListStart,
    /// The object exists (listed, added or modified).
    Present {
        /// Object name.
        name: String,
        /// Its labels.
        labels: Vec<(String, String)>,
        /// It has a deletionTimestamp.
        terminating: bool,
    },
    /// The object was deleted.
    Absent {
        /// Object name.
        name: String,
    },
    /// The (re)list is complete: objects not reported since `ListStart` are gone.
    ListEnd,
}

/// A control stream's report to the registry.
#[derive(Debug, Clone)]
pub struct ControlEvent {
    /// Which control stream.
    pub kind: ControlKind,
    /// What happened.
    pub change: ControlChange,
    /// resourceVersion of the event (or of the list).
    pub rv: Rv,
}

/// A stream's state changes, for readiness and reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStatus {
    /// The first listing is complete.
    Synced,
    /// The server refused (403): counted as settled for readiness; retried slowly.
    Forbidden,
    /// The server does not know the resource (404): re-discovery is due.
    NotFound,
    /// The first listing failed otherwise (e.g. a 500 from a broken conversion webhook):
    /// counted as settled so that readiness does not wait forever; retried with backoff.
    Failing,
}

/// Everything the stream tasks share.
pub struct Shared {
    /// The API client.
    pub client: Client,
    /// Where rendered lines go.
    pub sink: Sink,
    /// Renders events for the outputs.
    pub renderer: Renderer,
    /// Add the full object to each event.
    pub include_object: bool,
    /// Drop `initial` events.
    pub no_initial: bool,
    /// Workload membership of namespaces (`faro workload`).
    pub workloads: Option<Arc<RwLock<Membership>>>,
    /// Status reports to the registry.
    pub status: mpsc::UnboundedSender<(StreamId, StreamStatus)>,
    /// Control events to the registry.
    pub control: mpsc::UnboundedSender<ControlEvent>,
    /// `timeoutSeconds` asked of the server per watch request.
    pub watch_timeout: Duration,
    /// `limit` per list page.
    pub page_size: u32,
    /// Bounds the list pages in flight at once (see [`LIST_CONCURRENCY`]).
    pub list_slots: tokio::sync::Semaphore,
}

/// How many list pages may be in flight at once. `faro workload` starts thousands of streams
/// together; unbounded, each initial list would open its own HTTP/1.1 connection (kube 5 speaks
/// no HTTP/2) and hold its response body in memory at the same moment, and the connections
/// left idle in the pool afterwards linger for 90 s. 32 pages keep the server and the start-up
/// fast (the fan-out benchmark's 3,000 lists) without that spike. A page that hangs holds its
/// slot only as long as the API server lets a request run (kube-apiserver's `--request-timeout`,
/// 1 minute by default; an aggregated API whose backend is down answers 503 at once), so a few
/// broken resources cannot hold up the others.
pub const LIST_CONCURRENCY: usize = 32;

/// How a stream is asked to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// faro is shutting down: stop now, emit nothing more.
    Shutdown,
    /// The stream's scope went away (namespace left or deleted, CRD removed) or it is replaced:
    /// emit DELETED for the objects no other stream holds, with resourceVersion `cause`.
    /// With `drain`, first keep reading until the stream has caught up with `cause` (so the
    /// server's own DELETED events, sent just before, are not replaced by synthetic ones).
    Leave {
        /// resourceVersion of the change that caused the stop.
        cause: Rv,
        /// Read on until caught up first.
        drain: bool,
    },
}

/// A running stream.
pub struct StreamHandle {
    stop: watch::Sender<Option<Stop>>,
    task: tokio::task::JoinHandle<()>,
}

impl StreamHandle {
    /// Asks the stream to stop (the first request wins).
    pub fn stop(&self, how: Stop) {
        self.stop.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(how);
                true
            } else {
                false
            }
        });
    }

    /// Waits for the task to end.
    pub async fn join(self) {
        let _ = self.task.await;
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Starts a stream task.
pub fn spawn(
    spec: StreamSpec,
    objects: Arc<Mutex<ObjectSet>>,
    shared: Arc<Shared>,
) -> StreamHandle {
    let (stop, stop_rx) = watch::channel(None);
    let gvr_text: Arc<str> = Arc::from(spec.key.gvr.to_string());
    let secret = spec.key.gvr.group.is_empty() && spec.key.gvr.resource == "secrets";
    // What list items of built-in types lack (they come without kind and apiVersion).
    let type_prefix = format!(
        "{{\"kind\":{},\"apiVersion\":{}",
        serde_json::Value::from(spec.kind.as_str()),
        serde_json::Value::from(spec.key.gvr.api_version())
    );
    // The workload of a namespace-scoped stream's namespace when it started: its synthetic
    // DELETED events, sent after the namespace left, still belong to that workload.
    let start_workload = match (&shared.workloads, &spec.key.namespace) {
        (Some(m), Some(ns)) => m.read().unwrap_or_else(|e| e.into_inner()).get(ns).cloned(),
        _ => None,
    };
    let task = Task {
        start_workload,
        base_path: spec.key.gvr.collection_path(spec.key.namespace.as_deref()),
        spec,
        objects,
        shared,
        stop: stop_rx,
        gvr_text,
        type_prefix,
        secret,
        rv: None,
        high_water: None,
        forbidden_logged: false,
        first_list: true,
    };
    StreamHandle {
        stop,
        task: tokio::spawn(task.run()),
    }
}

/// Why a list or watch attempt ended.
enum End {
    /// Stop requested.
    Stopped(Stop),
    /// Stream closed normally (timeout, EOF): re-watch. `progress` when events arrived.
    Closed { progress: bool },
    /// resourceVersion too old: relist.
    Expired,
    /// A failure to retry after a backoff.
    Failed(RequestError),
}

struct Task {
    spec: StreamSpec,
    objects: Arc<Mutex<ObjectSet>>,
    shared: Arc<Shared>,
    stop: watch::Receiver<Option<Stop>>,
    base_path: String,
    gvr_text: Arc<str>,
    /// `{"kind":…,"apiVersion":…` of this stream's objects, without the closing brace.
    type_prefix: String,
    secret: bool,
    /// Where to resume watching; None means (re)list first.
    rv: Option<String>,
    /// Highest resourceVersion processed (events, bookmarks, lists).
    high_water: Option<Rv>,
    forbidden_logged: bool,
    first_list: bool,
    start_workload: Option<WorkloadRef>,
}

impl Task {
    async fn run(mut self) {
        let mut backoff = Backoff::new(self.spec.id);
        loop {
            let requested = self.stop.borrow().clone();
            if let Some(stop) = requested {
                self.finish(stop).await;
                return;
            }
            let started = Instant::now();
            let end = if self.rv.is_none() {
                self.list().await
            } else {
                self.watch().await
            };
            let delay = match end {
                End::Stopped(stop) => {
                    self.finish(stop).await;
                    return;
                }
                End::Closed { progress } => {
                    if normal_close(progress, started.elapsed()) {
                        backoff.reset();
                        continue;
                    }
                    // An empty stream that ends at once, repeatedly, must not spin.
                    backoff.next_short()
                }
                End::Expired => {
                    tracing::debug!(stream = %self.spec.key, "resourceVersion expired (410): relisting");
                    self.rv = None;
                    continue;
                }
                End::Failed(err) => self.failure(err, &mut backoff),
            };
            tokio::select! {
                biased;
                _ = self.stop.changed() => {}
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn failure(&mut self, err: RequestError, backoff: &mut Backoff) -> Duration {
        match &err {
            RequestError::Api(api) if api.code == 403 => {
                if !self.forbidden_logged {
                    self.forbidden_logged = true;
                    let scope = match &self.spec.key.namespace {
                        Some(ns) => format!("in namespace {ns:?}"),
                        None => "at the cluster scope".to_owned(),
                    };
                    tracing::warn!(
                        "cannot watch {}: forbidden ({}); faro needs the RBAC verbs \"list\" and \"watch\" on resource {:?} in API group {:?} {scope}; the other streams keep running and this one is retried every few minutes",
                        self.spec.key,
                        api.message,
                        self.spec.key.gvr.resource,
                        self.spec.key.gvr.group,
                    );
                    let _ = self
                        .shared
                        .status
                        .send((self.spec.id, StreamStatus::Forbidden));
                }
                backoff.next_slow()
            }
            RequestError::Api(api) if api.code == 404 => {
                tracing::debug!(stream = %self.spec.key, "resource not found (404)");
                let _ = self
                    .shared
                    .status
                    .send((self.spec.id, StreamStatus::NotFound));
                backoff.next()
            }
            _ => {
                tracing::warn!(stream = %self.spec.key, "watch failed, retrying: {err}");
                if self.first_list {
                    let _ = self
                        .shared
                        .status
                        .send((self.spec.id, StreamStatus::Failing));
                }
                backoff.next()
            }
        }
    }

    fn query(&self) -> String {
        let mut q = String::new();
        if let Some(ls) = &self.spec.key.label_selector {
            q.push_str("&labelSelector=");
            q.push_str(&encode(ls));
        }
        if let Some(fs) = &self.spec.key.field_selector {
            q.push_str("&fieldSelector=");
            q.push_str(&encode(fs));
        }
        q
    }

    /// Notes a resourceVersion processed: `rv` as the server wrote it, `parsed` from it.
    fn note_rv(&mut self, rv: &str, parsed: Rv) {
        if rv.is_empty() {
            return;
        }
        self.high_water = Some(match self.high_water.take() {
            Some(current) => current.max(parsed),
            None => parsed,
        });
        match &mut self.rv {
            Some(current) => {
                current.clear();
                current.push_str(rv);
            }
            None => self.rv = Some(rv.to_owned()),
        }
    }

    /// Lists the collection page by page, emitting the difference to what is tracked.
    async fn list(&mut self) -> End {
        let initial = self.first_list && self.spec.initial;
        let mut seen: HashSet<Uid> = HashSet::new();
        // Workload detection needs every namespace before the first one is attributed (a
        // namespace may join a workload by the name of another), so the namespace stream of
        // `faro workload` reads its whole list first. Namespace lists are small.
        let buffer =
            self.spec.control == Some(ControlKind::Namespaces) && self.shared.workloads.is_some();
        let mut buffered: Vec<Bytes> = Vec::new();
        let mut continue_token: Option<String> = None;
        if let Some(kind) = self.spec.control {
            self.control(kind, ControlChange::ListStart, Rv::Num(0));
        }
        let list_rv = loop {
            let mut path = format!(
                "{}?limit={}{}",
                self.base_path,
                self.shared.page_size,
                self.query()
            );
            if let Some(token) = &continue_token {
                path.push_str("&continue=");
                path.push_str(&encode(token));
            }
            let body = tokio::select! {
                biased;
                _ = self.stop.changed() => {
                    return End::Stopped(self.stop.borrow().clone().unwrap_or(Stop::Shutdown));
                }
                result = async {
                    // The semaphore is never closed, so acquiring only waits.
                    let _slot = self.shared.list_slots.acquire().await;
                    fetch(&self.shared.client, &path).await
                } => result,
            };
            let body = match body {
                Ok(body) => body,
                Err(RequestError::Api(api)) if api.code == 410 && continue_token.is_some() => {
                    // The continue token expired: start the list again.
                    continue_token = None;
                    seen.clear();
                    buffered.clear();
                    continue;
                }
                Err(err) => return End::Failed(err),
            };
            let page = match parse::list_page(&body) {
                Ok(page) => page,
                Err(e) => return End::Failed(self.malformed(&e)),
            };
            let next = page
                .metadata
                .continue_token
                .as_deref()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            let rv = page.metadata.resource_version.to_string();
            if buffer {
                drop(page);
                buffered.push(body);
            } else if let Err(end) = self.process_page(&page, initial, &mut seen).await {
                return end;
            }
            match next {
                Some(token) => continue_token = Some(token),
                None => break rv,
            }
        };
        if buffer {
            self.recompute_membership(&buffered);
            for body in &buffered {
                let page = match parse::list_page(body) {
                    Ok(page) => page,
                    Err(e) => return End::Failed(self.malformed(&e)),
                };
                if let Err(end) = self.process_page(&page, initial, &mut seen).await {
                    return end;
                }
            }
        }
        if list_rv.is_empty() {
            return End::Failed(RequestError::Transport(anyhow::anyhow!(
                "list response for {} has no resourceVersion",
                self.spec.key
            )));
        }
        // Objects this stream held that the list no longer shows were deleted (or left the
        // selector) while we were not watching: the watcher would drop them silently.
        let cause = Rv::parse(&list_rv);
        let mut out = Batch::default();
        {
            let mut objects = lock(&self.objects);
            let stamp = Stamp::now(&self.gvr_text);
            for uid in objects.held_by(self.spec.id) {
                if seen.contains(&uid) {
                    continue;
                }
                if let Some(orphan) = objects.release(self.spec.id, &uid, &cause) {
                    self.render_orphan(&mut out, &stamp, &orphan);
                }
            }
        }
        if !self.send(out).await {
            return End::Stopped(Stop::Shutdown);
        }
        self.note_rv(&list_rv, cause.clone());
        if let Some(kind) = self.spec.control {
            self.control(kind, ControlChange::ListEnd, cause);
        }
        if self.first_list {
            self.first_list = false;
            let _ = self
                .shared
                .status
                .send((self.spec.id, StreamStatus::Synced));
        }
        if self.forbidden_logged {
            self.forbidden_logged = false;
            tracing::info!(stream = %self.spec.key, "access granted: watching");
        }
        End::Closed { progress: true }
    }

    fn malformed(&self, e: &str) -> RequestError {
        RequestError::Transport(anyhow::anyhow!(
            "malformed list response for {}: {e}",
            self.spec.key
        ))
    }

    /// Workload membership from a whole namespace list (see `list`).
    fn recompute_membership(&self, bodies: &[Bytes]) {
        let Some(membership) = &self.shared.workloads else {
            return;
        };
        let mut namespaces = std::collections::BTreeMap::new();
        for body in bodies {
            let Ok(page) = parse::list_page(body) else {
                continue;
            };
            for item in page.items.as_deref().unwrap_or_default() {
                if let Ok(head) = parse::head(item) {
                    namespaces.insert(
                        head.metadata.name.to_string(),
                        owned(&[], head.metadata.labels),
                    );
                }
            }
        }
        membership
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .recompute(&namespaces);
    }

    /// Emits the difference between one list page and what is tracked.
    async fn process_page(
        &mut self,
        page: &parse::ListPage<'_>,
        initial: bool,
        seen: &mut HashSet<Uid>,
    ) -> Result<(), End> {
        let mut out = Batch::default();
        let stamp = Stamp::now(&self.gvr_text);
        {
            let objects = self.objects.clone();
            let mut objects = lock(&objects);
            for item in page.items.as_deref().unwrap_or_default() {
                let Ok(head) = parse::head(item) else {
                    continue;
                };
                let meta = &head.metadata;
                if meta.uid.is_empty() {
                    continue;
                }
                let uid = Uid::parse(&meta.uid);
                let labels = self.labels_if_needed(meta.labels);
                let present = self.matches(meta.namespace.as_deref(), &meta.name, &labels);
                if present {
                    seen.insert(uid.clone());
                }
                self.handle(
                    &mut objects,
                    &mut out,
                    &stamp,
                    Seen {
                        uid,
                        rv: Rv::parse(&meta.resource_version),
                        meta,
                        labels: &labels,
                        present,
                        exists: true,
                        raw: Some((item.get(), head.kind.is_none())),
                        initial,
                    },
                );
            }
        }
        if self.send(out).await {
            Ok(())
        } else {
            Err(End::Stopped(Stop::Shutdown))
        }
    }

    /// Watches from `self.rv` until the stream ends.
    async fn watch(&mut self) -> End {
        let Some(rv) = self.rv.clone() else {
            return End::Expired;
        };
        let timeout = self.shared.watch_timeout.as_secs().max(1);
        let path = format!(
            "{}?watch=true&allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds={timeout}{}",
            self.base_path,
            encode(&rv),
            self.query()
        );
        let response = tokio::select! {
            biased;
            _ = self.stop.changed() => {
                return End::Stopped(self.stop.borrow().clone().unwrap_or(Stop::Shutdown));
            }
            result = kubeclient::get(&self.shared.client, &path, Some("application/json")) => result,
        };
        let response = match response {
            Ok(response) => response,
            Err(RequestError::Api(api)) if api.code == 410 => return End::Expired,
            Err(err) => return End::Failed(err),
        };
        let mut body = response.into_body();
        let idle = self.shared.watch_timeout + Duration::from_secs(30);
        let mut carry: Vec<u8> = Vec::new();
        let mut progress = false;
        let mut draining: Option<(Rv, Instant)> = None;
        loop {
            let frame = if let Some((cause, started)) = &draining {
                // Caught up with the change that stopped us, quiet, or out of time: done.
                let caught_up = self
                    .high_water
                    .as_ref()
                    .is_some_and(|hw| !cause.is_newer(hw));
                if caught_up || started.elapsed() > Duration::from_secs(2) {
                    return leave(cause);
                }
                match tokio::time::timeout(Duration::from_millis(150), body.frame()).await {
                    Ok(frame) => frame,
                    Err(_) => return leave(cause),
                }
            } else {
                tokio::select! {
                    biased;
                    _ = self.stop.changed() => {
                        match self.stop.borrow().clone() {
                            Some(Stop::Leave { cause, drain: true }) => {
                                draining = Some((cause, Instant::now()));
                                continue;
                            }
                            other => return End::Stopped(other.unwrap_or(Stop::Shutdown)),
                        }
                    }
                    frame = tokio::time::timeout(idle, body.frame()) => match frame {
                        Ok(frame) => frame,
                        Err(_) => {
                            tracing::debug!(stream = %self.spec.key, "watch idle for {idle:?}: reconnecting");
                            return End::Closed { progress };
                        }
                    },
                }
            };
            let data: Bytes = match frame {
                None | Some(Err(_)) => {
                    if let Some(Err(e)) = frame {
                        tracing::debug!(stream = %self.spec.key, "watch stream broken: {e}");
                    }
                    // Closed while draining: nothing more will come, so the drain is over.
                    return match &draining {
                        Some((cause, _)) => leave(cause),
                        None => End::Closed { progress },
                    };
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
            };
            // Complete lines are handled straight from the frame; only a line split across
            // frames is copied (into `carry`). One batch and one timestamp per frame; events
            // render to about a fifth of their size on the wire.
            let mut out = self.shared.sink.batch(data.len() / 4);
            let stamp = Stamp::now(&self.gvr_text);
            let mut rest: &[u8] = &data;
            let mut outcome = LinesOutcome::Continue(false);
            if !carry.is_empty() {
                match memchr::memchr(b'\n', rest) {
                    None => {
                        carry.extend_from_slice(rest);
                        continue;
                    }
                    Some(first) => {
                        carry.extend_from_slice(&rest[..=first]);
                        let joined = std::mem::take(&mut carry);
                        outcome = self.handle_lines(&joined, &mut out, &stamp);
                        carry = joined;
                        carry.clear();
                        rest = &rest[first + 1..];
                    }
                }
            }
            if let LinesOutcome::Continue(any) = outcome {
                progress |= any;
                match memchr::memrchr(b'\n', rest) {
                    None => carry.extend_from_slice(rest),
                    Some(last) => {
                        outcome = self.handle_lines(&rest[..=last], &mut out, &stamp);
                        carry.extend_from_slice(&rest[last + 1..]);
                    }
                }
            }
            if !self.send(out).await {
                return End::Stopped(Stop::Shutdown);
            }
            match outcome {
                LinesOutcome::Continue(any) => progress |= any,
                LinesOutcome::End(end) => return end,
            }
        }
    }

    /// Handles complete lines (each ending in `\n`), rendering into `out`.
    fn handle_lines(&mut self, lines: &[u8], out: &mut Batch, stamp: &Stamp) -> LinesOutcome {
        let mut progress = false;
        let mut end = None;
        {
            let objects = self.objects.clone();
            let mut objects = lock(&objects);
            let mut start = 0;
            for newline in memchr::memchr_iter(b'\n', lines) {
                let line = &lines[start..newline];
                start = newline + 1;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let event = match parse::watch_event(line, self.shared.include_object) {
                    Ok(event) => event,
                    Err(e) => {
                        // Do not skip it: resume from the last good resourceVersion instead, so
                        // the event is delivered again.
                        tracing::warn!(stream = %self.spec.key, "undecodable watch event ({e}); resuming from resourceVersion {:?}", self.rv);
                        end = Some(End::Failed(RequestError::Transport(anyhow::anyhow!(
                            "undecodable watch event: {e}"
                        ))));
                        break;
                    }
                };
                let meta = &event.head.metadata;
                match event.kind {
                    WatchType::Bookmark => {
                        self.note_rv(&meta.resource_version, Rv::parse(&meta.resource_version));
                        continue;
                    }
                    WatchType::Error => {
                        let status = ApiError::from_status(
                            0,
                            event.raw.map(str::as_bytes).unwrap_or_default(),
                        );
                        end = Some(if status.code == 410 {
                            End::Expired
                        } else {
                            End::Failed(RequestError::Api(status))
                        });
                        break;
                    }
                    WatchType::Added | WatchType::Modified | WatchType::Deleted => {}
                }
                if meta.uid.is_empty() || meta.resource_version.is_empty() {
                    end = Some(End::Failed(RequestError::Transport(anyhow::anyhow!(
                        "watch event without uid or resourceVersion"
                    ))));
                    break;
                }
                progress = true;
                let rv = Rv::parse(&meta.resource_version);
                let labels = self.labels_if_needed(meta.labels);
                let exists = event.kind != WatchType::Deleted;
                let present =
                    exists && self.matches(meta.namespace.as_deref(), &meta.name, &labels);
                self.handle(
                    &mut objects,
                    out,
                    stamp,
                    Seen {
                        uid: Uid::parse(&meta.uid),
                        rv: rv.clone(),
                        meta,
                        labels: &labels,
                        present,
                        exists,
                        raw: event.raw.map(|raw| (raw, false)),
                        initial: false,
                    },
                );
                self.note_rv(&meta.resource_version, rv);
            }
        }
        match end {
            Some(end) => LinesOutcome::End(end),
            None => LinesOutcome::Continue(progress),
        }
    }

    /// Ends the stream: for `Leave`, emits DELETED for what nobody else holds.
    async fn finish(&mut self, stop: Stop) {
        let Stop::Leave { cause, .. } = stop else {
            return;
        };
        let cause = match self.high_water.clone() {
            Some(hw) => cause.max(hw),
            None => cause,
        };
        let mut out = Batch::default();
        {
            let mut objects = lock(&self.objects);
            let stamp = Stamp::now(&self.gvr_text);
            for orphan in objects.release_all(self.spec.id, &cause) {
                self.render_orphan(&mut out, &stamp, &orphan);
            }
        }
        self.send(out).await;
    }

    /// Records what the server showed of one object and renders the event it leads to:
    /// updates the GVR's shared state (emitting streams only: control streams must not keep
    /// objects alive for the others), tells the registry (control streams), renders the change.
    fn handle(&self, objects: &mut ObjectSet, out: &mut Batch, stamp: &Stamp, seen: Seen) {
        let meta = seen.meta;
        if let Some(kind) = self.spec.control {
            // The registry needs the server's truth, whatever the client filter says.
            let change = if seen.exists {
                ControlChange::Present {
                    name: meta.name.to_string(),
                    labels: owned(seen.labels, meta.labels),
                    terminating: meta.deleting,
                }
            } else {
                ControlChange::Absent {
                    name: meta.name.to_string(),
                }
            };
            self.control(kind, change, seen.rv.clone());
        }
        if !self.spec.emit {
            return;
        }
        let change = objects.observe(
            self.spec.id,
            seen.uid,
            seen.rv,
            meta.namespace.as_deref(),
            &meta.name,
            seen.present,
        );
        let event_type = match change {
            Change::Added => EventType::Added,
            Change::Updated => EventType::Updated,
            Change::Deleted => EventType::Deleted,
            Change::Nothing => return,
        };
        let initial = seen.initial && event_type == EventType::Added;
        if initial && self.shared.no_initial {
            return;
        }
        let object = seen
            .raw
            .and_then(|(raw, missing_type)| self.object_text(raw, missing_type));
        // Strings borrowed from the wire hold no escapes (the scanner gives up on any, serde
        // borrows only unescaped strings): they can be copied into the output as they are.
        let verbatim = [&meta.name, &meta.uid, &meta.resource_version]
            .iter()
            .all(|c| matches!(c, std::borrow::Cow::Borrowed(_)))
            && !matches!(meta.namespace, Some(std::borrow::Cow::Owned(_)));
        self.render(
            out,
            stamp,
            event_type,
            meta,
            initial,
            object.as_deref(),
            verbatim,
        );
    }

    fn matches(
        &self,
        namespace: Option<&str>,
        name: &str,
        labels: &[(std::borrow::Cow<str>, std::borrow::Cow<str>)],
    ) -> bool {
        self.spec
            .filter
            .as_ref()
            .is_none_or(|f| f.matches(namespace, name, labels))
    }

    fn labels_if_needed<'a>(
        &self,
        raw: Option<&'a str>,
    ) -> Vec<(std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)> {
        let needed = self.spec.control.is_some()
            || self.spec.filter.as_ref().is_some_and(|f| f.needs_labels());
        if needed { string_map(raw) } else { Vec::new() }
    }

    fn object_text<'r>(
        &self,
        raw: &'r str,
        missing_type: bool,
    ) -> Option<std::borrow::Cow<'r, str>> {
        if !self.shared.include_object {
            return None;
        }
        let text = if missing_type {
            // List items of built-in types come without kind/apiVersion; add them so the object
            // looks the same as in watch events.
            let mut with_type = self.type_prefix.clone();
            let rest = raw
                .trim_start()
                .strip_prefix('{')
                .unwrap_or("}")
                .trim_start();
            if !rest.starts_with('}') {
                with_type.push(',');
            }
            with_type.push_str(rest);
            std::borrow::Cow::Owned(with_type)
        } else {
            std::borrow::Cow::Borrowed(raw)
        };
        Some(if self.secret {
            std::borrow::Cow::Owned(emit::redact_secret(&text))
        } else {
            text
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn render(
        &self,
        out: &mut Batch,
        stamp: &Stamp,
        event_type: EventType,
        meta: &Meta,
        initial: bool,
        object: Option<&str>,
        verbatim: bool,
    ) {
        // The workload, borrowed from the membership (read-locked while this event renders).
        let membership = self
            .shared
            .workloads
            .as_ref()
            .map(|m| m.read().unwrap_or_else(|e| e.into_inner()));
        let classified;
        let workload = match &membership {
            None => None,
            Some(m) if self.spec.key.gvr.is_namespaces() => {
                let labels = string_map(meta.labels);
                classified = m.classify(
                    &meta.name,
                    labels.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
                );
                classified.as_ref()
            }
            // A namespace-scoped stream keeps the workload it was started for: the server's own
            // DELETED events of a deleted namespace may arrive after the registry dropped it.
            Some(m) => meta
                .namespace
                .as_deref()
                .and_then(|ns| m.get(ns))
                .or(self.start_workload.as_ref()),
        };
        let record = Record {
            event_type,
            namespace: meta.namespace.as_deref(),
            name: &meta.name,
            uid: &meta.uid,
            resource_version: &meta.resource_version,
            labels: meta.labels,
            annotations: meta.annotations,
            initial,
            workload: workload.as_ref().map(|w| (w.id.as_str(), w.name.as_str())),
            object,
            secret: self.secret,
            verbatim,
        };
        self.shared.renderer.render(&record, stamp, out);
    }

    fn render_orphan(&self, out: &mut Batch, stamp: &Stamp, orphan: &state::Orphan) {
        if !self.spec.emit {
            return;
        }
        let uid = orphan.uid.to_string();
        let rv = orphan.rv.to_string();
        let meta = Meta {
            name: std::borrow::Cow::Borrowed(&orphan.name),
            namespace: orphan.namespace.as_deref().map(std::borrow::Cow::Borrowed),
            uid: std::borrow::Cow::Borrowed(&uid),
            resource_version: std::borrow::Cow::Borrowed(&rv),
            ..Meta::default()
        };
        // Names kept from earlier events may need escaping: never verbatim.
        self.render(out, stamp, EventType::Deleted, &meta, false, None, false);
    }

    fn control(&self, kind: ControlKind, change: ControlChange, rv: Rv) {
        let _ = self.shared.control.send(ControlEvent { kind, change, rv });
    }

    async fn send(&self, out: Batch) -> bool {
        self.shared.sink.send(out).await
    }
}

/// One object as a list page or watch event showed it.
struct Seen<'a, 'b> {
    uid: Uid,
    /// `meta.resource_version`, parsed.
    rv: Rv,
    meta: &'b Meta<'a>,
    labels: &'b [(std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)],
    /// It passes this stream's filters.
    present: bool,
    /// It exists on the server (false for DELETED events).
    exists: bool,
    /// Its raw JSON, and whether `kind`/`apiVersion` are missing (list items of built-ins).
    raw: Option<(&'a str, bool)>,
    /// From the first listing of a stream started before ready.
    initial: bool,
}

enum LinesOutcome {
    Continue(bool),
    End(End),
}

/// The end of a drained stream: leave, with no further draining.
fn leave(cause: &Rv) -> End {
    End::Stopped(Stop::Leave {
        cause: cause.clone(),
        drain: false,
    })
}

fn owned(
    parsed: &[(std::borrow::Cow<str>, std::borrow::Cow<str>)],
    raw: Option<&str>,
) -> Vec<(String, String)> {
    let pairs = if parsed.is_empty() && raw.is_some() {
        string_map(raw)
    } else {
        parsed.to_vec()
    };
    pairs
        .into_iter()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn lock(objects: &Mutex<ObjectSet>) -> std::sync::MutexGuard<'_, ObjectSet> {
    // A panic while holding the lock cannot leave the set half-updated in a way that matters
    // more than stopping would; keep going with what is there.
    objects.lock().unwrap_or_else(|e| e.into_inner())
}

async fn fetch(client: &Client, path: &str) -> Result<Bytes, RequestError> {
    let response = kubeclient::get(client, path, Some("application/json")).await?;
    kubeclient::read_body(response).await
}

/// Whether a watch that the server closed is simply re-opened: it delivered events, or it stayed
/// open a while (a quiet resource's watch reaching `timeoutSeconds`). Only a stream that ends at
/// once without events counts against the backoff; without the second rule a quiet stream's
/// re-watch would wait up to 2 s after a few timeouts.
fn normal_close(progress: bool, open_for: Duration) -> bool {
    progress || open_for >= Duration::from_secs(5)
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Exponential backoff with jitter: 250 ms doubling to 30 s (5 min for slow retries).
struct Backoff {
    current: Duration,
    seed: u64,
}

impl Backoff {
    fn new(id: StreamId) -> Backoff {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Backoff {
            current: Duration::from_millis(250),
            seed: u64::from(nanos) ^ (u64::from(id) << 32) | 1,
        }
    }

    fn reset(&mut self) {
        self.current = Duration::from_millis(250);
    }

    fn jitter(&mut self, d: Duration) -> Duration {
        // xorshift: good enough to spread reconnects of many streams.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let factor = 0.75 + (self.seed % 1000) as f64 / 2000.0;
        d.mul_f64(factor)
    }

    fn next(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(Duration::from_secs(30));
        self.jitter(d)
    }

    fn next_short(&mut self) -> Duration {
        let d = self.next();
        d.min(Duration::from_secs(2))
    }

    fn next_slow(&mut self) -> Duration {
        self.current = (self.current * 4).min(Duration::from_secs(300));
        let d = self.current.max(Duration::from_secs(5));
        self.jitter(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_empty_watch_that_ends_at_once_backs_off() {
        assert!(normal_close(true, Duration::ZERO));
        assert!(normal_close(false, Duration::from_secs(290)));
        assert!(!normal_close(false, Duration::from_millis(30)));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("app in (a,b)"), "app%20in%20%28a%2Cb%29");
        assert_eq!(encode("metadata.name=x"), "metadata.name%3Dx");
        assert_eq!(encode("plain-1.2_~"), "plain-1.2_~");
    }

    #[test]
    fn backoff_grows_to_a_cap() {
        let mut b = Backoff::new(1);
        let first = b.next();
        assert!(first <= Duration::from_millis(320), "{first:?}");
        for _ in 0..20 {
            b.next();
        }
        assert!(b.next() <= Duration::from_secs(38));
        b.reset();
        assert!(b.next() <= Duration::from_millis(320));
    }
}

/// A profiling aid, not a test (it asserts nothing): the per-event cost of `handle_lines` on
/// 200,000 pre-built watch lines, without the network, to look at with `perf record`:
/// `PROBE_ROUNDS=8 cargo test --release --bin faro probe_handle_lines -- --ignored --nocapture`.
/// The benchmarks that count are in bench/ (`make bench`).
#[cfg(test)]
mod throughput_probe {
    use super::*;

    #[tokio::test]
    #[ignore = "profiling aid: prints a timing, asserts nothing"]
    #[allow(clippy::print_stderr)]
    async fn probe_handle_lines() {
        let n = 200_000;
        let pad = "x".repeat(900);
        let mut lines = Vec::new();
        for i in 0..n {
            lines.extend_from_slice(format!(
                r#"{{"type":"ADDED","object":{{"kind":"ConfigMap","apiVersion":"v1","metadata":{{"name":"burst-{i:06}","namespace":"bench","uid":"{:08x}-1111-2222-3333-444455556666","resourceVersion":"{}","creationTimestamp":"2026-01-01T00:00:00Z","generation":1}},"data":{{"pad":"{pad}"}}}}}}"#,
                i, i + 10
            ).as_bytes());
            lines.push(b'\n');
        }
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let (sink, writer) = emit::Writer::spawn(false, None, || {});
        let (status, _s) = mpsc::unbounded_channel();
        let (control, _c) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            client,
            sink,
            renderer: Renderer {
                format: emit::Format::Json,
                file: false,
            },
            include_object: false,
            no_initial: false,
            workloads: None,
            status,
            control,
            watch_timeout: Duration::from_secs(290),
            page_size: 500,
            list_slots: tokio::sync::Semaphore::new(LIST_CONCURRENCY),
        });
        let (_stop_tx, stop) = watch::channel(None);
        let spec = StreamSpec {
            id: 1,
            key: StreamKey {
                gvr: Gvr::new("", "v1", "configmaps"),
                namespace: None,
                label_selector: None,
                field_selector: None,
                filter_id: vec![],
            },
            kind: "ConfigMap".into(),
            filter: None,
            emit: true,
            control: None,
            initial: false,
        };
        let mut task = Task {
            base_path: String::new(),
            gvr_text: "v1/configmaps".into(),
            type_prefix: r#"{"kind":"ConfigMap","apiVersion":"v1""#.into(),
            secret: false,
            rv: None,
            high_water: None,
            forbidden_logged: false,
            first_list: false,
            start_workload: None,
            spec,
            objects: Arc::new(Mutex::new(ObjectSet::default())),
            shared,
            stop,
        };
        let rounds: u32 = std::env::var("PROBE_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(1);
        let start = Instant::now();
        let mut bytes = 0usize;
        for _ in 0..rounds {
            task.objects = Arc::new(Mutex::new(ObjectSet::default()));
            let mut pos = 0;
            while pos < lines.len() {
                let end = (pos + 64 * 1024).min(lines.len());
                let end = memchr::memrchr(b'\n', &lines[pos..end])
                    .map(|i| pos + i + 1)
                    .unwrap_or(lines.len());
                let mut out = Batch::default();
                let ts = Stamp::now(&task.gvr_text);
                let _ = task.handle_lines(&lines[pos..end], &mut out, &ts);
                bytes += out.json.len();
                pos = end;
            }
        }
        let elapsed = start.elapsed() / rounds;
        drop(task);
        drop(writer);
        eprintln!(
            "{n} events in {elapsed:?}: {:.0} ns/event, {bytes} bytes out",
            elapsed.as_nanos() as f64 / n as f64
        );
    }
}
