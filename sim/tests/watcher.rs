//! kube-runtime watchers against kube-sim: what faro depends on when streams break.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Config};
use kube_sim::SimHandle;
use serde_json::json;

use crate::util::start;

/// Descriptions of a watcher's events; the watcher runs in its own task, so it keeps
/// watching (and reconnecting) while the test does other things.
type Events = tokio::sync::mpsc::UnboundedReceiver<String>;

fn client(sim: &SimHandle) -> Client {
    let cfg = Config::new(sim.url().parse().expect("url"));
    Client::try_from(cfg).expect("client")
}

fn configmaps(sim: &SimHandle, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("", "v1", "ConfigMap"),
        "configmaps",
    );
    Api::namespaced_with(client(sim), ns, &ar)
}

fn cm(name: &str, labels: serde_json::Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"}
    }))
    .expect("configmap")
}

/// A compact description of an event: "init", "apply:name", "delete:name", "done", "err:CODE".
fn describe(e: Result<Event<DynamicObject>, watcher::Error>) -> String {
    let name = |o: &DynamicObject| o.metadata.name.clone().unwrap_or_default();
    match e {
        Ok(Event::Init) => "init".into(),
        Ok(Event::InitApply(o)) => format!("initapply:{}", name(&o)),
        Ok(Event::InitDone) => "done".into(),
        Ok(Event::Apply(o)) => format!("apply:{}", name(&o)),
        Ok(Event::Delete(o)) => format!("delete:{}", name(&o)),
        Err(watcher::Error::WatchError(s)) => format!("err:{}", s.code),
        Err(e) => format!("err:{e}"),
    }
}

async fn next(events: &mut Events) -> String {
    match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
        Ok(Some(e)) => e,
        Ok(None) => "end".into(),
        Err(_) => "timeout".into(),
    }
}

async fn expect(events: &mut Events, want: &[&str]) {
    for w in want {
        assert_eq!(next(events).await, *w);
    }
}

fn watch(api: &Api<DynamicObject>, cfg: watcher::Config) -> Events {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut stream: Pin<
        Box<dyn Stream<Item = Result<Event<DynamicObject>, watcher::Error>> + Send>,
    > = Box::pin(watcher::watcher(api.clone(), cfg));
    tokio::spawn(async move {
        while let Some(e) = stream.next().await {
            if tx.send(describe(e)).is_err() {
                return;
            }
        }
    });
    rx
}

async fn wait_for_watches(sim: &SimHandle, n: u64) {
    for _ in 0..200 {
        if admin(sim, "GET", "/_sim/watches").await["count"] == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{n} watches never opened");
}

async fn admin(sim: &SimHandle, method: &'static str, path: &str) -> serde_json::Value {
    let path = path.to_string();
    let addr = sim.addr();
    tokio::task::spawn_blocking(move || {
        kube_sim::request(addr, method, &path, &[], b"")
            .expect("admin")
            .json()
            .expect("json")
    })
    .await
    .expect("join")
}

#[tokio::test]
async fn a_dropped_watch_resumes_without_loss_or_duplicates() {
    let sim = start();
    let api = configmaps(&sim, "default");
    let mut ev = watch(&api, watcher::Config::default());
    expect(&mut ev, &["init", "done"]).await;
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("a");
    expect(&mut ev, &["apply:a"]).await;
    wait_for_watches(&sim, 1).await;
    let dropped = admin(&sim, "POST", "/_sim/drop-watches?resource=configmaps").await;
    assert_eq!(dropped["closed"], 1);
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .expect("b");
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "w"}})),
    )
    .await
    .expect("patch");
    api.delete("b", &Default::default()).await.expect("delete");
    expect(&mut ev, &["apply:b", "apply:a", "delete:b"]).await;
    let reqs = admin(&sim, "GET", "/_sim/requests").await;
    let watches = reqs["requests"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter(|x| {
                    x["query"]
                        .as_str()
                        .is_some_and(|q| q.contains("watch=true"))
                })
                .count()
        })
        .unwrap_or(0);
    assert!(watches >= 2, "the watcher re-watched");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), ev.recv())
            .await
            .is_err(),
        "no duplicate events"
    );
}

#[tokio::test]
async fn a_compacted_resume_point_gets_410_and_a_relist() {
    let sim = start();
    let api = configmaps(&sim, "default");
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("a");
    let mut ev = watch(&api, watcher::Config::default());
    expect(&mut ev, &["init", "initapply:a", "done"]).await;
    wait_for_watches(&sim, 1).await;
    // Another resource moves the RV past the watcher's; compacting there makes its resume point too old.
    admin(
        &sim,
        "POST",
        "/_sim/load?resource=secrets&namespace=default&count=1",
    )
    .await;
    admin(&sim, "POST", "/_sim/compact").await;
    admin(&sim, "POST", "/_sim/drop-watches").await;
    expect(&mut ev, &["err:410", "init", "initapply:a", "done"]).await;
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .expect("b");
    expect(&mut ev, &["apply:b"]).await;
}

#[tokio::test]
async fn bookmarks_advance_the_resume_point() {
    let sim = start();
    admin(&sim, "POST", "/_sim/bookmarks?interval_ms=100").await;
    let api = configmaps(&sim, "default");
    let mut ev = watch(&api, watcher::Config::default());
    expect(&mut ev, &["init", "done"]).await;
    wait_for_watches(&sim, 1).await;
    let loaded = admin(
        &sim,
        "POST",
        "/_sim/load?resource=secrets&namespace=default&count=3",
    )
    .await;
    let rv = loaded["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string();
    tokio::time::sleep(Duration::from_millis(400)).await;
    admin(&sim, "POST", "/_sim/compact").await;
    admin(&sim, "POST", "/_sim/drop-watches").await;
    // The resume from the bookmark RV is not too old: no 410, no relist.
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("a");
    expect(&mut ev, &["apply:a"]).await;
    let reqs = admin(&sim, "GET", "/_sim/requests").await;
    let resumed = reqs["requests"].as_array().is_some_and(|r| {
        r.iter().any(|x| {
            x["query"].as_str().is_some_and(|q| {
                q.contains("watch=true") && q.contains(&format!("resourceVersion={rv}"))
            })
        })
    });
    assert!(resumed, "re-watched from the bookmark's RV {rv}: {reqs}");
}

#[tokio::test]
async fn streaming_lists_reach_init_done() {
    let sim = start();
    let api = configmaps(&sim, "default");
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .expect("a");
    let mut ev = watch(&api, watcher::Config::default().streaming_lists());
    expect(&mut ev, &["init", "initapply:a", "done"]).await;
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .expect("b");
    api.delete("a", &Default::default()).await.expect("delete");
    expect(&mut ev, &["apply:b", "delete:a"]).await;
    let w = admin(&sim, "GET", "/_sim/watches").await;
    assert_eq!(w["watches"][0]["sendInitialEvents"], true);
}

#[tokio::test]
async fn updates_leaving_and_entering_a_selector_are_delete_and_apply() {
    let sim = start();
    let api = configmaps(&sim, "default");
    let mut ev = watch(&api, watcher::Config::default().labels("app=x"));
    expect(&mut ev, &["init", "done"]).await;
    api.create(&PostParams::default(), &cm("a", json!({"app": "x"})))
        .await
        .expect("a");
    api.create(&PostParams::default(), &cm("other", json!({"app": "y"})))
        .await
        .expect("other");
    expect(&mut ev, &["apply:a"]).await;
    let relabel = |v: &str| Patch::Merge(json!({"metadata": {"labels": {"app": v}}}));
    api.patch("a", &PatchParams::default(), &relabel("y"))
        .await
        .expect("leave");
    expect(&mut ev, &["delete:a"]).await;
    api.patch("a", &PatchParams::default(), &relabel("x"))
        .await
        .expect("enter");
    expect(&mut ev, &["apply:a"]).await;
    let w = admin(&sim, "GET", "/_sim/watches").await;
    assert_eq!(
        w["watches"][0]["labelSelector"], "app=x",
        "the selector was pushed down"
    );
}

#[tokio::test]
async fn kube_discovery_sees_the_catalog_in_both_modes() {
    let sim = start();
    let want = kube_sim::Catalog::Vanilla.api_resources_count();
    for aggregated in [true, false] {
        let d = kube::Discovery::new(client(&sim));
        let d = if aggregated {
            d.run_aggregated().await
        } else {
            d.run().await
        }
        .expect("discovery");
        let mut seen = std::collections::BTreeSet::new();
        for g in d.groups() {
            for v in g.versions() {
                for (ar, _) in g.versioned_resources(v) {
                    seen.insert((ar.group.clone(), ar.plural.clone()));
                }
            }
        }
        assert_eq!(seen.len(), want, "aggregated={aggregated}");
        let core = d.get("").expect("core group");
        let (_, caps) = core
            .recommended_resources()
            .into_iter()
            .find(|(ar, _)| ar.plural == "pods")
            .expect("pods");
        assert!(
            caps.subresources
                .iter()
                .any(|(s, _)| s.plural == "pods/status" || s.plural == "status"),
            "{:?}",
            caps.subresources
        );
    }
}
