//! Raw protocol details: paging, watch framing, 410 as an ERROR event, validation errors,
//! and the binary's command line contract.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::util::{RawWatch, get_json, send_json, start, wait_until};

#[test]
fn paged_lists_share_one_resource_version() {
    let sim = start();
    sim.admin("POST", "/_sim/load?namespace=p&count=25&size=100")
        .expect("load");
    let (_, first) = get_json(&sim, "/api/v1/namespaces/p/configmaps?limit=10");
    let rv = first["metadata"]["resourceVersion"].clone();
    assert_eq!(first["kind"], "ConfigMapList");
    assert_eq!(first["metadata"]["remainingItemCount"], 15);
    sim.admin(
        "POST",
        "/_sim/load?namespace=p&count=5&size=100&prefix=late-",
    )
    .expect("more writes");
    let mut token = first["metadata"]["continue"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut total = first["items"].as_array().map(Vec::len).unwrap_or(0);
    while !token.is_empty() {
        let (code, page) = get_json(
            &sim,
            &format!("/api/v1/namespaces/p/configmaps?limit=10&continue={token}"),
        );
        assert_eq!(code, 200);
        assert_eq!(page["metadata"]["resourceVersion"], rv);
        total += page["items"].as_array().map(Vec::len).unwrap_or(0);
        token = page["metadata"]["continue"]
            .as_str()
            .unwrap_or("")
            .to_string();
    }
    assert_eq!(total, 25, "later writes are not in the snapshot");
    let (code, v) = get_json(
        &sim,
        "/api/v1/namespaces/p/configmaps?limit=10&continue=bogus",
    );
    assert_eq!((code, v["reason"].as_str()), (410, Some("Expired")));
}

#[test]
fn selectors_filter_lists_and_bad_ones_are_400() {
    let sim = start();
    sim.admin("POST", "/_sim/load?namespace=s&count=3&labels=app=a")
        .expect("load");
    sim.admin(
        "POST",
        "/_sim/load?namespace=s&count=2&labels=app=b&prefix=b-",
    )
    .expect("load");
    let (_, l) = get_json(&sim, "/api/v1/configmaps?labelSelector=app+in+%28b%2Cc%29");
    assert_eq!(l["items"].as_array().map(Vec::len), Some(2));
    let (_, l) = get_json(
        &sim,
        "/api/v1/namespaces/s/configmaps?fieldSelector=metadata.name%3Db-000001",
    );
    assert_eq!(l["items"].as_array().map(Vec::len), Some(1));
    let (code, v) = get_json(&sim, "/api/v1/configmaps?fieldSelector=spec.x%3D1");
    assert_eq!(code, 400);
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("is not a known field selector"))
    );
    assert_eq!(
        get_json(&sim, "/api/v1/configmaps?labelSelector=app+in+b").0,
        400
    );
}

#[test]
fn a_too_old_watch_gets_one_410_error_event_then_eof() {
    let sim = start();
    sim.admin("POST", "/_sim/load?namespace=default&count=3")
        .expect("load");
    sim.admin("POST", "/_sim/compact").expect("compact");
    let mut w = RawWatch::open(
        sim.addr(),
        "/api/v1/configmaps?&watch=true&resourceVersion=2&allowWatchBookmarks=true",
    );
    assert_eq!(w.status, 200);
    let e = w.next().expect("error event");
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    assert!(w.next().is_none() && w.ended);
    // The list RV stays watchable right after compaction.
    let (_, list) = get_json(&sim, "/api/v1/configmaps");
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut w = RawWatch::open(
        sim.addr(),
        &format!("/api/v1/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
    );
    assert!(w.next().is_none(), "no error");
    assert!(w.ended, "a clean close at the timeout");
}

#[test]
fn watches_replay_state_stream_changes_and_end_at_the_timeout() {
    let sim = start();
    sim.admin("POST", "/_sim/bookmarks?interval_ms=200")
        .expect("bookmarks");
    sim.admin("POST", "/_sim/load?namespace=default&count=2")
        .expect("load");
    let mut w = RawWatch::open(
        sim.addr(),
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=2&allowWatchBookmarks=true",
    );
    let first = w.take(2);
    assert!(
        first
            .iter()
            .all(|e| e["type"] == "ADDED" && e["object"]["apiVersion"] == "v1")
    );
    send_json(
        &sim,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/configmap-000000",
        "application/merge-patch+json",
        &json!({"data": {"x": "y"}}),
    );
    let mut types = Vec::new();
    while let Some(e) = w.next() {
        if e["type"] == "BOOKMARK" {
            assert_eq!(e["object"]["kind"], "ConfigMap");
            assert!(e["object"]["metadata"]["resourceVersion"].is_string());
        }
        types.push(e["type"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(types[0], "MODIFIED");
    assert!(
        types.iter().filter(|t| *t == "BOOKMARK").count() >= 2,
        "{types:?}"
    );
    assert!(w.ended);
}

#[test]
fn streaming_lists_end_their_initial_events_with_an_annotated_bookmark() {
    let sim = start();
    sim.admin("POST", "/_sim/load?namespace=default&count=3")
        .expect("load");
    let mut w = RawWatch::open(
        sim.addr(),
        "/api/v1/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=",
    );
    let ev = w.take(4);
    assert!(ev[..3].iter().all(|e| e["type"] == "ADDED"));
    assert_eq!(ev[3]["type"], "BOOKMARK");
    assert_eq!(
        ev[3]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let (code, v) = get_json(&sim, "/api/v1/configmaps?watch=true&sendInitialEvents=true");
    assert_eq!(code, 422);
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("ListOptions.meta.k8s.io \"\" is invalid"))
    );
}

#[test]
fn the_watch_list_switch_rejects_streaming_lists_or_leaves_out_their_end_bookmark() {
    let sim = start();
    sim.admin("POST", "/_sim/load?namespace=default&count=3")
        .expect("load");
    sim.admin("POST", "/_sim/bookmarks?interval_ms=100")
        .expect("bookmarks");
    let path = "/api/v1/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true";
    sim.admin("POST", "/_sim/watch-list?mode=reject")
        .expect("reject");
    let (code, v) = get_json(&sim, path);
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("WatchList feature gate")),
        "{v}"
    );
    sim.admin("POST", "/_sim/watch-list?mode=no-end-bookmark")
        .expect("no end bookmark");
    let mut w = RawWatch::open(sim.addr(), path);
    let ev = w.take(5);
    assert!(ev[..3].iter().all(|e| e["type"] == "ADDED"), "{ev:?}");
    // Then only ordinary progress bookmarks.
    for e in &ev[3..] {
        assert_eq!(e["type"], "BOOKMARK");
        assert!(e["object"]["metadata"]["annotations"].is_null(), "{e}");
    }
    sim.admin("POST", "/_sim/watch-list?mode=on").expect("on");
    let mut w = RawWatch::open(sim.addr(), path);
    let ev = w.take(4);
    assert_eq!(
        ev[3]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert!(
        sim.admin("POST", "/_sim/watch-list?mode=sometimes")
            .is_err()
    );
}

#[test]
fn errors_are_status_objects() {
    let sim = start();
    let (code, v) = get_json(&sim, "/api/v1/namespaces/default/configmaps/missing");
    assert_eq!(
        (code, v["kind"].as_str(), v["reason"].as_str()),
        (404, Some("Status"), Some("NotFound"))
    );
    assert_eq!(v["message"], "configmaps \"missing\" not found");
    let (code, v) = get_json(&sim, "/apis/nope/v1/things");
    assert_eq!(
        (code, v["message"].as_str()),
        (
            404,
            Some("the server could not find the requested resource")
        )
    );
    let cm = json!({"metadata": {"name": "c"}});
    assert_eq!(
        send_json(
            &sim,
            "POST",
            "/api/v1/namespaces/nope/configmaps",
            "application/json",
            &cm
        )
        .0,
        404
    );
    assert_eq!(
        send_json(
            &sim,
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            &cm
        )
        .0,
        201
    );
    let (code, v) = send_json(
        &sim,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        &cm,
    );
    assert_eq!((code, v["reason"].as_str()), (409, Some("AlreadyExists")));
    let stale = json!({"metadata": {"name": "c", "resourceVersion": "1"}, "data": {}});
    let (code, v) = send_json(
        &sim,
        "PUT",
        "/api/v1/namespaces/default/configmaps/c",
        "application/json",
        &stale,
    );
    assert_eq!((code, v["reason"].as_str()), (409, Some("Conflict")));
    let r = kube_sim::request(
        sim.addr(),
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[("Content-Type", "application/json")],
        b"{not json",
    )
    .expect("post");
    assert_eq!(r.status, 400);
    let (code, _) = send_json(
        &sim,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/c",
        "text/plain",
        &json!({}),
    );
    assert_eq!(code, 415);
    let (code, v) = send_json(
        &sim,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        &json!({"metadata": {"name": "Bad_Name"}}),
    );
    assert_eq!((code, v["reason"].as_str()), (422, Some("Invalid")));
}

#[test]
fn json_patch_and_apply_patch_work_over_http() {
    let sim = start();
    let path = "/api/v1/namespaces/default/configmaps/ssa?fieldManager=test";
    let (code, v) = send_json(
        &sim,
        "PATCH",
        path,
        "application/apply-patch+yaml",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}}),
    );
    assert_eq!((code, v["data"]["a"].as_str()), (201, Some("1")));
    let (code, _) = send_json(
        &sim,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/ssa",
        "application/apply-patch+yaml",
        &json!({}),
    );
    assert_eq!(code, 422, "apply needs a fieldManager");
    let (code, v) = send_json(
        &sim,
        "PATCH",
        path,
        "application/json-patch+json",
        &json!([{"op": "add", "path": "/data/b", "value": "2"}]),
    );
    assert_eq!((code, v["data"]["b"].as_str()), (200, Some("2")));
    let (code, _) = send_json(
        &sim,
        "PATCH",
        path,
        "application/json-patch+json",
        &json!([{"op": "test", "path": "/data/b", "value": "3"}]),
    );
    assert_eq!(code, 422);
}

#[test]
fn the_binary_prints_its_url_first_and_writes_a_kubeconfig() {
    let dir = tempfile::tempdir().expect("tmp");
    let kc = dir.path().join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .args(["--port", "0", "--kubeconfig"])
        .arg(&kc)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(
        std::fs::read_to_string(&kc)
            .expect("kubeconfig")
            .contains(&url)
    );
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().expect("addr");
    let r = kube_sim::request(addr, "GET", "/version", &[], b"").expect("version");
    assert_eq!(r.json().expect("json")["minor"], "32");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(wait_until(Duration::from_secs(5), || child
        .try_wait()
        .ok()
        .flatten()
        .is_some()));
}

#[test]
fn finalizers_keep_objects_and_their_namespace_until_removed() {
    let sim = start();
    sim.admin("POST", "/_sim/namespace-delay?ms=0")
        .expect("delay");
    send_json(
        &sim,
        "POST",
        "/api/v1/namespaces",
        "application/json",
        &json!({"metadata": {"name": "f"}}),
    );
    let cm = json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}});
    assert_eq!(
        send_json(
            &sim,
            "POST",
            "/api/v1/namespaces/f/configmaps",
            "application/json",
            &cm
        )
        .0,
        201
    );
    let mut w = RawWatch::open(
        sim.addr(),
        "/api/v1/namespaces/f/configmaps?watch=true&resourceVersion=0",
    );
    assert_eq!(w.next().expect("initial")["type"], "ADDED");
    let (code, v) = send_json(
        &sim,
        "DELETE",
        "/api/v1/namespaces/f/configmaps/held",
        "application/json",
        &json!({}),
    );
    assert_eq!(code, 200);
    assert!(v["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(w.next().expect("marked")["type"], "MODIFIED");
    send_json(
        &sim,
        "DELETE",
        "/api/v1/namespaces/f",
        "application/json",
        &json!({}),
    );
    std::thread::sleep(Duration::from_millis(300));
    let (_, ns) = get_json(&sim, "/api/v1/namespaces/f");
    assert_eq!(
        ns["status"]["phase"], "Terminating",
        "held by the finalizer"
    );
    let unhold = json!({"metadata": {"finalizers": null}});
    send_json(
        &sim,
        "PATCH",
        "/api/v1/namespaces/f/configmaps/held",
        "application/merge-patch+json",
        &unhold,
    );
    assert_eq!(w.next().expect("deleted")["type"], "DELETED");
    assert!(wait_until(Duration::from_secs(5), || get_json(
        &sim,
        "/api/v1/namespaces/f"
    )
    .0 == 404));
}

#[test]
fn malformed_requests_get_4xx_and_the_server_keeps_serving() {
    let sim = start();
    let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
    send_json(
        &sim,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        &cm,
    );
    let raw = |method: &str, path: &str, ct: &str, body: &[u8]| {
        kube_sim::request(sim.addr(), method, path, &[("Content-Type", ct)], body)
            .expect("request")
            .status
    };
    let cases: Vec<(&str, &str, &str, &[u8])> = vec![
        (
            "GET",
            "/api/v1/namespaces/%ff%fe/configmaps/%00",
            "application/json",
            b"",
        ),
        (
            "GET",
            "/api/v1/configmaps?limit=-5&continue=ks1.x.y",
            "application/json",
            b"",
        ),
        (
            "GET",
            "/api/v1/configmaps?limit=abc",
            "application/json",
            b"",
        ),
        (
            "GET",
            "/api/v1/configmaps?resourceVersion=abc",
            "application/json",
            b"",
        ),
        (
            "GET",
            "/api/v1/configmaps?watch=true&resourceVersion=-1",
            "application/json",
            b"",
        ),
        (
            "GET",
            "/api/v1/configmaps?watch=true&timeoutSeconds=x",
            "application/json",
            b"",
        ),
        (
            "GET",
            "/api/v1/configmaps?labelSelector=%28%28%28",
            "application/json",
            b"",
        ),
        (
            "GET",
            "/api/v1/configmaps?fieldSelector=%3D%3D%3D",
            "application/json",
            b"",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            b"[1,2]",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/vnd.kubernetes.protobuf",
            b"k8s\x00\xff\xff\xff",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/yaml",
            b"a: [: :",
        ),
        (
            "PUT",
            "/api/v1/namespaces/default/configmaps/c",
            "application/json",
            b"\"str\"",
        ),
        (
            "PUT",
            "/api/v1/namespaces/default/configmaps/c",
            "application/json",
            br#"{"metadata":{"name":"other"}}"#,
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/c",
            "application/strategic-merge-patch+json",
            b"{oops",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/c",
            "application/json-patch+json",
            br#"{"op":"add"}"#,
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/c",
            "application/merge-patch+json",
            b"[]",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/c?fieldManager=x",
            "application/apply-patch+yaml",
            b"- a\n- b\n",
        ),
        // Apply creating an object: the body must be an object with an object `metadata`.
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/new?fieldManager=x",
            "application/apply-patch+yaml",
            b"- a\n- b\n",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/new?fieldManager=x",
            "application/apply-patch+yaml",
            b"metadata: x\n",
        ),
        // A JSON patch that replaces the whole object with a number.
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/c",
            "application/json-patch+json",
            br#"[{"op":"replace","path":"","value":1}]"#,
        ),
        (
            "DELETE",
            "/api/v1/namespaces/default/configmaps/c",
            "application/json",
            b"{bad",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps/c/status",
            "application/json",
            b"{}",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods/p/log",
            "application/json",
            b"",
        ),
        (
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            "application/json",
            br#"{"metadata":{"name":"x"},"spec":{}}"#,
        ),
    ];
    for (method, path, ct, body) in cases {
        let code = raw(method, path, ct, body);
        assert!((400..500).contains(&code), "{method} {path}: {code}");
    }
    assert_eq!(
        get_json(&sim, "/api/v1/namespaces/default/configmaps/c").1["data"]["a"],
        "1"
    );
}
