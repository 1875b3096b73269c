//! faro watches Kubernetes resources and delivers one typed [`Event`] per change: any resource
//! type, CRDs included (even those created while it runs), filtered on the server where
//! possible, with no lost or invented events across reconnects and `410 Gone`. The `faro`
//! binary, which writes the events as JSON lines, is built on this library.
//!
//! # Quick start
//!
//! ```no_run
//! use faro::config::Entry;
//! use faro::{Event, Handler, WatchConfig, Watcher};
//!
//! struct Print;
//!
//! impl Handler for Print {
//!     type Error = std::convert::Infallible;
//!
//!     async fn on_event(&self, event: &Event<'_>) -> Result<(), Self::Error> {
//!         println!("{} {} {}", event.event_type(), event.gvr(), event.name());
//!         Ok(())
//!     }
//!
//!     async fn on_ready(&self, streams: usize) {
//!         eprintln!("ready: the objects that existed at start-up are above ({streams} watches)");
//!     }
//! }
//!
//! # async fn main_() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! let config = WatchConfig::new()
//!     .entry(Entry::new("v1/configmaps".parse()?).namespace_pattern("shop-.*")?)
//!     .entry(Entry::new("apps/v1/deployments".parse()?).label_selector("tier=web")?);
//! let shutdown = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! Watcher::new(client, config).run(Print, shutdown).await?;
//! # Ok(()) }
//! ```
//!
//! # The pipeline
//!
//! [`discovery`] (what the cluster serves) → plan (config or [`tiers`] → the server-side watches
//! and the client-side filters that remain) → registry (desired watches → running streams, as
//! namespaces, workloads and CRDs come and go) → stream (one list/watch task per server-side
//! watch, with the per-object state that makes events exactly-once) → the consumer: an
//! [`EventStream`](watcher::EventStream) or a [`Handler`] (such as [`nats::Publisher`], which
//! publishes every event to NATS JetStream).
//!
//! # Guarantees
//!
//! Per object: each (uid, resourceVersion) is delivered at most once, even when several
//! [`config::Entry`]s match it; events come in resourceVersion order; after a dropped
//! connection the watch resumes where it was; after `410 Gone` it relists and delivers only the
//! difference, including DELETED for objects that vanished meanwhile. faro keeps no object
//! cache: per object it remembers uid, resourceVersion, namespace and name.

#![deny(missing_docs)]

pub mod checkpoint;
pub mod client;
pub mod config;
pub mod diff;
pub mod discovery;
mod dispatch;
pub mod event;
pub mod gvr;
pub mod handler;
pub mod lease;
mod matcher;
pub mod metrics;
pub mod nats;
mod plan;
mod registry;
mod selector;
pub mod shard;
mod stream;
pub mod tiers;
mod transport;
pub mod watcher;
pub mod workload;

pub use config::WatchConfig;
pub use event::{ChangedBy, Event, EventType, OwnedEvent};
pub use gvr::Gvr;
pub use handler::{Handler, RetryPolicy};
pub use tiers::Tiers;
pub use watcher::{Error, Signal, Watcher};
pub use workload::Detector;
