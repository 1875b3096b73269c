//! `faro workload` on the library, in user code: workloads are detected from a namespace label
//! (its value is the workload's name), GVRS are watched in every workload namespace from the
//! moment it joins (also when the label is added later) until it leaves, and every event is
//! printed as a JSON line of faro's wire format, with `workload_id` and `workload_name`.
//!
//! ```text
//! cargo run --example workload_monitor -- LABEL GVR[,GVR...] [ID_PATTERN]
//! cargo run --example workload_monitor -- team v1/configmaps,v1/secrets
//! ```
//!
//! does what `faro workload -label team -workloadgvrs v1/configmaps,v1/secrets` does, without
//! the files and flags. Output on stdout, one JSON object per line:
//!
//! ```text
//! {"timestamp":"…","eventType":"ADDED","gvr":"v1/configmaps","namespace":"team-a","name":"app","uid":"…","resourceVersion":"41","initial":true,"workload_id":"team-a","workload_name":"alpha"}
//! ```
//!
//! and on stderr `ready: watching N resource streams` once the workloads that existed at
//! start-up are listed. Ctrl-C stops it.

use std::io::Write;
use std::sync::Mutex;

use anyhow::Context;
use faro::client::ClusterOptions;
use faro::event::JsonEncoder;
use faro::{Detector, Event, Gvr, Handler, Tiers, Watcher};

/// Writes each event as a JSON line.
struct JsonLines {
    encoder: Mutex<(JsonEncoder, Vec<u8>)>,
}

impl Handler for JsonLines {
    type Error = std::io::Error;

    async fn on_event(&self, event: &Event<'_>) -> Result<(), Self::Error> {
        let mut guard = self.encoder.lock().unwrap_or_else(|e| e.into_inner());
        let (encoder, line) = &mut *guard;
        line.clear();
        encoder.encode(event, line);
        let mut out = std::io::stdout().lock();
        out.write_all(line)?;
        out.flush()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // faro logs "ready: watching N resource streams" and the joins and leaves at info.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,faro=info"))
        .init();
    let usage = "usage: workload_monitor LABEL GVR[,GVR...] [ID_PATTERN]";
    let mut args = std::env::args().skip(1);
    let label = args.next().context(usage)?;
    let gvrs = args
        .next()
        .context(usage)?
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<Gvr>, _>>()?;
    let mut detector = Detector::new(&label)?;
    if let Some(pattern) = args.next() {
        detector = detector.id_pattern(&pattern)?;
    }
    // Namespace events of workload namespaces are shown too; nothing is denied.
    let mut workload = gvrs;
    workload.push(Gvr::namespaces());
    let tiers = Tiers::new(Vec::new(), workload, Vec::new())?;

    let cluster = faro::client::connect(&ClusterOptions::default()).await?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let output = JsonLines {
        encoder: Mutex::new((JsonEncoder::new(), Vec::new())),
    };
    Watcher::workload(cluster.client, detector, tiers)
        .run(output, shutdown)
        .await?;
    Ok(())
}
