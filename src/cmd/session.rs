//! A live session shared by `watch` and `workload`: connects, runs a `faro::Watcher` with the
//! [`Output`] handler until a signal, `--auto-shutdown` or a closed stdout stops it, and turns
//! the outcome into an exit status.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use faro::Watcher;
use faro::client::{self, ClusterOptions};
use tokio::sync::watch;

use crate::cli::{EventFormat, OutputArgs};
use crate::exit::Status;
use crate::sink::{self, Format, Output, OutputFiles, WriterEnd};

/// Resolved output settings (flags over config).
#[derive(Debug, Clone)]
pub struct Settings {
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
    /// Stop after this long.
    pub auto_shutdown: Option<Duration>,
}

impl Settings {
    /// Resolves the output flags; `config_dir`/`json_export`/`auto_shutdown` come from a config
    /// file, and the flags win.
    pub fn resolve(
        args: &OutputArgs,
        config_dir: Option<PathBuf>,
        json_export: bool,
        auto_shutdown: Option<Duration>,
    ) -> anyhow::Result<Settings> {
        let files = match (&args.output_dir, config_dir) {
            (Some(dir), _) => Some(OutputFiles::prepare(dir, true)?),
            (None, Some(dir)) => Some(OutputFiles::prepare(&dir, json_export)?),
            (None, None) => None,
        };
        Ok(Settings {
            format: match args.format {
                EventFormat::Json => Format::Json,
                EventFormat::Text => Format::Text {
                    color: sink::stdout_is_terminal(),
                },
            },
            include_object: args.include_object,
            no_initial: args.no_initial,
            files,
            ready_file: args.ready_file.clone(),
            auto_shutdown: args.auto_shutdown.or(auto_shutdown),
        })
    }
}

/// Connects, then runs the watcher that `watcher` builds from the client until the session
/// ends, on a multi-threaded runtime.
pub fn run(
    cluster: &ClusterOptions,
    settings: Settings,
    watcher: impl FnOnce(kube::Client) -> Watcher,
) -> anyhow::Result<Status> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let cluster = client::connect(cluster).await?;
        let url = cluster.url.clone();
        let watcher = watcher(cluster.client)
            .include_object(settings.include_object)
            .initial(!settings.no_initial);
        serve(watcher, settings)
            .await
            .map_err(|e| match e.downcast::<faro::Error>() {
                Ok(faro::Error::Discovery(e)) => {
                    anyhow::Error::from(e).context(format!("discovering the API of {url}"))
                }
                Ok(other) => other.into(),
                Err(e) => e,
            })
    })
}

async fn serve(watcher: Watcher, settings: Settings) -> anyhow::Result<Status> {
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let events_file = match settings.files.as_ref().and_then(|f| f.events.as_ref()) {
        Some(path) => Some(
            sink::create_private_file(path)
                .with_context(|| format!("creating events file {}", path.display()))?,
        ),
        None => None,
    };
    let notify = {
        let stop = stop_tx.clone();
        move || {
            let _ = stop.send(true);
        }
    };
    let (output, writer) = Output::start(
        settings.format,
        events_file,
        settings.ready_file.clone(),
        notify,
    )?;
    let signals = tokio::spawn(watch_signals(stop_tx.clone()));
    let auto_shutdown = settings.auto_shutdown.map(|after| {
        let stop = stop_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            tracing::info!("auto-shutdown after {}", humantime::format_duration(after));
            let _ = stop.send(true);
        })
    });
    let shutdown = async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    };
    let result = watcher.run(output, shutdown).await;
    if let Some(timer) = auto_shutdown {
        timer.abort();
    }
    // The handler is gone with `run`: the writer drains what is queued, flushes and ends.
    // Signals stay handled until then: a second one must still end a drain that a blocked
    // stdout holds up.
    let end = tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap_or(WriterEnd::Done);
    signals.abort();
    result?;
    match end {
        WriterEnd::Done | WriterEnd::BrokenPipe => Ok(Status::Success),
        WriterEnd::Failed(e) => Err(e),
    }
}

/// First SIGINT/SIGTERM: graceful shutdown. Second: exit 130 at once.
async fn watch_signals(shutdown: watch::Sender<bool>) {
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
