//! The three GVR tiers of workload watching, decided in a fixed order where the first tier that
//! names a GVR wins: **denied** (never watched, whatever else says), **allowed** (watched
//! cluster-wide), **workload** (watched namespace-scoped in each workload namespace). Pure; no
//! I/O.
//!
//! `v1/namespaces` is always watched for detection; its events are emitted only if a tier asks
//! for them (allowed: all namespaces; workload: workload namespaces only).

use crate::gvr::Gvr;

/// Tiers that contradict each other. Not retryable: the lists must change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A GVR is both allowed and denied.
    #[error("{0} is both allowed and denied")]
    AllowedAndDenied(Gvr),
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A tier of the GVR filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Watched cluster-wide (the Go tool's `-allowedgvrs`).
    Allowed,
    /// Watched namespace-scoped in workload namespaces (`-workloadgvrs`).
    Workload,
    /// Never watched (`-deniedgvrs`).
    Denied,
}

/// Which tier and entry decided, for logs and explanations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The deciding tier.
    pub tier: Tier,
    /// The entry of that tier that matched.
    pub entry: Gvr,
}

/// The three-tier decision for one GVR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Watch cluster-wide.
    ClusterWide(Rule),
    /// Watch in each workload namespace.
    WorkloadNamespaces(Rule),
    /// Never watch.
    Never(Rule),
    /// No tier names it: not watched.
    NoOpinion,
}

/// The allowed, workload and denied tiers.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use faro::tiers::{Decision, Tiers};
/// let tiers = Tiers::new(
///     vec!["v1/namespaces".parse()?],
///     vec!["v1/pods".parse()?, "v1/secrets".parse()?],
///     vec!["v1/secrets".parse()?],
/// )?;
/// assert!(matches!(tiers.decide(&"v1/secrets".parse()?), Decision::Never(_)));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Tiers {
    allowed: Vec<Gvr>,
    workload: Vec<Gvr>,
    denied: Vec<Gvr>,
}

impl Tiers {
    /// Builds the tiers; a GVR both allowed and denied is an error (which one was meant?).
    pub fn new(allowed: Vec<Gvr>, workload: Vec<Gvr>, denied: Vec<Gvr>) -> Result<Tiers> {
        if let Some(both) = allowed.iter().find(|g| denied.contains(g)) {
            return Err(Error::AllowedAndDenied(both.clone()));
        }
        Ok(Tiers {
            allowed,
            workload,
            denied,
        })
    }

    /// Decides for one GVR: denied, then allowed, then workload.
    pub fn decide(&self, gvr: &Gvr) -> Decision {
        let rule = |tier, entry: &Gvr| Rule {
            tier,
            entry: entry.clone(),
        };
        if let Some(e) = self.denied.iter().find(|e| *e == gvr) {
            return Decision::Never(rule(Tier::Denied, e));
        }
        if let Some(e) = self.allowed.iter().find(|e| *e == gvr) {
            return Decision::ClusterWide(rule(Tier::Allowed, e));
        }
        if let Some(e) = self.workload.iter().find(|e| *e == gvr) {
            return Decision::WorkloadNamespaces(rule(Tier::Workload, e));
        }
        Decision::NoOpinion
    }

    /// Every GVR named by the allowed or workload tiers, once, in the order given.
    pub fn named(&self) -> Vec<Gvr> {
        let mut out: Vec<Gvr> = Vec::new();
        for g in self.allowed.iter().chain(&self.workload) {
            if !out.contains(g) {
                out.push(g.clone());
            }
        }
        out
    }

    /// The GVRs of the denied tier.
    pub fn denied(&self) -> &[Gvr] {
        &self.denied
    }

    /// Whether no tier would have anything watched.
    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty() && self.workload.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> Gvr {
        s.parse().unwrap()
    }

    #[test]
    fn denied_beats_allowed_and_workload() {
        let tiers = Tiers::new(
            vec![g("v1/namespaces"), g("v1/configmaps")],
            vec![g("v1/pods"), g("coordination.k8s.io/v1/leases")],
            vec![g("coordination.k8s.io/v1/leases")],
        )
        .unwrap();
        assert!(matches!(
            tiers.decide(&g("v1/configmaps")),
            Decision::ClusterWide(_)
        ));
        assert!(matches!(
            tiers.decide(&g("v1/pods")),
            Decision::WorkloadNamespaces(_)
        ));
        let Decision::Never(rule) = tiers.decide(&g("coordination.k8s.io/v1/leases")) else {
            panic!("denied must win");
        };
        assert_eq!(rule.tier, Tier::Denied);
        assert_eq!(tiers.decide(&g("v1/secrets")), Decision::NoOpinion);
    }

    #[test]
    fn allowed_and_denied_at_once_is_an_error() {
        let err = Tiers::new(vec![g("v1/pods")], vec![], vec![g("v1/pods")]).unwrap_err();
        assert_eq!(err, Error::AllowedAndDenied(g("v1/pods")));
    }

    #[test]
    fn allowed_wins_over_workload() {
        let tiers = Tiers::new(vec![g("v1/pods")], vec![g("v1/pods")], vec![]).unwrap();
        assert!(matches!(
            tiers.decide(&g("v1/pods")),
            Decision::ClusterWide(_)
        ));
        assert_eq!(tiers.named(), vec![g("v1/pods")]);
    }
}
