//! What a running [`Watcher`](crate::Watcher) is doing, for Prometheus: counters and gauges in
//! the OpenMetrics text format (with the `prometheus-client` crate, the Prometheus project's own
//! Rust client), and the reasons why the watched set is incomplete, for a readiness probe.
//!
//! Every watcher keeps its metrics (a few atomic additions per network frame, nothing per
//! event); [`Watcher::metrics`](crate::Watcher::metrics) hands out the handle. The event counter
//! is counted by the consumer, because only it knows when an event is written:
//! [`Metrics::event_counter`].
//!
//! # Metrics
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `faro_events_total` | counter | `gvr`, `type` | events written (the binary: lines written) |
//! | `faro_watches` | gauge | `state` | server-side watches by state: `listing`, `watching`, `retrying`, `forbidden`, `rejected` |
//! | `faro_watch_reconnects_total` | counter | `gvr` | watches re-established from their resourceVersion (stream end, failure, stall) |
//! | `faro_relists_total` | counter | `gvr` | lists after the first one of a stream (after `410 Gone`) |
//! | `faro_api_errors_total` | counter | `gvr`, `code` | failed requests by HTTP status (`403`, `410`, `429`, …; `410` also counts `ERROR` events on a watch), or `network` |
//! | `faro_watch_stalls_total` | counter | `gvr` | watches that delivered neither an event nor a bookmark for the stall timeout, and were re-established |
//! | `faro_last_event_age_seconds` | gauge | `gvr` | for the stream of that GVR that heard from the server longest ago: seconds since its last event, bookmark or list page |
//! | `faro_queue_events` | gauge | | events read from the server and not yet taken by the consumer |
//! | `faro_api_read_bytes_total` | counter | `gvr` | bytes of list and watch bodies read from the API server |
//! | `faro_objects_tracked` | gauge | `gvr` | objects faro remembers (uid, resourceVersion, name) |
//! | `faro_checkpoint_age_seconds` | gauge | | seconds since the last checkpoint was written (only with checkpoints) |
//! | `faro_workloads` | gauge | | workloads detected (workload watching only) |
//! | `faro_sharded_watches_total` | counter | `gvr`, `mode` | cluster-wide watches under `--shard` by who keeps them to the shard: `server` (the API server echoed the `shardSelector`) or `client` (faro alone); counted when decided |
//! | `faro_nats_reconnects_total` | counter | | connections to NATS re-established after a loss (only with the NATS sink) |
//! | `faro_nats_publish_retries_total` | counter | | JetStream publishes sent again after a failure or a missing ack (only with the NATS sink) |
//! | `faro_nats_pending_events` | gauge | | events handed to the NATS sink and not yet acknowledged by JetStream (only with the NATS sink) |
//! | `faro_build_info` | info | `version` | always 1 |
//!
//! Labels are bounded by the GVRs the cluster serves, never by namespace or object name: a
//! namespace label would make one series per namespace and GVR, tens of thousands in a large
//! cluster, which costs Prometheus memory for every scrape kept and makes the metrics endpoint
//! itself heavy. Which namespace stalled is in the log (one line per stall, with the watch).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::event::EventType;
use crate::gvr::Gvr;

/// What reports a count at scrape time (the streams implement it; this module imports none of
/// theirs).
pub(crate) trait Gauged: Send + Sync {
    /// The current value.
    fn value(&self) -> u64;
}

/// The state of one server-side watch, as `faro_watches{state}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum WatchState {
    /// Listing (first list or relist).
    Listing = 0,
    /// Watching (or about to re-establish a watch that ended normally).
    Watching,
    /// Waiting to retry after a failure.
    Retrying,
    /// The server refused (403); retried slowly.
    Forbidden,
    /// The server rejected a request faro built (400); not retried.
    Rejected,
}

const STATES: [(WatchState, &str); 5] = [
    (WatchState::Listing, "listing"),
    (WatchState::Watching, "watching"),
    (WatchState::Retrying, "retrying"),
    (WatchState::Forbidden, "forbidden"),
    (WatchState::Rejected, "rejected"),
];

impl WatchState {
    fn from_u8(v: u8) -> WatchState {
        STATES
            .get(usize::from(v))
            .map_or(WatchState::Watching, |(s, _)| *s)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GvrLabels {
    gvr: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    gvr: String,
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabels {
    gvr: String,
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    gvr: String,
    code: String,
}

/// The metrics of a watcher: cheap to clone (a handle).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

struct Inner {
    registry: Registry,
    events: Family<EventLabels, Counter>,
    reconnects: Family<GvrLabels, Counter>,
    relists: Family<GvrLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    stalls: Family<GvrLabels, Counter>,
    bytes: Family<GvrLabels, Counter>,
    sharded: Family<ShardLabels, Counter>,
    leader: Gauge,
    live: Arc<Live>,
}

/// What is read at scrape time.
#[derive(Debug)]
struct Live {
    start: Instant,
    /// Events queued toward the consumer.
    queue: Arc<dyn Gauged>,
    streams: Mutex<HashMap<u32, Arc<Probe>>>,
    /// The object sets, by GVR: objects tracked.
    sets: Mutex<Vec<(String, Weak<dyn Gauged>)>>,
    /// Checkpoints are taken.
    checkpointing: AtomicBool,
    /// When the last checkpoint was written (ms since `start`, plus one; 0: none yet).
    checkpoint_ms: AtomicU64,
    /// Workload watching: workloads detected, plus one (0: not workload watching).
    workloads: AtomicU64,
    /// The NATS sink's counts, once it runs.
    nats: std::sync::OnceLock<Arc<NatsCounts>>,
}

/// What the NATS sink reports (see [`crate::nats`]).
#[derive(Debug, Default)]
pub(crate) struct NatsCounts {
    /// Connections re-established.
    pub reconnects: AtomicU64,
    /// Publishes sent again.
    pub retries: AtomicU64,
    /// Events taken and not yet acknowledged.
    pub pending: AtomicU64,
}

impl std::fmt::Debug for dyn Gauged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.value())
    }
}

impl Live {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// One stream as the scrape sees it.
#[derive(Debug)]
struct Probe {
    gvr: Arc<str>,
    state: AtomicU8,
    /// Last event, bookmark or list page (ms since `Live::start`).
    last: AtomicU64,
    /// Why the stream is retrying, forbidden or rejected.
    problem: Mutex<Option<String>>,
}

impl Metrics {
    /// Metrics that read the queue depth from `counters`.
    pub(crate) fn new(queue: Arc<dyn Gauged>) -> Metrics {
        let mut registry = Registry::with_prefix("faro");
        let events = Family::<EventLabels, Counter>::default();
        registry.register("events", "Events written, by GVR and type", events.clone());
        let reconnects = Family::<GvrLabels, Counter>::default();
        registry.register(
            "watch_reconnects",
            "Watches re-established from their resourceVersion",
            reconnects.clone(),
        );
        let relists = Family::<GvrLabels, Counter>::default();
        registry.register(
            "relists",
            "Lists after a stream's first one (after 410 Gone)",
            relists.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "api_errors",
            "Failed API requests by HTTP status code (or network)",
            errors.clone(),
        );
        let stalls = Family::<GvrLabels, Counter>::default();
        registry.register(
            "watch_stalls",
            "Watches silent (no event, no bookmark) for the stall timeout, re-established",
            stalls.clone(),
        );
        let bytes = Family::<GvrLabels, Counter>::default();
        registry.register(
            "api_read_bytes",
            "Bytes of list and watch bodies read from the API server",
            bytes.clone(),
        );
        let sharded = Family::<ShardLabels, Counter>::default();
        registry.register(
            "sharded_watches",
            "Cluster-wide watches under --shard by who keeps them to the shard: server (shardSelector echoed) or client",
            sharded.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this faro runs its watches: always without --leader-elect, while it holds the Lease with it; 0 on a standby",
            leader.clone(),
        );
        registry.register(
            "build",
            "faro's version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        let live = Arc::new(Live {
            start: Instant::now(),
            queue,
            streams: Mutex::new(HashMap::new()),
            sets: Mutex::new(Vec::new()),
            checkpointing: AtomicBool::new(false),
            checkpoint_ms: AtomicU64::new(0),
            workloads: AtomicU64::new(0),
            nats: std::sync::OnceLock::new(),
        });
        registry.register_collector(Box::new(LiveCollector(live.clone())));
        Metrics {
            inner: Arc::new(Inner {
                registry,
                events,
                reconnects,
                relists,
                errors,
                stalls,
                bytes,
                sharded,
                leader,
                live,
            }),
        }
    }

    /// Counts a sharded watch whose shard filtering was decided: `mode` is `server` or `client`.
    pub(crate) fn sharded_watch(&self, gvr: &str, mode: &'static str) {
        self.inner
            .sharded
            .get_or_create(&ShardLabels {
                gvr: gvr.to_owned(),
                mode,
            })
            .inc();
    }

    /// Sets `faro_leader`: whether this faro runs its watches (holds the Lease).
    pub fn set_leader(&self, leader: bool) {
        self.inner.leader.set(i64::from(leader));
    }

    /// Appends the OpenMetrics text exposition (ending in `# EOF`) to `out`.
    pub fn encode(&self, out: &mut String) -> std::fmt::Result {
        prometheus_client::encoding::text::encode(out, &self.inner.registry)
    }

    /// The counter of `faro_events_total{gvr, type}`, for a consumer to count what it wrote.
    /// Look it up once per GVR and type, not per event: the lookup takes a lock and formats.
    pub fn event_counter(&self, gvr: &Gvr, event_type: EventType) -> EventCounter {
        EventCounter(
            self.inner
                .events
                .get_or_create(&EventLabels {
                    gvr: gvr.to_string(),
                    r#type: event_type.as_str(),
                })
                .clone(),
        )
    }

    /// Why the watched set is incomplete now: one line per GVR with a stream that is forbidden,
    /// rejected or retrying after a failure, sorted. Empty when every stream is listing or
    /// watching.
    pub fn problems(&self) -> Vec<String> {
        let streams = lock(&self.inner.live.streams);
        let mut out: Vec<String> = streams
            .values()
            .filter_map(|p| {
                let state = WatchState::from_u8(p.state.load(Ordering::Relaxed));
                let what = match state {
                    WatchState::Listing | WatchState::Watching => return None,
                    WatchState::Retrying => "retrying",
                    WatchState::Forbidden => "forbidden",
                    WatchState::Rejected => "rejected",
                };
                let why = lock(&p.problem).clone().unwrap_or_default();
                Some(if why.is_empty() {
                    format!("{}: {what}", p.gvr)
                } else {
                    format!("{}: {what}: {why}", p.gvr)
                })
            })
            .collect();
        out.sort();
        out.dedup_by(|a, b| {
            // One line per GVR and state: the first reason stands for the others.
            let key = |s: &str| s.splitn(3, ": ").take(2).collect::<Vec<_>>().join(": ");
            key(a) == key(b)
        });
        out
    }

    /// Server-side watches in each state, as `(state, count)`.
    pub fn watches(&self) -> Vec<(&'static str, usize)> {
        let mut counts = [0usize; STATES.len()];
        for p in lock(&self.inner.live.streams).values() {
            counts[usize::from(p.state.load(Ordering::Relaxed)).min(STATES.len() - 1)] += 1;
        }
        STATES
            .iter()
            .zip(counts)
            .map(|((_, name), n)| (*name, n))
            .collect()
    }

    /// Registers a stream; it leaves the metrics when the probe is dropped.
    pub(crate) fn stream(&self, id: u32, gvr: &Gvr, gvr_text: Arc<str>) -> StreamProbe {
        let live = &self.inner.live;
        let probe = Arc::new(Probe {
            gvr: gvr_text,
            state: AtomicU8::new(WatchState::Listing as u8),
            last: AtomicU64::new(live.now_ms()),
            problem: Mutex::new(None),
        });
        lock(&live.streams).insert(id, probe.clone());
        let labels = GvrLabels {
            gvr: gvr.to_string(),
        };
        StreamProbe {
            id,
            probe,
            bytes: self.inner.bytes.get_or_create(&labels).clone(),
            metrics: self.clone(),
            labels,
        }
    }

    /// Registers a GVR's object set for `faro_objects_tracked`.
    pub(crate) fn objects(&self, gvr: &Gvr, set: Weak<dyn Gauged>) {
        let mut sets = lock(&self.inner.live.sets);
        sets.retain(|(_, s)| s.strong_count() > 0);
        sets.push((gvr.to_string(), set));
    }

    /// Checkpoints are taken: `faro_checkpoint_age_seconds` is reported.
    pub(crate) fn checkpointing(&self) {
        self.inner.live.checkpointing.store(true, Ordering::Relaxed);
    }

    /// A checkpoint was written now.
    pub(crate) fn checkpoint_written(&self) {
        let live = &self.inner.live;
        live.checkpoint_ms
            .store(live.now_ms().saturating_add(1), Ordering::Relaxed);
    }

    /// The NATS sink runs: its counts (the same ones however often it is asked).
    pub(crate) fn nats(&self) -> Arc<NatsCounts> {
        self.inner.live.nats.get_or_init(Arc::default).clone()
    }

    /// Workload watching found `n` workloads.
    pub(crate) fn workloads(&self, n: usize) {
        self.inner.live.workloads.store(
            u64::try_from(n).unwrap_or(u64::MAX - 1) + 1,
            Ordering::Relaxed,
        );
    }
}

/// A consumer's handle on one series of `faro_events_total`.
#[derive(Debug, Clone)]
pub struct EventCounter(Counter);

impl EventCounter {
    /// Counts `n` events written.
    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A stream's handle on its metrics.
pub(crate) struct StreamProbe {
    id: u32,
    probe: Arc<Probe>,
    bytes: Counter,
    labels: GvrLabels,
    metrics: Metrics,
}

impl StreamProbe {
    /// The stream is now in `state`; `problem` says why when it is not listing or watching.
    pub fn state(&self, state: WatchState, problem: Option<String>) {
        self.probe.state.store(state as u8, Ordering::Relaxed);
        let mut slot = lock(&self.probe.problem);
        if slot.is_some() || problem.is_some() {
            *slot = problem;
        }
    }

    /// Heard from the server now (an event, a bookmark, a list page): `bytes` read.
    pub fn heard(&self, bytes: usize) {
        self.bytes.inc_by(bytes as u64);
        let live = &self.metrics.inner.live;
        self.probe.last.store(live.now_ms(), Ordering::Relaxed);
    }

    /// Bytes read without a complete line (part of a frame).
    pub fn read(&self, bytes: usize) {
        self.bytes.inc_by(bytes as u64);
    }

    /// A watch re-established from its resourceVersion.
    pub fn reconnect(&self) {
        self.metrics
            .inner
            .reconnects
            .get_or_create(&self.labels)
            .inc();
    }

    /// A relist.
    pub fn relist(&self) {
        self.metrics.inner.relists.get_or_create(&self.labels).inc();
    }

    /// A stall.
    pub fn stall(&self) {
        self.metrics.inner.stalls.get_or_create(&self.labels).inc();
    }

    /// A failed request: `code` is the HTTP status, None a network failure.
    pub fn error(&self, code: Option<u16>) {
        let code = code.map_or_else(|| "network".to_owned(), |c| c.to_string());
        self.metrics
            .inner
            .errors
            .get_or_create(&ErrorLabels {
                gvr: self.labels.gvr.clone(),
                code,
            })
            .inc();
    }
}

impl Drop for StreamProbe {
    fn drop(&mut self) {
        let mut streams = lock(&self.metrics.inner.live.streams);
        if streams
            .get(&self.id)
            .is_some_and(|p| Arc::ptr_eq(p, &self.probe))
        {
            streams.remove(&self.id);
        }
    }
}

/// The gauges computed at scrape time.
#[derive(Debug)]
struct LiveCollector(Arc<Live>);

impl Collector for LiveCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let live = &self.0;
        let now = live.now_ms();
        let mut states = [0i64; STATES.len()];
        let mut oldest: HashMap<Arc<str>, u64> = HashMap::new();
        for p in lock(&live.streams).values() {
            let state = usize::from(p.state.load(Ordering::Relaxed)).min(STATES.len() - 1);
            states[state] += 1;
            let age = now.saturating_sub(p.last.load(Ordering::Relaxed));
            let slot = oldest.entry(p.gvr.clone()).or_default();
            *slot = (*slot).max(age);
        }
        {
            let gauge = ConstGauge::new(0i64);
            let mut family = encoder.encode_descriptor(
                "watches",
                "Server-side watches by state",
                None,
                gauge.metric_type(),
            )?;
            for ((_, name), n) in STATES.iter().zip(states) {
                ConstGauge::new(n).encode(family.encode_family(&[("state", *name)])?)?;
            }
        }
        {
            let mut ages: Vec<(Arc<str>, u64)> = oldest.into_iter().collect();
            ages.sort();
            let gauge = ConstGauge::new(0f64);
            let mut family = encoder.encode_descriptor(
                "last_event_age_seconds",
                "Seconds since the GVR's least recently heard stream got an event, a bookmark or a list page",
                None,
                gauge.metric_type(),
            )?;
            for (gvr, ms) in ages {
                ConstGauge::new(ms as f64 / 1000.0)
                    .encode(family.encode_family(&[("gvr", &*gvr)])?)?;
            }
        }
        {
            let gauge = ConstGauge::new(i64::try_from(live.queue.value()).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(
                "queue_events",
                "Events read from the API server and not yet taken by the consumer",
                None,
                gauge.metric_type(),
            )?)?;
        }
        {
            let mut tracked: Vec<(String, usize)> = Vec::new();
            for (gvr, set) in lock(&live.sets).iter() {
                if let Some(set) = set.upgrade() {
                    let n = usize::try_from(set.value()).unwrap_or(usize::MAX);
                    match tracked.iter_mut().find(|(g, _)| g == gvr) {
                        Some((_, total)) => *total += n,
                        None => tracked.push((gvr.clone(), n)),
                    }
                }
            }
            tracked.sort();
            let gauge = ConstGauge::new(0i64);
            let mut family = encoder.encode_descriptor(
                "objects_tracked",
                "Objects faro remembers (uid, resourceVersion, name), by GVR",
                None,
                gauge.metric_type(),
            )?;
            for (gvr, n) in tracked {
                ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
                    .encode(family.encode_family(&[("gvr", gvr.as_str())])?)?;
            }
        }
        if live.checkpointing.load(Ordering::Relaxed) {
            // Before the first checkpoint: since the start.
            let at = live.checkpoint_ms.load(Ordering::Relaxed).saturating_sub(1);
            let gauge = ConstGauge::new(now.saturating_sub(at) as f64 / 1000.0);
            gauge.encode(encoder.encode_descriptor(
                "checkpoint_age_seconds",
                "Seconds since the last checkpoint was written",
                None,
                gauge.metric_type(),
            )?)?;
        }
        let workloads = live.workloads.load(Ordering::Relaxed);
        if workloads > 0 {
            let gauge = ConstGauge::new(i64::try_from(workloads - 1).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(
                "workloads",
                "Workloads detected",
                None,
                gauge.metric_type(),
            )?)?;
        }
        if let Some(nats) = live.nats.get() {
            let reconnects = ConstCounter::new(nats.reconnects.load(Ordering::Relaxed));
            reconnects.encode(encoder.encode_descriptor(
                "nats_reconnects",
                "Connections to NATS re-established after a loss",
                None,
                reconnects.metric_type(),
            )?)?;
            let retries = ConstCounter::new(nats.retries.load(Ordering::Relaxed));
            retries.encode(encoder.encode_descriptor(
                "nats_publish_retries",
                "JetStream publishes sent again after a failure or a missing ack",
                None,
                retries.metric_type(),
            )?)?;
            let pending = ConstGauge::new(
                i64::try_from(nats.pending.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
            );
            pending.encode(encoder.encode_descriptor(
                "nats_pending_events",
                "Events handed to the NATS sink and not yet acknowledged by JetStream",
                None,
                pending.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data behind these locks are counts and names: still right after a panic elsewhere.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Zero;

    impl Gauged for Zero {
        fn value(&self) -> u64 {
            0
        }
    }

    fn exposition(m: &Metrics) -> String {
        let mut s = String::new();
        m.encode(&mut s).expect("encode");
        s
    }

    #[test]
    fn streams_are_counted_by_state_and_leave_when_dropped() {
        let m = Metrics::new(Arc::new(Zero));
        let gvr: Gvr = "apps/v1/deployments".parse().expect("gvr");
        let a = m.stream(1, &gvr, Arc::from("apps/v1/deployments"));
        let b = m.stream(2, &gvr, Arc::from("apps/v1/deployments"));
        a.state(WatchState::Watching, None);
        b.state(WatchState::Forbidden, Some("forbidden (403)".into()));
        let text = exposition(&m);
        assert!(
            text.contains("faro_watches{state=\"watching\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("faro_watches{state=\"forbidden\"} 1\n"),
            "{text}"
        );
        assert_eq!(
            m.problems(),
            vec!["apps/v1/deployments: forbidden: forbidden (403)".to_owned()]
        );
        drop(b);
        assert!(m.problems().is_empty());
        assert!(exposition(&m).contains("faro_watches{state=\"forbidden\"} 0\n"));
        drop(a);
        assert!(exposition(&m).contains("faro_watches{state=\"watching\"} 0\n"));
    }

    #[test]
    fn counters_carry_gvr_labels_and_the_exposition_ends_in_eof() {
        let m = Metrics::new(Arc::new(Zero));
        let gvr: Gvr = "v1/configmaps".parse().expect("gvr");
        let probe = m.stream(1, &gvr, Arc::from("v1/configmaps"));
        probe.heard(100);
        probe.error(Some(410));
        probe.error(None);
        probe.reconnect();
        m.event_counter(&gvr, EventType::Added).add(3);
        let text = exposition(&m);
        for line in [
            "faro_events_total{gvr=\"v1/configmaps\",type=\"ADDED\"} 3",
            "faro_api_read_bytes_total{gvr=\"v1/configmaps\"} 100",
            "faro_api_errors_total{gvr=\"v1/configmaps\",code=\"410\"} 1",
            "faro_api_errors_total{gvr=\"v1/configmaps\",code=\"network\"} 1",
            "faro_watch_reconnects_total{gvr=\"v1/configmaps\"} 1",
            "faro_queue_events 0",
            "faro_build_info{version=",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        assert!(!text.contains("checkpoint_age_seconds"));
        assert!(!text.contains("faro_workloads "));
        m.checkpointing();
        m.workloads(4);
        let text = exposition(&m);
        assert!(text.contains("faro_checkpoint_age_seconds "));
        assert!(text.contains("faro_workloads 4\n"));
    }
}
