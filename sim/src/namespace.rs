//! Namespace deletion as the namespace controller performs it: the DELETE marks the namespace
//! Terminating (MODIFIED, creates inside refused with 403), then, after a short configurable
//! delay, every object in it is deleted (DELETED each; objects with finalizers linger until
//! their finalizers are removed) and finally the namespace itself.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::event::Event;
use crate::object::rfc3339_seconds;
use crate::registry::ResourceInfo;
use crate::sim::Sim;
use crate::status::ApiError;

/// Marks a namespace Terminating and schedules the removal of its contents and of itself.
/// Returns the Terminating namespace (what the DELETE replies with).
pub fn terminate(sim: &Arc<Sim>, info: &ResourceInfo, name: &str) -> Result<Arc<Event>, ApiError> {
    let ev = {
        let mut tx = sim.store.tx();
        let Some(cur) = tx.get(&info.key(), "", name).cloned() else {
            return Err(ApiError::not_found("", "namespaces", name));
        };
        if cur.object.pointer("/status/phase").and_then(|p| p.as_str()) == Some("Terminating") {
            return Ok(cur);
        }
        let mut obj = Arc::unwrap_or_clone(cur.full_object());
        obj["metadata"]["deletionTimestamp"] = json!(rfc3339_seconds(SystemTime::now()));
        obj["status"] = json!({"phase": "Terminating"});
        tx.commit(
            crate::event::EventType::Modified,
            info.key(),
            obj,
            Some(&cur),
        )
    };
    let sim2 = sim.clone();
    let name = name.to_string();
    let delay = Duration::from_millis(sim.namespace_delete_delay_ms.load(Ordering::Relaxed));
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        finish(&sim2, &name);
    });
    Ok(ev)
}

/// Deletes every object of a namespace (objects with finalizers only get a
/// `deletionTimestamp`), then the namespace once it is empty.
pub fn finish(sim: &Sim, name: &str) {
    let mut tx = sim.store.tx();
    tx.begin_finalizing(name);
    for key in tx.keys() {
        for ev in tx.list(&key, Some(name)) {
            tx.delete_or_mark(&ev);
        }
    }
    tx.finish_namespace_if_empty(name);
}
