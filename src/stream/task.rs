//! The list/watch/recovery loop of one stream (see the module comment of `stream` for the
//! recovery rules).

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use crate::client::{self, ApiError, RequestError};
use crate::event::{EventBatch, EventType, Matched, StreamInfo};
use crate::matcher::ObjectView;
use crate::plan::ControlKind;
use crate::workload::{Membership, WorkloadRef};

use super::backoff::{Backoff, normal_close};
use super::batch::{self, NewEvent};
use super::compare::{self, DiffSettings};
use super::managers;
use super::parse::{self, Meta, WatchType, string_map};
use super::state::{Change, ObjectSet, Rv, Uid, Version};
use super::{
    Context, ControlChange, ControlEvent, Message, Resume, Stop, StopSignal, StreamSpec,
    StreamStatus,
};
use crate::diff::DiffOptions;
use crate::metrics::{StreamProbe, WatchState};

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
    /// A line did not decode (already logged): resume after a backoff.
    Undecodable,
    /// The server answered 400 to a request faro built: retrying cannot help.
    Rejected(ApiError),
    /// The server did not serve a streaming list (why): list this GVR page by page.
    NoStreamingList(String),
}

/// How long a streaming list may go without a complete line before its end bookmark: past
/// that, the server is taken not to serve streaming lists (some aggregated API servers stream
/// the state and never send the bookmark) and the GVR is listed page by page. A real server
/// streams the initial events back to back, so a quiet gap this long means something is off.
const STREAMING_LIST_PATIENCE: Duration = Duration::from_secs(10);

/// The annotation of the bookmark that ends a streaming list's initial events
/// (k8s-protocol.md §3.5, KEP-3157).
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// A streaming list in progress: its initial events come as ADDED watch events until the
/// bookmark annotated [`INITIAL_EVENTS_END`].
struct Listing {
    /// The objects it showed (the others the stream held were deleted meanwhile); None when
    /// the stream held nothing before (see [`Task::pristine`]).
    seen: Option<HashSet<Uid>>,
    /// Its ADDED events are `initial`.
    initial: bool,
}

/// Who keeps a sharded stream to its shard (see "Sharding" in the module comment of `stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShardMode {
    /// Not known yet: the next request asks the server.
    Unverified,
    /// The server echoed the `shardSelector`: every list and watch carries it.
    Server,
    /// The server ignored or rejected it: faro reads everything and keeps the shard's objects.
    Client,
}

/// How a failed request ends an attempt: a 400 means the request itself is wrong.
fn failed(err: RequestError) -> End {
    match err {
        RequestError::Api(api) if api.code == 400 => End::Rejected(api),
        other => End::Failed(other),
    }
}

pub(super) struct Task {
    spec: StreamSpec,
    objects: Arc<Mutex<ObjectSet>>,
    ctx: Arc<Context>,
    stop: StopSignal,
    base_path: String,
    info: Arc<StreamInfo>,
    /// `{"kind":…,"apiVersion":…` of this stream's objects, without the closing brace.
    type_prefix: String,
    secret: bool,
    /// How this stream's objects are diffed, if they are.
    diff: Option<Arc<DiffOptions>>,
    /// Read each object whole: for the event (`include_object`) or for its diff.
    want_raw: bool,
    /// Where to resume watching; None means (re)list first.
    rv: Option<String>,
    /// Highest resourceVersion processed (events, bookmarks, lists).
    high_water: Option<Rv>,
    forbidden_logged: bool,
    /// The next list is the stream's first (its ADDED events may be `initial`; otherwise a
    /// list is a relist, whose events are `resync`).
    first_list: bool,
    /// Synced has been reported (after the first list, or the first watch of a resumed stream).
    synced: bool,
    /// The workload of a namespace-scoped stream's namespace when it started: its synthetic
    /// DELETED events, sent after the namespace left, still belong to that workload.
    start_workload: Option<Arc<WorkloadRef>>,
    /// This stream in the metrics.
    probe: StreamProbe,
    /// The next watch follows a list (or is the stream's first): not a reconnect.
    listed: bool,
    /// A stall of this stream was logged (later ones go to the debug level).
    stall_logged: bool,
    /// The streaming list being read, if one is.
    listing: Option<Listing>,
    /// No listing of this fresh stream has started yet, so it holds no object and its first
    /// listing need not remember what it saw to find what was deleted (100,000 set inserts
    /// and lookups saved at start-up).
    pristine: bool,
    /// A streaming list ended with this resourceVersion in the batch being built: once the
    /// batch is sent, the stream is synced.
    listed_at: Option<Rv>,
    /// Who filters by shard (streams with a shard only).
    shard_mode: ShardMode,
}

impl Task {
    pub(super) fn new(
        spec: StreamSpec,
        objects: Arc<Mutex<ObjectSet>>,
        ctx: Arc<Context>,
        stop: StopSignal,
    ) -> Task {
        let gvr = &spec.key.gvr;
        let secret = gvr.group.is_empty() && gvr.resource == "secrets";
        // What list items of built-in types lack (they come without kind and apiVersion).
        let type_prefix = format!(
            "{{\"kind\":{},\"apiVersion\":{}",
            serde_json::Value::from(spec.kind.as_str()),
            serde_json::Value::from(gvr.api_version())
        );
        let start_workload = match (ctx.membership(), &spec.key.namespace) {
            (Some(m), Some(ns)) => m.get(ns).cloned(),
            _ => None,
        };
        let info = Arc::new(StreamInfo {
            id: spec.id,
            gvr: gvr.clone(),
            gvr_text: Arc::from(gvr.to_string()),
            kind: spec.kind.clone(),
            entries: spec.entries.clone(),
        });
        let (rv, first_list) = match &spec.resume {
            Resume::Fresh => (None, true),
            Resume::Watch(rv) => (Some(rv.clone()), false),
            Resume::Relist => (None, false),
        };
        let diff = DiffSettings::for_gvr(&ctx.options.diff, gvr).filter(|_| spec.emit);
        let probe = ctx.metrics.stream(spec.id, gvr, info.gvr_text.clone());
        Task {
            probe,
            listed: true,
            stall_logged: false,
            listing: None,
            listed_at: None,
            pristine: first_list,
            base_path: gvr.collection_path(spec.key.namespace.as_deref()),
            info,
            type_prefix,
            secret,
            want_raw: ctx.options.include_object || diff.is_some(),
            diff,
            start_workload,
            spec,
            objects,
            ctx,
            stop,
            rv,
            high_water: None,
            forbidden_logged: false,
            first_list,
            synced: false,
            shard_mode: ShardMode::Unverified,
        }
    }

    pub(super) async fn run(mut self: Box<Self>) {
        if self.ctx.checkpointing && self.rv.is_some() {
            // A stream resumed from a checkpoint keeps its resume point in the next one, even
            // if nothing happens to it.
            let mut objects = lock(&self.objects);
            objects.note_progress(self.spec.id, self.rv.as_deref(), false);
        }
        let mut backoff = Backoff::new(self.spec.id);
        loop {
            let requested = self.stop.get();
            if let Some(stop) = requested {
                Box::pin(self.finish(stop)).await;
                return;
            }
            let started = Instant::now();
            let unverified = self.spec.shard.is_some() && self.shard_mode == ShardMode::Unverified;
            let probed = if unverified {
                Box::pin(self.verify_shard()).await
            } else {
                None
            };
            let end = match probed {
                Some(end) => end,
                None => match (&self.rv, self.streaming_list()) {
                    (None, true) => {
                        self.start_listing();
                        self.watch().await
                    }
                    // Boxed, as finishing is: a paged list's state is large and short-lived,
                    // and every stream's task would otherwise carry room for it while it
                    // watches.
                    (None, false) => Box::pin(self.list()).await,
                    (Some(_), _) => self.watch().await,
                },
            };
            // A streaming list that ended early is started again from scratch.
            self.listing = None;
            let delay = match end {
                End::Stopped(stop) => {
                    Box::pin(self.finish(stop)).await;
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
                    self.probe.error(Some(410));
                    tracing::debug!(stream = %self.spec.key, "resourceVersion expired (410): relisting");
                    self.rv = None;
                    continue;
                }
                End::Failed(err) => self.failure(err, &mut backoff),
                End::Undecodable => backoff.next(),
                End::Rejected(api) if self.shard_mode == ShardMode::Server => {
                    // The selector was taken once (say, by another API server behind the same
                    // address, before a downgrade); without it the request may pass.
                    self.filter_shard_here(&format!("it rejected a request with it ({api})"));
                    continue;
                }
                End::Rejected(api) => {
                    Box::pin(self.rejected(&api)).await;
                    return;
                }
                End::NoStreamingList(why) => {
                    let gvr = &self.spec.key.gvr;
                    if lock_set(&self.ctx.paged_only).insert(gvr.clone()) {
                        tracing::info!(
                            "the API server does not serve streaming lists of {gvr} ({why}): listing it page by page"
                        );
                    }
                    continue;
                }
            };
            tokio::select! {
                biased;
                _ = self.stop.requested() => {}
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Reports a rejected request once, then waits to be stopped: the registry keeps the stream
    /// (so it is not restarted on every reconcile) and its objects until then.
    async fn rejected(&mut self, api: &ApiError) {
        tracing::error!(
            "the API server rejected a request faro built for {} ({api}); not retrying this stream (a bug, or a configuration the checks did not catch); the other streams keep running",
            self.spec.key
        );
        self.ctx
            .counters
            .rejected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.report(StreamStatus::Rejected);
        self.probe
            .state(WatchState::Rejected, Some(format!("rejected ({api})")));
        loop {
            let requested = self.stop.get();
            if let Some(stop) = requested {
                Box::pin(self.finish(stop)).await;
                return;
            }
            self.stop.requested().await;
        }
    }

    fn report(&self, status: StreamStatus) {
        let _ = self.ctx.status.send((self.spec.id, status));
    }

    fn failure(&mut self, err: RequestError, backoff: &mut Backoff) -> Duration {
        let code = match &err {
            RequestError::Api(api) => Some(api.code),
            _ => None,
        };
        self.probe.error(code);
        let state = if code == Some(403) {
            WatchState::Forbidden
        } else {
            WatchState::Retrying
        };
        self.probe.state(state, Some(err.to_string()));
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
                    self.report(StreamStatus::Forbidden);
                }
                backoff.next_slow()
            }
            RequestError::Api(api) if api.code == 404 => {
                tracing::debug!(stream = %self.spec.key, "resource not found (404)");
                self.report(StreamStatus::NotFound);
                backoff.next()
            }
            _ => {
                tracing::warn!(stream = %self.spec.key, "watch failed, retrying: {err}");
                if !self.synced {
                    self.report(StreamStatus::Failing);
                }
                backoff.next()
            }
        }
    }

    /// Asks the server whether it filters this sharded stream by its `shardSelector` (see the
    /// module comment of `stream`): one list of at most one object, whose
    /// `metadata.shardInfo.selector` must echo the selector. None once that is known (or for a
    /// stream without a shard); else how the attempt ended.
    async fn verify_shard(&mut self) -> Option<End> {
        let shard = self.spec.shard?;
        if self.shard_mode != ShardMode::Unverified {
            return None;
        }
        let mut page = Prefetch::start(
            &self.ctx,
            format!("{}?limit=1{}", self.base_path, self.query()),
        );
        let body = tokio::select! {
            biased;
            _ = self.stop.requested() => return Some(self.stopped()),
            result = page.body(&self.probe) => result,
        };
        let body = match body {
            Ok(body) => body,
            Err(RequestError::Api(api)) if api.code == 400 => {
                self.filter_shard_here(&format!("it rejected the parameter ({api})"));
                return None;
            }
            Err(err) => return Some(End::Failed(err)),
        };
        self.probe.heard(body.len());
        let echo = match parse::list_page(&body) {
            Ok(page) => page
                .metadata
                .shard_info
                .map(|info| info.selector.into_owned()),
            Err(e) => return Some(End::Failed(self.malformed(&e))),
        };
        match echo {
            Some(echo) if echo == shard.selector() => {
                self.shard_mode = ShardMode::Server;
                self.ctx.metrics.sharded_watch(&self.info.gvr_text, "server");
                tracing::info!(
                    "{}: the API server filters by shard {shard} (it echoed the shardSelector)",
                    self.spec.key
                );
            }
            Some(other) => self.filter_shard_here(&format!("it echoed another one, {other:?}")),
            None => self.filter_shard_here("it did not echo it in metadata.shardInfo: the ServerSideShardedListWatch feature is off or unknown there"),
        }
        None
    }

    /// From now on this sharded stream asks the server for everything and keeps its shard's
    /// objects itself; `why` the server did not take the `shardSelector`.
    fn filter_shard_here(&mut self, why: &str) {
        self.shard_mode = ShardMode::Client;
        self.ctx
            .metrics
            .sharded_watch(&self.info.gvr_text, "client");
        if let Some(shard) = self.spec.shard {
            tracing::info!(
                "{}: the API server does not filter by shard ({why}); faro reads every namespace's objects and keeps those of shard {shard}",
                self.spec.key
            );
        }
    }

    fn query(&self) -> String {
        let mut q = String::new();
        if let Some(shard) = &self.spec.shard
            && self.shard_mode != ShardMode::Client
        {
            q.push_str("&shardSelector=");
            q.push_str(&client::encode_query_value(&shard.selector()));
        }
        if let Some(ls) = &self.spec.key.label_selector {
            q.push_str("&labelSelector=");
            q.push_str(&client::encode_query_value(ls));
        }
        if let Some(fs) = &self.spec.key.field_selector {
            q.push_str("&fieldSelector=");
            q.push_str(&client::encode_query_value(fs));
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

    /// Notes the resume point and whether a batch was built, for checkpoints; the caller
    /// holds the lock under which the batch's observations were made.
    /// A batch is counted once, though a frame's lines may be handled in two calls.
    fn note_progress_locked(&self, objects: &mut ObjectSet, out: &mut EventBatch) {
        if self.ctx.checkpointing {
            let built = !out.is_empty() && !out.counted;
            out.counted |= built;
            objects.note_progress(self.spec.id, self.rv.as_deref(), built);
        }
    }

    fn stopped(&self) -> End {
        End::Stopped(self.stop.get().unwrap_or(Stop::Shutdown))
    }

    /// Lists the collection page by page, emitting the difference to what is tracked.
    async fn list(&mut self) -> End {
        let initial = self.first_list && self.spec.initial;
        if !self.first_list {
            self.probe.relist();
        }
        self.probe.state(WatchState::Listing, None);
        let mut seen = (!std::mem::replace(&mut self.pristine, false)).then(HashSet::new);
        // Workload detection needs every namespace before the first one is attributed (a
        // namespace may join a workload by the name of another), so the namespace stream of
        // workload watching reads its whole list first, reports it to the registry, and emits
        // only once the registry has computed the membership from it. Namespace lists are small.
        let buffer =
            self.spec.control == Some(ControlKind::Namespaces) && self.ctx.membership.is_some();
        let mut buffered: Vec<Bytes> = Vec::new();
        let mut continue_token: Option<String> = None;
        if let Some(kind) = self.spec.control {
            self.control(kind, ControlChange::ListStart, Rv::Num(0));
        }
        let page_path = |task: &Task, token: Option<&str>| {
            let mut path = format!(
                "{}?limit={}{}",
                task.base_path,
                task.ctx.options.page_size,
                task.query()
            );
            if let Some(token) = token {
                path.push_str("&continue=");
                path.push_str(&client::encode_query_value(token));
            }
            path
        };
        // The next page, asked for as soon as this one's continue token is known.
        let mut prefetched: Option<Prefetch> = None;
        let list_rv = loop {
            let mut page = match prefetched.take() {
                Some(page) => page,
                None => Prefetch::start(&self.ctx, page_path(self, continue_token.as_deref())),
            };
            let body = tokio::select! {
                biased;
                _ = self.stop.requested() => return self.stopped(),
                result = page.body(&self.probe) => result,
            };
            let body = match body {
                Ok(body) => {
                    self.probe.heard(body.len());
                    body
                }
                Err(RequestError::Api(api)) if api.code == 410 && continue_token.is_some() => {
                    self.probe.error(Some(410));
                    // The continue token expired: start the list again.
                    continue_token = None;
                    // The objects of the pages read are held now.
                    seen = Some(HashSet::new());
                    buffered.clear();
                    continue;
                }
                Err(err) => return failed(err),
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
            if let Some(token) = next.as_deref() {
                prefetched = Some(Prefetch::start(&self.ctx, page_path(self, Some(token))));
            }
            if buffer {
                self.report_page(&page);
                drop(page);
                buffered.push(body);
            } else if let Err(end) = self
                .process_page(&body, &page, initial, true, &mut seen)
                .await
            {
                return end;
            }
            match next {
                Some(token) => continue_token = Some(token),
                None => break rv,
            }
        };
        if list_rv.is_empty() {
            return End::Failed(RequestError::Malformed(format!(
                "list response for {} has no resourceVersion",
                self.spec.key
            )));
        }
        let cause = Rv::parse(&list_rv);
        if buffer {
            let (ack, acked) = oneshot::channel();
            if let Some(kind) = self.spec.control {
                self.control(
                    kind,
                    ControlChange::ListEnd { ack: Some(ack) },
                    cause.clone(),
                );
            }
            tokio::select! {
                biased;
                _ = self.stop.requested() => return self.stopped(),
                // A registry that went away drops the ack: then there is nothing to wait for.
                _ = acked => {}
            }
            for body in &buffered {
                let page = match parse::list_page(body) {
                    Ok(page) => page,
                    Err(e) => return End::Failed(self.malformed(&e)),
                };
                if let Err(end) = self
                    .process_page(body, &page, initial, false, &mut seen)
                    .await
                {
                    return end;
                }
            }
        }
        // Objects this stream held that the list no longer shows were deleted (or left the
        // selector) while we were not watching: the watcher would drop them silently.
        let mut out = self.batch(Bytes::new());
        self.note_rv(&list_rv, cause.clone());
        {
            let ctx = self.ctx.clone();
            let membership = ctx.membership();
            let mut objects = lock(&self.objects);
            let held = match &seen {
                Some(_) => objects.held_by(self.spec.id),
                None => Vec::new(),
            };
            for uid in held {
                if seen.as_ref().is_some_and(|s| s.contains(&uid)) {
                    continue;
                }
                if let Some(orphan) = objects.release(self.spec.id, &uid, &cause) {
                    self.push_orphan(&mut out, &orphan, membership.as_deref());
                }
            }
            // Under the same lock: a snapshot sees the releases, the resume point and the
            // batch that reports them together.
            self.note_progress_locked(&mut objects, &mut out);
        }
        if !self.send(out).await {
            return End::Stopped(Stop::Shutdown);
        }
        if !buffer && let Some(kind) = self.spec.control {
            self.control(kind, ControlChange::ListEnd { ack: None }, cause);
        }
        self.first_list = false;
        self.listed = true;
        if !self.synced {
            self.synced = true;
            self.report(StreamStatus::Synced);
        }
        if self.forbidden_logged {
            self.forbidden_logged = false;
            tracing::info!(stream = %self.spec.key, "access granted: watching");
        }
        End::Closed { progress: true }
    }

    fn malformed(&self, e: &str) -> RequestError {
        RequestError::Malformed(format!(
            "malformed list response for {}: {e}",
            self.spec.key
        ))
    }

    /// Reports a page's objects to the registry (control streams whose list is buffered).
    fn report_page(&self, page: &parse::ListPage<'_>) {
        let Some(kind) = self.spec.control else {
            return;
        };
        for item in page.items.as_deref().unwrap_or_default() {
            if let Ok(head) = parse::head(item) {
                let meta = &head.metadata;
                self.control(
                    kind,
                    ControlChange::Present {
                        name: meta.name.to_string(),
                        labels: owned(&[], meta.labels),
                        terminating: meta.deleting,
                    },
                    Rv::parse(&meta.resource_version),
                );
            }
        }
    }

    /// Emits the difference between one list page and what is tracked; with `report`, control
    /// streams also tell the registry about each object.
    async fn process_page(
        &mut self,
        body: &Bytes,
        page: &parse::ListPage<'_>,
        initial: bool,
        report: bool,
        seen: &mut Option<HashSet<Uid>>,
    ) -> Result<(), End> {
        let mut out = self.batch(body.clone());
        {
            let ctx = self.ctx.clone();
            let membership = ctx.membership();
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
                let matched_from = out.matched.len();
                let present = self.matches(meta, &labels, membership.as_deref(), &mut out);
                if present && let Some(seen) = seen {
                    seen.insert(uid.clone());
                }
                self.handle(
                    &mut objects,
                    &mut out,
                    membership.as_deref(),
                    Seen {
                        uid,
                        rv: Rv::parse(&meta.resource_version),
                        meta,
                        labels: &labels,
                        present,
                        exists: true,
                        raw: Some((item.get(), head.kind.is_none())),
                        initial,
                        resync: !self.first_list,
                        report,
                        matched_from,
                    },
                );
            }
            // Mid-list the resume point stays where it was (the list is not complete).
            if self.ctx.checkpointing {
                let built = !out.is_empty() && !out.counted;
                out.counted |= built;
                objects.note_progress(self.spec.id, None, built);
            }
        }
        if self.send(out).await {
            Ok(())
        } else {
            Err(End::Stopped(Stop::Shutdown))
        }
    }

    /// Whether this stream's next listing is a streaming list: the option is on, the server
    /// did not refuse one for the GVR, and the stream is not the namespace stream of workload
    /// watching (whose whole list the registry must see before anything is attributed, so it
    /// is read page by page and buffered).
    fn streaming_list(&self) -> bool {
        let buffered =
            self.spec.control == Some(ControlKind::Namespaces) && self.ctx.membership.is_some();
        self.ctx.options.streaming_lists
            && !buffered
            && !lock_set(&self.ctx.paged_only).contains(&self.spec.key.gvr)
    }

    fn start_listing(&mut self) {
        if !self.first_list {
            self.probe.relist();
        }
        self.probe.state(WatchState::Listing, None);
        self.listed = true;
        self.listing = Some(Listing {
            seen: (!std::mem::replace(&mut self.pristine, false)).then(HashSet::new),
            initial: self.first_list && self.spec.initial,
        });
        if let Some(kind) = self.spec.control {
            self.control(kind, ControlChange::ListStart, Rv::Num(0));
        }
    }

    /// Starts the watch request of [`Task::watch`]: its body and, for a streaming list, its
    /// slot (see [`super::STREAMING_LIST_CONCURRENCY`]); or how the attempt ends.
    async fn open(&mut self) -> Result<(kube::client::Body, Option<OwnedSemaphorePermit>), End> {
        let slot = match self.listing {
            Some(_) => tokio::select! {
                biased;
                _ = self.stop.requested() => return Err(self.stopped()),
                slot = self.ctx.listing_slots.clone().acquire_owned() => slot.ok(),
            },
            None => None,
        };
        let timeout = self.ctx.options.watch_timeout.as_secs().max(1);
        let path = match (&self.listing, &self.rv) {
            (Some(_), _) => format!(
                "{}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds={timeout}{}",
                self.base_path,
                self.query()
            ),
            (None, Some(rv)) => format!(
                "{}?watch=true&allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds={timeout}{}",
                self.base_path,
                client::encode_query_value(rv),
                self.query()
            ),
            (None, None) => return Err(End::Expired),
        };
        let probe = &self.probe;
        let throttled = move || probe.error(Some(429));
        let response = tokio::select! {
            biased;
            _ = self.stop.requested() => return Err(self.stopped()),
            result = client::get_with(&self.ctx.client, &path, Some("application/json"), &throttled) => result,
        };
        if !std::mem::replace(&mut self.listed, false) {
            self.probe.reconnect();
        }
        let response = match response {
            Ok(response) => response,
            // The 422 of a server whose WatchList gate is off (k8s-protocol.md §3.5). (A server
            // that does not know the parameters ignores them: see the checks in handle_lines.)
            Err(RequestError::Api(api)) if self.listing.is_some() && api.code == 422 => {
                return Err(End::NoStreamingList(format!(
                    "{} {}",
                    api.code, api.message
                )));
            }
            Err(RequestError::Api(api)) if api.code == 410 => return Err(End::Expired),
            Err(err) => return Err(failed(err)),
        };
        if self.listing.is_none() {
            self.probe.state(WatchState::Watching, None);
        }
        self.probe.heard(0);
        if !self.synced && self.listing.is_none() {
            // A stream resumed from a checkpoint: it is settled once the server took its watch.
            self.synced = true;
            self.report(StreamStatus::Synced);
        }
        Ok((response.into_body(), slot))
    }

    /// Watches from `self.rv` until the stream ends; with a listing started, first reads the
    /// state as a streaming list (no resourceVersion: a consistent read, as a list's).
    async fn watch(&mut self) -> End {
        // Boxed: the request's state (its path, kube's layers, the pool's checkout, the
        // response head) lives only until the body starts, while every watching task would
        // otherwise carry room for it.
        let (mut body, mut slot) = match Box::pin(self.open()).await {
            Ok(opened) => opened,
            Err(end) => return end,
        };
        // A watch that the server keeps open past its timeout by this much is dead.
        let idle = self.ctx.options.watch_timeout + Duration::from_secs(30);
        let stall = self.ctx.options.stall_timeout.filter(|s| *s < idle);
        // The last time the server said something: a complete line (event or bookmark).
        let mut heard = tokio::time::Instant::now();
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
                    _ = self.stop.requested() => {
                        match self.stop.get() {
                            Some(Stop::Leave { cause, drain: true }) => {
                                draining = Some((cause, Instant::now()));
                                continue;
                            }
                            other => return End::Stopped(other.unwrap_or(Stop::Shutdown)),
                        }
                    }
                    frame = tokio::time::timeout_at(
                        heard + if self.listing.is_some() { STREAMING_LIST_PATIENCE } else { stall.unwrap_or(idle) },
                        body.frame(),
                    ) => match frame {
                        Ok(frame) => frame,
                        Err(_) => {
                            if self.listing.is_some() {
                                return End::NoStreamingList(format!(
                                    "nothing for {}s and no {INITIAL_EVENTS_END} bookmark",
                                    STREAMING_LIST_PATIENCE.as_secs()
                                ));
                            }
                            if let Some(stall) = stall {
                                self.stalled(stall);
                            } else {
                                tracing::debug!(stream = %self.spec.key, "watch idle for {idle:?}: reconnecting");
                            }
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
            let Some((offer, outcome)) =
                self.take_frame(data, &mut carry, &mut heard, &mut progress)
            else {
                continue;
            };
            let sent = match offer {
                Offer::Done(sent) => {
                    // What the channel's own send did: count against the task's cooperative
                    // budget, so that a busy stream yields to the consumer now and then.
                    // Without it the throughput case took 5-10 % more CPU per event.
                    tokio::task::consume_budget().await;
                    sent
                }
                Offer::Wait(wait) => wait.await,
            };
            if !sent {
                return End::Stopped(Stop::Shutdown);
            }
            if self.listing.is_none() {
                // The initial state is handed over: another stream may list.
                drop(slot.take());
            }
            if let Some(cause) = self.listed_at.take() {
                // After the batch with the listing's last events: ready must not pass them.
                self.listing_done(cause);
            }
            match outcome {
                LinesOutcome::Continue(any) => progress |= any,
                LinesOutcome::End(end) => return end,
            }
        }
    }

    /// Handles one frame of a watch: its complete lines become one batch (offered to the
    /// consumer), a split line's start goes to `carry`. None when the frame only added to
    /// `carry`.
    ///
    /// Synchronous, and apart from [`Task::watch`]'s loop, so that the watch future holds none
    /// of this state across its awaits (every watching task carries its future's largest
    /// state).
    fn take_frame(
        &mut self,
        data: Bytes,
        carry: &mut Vec<u8>,
        heard: &mut tokio::time::Instant,
        progress: &mut bool,
    ) -> Option<(Offer, LinesOutcome)> {
        // Complete lines are handled straight from the frame, and their events point into
        // it; only a line split across frames is copied (into `carry`). One batch and one
        // observation time per frame.
        let mut out = self.batch(data.clone());
        let mut rest: &[u8] = &data;
        // The frame completes a line (the common case: the server sends whole lines).
        if data.last() == Some(&b'\n') || memchr::memchr(b'\n', &data).is_some() {
            *heard = tokio::time::Instant::now();
            self.probe.heard(data.len());
        } else {
            self.probe.read(data.len());
        }
        let mut outcome = LinesOutcome::Continue(false);
        if !carry.is_empty() {
            match memchr::memchr(b'\n', rest) {
                None => {
                    carry.extend_from_slice(rest);
                    return None;
                }
                Some(first) => {
                    carry.extend_from_slice(&rest[..=first]);
                    let joined = std::mem::take(carry);
                    outcome = self.handle_lines(&joined, &mut out);
                    *carry = joined;
                    carry.clear();
                    rest = &rest[first + 1..];
                }
            }
        }
        if let LinesOutcome::Continue(any) = outcome {
            *progress |= any;
            match memchr::memrchr(b'\n', rest) {
                None => carry.extend_from_slice(rest),
                Some(last) => {
                    outcome = self.handle_lines(&rest[..=last], &mut out);
                    carry.extend_from_slice(&rest[last + 1..]);
                }
            }
        }
        Some((self.offer(out), outcome))
    }

    /// The end bookmark of a streaming list, at `rv`: what the stream held and the listing did
    /// not show was deleted meanwhile (as after a paged list); watching goes on from `rv`.
    fn end_listing(
        &mut self,
        objects: &mut ObjectSet,
        out: &mut EventBatch,
        membership: Option<&Membership>,
        rv: &str,
    ) {
        let Some(listing) = self.listing.take() else {
            return;
        };
        let cause = Rv::parse(rv);
        let held = match &listing.seen {
            Some(_) => objects.held_by(self.spec.id),
            None => Vec::new(),
        };
        for uid in held {
            if listing.seen.as_ref().is_some_and(|s| s.contains(&uid)) {
                continue;
            }
            if let Some(orphan) = objects.release(self.spec.id, &uid, &cause) {
                self.push_orphan(out, &orphan, membership);
            }
        }
        self.note_rv(rv, cause.clone());
        self.listed_at = Some(cause);
    }

    /// A streaming list's last events are sent: the stream is synced and watching.
    fn listing_done(&mut self, cause: Rv) {
        if let Some(kind) = self.spec.control {
            self.control(kind, ControlChange::ListEnd { ack: None }, cause);
        }
        self.first_list = false;
        self.probe.state(WatchState::Watching, None);
        if !self.synced {
            self.synced = true;
            self.report(StreamStatus::Synced);
        }
        if self.forbidden_logged {
            self.forbidden_logged = false;
            tracing::info!(stream = %self.spec.key, "access granted: watching");
        }
    }

    /// Reports a watch that said nothing for `stall`: once per stream as a warning, then at
    /// the debug level (a server that sends no bookmarks makes a quiet resource "stall" at
    /// every timeout, harmlessly).
    fn stalled(&mut self, stall: Duration) {
        self.probe.stall();
        let rv = self.rv.as_deref().unwrap_or("");
        if std::mem::replace(&mut self.stall_logged, true) {
            tracing::debug!(stream = %self.spec.key, "watch silent for {stall:?}: re-establishing it from resourceVersion {rv}");
        } else {
            tracing::warn!(
                "the watch of {} delivered neither an event nor a bookmark for {}: re-establishing it from resourceVersion {rv:?} (nothing is lost; further stalls of this watch are logged at debug level)",
                self.spec.key,
                humantime::format_duration(stall)
            );
        }
    }

    /// Handles complete lines (each ending in `\n`), adding their events to `out`.
    fn handle_lines(&mut self, lines: &[u8], out: &mut EventBatch) -> LinesOutcome {
        let mut progress = false;
        let mut end = None;
        {
            let ctx = self.ctx.clone();
            let membership = ctx.membership();
            let objects = self.objects.clone();
            let mut objects = lock(&objects);
            let mut start = 0;
            for newline in memchr::memchr_iter(b'\n', lines) {
                let line = &lines[start..newline];
                start = newline + 1;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let event = match parse::watch_event(
                    line,
                    self.want_raw,
                    self.ctx.options.include_object,
                ) {
                    Ok(event) => event,
                    Err(e) => {
                        // Do not skip it: resume from the last good resourceVersion instead, so
                        // the event is delivered again.
                        tracing::warn!(stream = %self.spec.key, "undecodable watch event ({e}); resuming from resourceVersion {:?}", self.rv);
                        end = Some(End::Undecodable);
                        break;
                    }
                };
                let meta = &event.head.metadata;
                match event.kind {
                    WatchType::Bookmark if self.listing.is_some() => {
                        let ends = string_map(meta.annotations)
                            .iter()
                            .any(|(k, v)| k == INITIAL_EVENTS_END && v == "true");
                        if !ends {
                            end = Some(End::NoStreamingList(format!(
                                "a bookmark without {INITIAL_EVENTS_END}"
                            )));
                            break;
                        }
                        if meta.resource_version.is_empty() {
                            end = Some(End::Failed(RequestError::Malformed(format!(
                                "the {INITIAL_EVENTS_END} bookmark of {} has no resourceVersion",
                                self.spec.key
                            ))));
                            break;
                        }
                        self.end_listing(
                            &mut objects,
                            out,
                            membership.as_deref(),
                            &meta.resource_version,
                        );
                        continue;
                    }
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
                            failed(RequestError::Api(status))
                        });
                        break;
                    }
                    // Only ADDED comes before a streaming list's end (k8s-protocol.md §3.5): a
                    // server that sends anything else ignored `sendInitialEvents`.
                    WatchType::Modified | WatchType::Deleted if self.listing.is_some() => {
                        end = Some(End::NoStreamingList(format!(
                            "a {:?} event before the {INITIAL_EVENTS_END} bookmark",
                            event.kind
                        )));
                        break;
                    }
                    WatchType::Added | WatchType::Modified | WatchType::Deleted => {}
                }
                if meta.uid.is_empty() || meta.resource_version.is_empty() {
                    end = Some(End::Failed(RequestError::Malformed(
                        "watch event without uid or resourceVersion".into(),
                    )));
                    break;
                }
                progress = true;
                let rv = Rv::parse(&meta.resource_version);
                let labels = self.labels_if_needed(meta.labels);
                let exists = event.kind != WatchType::Deleted;
                let matched_from = out.matched.len();
                let matches = self.matches(meta, &labels, membership.as_deref(), out);
                let uid = Uid::parse(&meta.uid);
                let (initial, resync) = match &mut self.listing {
                    Some(listing) => {
                        if matches && let Some(seen) = &mut listing.seen {
                            seen.insert(uid.clone());
                        }
                        (listing.initial, !self.first_list)
                    }
                    None => (false, false),
                };
                self.handle(
                    &mut objects,
                    out,
                    membership.as_deref(),
                    Seen {
                        uid,
                        rv: rv.clone(),
                        meta,
                        labels: &labels,
                        present: exists && matches,
                        exists,
                        raw: event.raw.map(|raw| (raw, false)),
                        initial,
                        resync,
                        report: true,
                        matched_from,
                    },
                );
                // An initial event's resourceVersion is its object's, not a point of the
                // stream: until the end bookmark, a broken stream lists again.
                if self.listing.is_none() {
                    self.note_rv(&meta.resource_version, rv);
                }
            }
            self.note_progress_locked(&mut objects, out);
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
        let mut out = self.batch(Bytes::new());
        {
            let ctx = self.ctx.clone();
            let membership = ctx.membership();
            let mut objects = lock(&self.objects);
            for orphan in objects.release_all(self.spec.id, &cause) {
                self.push_orphan(&mut out, &orphan, membership.as_deref());
            }
            self.note_progress_locked(&mut objects, &mut out);
        }
        self.send(out).await;
    }

    /// Records what the server showed of one object and adds the event it leads to: updates
    /// the GVR's shared state (emitting streams only: control streams must not keep objects
    /// alive for the others), tells the registry (control streams), adds the change.
    fn handle(
        &self,
        objects: &mut ObjectSet,
        out: &mut EventBatch,
        membership: Option<&Membership>,
        seen: Seen,
    ) {
        let meta = seen.meta;
        if seen.report
            && let Some(kind) = self.spec.control
        {
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
        // What is remembered of this version: its managedFields digest, and for a diffed
        // resource the object as diffs compare it.
        let managed = meta.managed_fields.as_deref();
        let digest = managed.map(managers::digest).unwrap_or_default();
        let kept = match (&self.diff, seen.raw) {
            (Some(_), Some((raw, _))) if seen.exists && seen.present => {
                compare::keep(raw, meta.managed_fields_text, self.secret)
            }
            _ => None,
        };
        let (event_type, previous) = if self.spec.emit {
            let (change, previous) = objects.observe_version(
                self.spec.id,
                seen.uid,
                seen.rv,
                meta.namespace.as_deref(),
                &meta.name,
                seen.present,
                Version {
                    managers: digest,
                    object: kept.clone(),
                },
            );
            let event_type = match change {
                Change::Added => Some(EventType::Added),
                Change::Updated => Some(EventType::Updated),
                Change::Deleted => Some(EventType::Deleted),
                Change::Nothing => None,
            };
            (event_type, previous)
        } else {
            (None, Version::default())
        };
        let initial = seen.initial && event_type == Some(EventType::Added);
        let Some(event_type) = event_type.filter(|_| !initial || self.ctx.options.initial) else {
            out.matched.truncate(seen.matched_from);
            return;
        };
        let object =
            seen.raw
                .filter(|_| self.ctx.options.include_object)
                .map(|(raw, missing_type)| {
                    batch::object_text(raw, missing_type, &self.type_prefix, self.secret)
                });
        let matched = match &self.spec.matcher {
            None => Matched::All,
            // An object that left every entry's filter (a DELETED event of a MODIFIED that no
            // longer matches) is reported with all the stream's entries: they held it.
            Some(_) if out.matched.len() == seen.matched_from => Matched::All,
            Some(_) => Matched::Range(
                seen.matched_from as u32,
                (out.matched.len() - seen.matched_from) as u32,
            ),
        };
        let workload = self.workload(meta, membership);
        let changed_by = match (&managed, event_type) {
            (Some(entries), EventType::Added | EventType::Updated) => managers::changed_by(
                entries,
                event_type == EventType::Added,
                &previous.managers,
                seen.resync,
            )
            .map(|(i, guess)| (&entries[i], guess)),
            _ => None,
        };
        let mut diff = Vec::new();
        let has_diff = match (&self.diff, &kept, &previous.object) {
            (Some(options), Some(new), Some(old)) if event_type == EventType::Updated => {
                compare::diff(old, new, options, &mut diff)
            }
            _ => false,
        };
        batch::push(
            out,
            NewEvent {
                event_type,
                meta,
                initial,
                object,
                workload,
                matched,
                secret: self.secret,
                resync: seen.resync,
                changed_by,
                diff: has_diff.then_some(diff.as_slice()),
            },
        );
    }

    /// Whether the object passes this stream's client-side filter; the entries that accept it
    /// are pushed onto `out.matched`.
    fn matches(
        &self,
        meta: &Meta,
        labels: &[(Cow<str>, Cow<str>)],
        membership: Option<&Membership>,
        out: &mut EventBatch,
    ) -> bool {
        // Whoever filtered before (the server or nobody), only the shard's objects pass.
        if let Some(shard) = &self.spec.shard
            && !shard.owns(meta.namespace.as_deref())
        {
            return false;
        }
        let Some(matcher) = &self.spec.matcher else {
            return true;
        };
        let view = ObjectView {
            namespace: meta.namespace.as_deref(),
            name: &meta.name,
            labels,
        };
        matcher.matches(&view, membership, &mut out.matched)
    }

    /// The workload of an object: for namespaces, from their own labels; else that of their
    /// namespace.
    fn workload(&self, meta: &Meta, membership: Option<&Membership>) -> Option<Arc<WorkloadRef>> {
        let membership = membership?;
        if self.spec.key.gvr.is_namespaces() {
            let labels = string_map(meta.labels);
            return membership.classify(
                &meta.name,
                labels.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
            );
        }
        // A namespace-scoped stream keeps the workload it was started for: the server's own
        // DELETED events of a deleted namespace may arrive after the registry dropped it.
        meta.namespace
            .as_deref()
            .and_then(|ns| membership.get(ns))
            .or(self.start_workload.as_ref())
            .cloned()
    }

    fn labels_if_needed<'a>(&self, raw: Option<&'a str>) -> Vec<(Cow<'a, str>, Cow<'a, str>)> {
        let needed = self.spec.control.is_some()
            || self.spec.matcher.as_ref().is_some_and(|m| m.needs_labels());
        if needed { string_map(raw) } else { Vec::new() }
    }

    fn push_orphan(
        &self,
        out: &mut EventBatch,
        orphan: &super::state::Orphan,
        membership: Option<&Membership>,
    ) {
        if !self.spec.emit {
            return;
        }
        let workload = membership.and_then(|m| {
            orphan
                .namespace
                .as_deref()
                .and_then(|ns| m.get(ns))
                .or(self.start_workload.as_ref())
                .cloned()
        });
        batch::push_orphan(out, orphan, workload);
    }

    fn control(&self, kind: ControlKind, change: ControlChange, rv: Rv) {
        let _ = self.ctx.control.send(ControlEvent { kind, change, rv });
    }

    fn batch(&self, frame: Bytes) -> EventBatch {
        EventBatch::new(self.info.clone(), frame, Some(self.ctx.pool.clone()))
    }

    /// Hands a batch to the consumer; waits while it is behind (back-pressure). Returns false
    /// when the consumer has gone away.
    async fn send(&self, out: EventBatch) -> bool {
        match self.offer(out) {
            Offer::Done(sent) => sent,
            Offer::Wait(wait) => wait.await,
        }
    }

    /// Hands a batch to the consumer if it has room, else the wait for room.
    fn offer(&self, out: EventBatch) -> Offer {
        if out.is_empty() {
            // Bookmarks, partial lines and filtered events make no events.
            return Offer::Done(true);
        }
        self.ctx
            .counters
            .received
            .fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
        match self.ctx.events.try_send(Message::Batch(out)) {
            Ok(()) => Offer::Done(true),
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Done(false),
            // Boxed: waiting for room is the exception, and the sending future would otherwise
            // take about 700 bytes of every watching task's state.
            Err(mpsc::error::TrySendError::Full(message)) => {
                let events = self.ctx.events.clone();
                Offer::Wait(Box::pin(async move { events.send(message).await.is_ok() }))
            }
        }
    }
}

/// One object as a list page or watch event showed it.
struct Seen<'a, 'b> {
    uid: Uid,
    /// `meta.resource_version`, parsed.
    rv: Rv,
    meta: &'b Meta<'a>,
    labels: &'b [(Cow<'a, str>, Cow<'a, str>)],
    /// It passes this stream's filters.
    present: bool,
    /// It exists on the server (false for DELETED events).
    exists: bool,
    /// Its raw JSON, and whether `kind`/`apiVersion` are missing (list items of built-ins).
    raw: Option<(&'a str, bool)>,
    /// From the first listing of a stream started before ready.
    initial: bool,
    /// From a relist (not the stream's first listing): a comparison, not a watch event.
    resync: bool,
    /// Tell the registry (control streams).
    report: bool,
    /// Where this object's matched entries start in the batch's list.
    matched_from: usize,
}

/// A batch handed to the consumer (true) or not (false: it has gone away), or the wait for
/// its room.
enum Offer {
    Done(bool),
    Wait(std::pin::Pin<Box<dyn Future<Output = bool> + Send>>),
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

fn owned(parsed: &[(Cow<str>, Cow<str>)], raw: Option<&str>) -> Vec<(String, String)> {
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

fn lock_set<T>(set: &Mutex<HashSet<T>>) -> std::sync::MutexGuard<'_, HashSet<T>> {
    set.lock().unwrap_or_else(|e| e.into_inner())
}

fn lock(objects: &Mutex<ObjectSet>) -> std::sync::MutexGuard<'_, ObjectSet> {
    // A panic while holding the lock cannot leave the set half-updated in a way that matters
    // more than stopping would; keep going with what is there.
    objects.lock().unwrap_or_else(|e| e.into_inner())
}

/// One list page, fetched by a task of its own while the stream works through the previous
/// page: the server renders (and the task decodes, when gzipped) page N+1 on the other core
/// while page N is scanned and emitted. Dropping it cancels the request.
struct Prefetch {
    task: tokio::task::JoinHandle<Result<Bytes, RequestError>>,
    /// 429s met on the way, for the stream's error counter (the probe stays with the stream).
    throttled: Arc<std::sync::atomic::AtomicU32>,
}

impl Prefetch {
    fn start(ctx: &Arc<Context>, path: String) -> Prefetch {
        let throttled = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let count = throttled.clone();
        let ctx = ctx.clone();
        let task = tokio::spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _slot = ctx.list_slots.acquire().await;
            let gzip = ctx.options.list_compression;
            let response =
                client::get_encoded(&ctx.client, &path, Some("application/json"), gzip, &|| {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                })
                .await?;
            client::read_body(response).await
        });
        Prefetch { task, throttled }
    }

    async fn body(&mut self, probe: &StreamProbe) -> Result<Bytes, RequestError> {
        let result = (&mut self.task).await.unwrap_or_else(|e| {
            Err(RequestError::Transport(format!(
                "list page request ended: {e}"
            )))
        });
        for _ in 0..self.throttled.swap(0, std::sync::atomic::Ordering::Relaxed) {
            probe.error(Some(429));
        }
        result
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Role, StreamKey};
    use crate::stream::{Counters, StreamOptions};
    use tokio::sync::mpsc;

    /// A task of a configmaps stream whose client points nowhere (nothing is requested).
    fn task() -> (Task, mpsc::Receiver<Message>) {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let (events, rx) = mpsc::channel(4);
        let ctx = Arc::new(Context {
            client: kube::Client::try_from(config).unwrap(),
            events,
            status: mpsc::unbounded_channel().0,
            control: mpsc::unbounded_channel().0,
            options: StreamOptions {
                include_object: false,
                initial: true,
                watch_timeout: Duration::from_secs(290),
                stall_timeout: None,
                page_size: 500,
                streaming_lists: true,
                list_compression: true,
                diff: None,
            },
            list_slots: tokio::sync::Semaphore::new(1),
            listing_slots: Arc::new(tokio::sync::Semaphore::new(1)),
            membership: None,
            pool: Arc::default(),
            counters: Arc::new(Counters::default()),
            metrics: crate::metrics::Metrics::new(Arc::new(Counters::default())),
            checkpointing: false,
            paged_only: Mutex::default(),
        });
        let spec = StreamSpec {
            id: 1,
            key: StreamKey {
                namespace: None,
                gvr: "v1/configmaps".parse().unwrap(),
                label_selector: None,
                field_selector: None,
                role: Role::Emit(vec![0]),
            },
            kind: "ConfigMap".into(),
            matcher: None,
            entries: Arc::from([0]),
            emit: true,
            control: None,
            initial: false,
            resume: Resume::Fresh,
            shard: None,
        };
        let stop = StopSignal::default();
        (
            Task::new(spec, Arc::new(Mutex::new(ObjectSet::default())), ctx, stop),
            rx,
        )
    }

    #[tokio::test]
    async fn a_sharded_stream_asks_for_its_shard_until_the_server_ignores_it_and_keeps_only_its_own()
     {
        let (mut task, _rx) = task();
        let shard = crate::shard::Shard::new(1, 2).unwrap();
        task.spec.shard = Some(shard);
        let encoded = client::encode_query_value(&shard.selector());
        assert!(task.query().contains(&format!("&shardSelector={encoded}")));
        task.shard_mode = ShardMode::Server;
        assert!(task.query().contains("shardSelector"));
        task.filter_shard_here("test");
        assert_eq!(task.shard_mode, ShardMode::Client);
        assert!(!task.query().contains("shardSelector"));
        // "alpha" hashes into the upper half (shard 1 of 2), "delta" into the lower.
        let line = |ns: &str, uid: &str, rv: u32| {
            format!(
                "{{\"type\":\"ADDED\",\"object\":{{\"metadata\":{{\"name\":\"x\",\"namespace\":\"{ns}\",\"uid\":\"{uid}\",\"resourceVersion\":\"{rv}\"}}}}}}\n"
            )
        };
        assert!(shard.owns(Some("alpha")) && !shard.owns(Some("delta")));
        let lines = format!("{}{}", line("alpha", "u1", 5), line("delta", "u2", 6));
        let mut out = task.batch(Bytes::new());
        let outcome = task.handle_lines(lines.as_bytes(), &mut out);
        assert!(matches!(outcome, LinesOutcome::Continue(true)));
        assert_eq!(out.len(), 1, "only the shard's object");
        assert_eq!(
            task.rv.as_deref(),
            Some("6"),
            "the other's event still counts"
        );
    }

    #[tokio::test]
    async fn an_undecodable_line_ends_the_watch_to_resume_without_a_second_warning() {
        let (mut task, _rx) = task();
        let mut out = task.batch(Bytes::new());
        let lines = b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"uid\":\"u\",\"resourceVersion\":\"5\"}}}\n{not json\n";
        let outcome = task.handle_lines(lines, &mut out);
        // End::Failed would be logged a second time ("watch failed, retrying").
        assert!(matches!(outcome, LinesOutcome::End(End::Undecodable)));
        assert_eq!(out.len(), 1, "the good line before it counts");
        assert_eq!(
            task.rv.as_deref(),
            Some("5"),
            "resumed after the last good event"
        );
    }

    #[test]
    fn a_400_is_a_rejection_and_other_errors_are_retried() {
        let api = |code| {
            RequestError::Api(ApiError {
                code,
                reason: String::new(),
                message: String::new(),
            })
        };
        assert!(matches!(failed(api(400)), End::Rejected(_)));
        assert!(matches!(failed(api(500)), End::Failed(_)));
        assert!(matches!(
            failed(RequestError::Transport("refused".into())),
            End::Failed(_)
        ));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            client::encode_query_value("app in (a,b)"),
            "app%20in%20%28a%2Cb%29"
        );
        assert_eq!(
            client::encode_query_value("metadata.name=x"),
            "metadata.name%3Dx"
        );
        assert_eq!(client::encode_query_value("plain-1.2_~"), "plain-1.2_~");
    }
}
