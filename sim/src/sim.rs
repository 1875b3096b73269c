//! The shared state of one running server: options, served resources, the store, watches,
//! fault switches and the admin API's background jobs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::bulk::Prerendered;
use crate::churn::ChurnStatus;
use crate::connections::Connections;
use crate::faults::Faults;
use crate::managed_fields::{Manage, Writer};
use crate::options::Options;
use crate::paging::Pages;
use crate::registry::Registry;
use crate::request_log::RequestLog;
use crate::store::Store;
use crate::tls::TlsMaterial;
use crate::watch::Watches;

/// Namespaces every cluster starts with.
pub const INITIAL_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// One server's state.
#[derive(Debug)]
pub struct Sim {
    /// Start options.
    pub opts: Options,
    /// Served resources.
    pub registry: RwLock<Registry>,
    /// Objects and history.
    pub store: Store,
    /// Paged list snapshots.
    pub pages: Pages,
    /// Fault switches.
    pub faults: Faults,
    /// Recent requests.
    pub requests: RequestLog,
    /// Open watch streams.
    pub watches: Watches,
    /// Open client connections.
    pub connections: Connections,
    /// Certificates and TLS configuration when serving HTTPS.
    pub tls: Option<TlsMaterial>,
    /// Bookmark interval in milliseconds.
    pub bookmark_ms: AtomicU64,
    /// How streaming lists are served now (`/_sim/watch-list`): a [`WatchList`] as u8.
    pub watch_list: AtomicU8,
    /// Whether `shardSelector` (KEP-5866) is honoured; off = an older server that ignores it.
    pub shard_selector: AtomicBool,
    /// Whether aggregated discovery is served.
    pub aggregated: AtomicBool,
    /// Delay between a namespace turning Terminating and its contents being deleted.
    pub namespace_delete_delay_ms: AtomicU64,
    /// Cancelled when the server stops (ends every watch).
    pub shutdown: CancellationToken,
    /// Progress of the latest churn job.
    pub churn: Mutex<ChurnStatus>,
    /// Events rendered by `/_sim/prerender`, waiting for `/_sim/burst`.
    pub prerendered: Mutex<Option<Prerendered>>,
}

/// How streaming lists (`sendInitialEvents=true`) are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WatchList {
    /// As Kubernetes 1.32+: the current state, the `k8s.io/initial-events-end` bookmark, then
    /// changes.
    On = 0,
    /// The 422 of a server whose WatchList feature gate is off.
    Reject = 1,
    /// The initial events and then changes, but never the end bookmark (as some aggregated
    /// API servers do); ordinary progress bookmarks still come.
    NoEndBookmark = 2,
}

impl WatchList {
    /// The mode's name in `/_sim/watch-list`.
    pub fn name(self) -> &'static str {
        match self {
            WatchList::On => "on",
            WatchList::Reject => "reject",
            WatchList::NoEndBookmark => "no-end-bookmark",
        }
    }
}

impl Sim {
    /// How streaming lists are served now.
    pub fn watch_list(&self) -> WatchList {
        match self.watch_list.load(Ordering::Relaxed) {
            1 => WatchList::Reject,
            2 => WatchList::NoEndBookmark,
            _ => WatchList::On,
        }
    }

    /// Builds the state and creates the initial namespaces.
    pub fn new(opts: Options, tls: Option<TlsMaterial>) -> Arc<Sim> {
        let registry = Registry::from_catalog(opts.catalog.lists());
        let sim = Sim {
            registry: RwLock::new(registry),
            store: Store::new(opts.history_limit),
            pages: Pages::default(),
            faults: Faults::new(opts.require_token.clone()),
            requests: RequestLog::new(opts.request_log_size),
            watches: Watches::default(),
            connections: Connections::default(),
            tls,
            bookmark_ms: AtomicU64::new(
                opts.bookmark_interval
                    .as_millis()
                    .try_into()
                    .unwrap_or(u64::MAX),
            ),
            aggregated: AtomicBool::new(opts.aggregated),
            shard_selector: AtomicBool::new(opts.shard_selector),
            watch_list: AtomicU8::new(if opts.watch_list {
                WatchList::On as u8
            } else {
                WatchList::Reject as u8
            }),
            namespace_delete_delay_ms: AtomicU64::new(
                opts.namespace_delete_delay
                    .as_millis()
                    .try_into()
                    .unwrap_or(u64::MAX),
            ),
            shutdown: CancellationToken::new(),
            churn: Mutex::new(ChurnStatus::default()),
            prerendered: Mutex::new(None),
            opts,
        };
        if let Some(ns_info) = sim.registry.read().lookup("", "v1", "namespaces") {
            // Created by the apiserver itself on a real cluster (its bootstrap controller).
            let w = Writer::new("kube-apiserver", &ns_info);
            let mut tx = sim.store.tx();
            for ns in INITIAL_NAMESPACES {
                let _ = tx.create(
                    &ns_info,
                    None,
                    json!({"metadata": {"name": ns}}),
                    Manage::Update(&w),
                );
            }
        }
        Arc::new(sim)
    }
}
