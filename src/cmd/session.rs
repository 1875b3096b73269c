//! A live session shared by `watch` and `workload`: connects, runs a `faro::Watcher` with the
//! [`Output`] handler until a signal, `--auto-shutdown` or a closed stdout stops it, and turns
//! the outcome into an exit status.
//!
//! Signals: the first SIGINT or SIGTERM stops the watches and drains what faro holds, for at
//! most `--shutdown-timeout`; a second one exits at once with 130. SIGHUP reopens the events and
//! log files when they were moved away (logrotate's `postrotate kill -HUP`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use faro::Watcher;
use faro::checkpoint::{Checkpoint, OutputPath};
use faro::client::{self, ClusterOptions};
use faro::config::RunSettings;
use faro::diff::DiffOptions;
use faro::lease::{LeaderElection, LeaseConfig, Lost};
use tokio::sync::watch;

use anyhow::Context;

use crate::cli::{EventFormat, LeaderArgs, NatsArgs, OutputArgs, RetentionChoice};
use crate::cmd::monitor::Endpoint;
use crate::exit::{Status, UsageError};
use crate::sink::{
    self, EventsOut, Format, Limits, LogFile, Output, OutputFiles, OutputProgress, WriterEnd,
};

/// Resolved output settings (flags over config).
#[derive(Debug)]
pub struct Settings {
    /// stdout format.
    pub format: Format,
    /// Add the full object.
    pub include_object: bool,
    /// Drop initial events.
    pub no_initial: bool,
    /// Diff every resource.
    pub diff: bool,
    /// What diffs leave out.
    pub diff_options: DiffOptions,
    /// The events file, when events go to a file, with its rotation.
    pub events: Option<EventsOut>,
    /// The text log file, when there is an output directory.
    pub log_file: Option<Arc<LogFile>>,
    /// Ready file.
    pub ready_file: Option<PathBuf>,
    /// Stop after this long.
    pub auto_shutdown: Option<Duration>,
    /// How long a graceful stop may drain.
    pub shutdown_timeout: Duration,
    /// Where the state is saved and resumed from.
    pub state_file: Option<PathBuf>,
    /// How often it is saved.
    pub checkpoint_interval: Duration,
    /// Ignore a saved state.
    pub state_reset: bool,
    /// The bound `--metrics-addr`.
    pub metrics: Option<Endpoint>,
    /// `--stall-timeout`.
    pub stall_timeout: Option<Duration>,
    /// `--leader-elect`: the Lease, its namespace still to resolve when not given.
    pub election: Option<Election>,
    /// `--shard`.
    pub shard: Option<faro::shard::Shard>,
    /// `--nats`: the JetStream sink (and `--state-kv`).
    pub nats: Option<NatsSettings>,
}

/// The checked `--nats` flags.
#[derive(Debug)]
pub struct NatsSettings {
    options: faro::nats::NatsOptions,
    prefix: String,
    /// `--cluster-name`, else the kubeconfig context's cluster.
    cluster_name: Option<String>,
    stream: faro::nats::StreamSettings,
    /// `--state-kv`.
    state_kv: Option<String>,
}

/// The cluster token when neither --cluster-name nor a kubeconfig names one (in a pod):
/// kubeadm's name for a cluster.
const DEFAULT_CLUSTER_NAME: &str = "kubernetes";

impl NatsSettings {
    fn check(args: &NatsArgs) -> anyhow::Result<Option<NatsSettings>> {
        let Some(servers) = &args.nats else {
            return Ok(None);
        };
        // Files that cannot be read are usage errors now, not connection failures later.
        let readable = |flag: &str, path: &Path| -> anyhow::Result<()> {
            std::fs::File::open(path)
                .map(drop)
                .map_err(|e| UsageError(format!("{flag} {}: {e}", path.display())).into())
        };
        if let Some(ca) = &args.nats_ca {
            readable("--nats-ca", ca)?;
        }
        if let Some(creds) = &args.nats_creds {
            readable("--nats-creds", creds)?;
        }
        let client_cert = match (&args.nats_cert, &args.nats_key) {
            (Some(cert), Some(key)) => {
                readable("--nats-cert", cert)?;
                readable("--nats-key", key)?;
                Some((cert.clone(), key.clone()))
            }
            _ => None,
        };
        let stream = faro::nats::StreamSettings {
            name: args.nats_stream.clone(),
            replicas: usize::from(args.nats_replicas),
            retention: match args.nats_retention {
                RetentionChoice::Limits => faro::nats::Retention::Limits,
                RetentionChoice::Interest => faro::nats::Retention::Interest,
                RetentionChoice::Workqueue => faro::nats::Retention::WorkQueue,
            },
            duplicate_window: args.nats_duplicate_window,
            max_age: args.nats_max_age,
        };
        stream
            .check()
            .map_err(|e| UsageError(format!("--nats-stream: {e}")))?;
        Ok(Some(NatsSettings {
            options: faro::nats::NatsOptions {
                servers: servers.0.clone(),
                ca: args.nats_ca.clone(),
                client_cert,
                creds: args.nats_creds.clone(),
                name: Some(format!("faro {}", faro::lease::default_identity())),
            },
            prefix: args.nats_subject_prefix.clone(),
            cluster_name: args.cluster_name.clone(),
            stream,
            state_kv: args.state_kv.clone(),
        }))
    }
}

/// The running NATS side: the sink, and the bucket of the checkpoint.
struct Nats {
    publisher: faro::nats::Publisher,
    bucket: Option<faro::nats::StateBucket>,
}

impl NatsSettings {
    async fn start(
        self,
        cluster: Option<String>,
        metrics: &faro::metrics::Metrics,
    ) -> anyhow::Result<Nats> {
        let cluster = self.cluster_name.or(cluster).unwrap_or_else(|| {
            tracing::info!(
                "no kubeconfig names this cluster: its subjects use {DEFAULT_CLUSTER_NAME:?} (set --cluster-name)"
            );
            DEFAULT_CLUSTER_NAME.to_owned()
        });
        let subjects = faro::nats::Subjects::new(&self.prefix, &cluster)
            .map_err(|e| UsageError(format!("--cluster-name: {e}")))?;
        let connection = faro::nats::Connection::connect(&self.options, metrics).await?;
        let publisher =
            faro::nats::Publisher::start(&connection, subjects, &self.stream, metrics).await?;
        let bucket = match &self.state_kv {
            Some(bucket) => Some(
                faro::nats::StateBucket::open(&connection, bucket, self.stream.replicas).await?,
            ),
            None => None,
        };
        Ok(Nats { publisher, bucket })
    }
}

/// The checked `--leader-elect` flags.
#[derive(Debug)]
pub struct Election {
    /// The Lease config; its namespace is filled in at connect unless given.
    config: LeaseConfig,
    /// `--lease-namespace`.
    namespace: Option<String>,
}

/// Where a service account's token and namespace are mounted in a pod.
const POD_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

impl Election {
    fn check(args: &LeaderArgs) -> anyhow::Result<Option<Election>> {
        if !args.leader_elect {
            return Ok(None);
        }
        let mut config = LeaseConfig::new(
            args.lease_name.clone(),
            String::new(),
            args.lease_identity
                .clone()
                .unwrap_or_else(faro::lease::default_identity),
        );
        config.duration = args.lease_duration;
        config.renew_deadline = args.lease_renew_deadline;
        config.retry_period = args.lease_retry_period;
        config
            .check()
            .map_err(|e| UsageError(format!("--leader-elect: {e}")))?;
        Ok(Some(Election {
            config,
            namespace: args.lease_namespace.clone(),
        }))
    }

    /// The Lease config, its namespace resolved: `--lease-namespace`, else the pod's, else the
    /// kubeconfig context's (which is `default` when the context names none).
    fn resolve(self, context_namespace: &str) -> LeaseConfig {
        let mut config = self.config;
        config.namespace = self
            .namespace
            .or_else(|| {
                std::fs::read_to_string(POD_NAMESPACE_FILE)
                    .ok()
                    .map(|ns| ns.trim().to_owned())
                    .filter(|ns| !ns.is_empty())
            })
            .unwrap_or_else(|| context_namespace.to_owned());
        config
    }
}

impl Settings {
    /// Resolves the output flags over the settings of a config file (the flags win).
    pub fn resolve(args: &OutputArgs, file: &RunSettings) -> anyhow::Result<Settings> {
        if let Some(path) = &args.ready_file {
            check_ready_file(path)?;
        }
        let limits = rotation_limits(args, file)?;
        let files = match (&args.output_dir, &file.output_dir) {
            (Some(dir), _) => Some(OutputFiles::create(dir, true, limits)?),
            (None, Some(dir)) => Some(OutputFiles::create(dir, file.json_export, limits)?),
            (None, None) => None,
        };
        if limits.is_some() && files.as_ref().is_none_or(|f| f.events.is_none()) {
            return Err(UsageError(
                "--max-file-size and --max-files rotate the events file: they need --output-dir (or output_dir with json_export: true in the config)".into(),
            )
            .into());
        }
        let metrics = args.monitor.metrics_addr.map(Endpoint::bind).transpose()?;
        let (events, log_file) = match files {
            Some(files) => (
                files.events.map(|file| EventsOut {
                    current: OutputPath::new(&file.path),
                    file,
                    rotation: files.rotation,
                }),
                Some(Arc::new(LogFile::new(files.log))),
            ),
            None => (None, None),
        };
        Ok(Settings {
            format: {
                // As kubectl: for people on a terminal, JSON lines for programs.
                let terminal = sink::stdout_is_terminal();
                match args.format {
                    Some(EventFormat::Json) => Format::Json,
                    Some(EventFormat::Name) => Format::Name,
                    Some(EventFormat::Text) => Format::Text {
                        color: terminal && sink::colours_wanted(),
                    },
                    None if terminal => Format::Text {
                        color: sink::colours_wanted(),
                    },
                    None => Format::Json,
                }
            },
            include_object: args.include_object,
            no_initial: args.no_initial,
            diff: args.diff,
            diff_options: args
                .diff_ignore
                .iter()
                .try_fold(DiffOptions::new(), |options, pointer| {
                    options.ignore(pointer)
                })
                .map_err(|e| UsageError(format!("--diff-ignore: {e}")))?,
            events,
            log_file,
            ready_file: args.ready_file.clone(),
            auto_shutdown: args.auto_shutdown.or(file.auto_shutdown),
            shutdown_timeout: args.shutdown_timeout,
            state_file: args.state_file.clone().or_else(|| file.state_file.clone()),
            checkpoint_interval: args.checkpoint_interval,
            state_reset: args.state_reset,
            metrics,
            stall_timeout: args.monitor.stall_timeout.0,
            election: Election::check(&args.leader)?,
            shard: args.shard,
            nats: NatsSettings::check(&args.nats)?,
        })
    }
}

/// `--max-file-size`/`--max-files` over `max_file_size`/`max_files` of the config.
fn rotation_limits(args: &OutputArgs, file: &RunSettings) -> anyhow::Result<Option<Limits>> {
    let max_size = args.max_file_size.or(file.max_file_size);
    let max_files = args
        .max_files
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .or(file.max_files);
    match (max_size, max_files) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(UsageError(
            "--max-files keeps the newest rotated events files: it needs --max-file-size".into(),
        )
        .into()),
        (Some(size), max_files) => Ok(Some(Limits {
            max_size: size.bytes(),
            max_files,
        })),
    }
}

/// The ready file must be creatable, or a script waiting for it would wait forever: its
/// directory must exist and take a new file, and the path must not be a directory.
fn check_ready_file(path: &Path) -> anyhow::Result<()> {
    let bad = |why: String| UsageError(format!("--ready-file {}: {why}", path.display()));
    if path.is_dir() {
        return Err(bad("is a directory".into()).into());
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let probe = dir.join(format!(".faro-ready-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(bad(format!("cannot create files in {} ({e})", dir.display())).into()),
    }
}

/// Connects, then runs the watcher that `watcher` builds for the cluster until the session
/// ends, on a multi-threaded runtime.
pub fn run<F, Built>(
    cluster: &ClusterOptions,
    mut settings: Settings,
    watcher: F,
) -> anyhow::Result<Status>
where
    F: FnOnce(client::Cluster) -> Built,
    Built: Future<Output = anyhow::Result<Watcher>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let cluster = client::connect(cluster).await?;
        let url = cluster.url.clone();
        let compression = cluster.compression;
        let cluster_name = cluster.name.clone();
        // A standby builds its watcher (discovery at most) but runs no watch until it leads.
        let election = settings.election.take().map(|election| {
            let config = election.resolve(&cluster.namespace);
            tracing::info!(
                "leader election: Lease {}/{}, identity {}",
                config.namespace,
                config.name,
                config.identity
            );
            LeaderElection::new(cluster.client.clone(), config)
        });
        let watcher =
            watcher(cluster)
                .await
                .map_err(|e| match e.downcast::<faro::discovery::Error>() {
                    Ok(e) => {
                        anyhow::Error::from(e).context(format!("discovering the API of {url}"))
                    }
                    Err(e) => e,
                })?;
        let mut watcher = watcher
            .include_object(settings.include_object)
            .initial(!settings.no_initial)
            .stall_timeout(settings.stall_timeout)
            .list_compression(compression);
        if let Some(shard) = settings.shard {
            watcher = watcher.shard(shard);
        }
        watcher = if settings.diff {
            watcher.diff(settings.diff_options.clone())
        } else {
            watcher.diff_options(settings.diff_options.clone())
        };
        let nats = match settings.nats.take() {
            Some(nats) => Some(nats.start(cluster_name, &watcher.metrics()).await?),
            None => None,
        };
        let bucket = nats.as_ref().and_then(|n| n.bucket.as_ref()).is_some();
        if bucket && settings.state_file.is_some() {
            tracing::warn!("the config's state_file is not used: the state is kept in --state-kv");
        }
        let mut publisher = None;
        if let Some(nats) = nats {
            publisher = Some(nats.publisher);
            if let Some(bucket) = nats.bucket {
                let mut checkpoint = Checkpoint::store(Arc::new(bucket), &url)
                    .interval(settings.checkpoint_interval)
                    .reset(settings.state_reset);
                if let Some(events) = &settings.events {
                    checkpoint = checkpoint.output_path(events.current.clone());
                }
                watcher = watcher.checkpoint(checkpoint);
            }
        }
        if let Some(path) = settings.state_file.as_ref().filter(|_| !bucket) {
            let mut checkpoint = Checkpoint::file(path, &url)
                .interval(settings.checkpoint_interval)
                .reset(settings.state_reset);
            // After a SIGKILL, the lines of the events file after the last checkpoint are
            // folded into the state at the next start, so that the files repeat none of them.
            // A rotating writer tells the checkpoint which file it writes now.
            if let Some(events) = &settings.events {
                checkpoint = checkpoint.output_path(events.current.clone());
            }
            watcher = watcher.checkpoint(checkpoint);
        }
        serve(watcher, settings, election, publisher)
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

async fn serve(
    watcher: Watcher,
    settings: Settings,
    election: Option<LeaderElection>,
    publisher: Option<faro::nats::Publisher>,
) -> anyhow::Result<Status> {
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let notify = {
        let stop = stop_tx.clone();
        move || {
            let _ = stop.send(true);
        }
    };
    let reopen = Arc::new(AtomicBool::new(false));
    let metrics = settings.metrics.as_ref().map(|_| watcher.metrics());
    let gauge = watcher.metrics();
    let (output, writer, written) = Output::start(
        settings.format,
        settings.events,
        settings.ready_file.clone(),
        reopen.clone(),
        metrics.clone(),
        publisher.clone(),
        notify,
    )?;
    let endpoint = match (settings.metrics, metrics) {
        (Some(endpoint), Some(metrics)) => Some(
            endpoint
                .serve(metrics, output.written_ready())
                .context("starting the metrics endpoint")?,
        ),
        _ => None,
    };
    let progress = watcher.progress();
    let signals = tokio::spawn(watch_signals(
        stop_tx.clone(),
        Hangup {
            events: reopen,
            log: settings.log_file.clone(),
        },
    ));
    let auto_shutdown = settings.auto_shutdown.map(|after| {
        let stop = stop_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            tracing::info!("auto-shutdown after {}", humantime::format_duration(after));
            let _ = stop.send(true);
        })
    });
    // A stop drains for at most the shutdown timeout: a reader that stopped reading stdout
    // must not keep faro from ending.
    let deadline = {
        let mut stop = stop_rx.clone();
        let timeout = settings.shutdown_timeout;
        tokio::spawn(async move {
            let _ = stop.wait_for(|stop| *stop).await;
            tokio::time::sleep(timeout).await;
            crate::exit::fail_now(&format!(
                "the graceful stop did not finish within {}: {} (is stdout being read?)",
                humantime::format_duration(timeout),
                unwritten(&progress, &written)
            ));
        })
    };
    // With --leader-elect, stand by until this replica holds the Lease; a stop meanwhile
    // ends the standby.
    let leading = match election {
        None => {
            gauge.set_leader(true);
            Some(None)
        }
        Some(mut election) => {
            let mut stop = stop_rx.clone();
            tokio::select! {
                () = election.acquire() => {
                    gauge.set_leader(true);
                    Some(Some(Leading::start(election, stop_tx.clone(), gauge.clone())))
                }
                _ = stop.wait_for(|stop| *stop) => None,
            }
        }
    };
    let shutdown = async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    };
    let (result, leading) = match leading {
        Some(leading) => (watcher.run(output, shutdown).await, leading),
        None => {
            tracing::info!("leader election: stopped while standing by");
            drop(output);
            (Ok(()), None)
        }
    };
    if let Some(timer) = auto_shutdown {
        timer.abort();
    }
    // What the output handed to JetStream is acknowledged before faro ends (or the stop's
    // deadline ends it, saying how many were not).
    if let Some(publisher) = &publisher {
        publisher.flush().await;
    }
    // The handler is gone with `run`: the writer drains what is queued, flushes and ends.
    // Signals stay handled until then: a second one must still end a drain that a blocked
    // stdout holds up.
    let end = tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap_or(WriterEnd::Done);
    deadline.abort();
    signals.abort();
    if let Some(endpoint) = endpoint {
        endpoint.abort();
    }
    // Everything is written and checkpointed: a standby may take over from here.
    if let Some(leading) = leading
        && let Some(lost) = leading.end(&gauge).await
    {
        return Err(anyhow::anyhow!(
            "leader election: lost the Lease ({lost}): the watches and the output stopped; exiting so that this replica restarts as a standby"
        ));
    }
    result?;
    match end {
        WriterEnd::Done | WriterEnd::BrokenPipe => Ok(Status::Success),
        WriterEnd::Failed(e) => Err(e),
    }
}

/// The leader's side of `--leader-elect`: renews the Lease in the background; on a loss it
/// stops the session (and exits at once if the stop is not done when a standby may take
/// over); at the end of a session that did not lose it, it releases the Lease.
struct Leading {
    release: watch::Sender<bool>,
    lost: Arc<std::sync::Mutex<Option<Lost>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Leading {
    fn start(
        mut election: LeaderElection,
        stop: watch::Sender<bool>,
        gauge: faro::metrics::Metrics,
    ) -> Leading {
        let (release, mut release_rx) = watch::channel(false);
        let lost = Arc::new(std::sync::Mutex::new(None));
        let slot = lost.clone();
        let task = tokio::spawn(async move {
            tokio::select! {
                why = election.renew_until_lost() => {
                    gauge.set_leader(false);
                    let lease = format!("{}/{}", election.config().namespace, election.config().name);
                    tracing::error!(
                        "leader election: lost the Lease {lease}: {why}; stopping the watches and the output"
                    );
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                    let _ = stop.send(true);
                    // Fencing: a standby may take over one lease duration after the last
                    // renewal; nothing may be written from then on.
                    tokio::time::sleep_until(election.fence_deadline()).await;
                    crate::exit::fail_now(&format!(
                        "leader election: lost the Lease {lease} and the output did not stop before a standby could take over: exiting at once"
                    ));
                }
                () = async { let _ = release_rx.wait_for(|release| *release).await; } => {
                    if let Err(e) = election.release().await {
                        tracing::warn!("leader election: {e}; a standby takes over when it expires");
                    }
                }
            }
        });
        Leading {
            release,
            lost,
            task,
        }
    }

    /// Releases the Lease unless it was lost; returns the loss.
    async fn end(self, gauge: &faro::metrics::Metrics) -> Option<Lost> {
        if let Some(lost) = self.lost.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Some(lost);
        }
        let _ = self.release.send(true);
        // The release is one read and one write; do not let a dead server hold the exit up.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        gauge.set_leader(false);
        None
    }
}

/// What did not reach the outputs: the events queued inside the watcher, plus those the output
/// took but the writer has not written.
fn unwritten(progress: &faro::watcher::Progress, out: &OutputProgress) -> String {
    let queued = progress.queued();
    let handed = out.handed.load(Ordering::Relaxed);
    let missing = |written: u64| queued + handed.saturating_sub(written);
    let stdout = missing(out.written.stdout.load(Ordering::Relaxed));
    if let Some(nats) = &out.nats {
        let nats = queued + nats.pending();
        return if out.file {
            let file = missing(out.written.file.load(Ordering::Relaxed));
            format!(
                "{stdout} events did not reach stdout, {file} the events file and {nats} NATS JetStream"
            )
        } else {
            format!("{stdout} events did not reach stdout and {nats} did not reach NATS JetStream")
        };
    }
    if out.file {
        let file = missing(out.written.file.load(Ordering::Relaxed));
        format!("{stdout} events did not reach stdout and {file} did not reach the events file")
    } else {
        format!("{stdout} events did not reach stdout")
    }
}

/// What SIGHUP reopens.
struct Hangup {
    /// Tells the writer to reopen the events file.
    events: Arc<AtomicBool>,
    log: Option<Arc<LogFile>>,
}

impl Hangup {
    fn reopen(&self) {
        self.events.store(true, Ordering::SeqCst);
        if let Some(log) = &self.log {
            match log.reopen() {
                Ok(true) => tracing::info!("log file reopened: {}", log.path().display()),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!("cannot reopen the log file {}: {e}", log.path().display())
                }
            }
        }
        tracing::info!("SIGHUP: output files are reopened if they were moved");
    }
}

/// First SIGINT/SIGTERM: graceful shutdown. Second: exit 130 at once. SIGHUP: reopen files.
async fn watch_signals(shutdown: watch::Sender<bool>, hangup: Hangup) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {
                hangup.reopen();
                continue;
            }
        }
        if stopping {
            std::process::exit(i32::from(Status::Interrupted.code()));
        }
        stopping = true;
        tracing::info!("signal received: stopping watches and flushing (again to exit at once)");
        let _ = shutdown.send(true);
    }
}
