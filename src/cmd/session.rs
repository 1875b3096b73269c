//! A live session shared by `watch` and `workload`: the writer thread, the stream registry,
//! signals and `--auto-shutdown`, and the exit status they add up to.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use kube::Client;
use tokio::sync::{mpsc, watch};

use crate::cli::{EventFormat, OutputArgs};
use crate::discovery::{self, Discovery};
use crate::emit::{self, Format, OutputFiles, Renderer, WriterEnd};
use crate::exit::Status;
use crate::filter::Planner;
use crate::kubeclient::{self, Cluster, ClusterOptions};
use crate::registry::{Inbox, Registry, RegistryOptions};
use crate::stream::Shared;
use crate::workload::Membership;

/// Resolved output settings (flags over config).
#[derive(Debug, Clone)]
pub struct Output {
    /// stdout format.
    pub format: Format,
    /// Add the full object.
    pub include_object: bool,
    /// Drop initial events.
    pub no_initial: bool,
    /// Files under the output directory.
    pub files: Option<OutputFiles>,
    /// Ready file.
    pub ready_file: Option<PathBuf>,
}

impl Output {
    /// Resolves the output flags; `config_dir`/`json_export` come from a config file.
    pub fn resolve(
        args: &OutputArgs,
        config_dir: Option<PathBuf>,
        json_export: bool,
    ) -> anyhow::Result<Output> {
        let files = match (&args.output_dir, config_dir) {
            (Some(dir), _) => Some(OutputFiles::prepare(dir, true)?),
            (None, Some(dir)) => Some(OutputFiles::prepare(&dir, json_export)?),
            (None, None) => None,
        };
        Ok(Output {
            format: match args.format {
                EventFormat::Json => Format::Json,
                EventFormat::Text => Format::Text {
                    color: emit::stdout_is_terminal(),
                },
            },
            include_object: args.include_object,
            no_initial: args.no_initial,
            files,
            ready_file: args.ready_file.clone(),
        })
    }
}

/// Discovery at start-up, retried for a while: a cluster that is briefly unreachable (an
/// apiserver restart, a port-forward still coming up) should not fail a long-running watcher.
pub async fn discover_with_retries(cluster: &Cluster) -> anyhow::Result<Discovery> {
    let mut delay = Duration::from_millis(250);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match discovery::discover(&cluster.client).await {
            Ok(found) => {
                for warning in &found.warnings {
                    tracing::warn!("unable to discover {warning}");
                }
                return Ok(found);
            }
            Err(e) => {
                let message = format!("{e:#}");
                // Credentials problems will not fix themselves.
                let permanent = message.contains("credentials") || message.contains("may not read");
                if permanent || tokio::time::Instant::now() + delay > deadline {
                    return Err(e)
                        .with_context(|| format!("discovering the API of {}", cluster.url));
                }
                tracing::warn!("{message}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(4));
            }
        }
    }
}

/// Connects, discovers the cluster (retrying for a while), lets `plan` build the planner from
/// the discovery, then runs the session on a multi-threaded runtime.
pub fn start(
    cluster: &ClusterOptions,
    output: Output,
    auto_shutdown: Option<Duration>,
    membership: Option<Arc<RwLock<Membership>>>,
    plan: impl FnOnce(&Discovery) -> anyhow::Result<Planner>,
) -> anyhow::Result<Status> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let cluster = kubeclient::connect(cluster).await?;
        let discovery = discover_with_retries(&cluster).await?;
        let planner = plan(&discovery)?;
        run(
            cluster.client,
            planner,
            discovery,
            membership,
            output,
            auto_shutdown,
        )
        .await
    })
}

/// Runs the streams until a signal, `auto_shutdown` or a closed stdout ends the session.
async fn run(
    client: Client,
    planner: Planner,
    discovery: Discovery,
    membership: Option<Arc<RwLock<Membership>>>,
    output: Output,
    auto_shutdown: Option<Duration>,
) -> anyhow::Result<Status> {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shutdown_tx = Arc::new(shutdown_tx);

    let events_file = match output.files.as_ref().and_then(|f| f.events.as_ref()) {
        Some(path) => Some(
            emit::create_private_file(path)
                .with_context(|| format!("creating events file {}", path.display()))?,
        ),
        None => None,
    };
    let notify = {
        let tx = shutdown_tx.clone();
        move || {
            let _ = tx.send(true);
        }
    };
    let renderer = Renderer {
        format: output.format,
        file: events_file.is_some(),
    };
    let (sink, writer) = emit::Writer::spawn(
        matches!(output.format, Format::Text { .. }),
        events_file,
        notify,
    );

    let (status_tx, status_rx) = mpsc::unbounded_channel();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        client,
        sink,
        renderer,
        include_object: output.include_object,
        no_initial: output.no_initial,
        workloads: membership.clone(),
        status: status_tx,
        control: control_tx,
        watch_timeout: Duration::from_secs(290),
        page_size: 500,
        list_slots: tokio::sync::Semaphore::new(crate::stream::LIST_CONCURRENCY),
    });
    let registry = Registry::new(
        shared,
        planner,
        discovery,
        membership,
        RegistryOptions {
            ready_file: output.ready_file.clone(),
        },
    );

    let signals = tokio::spawn(watch_signals(shutdown_tx.clone()));
    if let Some(after) = auto_shutdown {
        let tx = shutdown_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            tracing::info!("auto-shutdown after {}", humantime::format_duration(after));
            let _ = tx.send(true);
        });
    }

    registry
        .run(
            Inbox {
                status: status_rx,
                control: control_rx,
            },
            shutdown_rx,
        )
        .await;
    // Every stream task has ended and dropped its handle on the sink: the writer drains what
    // is queued, flushes and ends. Signals stay handled until then: a second one must still
    // end a drain that a blocked stdout holds up.
    let end = tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap_or(WriterEnd::Done);
    signals.abort();
    match end {
        WriterEnd::Done | WriterEnd::BrokenPipe => Ok(Status::Success),
        WriterEnd::Failed(e) => Err(e),
    }
}

/// First SIGINT/SIGTERM: graceful shutdown. Second: exit 130 at once.
async fn watch_signals(shutdown: Arc<watch::Sender<bool>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!("signal received: stopping watches and flushing (again to exit at once)");
    let _ = shutdown.send(true);
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    std::process::exit(i32::from(Status::Interrupted.code()));
}
