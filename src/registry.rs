//! The watch registry: keeps the running streams equal to the planner's desired set as
//! namespaces, workloads and CRDs come and go.
//!
//! Inputs are the control streams (`v1/namespaces`, CustomResourceDefinitions), stream status
//! reports and re-discovery results; the only mutator is `reconcile`, which starts missing
//! streams and stops unwanted ones. Stops are make-before-break: a stream replaced by another
//! one of the same GVR (e.g. per-namespace watches giving way to one cluster-wide watch) stops
//! only once the new streams of that GVR have listed, so no object is reported DELETED in
//! between. A stream whose namespace or CRD was deleted first drains the server's own DELETED
//! events; one whose namespace left a workload stops at once; both then report DELETED for the
//! objects no other stream still sees.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::discovery::{self, Discovery};
use crate::filter::{Desired, NamespaceInfo, Planner};
use crate::gvr::Gvr;
use crate::stream::state::{ObjectSet, Rv, StreamId};
use crate::stream::{
    self, ControlChange, ControlEvent, ControlKind, Shared, Stop, StreamHandle, StreamKey,
    StreamSpec, StreamStatus,
};
use crate::workload::Membership;

/// Options of a registry run.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// File to create once every initial listing is done.
    pub ready_file: Option<PathBuf>,
}

struct Running {
    id: StreamId,
    handle: StreamHandle,
    /// First listing done (or settled by 403/404).
    settled: bool,
}

/// The registry's state.
pub struct Registry {
    shared: Arc<Shared>,
    planner: Planner,
    discovery: Discovery,
    membership: Option<Arc<RwLock<Membership>>>,
    options: RegistryOptions,
    /// Live namespaces, once the namespace stream has listed.
    namespaces: Option<BTreeMap<String, NamespaceInfo>>,
    /// Namespaces seen during a (re)list of the namespace stream.
    listing: Option<BTreeMap<String, NamespaceInfo>>,
    /// The namespace stream is unusable (403): plan without the namespace list.
    namespaces_unavailable: bool,
    running: BTreeMap<StreamKey, Running>,
    by_id: HashMap<StreamId, StreamKey>,
    stopping: Vec<StreamHandle>,
    /// Streams to stop once the new streams of their GVR have listed.
    deferred: Vec<(StreamKey, Running, Stop)>,
    objects: HashMap<Gvr, Arc<Mutex<ObjectSet>>>,
    next_id: StreamId,
    ready: bool,
    /// Highest resourceVersion of control events handled: the cause of the stops they lead to.
    cause: Rv,
    /// Namespaces deleted since the last reconcile (their streams drain first).
    deleted_namespaces: BTreeSet<String>,
    /// The last re-discovery was caused by a CRD deletion at this resourceVersion.
    crd_cause: Option<Rv>,
    dirty: bool,
    /// Something the plan depends on changed besides the namespace list (discovery, the first
    /// namespace list, its availability). In workload mode the plan depends on the namespaces
    /// only through the workload membership, so namespace events that leave the membership as
    /// it was (a namespace without the label created, labelled otherwise, deleted) skip
    /// planning: with thousands of streams planning is the registry's main cost.
    replan: bool,
    rediscover_at: Option<Instant>,
    rediscovering: bool,
    rediscover_again: bool,
    last_not_found_rediscovery: Option<Instant>,
}

/// Channels the streams report on.
pub struct Inbox {
    /// Stream status reports.
    pub status: mpsc::UnboundedReceiver<(StreamId, StreamStatus)>,
    /// Control stream events.
    pub control: mpsc::UnboundedReceiver<ControlEvent>,
}

impl Registry {
    /// A registry over a planner, with the start-up discovery.
    pub fn new(
        shared: Arc<Shared>,
        planner: Planner,
        discovery: Discovery,
        membership: Option<Arc<RwLock<Membership>>>,
        options: RegistryOptions,
    ) -> Registry {
        Registry {
            shared,
            planner,
            discovery,
            membership,
            options,
            namespaces: None,
            listing: None,
            namespaces_unavailable: false,
            running: BTreeMap::new(),
            by_id: HashMap::new(),
            stopping: Vec::new(),
            deferred: Vec::new(),
            objects: HashMap::new(),
            next_id: 1,
            ready: false,
            cause: Rv::Num(0),
            deleted_namespaces: BTreeSet::new(),
            crd_cause: None,
            dirty: false,
            replan: true,
            rediscover_at: None,
            rediscovering: false,
            rediscover_again: false,
            last_not_found_rediscovery: None,
        }
    }

    /// Runs until `shutdown` turns true, then stops every stream and waits for them, so that
    /// everything they processed has reached the writer.
    pub async fn run(mut self, mut inbox: Inbox, mut shutdown: watch::Receiver<bool>) {
        let (discovered_tx, mut discovered_rx) = mpsc::unbounded_channel();
        self.reconcile();
        loop {
            let rediscover_at = self.rediscover_at;
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                Some(event) = inbox.control.recv() => {
                    self.on_control(event);
                    // Take everything already queued before planning once.
                    while let Ok(event) = inbox.control.try_recv() {
                        self.on_control(event);
                    }
                }
                Some((id, status)) = inbox.status.recv() => self.on_status(id, status),
                Some(result) = discovered_rx.recv() => self.on_discovered(result),
                _ = sleep_until(rediscover_at) => {
                    self.rediscover_at = None;
                    if self.rediscovering {
                        self.rediscover_again = true;
                    } else {
                        self.rediscovering = true;
                        let client = self.shared.client.clone();
                        let tx = discovered_tx.clone();
                        tokio::spawn(async move {
                            let _ = tx.send(discovery::discover(&client).await);
                        });
                    }
                }
            }
            if self.dirty {
                self.dirty = false;
                self.reconcile();
            }
            self.stopping.retain(|h| !h.is_finished());
        }
        self.shutdown().await;
    }

    async fn shutdown(mut self) {
        for (_, running) in std::mem::take(&mut self.running) {
            running.handle.stop(Stop::Shutdown);
            self.stopping.push(running.handle);
        }
        for (_, running, _) in std::mem::take(&mut self.deferred) {
            running.handle.stop(Stop::Shutdown);
            self.stopping.push(running.handle);
        }
        for handle in std::mem::take(&mut self.stopping) {
            handle.join().await;
        }
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
                    live.insert(name, info);
                    self.dirty = true;
                }
            }
            ControlChange::Absent { name } => {
                if let Some(listing) = self.listing.as_mut() {
                    listing.remove(&name);
                } else if let Some(live) = self.namespaces.as_mut()
                    && live.remove(&name).is_some()
                {
                    self.deleted_namespaces.insert(name);
                    self.dirty = true;
                }
            }
            ControlChange::ListEnd => {
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
        if status == StreamStatus::Forbidden
            && key.gvr == Gvr::namespaces()
            && key.filter_id == [crate::filter::CONTROL_FILTER]
        {
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
        if let Some(running) = self.running.get_mut(&key) {
            running.settled = true;
        }
        self.run_deferred_stops();
        self.check_ready();
    }

    fn on_discovered(&mut self, result: anyhow::Result<Discovery>) {
        self.rediscovering = false;
        match result {
            Ok(found) => {
                for warning in &found.warnings {
                    tracing::debug!("re-discovery: {warning}");
                }
                self.discovery = found;
                self.dirty = true;
                self.replan = true;
            }
            Err(e) => tracing::warn!("re-discovery failed (keeping the previous result): {e:#}"),
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

    /// Brings the running streams in line with the plan.
    fn reconcile(&mut self) {
        let mut membership_changed = self.membership.is_none();
        if let (Some(membership), Some(namespaces)) = (&self.membership, &self.namespaces) {
            let mut membership = membership.write().unwrap_or_else(|e| e.into_inner());
            let before = membership.recompute(namespaces);
            for (ns, w) in membership.namespaces() {
                if before.get(ns).map(|b| &b.id) != Some(&w.id) {
                    membership_changed = true;
                    tracing::info!(namespace = %ns, workload_id = %w.id, workload_name = %w.name, "namespace joined workload");
                }
            }
            for (ns, w) in &before {
                if membership.get(ns).is_none() {
                    tracing::info!(namespace = %ns, workload_id = %w.id, "namespace left workload");
                    membership_changed = true;
                }
            }
        }
        if !membership_changed && !self.replan {
            // Nothing the plan reads changed: the running streams are still the desired ones.
            self.deleted_namespaces.clear();
            self.check_ready();
            return;
        }
        self.replan = false;

        let mut desired = self.planner.plan(
            &self.discovery,
            self.namespaces
                .as_ref()
                .filter(|_| !self.namespaces_unavailable),
        );
        if self.planner.needs_namespaces() && !self.namespaces_known() {
            // Until the namespace stream has listed, run only the control streams: planning
            // namespace patterns without the list would start watches only to replace them.
            desired.retain(|_, d| d.control.is_some());
        }

        let cause = self.cause.clone();
        let crd_cause = self.crd_cause.take();
        let deleted = std::mem::take(&mut self.deleted_namespaces);
        let to_stop: Vec<StreamKey> = self
            .running
            .keys()
            .filter(|k| !desired.contains_key(*k))
            .cloned()
            .collect();
        for (key, d) in desired {
            if !self.running.contains_key(&key) {
                self.start(key, d);
            }
        }
        for key in to_stop {
            let Some(running) = self.running.remove(&key) else {
                continue;
            };
            let gvr_gone = self.discovery.find(&key.gvr).is_none();
            let namespace_deleted = key
                .namespace
                .as_ref()
                .is_some_and(|ns| deleted.contains(ns));
            let stop_cause = match (&crd_cause, gvr_gone) {
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
        self.run_deferred_stops();
        self.check_ready();
    }

    fn start(&mut self, key: StreamKey, desired: Desired) {
        let id = self.next_id;
        self.next_id += 1;
        let objects = self
            .objects
            .entry(key.gvr.clone())
            .or_insert_with(|| Arc::new(Mutex::new(ObjectSet::default())))
            .clone();
        let spec = StreamSpec {
            id,
            key: key.clone(),
            kind: desired.kind,
            filter: desired.filter,
            emit: desired.emit,
            control: desired.control,
            initial: !self.ready,
        };
        tracing::debug!(stream = %key, id, "starting stream");
        let handle = stream::spawn(spec, objects, self.shared.clone());
        self.by_id.insert(id, key.clone());
        self.running.insert(
            key,
            Running {
                id,
                handle,
                settled: false,
            },
        );
    }

    /// Stops deferred streams whose GVR has no new stream still listing.
    fn run_deferred_stops(&mut self) {
        // Called on every stream status: without this, each would walk every running stream.
        if self.deferred.is_empty() {
            return;
        }
        let unsettled: BTreeSet<Gvr> = self
            .running
            .iter()
            .filter(|(_, r)| !r.settled)
            .map(|(k, _)| k.gvr.clone())
            .collect();
        let deferred = std::mem::take(&mut self.deferred);
        for (key, running, stop) in deferred {
            if unsettled.contains(&key.gvr) && !matches!(stop, Stop::Leave { drain: true, .. }) {
                self.deferred.push((key, running, stop));
            } else {
                running.handle.stop(stop);
                self.stopping.push(running.handle);
            }
        }
    }

    fn check_ready(&mut self) {
        if self.ready || !self.namespaces_known() && self.planner.needs_namespaces() {
            return;
        }
        if self.running.values().all(|r| r.settled) {
            self.ready = true;
            let n = self.running.len();
            let ready_file = self.options.ready_file.clone();
            let shared = self.shared.clone();
            // Announce only once the initial events are out.
            tokio::spawn(async move {
                shared.sink.flushed().await;
                tracing::info!("ready: watching {n} resource streams");
                if let Some(path) = ready_file
                    && let Err(e) =
                        std::fs::write(&path, format!("watching {n} resource streams\n"))
                {
                    tracing::warn!("cannot write the ready file {}: {e}", path.display());
                }
            });
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
