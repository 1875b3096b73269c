//! The `/_sim/` admin API behaves as documented in sim/README.md.

use std::time::{Duration, Instant};

use kube_sim::testkit::Kubectl;
use kube_sim::{Options, request};
use serde_json::Value;

use crate::util::{RawWatch, get_json, start, start_with};

const AGG_ACCEPT: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";

#[test]
fn fail_answers_the_next_n_requests_with_the_code() {
    let sim = start();
    sim.admin(
        "POST",
        "/_sim/fail?code=429&count=2&retry_after=3&path=/configmaps",
    )
    .expect("fail");
    let r = request(sim.addr(), "GET", "/api/v1/namespaces", &[], b"").expect("get");
    assert_eq!(r.status, 200, "path filter");
    for _ in 0..2 {
        let r = request(sim.addr(), "GET", "/api/v1/configmaps", &[], b"").expect("get");
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("3"));
        let v = r.json().expect("status");
        assert_eq!(v["reason"], "TooManyRequests");
        assert_eq!(v["details"]["retryAfterSeconds"], 3);
    }
    assert_eq!(
        get_json(&sim, "/api/v1/configmaps").0,
        200,
        "count honoured"
    );
    sim.admin("POST", "/_sim/fail?code=503&count=-1")
        .expect("fail forever");
    for _ in 0..3 {
        let (code, v) = get_json(&sim, "/api/v1/configmaps");
        assert_eq!(
            (code, v["reason"].as_str()),
            (503, Some("ServiceUnavailable"))
        );
    }
    sim.admin("POST", "/_sim/fail?clear=true").expect("clear");
    assert_eq!(get_json(&sim, "/api/v1/configmaps").0, 200);
    sim.admin("POST", "/_sim/fail?code=500&count=1")
        .expect("500");
    assert_eq!(get_json(&sim, "/version").1["reason"], "InternalError");
}

#[test]
fn latency_delays_every_api_request_but_not_the_admin_api() {
    let sim = start();
    sim.admin("POST", "/_sim/latency?ms=300").expect("latency");
    let t = Instant::now();
    get_json(&sim, "/api/v1/namespaces");
    assert!(t.elapsed() >= Duration::from_millis(300));
    let t = Instant::now();
    sim.admin("GET", "/_sim/watches").expect("admin");
    assert!(t.elapsed() < Duration::from_millis(300));
    sim.admin("POST", "/_sim/latency?ms=0").expect("clear");
    let t = Instant::now();
    get_json(&sim, "/api/v1/namespaces");
    assert!(t.elapsed() < Duration::from_millis(300));
}

#[test]
fn forbid_denies_one_resource_like_rbac() {
    let sim = start();
    sim.admin("POST", "/_sim/forbid?resource=secrets&verbs=list,watch")
        .expect("forbid");
    let (code, v) = get_json(&sim, "/api/v1/secrets");
    assert_eq!(code, 403);
    assert_eq!(
        v["message"],
        "secrets is forbidden: User \"system:serviceaccount:faro:faro\" cannot list resource \"secrets\" in API group \"\" at the cluster scope"
    );
    let (code, v) = get_json(&sim, "/api/v1/namespaces/default/secrets?watch=true");
    assert_eq!(code, 403);
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("in the namespace \"default\""))
    );
    assert_eq!(
        get_json(&sim, "/api/v1/configmaps").0,
        200,
        "other resources keep flowing"
    );
    sim.admin("POST", "/_sim/forbid?resource=deployments&group=apps")
        .expect("forbid");
    assert_eq!(get_json(&sim, "/apis/apps/v1/deployments").0, 403);
    sim.admin("POST", "/_sim/forbid?clear=true").expect("clear");
    assert_eq!(get_json(&sim, "/api/v1/secrets").0, 200);
}

#[tokio::test]
async fn auth_requires_the_bearer_token_of_the_kubeconfig() {
    let sim = start();
    sim.admin("POST", "/_sim/auth?token=kube-sim")
        .expect("auth");
    let (code, v) = get_json(&sim, "/api/v1/namespaces");
    assert_eq!((code, v["reason"].as_str()), (401, Some("Unauthorized")));
    let r = request(
        sim.addr(),
        "GET",
        "/api/v1/namespaces",
        &[("Authorization", "Bearer kube-sim")],
        b"",
    )
    .expect("get");
    assert_eq!(r.status, 200);
    // kube-rs sends the kubeconfig's token (kubectl sends tokens over TLS only, so it gets 401 here).
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&path).expect("kubeconfig");
    let kc = kube::config::Kubeconfig::read_from(&path).expect("read");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(cfg).expect("client");
    let nss: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    assert_eq!(
        nss.list(&Default::default())
            .await
            .expect("authorized list")
            .items
            .len(),
        4
    );
    assert!(!Kubectl::new(&sim).run(&["get", "ns"]).status.success());
    sim.admin("POST", "/_sim/auth?clear=true").expect("clear");
    assert_eq!(get_json(&sim, "/api/v1/namespaces").0, 200);
}

fn apps_freshness(sim: &kube_sim::SimHandle) -> String {
    let r = request(sim.addr(), "GET", "/apis", &[("Accept", AGG_ACCEPT)], b"").expect("apis");
    assert_eq!(
        r.header("content-type"),
        Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    );
    let v = r.json().expect("json");
    v["items"]
        .as_array()
        .and_then(|i| i.iter().find(|g| g["metadata"]["name"] == "apps"))
        .map(|g| {
            g["versions"][0]["freshness"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}

#[test]
fn group_down_is_stale_in_aggregated_discovery_and_503_elsewhere() {
    let sim = start();
    assert_eq!(apps_freshness(&sim), "Current");
    sim.admin("POST", "/_sim/group-down?group=apps")
        .expect("down");
    assert_eq!(apps_freshness(&sim), "Stale");
    assert_eq!(get_json(&sim, "/apis/apps/v1").0, 503);
    assert_eq!(get_json(&sim, "/apis/apps/v1/deployments").0, 503);
    assert_eq!(get_json(&sim, "/apis/batch/v1/jobs").0, 200);
    // client-go drops stale group versions: the group's kinds vanish for kubectl.
    let k = Kubectl::new(&sim);
    assert!(!k.ok(&["api-resources"]).contains("deployments"));
    assert!(!k.run(&["get", "deployments"]).status.success());
    // Legacy discovery: the group is listed but its version document fails.
    sim.admin("POST", "/_sim/discovery?aggregated=false")
        .expect("legacy");
    let r = request(sim.addr(), "GET", "/apis", &[("Accept", AGG_ACCEPT)], b"").expect("apis");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json().expect("json")["kind"], "APIGroupList");
    let out = Kubectl::new(&sim).run(&["api-resources"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("apps/v1: the server is currently unable to handle the request"),
        "{err}"
    );
    sim.admin("POST", "/_sim/group-up?group=apps").expect("up");
    assert_eq!(get_json(&sim, "/apis/apps/v1").0, 200);
    assert!(
        Kubectl::new(&sim)
            .ok(&["api-resources"])
            .contains("deployments")
    );
}

#[test]
fn load_creates_objects_of_the_requested_size_and_state_returns_them() {
    let sim = start();
    let r = sim
        .admin(
            "POST",
            "/_sim/load?namespace=bulk&count=500&size=2048&prefix=cm-&labels=app=x,tier=y",
        )
        .expect("load");
    assert_eq!(r["created"], 500);
    let state = sim
        .admin("GET", "/_sim/state?resource=configmaps&namespace=bulk")
        .expect("state");
    let objs = state["objects"].as_array().cloned().unwrap_or_default();
    assert_eq!(objs.len(), 500);
    assert_eq!(state["resourceVersion"], r["resourceVersion"]);
    let size = objs[0].to_string().len();
    assert!((1800..2300).contains(&size), "about 2 KiB: {size}");
    assert_eq!(objs[0]["metadata"]["labels"]["tier"], "y");
    assert_eq!(objs[0]["metadata"]["name"], "cm-000000");
    let all = sim.admin("GET", "/_sim/state").expect("state");
    assert!(all["objects"].as_array().is_some_and(|o| {
        o.iter()
            .any(|x| x["kind"] == "Namespace" && x["metadata"]["name"] == "bulk")
    }));
    assert!(sim.admin("POST", "/_sim/load?resource=nope").is_err());
}

#[test]
fn churn_reports_its_operations_and_history_records_them() {
    let sim = start();
    let before = sim.admin("GET", "/_sim/history").expect("history")["resourceVersion"].clone();
    let r = sim
        .admin(
            "POST",
            "/_sim/churn?count=300&namespace=a,b&seed=7&wait=true",
        )
        .expect("churn");
    assert_eq!(r["done"], 300);
    let created = r["created"].as_u64().unwrap_or(0);
    let deleted = r["deleted"].as_u64().unwrap_or(0);
    assert!(
        created > 0 && r["updated"].as_u64().unwrap_or(0) > 0 && deleted > 0,
        "{r}"
    );
    let state = sim
        .admin("GET", "/_sim/state?resource=configmaps")
        .expect("state");
    let live = state["objects"].as_array().map(|o| {
        o.iter()
            .filter(|x| {
                x["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("churn-"))
            })
            .count()
    });
    assert_eq!(live, Some((created - deleted) as usize));
    let since = before.as_str().unwrap_or("0");
    let h = sim
        .admin("GET", &format!("/_sim/history?since={since}"))
        .expect("history");
    let events = h["events"].as_array().cloned().unwrap_or_default();
    assert!(events.iter().any(|e| e["type"] == "MODIFIED"));
    assert!(events.iter().all(|e| {
        e["time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('.'))
    }));
    // Background mode.
    assert_eq!(
        sim.admin("POST", "/_sim/churn?count=50&rate=1000")
            .expect("bg")["started"],
        true
    );
    assert!(crate::util::wait_until(Duration::from_secs(5), || sim
        .admin("GET", "/_sim/churn")
        .map(|s| s["done"] == 50 && s["running"] == false)
        .unwrap_or(false)));
}

#[test]
fn bursts_reach_an_open_watch_in_full() {
    let sim = start();
    let n = 5000;
    sim.admin(
        "POST",
        &format!("/_sim/prerender?namespace=burst&count={n}&size=1024"),
    )
    .expect("prerender");
    let rv = sim.admin("GET", "/_sim/history").expect("h")["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let mut w = RawWatch::open(
        sim.addr(),
        &format!("/api/v1/namespaces/burst/configmaps?watch=true&resourceVersion={rv}"),
    );
    assert_eq!(w.status, 200);
    assert!(crate::util::wait_until(Duration::from_secs(5), || sim
        .admin("GET", "/_sim/watches")
        .map(|v| v["count"] == 1)
        .unwrap_or(false)));
    let b = sim.admin("POST", "/_sim/burst").expect("burst");
    let first: u64 = b["first_rv"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let events = w.take(n);
    assert_eq!(events.len(), n);
    assert!(
        events
            .iter()
            .all(|e| e["type"] == "ADDED" && e["object"]["kind"] == "ConfigMap")
    );
    assert_eq!(
        events[0]["object"]["metadata"]["resourceVersion"],
        first.to_string()
    );
    assert_eq!(
        events[n - 1]["object"]["metadata"]["resourceVersion"],
        b["last_rv"]
    );
    let (_, one) = get_json(
        &sim,
        &format!(
            "/api/v1/namespaces/burst/configmaps/{}",
            events[7]["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or("")
        ),
    );
    assert_eq!(one["metadata"]["resourceVersion"], (first + 7).to_string());
    // A write between prerender and burst makes the burst refuse.
    sim.admin("POST", "/_sim/prerender?namespace=burst&count=10")
        .expect("prerender");
    sim.admin("POST", "/_sim/load?namespace=burst&count=1&prefix=x-")
        .expect("write");
    let err = sim.admin("POST", "/_sim/burst").expect_err("409");
    assert!(err.to_string().contains("409"));
}

#[test]
fn watches_lists_open_streams_with_their_parameters() {
    let sim = start();
    let _w = RawWatch::open(
        sim.addr(),
        "/api/v1/namespaces/default/configmaps?watch=1&labelSelector=app%3Dx&fieldSelector=metadata.name%3Da&resourceVersion=0",
    );
    assert!(crate::util::wait_until(Duration::from_secs(5), || sim
        .admin("GET", "/_sim/watches")
        .map(|v| v["count"] == 1)
        .unwrap_or(false)));
    let v: Value = sim.admin("GET", "/_sim/watches").expect("watches");
    let w = &v["watches"][0];
    assert_eq!(w["resource"], "configmaps");
    assert_eq!(w["namespace"], "default");
    assert_eq!(w["labelSelector"], "app=x");
    assert_eq!(w["fieldSelector"], "metadata.name=a");
    assert_eq!(w["resourceVersion"], "0");
    assert!(w["started"].as_str().is_some());
    assert_eq!(
        sim.admin("POST", "/_sim/drop-watches").expect("drop")["closed"],
        1
    );
}

#[test]
fn a_silenced_watch_stays_open_but_sends_nothing_and_a_new_watch_gets_what_it_missed() {
    let sim = start_with(Options {
        bookmark_interval: Duration::from_millis(100),
        ..Options::default()
    });
    let rv = sim
        .admin("POST", "/_sim/load?namespace=quiet&count=1&prefix=a-")
        .expect("load")["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();
    let path = |rv: &str| {
        format!(
            "/api/v1/namespaces/quiet/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=30"
        )
    };
    let mut w = RawWatch::open(sim.addr(), &path(&rv));
    // Bookmarks flow while the watch is healthy.
    assert_eq!(w.next().expect("bookmark")["type"], "BOOKMARK");
    assert_eq!(
        sim.admin("POST", "/_sim/silence-watches?resource=configmaps")
            .expect("silence")["silenced"],
        1
    );
    let v: Value = sim.admin("GET", "/_sim/watches").expect("watches");
    assert_eq!(v["watches"][0]["silenced"], true);
    sim.admin("POST", "/_sim/load?namespace=quiet&count=1&prefix=b-")
        .expect("load");
    // Drop what was in flight before the silence took effect (at most bookmarks).
    w.read_timeout(Duration::from_millis(800));
    while let Some(line) = w.next() {
        assert_eq!(
            line["type"], "BOOKMARK",
            "only bookmarks sent before the silence"
        );
    }
    assert!(!w.ended, "the silenced watch stays open");
    // Neither the event nor bookmarks arrive, for many bookmark intervals.
    assert!(w.next().is_none() && !w.ended);
    // A new watch from the last RV seen gets the object committed meanwhile.
    let mut again = RawWatch::open(sim.addr(), &path(&rv));
    let added = again.next().expect("event");
    assert_eq!(added["type"], "ADDED");
    assert_eq!(added["object"]["metadata"]["name"], "b-000000");
}

#[test]
fn requests_are_recorded_and_clearable() {
    let sim = start_with(Options {
        request_log_size: 3,
        ..Options::default()
    });
    for _ in 0..5 {
        get_json(&sim, "/api/v1/namespaces?limit=1");
    }
    let r = sim.admin("GET", "/_sim/requests").expect("requests");
    assert_eq!(r["requests"].as_array().map(Vec::len), Some(3));
    assert_eq!(r["requests"][0]["query"], "limit=1");
    assert_eq!(r["last"], 5);
    let since = sim.admin("GET", "/_sim/requests?since=4").expect("since");
    assert_eq!(since["requests"].as_array().map(Vec::len), Some(1));
    sim.admin("POST", "/_sim/requests?clear=true")
        .expect("clear");
    assert_eq!(
        sim.admin("GET", "/_sim/requests").expect("r")["requests"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    assert!(sim.admin("POST", "/_sim/nope").is_err());
}

#[test]
fn a_modify_burst_updates_the_objects_of_an_earlier_burst() {
    let sim = start();
    let n = 100;
    sim.admin(
        "POST",
        &format!("/_sim/prerender?namespace=burst&count={n}&size=1024&prefix=m-"),
    )
    .expect("prerender");
    sim.admin("POST", "/_sim/burst").expect("burst");
    let (_, before) = get_json(&sim, "/api/v1/namespaces/burst/configmaps/m-000042");
    let rv = sim.admin("GET", "/_sim/history").expect("h")["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let mut w = RawWatch::open(
        sim.addr(),
        &format!("/api/v1/namespaces/burst/configmaps?watch=true&resourceVersion={rv}"),
    );
    sim.admin(
        "POST",
        &format!("/_sim/prerender?namespace=burst&count={n}&prefix=m-&modify=true"),
    )
    .expect("prerender modify");
    sim.admin("POST", "/_sim/burst").expect("burst");
    let events = w.take(n);
    assert!(events.iter().all(|e| e["type"] == "MODIFIED"));
    let e = &events[42]["object"];
    assert_eq!(e["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(e["data"]["pad"], before["data"]["pad"]);
    assert_ne!(e["data"]["value"], before["data"]["value"]);
    let (_, after) = get_json(&sim, "/api/v1/namespaces/burst/configmaps/m-000042");
    assert_eq!(after["data"]["value"], e["data"]["value"]);
    assert_eq!(
        after["metadata"]["resourceVersion"],
        e["metadata"]["resourceVersion"]
    );
    let err = sim
        .admin(
            "POST",
            "/_sim/prerender?namespace=burst&count=1&prefix=none-&modify=true",
        )
        .expect_err("nothing to modify");
    assert!(err.to_string().contains("none-000000"), "{err}");
}
