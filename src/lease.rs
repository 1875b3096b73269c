//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection`
//! package does it: replicas of one Deployment agree on one that runs the watches.
//!
//! # The protocol (client-go's `tryAcquireOrRenew`)
//! Every [retry period](LeaseConfig::retry_period) a replica reads the Lease:
//! - absent: it creates it, holding it (`holderIdentity` = its identity, `acquireTime` and
//!   `renewTime` now, `leaseTransitions` 0);
//! - held by another replica whose record (holder, renewTime, …) has changed within the last
//!   [lease duration](LeaseConfig::duration), as measured **by this replica's clock** from when
//!   it saw the change: it waits (a standby);
//! - free (empty `holderIdentity`, as after a [release](LeaderElection::release)), held by
//!   itself, or expired (unchanged for a lease duration): it replaces the Lease with its own
//!   record, giving the `resourceVersion` it read, so that of two replicas racing for it the
//!   server takes one and answers the other `409 Conflict` (that one waits and reads again).
//!   Taking it over from another holder sets `acquireTime` and adds one to `leaseTransitions`.
//!
//! Expiry is judged from when a replica *observed* the last change, not from the `renewTime`
//! written in the Lease: clocks of different nodes may disagree, the rate at which each one's
//! monotonic clock runs hardly does. The price: a replica started while a dead leader's Lease
//! is still there waits one full lease duration before taking it.
//!
//! # Fencing
//! The leader renews every retry period. When no renewal has succeeded for the
//! [renew deadline](LeaseConfig::renew_deadline), counted from the start of the last
//! successful one, [`LeaderElection::renew_until_lost`] returns: the caller must stop its
//! output. A standby takes over no earlier than one lease duration after it saw that last
//! renewal, itself later than its start, so the old leader has `duration - renew_deadline`
//! (5 s with the defaults) to stop; [`LeaderElection::fence_deadline`] is the instant by which
//! it must have stopped (faro exits at once if its drain is not done by then). What remains is
//! the fencing window: a clock running fast or slow over those seconds (client-go's
//! assumption: rates agree within a small fraction), and writes already in flight to a sink
//! (a line in a pipe, a message on its way). A sink that de-duplicates by message id (NATS
//! JetStream with `Nats-Msg-Id: uid/resourceVersion/type`) closes the window: an event the old
//! leader wrote late and the new one writes again is stored once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::time::Instant;

/// client-go's `LeaseDuration` default.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(15);
/// client-go's `RenewDeadline` default.
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// client-go's `RetryPeriod` default.
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Errors of the election. A failed request while waiting or renewing is not one: it is logged
/// and retried (renewing, until the renew deadline).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The timings cannot fence: the renew deadline must be shorter than the lease duration
    /// and longer than the retry period (client-go's checks).
    #[error(
        "lease timings: {0} (needed: retry period < renew deadline < lease duration, as client-go)"
    )]
    Timings(String),
    /// Releasing the Lease failed (the standby takes over when it expires instead).
    #[error("releasing the Lease: {0}")]
    Release(#[source] kube::Error),
}

/// `Result` of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which Lease, who asks, and the timings (client-go's names and defaults).
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// The Lease's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// This replica's `holderIdentity`: unique among the replicas.
    pub identity: String,
    /// How long a Lease not renewed stays valid (`leaseDurationSeconds`, whole seconds on the
    /// wire, rounded up; the local timings use the exact value).
    pub duration: Duration,
    /// How long the leader keeps trying to renew before it gives up and stops.
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby reads the Lease.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// A config with client-go's default timings (15 s, 10 s, 2 s).
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        identity: impl Into<String>,
    ) -> LeaseConfig {
        LeaseConfig {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            duration: DEFAULT_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
        }
    }

    /// Checks that the timings can fence (client-go's `NewLeaderElector` checks).
    pub fn check(&self) -> Result<()> {
        let show = humantime::format_duration;
        if self.retry_period.is_zero() {
            return Err(Error::Timings("the retry period is zero".into()));
        }
        if self.renew_deadline >= self.duration {
            return Err(Error::Timings(format!(
                "the renew deadline ({}) is not shorter than the lease duration ({})",
                show(self.renew_deadline),
                show(self.duration)
            )));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(Error::Timings(format!(
                "the retry period ({}) is not shorter than the renew deadline ({})",
                show(self.retry_period),
                show(self.renew_deadline)
            )));
        }
        Ok(())
    }

    fn duration_seconds(&self) -> i32 {
        let secs = self.duration.as_secs() + u64::from(self.duration.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX)
    }
}

/// A default identity: the host name (a pod's name) and a random suffix, as client-go's users
/// write `hostname + "_" + uuid`.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "faro".to_owned());
    format!("{host}_{:08x}", random_u32())
}

/// A random number from std's randomly seeded hasher (no RNG crate needed for a name).
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() as u32
}

/// Why the leader stopped leading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// No renewal succeeded within the renew deadline (the server unreachable, or refusing).
    RenewDeadline {
        /// The last failure.
        last_error: String,
    },
    /// The Lease names another holder: it was taken over.
    TakenBy(String),
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::RenewDeadline { last_error } => {
                write!(f, "no renewal within the renew deadline ({last_error})")
            }
            Lost::TakenBy(holder) => write!(f, "the Lease is now held by {holder}"),
        }
    }
}

/// One replica's side of the election.
pub struct LeaderElection {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The spec last read and when it was seen to change (client-go's `observedRecord`,
    /// `observedTime`).
    observed: Option<(LeaseSpec, Instant)>,
    /// Start of the last successful acquire or renew.
    renewed: Option<Instant>,
}

/// The outcome of one attempt.
enum Attempt {
    /// This replica holds the Lease now.
    Held,
    /// Another does (its identity).
    Other(String),
    /// The request failed or lost a race (the message).
    Failed(String),
}

impl LeaderElection {
    /// The election for `config` (check it with [`LeaseConfig::check`]).
    pub fn new(client: kube::Client, config: LeaseConfig) -> LeaderElection {
        LeaderElection {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            renewed: None,
        }
    }

    /// The config.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// Waits until this replica holds the Lease, reading it every retry period. Cancel-safe.
    pub async fn acquire(&mut self) {
        let mut waiting_for: Option<String> = None;
        loop {
            let start = Instant::now();
            match self.try_acquire_or_renew().await {
                Attempt::Held => {
                    tracing::info!(
                        "leader election: acquired Lease {}/{} as {}",
                        self.config.namespace,
                        self.config.name,
                        self.config.identity
                    );
                    return;
                }
                Attempt::Other(holder) => {
                    if waiting_for.as_deref() != Some(&holder) {
                        tracing::info!(
                            "leader election: standing by, Lease {}/{} is held by {holder}",
                            self.config.namespace,
                            self.config.name
                        );
                        waiting_for = Some(holder);
                    }
                }
                Attempt::Failed(e) => {
                    tracing::debug!("leader election: cannot acquire the Lease now: {e}")
                }
            }
            tokio::time::sleep_until(start + self.config.retry_period).await;
        }
    }

    /// Renews the held Lease every retry period until leadership is lost; returns why. Until it
    /// returns this replica may act as leader; after, it must stop by
    /// [`fence_deadline`](Self::fence_deadline). Not cancel-safe only in that a renewal in
    /// flight may still land.
    pub async fn renew_until_lost(&mut self) -> Lost {
        let mut last_error = String::from("none");
        loop {
            let renewed = self.renewed.unwrap_or_else(Instant::now);
            let give_up = renewed + self.config.renew_deadline;
            let next = Instant::now().max(renewed + self.config.retry_period);
            tokio::time::sleep_until(next.min(give_up)).await;
            loop {
                if Instant::now() >= give_up {
                    return Lost::RenewDeadline { last_error };
                }
                let start = Instant::now();
                match tokio::time::timeout_at(give_up, self.try_acquire_or_renew()).await {
                    Ok(Attempt::Held) => break,
                    Ok(Attempt::Other(holder)) => return Lost::TakenBy(holder),
                    Ok(Attempt::Failed(e)) => {
                        tracing::warn!("leader election: renewing the Lease failed: {e}");
                        last_error = e;
                    }
                    Err(_) => {
                        last_error = "the renewal did not finish in time".into();
                    }
                }
                tokio::time::sleep_until((start + self.config.retry_period).min(give_up)).await;
            }
        }
    }

    /// The instant by which a leader that lost the Lease must have stopped: one lease duration
    /// after the start of its last successful renewal, the earliest a standby may take over.
    pub fn fence_deadline(&self) -> Instant {
        self.renewed.unwrap_or_else(Instant::now) + self.config.duration
    }

    /// Gives the Lease up at once (client-go's `ReleaseOnCancel`): an empty `holderIdentity`,
    /// so that a standby takes it at its next read instead of after the lease duration. Does
    /// nothing unless this replica holds it.
    pub async fn release(&mut self) -> Result<()> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(Error::Release)?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(&self.config.identity) {
            return Ok(());
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        self.api
            .replace(&self.config.name, &self.post_params(), &lease)
            .await
            .map_err(Error::Release)?;
        self.renewed = None;
        tracing::info!(
            "leader election: released Lease {}/{}",
            self.config.namespace,
            self.config.name
        );
        Ok(())
    }

    /// One round of client-go's `tryAcquireOrRenew`.
    async fn try_acquire_or_renew(&mut self) -> Attempt {
        let start = Instant::now();
        let now = MicroTime(Timestamp::now());
        let mine = |transitions: i32, acquired: MicroTime| LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.duration_seconds()),
            acquire_time: Some(acquired),
            renew_time: Some(now.clone()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        };
        let current = match self.api.get_opt(&self.config.name).await {
            Ok(current) => current,
            Err(e) => return Attempt::Failed(e.to_string()),
        };
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(mine(0, now.clone())),
            };
            return match self.api.create(&self.post_params(), &lease).await {
                Ok(created) => {
                    self.observe(created.spec.unwrap_or_default(), start);
                    self.renewed = Some(start);
                    Attempt::Held
                }
                Err(e) => Attempt::Failed(e.to_string()),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let changed = self.observed.as_ref().is_none_or(|(seen, _)| *seen != spec);
        if changed {
            self.observed = Some((spec.clone(), start));
        }
        let observed_at = self.observed.as_ref().map_or(start, |(_, at)| *at);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let is_mine = holder == self.config.identity;
        let valid_for = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
        );
        if !holder.is_empty() && !is_mine && observed_at + valid_for > start {
            return Attempt::Other(holder);
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        let new_spec = if is_mine {
            mine(
                transitions,
                spec.acquire_time.clone().unwrap_or(now.clone()),
            )
        } else {
            mine(transitions.saturating_add(1), now.clone())
        };
        lease.spec = Some(new_spec);
        // The resourceVersion read above travels in the metadata: optimistic concurrency.
        match self
            .api
            .replace(&self.config.name, &self.post_params(), &lease)
            .await
        {
            Ok(replaced) => {
                if !is_mine && !holder.is_empty() {
                    tracing::info!("leader election: took the Lease over from {holder}");
                }
                self.observe(replaced.spec.unwrap_or_default(), start);
                self.renewed = Some(start);
                Attempt::Held
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                Attempt::Failed(format!("409 Conflict: {}", status.message))
            }
            Err(e) => Attempt::Failed(e.to_string()),
        }
    }

    /// Writes name the replica as their field manager (`faro-<identity>`, at most the 128
    /// characters a server takes): the Lease's managedFields say which replica wrote last.
    fn post_params(&self) -> PostParams {
        let manager: String = format!("faro-{}", self.config.identity)
            .chars()
            .take(128)
            .collect();
        PostParams {
            field_manager: Some(manager),
            ..PostParams::default()
        }
    }

    fn observe(&mut self, spec: LeaseSpec, at: Instant) {
        self.observed = Some((spec, at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_must_fence() {
        let mut c = LeaseConfig::new("faro", "default", "me");
        assert!(c.check().is_ok());
        c.renew_deadline = c.duration;
        assert!(c.check().is_err());
        c.renew_deadline = Duration::from_secs(2);
        c.retry_period = Duration::from_secs(2);
        assert!(c.check().is_err());
        c.retry_period = Duration::ZERO;
        assert!(c.check().is_err());
    }

    #[test]
    fn lease_duration_rounds_up_to_whole_seconds() {
        let mut c = LeaseConfig::new("faro", "default", "me");
        c.duration = Duration::from_millis(2500);
        assert_eq!(c.duration_seconds(), 3);
        c.duration = Duration::from_secs(15);
        assert_eq!(c.duration_seconds(), 15);
    }

    #[test]
    fn default_identities_differ() {
        assert_ne!(default_identity(), default_identity());
    }
}
