//! Command-line definitions (clap derive) and Go-style argv normalisation.
//!
//! Only types and parsing live here: no I/O. `cmd/*` turns these into resolved configs, so
//! nothing below the command layer sees a clap type.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use faro::Gvr;
use faro::config::LogLevel;

/// Watch Kubernetes resources and write one JSON line per change.
///
/// faro streams what changes in a cluster: any resource type (CRDs included, even those created
/// while it runs), filtered on the server where possible, with no lost or invented events across
/// reconnects. stdout carries only data (JSON lines); logs go to stderr.
///
/// Every long flag also works with a single dash, as in the Go tool faro replaces:
/// `-config x`, `-config=x`, `--config x` and `--config=x` are the same.
#[derive(Debug, Parser)]
#[command(name = "faro", version, propagate_version = true, max_term_width = 100)]
#[command(
    after_long_help = "EXIT STATUS:\n  0  success, graceful shutdown (signal, --auto-shutdown) or closed stdout pipe\n  1  runtime failure (cluster unreachable, output not writable)\n  2  usage or configuration error\n  130  second interrupt signal"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

const WATCH_EXAMPLES: &str = "\
Examples:
  # Pods and deployments labelled app=web in two namespaces (text on a terminal)
  faro watch pods,deploy -n shop,payments -l app=web

  # Only what changes from now on, everywhere, for ten minutes, as JSON lines
  faro watch cm,secrets -A --since-now --for 10m -o json

  # One object, and running pods of one node
  faro watch deploy/web
  faro watch po -A --field-selector spec.nodeName=node-1,status.phase=Running

  # Everything a config names, as JSON lines
  faro watch --config examples/watch.yaml

  # Only deletions, without the objects that exist at start-up
  faro watch --config examples/watch.yaml --no-initial | jq -c 'select(.eventType==\"DELETED\")'

  # Also keep the events in out/logs/events-*.json, stop after an hour
  faro watch -config examples/watch.yaml -output-dir out -auto-shutdown 1h

Wire format: one JSON object per line with timestamp, eventType (ADDED, UPDATED, DELETED),
gvr, namespace, name, uid, resourceVersion, labels, annotations, initial (start-up listing),
object with --include-object (Secret data redacted), and resync on events derived from a
relist. Logs go to stderr. SIGINT/SIGTERM stop gracefully; SIGHUP reopens moved output files.";

const WORKLOAD_EXAMPLES: &str = "\
Examples:
  # Tenants marked by a label; pods, configmaps and secrets in their namespaces
  faro workload -label api.openshift.com/name -pattern 'toda-.*' \\
    -namespace-pattern 'ocm-staging-(.+)' -allowedgvrs v1/namespaces \\
    -workloadgvrs v1/pods,v1/configmaps,v1/secrets \\
    -deniedgvrs coordination.k8s.io/v1/leases,events.k8s.io/v1/events

  # Count events per workload
  faro workload -label team -workloadgvrs v1/pods | jq -r .workload_id | uniq -c";

const DISCOVER_EXAMPLES: &str = "\
Examples:
  # GVR strings faro can watch, ready to paste into a config
  faro discover --watchable -o name

  # Preferred kinds of the apps group
  faro discover --api-group apps -o json | jq -r 'select(.preferred) | .kind'";

/// Options every subcommand accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else the
    /// in-cluster service account].
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use [default: the current context].
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// Speak HTTP/1.1 to the API server even when it offers HTTP/2.
    ///
    /// By default faro speaks HTTP/2 over TLS when the server offers it, as kubectl does: many
    /// watches share each connection (up to the server's stream limit, 250 on kube-apiserver).
    /// With --http1 every request in flight, and so every watch, holds a connection of its own,
    /// as kube-rs clients do. For debugging, or a proxy in the path that mishandles HTTP/2.
    #[arg(long, global = true)]
    pub http1: bool,

    /// Log level of the messages on stderr (RUST_LOG wins when set).
    #[arg(long, global = true, value_name = "LEVEL", value_parser = log_level_parser())]
    pub log_level: Option<LogLevel>,

    /// More log output (-v: debug, -vv: trace).
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Less log output (-q: warnings and errors, -qq: errors only).
    #[arg(short = 'q', long = "quiet", global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
}

/// `--log-level`: the names of `log_level:` in a config file (faro's `LogLevel::from_str`),
/// listed for help and completions.
fn log_level_parser() -> impl TypedValueParser<Value = LogLevel> {
    PossibleValuesParser::new(LogLevel::NAMES.map(|name| match name {
        "warning" => PossibleValue::new(name).alias("warn"),
        _ => PossibleValue::new(name),
    }))
    .try_map(|name| name.parse::<LogLevel>())
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    Watch(WatchArgs),
    Workload(WorkloadArgs),
    Discover(DiscoverArgs),
    #[command(hide = true)]
    Generate(GenerateArgs),
}

/// Generate shell completions and man pages from these definitions (for packagers and
/// `make generate`).
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: GenerateWhat,
}

/// What `faro generate` writes.
#[derive(Debug, Subcommand)]
pub enum GenerateWhat {
    /// Print the completion script of a shell.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Write completions/ and man/ under a directory.
    All {
        /// Directory to write completions/ and man/ into.
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
}

/// Shells faro ships completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// bash (completions/faro.bash).
    Bash,
    /// zsh (completions/_faro).
    Zsh,
    /// fish (completions/faro.fish).
    Fish,
}

/// Watch resources and write one line per change: `faro watch pods,deploy -n prod -l app=web`.
///
/// Name resources as kubectl does (pods, po, deploy, deployments.apps, Deployment, a CRD's
/// plural, kind or short name; TYPE/NAME for one object), or give a YAML config listing GVRs
/// (v1/pods, apps/v1/deployments; CRDs included, even ones created later) with namespace, name
/// and label filters (see the README for every key); both together are a union. Exact names,
/// label and field selectors and exact namespaces are applied by the server; regex patterns by
/// faro. Each change of a matching object is printed once, in resourceVersion order, across
/// reconnects: after a gap faro relists and reports only what changed, including deletions.
#[derive(Debug, Args)]
#[command(after_long_help = WATCH_EXAMPLES)]
pub struct WatchArgs {
    /// Resources to watch: a name as kubectl takes it (pods, po, deploy.apps, Deployment),
    /// comma lists (pods,deploy), TYPE/NAME for one object (deploy/web), or a faro GVR
    /// (apps/v1/deployments).
    #[arg(value_name = "RESOURCE", add = clap_complete::engine::ArgValueCompleter::new(crate::cmd::complete::resources))]
    pub resources: Vec<String>,

    /// The YAML config file (its entries and the RESOURCE arguments are a union).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub select: SelectArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Which objects of the RESOURCE arguments are watched (a config file has its own keys).
#[derive(Debug, Args)]
#[command(next_help_heading = "Selection (of the RESOURCE arguments)")]
pub struct SelectArgs {
    /// Namespaces of the RESOURCE arguments: repeat the flag or give a comma list
    /// [default: the namespace of the kubeconfig context, as kubectl].
    #[arg(short = 'n', long, value_name = "NAMESPACE", value_delimiter = ',')]
    pub namespace: Vec<String>,

    /// Watch the RESOURCE arguments in every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,

    /// Label selector of the RESOURCE arguments, applied by the server (app=web,tier!=db,
    /// 'env in (a,b)').
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Field selector of the RESOURCE arguments, applied by the server
    /// (status.phase=Running, spec.nodeName=node-1; which fields depends on the resource).
    #[arg(long, value_name = "SELECTOR")]
    pub field_selector: Option<String>,

    /// Only objects whose name this regex (anchored) matches, applied by faro.
    #[arg(long, value_name = "REGEX")]
    pub name_pattern: Option<String>,

    /// Only objects with this label matching this regex (anchored): KEY=REGEX, applied by
    /// faro; repeat for several (all must hold).
    #[arg(long, value_name = "KEY=REGEX")]
    pub label_pattern: Vec<String>,
}

impl SelectArgs {
    /// The flags given, by name, for a message saying they need RESOURCE arguments.
    pub fn given(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.namespace.is_empty() {
            out.push("--namespace");
        }
        if self.all_namespaces {
            out.push("--all-namespaces");
        }
        if self.selector.is_some() {
            out.push("--selector");
        }
        if self.field_selector.is_some() {
            out.push("--field-selector");
        }
        if self.name_pattern.is_some() {
            out.push("--name-pattern");
        }
        if !self.label_pattern.is_empty() {
            out.push("--label-pattern");
        }
        out
    }
}

/// Detect workloads from namespace labels and watch their namespaces.
///
/// A namespace carrying the label -label with a value matching -pattern belongs to the
/// workload named by that value; -namespace-pattern's first capture group, applied to the
/// namespace name, is the workload id, and unlabelled namespaces whose name yields the id of a
/// detected workload join it. GVRs are decided in three tiers: -deniedgvrs are never watched,
/// -allowedgvrs are watched cluster-wide, -workloadgvrs in each workload namespace, from the
/// moment it joins until it leaves. Every event from a workload namespace carries workload_id
/// and workload_name.
#[derive(Debug, Args)]
#[command(after_long_help = WORKLOAD_EXAMPLES)]
pub struct WorkloadArgs {
    /// The namespace label marking a workload; its value is the workload name.
    #[arg(long, value_name = "KEY")]
    pub label: String,

    /// Regex (anchored) on label values: the workload names to follow.
    #[arg(long, value_name = "REGEX", default_value = ".*")]
    pub pattern: String,

    /// Regex (anchored) on namespace names; its first capture group is the workload id
    /// [default: the namespace name].
    #[arg(long, value_name = "REGEX", alias = "workload-id-pattern")]
    pub namespace_pattern: Option<String>,

    /// GVRs watched cluster-wide (comma-separated, e.g. v1/namespaces,v1/nodes).
    #[arg(long, value_name = "GVRS", value_delimiter = ',', value_parser = parse_gvr)]
    pub allowedgvrs: Vec<Gvr>,

    /// GVRs watched in each workload namespace (comma-separated, e.g. v1/pods,apps/v1/deployments).
    #[arg(long, value_name = "GVRS", value_delimiter = ',', value_parser = parse_gvr)]
    pub workloadgvrs: Vec<Gvr>,

    /// GVRs never watched, whatever the other lists say (comma-separated).
    #[arg(long, value_name = "GVRS", value_delimiter = ',', value_parser = parse_gvr)]
    pub deniedgvrs: Vec<Gvr>,

    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_gvr(text: &str) -> Result<Gvr, String> {
    text.trim().parse::<Gvr>().map_err(|e| e.to_string())
}

/// Output and lifetime options shared by `watch` and `workload`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Output and lifetime")]
pub struct OutputArgs {
    #[command(flatten)]
    pub monitor: MonitorArgs,

    #[command(flatten)]
    pub leader: LeaderArgs,

    /// Watch only shard i of N (0 <= i < N, e.g. 1/3): run N faros with 0/N ... N-1/N and
    /// together they write each event once. Namespaces are split by a hash (64-bit FNV-1a) of
    /// their name; cluster-scoped resources belong to shard 0. Cluster-wide watches ask the API
    /// server for the shard's namespaces (KEP-5866 shardSelector) when it supports that, else
    /// faro drops the other shards' objects itself.
    #[arg(long, value_name = "i/N", value_parser = parse_shard, help_heading = "Sharding")]
    pub shard: Option<faro::shard::Shard>,
    #[command(flatten)]
    pub nats: NatsArgs,

    /// Also write events to DIR/logs/events-YYYYMMDD-HHMMSS.json (mode 0600) and the log to
    /// DIR/logs/faro-YYYYMMDD-HHMMSS.log (overrides output_dir/json_export of the config).
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// Format of the lines on stdout [default: text on a terminal, json otherwise]; the
    /// events file is always JSON.
    #[arg(
        short = 'o',
        long = "output",
        visible_alias = "format",
        value_enum,
        value_name = "FORMAT"
    )]
    pub format: Option<EventFormat>,

    /// Add the full object to each event (Secret data and stringData values are redacted).
    #[arg(long)]
    pub include_object: bool,

    /// Add `diff` to every UPDATED event: the RFC 6902 operations (with the old values) from
    /// the version before. faro then keeps the last version of each object in memory, as
    /// compact JSON. Without it, only config entries with `diff: true` are diffed.
    #[arg(long)]
    pub diff: bool,

    /// Leave this JSON pointer out of diffs, e.g. /status or
    /// /metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration (repeatable;
    /// resourceVersion, managedFields and generation are always left out).
    #[arg(long, value_name = "POINTER", value_parser = parse_pointer)]
    pub diff_ignore: Vec<String>,

    /// Do not print the ADDED events of objects that exist at start-up: only what changes
    /// from now on.
    #[arg(long, visible_alias = "since-now")]
    pub no_initial: bool,

    /// Rotate the events file when it reaches SIZE (e.g. 100MiB, 500MB; at least 1MiB): the
    /// line that reaches it ends the file, and the next line starts a new
    /// events-YYYYMMDD-HHMMSS-NNN.json (overrides max_file_size of the config).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_file_size: Option<faro::config::ByteSize>,

    /// Keep only the newest N events files of this run when rotating; older ones are deleted
    /// (overrides max_files of the config).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_files: Option<u64>,

    /// Create this file once every initial listing is done (for scripts to wait on).
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,

    /// Stop gracefully after this long (e.g. 90s, 10m, 1h30m), overriding the config's
    /// auto_shutdown.
    #[arg(long, visible_alias = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub auto_shutdown: Option<std::time::Duration>,

    /// How long a graceful stop (signal, --auto-shutdown) may take to write out what faro
    /// holds; after that faro exits 1, saying how many events did not reach which output.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub shutdown_timeout: std::time::Duration,

    /// Save the watches' state here and resume from it at the next start: no listing and no
    /// initial events again, every change made while faro was down reported (deletions too).
    /// Overrides the config's state_file.
    #[arg(long, value_name = "PATH")]
    pub state_file: Option<PathBuf>,

    /// How often the state is saved when something changed (and once more at a graceful stop).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    pub checkpoint_interval: std::time::Duration,

    /// Start afresh: ignore the saved state (it is replaced at the first checkpoint).
    #[arg(long)]
    pub state_reset: bool,
}

/// Publishing to NATS JetStream, shared by `watch` and `workload` (see the README, "NATS
/// JetStream sink").
#[derive(Debug, Args)]
#[command(next_help_heading = "NATS JetStream")]
pub struct NatsArgs {
    /// Also publish every event to NATS JetStream: nats://HOST:PORT, tls://HOST:PORT (a comma
    /// list for a NATS cluster; user:password@ may be in the URL).
    ///
    /// Each event goes to the subject PREFIX.CLUSTER.GVR.NAMESPACE (tokens escaped, `_` for
    /// cluster-scoped objects) with the header Nats-Msg-Id: uid/resourceVersion/eventType, so
    /// that JetStream stores a repeated event once; its body is the event's JSON line. An
    /// event counts as written (for checkpoints) once JetStream has acknowledged it. While
    /// NATS is unreachable faro holds up to 1024 events, then the watches wait: nothing is
    /// dropped. stdout and --output-dir go on beside it.
    #[arg(long, value_name = "URL", value_parser = parse_nats_servers)]
    pub nats: Option<NatsServers>,

    /// Verify the NATS server's certificate with this CA file (PEM) instead of the system's
    /// roots (implies TLS).
    #[arg(long, value_name = "FILE", requires = "nats")]
    pub nats_ca: Option<PathBuf>,

    /// Present this client certificate (PEM) to the NATS server, with --nats-key (implies
    /// TLS).
    #[arg(long, value_name = "FILE", requires_all = ["nats", "nats_key"])]
    pub nats_cert: Option<PathBuf>,

    /// The key of --nats-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "nats_cert")]
    pub nats_key: Option<PathBuf>,

    /// Authenticate with this NATS credentials file (a user JWT and its NKey seed, as `nsc`
    /// writes them).
    #[arg(long, value_name = "FILE", requires = "nats")]
    pub nats_creds: Option<PathBuf>,

    /// The first tokens of every subject (one or more, separated by dots).
    #[arg(long, value_name = "PREFIX", default_value = "faro", requires = "nats", value_parser = parse_subject_prefix)]
    pub nats_subject_prefix: String,

    /// The cluster's token in the subjects [default: the kubeconfig context's cluster name;
    /// in a pod without a kubeconfig, `kubernetes`].
    #[arg(long, value_name = "NAME", requires = "nats", value_parser = parse_cluster_name)]
    pub cluster_name: Option<String>,

    /// The JetStream stream, created if missing with the subjects PREFIX.> (an existing one
    /// is used as it is, if its subjects take faro's).
    #[arg(long, value_name = "NAME", default_value = "FARO", requires = "nats", value_parser = parse_jetstream_name)]
    pub nats_stream: String,

    /// Copies of each message (and of the --state-kv bucket) in a JetStream cluster, when
    /// faro creates them.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "nats", value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_replicas: u8,

    /// How the stream keeps messages, when faro creates it.
    #[arg(
        long,
        value_enum,
        value_name = "POLICY",
        default_value = "limits",
        requires = "nats"
    )]
    pub nats_retention: RetentionChoice,

    /// How long the stream remembers message ids to drop repeats, when faro creates it: longer
    /// than a checkpoint interval plus a failover.
    #[arg(long, value_name = "DURATION", default_value = "2m", requires = "nats", value_parser = parse_positive_duration)]
    pub nats_duplicate_window: std::time::Duration,

    /// Remove messages older than this, when faro creates the stream [default: kept].
    #[arg(long, value_name = "DURATION", requires = "nats", value_parser = parse_positive_duration)]
    pub nats_max_age: Option<std::time::Duration>,

    /// Keep the checkpoint in this JetStream key-value bucket (BUCKET or BUCKET/KEY, key
    /// `state` by default; created if missing) instead of a file, so that any replica resumes
    /// it (with --leader-elect). Needs --nats.
    #[arg(long, value_name = "BUCKET[/KEY]", requires = "nats", conflicts_with = "state_file", value_parser = parse_state_kv)]
    pub state_kv: Option<String>,
}

/// `--nats`: the server URLs, checked.
#[derive(Debug, Clone)]
pub struct NatsServers(pub Vec<faro::nats::async_nats::ServerAddr>);

fn parse_nats_servers(text: &str) -> Result<NatsServers, String> {
    faro::nats::NatsOptions::parse_servers(text)
        .map(NatsServers)
        .map_err(|e| e.to_string())
}

fn parse_subject_prefix(text: &str) -> Result<String, String> {
    faro::nats::Subjects::new(text, "cluster")
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

fn parse_cluster_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("empty".into());
    }
    Ok(text.to_owned())
}

fn parse_jetstream_name(text: &str) -> Result<String, String> {
    faro::nats::check_name("stream", text)
        .map(|()| text.to_owned())
        .map_err(|e| e.to_string())
}

fn parse_state_kv(text: &str) -> Result<String, String> {
    faro::nats::check_bucket(text)
        .map(|()| text.to_owned())
        .map_err(|e| e.to_string())
}

fn parse_positive_duration(text: &str) -> Result<std::time::Duration, String> {
    let d = faro::config::parse_duration(text)?;
    if d.is_zero() {
        return Err("must be longer than 0".into());
    }
    Ok(d)
}

/// `--nats-retention`: JetStream's retention policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RetentionChoice {
    /// Kept until a limit (--nats-max-age): every consumer reads everything.
    Limits,
    /// Kept until every consumer that exists has acknowledged it.
    Interest,
    /// Kept until one consumer has acknowledged it (a work queue).
    Workqueue,
}

/// Leader election among replicas, shared by `watch` and `workload` (client-go's names and
/// defaults).
#[derive(Debug, Args)]
#[command(next_help_heading = "High availability")]
pub struct LeaderArgs {
    /// Run as one of several replicas: only the holder of a coordination.k8s.io/v1 Lease runs
    /// the watches; the others stand by and take over, from the shared checkpoint
    /// (--state-file), when it stops renewing. A leader that cannot renew stops its output and
    /// exits 1; on SIGTERM it releases the Lease at once.
    #[arg(long)]
    pub leader_elect: bool,

    /// The Lease's name.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "faro",
        requires = "leader_elect"
    )]
    pub lease_name: String,

    /// The Lease's namespace [default: the pod's (in-cluster), else the kubeconfig context's,
    /// else default].
    #[arg(long, value_name = "NAMESPACE", requires = "leader_elect")]
    pub lease_namespace: Option<String>,

    /// This replica's holderIdentity [default: the host name (the pod's name) and a random
    /// suffix].
    #[arg(long, value_name = "ID", requires = "leader_elect")]
    pub lease_identity: Option<String>,

    /// How long a Lease that is not renewed stays valid: a standby takes over after it.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "15s", requires = "leader_elect")]
    pub lease_duration: std::time::Duration,

    /// How long the leader keeps trying to renew before it stops its output (shorter than
    /// --lease-duration: the rest is the time it has to stop).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s", requires = "leader_elect")]
    pub lease_renew_deadline: std::time::Duration,

    /// How often the leader renews and the standbys read the Lease.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s", requires = "leader_elect")]
    pub lease_retry_period: std::time::Duration,
}

/// How faro reports on itself while it runs, shared by `watch` and `workload`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Monitoring")]
pub struct MonitorArgs {
    /// Serve /metrics (OpenMetrics, for Prometheus), /healthz and /readyz on HOST:PORT; a
    /// bare PORT (or :PORT) listens on 127.0.0.1 only; 0.0.0.0:PORT or [::]:PORT for every
    /// interface (in a pod, so that the kubelet and Prometheus can reach it).
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_metrics_addr)]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Re-establish a watch that delivers neither an event nor a bookmark for this long (from
    /// its last resourceVersion: nothing is lost); 0 turns stall detection off. The default is
    /// twice the interval at which kube-apiserver sends bookmarks.
    #[arg(long, value_name = "DURATION", value_parser = parse_stall_timeout, default_value = "2m")]
    pub stall_timeout: StallTimeout,
}

/// `--stall-timeout`: a duration, or off (`0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallTimeout(pub Option<std::time::Duration>);

fn parse_stall_timeout(text: &str) -> Result<StallTimeout, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(StallTimeout(None));
    }
    let d = faro::config::parse_duration(text)?;
    if d.is_zero() {
        Ok(StallTimeout(None))
    } else if d < std::time::Duration::from_secs(1) {
        Err(format!(
            "{text:?} is below the minimum of 1s (or 0 to turn it off)"
        ))
    } else {
        Ok(StallTimeout(Some(d)))
    }
}

fn parse_metrics_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    crate::cmd::monitor::parse_addr(text)
}

/// Formats of event lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventFormat {
    /// One JSON object per line (the wire format).
    Json,
    /// One aligned line per change for people: time, type, kind, namespace/name (coloured on a
    /// terminal unless NO_COLOR is set).
    Text,
    /// kind.group/name per change, as `kubectl get -o name` (pod/web-1, deployment.apps/web).
    Name,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    faro::config::parse_duration(text)
}

fn parse_shard(text: &str) -> Result<faro::shard::Shard, String> {
    text.parse()
        .map_err(|e: faro::shard::ShardError| e.to_string())
}

fn parse_size(text: &str) -> Result<faro::config::ByteSize, String> {
    text.parse()
}

fn parse_pointer(text: &str) -> Result<String, String> {
    faro::diff::DiffOptions::new()
        .ignore(text)
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

/// List the cluster's API resources (GVRs) and whether faro can watch them.
///
/// Like `kubectl api-resources`, made for automation: every served group-version and resource,
/// with kind, scope, verbs, short names and whether the version is the group's preferred one.
/// A table on a terminal, JSON lines otherwise (or with -o json), GVR strings with -o name.
#[derive(Debug, Args)]
#[command(after_long_help = DISCOVER_EXAMPLES)]
pub struct DiscoverArgs {
    /// Keep only resources faro can watch: verbs include list and watch, not a subresource,
    /// not componentstatuses, bindings or the metrics.k8s.io group.
    #[arg(long)]
    pub watchable: bool,

    /// Keep only resources of this API group ("" or "core" for the core group).
    #[arg(long, value_name = "GROUP")]
    pub api_group: Option<String>,

    /// Keep only namespaced (true) or cluster-scoped (false) resources.
    #[arg(long, value_name = "BOOL", num_args = 1, require_equals = false, action = clap::ArgAction::Set)]
    pub namespaced: Option<bool>,

    /// Output format [default: table on a terminal, json otherwise].
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<DiscoverOutput>,
}

/// Output formats of `faro discover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiscoverOutput {
    /// Aligned columns, like kubectl api-resources.
    Table,
    /// One JSON object per line.
    Json,
    /// GVR strings only (v1/pods, apps/v1/deployments), the syntax faro's configs use.
    Name,
}

/// Answers the shell when it asks for completions (`COMPLETE=bash faro -- …`; clap_complete's
/// dynamic completion), and exits; does nothing otherwise.
pub fn complete_if_asked() {
    clap_complete::CompleteEnv::with_factory(Cli::command).complete();
}

/// Parses the process arguments, accepting Go-style single-dash long flags.
pub fn parse() -> Cli {
    Cli::parse_from(normalize_args(std::env::args_os()))
}

/// Parses the given arguments (first one is the program name).
#[cfg(test)]
pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    Cli::try_parse_from(normalize_args(args))
}

/// Rewrites Go-style single-dash long flags (`-config x`, `-config=x`) to `--config`.
///
/// A single-dash word is treated as a long flag only when it exactly names a long flag (or long
/// alias) of the command in scope: the root command until a subcommand name is seen, then that
/// subcommand (global flags included). So short flags such as `-v` or `-vv`, negative numbers and
/// unknown words (`-foo`, left for clap to reject) are untouched. Values of flags that take one
/// are skipped, so `--context -label` keeps `-label` as the context name. Everything after `--`
/// is left alone.
pub fn normalize_args<I, T>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut root = Cli::command();
    root.build();
    let mut scope = &root;
    let mut out = Vec::new();
    let mut iter = args.into_iter().map(Into::into);
    if let Some(program) = iter.next() {
        out.push(program);
    }
    let mut skip_value = false;
    let mut rest_verbatim = false;
    for arg in iter {
        if rest_verbatim || skip_value {
            skip_value = false;
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            rest_verbatim = true;
            out.push(arg);
            continue;
        }
        let long = if let Some(rest) = text.strip_prefix("--") {
            Some(rest)
        } else if let Some(rest) = text.strip_prefix('-') {
            let name = rest.split('=').next().unwrap_or(rest);
            // A long flag with one dash; or a word that cannot be short flags (its first letter
            // is none), which clap should report whole (`--bogus`), not as `-b`.
            let not_short = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() && find_short(scope, c).is_none());
            (name.len() > 1 && (find_long(scope, name).is_some() || not_short)).then_some(rest)
        } else {
            None
        };
        match long {
            Some(rest) => {
                let (name, inline_value) = match rest.split_once('=') {
                    Some((name, _)) => (name, true),
                    None => (rest, false),
                };
                if let Some(arg_def) = find_long(scope, name) {
                    skip_value = !inline_value && arg_def.get_action().takes_values();
                }
                out.push(OsString::from(format!("--{rest}")));
            }
            None => {
                if !text.starts_with('-')
                    && let Some(sub) = scope.find_subcommand(text)
                {
                    scope = sub;
                }
                out.push(arg);
            }
        }
    }
    out
}

fn find_short(cmd: &clap::Command, c: char) -> Option<&clap::Arg> {
    cmd.get_arguments().find(|a| {
        a.get_short() == Some(c)
            || a.get_short_and_visible_aliases()
                .is_some_and(|aliases| aliases.contains(&c))
    })
}

fn find_long<'a>(cmd: &'a clap::Command, name: &str) -> Option<&'a clap::Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(name)
            || a.get_all_aliases()
                .is_some_and(|aliases| aliases.contains(&name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize_args(std::iter::once("faro").chain(args.iter().copied()))
            .into_iter()
            .skip(1)
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn single_dash_long_flag_with_separate_value_becomes_double_dash() {
        assert_eq!(
            norm(&["-kubeconfig", "k", "discover"]),
            ["--kubeconfig", "k", "discover"]
        );
    }

    #[test]
    fn single_dash_long_flag_with_inline_value_becomes_double_dash() {
        assert_eq!(
            norm(&["discover", "-api-group=apps"]),
            ["discover", "--api-group=apps"]
        );
    }

    #[test]
    fn double_dash_flags_are_unchanged() {
        assert_eq!(
            norm(&["--context", "c", "discover", "--watchable"]),
            ["--context", "c", "discover", "--watchable"]
        );
    }

    #[test]
    fn short_flags_stay_short() {
        assert_eq!(norm(&["-v", "discover", "-q"]), ["-v", "discover", "-q"]);
        assert_eq!(norm(&["-vv", "discover"]), ["-vv", "discover"]);
        assert_eq!(
            norm(&["discover", "-o", "json"]),
            ["discover", "-o", "json"]
        );
    }

    #[test]
    fn unknown_single_dash_word_is_reported_whole_by_clap() {
        assert_eq!(norm(&["discover", "-foo"]), ["discover", "--foo"]);
        let err = try_parse_from(["faro", "discover", "-foo"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("'--foo'"), "{err}");
        // A word that starts with a short flag stays short flags (`-vv`, `-ojson`).
        assert_eq!(norm(&["discover", "-ojson"]), ["discover", "-ojson"]);
        assert_eq!(norm(&["-vv", "discover"]), ["-vv", "discover"]);
    }

    #[test]
    fn flags_of_a_subcommand_are_only_known_after_it() {
        // Before `discover`, -watchable is no flag of the root: reported whole, as unknown.
        let err = try_parse_from(["faro", "-watchable", "discover"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("'--watchable'"), "{err}");
        let cli = try_parse_from(["faro", "discover", "-watchable"]).unwrap();
        assert!(matches!(cli.command, Command::Discover(d) if d.watchable));
    }

    #[test]
    fn value_of_a_flag_is_never_rewritten() {
        assert_eq!(
            norm(&["--context", "-watchable", "discover"]),
            ["--context", "-watchable", "discover"]
        );
        assert_eq!(
            norm(&["-context", "-watchable", "discover"]),
            ["--context", "-watchable", "discover"]
        );
    }

    #[test]
    fn everything_after_double_dash_is_verbatim() {
        assert_eq!(
            norm(&["discover", "--", "-watchable"]),
            ["discover", "--", "-watchable"]
        );
    }

    #[test]
    fn global_flags_work_with_single_dash_after_the_subcommand() {
        let cli =
            try_parse_from(["faro", "discover", "-log-level", "debug", "-watchable"]).unwrap();
        assert_eq!(cli.global.log_level, Some(LogLevel::Debug));
        let Command::Discover(args) = cli.command else {
            panic!("discover expected");
        };
        assert!(args.watchable);
    }

    #[test]
    fn go_style_watch_flags_parse() {
        for args in [
            &["faro", "watch", "-config", "c.yaml", "-auto-shutdown", "5s"][..],
            &["faro", "watch", "-config=c.yaml", "-auto-shutdown=5s"][..],
            &[
                "faro",
                "watch",
                "--config",
                "c.yaml",
                "--auto-shutdown",
                "5s",
            ][..],
            &["faro", "watch", "--config=c.yaml", "--auto-shutdown=5s"][..],
        ] {
            let cli = try_parse_from(args.iter().copied()).unwrap();
            let Command::Watch(w) = cli.command else {
                panic!("watch expected");
            };
            assert_eq!(w.config, Some(PathBuf::from("c.yaml")), "{args:?}");
            assert_eq!(
                w.output.auto_shutdown,
                Some(std::time::Duration::from_secs(5))
            );
        }
    }

    #[test]
    fn go_style_workload_flags_parse_with_comma_lists() {
        let cli = try_parse_from([
            "faro",
            "workload",
            "-label",
            "team",
            "-workload-id-pattern",
            "ns-(.+)",
            "-workloadgvrs",
            "v1/pods,apps/v1/deployments",
            "-deniedgvrs=v1/secrets",
            "--allowedgvrs",
            "v1/namespaces",
        ])
        .unwrap();
        let Command::Workload(w) = cli.command else {
            panic!("workload expected");
        };
        assert_eq!(w.label, "team");
        assert_eq!(w.namespace_pattern.as_deref(), Some("ns-(.+)"));
        assert_eq!(w.workloadgvrs.len(), 2);
        assert_eq!(w.deniedgvrs[0].to_string(), "v1/secrets");
        assert_eq!(w.allowedgvrs[0].to_string(), "v1/namespaces");
        assert_eq!(w.pattern, ".*");
    }

    #[test]
    fn malformed_gvr_lists_are_usage_errors() {
        for list in ["pods", "v1/pods,,v1/secrets", "v1/pods,", "apps/v1"] {
            let err = try_parse_from(["faro", "workload", "-label", "x", "-workloadgvrs", list])
                .unwrap_err();
            assert_eq!(err.exit_code(), 2, "{list}");
        }
    }

    #[test]
    fn bad_durations_are_usage_errors() {
        let err = try_parse_from(["faro", "watch", "--config", "c", "--auto-shutdown", "soon"])
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn namespaced_takes_an_explicit_boolean() {
        let cli = try_parse_from(["faro", "discover", "-namespaced=false"]).unwrap();
        let Command::Discover(args) = cli.command else {
            panic!("discover expected");
        };
        assert_eq!(args.namespaced, Some(false));
        assert!(try_parse_from(["faro", "discover", "--namespaced=maybe"]).is_err());
    }
}
