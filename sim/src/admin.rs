//! The admin API under `/_sim/`: fault injection, bulk loads, churn, pre-rendered bursts and
//! introspection (state, watches, requests, history). Replies are JSON; bad parameters get a
//! 400 `{"error": …}`. Documented endpoint by endpoint in sim/README.md.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{BufMut, BytesMut};
use http::Method;
use serde_json::{Value, json};

use crate::bulk;
use crate::churn;
use crate::faults::{FailRule, ForbidRule};
use crate::object::rfc3339_nanos;
use crate::query::Query;
use crate::reply::{self, Reply};
use crate::sim::Sim;

fn bad(msg: impl Into<String>) -> Reply {
    reply::json(400, &json!({"error": msg.into()}))
}

fn ok(v: Value) -> Reply {
    reply::json(200, &v)
}

fn list_param(q: &Query, key: &str) -> Option<Vec<String>> {
    q.non_empty(key).map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

/// Serves `/_sim/{name}`; `conn` is the id of the connection the request came on.
pub async fn handle(sim: &Arc<Sim>, method: &Method, name: &str, q: &Query, conn: u64) -> Reply {
    let post = *method == Method::POST;
    match (name, post) {
        ("drop-watches", true) => {
            let closed = sim.watches.close(
                q.non_empty("group").or(q.get("group")),
                q.non_empty("resource"),
            );
            ok(json!({"closed": closed}))
        }
        ("silence-watches", true) => {
            let silenced = sim.watches.silence(
                q.non_empty("group").or(q.get("group")),
                q.non_empty("resource"),
            );
            ok(json!({"silenced": silenced}))
        }
        ("connections", false) => ok(sim.connections.describe(conn)),
        ("close-connections", true) => ok(json!({"closed": sim.connections.cut_all(conn)})),
        ("compact", true) => {
            let mut tx = sim.store.tx();
            tx.compact();
            ok(json!({"floor": tx.floor().to_string(), "resourceVersion": tx.rv().to_string()}))
        }
        ("fail", true) => fail(sim, q),
        ("latency", true) => match q.number::<u64>("ms") {
            Ok(ms) => {
                sim.faults.set_latency(ms.unwrap_or(0));
                ok(json!({"latencyMs": ms.unwrap_or(0)}))
            }
            Err(e) => bad(e),
        },
        ("forbid", true) => {
            if q.flag("clear") {
                sim.faults.clear_forbid();
                return ok(sim.faults.describe());
            }
            let Some(resource) = q.non_empty("resource") else {
                return bad("resource is required");
            };
            sim.faults.add_forbid(ForbidRule {
                resource: resource.to_string(),
                group: q.get("group").map(str::to_string),
                verbs: list_param(q, "verbs"),
                namespace: q.non_empty("namespace").map(str::to_string),
            });
            ok(sim.faults.describe())
        }
        ("auth", true) => {
            if q.flag("clear") {
                sim.faults.set_token(None);
            } else if let Some(t) = q.non_empty("token") {
                sim.faults.set_token(Some(t.to_string()));
            } else {
                return bad("token or clear=true is required");
            }
            ok(sim.faults.describe())
        }
        ("discovery", true) => {
            match q.get("aggregated") {
                Some("true" | "1") => sim.aggregated.store(true, Ordering::Relaxed),
                Some("false" | "0") => sim.aggregated.store(false, Ordering::Relaxed),
                _ => return bad("aggregated=true|false is required"),
            }
            ok(json!({"aggregated": sim.aggregated.load(Ordering::Relaxed)}))
        }
        ("group-down" | "group-up", true) => {
            let Some(group) = q.get("group") else {
                return bad("group is required");
            };
            sim.faults.set_group_down(group, name == "group-down");
            ok(json!({"groupsDown": sim.faults.down_groups().into_iter().collect::<Vec<_>>()}))
        }
        ("faults", false) => ok(sim.faults.describe()),
        ("load", true) => {
            let sim2 = sim.clone();
            let q2 = q.clone();
            match tokio::task::spawn_blocking(move || bulk::load(&sim2, &q2)).await {
                Ok(Ok(v)) => ok(v),
                Ok(Err(e)) => bad(e),
                Err(e) => reply::json(500, &json!({"error": e.to_string()})),
            }
        }
        ("churn", true) => {
            let job = match churn::prepare(sim, q) {
                Ok(j) => j,
                Err(e) => return bad(e),
            };
            let task = tokio::spawn(churn::run(sim.clone(), job));
            if q.flag("wait") {
                match task.await {
                    Ok(v) => ok(v),
                    Err(e) => reply::json(500, &json!({"error": e.to_string()})),
                }
            } else {
                ok(json!({"started": true}))
            }
        }
        ("churn", false) => ok(sim.churn.lock().to_value()),
        ("prerender", true) => {
            let sim2 = sim.clone();
            let q2 = q.clone();
            match tokio::task::spawn_blocking(move || bulk::prerender(&sim2, &q2)).await {
                Ok(Ok(v)) => ok(v),
                Ok(Err(e)) => bad(e),
                Err(e) => reply::json(500, &json!({"error": e.to_string()})),
            }
        }
        ("burst", true) => {
            let sim2 = sim.clone();
            match tokio::task::spawn_blocking(move || bulk::burst(&sim2)).await {
                Ok(Ok(v)) => ok(v),
                Ok(Err((code, msg))) => reply::json(code, &json!({"error": msg})),
                Err(e) => reply::json(500, &json!({"error": e.to_string()})),
            }
        }
        ("state", false) => state(sim, q),
        ("watches", false) => ok(sim.watches.describe()),
        ("requests", false) => match q.number::<u64>("since") {
            Ok(s) => ok(sim.requests.since(s.unwrap_or(0))),
            Err(e) => bad(e),
        },
        ("requests", true) if q.flag("clear") => {
            sim.requests.clear();
            ok(json!({"cleared": true}))
        }
        ("history", false) => history(sim, q),
        ("watch-list", true) => {
            use crate::sim::WatchList;
            let mode = match q.get("mode") {
                Some("on") => WatchList::On,
                Some("reject") => WatchList::Reject,
                Some("no-end-bookmark") => WatchList::NoEndBookmark,
                other => {
                    return bad(format!(
                        "mode must be on, reject or no-end-bookmark, not {other:?}"
                    ));
                }
            };
            sim.watch_list.store(mode as u8, Ordering::Relaxed);
            ok(json!({"mode": mode.name()}))
        }
        ("bookmarks", true) => match q.number::<u64>("interval_ms") {
            Ok(Some(ms)) => {
                sim.bookmark_ms.store(ms.max(10), Ordering::Relaxed);
                ok(json!({"intervalMs": ms.max(10)}))
            }
            Ok(None) => bad("interval_ms is required"),
            Err(e) => bad(e),
        },
        ("namespace-delay", true) => match q.number::<u64>("ms") {
            Ok(Some(ms)) => {
                sim.namespace_delete_delay_ms.store(ms, Ordering::Relaxed);
                ok(json!({"namespaceDeleteDelayMs": ms}))
            }
            Ok(None) => bad("ms is required"),
            Err(e) => bad(e),
        },
        _ => reply::json(
            404,
            &json!({"error": format!("no admin endpoint {method} /_sim/{name}")}),
        ),
    }
}

fn fail(sim: &Sim, q: &Query) -> Reply {
    if q.flag("clear") {
        sim.faults.set_fail(None);
        return ok(sim.faults.describe());
    }
    let code = match q.number::<u16>("code") {
        Ok(Some(c)) if (400..600).contains(&c) => c,
        Ok(_) => return bad("code (400..599) is required"),
        Err(e) => return bad(e),
    };
    let count = match q.number::<i64>("count") {
        Ok(c) => c.unwrap_or(1),
        Err(e) => return bad(e),
    };
    let retry_after = match q.number::<u64>("retry_after") {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    sim.faults.set_fail((count != 0).then(|| FailRule {
        code,
        remaining: if count < 0 { -1 } else { count },
        path: q.non_empty("path").map(str::to_string),
        query: q.non_empty("query").map(str::to_string),
        retry_after,
    }));
    ok(sim.faults.describe())
}

fn state(sim: &Sim, q: &Query) -> Reply {
    let group = q.get("group");
    let version = q.non_empty("version");
    let resource = q.non_empty("resource");
    let namespace = q.non_empty("namespace");
    let tx = sim.store.tx();
    let mut out = BytesMut::new();
    out.put_slice(format!("{{\"resourceVersion\":\"{}\",\"objects\":[", tx.rv()).as_bytes());
    let mut keys = tx.keys();
    keys.sort();
    let mut first = true;
    for key in keys {
        if group.is_some_and(|g| g != key.group) || resource.is_some_and(|r| r != key.resource) {
            continue;
        }
        for ev in tx.list(&key, namespace) {
            if let Some(v) = version {
                let av = ev.api_version();
                if av.rsplit('/').next() != Some(v) {
                    continue;
                }
            }
            if !first {
                out.put_u8(b',');
            }
            first = false;
            out.put_slice(&ev.object_bytes());
        }
    }
    out.put_slice(b"]}");
    reply::json_bytes(200, out.freeze())
}

fn history(sim: &Sim, q: &Query) -> Reply {
    let since = match q.number::<u64>("since") {
        Ok(s) => s.unwrap_or(0),
        Err(e) => return bad(e),
    };
    let (events, rv, floor, retained) = {
        let tx = sim.store.tx();
        (
            tx.history_since(since),
            tx.rv(),
            tx.floor(),
            tx.history_len(),
        )
    };
    let items: Vec<Value> = events
        .iter()
        .map(|e| {
            let av = e.api_version();
            let version = av.rsplit('/').next().unwrap_or("");
            json!({
                "rv": e.rv.to_string(),
                "type": e.etype.as_str(),
                "group": e.key.group,
                "version": version,
                "resource": e.key.resource,
                "namespace": e.namespace,
                "name": e.name,
                "uid": e.uid,
                "time": rfc3339_nanos(e.time()),
            })
        })
        .collect();
    ok(
        json!({"resourceVersion": rv.to_string(), "floor": floor.to_string(), "retained": retained, "events": items}),
    )
}
