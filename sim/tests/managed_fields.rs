//! managedFields as a real apiserver keeps them, driven by the real kubectl 1.32 (whose field
//! manager names are the ones sim/README.md lists) and by raw requests.

use std::time::Duration;

use kube_sim::SimHandle;
use kube_sim::testkit::Kubectl;
use serde_json::{Value, json};

use crate::util::{RawWatch, get_json, send_json, start, wait_until};

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
      - {name: a, image: 'img:1'}
";

const CM_PATH: &str = "/api/v1/namespaces/default/configmaps/cm1";
const DEPLOY_PATH: &str = "/apis/apps/v1/namespaces/default/deployments/web";

/// The managedFields of the object at `path`.
fn entries(sim: &SimHandle, path: &str) -> Vec<Value> {
    let (code, obj) = get_json(sim, path);
    assert_eq!(code, 200, "{path}: {obj}");
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The entry of `manager` (and `subresource`, `""` for the main resource).
fn entry<'a>(entries: &'a [Value], manager: &str, subresource: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|e| e["manager"] == manager && e["subresource"].as_str().unwrap_or("") == subresource)
}

fn managers(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            let sub = e["subresource"].as_str().unwrap_or("");
            let m = e["manager"].as_str().unwrap_or("");
            let op = e["operation"].as_str().unwrap_or("");
            if sub.is_empty() {
                format!("{m}/{op}")
            } else {
                format!("{m}/{op}/{sub}")
            }
        })
        .collect()
}

/// Whether an entry owns the field at `path` (`["f:data", "f:a"]`).
fn owns(e: &Value, path: &[&str]) -> bool {
    let mut cur = &e["fieldsV1"];
    for p in path {
        match cur.get(*p) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    true
}

fn is_rfc3339_seconds(t: &Value) -> bool {
    t.as_str()
        .is_some_and(|t| t.len() == 20 && t.ends_with('Z') && humantime::parse_rfc3339(t).is_ok())
}

#[test]
fn kubectl_create_records_one_update_entry_shown_everywhere_objects_are() {
    let sim = start();
    let k = Kubectl::new(&sim);
    let mut w = RawWatch::open(
        sim.addr(),
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0",
    );
    let cm = k.write_manifest(CM);
    k.ok(&["create", "-f", &cm.to_string_lossy()]);
    let es = entries(&sim, CM_PATH);
    assert_eq!(managers(&es), ["kubectl-create/Update"]);
    let e = &es[0];
    assert_eq!(e["apiVersion"], "v1");
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert!(e.get("subresource").is_none());
    assert!(is_rfc3339_seconds(&e["time"]), "{e}");
    assert_eq!(e["fieldsV1"], json!({"f:data": {".": {}, "f:a": {}}}));

    // LIST and WATCH carry them too.
    let (_, list) = get_json(&sim, "/api/v1/namespaces/default/configmaps");
    assert_eq!(list["items"][0]["metadata"]["managedFields"], json!(es));
    let ev = w.next().expect("watch event");
    assert_eq!(ev["object"]["metadata"]["managedFields"], json!(es));

    // kubectl hides them unless asked.
    let plain = k.ok(&["get", "cm", "cm1", "-o", "yaml"]);
    assert!(!plain.contains("managedFields"), "{plain}");
    let shown = k.ok(&["get", "cm", "cm1", "-o", "yaml", "--show-managed-fields"]);
    for line in [
        "  managedFields:",
        "  - apiVersion: v1",
        "    fieldsType: FieldsV1",
        "    fieldsV1:",
        "      f:data:",
        "        .: {}",
        "        f:a: {}",
        "    manager: kubectl-create",
        "    operation: Update",
    ] {
        assert!(shown.lines().any(|l| l == line), "{line:?} in\n{shown}");
    }
}

#[test]
fn client_side_apply_advances_its_entry_and_label_annotate_and_patch_take_fields() {
    let sim = start();
    let k = Kubectl::new(&sim);
    k.apply_yaml(CM, &[]);
    let es = entries(&sim, CM_PATH);
    assert_eq!(managers(&es), ["kubectl-client-side-apply/Update"]);
    assert_eq!(
        es[0]["fieldsV1"],
        json!({"f:data": {".": {}, "f:a": {}},
            "f:metadata": {"f:annotations": {".": {},
                "f:kubectl.kubernetes.io/last-applied-configuration": {}}}})
    );
    // A changed manifest: the same entry, now owning b too.
    k.apply_yaml(&CM.replace("a: \"1\"", "a: \"1\"\n  b: \"2\""), &[]);
    let es = entries(&sim, CM_PATH);
    assert_eq!(managers(&es), ["kubectl-client-side-apply/Update"]);
    assert!(owns(&es[0], &["f:data", "f:b"]));

    k.ok(&["label", "configmap", "cm1", "tier=web"]);
    k.ok(&["annotate", "configmap", "cm1", "note=x"]);
    let es = entries(&sim, CM_PATH);
    let label = entry(&es, "kubectl-label", "").expect("label entry");
    assert_eq!(label["operation"], "Update");
    assert_eq!(
        label["fieldsV1"],
        json!({"f:metadata": {"f:labels": {".": {}, "f:tier": {}}}})
    );
    let note = entry(&es, "kubectl-annotate", "").expect("annotate entry");
    assert_eq!(
        note["fieldsV1"],
        json!({"f:metadata": {"f:annotations": {"f:note": {}}}})
    );

    // A merge patch takes data.a from the applier.
    k.ok(&[
        "patch",
        "configmap",
        "cm1",
        "--type=merge",
        "-p",
        r#"{"data":{"a":"9"}}"#,
    ]);
    let es = entries(&sim, CM_PATH);
    let patch = entry(&es, "kubectl-patch", "").expect("patch entry");
    assert_eq!(patch["fieldsV1"], json!({"f:data": {"f:a": {}}}));
    let csa = entry(&es, "kubectl-client-side-apply", "").expect("csa");
    assert!(!owns(csa, &["f:data", "f:a"]), "a was taken: {csa}");
    assert!(owns(csa, &["f:data", "f:b"]));

    // Removing the label leaves kubectl-label owning nothing: its entry goes.
    k.ok(&["label", "configmap", "cm1", "tier-"]);
    let es = entries(&sim, CM_PATH);
    assert!(entry(&es, "kubectl-label", "").is_none(), "{es:?}");
}

#[test]
fn a_write_that_changes_nothing_keeps_the_object_and_its_times() {
    let sim = start();
    let k = Kubectl::new(&sim);
    k.apply_yaml(CM, &["--server-side"]);
    let (_, before) = get_json(&sim, CM_PATH);
    std::thread::sleep(Duration::from_millis(1100));
    k.apply_yaml(CM, &["--server-side"]);
    let (code, v) = send_json(
        &sim,
        "PATCH",
        &format!("{CM_PATH}?fieldManager=other"),
        "application/merge-patch+json",
        &json!({"data": {"a": "1"}}),
    );
    assert_eq!(code, 200, "{v}");
    let (_, after) = get_json(&sim, CM_PATH);
    assert_eq!(after, before, "no-op writes commit nothing");
}

#[test]
fn server_side_apply_owns_its_fields_conflicts_and_force_takes_them_over() {
    let sim = start();
    let k = Kubectl::new(&sim);
    k.apply_yaml(CM, &["--server-side"]);
    let es = entries(&sim, CM_PATH);
    assert_eq!(managers(&es), ["kubectl/Apply"]);
    assert_eq!(es[0]["fieldsV1"], json!({"f:data": {"f:a": {}}}));
    assert!(is_rfc3339_seconds(&es[0]["time"]));

    // Another manager changing a: 409, kubectl exits non-zero with the apiserver's message.
    let other = CM.replace("a: \"1\"", "a: \"2\"");
    let path = k.write_manifest(&other);
    let out = k.run(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        &path.to_string_lossy(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .data.a"),
        "{err}"
    );
    // The raw Status, as a real server sends it.
    let (code, st) = send_json(
        &sim,
        "PATCH",
        &format!("{CM_PATH}?fieldManager=other&force=false"),
        "application/apply-patch+yaml",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1"}, "data": {"a": "2"}}),
    );
    assert_eq!(code, 409);
    assert_eq!(st["kind"], "Status");
    assert_eq!(st["status"], "Failure");
    assert_eq!(st["reason"], "Conflict");
    assert_eq!(st["code"], 409);
    assert_eq!(
        st["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"kubectl\"", "field": ".data.a"}])
    );
    let (_, obj) = get_json(&sim, CM_PATH);
    assert_eq!(obj["data"]["a"], "1", "a conflicting apply changes nothing");

    // --force-conflicts: other takes a, kubectl's entry (owning nothing else) goes.
    k.ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        &path.to_string_lossy(),
    ]);
    let es = entries(&sim, CM_PATH);
    assert_eq!(managers(&es), ["other/Apply"]);
    assert_eq!(es[0]["fieldsV1"], json!({"f:data": {"f:a": {}}}));
    let (_, obj) = get_json(&sim, CM_PATH);
    assert_eq!(obj["data"]["a"], "2");

    // Applying the same value as the owner shares the field instead of conflicting; a field
    // an applier drops and nobody else owns is removed.
    k.apply_yaml(
        &other.replace("a: \"2\"", "a: \"2\"\n  b: \"3\""),
        &["--server-side"],
    );
    let es = entries(&sim, CM_PATH);
    assert!(owns(
        entry(&es, "other", "").expect("other"),
        &["f:data", "f:a"]
    ));
    assert!(owns(
        entry(&es, "kubectl", "").expect("kubectl"),
        &["f:data", "f:a"]
    ));
    k.apply_yaml(&other, &["--server-side"]);
    let (_, obj) = get_json(&sim, CM_PATH);
    assert_eq!(obj["data"], json!({"a": "2"}), "b pruned");
}

#[test]
fn client_side_then_server_side_apply_upgrades_without_conflicts() {
    let sim = start();
    let k = Kubectl::new(&sim);
    k.apply_yaml(DEPLOY, &[]);
    k.apply_yaml(&DEPLOY.replace("img:1", "img:2"), &["--server-side"]);
    let es = entries(&sim, DEPLOY_PATH);
    let ssa = entry(&es, "kubectl", "").expect("kubectl entry");
    assert_eq!(ssa["operation"], "Apply");
    assert!(owns(
        ssa,
        &[
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"a\"}",
            "f:image"
        ]
    ));
    assert!(
        entry(&es, "kubectl-client-side-apply", "").is_none_or(|e| !owns(
            e,
            &[
                "f:spec",
                "f:template",
                "f:spec",
                "f:containers",
                "k:{\"name\":\"a\"}",
                "f:image"
            ]
        )),
        "{es:?}"
    );
    let (_, d) = get_json(&sim, DEPLOY_PATH);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "img:2"
    );
    let last = d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap_or("");
    assert!(last.contains("img:2"), "the annotation follows: {last}");
}

#[test]
fn scale_and_status_writes_are_recorded_with_their_subresource() {
    let sim = start();
    let k = Kubectl::new(&sim);
    k.apply_yaml(DEPLOY, &[]);
    let es = entries(&sim, DEPLOY_PATH);
    let csa = entry(&es, "kubectl-client-side-apply", "").expect("csa");
    assert!(owns(csa, &["f:spec", "f:replicas"]));
    assert!(
        csa["fieldsV1"]["f:spec"].get(".").is_none(),
        "spec exists in a Deployment's zero value: {csa}"
    );
    assert_eq!(
        csa["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"a\"}"],
        json!({".": {}, "f:image": {}, "f:name": {}})
    );

    k.ok(&["scale", "deployment", "web", "--replicas=3"]);
    let es = entries(&sim, DEPLOY_PATH);
    let scale = entry(&es, "kubectl", "scale").expect("scale entry");
    assert_eq!(scale["operation"], "Update");
    assert_eq!(scale["apiVersion"], "apps/v1");
    assert_eq!(scale["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert!(scale.get("time").is_none(), "ScaleHandler leaves no time");
    let csa = entry(&es, "kubectl-client-side-apply", "").expect("csa");
    assert!(
        !owns(csa, &["f:spec", "f:replicas"]),
        "replicas taken: {csa}"
    );

    k.ok(&[
        "patch",
        "deployment",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":3}}"#,
    ]);
    let es = entries(&sim, DEPLOY_PATH);
    let status = entry(&es, "kubectl-patch", "status").expect("status entry");
    assert_eq!(status["operation"], "Update");
    assert!(is_rfc3339_seconds(&status["time"]));
    assert_eq!(status["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
    assert!(entry(&es, "kubectl-patch", "").is_none());
}

#[test]
fn managers_default_to_the_user_agent_and_explicit_lists_replace_or_clear() {
    let sim = start();
    let body = json!({"metadata": {"name": "cm1"}, "data": {"a": "1"}}).to_string();
    let r = kube_sim::request(
        sim.addr(),
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[
            ("Content-Type", "application/json"),
            ("User-Agent", "my-controller/1.2.3 (linux/amd64) build/abc"),
        ],
        body.as_bytes(),
    )
    .expect("create");
    assert_eq!(r.status, 201);
    let es = entries(&sim, CM_PATH);
    assert_eq!(managers(&es), ["my-controller/Update"]);

    // Given entries replace the stored ones.
    let mine = json!([{"manager": "imported", "operation": "Update", "apiVersion": "v1",
        "time": "2020-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}}]);
    let (code, v) = send_json(
        &sim,
        "PATCH",
        &format!("{CM_PATH}?fieldManager=x"),
        "application/merge-patch+json",
        &json!({"metadata": {"managedFields": mine}}),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        entries(&sim, CM_PATH),
        mine.as_array().cloned().unwrap_or_default()
    );
    // [{}] and [] clear them.
    for reset in [json!([{}]), json!([])] {
        send_json(
            &sim,
            "PATCH",
            &format!("{CM_PATH}?fieldManager=x"),
            "application/merge-patch+json",
            &json!({"metadata": {"managedFields": mine}}),
        );
        let (code, v) = send_json(
            &sim,
            "PATCH",
            &format!("{CM_PATH}?fieldManager=x"),
            "application/merge-patch+json",
            &json!({"metadata": {"managedFields": reset}}),
        );
        assert_eq!(code, 200);
        assert!(v["metadata"].get("managedFields").is_none(), "{reset}: {v}");
    }
    // Apply bodies may not carry them; too long a manager is invalid.
    let (code, v) = send_json(
        &sim,
        "PATCH",
        &format!("{CM_PATH}?fieldManager=x"),
        "application/apply-patch+yaml",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1", "managedFields": mine}}),
    );
    assert_eq!(
        (code, v["message"].as_str()),
        (400, Some("metadata.managedFields must be nil"))
    );
    let long = "m".repeat(129);
    let (code, v) = send_json(
        &sim,
        "PATCH",
        &format!("{CM_PATH}?fieldManager={long}"),
        "application/merge-patch+json",
        &json!({"data": {"b": "2"}}),
    );
    assert_eq!(code, 422, "{v}");
}

#[test]
fn admin_writers_and_bootstrap_namespaces_have_their_own_managers() {
    let sim = start();
    let es = entries(&sim, "/api/v1/namespaces/default");
    assert_eq!(managers(&es), ["kube-apiserver/Update"]);
    assert_eq!(
        es[0]["fieldsV1"],
        json!({"f:metadata": {"f:labels": {".": {}, "f:kubernetes.io/metadata.name": {}}}})
    );
    sim.admin("POST", "/_sim/load?namespace=bulk&count=3&labels=app=x")
        .expect("load");
    let es = entries(&sim, "/api/v1/namespaces/bulk/configmaps/configmap-000001");
    assert_eq!(managers(&es), ["kube-sim/Update"]);
    assert_eq!(
        es[0]["fieldsV1"],
        json!({"f:data": {".": {}, "f:pad": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
    );
    assert_eq!(
        managers(&entries(&sim, "/api/v1/namespaces/bulk")),
        ["kube-sim/Update"]
    );
    // Bulk objects share one managedFields value; a write to one starts from it.
    let one = "/api/v1/namespaces/bulk/configmaps/configmap-000001";
    let mut w = RawWatch::open(
        sim.addr(),
        "/api/v1/namespaces/bulk/configmaps?watch=true&resourceVersion=0",
    );
    let (code, _) = send_json(
        &sim,
        "PATCH",
        &format!("{one}?fieldManager=patcher"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"app": "y"}}}),
    );
    assert_eq!(code, 200);
    let es = entries(&sim, one);
    let mut ms = managers(&es);
    ms.sort();
    assert_eq!(ms, ["kube-sim/Update", "patcher/Update"]);
    let ks = entry(&es, "kube-sim", "").expect("kube-sim");
    assert_eq!(
        ks["fieldsV1"],
        json!({"f:data": {".": {}, "f:pad": {}}, "f:metadata": {"f:labels": {}}})
    );
    let (code, _) = send_json(
        &sim,
        "DELETE",
        "/api/v1/namespaces/bulk/configmaps/configmap-000002",
        "application/json",
        &json!({}),
    );
    assert_eq!(code, 200);
    let events = w.take(5);
    let deleted = events
        .iter()
        .find(|e| e["type"] == "DELETED")
        .expect("deleted");
    assert_eq!(
        deleted["object"]["metadata"]["managedFields"][0]["manager"],
        "kube-sim"
    );
    sim.admin("POST", "/_sim/prerender?namespace=bulk&count=2&prefix=b-")
        .expect("prerender");
    sim.admin("POST", "/_sim/burst").expect("burst");
    assert_eq!(
        managers(&entries(
            &sim,
            "/api/v1/namespaces/bulk/configmaps/b-000000"
        )),
        ["kube-sim/Update"]
    );
    sim.admin(
        "POST",
        "/_sim/churn?count=200&namespace=bulk&seed=3&wait=true",
    )
    .expect("churn");
    assert!(wait_until(Duration::from_secs(1), || {
        let state = sim
            .admin("GET", "/_sim/state?resource=configmaps&namespace=bulk")
            .expect("state");
        state["objects"].as_array().is_some_and(|objs| {
            objs.iter().all(|o| {
                o["metadata"]["managedFields"]
                    .as_array()
                    .is_some_and(|m| m.iter().all(|e| e["manager"] == "kube-sim"))
            })
        })
    }));
}
