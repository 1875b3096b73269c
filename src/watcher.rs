//! The public entry point: a [`Watcher`] built from a [`WatchConfig`] or from workload
//! detection, consumed as an async [`EventStream`] of [`Signal`]s or by [`Watcher::run`] with a
//! [`Handler`].
//!
//! Inside, one task runs the registry (discovery → plan → streams); each server-side watch is a
//! task of its own; they all send batches of events into one bounded channel that the consumer
//! reads. A consumer that falls behind fills the channel, the streams then wait, and the API
//! server keeps the rest: memory stays bounded whatever the backlog.
//!
//! # Start-up
//! Discovery is retried for a while (default 15 s, [`Watcher::startup_timeout`]) when the
//! server cannot be reached or answers 5xx: an apiserver restart or a port-forward still coming
//! up should not fail a long-running watcher. Rejected credentials fail at once. A config entry
//! whose scope contradicts the cluster fails start-up too. After start-up the watcher never
//! fails: every stream retries on its own (see the `stream` module).
//!
//! # Readiness
//! [`Signal::Ready`] (or [`Handler::on_ready`]) comes after the last event of every initial
//! listing has been delivered to the consumer; [`Watcher::ready`] gives a handle to poll or
//! await it.
//!
//! # Shutdown
//! When the shutdown future of [`Watcher::run`] resolves (or [`Stopper::stop`] is called), the
//! watches stop, the events already received are delivered (retries included), and `run`
//! returns (the stream ends) once every task faro started has ended.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use futures_core::Stream;
use kube::Client;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::checkpoint::{self, Checkpoint};
use crate::config::{self, WatchConfig};
use crate::diff::DiffOptions;
use crate::discovery::{self, Discovery};
use crate::dispatch::{self, Pool, Worker};
use crate::event::{BatchPool, EventBatch, OwnedEvent};
use crate::gvr::Gvr;
use crate::handler::{Handler, RetryPolicy};
use crate::metrics::Metrics;
use crate::plan::{Mode, Planner};
use crate::registry::{Checkpoints, Inbox, Registry, Workloads};
use crate::shard::Shard;
use crate::stream::compare::DiffSettings;
use crate::stream::snapshot::Snapshot;
use crate::stream::{
    Context, Counters, LIST_CONCURRENCY, Message, STREAMING_LIST_CONCURRENCY, StreamOptions,
};
use crate::tiers::Tiers;
use crate::workload::{Detector, Membership};

/// Batches queued between the streams and the consumer. A batch is one network frame of events
/// (tens of KiB) or one list page (up to ~600 KiB): 32 keep the consumer busy while bounding
/// what a slow consumer can make faro hold (back-pressure then reaches the sockets).
const QUEUE_BATCHES: usize = 32;

/// See [`Watcher::stall_timeout`].
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a watcher could not start. Not retryable as such: the cluster or the config must change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config entry contradicts the cluster (a namespace filter on a cluster-scoped resource,
    /// a declared scope the cluster does not have).
    #[error(transparent)]
    Config(#[from] config::Error),
    /// Discovery failed, and kept failing for the start-up timeout (or failed for good:
    /// rejected credentials, forbidden discovery).
    #[error("discovering the API: {0}")]
    Discovery(#[source] discovery::Error),
    /// The state file cannot be resumed from (corrupt, truncated, another cluster's, another
    /// format version's): it must be looked at, or the state reset.
    #[error(transparent)]
    State(#[from] checkpoint::Error),
    /// A task of the watcher panicked (a bug).
    #[error("a watcher task failed: {0}")]
    Task(String),
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What an [`EventStream`] yields.
#[derive(Debug)]
pub enum Signal {
    /// One change of one object.
    Event(OwnedEvent),
    /// Every initial listing has been delivered: the events before this one describe the
    /// objects that existed when the watches started.
    Ready {
        /// Server-side watches running (faro's own namespace and CRD watches included).
        streams: usize,
    },
}

/// Whether a watcher is ready: polled ([`Readiness::is_ready`]) or awaited
/// ([`Readiness::wait`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Readiness(watch::Receiver<bool>);

impl Readiness {
    /// Whether every initial listing has been delivered.
    pub fn is_ready(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until ready. Returns false if the watcher ended first.
    pub async fn wait(&self) -> bool {
        let mut rx = self.0.clone();
        rx.wait_for(|ready| *ready).await.is_ok()
    }
}

/// What a running watcher has done so far, for progress reports (say, why a stop took long)
/// and metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Progress(Arc<Counters>);

impl Progress {
    /// Events received from the API server so far (each delivered once).
    pub fn received(&self) -> u64 {
        self.0.received.load(Ordering::Relaxed)
    }

    /// Events received and not yet taken by the consumer: queued inside faro.
    pub fn queued(&self) -> u64 {
        self.received()
            .saturating_sub(self.0.delivered.load(Ordering::Relaxed))
    }

    /// Streams stopped because the API server rejected a request faro built for them (400).
    pub fn rejected_streams(&self) -> u64 {
        self.0.rejected.load(Ordering::Relaxed)
    }
}

/// Stops a running [`EventStream`]: the watches stop, queued events are still yielded, then the
/// stream ends. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Stopper(Arc<watch::Sender<bool>>);

impl Stopper {
    /// Asks the watcher to stop.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

/// What a watcher watches.
#[derive(Debug, Clone)]
enum Source {
    Config(WatchConfig),
    Workload { detector: Detector, tiers: Tiers },
}

/// Watches what a [`WatchConfig`] names, or the namespaces of detected workloads, and delivers
/// one [`Event`](crate::Event) per change.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use faro::{Signal, WatchConfig, Watcher};
/// use faro::config::Entry;
/// use futures::StreamExt;
///
/// let client = kube::Client::try_default().await?;
/// let config = WatchConfig::new().entry(Entry::new("v1/configmaps".parse()?).namespace("shop")?);
/// let mut events = Watcher::new(client, config).initial(false).stream();
/// while let Some(signal) = events.next().await {
///     match signal? {
///         Signal::Event(event) => {
///             let event = event.as_event();
///             println!("{} {}", event.event_type(), event.name());
///         }
///         Signal::Ready { streams } => eprintln!("watching {streams} streams"),
///     }
/// }
/// # Ok(()) }
/// ```
#[must_use = "a Watcher does nothing until stream() or run() is called"]
pub struct Watcher {
    client: Client,
    source: Source,
    include_object: bool,
    initial: bool,
    page_size: u32,
    streaming_lists: bool,
    list_compression: bool,
    watch_timeout: Duration,
    startup_timeout: Duration,
    discovery: Option<Discovery>,
    diff_all: bool,
    diff_options: DiffOptions,
    workers: usize,
    retry: RetryPolicy,
    ready_tx: watch::Sender<bool>,
    counters: Arc<Counters>,
    metrics: Metrics,
    stall_timeout: Option<Duration>,
    checkpoint: Option<Checkpoint>,
    shard: Option<Shard>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("source", &self.source)
            .field("include_object", &self.include_object)
            .field("initial", &self.initial)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// A watcher of what `config` names. No request is made until [`Watcher::stream`] or
    /// [`Watcher::run`].
    pub fn new(client: Client, config: WatchConfig) -> Watcher {
        Watcher::with_source(client, Source::Config(config))
    }

    /// A watcher of workloads: namespaces that `detector` assigns to a workload get the
    /// workload tier's watches, from the moment they join until they leave; `tiers` decides
    /// what is watched where. `v1/namespaces` is always watched, for detection.
    pub fn workload(client: Client, detector: Detector, tiers: Tiers) -> Watcher {
        Watcher::with_source(client, Source::Workload { detector, tiers })
    }

    fn with_source(client: Client, source: Source) -> Watcher {
        let counters = Arc::<Counters>::default();
        Watcher {
            client,
            source,
            include_object: false,
            initial: true,
            page_size: 500,
            streaming_lists: true,
            list_compression: true,
            // Below kube-apiserver's --min-request-timeout (1800 s) randomisation floor, as
            // client-go's reflector asks (timeoutSeconds = 5 to 10 min).
            watch_timeout: Duration::from_secs(290),
            startup_timeout: Duration::from_secs(15),
            discovery: None,
            diff_all: false,
            diff_options: DiffOptions::default(),
            workers: 1,
            retry: RetryPolicy::default(),
            ready_tx: watch::channel(false).0,
            metrics: Metrics::new(counters.clone()),
            counters,
            stall_timeout: Some(DEFAULT_STALL_TIMEOUT),
            checkpoint: None,
            shard: None,
        }
    }

    /// Adds the whole object to each event ([`Event::raw_object`](crate::Event::raw_object),
    /// [`Event::object`](crate::Event::object)); Secret values are redacted. Default off: the
    /// events then carry only metadata, which is much cheaper.
    pub fn include_object(mut self, include: bool) -> Watcher {
        self.include_object = include;
        self
    }

    /// Delivers the ADDED events of the objects that exist at start-up (default on).
    pub fn initial(mut self, initial: bool) -> Watcher {
        self.initial = initial;
        self
    }

    /// Objects per list page (`limit`; default 500, as kubectl).
    pub fn page_size(mut self, objects: u32) -> Watcher {
        self.page_size = objects.max(1);
        self
    }

    /// How long the server keeps one watch request open before faro re-opens it
    /// (`timeoutSeconds`; default 290 s). A watch silent for this long plus 30 s is re-opened.
    pub fn watch_timeout(mut self, timeout: Duration) -> Watcher {
        self.watch_timeout = timeout.max(Duration::from_secs(1));
        self
    }

    /// How long start-up retries discovery of an unreachable or failing server (default 15 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Watcher {
        self.startup_timeout = timeout;
        self
    }

    /// Starts from this discovery result instead of discovering the API again, e.g. after
    /// resolving resource names with [`Discovery::resolve`]. Later re-discoveries (CRDs created
    /// or deleted) still query the server.
    pub fn discovery(mut self, found: Discovery) -> Watcher {
        self.discovery = Some(found);
        self
    }

    /// Adds `diff` to the UPDATED events of every resource ([`Event::diff`](crate::Event::diff),
    /// see [`crate::diff`]), leaving out what `options` ignore. Without it, only the resources
    /// of config entries with [`Entry::diff`](crate::config::Entry::diff) are diffed, with
    /// [`Watcher::diff_options`]. faro then keeps the last version of each diffed object (as
    /// compact JSON, about its size); other resources cost nothing more.
    pub fn diff(mut self, options: DiffOptions) -> Watcher {
        self.diff_all = true;
        self.diff_options = options;
        self
    }

    /// What the diffs of entries with [`Entry::diff`](crate::config::Entry::diff) leave out
    /// (when not every resource is diffed with [`Watcher::diff`]).
    pub fn diff_options(mut self, options: DiffOptions) -> Watcher {
        self.diff_options = options;
        self
    }

    /// Handler calls that may run at once in [`Watcher::run`], each for other objects
    /// (default 1: one event at a time, in arrival order).
    pub fn workers(mut self, workers: usize) -> Watcher {
        self.workers = workers.max(1);
        self
    }

    /// How failed handler calls are retried (see [`RetryPolicy`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Watcher {
        self.retry = policy;
        self
    }

    /// Resumes from a saved state and saves it as it goes (see [`crate::checkpoint`]): a
    /// restart then continues where the last run stopped, instead of listing everything as
    /// `initial`. Checkpoints are written by [`Watcher::run`], once the handler has flushed the
    /// events they cover; an [`EventStream`] resumes from the state but does not save it (the
    /// stream cannot tell when its events are durable).
    pub fn checkpoint(mut self, checkpoint: Checkpoint) -> Watcher {
        self.checkpoint = Some(checkpoint);
        self
    }

    /// Watches only `shard`'s part of what is asked for (`--shard i/N`), so that N watchers,
    /// one per shard, together deliver each event exactly once (see [`crate::shard`]):
    /// namespace-scoped watches only in the namespaces the shard owns; cluster-wide watches of
    /// namespaced resources with the KEP-5866 `shardSelector` when the API server echoes it,
    /// else filtered by faro; cluster-scoped resources on shard 0 only. Without it (or with a
    /// shard of 1) everything is watched.
    pub fn shard(mut self, shard: Shard) -> Watcher {
        self.shard = Some(shard);
        self
    }

    /// A handle that tells when every initial listing has been delivered.
    pub fn ready(&self) -> Readiness {
        Readiness(self.ready_tx.subscribe())
    }

    /// Whether resources are listed by streaming lists (a watch with `sendInitialEvents=true`,
    /// whose initial ADDED events end with a bookmark annotated `k8s.io/initial-events-end`)
    /// where the server serves them; on by default. A server that answers the request with a
    /// 422 (its WatchList gate off), or streams without ever sending the end bookmark
    /// (a bookmark without the annotation, an event other than ADDED, or 10 s of silence
    /// before it), has that GVR listed page by page from then on, and its events are the
    /// same either way. The namespace stream of workload watching is always listed page by
    /// page: the registry reads all of it before attributing any namespace.
    pub fn streaming_lists(mut self, on: bool) -> Watcher {
        self.streaming_lists = on;
        self
    }

    /// Whether list pages are asked for with `Accept-Encoding: gzip`; on by default, as
    /// client-go does. kube-apiserver encodes a response over 128 KiB when asked (a page of
    /// 500 ordinary objects is), which saves most of the bytes on a real network and costs
    /// CPU to decode (about as much as faro's own work per object on loopback, where it only
    /// costs). Watches, and so streaming lists, are never encoded by the server. The faro
    /// binary turns it off when the kubeconfig's cluster says `disable-compression: true`,
    /// as kubectl does.
    pub fn list_compression(mut self, on: bool) -> Watcher {
        self.list_compression = on;
        self
    }

    /// A watch that delivers neither an event nor a bookmark for `timeout` is re-established
    /// from its last resourceVersion (nothing is lost: the server replays what the silent
    /// connection did not deliver), logged once per stream and counted in
    /// `faro_watch_stalls_total`. The default, 2 minutes, is twice the interval at which
    /// kube-apiserver sends progress bookmarks to watches that ask for them (about once a
    /// minute, k8s-protocol.md §3.3); `None` waits for the server's `timeoutSeconds` only.
    /// At least 1 s.
    pub fn stall_timeout(mut self, timeout: Option<Duration>) -> Watcher {
        self.stall_timeout = timeout.map(|t| t.max(Duration::from_secs(1)));
        self
    }

    /// The watcher's [`Metrics`]: a handle, valid before and after the watcher runs.
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// A handle to the counts of the watcher once it runs.
    pub fn progress(&self) -> Progress {
        Progress(self.counters.clone())
    }

    /// Starts watching and yields the events as they come. Dropping the stream stops the
    /// watches; [`EventStream::stopper`] stops them gracefully (queued events are still
    /// yielded).
    pub fn stream(self) -> EventStream {
        let ready_tx = self.ready_tx.clone();
        let counters = self.counters.clone();
        let core = self.start(false);
        EventStream {
            rx: core.rx,
            stop: core.stop,
            task: Some(core.task),
            current: None,
            ready: ready_tx,
            counters,
            finished: false,
        }
    }

    /// Starts watching and calls `handler` for each event until `shutdown` resolves; then stops
    /// the watches, delivers what was already received and returns once every task it started
    /// has ended. Fails only at start-up (see the [module documentation](self)).
    pub async fn run<H: Handler>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        let workers = self.workers;
        let retry = self.retry.clone();
        let ready = self.ready_tx.clone();
        let counters = self.counters.clone();
        let metrics = self.metrics.clone();
        let mut committer = self
            .checkpoint
            .clone()
            .map(|c| Committer::new(c, metrics.clone()));
        let mut core = self.start(true);
        let handler = Arc::new(handler);
        let mut shutdown = std::pin::pin!(shutdown);
        let mut stop = Stop {
            signal: core.stop.clone(),
            done: false,
        };
        let mut consumer = if workers == 1 {
            Consumer::Inline(Worker::new(handler.clone(), retry))
        } else {
            Consumer::Pool(Pool::start(workers, handler.clone(), &retry))
        };
        loop {
            let (room, due) = match &consumer {
                Consumer::Inline(worker) => (worker.has_room(), worker.next_due()),
                Consumer::Pool(_) => (true, None),
            };
            let message = tokio::select! {
                biased;
                _ = &mut shutdown, if !stop.done => {
                    stop.now();
                    continue;
                }
                _ = dispatch::sleep_until(due), if due.is_some() => {
                    if let Consumer::Inline(worker) = &mut consumer {
                        stop.or_shutdown(&mut shutdown, worker.retry_due()).await;
                    }
                    if let Some(c) = &mut committer {
                        stop.or_shutdown(&mut shutdown, c.commit_if_due(&mut consumer, &handler)).await;
                    }
                    continue;
                }
                message = core.rx.recv(), if room => message,
            };
            match message {
                Some(Message::Batch(batch)) => {
                    let events = batch.len() as u64;
                    let stream = batch.stream.id;
                    let deliver = async {
                        match &mut consumer {
                            Consumer::Inline(worker) => worker.deliver_batch(&batch, None).await,
                            Consumer::Pool(pool) => pool.dispatch(batch).await,
                        }
                        counters.delivered.fetch_add(events, Ordering::Relaxed);
                    };
                    stop.or_shutdown(&mut shutdown, deliver).await;
                    if core.rx.is_empty()
                        && let Consumer::Inline(_) = &consumer
                    {
                        handler.on_idle().await;
                    }
                    if let Some(c) = &mut committer {
                        c.delivered(stream);
                        stop.or_shutdown(&mut shutdown, c.commit_if_due(&mut consumer, &handler))
                            .await;
                    }
                }
                Some(Message::Snapshot(snapshot)) => {
                    if let Some(c) = &mut committer {
                        c.pending = Some(snapshot);
                        stop.or_shutdown(&mut shutdown, c.commit_if_due(&mut consumer, &handler))
                            .await;
                    }
                }
                Some(Message::Ready { streams }) => {
                    let settle = async {
                        match &mut consumer {
                            // Failed initial events count: ready means handled or dropped.
                            Consumer::Inline(worker) => worker.drain().await,
                            Consumer::Pool(pool) => pool.barrier().await,
                        }
                        handler.on_ready(streams).await;
                    };
                    stop.or_shutdown(&mut shutdown, settle).await;
                    announce_ready(&ready, streams);
                }
                None => break,
            }
        }
        if let Consumer::Inline(worker) = &mut consumer {
            worker.drain().await;
        }
        // The last snapshot came after every batch: written once they all are.
        if let Some(c) = &mut committer {
            c.commit_if_due(&mut consumer, &handler).await;
        }
        match consumer {
            Consumer::Inline(_) => handler.on_idle().await,
            Consumer::Pool(pool) => pool.finish().await,
        }
        join(core.task).await
    }

    /// Starts the main task; with `save`, checkpoints are taken (`run` writes them).
    fn start(self, save: bool) -> Core {
        let (events, rx) = mpsc::channel(QUEUE_BATCHES);
        let (stop_tx, stop_rx) = watch::channel(false);
        let diffed: HashSet<Gvr> = match &self.source {
            Source::Config(config) => config
                .entries
                .iter()
                .filter(|e| e.diff)
                .map(|e| e.gvr.clone())
                .collect(),
            Source::Workload { .. } => HashSet::new(),
        };
        let diff = (self.diff_all || !diffed.is_empty()).then(|| {
            Arc::new(DiffSettings {
                all: self.diff_all,
                gvrs: diffed,
                options: self.diff_options,
            })
        });
        let options = StreamOptions {
            include_object: self.include_object,
            initial: self.initial,
            watch_timeout: self.watch_timeout,
            stall_timeout: self.stall_timeout,
            page_size: self.page_size,
            streaming_lists: self.streaming_lists,
            list_compression: self.list_compression,
            diff,
        };
        let task = tokio::spawn(drive(
            self.client,
            self.source,
            options,
            Startup {
                timeout: self.startup_timeout,
                known: self.discovery,
                shard: self.shard,
            },
            Channels {
                events,
                counters: self.counters,
                metrics: self.metrics,
            },
            self.checkpoint.map(|c| (c, save)),
            stop_rx,
        ));
        Core {
            rx,
            stop: Arc::new(stop_tx),
            task,
        }
    }
}

fn announce_ready(ready: &watch::Sender<bool>, streams: usize) {
    tracing::info!("ready: watching {streams} resource streams");
    ready.send_replace(true);
}

/// Writes checkpoints once the batches they cover have been delivered and flushed.
struct Committer {
    options: Checkpoint,
    /// The newest snapshot not written yet.
    pending: Option<Snapshot>,
    /// Batches delivered per stream.
    delivered: std::collections::HashMap<u32, u64>,
    metrics: Metrics,
}

impl Committer {
    fn new(options: Checkpoint, metrics: Metrics) -> Committer {
        metrics.checkpointing();
        Committer {
            metrics,
            options,
            pending: None,
            delivered: std::collections::HashMap::new(),
        }
    }

    fn delivered(&mut self, stream: u32) {
        *self.delivered.entry(stream).or_default() += 1;
    }

    /// Writes the pending snapshot if every batch it covers has been delivered: handled (not
    /// waiting for a retry) and flushed by the handler.
    async fn commit_if_due<H: Handler>(&mut self, consumer: &mut Consumer<H>, handler: &Arc<H>) {
        let Some(snapshot) = &self.pending else {
            return;
        };
        let covered = snapshot
            .built
            .iter()
            .all(|(id, built)| self.delivered.get(id).copied().unwrap_or(0) >= *built);
        if !covered {
            return;
        }
        match consumer {
            // A failed event waiting for its retry is not written yet.
            Consumer::Inline(worker) if !worker.is_idle() => return,
            Consumer::Inline(_) => {}
            Consumer::Pool(pool) => pool.barrier().await,
        }
        handler.flush().await;
        let Some(snapshot) = self.pending.take() else {
            return;
        };
        let last = snapshot.last;
        match self.options.write_async(snapshot.body).await {
            Ok(()) => {
                self.metrics.checkpoint_written();
                tracing::debug!(last, "checkpoint written");
            }
            Err(e) => tracing::warn!("{e}; the next checkpoint will try again"),
        }
    }
}

/// The running watcher, seen from the consumer.
struct Core {
    rx: mpsc::Receiver<Message>,
    stop: Arc<watch::Sender<bool>>,
    task: JoinHandle<Result<()>>,
}

enum Consumer<H> {
    Inline(Worker<H>),
    Pool(Pool),
}

/// The stop signal of `run`, sent once.
struct Stop {
    signal: Arc<watch::Sender<bool>>,
    done: bool,
}

impl Stop {
    fn now(&mut self) {
        self.done = true;
        let _ = self.signal.send(true);
    }

    /// Runs `work` to completion, stopping the watches meanwhile if `shutdown` resolves: a
    /// handler that takes long must not delay the stop.
    async fn or_shutdown<T>(
        &mut self,
        shutdown: &mut Pin<&mut (impl Future<Output = ()> + Send)>,
        work: impl Future<Output = T>,
    ) -> T {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                biased;
                out = &mut work => return out,
                _ = shutdown.as_mut(), if !self.done => self.now(),
            }
        }
    }
}

async fn join(task: JoinHandle<Result<()>>) -> Result<()> {
    match task.await {
        Ok(result) => result,
        Err(e) => Err(Error::Task(e.to_string())),
    }
}

/// Where the streams deliver, and what they count.
struct Channels {
    events: mpsc::Sender<Message>,
    counters: Arc<Counters>,
    metrics: Metrics,
}

/// How the main task starts: its first discovery, and the part of the plan it runs.
struct Startup {
    /// How long discovery is retried.
    timeout: Duration,
    /// A discovery result to start from instead ([`Watcher::discovery`]).
    known: Option<Discovery>,
    /// The shard ([`Watcher::shard`]).
    shard: Option<Shard>,
}

/// The watcher's main task: start-up discovery, then the registry until stopped.
async fn drive(
    client: Client,
    source: Source,
    options: StreamOptions,
    Startup {
        timeout: startup_timeout,
        known,
        shard,
    }: Startup,
    Channels {
        events,
        counters,
        metrics,
    }: Channels,
    checkpoint: Option<(Checkpoint, bool)>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    // The state is read (a few MiB of JSON) while discovery waits for the server. A state that
    // cannot be resumed from fails the start, before anything is watched.
    let load = checkpoint.map(|(options, save)| {
        tokio::spawn(async move {
            let saved = options.load_async().await;
            (options, save, saved)
        })
    });
    let discovery = tokio::select! {
        biased;
        _ = stop.wait_for(|stop| *stop) => return Ok(()),
        _ = events.closed() => return Ok(()),
        found = async {
            match known {
                Some(found) => Ok(found),
                None => discovery::discover_patiently(&client, startup_timeout)
                    .await
                    .map_err(Error::Discovery),
            }
        } => found,
    };
    let checkpoints = match load {
        Some(load) => {
            let (options, save, saved) = load.await.map_err(|e| Error::Task(e.to_string()))?;
            let saved = saved?;
            if let Some(saved) = &saved {
                tracing::info!(
                    "resuming from the {} ({} watches)",
                    options.location(),
                    saved.streams.len()
                );
            }
            Some(Checkpoints::new(options, saved.unwrap_or_default(), save))
        }
        None => None,
    };
    let discovery = discovery?;
    let (mode, workloads) = match source {
        Source::Config(config) => (Mode::Watch(config), None),
        Source::Workload { detector, tiers } => {
            let current = Arc::new(std::sync::RwLock::new(Membership::new(detector)));
            (
                Mode::Workload(tiers),
                Some((
                    Workloads {
                        current: current.clone(),
                    },
                    current,
                )),
            )
        }
    };
    let (workloads, membership) = match workloads {
        Some((w, rx)) => (Some(w), Some(rx)),
        None => (None, None),
    };
    let (status, status_rx) = mpsc::unbounded_channel();
    let (control, control_rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(Context {
        client,
        events,
        status,
        control,
        options,
        list_slots: tokio::sync::Semaphore::new(LIST_CONCURRENCY),
        listing_slots: Arc::new(tokio::sync::Semaphore::new(STREAMING_LIST_CONCURRENCY)),
        membership,
        pool: Arc::new(BatchPool::default()),
        counters,
        metrics,
        checkpointing: checkpoints.as_ref().is_some_and(|c| c.saves()),
        paged_only: std::sync::Mutex::default(),
    });
    if let Some(shard) = shard.filter(|s| s.count() > 1) {
        tracing::info!(
            "shard {shard}: watching the namespaces whose FNV-1a hash is in {}{}",
            shard.selector(),
            if shard.index() == 0 {
                ", and the cluster-scoped resources"
            } else {
                ""
            }
        );
    }
    let planner = Planner::new(mode).shard(shard);
    Registry::new(ctx, planner, discovery, workloads, checkpoints)
        .run(
            Inbox {
                status: status_rx,
                control: control_rx,
            },
            stop,
        )
        .await?;
    Ok(())
}

/// The events of a [`Watcher`], as an async [`Stream`] of [`Signal`]s.
///
/// An `Err` comes only at start-up, and ends the stream. Events of one network frame share its
/// buffer until the last of them is dropped.
pub struct EventStream {
    rx: mpsc::Receiver<Message>,
    stop: Arc<watch::Sender<bool>>,
    task: Option<JoinHandle<Result<()>>>,
    current: Option<(Arc<EventBatch>, usize)>,
    ready: watch::Sender<bool>,
    counters: Arc<Counters>,
    finished: bool,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl EventStream {
    /// A handle that stops the watches gracefully: events already received are still yielded,
    /// then the stream ends.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        // The tasks see the stop (or the closed channel) and end on their own.
        let _ = self.stop.send(true);
    }
}

impl Stream for EventStream {
    type Item = Result<Signal>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some((batch, next)) = &mut this.current {
                if *next < batch.len() {
                    let event = OwnedEvent::shared(batch.clone(), *next);
                    *next += 1;
                    this.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    return Poll::Ready(Some(Ok(Signal::Event(event))));
                }
                this.current = None;
            }
            if this.finished {
                return Poll::Ready(None);
            }
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(Message::Batch(batch))) => {
                    this.current = Some((Arc::new(batch), 0));
                }
                Poll::Ready(Some(Message::Ready { streams })) => {
                    announce_ready(&this.ready, streams);
                    return Poll::Ready(Some(Ok(Signal::Ready { streams })));
                }
                // A stream does not save checkpoints (see `Watcher::checkpoint`).
                Poll::Ready(Some(Message::Snapshot(_))) => {}
                Poll::Ready(None) => {
                    // Every sender is gone: the stream ends once the main task has, with its
                    // start-up error if it had one.
                    let Some(task) = this.task.as_mut() else {
                        this.finished = true;
                        continue;
                    };
                    let joined = std::task::ready!(Pin::new(task).poll(cx));
                    this.task = None;
                    this.finished = true;
                    match joined {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Poll::Ready(Some(Err(e))),
                        Err(e) => return Poll::Ready(Some(Err(Error::Task(e.to_string())))),
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
