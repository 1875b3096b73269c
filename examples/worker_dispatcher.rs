//! A worker pool fed from faro's event stream, taking actions through the Kubernetes API: when a
//! Secret changes, every ConfigMap of its namespace that names it in the annotation
//! `example.faro.dev/secret` gets the annotation `example.faro.dev/secret-version` set to the
//! Secret's new resourceVersion (what a "restart the app when its secret changes" controller
//! does).
//!
//! ```text
//! cargo run --example worker_dispatcher -- NAMESPACE [WORKERS]
//! ```
//!
//! - One task reads the stream; it keeps an index (Secret name → the ConfigMaps naming it) from
//!   the ConfigMap events, and turns each change of a Secret into a job.
//! - Jobs go to WORKERS tasks (default 4), sharded by the Secret's uid, so that two changes of one
//!   Secret are handled in order by one worker while other Secrets are handled in parallel.
//! - A failed PATCH (the API server answering 5xx, a conflict) is retried with exponential
//!   backoff, up to 5 attempts.
//!
//! Output on stdout:
//!
//! ```text
//! ready: watching 2 streams in demo
//! annotated demo/web: secret demo/db-password is at resourceVersion 57 (attempt 1)
//! ```
//!
//! Ctrl-C stops it. ([`faro::Watcher::run`] with `workers(n)` does the same sharding and retrying
//! for a [`faro::Handler`]; this example shows the stream side.)

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use faro::client::ClusterOptions;
use faro::config::Entry;
use faro::{EventType, Signal, WatchConfig, Watcher};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::mpsc;

/// The annotation a ConfigMap names its Secret with.
const SECRET: &str = "example.faro.dev/secret";
/// The annotation the workers set.
const VERSION: &str = "example.faro.dev/secret-version";

/// One Secret change to act on.
struct Job {
    namespace: String,
    secret: String,
    resource_version: String,
    configmaps: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .init();
    let mut args = std::env::args().skip(1);
    let namespace = args
        .next()
        .context("usage: worker_dispatcher NAMESPACE [WORKERS]")?;
    let workers: usize = args.next().map_or(Ok(4), |n| n.parse())?;
    let cluster = faro::client::connect(&ClusterOptions::default()).await?;

    // The workers, each with its own queue.
    let mut queues = Vec::new();
    let mut pool = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (tx, rx) = mpsc::channel::<Job>(16);
        queues.push(tx);
        pool.spawn(work(cluster.client.clone(), rx));
    }

    let config = WatchConfig::new()
        .entry(Entry::new("v1/configmaps".parse()?).namespace(&namespace)?)
        .entry(Entry::new("v1/secrets".parse()?).namespace(&namespace)?);
    let mut events = Watcher::new(cluster.client.clone(), config).stream();
    let stopper = events.stopper();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stopper.stop();
    });

    // Secret name → the ConfigMaps that name it.
    let mut index: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut ready = false;
    while let Some(signal) = events.next().await {
        let event = match signal? {
            Signal::Ready { streams } => {
                ready = true;
                let _ = writeln!(
                    std::io::stdout(),
                    "ready: watching {streams} streams in {namespace}"
                );
                continue;
            }
            Signal::Event(event) => event,
        };
        let event = event.as_event();
        let name = event.name().to_owned();
        if event.gvr().resource == "configmaps" {
            for names in index.values_mut() {
                names.remove(&name);
            }
            if event.event_type() != EventType::Deleted
                && let Some(secret) = event.annotations().get(SECRET)
            {
                index.entry(secret.into_owned()).or_default().insert(name);
            }
            continue;
        }
        // A Secret: act on changes made after start-up.
        if !ready || event.event_type() == EventType::Deleted {
            continue;
        }
        let configmaps: Vec<String> = index
            .get(&name)
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default();
        if configmaps.is_empty() {
            continue;
        }
        let job = Job {
            namespace: namespace.clone(),
            secret: name,
            resource_version: event.resource_version().to_owned(),
            configmaps,
        };
        // Sharded by the Secret: its changes stay in order on one worker.
        let worker = shard(event.uid(), queues.len());
        queues[worker].send(job).await?;
    }
    drop(queues);
    while pool.join_next().await.is_some() {}
    Ok(())
}

/// The worker of an object.
fn shard(uid: &str, workers: usize) -> usize {
    let mut h = DefaultHasher::new();
    uid.hash(&mut h);
    (h.finish() % workers as u64) as usize
}

/// Takes jobs until the queue closes.
async fn work(client: kube::Client, mut jobs: mpsc::Receiver<Job>) {
    while let Some(job) = jobs.recv().await {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &job.namespace);
        for configmap in &job.configmaps {
            annotate(&api, &job, configmap).await;
        }
    }
}

/// Sets the annotation, retrying a failed PATCH with exponential backoff.
async fn annotate(api: &Api<ConfigMap>, job: &Job, configmap: &str) {
    let patch = serde_json::json!({
        "metadata": { "annotations": { VERSION: job.resource_version } }
    });
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=5 {
        match api
            .patch(configmap, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                let _ = writeln!(
                    std::io::stdout(),
                    "annotated {}/{configmap}: secret {}/{} is at resourceVersion {} (attempt {attempt})",
                    job.namespace,
                    job.namespace,
                    job.secret,
                    job.resource_version
                );
                return;
            }
            Err(e) => {
                tracing::warn!(
                    "annotating {}/{configmap} failed ({e}); retrying in {delay:?}",
                    job.namespace
                );
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    tracing::error!(
        "gave up annotating {}/{configmap} for secret {} at resourceVersion {}",
        job.namespace,
        job.secret,
        job.resource_version
    );
}
