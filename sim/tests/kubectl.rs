//! The real kubectl against kube-sim: the commands faro's tests and demos rely on.

use std::io::Read;
use std::time::Duration;

use kube_sim::testkit::Kubectl;
use kube_sim::{Catalog, Options};
use serde_json::Value;

use crate::util::{get_json, start, start_with, wait_until};

const CM: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: cm1
  namespace: default
data:
  a: \"1\"
";

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: a, image: 'img:1', ports: [{containerPort: 80}]}
      - {name: b, image: other}
";

fn data_rows(out: &str) -> usize {
    out.lines().skip(1).filter(|l| !l.trim().is_empty()).count()
}

#[test]
fn version_reports_1_32() {
    let sim = start();
    let out = Kubectl::new(&sim).ok(&["version"]);
    assert!(out.contains("Server Version: v1.32.0"), "{out}");
}

#[test]
fn api_resources_lists_every_catalog_resource_in_both_discovery_modes() {
    for (catalog, aggregated) in [
        (Catalog::Vanilla, true),
        (Catalog::Large, true),
        (Catalog::Vanilla, false),
    ] {
        let sim = start_with(Options {
            catalog,
            aggregated,
            ..Options::default()
        });
        let out = Kubectl::new(&sim).ok(&["api-resources"]);
        assert_eq!(
            data_rows(&out),
            catalog.api_resources_count(),
            "{catalog} aggregated={aggregated}"
        );
        let reqs = sim.admin("GET", "/_sim/requests").expect("requests");
        let per_gv = reqs["requests"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter(|x| x["path"].as_str().is_some_and(|p| p.starts_with("/apis/")))
                    .count()
            })
            .expect("request log");
        if aggregated {
            assert_eq!(per_gv, 0, "aggregated discovery needs no per-GV requests");
        } else {
            assert!(per_gv > 10, "legacy discovery fetches each group version");
        }
    }
}

#[test]
fn create_apply_label_and_delete_round_trip() {
    let sim = start();
    let k = Kubectl::new(&sim);
    let cm = k.write_manifest(CM);
    let cm = cm.to_string_lossy();
    // Default validation: kubectl reads /openapi/v3 and lets the server validate.
    assert!(
        k.ok(&["create", "-f", &cm])
            .contains("configmap/cm1 created")
    );
    let dup = k.run(&["create", "-f", &cm]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("AlreadyExists"));

    // Client-side apply: create, then change (strategic merge patch for built-ins).
    assert!(
        k.apply_yaml(DEPLOY, &[])
            .contains("deployment.apps/web created")
    );
    let changed = DEPLOY
        .replace("img:1", "img:2")
        .replace("      - {name: b, image: other}\n", "");
    assert!(k.apply_yaml(&changed, &[]).contains("configured"));
    let d: Value =
        serde_json::from_str(&k.ok(&["get", "deploy", "web", "-o", "json"])).expect("json");
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(containers.len(), 1, "container b removed by $patch: delete");
    assert_eq!(containers[0]["image"], "img:2");
    assert_eq!(
        containers[0]["ports"][0]["containerPort"], 80,
        "unpatched fields kept"
    );
    assert_eq!(d["metadata"]["generation"], 2);

    // Server-side apply: merge into the existing object, create a missing one.
    let ssa = CM.replace("a: \"1\"", "a: \"1\"\n  b: \"2\"");
    assert!(
        k.apply_yaml(&ssa, &["--server-side"])
            .contains("serverside-applied")
    );
    let fresh = CM.replace("cm1", "cm2");
    assert!(
        k.apply_yaml(&fresh, &["--server-side"])
            .contains("configmap/cm2 serverside-applied")
    );
    let got: Value =
        serde_json::from_str(&k.ok(&["get", "cm", "cm1", "-o", "json"])).expect("json");
    assert_eq!(got["data"]["b"], "2");

    // Labels: add, then remove.
    k.ok(&["label", "configmap", "cm1", "tier=web"]);
    let (_, obj) = get_json(&sim, "/api/v1/namespaces/default/configmaps/cm1");
    assert_eq!(obj["metadata"]["labels"]["tier"], "web");
    k.ok(&["label", "configmap", "cm1", "tier-"]);
    let (_, obj) = get_json(&sim, "/api/v1/namespaces/default/configmaps/cm1");
    assert!(obj["metadata"]["labels"].get("tier").is_none());

    assert!(
        k.ok(&["delete", "-f", &cm])
            .contains("configmap \"cm1\" deleted")
    );
    let (code, _) = get_json(&sim, "/api/v1/namespaces/default/configmaps/cm1");
    assert_eq!(code, 404);
}

/// kube-apiserver gzips bodies over 128 KiB for clients that accept gzip, as kubectl's Go
/// transport does: kubectl reads them (it decodes them itself, dropping `Content-Encoding`
/// but not `Vary`), and a plain client that asks sees the encoding.
#[test]
fn large_lists_are_gzipped_for_kubectl_and_read_in_full() {
    let sim = start();
    sim.admin(
        "POST",
        "/_sim/load?namespace=default&resource=configmaps&count=600&size=1024",
    )
    .expect("load");
    let path = "/api/v1/namespaces/default/configmaps";
    let raw = kube_sim::request(sim.addr(), "GET", path, &[("Accept-Encoding", "gzip")], b"")
        .expect("list");
    assert!(
        raw.headers
            .iter()
            .any(|(k, v)| k == "content-encoding" && v == "gzip"),
        "{:?}",
        raw.headers
    );
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&raw.body[..])
        .read_to_end(&mut plain)
        .expect("gzip");
    let list: Value = serde_json::from_slice(&plain).expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(600));
    let k = Kubectl::new(&sim);
    let out = k.run(&[
        "get",
        "configmaps",
        "-n",
        "default",
        "--chunk-size=0",
        "-v=8",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(data_rows(&String::from_utf8_lossy(&out.stdout)), 600);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("Vary: Accept-Encoding"), "{log}");
    // Small bodies stay as they are.
    let out = k.run(&["get", "namespaces", "-v=8"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Vary: Accept-Encoding"));
}

#[test]
fn get_watch_prints_added_modified_and_deleted() {
    let sim = start();
    let k = Kubectl::new(&sim);
    let mut child = k.spawn(&[
        "get",
        "configmaps",
        "-w",
        "-o",
        "json",
        "--output-watch-events",
    ]);
    assert!(
        wait_until(Duration::from_secs(10), || sim
            .admin("GET", "/_sim/watches")
            .map(|w| w["count"] == 1)
            .unwrap_or(false)),
        "kubectl watch opened"
    );
    let cm = k.write_manifest(CM);
    k.ok(&["create", "-f", &cm.to_string_lossy()]);
    k.ok(&["label", "configmap", "cm1", "x=y"]);
    k.ok(&["delete", "configmap", "cm1", "--wait=false"]);
    std::thread::sleep(Duration::from_millis(500));
    let _ = child.kill();
    let _ = child.wait();
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    let types: Vec<String> = serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .filter_map(Result::ok)
        .map(|v| v["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(types, vec!["ADDED", "MODIFIED", "DELETED"], "{out}");
}

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
    subresources: {status: {}}
";

const WIDGET: &str = "apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: default}
spec: {color: red}
";

#[test]
fn crds_become_usable_kinds_and_vanish_on_delete() {
    let sim = start();
    let k = Kubectl::new(&sim);
    let crd = k.write_manifest(CRD);
    let crd = crd.to_string_lossy();
    k.ok(&["create", "-f", &crd]);
    let (_, c) = get_json(
        &sim,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
    );
    assert_eq!(c["status"]["conditions"][1]["type"], "Established");
    let w = k.write_manifest(WIDGET);
    let w = w.to_string_lossy();
    assert!(
        k.ok(&["create", "-f", &w])
            .contains("widget.example.com/w1 created")
    );
    assert!(k.ok(&["get", "wd"]).contains("w1"));
    assert!(
        k.ok(&["api-resources", "--api-group=example.com"])
            .contains("widgets")
    );
    k.ok(&["delete", "-f", &w]);
    k.ok(&["create", "-f", &w]);
    k.ok(&["delete", "-f", &crd]);
    let (code, _) = get_json(&sim, "/apis/example.com/v1/widgets");
    assert_eq!(code, 404);
    let (code, _) = get_json(&sim, "/apis/example.com/v1");
    assert_eq!(code, 404);
    let history = sim.admin("GET", "/_sim/history").expect("history");
    let deleted: Vec<&str> = history["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|x| x["type"] == "DELETED")
                .filter_map(|x| x["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        deleted,
        vec!["w1", "w1", "widgets.example.com"],
        "CR deleted before its CRD"
    );
}

#[test]
fn namespace_delete_cascades_and_refuses_creates_meanwhile() {
    let sim = start();
    let k = Kubectl::new(&sim);
    sim.admin("POST", "/_sim/load?namespace=doomed&count=20&size=200")
        .expect("load");
    sim.admin("POST", "/_sim/namespace-delay?ms=1500")
        .expect("delay");
    k.ok(&["delete", "namespace", "doomed", "--wait=false"]);
    let (_, ns) = get_json(&sim, "/api/v1/namespaces/doomed");
    assert_eq!(ns["status"]["phase"], "Terminating");
    let cm = k.write_manifest(&CM.replace("namespace: default", "namespace: doomed"));
    let refused = k.run(&["create", "-f", &cm.to_string_lossy()]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("because it is being terminated"), "{err}");
    assert!(wait_until(Duration::from_secs(10), || get_json(
        &sim,
        "/api/v1/namespaces/doomed"
    )
    .0 == 404));
    let state = sim
        .admin("GET", "/_sim/state?namespace=doomed")
        .expect("state");
    assert_eq!(state["objects"].as_array().map(Vec::len), Some(0));
    let history = sim.admin("GET", "/_sim/history").expect("history");
    let events = history["events"].as_array().cloned().unwrap_or_default();
    let last = events.last().expect("events");
    assert_eq!(
        (last["type"].as_str(), last["name"].as_str()),
        (Some("DELETED"), Some("doomed"))
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "DELETED" && e["namespace"] == "doomed")
            .count(),
        20
    );
}

#[test]
fn generator_commands_send_protobuf_that_is_decoded() {
    let sim = start();
    let k = Kubectl::new(&sim);
    assert!(
        k.ok(&["create", "namespace", "pb"])
            .contains("namespace/pb created")
    );
    k.ok(&[
        "create",
        "configmap",
        "cmx",
        "-n",
        "pb",
        "--from-literal=a=b",
    ]);
    let (_, cm) = get_json(&sim, "/api/v1/namespaces/pb/configmaps/cmx");
    assert_eq!(cm["data"]["a"], "b");
}

#[test]
fn server_side_dry_runs_store_nothing() {
    let sim = start();
    let k = Kubectl::new(&sim);
    let rv = |sim: &kube_sim::SimHandle| {
        sim.admin("GET", "/_sim/history").expect("history")["resourceVersion"].clone()
    };
    let before = rv(&sim);
    assert!(
        k.apply_yaml(CM, &["--dry-run=server"])
            .contains("(server dry run)")
    );
    assert!(
        k.apply_yaml(CM, &["--server-side", "--dry-run=server"])
            .contains("(server dry run)")
    );
    assert_eq!(
        get_json(&sim, "/api/v1/namespaces/default/configmaps/cm1").0,
        404
    );
    assert_eq!(rv(&sim), before);
    k.apply_yaml(CM, &[]);
    let stored = rv(&sim);
    k.ok(&["delete", "configmap", "cm1", "--dry-run=server"]);
    k.ok(&["label", "configmap", "cm1", "x=y", "--dry-run=server"]);
    let (code, obj) = get_json(&sim, "/api/v1/namespaces/default/configmaps/cm1");
    assert_eq!(code, 200);
    assert!(obj["metadata"].get("labels").is_none());
    assert_eq!(rv(&sim), stored);
}

#[test]
fn leases_are_created_read_and_replaced_with_optimistic_concurrency() {
    let sim = start();
    let k = Kubectl::new(&sim);
    let lease = "apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: demo, namespace: default}
spec: {holderIdentity: a, leaseDurationSeconds: 15, leaseTransitions: 0, renewTime: '2026-12-03T11:00:00.000000Z'}
";
    let path = k.write_manifest(lease);
    let out = k.ok(&["create", "-f", path.to_str().unwrap()]);
    assert!(
        out.contains("lease.coordination.k8s.io/demo created"),
        "{out}"
    );
    let read: Value = serde_json::from_str(&k.ok(&["get", "lease", "demo", "-o", "json"])).unwrap();
    assert_eq!(read["spec"]["holderIdentity"], "a");
    // Two writers replace from the same read: the first wins, the second's resourceVersion is
    // stale and it gets 409 Conflict, as from a real API server.
    let mut b = read.clone();
    b["spec"]["holderIdentity"] = "b".into();
    let mut c = read.clone();
    c["spec"]["holderIdentity"] = "c".into();
    let b_path = k.write_manifest(&b.to_string());
    let c_path = k.write_manifest(&c.to_string());
    k.ok(&["replace", "-f", b_path.to_str().unwrap()]);
    let out = k.run(&["replace", "-f", c_path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Conflict") && err.contains("the object has been modified"),
        "{err}"
    );
    let holder = k.ok(&[
        "get",
        "lease",
        "demo",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(holder, "b");
}

#[test]
fn secret_string_data_is_folded_into_data() {
    let sim = start();
    let k = Kubectl::new(&sim);
    k.apply_yaml(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: default}\ndata: {a: b2xk, keep: a2VlcA==}\nstringData: {a: new, url: 'nats://x:4222'}\n",
        &[],
    );
    let read: Value = serde_json::from_str(&k.ok(&["get", "secret", "s", "-o", "json"])).unwrap();
    assert!(read.get("stringData").is_none(), "{read}");
    assert_eq!(read["data"]["a"], "bmV3");
    assert_eq!(read["data"]["keep"], "a2VlcA==");
    assert_eq!(read["data"]["url"], "bmF0czovL3g6NDIyMg==");
}
