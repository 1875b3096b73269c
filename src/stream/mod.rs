//! One server-side watch, run as a task: list, then watch from the list's resourceVersion,
//! resume after every disconnect, relist after `410 Expired`, and turn what it sees into
//! batches of [`Event`](crate::Event)s through the shared per-GVR [`state::ObjectSet`].
//!
//! faro speaks list/watch itself over kube's `Client::send` instead of using kube-runtime's
//! `watcher`, because the guarantees and targets of design.md need what the watcher hides:
//! - ADDED and MODIFIED stay apart, and objects that vanished during a relist are reported
//!   (the watcher merges the first two and silently drops the last, kube-rs-notes.md §6.5);
//! - 403 is reported once with the missing permission, and 404/410 at watch start end the
//!   attempt (the watcher retries those forever, §6.3);
//! - each line is decoded once, borrowing only the metadata, and the raw object bytes are at
//!   hand for `include_object`: decoding every event into a `DynamicObject` tree costs several
//!   times more than the throughput target allows (design.md §8).
//!
//! Files: `task.rs` the list/watch/recovery loop, `batch.rs` how observations become events,
//! `backoff.rs` the retry delays, `parse.rs` the wire decoding, `state.rs` the per-object
//! records.
//!
//! # Recovery
//! - stream end or timeout: re-watch from the last resourceVersion seen (events and bookmarks);
//!   nothing is lost or repeated;
//! - `ERROR` 410 on the stream or HTTP 410 at watch start: relist, then emit only the
//!   difference (UPDATED for changed objects, DELETED for vanished ones, nothing for the rest);
//! - a line that does not decode: the stream is dropped and resumed from the last good
//!   resourceVersion, so the event is read again rather than lost;
//! - other failures: exponential backoff (250 ms to 30 s; 5 min for 403) and retry.
//!
//! # Sharding
//! A cluster-wide watch of a namespaced resource under `--shard i/N` first asks the server one
//! list of one object with its KEP-5866 `shardSelector`. When the answer echoes the selector in
//! `metadata.shardInfo.selector`, the server filters: every list and watch of the stream carries
//! the selector. When it does not (a server without the `ServerSideShardedListWatch` gate
//! ignores the parameter) or rejects it with a 400, the stream lists and watches everything and
//! drops what the shard does not own itself. Either way each object's namespace is checked
//! against the shard (a hash of a few bytes per object), so a watch that lands on an API
//! server without the gate (an HA control plane during a rolling upgrade) still delivers the
//! shard's objects only.

mod backoff;
mod batch;
pub(crate) mod compare;
mod managers;
pub(crate) mod parse;
mod slab;
pub(crate) mod snapshot;
pub(crate) mod state;
mod task;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::event::{BatchPool, EventBatch};
use crate::matcher::Matcher;
use crate::plan::{ControlKind, StreamKey};
use crate::workload::Membership;
use state::{ObjectSet, Rv, StreamId};

/// How many list pages may be in flight at once. Workload watching starts thousands of streams
/// together; unbounded, each initial list would open its own HTTP/1.1 connection (kube 5 speaks
/// no HTTP/2) and hold its response body in memory at the same moment, and the connections
/// left idle in the pool afterwards linger for 90 s. 32 pages keep the server and the start-up
/// fast (the fan-out benchmark's 3,000 lists) without that spike. A page that hangs holds its
/// slot only as long as the API server lets a request run (kube-apiserver's `--request-timeout`,
/// 1 minute by default; an aggregated API whose backend is down answers 503 at once), so a few
/// broken resources cannot hold up the others.
pub(crate) const LIST_CONCURRENCY: usize = 32;

/// How many streams read their initial state as a streaming list at once.
///
/// The server answers a streaming list with the whole state at once, and while the consumer
/// is behind, each stream holds what it read (over HTTP/2, the read buffers its frames share
/// stay allocated with them). Starting 30,000 namespace watches (10,000 workloads) without a
/// bound held all their initial objects at once: about 30 MB of frames and 9 MB of batches
/// at the peak. A stream holds its slot from its request to the end bookmark's batch handed
/// over, so a slow or stuck stream costs one slot for at most the streaming list's patience.
/// Watches from a known resourceVersion take no slot (they start with nothing to send).
pub(crate) const STREAMING_LIST_CONCURRENCY: usize = 512;

/// What travels from the streams (and the registry) to the consumer, in one bounded channel:
/// its bound is what makes a slow consumer slow the watches down.
#[derive(Debug)]
pub(crate) enum Message {
    /// Events of one stream from one network frame or list page.
    Batch(EventBatch),
    /// Every initial listing has been sent before this.
    Ready {
        /// Server-side watches running.
        streams: usize,
    },
    /// A checkpoint to write once every batch it covers has been delivered.
    Snapshot(snapshot::Snapshot),
}

/// How a stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resume {
    /// As usual: list, then watch.
    Fresh,
    /// Its objects are known from a checkpoint: watch from this resourceVersion, no listing
    /// (after `410 Gone`, relist and report the difference).
    Watch(String),
    /// Its objects are known from a checkpoint, its resume point is not: list and report the
    /// difference.
    Relist,
}

/// How to run one stream.
#[derive(Debug, Clone)]
pub(crate) struct StreamSpec {
    /// Unique id of this stream for the run.
    pub id: StreamId,
    /// The watch.
    pub key: StreamKey,
    /// Kind of the objects (list items of built-in types lack it).
    pub kind: String,
    /// Client-side filter; None passes everything.
    pub matcher: Option<Arc<Matcher>>,
    /// The config entries it serves.
    pub entries: Arc<[usize]>,
    /// Whether matching objects are emitted (control streams may only feed the registry).
    pub emit: bool,
    /// Feed the registry with this stream's objects.
    pub control: Option<ControlKind>,
    /// ADDED events of the first listing are `initial` (streams started before ready).
    pub initial: bool,
    /// How it starts.
    pub resume: Resume,
    /// The shard of a sharded cluster-wide watch (`--shard`): its objects outside the shard are
    /// dropped, and the server is asked for the shard only (see `task.rs`).
    pub shard: Option<crate::shard::Shard>,
}

/// A change seen by a control stream.
#[derive(Debug)]
pub(crate) enum ControlChange {
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
    /// The (re)list is complete: objects not reported since `ListStart` are gone. With `ack`,
    /// the stream waits to be told that the registry has acted on the list (workload watching:
    /// the namespace events need the membership computed from the whole list).
    ListEnd {
        /// Told once the registry has reconciled.
        ack: Option<oneshot::Sender<()>>,
    },
}

/// A control stream's report to the registry.
#[derive(Debug)]
pub(crate) struct ControlEvent {
    /// Which control stream.
    pub kind: ControlKind,
    /// What happened.
    pub change: ControlChange,
    /// resourceVersion of the event (or of the list).
    pub rv: Rv,
}

/// A stream's state changes, for readiness and reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamStatus {
    /// The first listing is complete (and its events are in the consumer's channel).
    Synced,
    /// The server refused (403): counted as settled for readiness; retried slowly.
    Forbidden,
    /// The server does not know the resource (404): re-discovery is due.
    NotFound,
    /// The first listing failed otherwise (e.g. a 500 from a broken conversion webhook):
    /// counted as settled so that readiness does not wait forever; retried with backoff.
    Failing,
    /// The server answered 400 to a request faro built: retrying cannot help, the stream waits
    /// to be stopped. Counted as settled.
    Rejected,
}

/// What the streams and the consumer count, for progress reports and metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Events put into the consumer's channel.
    pub received: std::sync::atomic::AtomicU64,
    /// Events the consumer has taken (handled, or dropped after retries).
    pub delivered: std::sync::atomic::AtomicU64,
    /// Streams stopped because the server rejected their requests (400).
    pub rejected: std::sync::atomic::AtomicU64,
}

impl crate::metrics::Gauged for Counters {
    /// Events queued toward the consumer.
    fn value(&self) -> u64 {
        let received = self.received.load(std::sync::atomic::Ordering::Relaxed);
        let delivered = self.delivered.load(std::sync::atomic::Ordering::Relaxed);
        received.saturating_sub(delivered)
    }
}

impl crate::metrics::Gauged for Mutex<ObjectSet> {
    /// Objects tracked.
    fn value(&self) -> u64 {
        self.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }
}

/// Settings every stream uses.
#[derive(Debug, Clone)]
pub(crate) struct StreamOptions {
    /// Add the full object to each event.
    pub include_object: bool,
    /// Deliver the ADDED events of the initial listing.
    pub initial: bool,
    /// `timeoutSeconds` asked of the server per watch request.
    pub watch_timeout: Duration,
    /// A watch silent for this long is re-established.
    pub stall_timeout: Option<Duration>,
    /// `limit` per list page.
    pub page_size: u32,
    /// List by streaming lists (`sendInitialEvents=true`) where the server serves them.
    pub streaming_lists: bool,
    /// Ask for gzip-encoded list pages.
    pub list_compression: bool,
    /// Which resources are diffed (None: none).
    pub diff: Option<Arc<compare::DiffSettings>>,
}

/// Everything the stream tasks share.
pub(crate) struct Context {
    /// The API client.
    pub client: Client,
    /// Toward the consumer.
    pub events: mpsc::Sender<Message>,
    /// Status reports to the registry.
    pub status: mpsc::UnboundedSender<(StreamId, StreamStatus)>,
    /// Control events to the registry.
    pub control: mpsc::UnboundedSender<ControlEvent>,
    /// Settings.
    pub options: StreamOptions,
    /// Bounds the list pages in flight at once (see [`LIST_CONCURRENCY`]).
    pub list_slots: tokio::sync::Semaphore,
    /// Bounds the streaming lists in flight at once (see [`STREAMING_LIST_CONCURRENCY`]).
    pub listing_slots: Arc<tokio::sync::Semaphore>,
    /// The registry's current workload assignment (workload watching).
    pub membership: Option<Arc<std::sync::RwLock<Membership>>>,
    /// Spare batch buffers.
    pub pool: Arc<BatchPool>,
    /// Progress counts.
    pub counters: Arc<Counters>,
    /// What the metrics endpoint reports.
    pub metrics: crate::metrics::Metrics,
    /// Checkpoints are taken: note each stream's progress for them.
    pub checkpointing: bool,
    /// GVRs whose server did not serve a streaming list: they are listed page by page.
    pub paged_only: Mutex<std::collections::HashSet<crate::Gvr>>,
}

impl Context {
    /// The current workload assignment.
    ///
    /// The registry updates it in place (see `registry::Workloads`): hold the guard for one
    /// batch's synchronous work, never across an await.
    fn membership(&self) -> Option<std::sync::RwLockReadGuard<'_, Membership>> {
        self.membership
            .as_ref()
            .map(|m| m.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// How a stream is asked to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
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

/// How a stream's task learns that it is asked to stop: set once (the first request wins),
/// waited for at every await of the task.
///
/// Not a `tokio::sync::watch` channel: with 30,000 streams (case 4b of design.md §8) its shared
/// state (about 370 bytes with its eight notifiers) cost 11 MB; this is about 100 bytes.
#[derive(Default)]
struct StopShared {
    requested: Mutex<Option<Stop>>,
    notify: Notify,
}

/// The task's side of its stop request.
#[derive(Clone, Default)]
pub(crate) struct StopSignal(Arc<StopShared>);

impl StopSignal {
    /// The stop requested, if one is.
    pub fn get(&self) -> Option<Stop> {
        self.0
            .requested
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until a stop is requested (at once if one is).
    pub async fn requested(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a request made in between still wakes us.
            notified.as_mut().enable();
            if self.get().is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Asks the task to stop; the first request wins.
    fn request(&self, how: Stop) {
        let mut requested = self.0.requested.lock().unwrap_or_else(|e| e.into_inner());
        if requested.is_none() {
            *requested = Some(how);
            drop(requested);
            self.0.notify.notify_waiters();
        }
    }
}

/// The registry's side: dropping it without a request asks for a shutdown, so a task whose
/// handle is gone does not run on.
struct StopSender(StopSignal);

impl Drop for StopSender {
    fn drop(&mut self) {
        self.0.request(Stop::Shutdown);
    }
}

/// A running stream.
pub(crate) struct StreamHandle {
    stop: StopSender,
    task: tokio::task::JoinHandle<()>,
}

impl StreamHandle {
    /// Asks the stream to stop (the first request wins).
    pub fn stop(&self, how: Stop) {
        self.stop.0.request(how);
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
pub(crate) fn spawn(
    spec: StreamSpec,
    objects: Arc<Mutex<ObjectSet>>,
    ctx: Arc<Context>,
) -> StreamHandle {
    let stop = StopSignal::default();
    // Boxed: the task's state is large, and the future of `run` would otherwise hold it twice
    // (the argument and the local it is moved to), about 1 KiB per stream.
    let task = Box::new(task::Task::new(spec, objects, ctx, stop.clone()));
    StreamHandle {
        stop: StopSender(stop),
        task: tokio::spawn(task.run()),
    }
}
