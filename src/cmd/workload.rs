//! `faro workload`: detect workloads from namespace labels and watch their namespaces.

use faro::client::ClusterOptions;
use faro::tiers::{Decision, Tier, Tiers};
use faro::workload::{self, Detector};
use faro::{Gvr, Watcher};

use crate::cli::WorkloadArgs;
use crate::cmd::session::{self, Settings};
use crate::exit::{Status, UsageError};
use crate::logging::{self, LogLevelChoice};

/// Validates the flags, then runs the session.
pub fn run(
    args: WorkloadArgs,
    cluster: &ClusterOptions,
    level: LogLevelChoice,
) -> anyhow::Result<Status> {
    let detector = detector(&args)?;
    let tiers = Tiers::new(
        args.allowedgvrs.clone(),
        args.workloadgvrs.clone(),
        args.deniedgvrs.clone(),
    )
    .map_err(|faro::tiers::Error::AllowedAndDenied(gvr)| {
        UsageError(format!(
            "{gvr} is in both -allowedgvrs and -deniedgvrs; remove it from one of them"
        ))
    })?;
    if tiers.is_empty() {
        return crate::exit::usage(
            "nothing to watch: give -workloadgvrs (per workload namespace) and/or -allowedgvrs (cluster-wide)",
        );
    }
    let settings = Settings::resolve(&args.output, &Default::default())?;
    logging::init(level.resolve(None), settings.log_file.clone())?;
    for gvr in tiers.named().iter().chain(tiers.denied()) {
        tracing::info!("{gvr}: {}", describe(&tiers.decide(gvr)));
    }
    session::run(cluster, settings, |cluster| async move {
        Ok(Watcher::workload(cluster.client, detector, tiers))
    })
}

/// The detector the flags describe; a bad value names its flag.
fn detector(args: &WorkloadArgs) -> anyhow::Result<Detector> {
    let flag = |e: workload::Error| match e {
        workload::Error::Label { message, .. } => UsageError(format!("-label: {message}")),
        workload::Error::Pattern {
            which: "pattern",
            message,
        } => UsageError(format!("-pattern: {message}")),
        workload::Error::Pattern { message, .. } => {
            UsageError(format!("-namespace-pattern: {message}"))
        }
    };
    let mut detector = Detector::new(&args.label)
        .and_then(|d| d.pattern(&args.pattern))
        .map_err(flag)?;
    if let Some(id_pattern) = &args.namespace_pattern {
        detector = detector.id_pattern(id_pattern).map_err(flag)?;
    }
    Ok(detector)
}

/// A tier decision as the log says it, in the flags' words.
fn describe(decision: &Decision) -> String {
    let flag = |tier: Tier, entry: &Gvr| {
        let flag = match tier {
            Tier::Allowed => "-allowedgvrs",
            Tier::Workload => "-workloadgvrs",
            Tier::Denied => "-deniedgvrs",
        };
        format!("{flag} {entry}")
    };
    match decision {
        Decision::ClusterWide(r) => format!("watched cluster-wide ({})", flag(r.tier, &r.entry)),
        Decision::WorkloadNamespaces(r) => {
            format!(
                "watched in workload namespaces ({})",
                flag(r.tier, &r.entry)
            )
        }
        Decision::Never(r) => format!("never watched ({})", flag(r.tier, &r.entry)),
        Decision::NoOpinion => "not named by any tier".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_described_with_the_flag_that_made_them() {
        let g = |s: &str| s.parse::<Gvr>().unwrap();
        let tiers = Tiers::new(vec![], vec![g("v1/pods")], vec![g("v1/secrets")]).unwrap();
        assert_eq!(
            describe(&tiers.decide(&g("v1/pods"))),
            "watched in workload namespaces (-workloadgvrs v1/pods)"
        );
        assert_eq!(
            describe(&tiers.decide(&g("v1/secrets"))),
            "never watched (-deniedgvrs v1/secrets)"
        );
    }
}
