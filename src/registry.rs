//! The watch registry: keeps the running streams equal to the planner's desired set as
//! namespaces, workloads and CRDs come and go, and is the one owner of the workload
//! membership.
//!
//! Inputs are the control streams (`v1/namespaces`, CustomResourceDefinitions), stream status
//! reports and re-discovery results; the only mutator of the running set is `reconcile`, which
//! starts missing streams and stops unwanted ones. Stops are make-before-break: a stream
//! replaced by another one of the same GVR (e.g. per-namespace watches giving way to one
//! cluster-wide watch) stops only once the new streams of that GVR have listed, so no object is
//! reported DELETED in between. A stream whose namespace or CRD was deleted first drains the
//! server's own DELETED events; one whose namespace left a workload stops at once; both then
//! report DELETED for the objects no other stream still sees.
//!
//! Planning is scoped to what changed: a namespace joining or leaving (a workload, or the
//! namespaces a pattern resolves to) plans and compares only that namespace's streams, a CRD
//! arriving or going only its GVR's (see [`plan::Scope`] and [`plan::Streams`]); only the first
//! plan, a relist of the namespaces and the rare change that affects every namespace (a
//! pattern crossing `cluster_wide_threshold`) plan everything. With thousands of streams this
//! keeps a join's cost independent of how many streams run.
//!
//! The membership is kept here, updated one namespace at a time, and shared with the streams
//! behind a lock they read briefly; nothing else writes it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::checkpoint::{Checkpoint, Saved};
use crate::config;
use crate::discovery::{self, Discovery};
use crate::gvr::Gvr;
use crate::plan::{self, ControlKind, Desired, NamespaceInfo, Planner, Scope, StreamKey, Streams};
use crate::stream::snapshot::{self, SnapshotStream};
use crate::stream::state::{ObjectSet, Rv, StreamId};
use crate::stream::{
    self, Context, ControlChange, ControlEvent, Message, Resume, Stop, StreamHandle, StreamSpec,
    StreamStatus,
};
use crate::workload::Membership;

struct Running {
    id: StreamId,
    handle: StreamHandle,
    /// First listing done (or settled by 403/404).
    settled: bool,
    /// Its identity across runs.
    identity: Arc<str>,
}

/// Checkpoints: what was saved (consumed as the streams it knows start) and when the next
/// snapshot is due.
pub(crate) struct Checkpoints {
    /// Where, and how often.
    pub options: Checkpoint,
    /// The state read at start.
    pub saved: Saved,
    next_at: Instant,
    /// The progress generations and number of streams at the last snapshot.
    last: Option<(u64, usize)>,
    /// Snapshots are taken (false: only resume).
    save: bool,
}

impl Checkpoints {
    /// Checkpoints to `options` (when `save`), resuming from `saved`.
    pub fn new(options: Checkpoint, saved: Saved, save: bool) -> Checkpoints {
        Checkpoints {
            next_at: Instant::now() + options.interval,
            options,
            saved,
            last: None,
            save,
        }
    }

    /// Whether snapshots are taken.
    pub fn saves(&self) -> bool {
        self.save
    }
}

/// The workload membership (workload watching), shared with the streams: the registry is its
/// only writer, and updates it in place one namespace at a time (a copy per change would cost
/// the number of namespaces).
pub(crate) struct Workloads {
    /// The current assignment.
    pub current: Arc<RwLock<Membership>>,
}

/// Channels the streams report on.
pub(crate) struct Inbox {
    /// Stream status reports.
    pub status: mpsc::UnboundedReceiver<(StreamId, StreamStatus)>,
    /// Control stream events.
    pub control: mpsc::UnboundedReceiver<ControlEvent>,
}

/// The registry's state.
pub(crate) struct Registry {
    ctx: Arc<Context>,
    planner: Planner,
    discovery: Discovery,
    workloads: Option<Workloads>,
    /// Live namespaces, once the namespace stream has listed.
    namespaces: Option<BTreeMap<String, NamespaceInfo>>,
    /// Namespaces seen during a (re)list of the namespace stream.
    listing: Option<BTreeMap<String, NamespaceInfo>>,
    /// The namespace stream is unusable (403): plan without the namespace list.
    namespaces_unavailable: bool,
    running: Streams<Running>,
    /// Per GVR, how many running streams have not settled (first listing not done): what
    /// deferred stops wait for, counted so that no status report walks every stream.
    /// Invariant: equals the unsettled streams of `running`, by GVR (absent: none).
    unsettled: HashMap<Gvr, usize>,
    by_id: HashMap<StreamId, StreamKey>,
    stopping: Vec<StreamHandle>,
    /// Streams to stop once the new streams of their GVR have listed.
    deferred: Vec<(StreamKey, Running, Stop)>,
    objects: HashMap<Gvr, Arc<Mutex<ObjectSet>>>,
    next_id: StreamId,
    ready: bool,
    /// Readiness reached; the Ready message still has to be sent (the number of streams).
    announce: Option<usize>,
    /// Highest resourceVersion of control events handled: the cause of the stops they lead to.
    cause: Rv,
    /// Namespaces deleted since the last reconcile (their streams drain first).
    deleted_namespaces: BTreeSet<String>,
    /// The last re-discovery was caused by a CRD deletion at this resourceVersion.
    crd_cause: Option<Rv>,
    dirty: bool,
    /// Something every stream may depend on changed (the first namespace list, a relist, its
    /// availability): the next reconcile plans everything.
    replan: bool,
    /// Namespaces changed (added, relabelled, deleted) since the last reconcile, each with
    /// whether it was live before the first of those changes: the next reconcile plans only
    /// their streams. In workload watching only those whose membership moved are planned, so
    /// namespace events that leave it as it was (a namespace without the label created,
    /// deleted) plan nothing.
    changed_namespaces: BTreeMap<String, bool>,
    /// GVRs whose discovery changed since the last reconcile (a CRD created or deleted): the
    /// next reconcile plans only their streams.
    changed_gvrs: BTreeSet<Gvr>,
    /// Streams waiting for the next reconcile (a namespace list that must be acted on first).
    acks: Vec<oneshot::Sender<()>>,
    rediscover_at: Option<Instant>,
    rediscovery: JoinSet<discovery::Result<Discovery>>,
    rediscover_again: bool,
    last_not_found_rediscovery: Option<Instant>,
    checkpoints: Option<Checkpoints>,
}

impl Registry {
    /// A registry over a planner, with the start-up discovery.
    pub fn new(
        ctx: Arc<Context>,
        planner: Planner,
        discovery: Discovery,
        workloads: Option<Workloads>,
        checkpoints: Option<Checkpoints>,
    ) -> Registry {
        let mut objects: HashMap<Gvr, Arc<Mutex<ObjectSet>>> = HashMap::new();
        if let Some(c) = &checkpoints {
            // Deletions the previous run wrote after its last checkpoint: their objects must
            // not come back when the watches replay from there.
            for (gvr, uid, rv) in &c.saved.tombstones {
                objects
                    .entry(gvr.clone())
                    .or_default()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .tombstone(uid.clone(), rv.clone());
            }
        }
        for (gvr, set) in &objects {
            let weak: std::sync::Weak<Mutex<ObjectSet>> = Arc::downgrade(set);
            ctx.metrics.objects(gvr, weak);
        }
        Registry {
            ctx,
            planner,
            discovery,
            workloads,
            namespaces: None,
            listing: None,
            namespaces_unavailable: false,
            running: Streams::default(),
            unsettled: HashMap::new(),
            by_id: HashMap::new(),
            stopping: Vec::new(),
            deferred: Vec::new(),
            objects,
            next_id: 1,
            ready: false,
            announce: None,
            cause: Rv::Num(0),
            deleted_namespaces: BTreeSet::new(),
            crd_cause: None,
            dirty: false,
            replan: true,
            changed_namespaces: BTreeMap::new(),
            changed_gvrs: BTreeSet::new(),
            acks: Vec::new(),
            rediscover_at: None,
            rediscovery: JoinSet::new(),
            rediscover_again: false,
            last_not_found_rediscovery: None,
            checkpoints,
        }
    }

    /// Runs until `shutdown` turns true or the consumer goes away, then stops every stream and
    /// waits for them, so that everything they processed has reached the consumer's channel.
    ///
    /// Fails only on the first plan: a config entry whose scope contradicts the cluster.
    pub async fn run(
        mut self,
        mut inbox: Inbox,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), config::Error> {
        if let Err(e) = self.reconcile() {
            self.shutdown().await;
            return Err(e);
        }
        let events = self.ctx.events.clone();
        let mut snapshot = None;
        loop {
            if let Some(snapshot) = snapshot.take() {
                tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    sent = events.send(Message::Snapshot(snapshot)) => if sent.is_err() { break },
                }
            }
            if let Some(streams) = self.announce.take() {
                tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    sent = events.send(Message::Ready { streams }) => if sent.is_err() { break },
                }
            }
            let rediscover_at = self.rediscover_at;
            let checkpoint_at = self
                .checkpoints
                .as_ref()
                .filter(|c| c.save)
                .map(|c| c.next_at);
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = events.closed() => break,
                _ = sleep_until(checkpoint_at) => snapshot = self.snapshot(),
                Some(event) = inbox.control.recv() => {
                    self.on_control(event);
                    // Take everything already queued before planning once.
                    while let Ok(event) = inbox.control.try_recv() {
                        self.on_control(event);
                    }
                }
                Some((id, status)) = inbox.status.recv() => self.on_status(id, status),
                Some(joined) = self.rediscovery.join_next() => {
                    // A join error is a panic in discovery: keep the previous result.
                    if let Ok(result) = joined {
                        self.on_discovered(result);
                    }
                }
                _ = sleep_until(rediscover_at) => {
                    self.rediscover_at = None;
                    if self.rediscovery.is_empty() {
                        let client = self.ctx.client.clone();
                        self.rediscovery.spawn(async move { discovery::discover(&client).await });
                    } else {
                        self.rediscover_again = true;
                    }
                }
            }
            if self.dirty {
                self.dirty = false;
                if let Err(e) = self.reconcile() {
                    // Only the first plan is strict; later ones warn instead.
                    tracing::warn!("{e}");
                }
            }
            for ack in self.acks.drain(..) {
                let _ = ack.send(());
            }
            self.stopping.retain(|h| !h.is_finished());
        }
        self.shutdown().await;
        Ok(())
    }

    async fn shutdown(mut self) {
        self.rediscovery.abort_all();
        // What the last checkpoint will describe: every stream that was to run on.
        let last: Vec<SnapshotStream> = self.checkpoint_streams();
        for (_, running) in self.running.take() {
            running.handle.stop(Stop::Shutdown);
            self.stopping.push(running.handle);
        }
        for (_, running, _) in std::mem::take(&mut self.deferred) {
            running.handle.stop(Stop::Shutdown);
            self.stopping.push(running.handle);
        }
        // A stream waiting for an ack is told by the dropped sender.
        self.acks.clear();
        for handle in std::mem::take(&mut self.stopping) {
            handle.join().await;
        }
        while self.rediscovery.join_next().await.is_some() {}
        // Every stream has sent its last batch: the last snapshot follows them all.
        if let Some(c) = self.checkpoints.as_ref().filter(|c| c.save) {
            let snapshot = snapshot::snapshot(&last, &self.sets(), c.options.output_mark(), true);
            let _ = self.ctx.events.send(Message::Snapshot(snapshot)).await;
        }
    }

    /// The streams a checkpoint describes: running, and replaced ones not stopped yet.
    fn checkpoint_streams(&self) -> Vec<SnapshotStream> {
        self.running
            .values()
            .chain(self.deferred.iter().map(|(_, r, _)| r))
            .map(|r| SnapshotStream {
                id: r.id,
                identity: r.identity.clone(),
            })
            .collect()
    }

    fn sets(&self) -> Vec<(Gvr, Arc<Mutex<ObjectSet>>)> {
        self.objects
            .iter()
            .map(|(gvr, set)| (gvr.clone(), set.clone()))
            .collect()
    }

    /// A periodic snapshot, when the streams made progress since the last one.
    fn snapshot(&mut self) -> Option<snapshot::Snapshot> {
        let streams = self.checkpoint_streams();
        let sets = self.sets();
        let c = self.checkpoints.as_mut()?;
        c.next_at = Instant::now() + c.options.interval;
        let generation: u64 = sets
            .iter()
            .map(|(_, set)| set.lock().unwrap_or_else(|e| e.into_inner()).generation())
            .sum();
        if c.last == Some((generation, streams.len())) {
            return None;
        }
        c.last = Some((generation, streams.len()));
        Some(snapshot::snapshot(
            &streams,
            &sets,
            c.options.output_mark(),
            false,
        ))
    }

    fn on_control(&mut self, event: ControlEvent) {
        if event.rv.is_newer(&self.cause) {
            self.cause = event.rv.clone();
        }
        match event.kind {
            ControlKind::Crds => {
                if matches!(event.change, ControlChange::Absent { .. }) {
                    self.crd_cause = Some(event.rv.clone());
                }
                if !matches!(event.change, ControlChange::ListStart) {
                    self.schedule_rediscovery(Duration::from_millis(50));
                }
                if let ControlChange::ListEnd { ack: Some(ack) } = event.change {
                    self.acks.push(ack);
                }
            }
            ControlKind::Namespaces => self.on_namespace(event.change),
        }
    }

    fn on_namespace(&mut self, change: ControlChange) {
        match change {
            ControlChange::ListStart => self.listing = Some(BTreeMap::new()),
            ControlChange::Present {
                name,
                labels,
                terminating,
            } => {
                let info = NamespaceInfo {
                    labels,
                    terminating,
                };
                if let Some(listing) = self.listing.as_mut() {
                    listing.insert(name, info);
                } else if let Some(live) = self.namespaces.as_mut()
                    && live.get(&name) != Some(&info)
                {
                    let was_live = live.insert(name.clone(), info).is_some();
                    self.changed_namespaces.entry(name).or_insert(was_live);
                    self.dirty = true;
                }
            }
            ControlChange::Absent { name } => {
                if let Some(listing) = self.listing.as_mut() {
                    listing.remove(&name);
                } else if let Some(live) = self.namespaces.as_mut()
                    && live.remove(&name).is_some()
                {
                    self.changed_namespaces.entry(name.clone()).or_insert(true);
                    self.deleted_namespaces.insert(name);
                    self.dirty = true;
                }
            }
            ControlChange::ListEnd { ack } => {
                if let Some(listing) = self.listing.take() {
                    if let Some(previous) = &self.namespaces {
                        // A relist after a gap: namespaces gone meanwhile were deleted.
                        for name in previous.keys() {
                            if !listing.contains_key(name) {
                                self.deleted_namespaces.insert(name.clone());
                            }
                        }
                    }
                    self.namespaces = Some(listing);
                    self.dirty = true;
                    self.replan = true;
                }
                if let Some(ack) = ack {
                    // Answered after the reconcile this list leads to.
                    self.dirty = true;
                    self.acks.push(ack);
                }
            }
        }
    }

    fn on_status(&mut self, id: StreamId, status: StreamStatus) {
        let Some(key) = self.by_id.get(&id).cloned() else {
            return;
        };
        if status == StreamStatus::NotFound {
            // The resource may have gone (CRD deleted): re-discover, at most every 2 s.
            let due = self
                .last_not_found_rediscovery
                .is_none_or(|t| t.elapsed() > Duration::from_secs(2));
            if due {
                self.last_not_found_rediscovery = Some(Instant::now());
                self.schedule_rediscovery(Duration::ZERO);
            }
        }
        if status == StreamStatus::Forbidden && key.is_namespace_control() {
            // Without the namespace list, pattern entries fall back to a cluster-wide watch
            // filtered here, and no workload can be detected.
            if self.namespaces.is_none() && !self.namespaces_unavailable {
                tracing::warn!(
                    "cannot list namespaces: namespace patterns fall back to cluster-wide watches filtered by faro"
                );
                self.namespaces_unavailable = true;
                self.dirty = true;
                self.replan = true;
            }
        }
        if let Some(running) = self.running.get_mut(&key)
            && !running.settled
        {
            running.settled = true;
            self.settled(&key.gvr);
        }
        self.run_deferred_stops();
        self.check_ready();
    }

    fn on_discovered(&mut self, result: discovery::Result<Discovery>) {
        match result {
            Ok(found) => {
                for warning in &found.warnings {
                    tracing::debug!("re-discovery: unable to discover {warning}");
                }
                // Only the GVRs the plan reads whose entry changed need planning.
                for gvr in self.planner.gvrs() {
                    let changed = self.discovery.find(&gvr) != found.find(&gvr)
                        || self.discovery.group_version_failed(&gvr)
                            != found.group_version_failed(&gvr);
                    if changed {
                        self.changed_gvrs.insert(gvr);
                    }
                }
                self.discovery = found;
                self.dirty = true;
            }
            Err(e) => tracing::warn!("re-discovery failed (keeping the previous result): {e}"),
        }
        if self.rediscover_again {
            self.rediscover_again = false;
            self.schedule_rediscovery(Duration::from_millis(50));
        }
    }

    fn schedule_rediscovery(&mut self, after: Duration) {
        let at = Instant::now() + after;
        if self.rediscover_at.is_none_or(|current| at < current) {
            self.rediscover_at = Some(at);
        }
    }

    fn namespaces_known(&self) -> bool {
        self.namespaces.is_some() || self.namespaces_unavailable
    }

    /// Recomputes the membership from the whole namespace list (after a relist, or a change
    /// that plans everything), logging the namespaces that moved.
    fn recompute_membership(&mut self) {
        let (Some(workloads), Some(namespaces)) = (&self.workloads, &self.namespaces) else {
            return;
        };
        let mut current = workloads.current.write().unwrap_or_else(|e| e.into_inner());
        let next = current.recompute(namespaces);
        for (ns, w) in next.namespaces() {
            if current.get(ns).map(|b| &b.id) != Some(&w.id) {
                tracing::info!(namespace = %ns, workload_id = %w.id, workload_name = %w.name, "namespace joined workload");
            }
        }
        for (ns, w) in current.namespaces() {
            if next.get(ns).is_none() {
                tracing::info!(namespace = %ns, workload_id = %w.id, "namespace left workload");
            }
        }
        *current = next;
        self.ctx.metrics.workloads(current.workload_count());
    }

    /// Applies the namespaces changed since the last reconcile to the membership, one at a
    /// time; returns the namespaces whose workload moved.
    fn update_membership(&mut self, changed: &BTreeMap<String, bool>) -> Vec<String> {
        let (Some(workloads), Some(namespaces)) = (&self.workloads, &self.namespaces) else {
            return Vec::new();
        };
        let mut current = workloads.current.write().unwrap_or_else(|e| e.into_inner());
        let mut moved = BTreeSet::new();
        for ns in changed.keys() {
            let labels = namespaces.get(ns).map(|info| info.labels.as_slice());
            for m in current.update(ns, labels) {
                match &m.after {
                    Some(w) if m.before.as_ref().map(|b| &b.id) != Some(&w.id) => {
                        tracing::info!(namespace = %m.namespace, workload_id = %w.id, workload_name = %w.name, "namespace joined workload");
                    }
                    None => {
                        if let Some(b) = &m.before {
                            tracing::info!(namespace = %m.namespace, workload_id = %b.id, "namespace left workload");
                        }
                    }
                    Some(_) => {}
                }
                moved.insert(m.namespace);
            }
        }
        self.ctx.metrics.workloads(current.workload_count());
        moved.into_iter().collect()
    }

    /// Brings the running streams in line with the plan: every stream when something they
    /// all depend on changed, else only the streams of the namespaces and GVRs that changed.
    fn reconcile(&mut self) -> Result<(), config::Error> {
        let changed = std::mem::take(&mut self.changed_namespaces);
        let gvrs = std::mem::take(&mut self.changed_gvrs);
        let cause = self.cause.clone();
        let crd_cause = self.crd_cause.take();
        let deleted = std::mem::take(&mut self.deleted_namespaces);
        if !self.replan {
            let namespaces: Vec<String> = if self.workloads.is_some() {
                self.update_membership(&changed)
            } else {
                for (ns, was_live) in &changed {
                    let live = self.namespaces.as_ref().is_some_and(|l| l.contains_key(ns));
                    if live != *was_live {
                        self.planner.note_namespace(ns, live);
                    }
                }
                changed.into_keys().collect()
            };
            let scopes = namespaces
                .iter()
                .map(|ns| Scope::Namespace(ns))
                .chain(gvrs.iter().map(Scope::Gvr));
            let mut complete = true;
            for scope in scopes {
                match self.plan(&scope)? {
                    Some(desired) => {
                        self.apply(&scope, desired, &cause, crd_cause.as_ref(), &deleted)
                    }
                    None => {
                        complete = false;
                        break;
                    }
                }
            }
            if complete {
                self.run_deferred_stops();
                self.check_ready();
                return Ok(());
            }
            // A change that reaches every namespace (a pattern crossing the threshold).
        }
        self.replan = false;
        self.recompute_membership();
        let desired = self.plan(&Scope::All)?.unwrap_or_default();
        self.apply(&Scope::All, desired, &cause, crd_cause.as_ref(), &deleted);
        self.run_deferred_stops();
        self.check_ready();
        Ok(())
    }

    /// The desired streams of a scope (None: that scope cannot be planned alone).
    fn plan(&mut self, scope: &Scope<'_>) -> Result<Option<plan::Plan>, config::Error> {
        let membership = self
            .workloads
            .as_ref()
            .map(|w| w.current.read().unwrap_or_else(|e| e.into_inner()));
        let desired = self.planner.plan_scope(
            scope,
            &self.discovery,
            self.namespaces
                .as_ref()
                .filter(|_| !self.namespaces_unavailable),
            membership.as_deref(),
        )?;
        drop(membership);
        let control_only = self.planner.needs_namespaces() && !self.namespaces_known();
        Ok(desired.map(|mut desired| {
            if control_only {
                // Until the namespace stream has listed, run only the control streams: planning
                // namespace patterns without the list would start watches only to replace them.
                desired.retain(|_, d| d.control.is_some());
            }
            desired
        }))
    }

    /// Starts the streams of `scope` that are desired and not running, and stops those that
    /// run and are not desired, looking at no stream outside the scope.
    fn apply(
        &mut self,
        scope: &Scope<'_>,
        desired: plan::Plan,
        cause: &Rv,
        crd_cause: Option<&Rv>,
        deleted: &BTreeSet<String>,
    ) {
        let delta = plan::delta(&self.running, scope, desired);
        tracing::trace!(
            ?scope,
            visited = delta.visited,
            start = delta.start.len(),
            stop = delta.stop.len(),
            "planned"
        );
        for (key, d) in delta.start {
            self.start(key, d);
        }
        for key in delta.stop {
            let Some(running) = self.running.remove(&key) else {
                continue;
            };
            if !running.settled {
                self.settled(&key.gvr);
            }
            let gvr_gone = self.discovery.find(&key.gvr).is_none();
            let namespace_deleted = key
                .namespace
                .as_ref()
                .is_some_and(|ns| deleted.contains(ns));
            let stop_cause = match (crd_cause, gvr_gone) {
                (Some(crd), true) => crd.clone(),
                _ => cause.clone(),
            };
            let stop = Stop::Leave {
                cause: stop_cause,
                drain: gvr_gone || namespace_deleted,
            };
            tracing::debug!(stream = %key, ?stop, "stopping stream");
            self.by_id.remove(&running.id);
            self.deferred.push((key, running, stop));
        }
    }

    fn start(&mut self, key: StreamKey, desired: Desired) {
        let id = self.next_id;
        self.next_id += 1;
        let objects = self
            .objects
            .entry(key.gvr.clone())
            .or_insert_with(|| {
                let set = Arc::new(Mutex::new(ObjectSet::default()));
                let weak: std::sync::Weak<Mutex<ObjectSet>> = Arc::downgrade(&set);
                self.ctx.metrics.objects(&key.gvr, weak);
                set
            })
            .clone();
        let identity: Arc<str> = Arc::from(plan::identity(&key, &desired.filter));
        let resume = self.resume(id, &identity, desired.control.is_some(), &objects);
        let spec = StreamSpec {
            id,
            key: key.clone(),
            kind: desired.kind,
            matcher: desired.matcher,
            entries: desired.entries,
            emit: desired.emit,
            control: desired.control,
            initial: !self.ready,
            resume,
            shard: desired.shard,
        };
        tracing::debug!(stream = %key, id, "starting stream");
        let handle = stream::spawn(spec, objects, self.ctx.clone());
        self.by_id.insert(id, key.clone());
        *self.unsettled.entry(key.gvr.clone()).or_default() += 1;
        self.running.insert(
            key,
            Running {
                id,
                handle,
                settled: false,
                identity,
            },
        );
    }

    /// How a stream starts: from what the checkpoint saved of it, if anything. Its saved
    /// objects become its own; control streams relist (the registry needs their full list),
    /// the others resume their watch where it was.
    fn resume(
        &mut self,
        id: StreamId,
        identity: &str,
        control: bool,
        objects: &Mutex<ObjectSet>,
    ) -> Resume {
        let Some(saved) = self
            .checkpoints
            .as_mut()
            .and_then(|c| c.saved.streams.remove(identity))
        else {
            return Resume::Fresh;
        };
        let mut set = objects.lock().unwrap_or_else(|e| e.into_inner());
        set.reserve(saved.objects.len());
        for o in saved.objects {
            set.seed(id, o.uid, o.rv, o.namespace.as_deref(), &o.name);
        }
        match saved.rv {
            Some(rv) if !control => Resume::Watch(rv),
            _ => Resume::Relist,
        }
    }

    /// Stops deferred streams whose GVR has no new stream still listing.
    fn run_deferred_stops(&mut self) {
        // Called on every stream status: without this, each would walk every running stream.
        if self.deferred.is_empty() {
            return;
        }
        let deferred = std::mem::take(&mut self.deferred);
        for (key, running, stop) in deferred {
            if self.unsettled.contains_key(&key.gvr)
                && !matches!(stop, Stop::Leave { drain: true, .. })
            {
                self.deferred.push((key, running, stop));
            } else {
                running.handle.stop(stop);
                self.stopping.push(running.handle);
            }
        }
    }

    /// Notes that a stream of `gvr` left the unsettled ones (settled, or no longer running).
    fn settled(&mut self, gvr: &Gvr) {
        if let Some(n) = self.unsettled.get_mut(gvr) {
            *n -= 1;
            if *n == 0 {
                self.unsettled.remove(gvr);
            }
        }
    }

    fn check_ready(&mut self) {
        if self.ready || !self.namespaces_known() && self.planner.needs_namespaces() {
            return;
        }
        // The per-GVR counts of unsettled streams, not a walk of the streams: this runs on every
        // status report, and a walk made start-up quadratic (30,000 streams reporting in an
        // order other than the map's took 4 s of CPU).
        debug_assert_eq!(
            self.unsettled.is_empty(),
            self.running.values().all(|r| r.settled)
        );
        if self.unsettled.is_empty() {
            // Every settled stream sent its initial events before it reported: the Ready
            // message, sent next into the same channel, comes after all of them.
            self.ready = true;
            self.announce = Some(self.running.len());
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
