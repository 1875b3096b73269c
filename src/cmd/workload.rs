//! `faro workload`: detect workloads from namespace labels and watch their namespaces.

use std::sync::{Arc, RwLock};

use crate::cli::WorkloadArgs;
use crate::cmd::session::{self, Output};
use crate::exit::{Status, UsageError};
use crate::filter::{Mode, Planner, Tiers};
use crate::kubeclient::ClusterOptions;
use crate::logging::{self, LogLevelChoice};
use crate::selector;
use crate::workload::{Detector, Membership};

/// Validates the flags, discovers the cluster and runs the session.
pub fn run(
    args: WorkloadArgs,
    cluster: &ClusterOptions,
    level: LogLevelChoice,
) -> anyhow::Result<Status> {
    selector::validate_key(&args.label).map_err(|e| UsageError(format!("-label: {e}")))?;
    let pattern = selector::anchored_regex(&args.pattern)
        .map_err(|e| UsageError(format!("-pattern: {e}")))?;
    let id_pattern = args
        .namespace_pattern
        .as_deref()
        .map(selector::anchored_regex)
        .transpose()
        .map_err(|e| UsageError(format!("-namespace-pattern: {e}")))?;
    let tiers = Tiers::new(
        args.allowedgvrs.clone(),
        args.workloadgvrs.clone(),
        args.deniedgvrs.clone(),
    )
    .map_err(UsageError)?;
    if args.workloadgvrs.is_empty() && args.allowedgvrs.is_empty() {
        return crate::exit::usage(
            "nothing to watch: give -workloadgvrs (per workload namespace) and/or -allowedgvrs (cluster-wide)",
        );
    }
    let output = Output::resolve(&args.output, None, false)?;
    logging::init(
        level.resolve(None),
        output.files.as_ref().map(|f| f.log.as_path()),
    )?;
    for gvr in tiers.named() {
        tracing::info!("{gvr}: {}", tiers.decide(&gvr));
    }
    for gvr in &args.deniedgvrs {
        tracing::info!("{gvr}: {}", tiers.decide(gvr));
    }
    let membership = Arc::new(RwLock::new(Membership::new(Detector {
        label: args.label.clone(),
        pattern,
        id_pattern,
    })));
    let auto_shutdown = args.output.auto_shutdown;
    session::start(
        cluster,
        output,
        auto_shutdown,
        Some(membership.clone()),
        |_| Ok(Planner::new(Mode::Workload { tiers, membership })),
    )
}
