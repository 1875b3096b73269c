//! Random write load for the admin API (`/_sim/churn`): creates, updates (data, sometimes
//! labels) and deletes spread over namespaces, optionally paced to a rate, seeded for
//! reproducibility, run in the background or awaited.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::bulk::{MANAGER, ensure_namespace, resource_of};
use crate::managed_fields::{Manage, Writer};
use crate::object::{random_u64, rfc3339_nanos};
use crate::query::Query;
use crate::registry::ResourceInfo;
use crate::sim::Sim;

/// Progress of the latest churn job (`GET /_sim/churn`).
#[derive(Debug, Clone, Default)]
pub struct ChurnStatus {
    /// Whether a job is running.
    pub running: bool,
    /// Operations asked for.
    pub requested: u64,
    /// Operations done.
    pub done: u64,
    /// Creates.
    pub created: u64,
    /// Updates.
    pub updated: u64,
    /// Deletes.
    pub deleted: u64,
    /// RV after the last operation.
    pub last_rv: u64,
    /// Start time.
    pub started: Option<SystemTime>,
    /// End time.
    pub finished: Option<SystemTime>,
}

impl ChurnStatus {
    /// As JSON.
    pub fn to_value(&self) -> Value {
        json!({
            "running": self.running,
            "requested": self.requested,
            "done": self.done,
            "created": self.created,
            "updated": self.updated,
            "deleted": self.deleted,
            "resourceVersion": self.last_rv.to_string(),
            "started": self.started.map(rfc3339_nanos),
            "finished": self.finished.map(rfc3339_nanos),
        })
    }
}

/// xorshift64*: small, seedable, good enough for picking operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A validated churn job.
pub struct Job {
    info: Arc<ResourceInfo>,
    namespaces: Vec<String>,
    count: u64,
    rate: f64,
    seed: u64,
}

/// Parses and prepares a job (creating its namespaces).
pub fn prepare(sim: &Sim, q: &Query) -> Result<Job, String> {
    let info = resource_of(sim, q)?;
    let namespaces: Vec<String> = q
        .non_empty("namespace")
        .unwrap_or("default")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if info.namespaced {
        for ns in &namespaces {
            ensure_namespace(sim, ns)?;
        }
    }
    Ok(Job {
        info,
        namespaces,
        count: q.number("count")?.unwrap_or(100),
        rate: q.number("rate")?.unwrap_or(0.0),
        seed: q.number("seed")?.unwrap_or_else(random_u64) | 1,
    })
}

/// Runs a job to completion, updating `sim.churn`.
pub async fn run(sim: Arc<Sim>, job: Job) -> Value {
    *sim.churn.lock() = ChurnStatus {
        running: true,
        requested: job.count,
        started: Some(SystemTime::now()),
        ..ChurnStatus::default()
    };
    let mut rng = Rng(job.seed);
    let key = job.info.key();
    let writer = Writer::new(MANAGER, &job.info);
    let ns_of =
        |i: usize| -> Option<&str> { job.info.namespaced.then(|| job.namespaces[i].as_str()) };
    let mut names: HashMap<usize, Vec<String>> = HashMap::new();
    {
        let tx = sim.store.tx();
        for i in 0..job.namespaces.len() {
            let list = tx.list(&key, ns_of(i));
            names.insert(i, list.iter().map(|e| e.name.clone()).collect());
        }
    }
    let start = Instant::now();
    let mut serial = 0u64;
    for op in 0..job.count {
        if job.rate > 0.0 {
            let due = start + Duration::from_secs_f64(op as f64 / job.rate);
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
        } else if op % 256 == 255 {
            tokio::task::yield_now().await;
        }
        let nsi = rng.below(job.namespaces.len());
        let ns = ns_of(nsi);
        let pool = names.entry(nsi).or_default();
        let roll = rng.below(100);
        let mut tx = sim.store.tx();
        let mut status = sim.churn.lock();
        if pool.len() < 5 || roll < 40 {
            serial += 1;
            let name = format!("churn-{:x}-{serial}", job.seed % 0xffff);
            let obj = json!({"metadata": {"name": name, "labels": {"churn": "true"}}, "data": {"value": rng.next().to_string()}});
            if tx
                .create(&job.info, ns, obj, Manage::Update(&writer))
                .is_ok()
            {
                pool.push(name);
                status.created += 1;
            }
        } else if roll < 85 {
            let name = pool[rng.below(pool.len())].clone();
            if let Some(cur) = tx.get(&key, ns.unwrap_or(""), &name).cloned() {
                let mut obj = (*cur.object).clone();
                obj["data"]["value"] = json!(rng.next().to_string());
                if rng.below(5) == 0 {
                    let tier = if rng.below(2) == 0 { "a" } else { "b" };
                    obj["metadata"]["labels"]["churn-tier"] = json!(tier);
                }
                if tx
                    .update(
                        &job.info,
                        ns.unwrap_or(""),
                        &name,
                        obj,
                        Manage::Update(&writer),
                    )
                    .is_ok()
                {
                    status.updated += 1;
                }
            }
        } else {
            let idx = rng.below(pool.len());
            let name = pool.swap_remove(idx);
            if let Some(cur) = tx.get(&key, ns.unwrap_or(""), &name).cloned() {
                tx.remove(&cur);
                status.deleted += 1;
            }
        }
        status.done += 1;
        status.last_rv = tx.rv();
    }
    let mut status = sim.churn.lock();
    status.running = false;
    status.finished = Some(SystemTime::now());
    status.to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_per_seed() {
        let mut a = Rng(42);
        let mut b = Rng(42);
        let xs: Vec<u64> = (0..5).map(|_| a.next()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next()).collect();
        assert_eq!(xs, ys);
        assert!(Rng(7).below(3) < 3);
    }
}
