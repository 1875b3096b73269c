//! Bulk writers of the admin API: `load` (many objects of about N bytes, committed in batches
//! like ordinary creates) and `prerender` + `burst` (creation events serialized in advance
//! into one contiguous buffer, committed at once, and streamed to watchers as zero-copy slices
//! so that the event source is never the bottleneck of a throughput benchmark).

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{BufMut, BytesMut};
use serde_json::{Map, Value, json};

use crate::event::{Event, EventType, Line, SUFFIX};
use crate::managed_fields::{self, Manage, Writer};
use crate::object::{new_uid, rfc3339_seconds};
use crate::query::Query;
use crate::registry::ResourceInfo;
use crate::sim::Sim;

/// Creates committed per lock acquisition, so watchers and readers interleave with a load.
const LOAD_BATCH: usize = 2000;

/// The field manager of everything the admin API writes.
pub const MANAGER: &str = "kube-sim";

/// The resource an admin request names (`group`, `version`, `resource`; default configmaps).
pub fn resource_of(sim: &Sim, q: &Query) -> Result<Arc<ResourceInfo>, String> {
    let group = q.get("group").unwrap_or("");
    let resource = q.non_empty("resource").unwrap_or("configmaps");
    let reg = sim.registry.read();
    let found = match q.non_empty("version") {
        Some(v) => reg.lookup(group, v, resource),
        None => reg.lookup_preferred(group, resource),
    };
    found.ok_or_else(|| format!("resource {resource:?} in group {group:?} is not served"))
}

/// Parses `k=v,k2=v2`.
pub fn parse_labels(raw: Option<&str>) -> Result<Map<String, Value>, String> {
    let mut m = Map::new();
    for pair in raw
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.trim().is_empty())
    {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("bad label {pair:?}: expected key=value"))?;
        m.insert(k.trim().to_string(), json!(v.trim()));
    }
    Ok(m)
}

/// Creates `ns` if it does not exist yet.
pub fn ensure_namespace(sim: &Sim, ns: &str) -> Result<(), String> {
    let info = sim
        .registry
        .read()
        .lookup("", "v1", "namespaces")
        .ok_or("namespaces are not served")?;
    let mut tx = sim.store.tx();
    match tx.namespace_phase(ns).as_deref() {
        Some("Terminating") => Err(format!("namespace {ns} is terminating")),
        Some(_) => Ok(()),
        None => tx
            .create(
                &info,
                None,
                json!({"metadata": {"name": ns}}),
                Manage::Update(&Writer::new(MANAGER, &info)),
            )
            .map(|_| ())
            .map_err(|e| e.message),
    }
}

/// An object of about `size` bytes of JSON once stamped and given its managedFields (padding
/// in `data.pad`; `managed_len` is the length of the managedFields JSON).
fn padded(
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    labels: &Map<String, Value>,
    size: usize,
    managed_len: usize,
) -> Value {
    let mut obj = json!({
        "apiVersion": info.api_version(),
        "kind": info.kind,
        "metadata": {"name": name},
        "data": {"pad": ""}
    });
    if let Some(ns) = ns {
        obj["metadata"]["namespace"] = json!(ns);
    }
    if !labels.is_empty() {
        obj["metadata"]["labels"] = Value::Object(labels.clone());
    }
    // uid, creationTimestamp, generation and resourceVersion add about 150 bytes, and
    // `,"managedFields":` 17 more.
    let base = obj.to_string().len() + 150 + if managed_len > 0 { managed_len + 17 } else { 0 };
    obj["data"]["pad"] = json!("x".repeat(size.saturating_sub(base)));
    obj
}

/// `POST /_sim/load`.
pub fn load(sim: &Sim, q: &Query) -> Result<Value, String> {
    let info = resource_of(sim, q)?;
    let ns = q.non_empty("namespace").unwrap_or("default").to_string();
    let count: usize = q.number("count")?.unwrap_or(0);
    let size: usize = q.number("size")?.unwrap_or(1024);
    let start: usize = q.number("start")?.unwrap_or(0);
    let prefix = q
        .get("prefix")
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}-", info.singular));
    let labels = parse_labels(q.get("labels"))?;
    if info.namespaced {
        ensure_namespace(sim, &ns)?;
    }
    let ns_opt = info.namespaced.then_some(ns.as_str());
    // Every object of a load has the same fields: their managedFields are computed once and
    // shared (kept out of each object's Value, the watch lines carry them).
    let managed = Arc::new(bulk_managed(&info, ns_opt, &labels));
    let managed_len = managed.to_string().len();
    let mut created = 0usize;
    let mut i = start;
    let end = start + count;
    while i < end {
        let batch_end = (i + LOAD_BATCH).min(end);
        let objs: Vec<Value> = (i..batch_end)
            .map(|n| {
                let name = format!("{prefix}{n:06}");
                padded(&info, ns_opt, &name, &labels, size, managed_len)
            })
            .collect();
        let mut tx = sim.store.tx();
        for obj in objs {
            match tx.create(&info, ns_opt, obj, Manage::Shared(&managed)) {
                Ok(_) => created += 1,
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e.message),
            }
        }
        i = batch_end;
    }
    let rv = sim.store.tx().rv();
    Ok(json!({"created": created, "resourceVersion": rv.to_string()}))
}

/// The managedFields of a bulk-created object: one `kube-sim` Update entry owning
/// `data.pad` and the labels.
fn bulk_managed(info: &ResourceInfo, ns: Option<&str>, labels: &Map<String, Value>) -> Value {
    managed_fields::bulk_entry(info, &padded(info, ns, "x", labels, 0, 0), MANAGER)
}

/// Creation events rendered in advance (only their commit time is set at burst).
#[derive(Debug)]
pub struct Prerendered {
    base_rv: u64,
    events: Vec<Arc<Event>>,
}

/// `POST /_sim/prerender`.
pub fn prerender(sim: &Sim, q: &Query) -> Result<Value, String> {
    let info = resource_of(sim, q)?;
    let ns = q.non_empty("namespace").unwrap_or("default").to_string();
    let count: usize = q.number("count")?.unwrap_or(0);
    let size: usize = q.number("size")?.unwrap_or(1024);
    let labels = parse_labels(q.get("labels"))?;
    if info.namespaced {
        ensure_namespace(sim, &ns)?;
    }
    let ns_opt = info.namespaced.then_some(ns.as_str());
    let base_rv = sim.store.tx().rv();
    let prefix = q
        .get("prefix")
        .map(str::to_string)
        .unwrap_or_else(|| format!("burst-{base_rv}-"));
    let now = rfc3339_seconds(SystemTime::now());
    let managed = Arc::new(bulk_managed(&info, ns_opt, &labels));
    let managed_len = managed.to_string().len();
    // `modify=true`: MODIFIED events of the objects a burst with this prefix created (their
    // `data.value` set to a new value), for benchmarks of updates.
    let modify = q.get("modify") == Some("true");
    let existing: Vec<Option<Arc<Event>>> = if modify {
        let tx = sim.store.tx();
        let key = info.key();
        (0..count)
            .map(|i| {
                tx.get(&key, ns_opt.unwrap_or(""), &format!("{prefix}{i:06}"))
                    .cloned()
            })
            .collect()
    } else {
        Vec::new()
    };
    let etype = if modify {
        EventType::Modified
    } else {
        EventType::Added
    };
    let mut buf = BytesMut::with_capacity(count * (size + 64)).writer();
    let mut items = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("{prefix}{i:06}");
        let (uid, mut obj, prev) = match existing.get(i) {
            Some(Some(before)) => {
                let mut obj = (*before.object).clone();
                obj["data"]["value"] = json!(format!("v{base_rv}"));
                (before.uid.clone(), obj, Some(before.object.clone()))
            }
            Some(None) => return Err(format!("modify: no object {name} to modify")),
            None => {
                let mut obj = padded(&info, ns_opt, &name, &labels, size, managed_len);
                let meta = &mut obj["metadata"];
                meta["uid"] = json!(new_uid());
                meta["creationTimestamp"] = json!(now);
                meta["generation"] = json!(1);
                let uid = meta["uid"].as_str().unwrap_or_default().to_string();
                (uid, obj, None)
            }
        };
        obj["metadata"]["resourceVersion"] = json!((base_rv + 1 + i as u64).to_string());
        let start = buf.get_ref().len();
        buf.get_mut().put_slice(etype.prefix());
        let with = crate::object::WithManagedFields {
            object: &obj,
            managed_fields: Some(&managed),
        };
        serde_json::to_writer(&mut buf, &with).map_err(|e| e.to_string())?;
        buf.get_mut().put_slice(SUFFIX);
        let end = buf.get_ref().len();
        items.push((name, uid, Arc::new(obj), prev, start, end));
    }
    let buf = buf.into_inner().freeze();
    let bytes = buf.len();
    let key = info.key();
    let namespace = ns_opt.unwrap_or("").to_string();
    let events = items
        .into_iter()
        .enumerate()
        .map(|(i, (name, uid, obj, prev, start, end))| {
            let line = Line {
                buf: buf.clone(),
                start,
                end,
            };
            let mut ev = Event::with_line(
                base_rv + 1 + i as u64,
                etype,
                key.clone(),
                namespace.clone(),
                name,
                uid,
                obj,
                prev.clone(),
                line,
            );
            ev.managed_fields = Some(managed.clone());
            ev.prev_managed_fields = prev.as_ref().map(|_| managed.clone());
            Arc::new(ev)
        })
        .collect();
    *sim.prerendered.lock() = Some(Prerendered { base_rv, events });
    Ok(json!({"count": count, "bytes": bytes, "baseResourceVersion": base_rv.to_string()}))
}

/// `POST /_sim/burst`: commits the pre-rendered events at once. Err((code, message)).
pub fn burst(sim: &Sim) -> Result<Value, (u16, String)> {
    let Some(p) = sim.prerendered.lock().take() else {
        return Err((
            409,
            "nothing pre-rendered: call /_sim/prerender first".into(),
        ));
    };
    let mut tx = sim.store.tx();
    if tx.rv() != p.base_rv {
        return Err((
            409,
            format!(
                "the store changed since prerender (resourceVersion {} != {}); prerender again",
                tx.rv(),
                p.base_rv
            ),
        ));
    }
    let count = p.events.len();
    let first = p.base_rv + 1;
    let now = SystemTime::now();
    for ev in p.events {
        ev.set_time(now);
        tx.commit_shared(ev);
    }
    let last = tx.rv();
    Ok(json!({"count": count, "first_rv": first.to_string(), "last_rv": last.to_string()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_from_pairs() {
        let m = parse_labels(Some("a=b, c=d")).expect("parses");
        assert_eq!(m.get("c"), Some(&json!("d")));
        assert!(parse_labels(Some("nope")).is_err());
        assert!(parse_labels(None).expect("empty").is_empty());
    }

    #[test]
    fn padded_objects_are_about_the_requested_size() {
        let reg = crate::registry::Registry::from_catalog(crate::catalog::Catalog::Vanilla.lists());
        let info = reg.lookup("", "v1", "configmaps").expect("cm");
        let managed = bulk_managed(&info, Some("ns"), &Map::new());
        assert_eq!(managed[0]["manager"], MANAGER);
        assert_eq!(
            managed[0]["fieldsV1"],
            json!({"f:data": {".": {}, "f:pad": {}}})
        );
        let mlen = managed.to_string().len();
        let mut obj = padded(&info, Some("ns"), "cm-000001", &Map::new(), 1024, mlen);
        obj["metadata"]["managedFields"] = managed;
        let len = obj.to_string().len();
        assert!((800..=1024).contains(&len), "{len}");
    }
}
