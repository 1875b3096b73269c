//! faro as a library, the shortest useful program: load a faro config file, print one line per
//! event, say when the objects that existed at start-up have all been seen, stop on Ctrl-C.
//!
//! ```text
//! cargo run --example library_usage -- examples/watch.yaml
//! ```
//!
//! It finds the cluster as kubectl does (`$KUBECONFIG`, `~/.kube/config`, in-cluster). Output
//! on stdout, one line per event, then one line when ready:
//!
//! ```text
//! ADDED v1/namespaces shop-eu rv=112 (existed at start-up)
//! ADDED v1/configmaps shop-eu/checkout rv=118 (existed at start-up)
//! ready: 4 watches have delivered everything that existed at start-up
//! UPDATED v1/configmaps shop-eu/checkout rv=131
//! DELETED v1/configmaps shop-eu/checkout rv=140
//! ```
//!
//! Ctrl-C stops the watches, prints what was already received, and exits 0.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use faro::client::ClusterOptions;
use faro::{Event, Handler, Watcher};

/// Prints each event as one line.
struct Print;

impl Handler for Print {
    type Error = std::io::Error;

    async fn on_event(&self, event: &Event<'_>) -> Result<(), Self::Error> {
        let object = match event.namespace() {
            Some(ns) => format!("{ns}/{}", event.name()),
            None => event.name().to_owned(),
        };
        let initial = if event.initial() {
            " (existed at start-up)"
        } else {
            ""
        };
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{} {} {object} rv={}{initial}",
            event.event_type(),
            event.gvr(),
            event.resource_version()
        )?;
        out.flush()
    }

    async fn on_ready(&self, streams: usize) {
        let _ = writeln!(
            std::io::stdout(),
            "ready: {streams} watches have delivered everything that existed at start-up"
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs to stderr; stdout is for the events.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,faro=info"))
        .init();
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .context("usage: library_usage CONFIG.yaml")?
        .into();
    let file = faro::config::load(&path)?;
    let cluster = faro::client::connect(&ClusterOptions::default()).await?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    Watcher::new(cluster.client, file.watch)
        .run(Print, shutdown)
        .await?;
    Ok(())
}
