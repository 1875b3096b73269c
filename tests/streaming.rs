//! Streaming lists (`sendInitialEvents=true`): used when kube-sim serves them, and the
//! page-by-page fallback when it rejects them (422) or never sends the end bookmark; the lines
//! are the same either way.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::util::{Env, Faro, configmap};

const CONFIG: &str = "resources:\n  - gvr: v1/configmaps\n  - gvr: v1/secrets\n";

/// A cluster with 2 × 300 ConfigMaps (kube-sim's bulk load) and one kubectl-made ConfigMap.
fn cluster() -> Env {
    let env = Env::start();
    for ns in ["stream-a", "stream-b"] {
        env.admin(
            "POST",
            &format!("/_sim/load?namespace={ns}&count=300&size=200"),
        );
    }
    env.apply(&configmap("default", "by-hand", &[], "1"));
    env
}

/// The lines faro printed, without their `timestamp`: what must not depend on how it listed.
fn lines_as_set(faro: &Faro) -> BTreeSet<String> {
    faro.lines()
        .iter()
        .map(|l| {
            let mut v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v.as_object_mut().expect("an object").remove("timestamp");
            v.to_string()
        })
        .collect()
}

/// faro's requests to list or watch configmaps since the log was cleared: (query, status).
fn configmap_requests(env: &Env) -> Vec<(String, u64)> {
    let requests = env.admin("GET", "/_sim/requests");
    requests["requests"]
        .as_array()
        .expect("request log")
        .iter()
        .filter(|r| r["path"] == "/api/v1/configmaps")
        .map(|r| {
            (
                r["query"].as_str().unwrap_or("").to_owned(),
                r["status"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// One run: start, ready, a change after ready arrives, stop. Returns the initial lines.
fn run(env: &Env, change: &str) -> (BTreeSet<String>, String) {
    env.admin("POST", "/_sim/requests?clear=true");
    let faro = env.watch(CONFIG, &[]);
    let initial = lines_as_set(&faro);
    env.apply(&configmap("default", change, &[], "1"));
    faro.wait_for("the change after ready", |e| {
        e.name == change && e.event_type == "ADDED"
    });
    let done = faro.stop();
    assert!(done.status.success(), "{}", done.stderr);
    (initial, done.stderr)
}

#[test]
fn streaming_lists_are_used_when_offered_and_the_fallbacks_print_the_same_lines() {
    let env = cluster();

    // Offered: one streaming list per GVR, no paged list.
    let (streamed, stderr) = run(&env, "after-1");
    assert_eq!(streamed.len(), 601, "every object, once");
    assert!(
        streamed.iter().all(|l| l.contains("\"initial\":true")),
        "{streamed:?}"
    );
    let requests = configmap_requests(&env);
    assert!(
        requests
            .iter()
            .any(|(q, s)| q.contains("sendInitialEvents=true") && *s == 200),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|(q, _)| q.contains("limit=")),
        "no paged list: {requests:?}"
    );
    assert!(!stderr.contains("streaming lists"), "{stderr}");
    env.kubectl(&["delete", "configmap", "after-1"]);

    // Rejected with the 422 of a server whose WatchList gate is off: paged lists.
    env.admin("POST", "/_sim/watch-list?mode=reject");
    let (paged, stderr) = run(&env, "after-2");
    assert_eq!(paged, streamed, "the same lines either way");
    let requests = configmap_requests(&env);
    assert!(
        requests
            .iter()
            .any(|(q, s)| q.contains("sendInitialEvents=true") && *s == 422),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|(q, s)| q.contains("limit=") && *s == 200),
        "{requests:?}"
    );
    assert_eq!(
        stderr
            .matches("does not serve streaming lists of v1/configmaps")
            .count(),
        1,
        "{stderr}"
    );
    env.kubectl(&["delete", "configmap", "after-2"]);

    // Streamed without the end bookmark, then an ordinary progress bookmark: paged lists.
    env.admin("POST", "/_sim/watch-list?mode=no-end-bookmark");
    env.admin("POST", "/_sim/bookmarks?interval_ms=300");
    let (no_end, stderr) = run(&env, "after-3");
    assert_eq!(no_end, streamed, "the same lines either way");
    assert!(
        stderr.contains("a bookmark without k8s.io/initial-events-end"),
        "{stderr}"
    );
    let requests = configmap_requests(&env);
    assert!(
        requests
            .iter()
            .any(|(q, s)| q.contains("limit=") && *s == 200),
        "{requests:?}"
    );
}

#[test]
fn a_streaming_list_that_goes_quiet_without_its_end_bookmark_falls_back_to_pages() {
    let env = cluster();
    // Bookmarks only every minute: the stream just stops after the initial events.
    env.admin("POST", "/_sim/watch-list?mode=no-end-bookmark");
    env.admin("POST", "/_sim/bookmarks?interval_ms=60000");
    let started = std::time::Instant::now();
    let (lines, stderr) = run(&env, "after");
    assert_eq!(lines.len(), 601, "every object, once");
    assert!(
        stderr.contains("nothing for 10s and no k8s.io/initial-events-end bookmark"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_relist_by_streaming_list_reports_what_was_deleted_meanwhile() {
    let env = cluster();
    env.admin("POST", "/_sim/requests?clear=true");
    let faro = env.watch(CONFIG, &[]);
    // Cut off, the object deleted, the history compacted: the next watch gets 410 and faro
    // lists again, by streaming list, and reports the deletion it did not see.
    // (Only faro's cluster-wide path fails: kubectl's request goes to the namespace's.)
    env.admin(
        "POST",
        "/_sim/fail?code=503&count=-1&path=/api/v1/configmaps",
    );
    env.admin("POST", "/_sim/drop-watches?resource=configmaps");
    env.kubectl(&["delete", "configmap", "by-hand"]);
    env.admin("POST", "/_sim/compact");
    env.admin("POST", "/_sim/fail?clear=true");
    let gone = faro.wait_for("the deletion", |e| {
        e.name == "by-hand" && e.event_type == "DELETED"
    });
    assert!(gone.resync, "found by the relist: {gone:?}");
    let done = faro.stop();
    assert!(done.status.success(), "{}", done.stderr);
    let streaming = configmap_requests(&env)
        .iter()
        .filter(|(q, s)| q.contains("sendInitialEvents=true") && *s == 200)
        .count();
    assert!(streaming >= 2, "listed twice by streaming list");
}

/// Paged lists ask for gzip, which kube-sim (as kube-apiserver) applies to pages over 128 KiB;
/// a kubeconfig cluster with `disable-compression: true` turns it off, as for kubectl. The
/// lines are the same either way.
#[test]
fn paged_lists_are_gzipped_unless_the_kubeconfig_disables_compression() {
    let env = cluster();
    env.admin("POST", "/_sim/watch-list?mode=reject");
    let paged_encodings = |env: &Env| -> Vec<String> {
        let requests = env.admin("GET", "/_sim/requests");
        requests["requests"]
            .as_array()
            .expect("request log")
            .iter()
            .filter(|r| r["path"] == "/api/v1/configmaps" && r["status"] == 200)
            .filter(|r| r["query"].as_str().is_some_and(|q| q.contains("limit=")))
            .map(|r| r["contentEncoding"].as_str().unwrap_or("?").to_owned())
            .collect()
    };

    let (gzipped, _) = run(&env, "after-1");
    assert_eq!(gzipped.len(), 601, "every object, once");
    // 601 objects of ~0.6 KiB: two pages of 500 and 101, the first over 128 KiB.
    assert_eq!(
        paged_encodings(&env),
        ["gzip", ""],
        "{:?}",
        paged_encodings(&env)
    );
    env.kubectl(&["delete", "configmap", "after-1"]);

    let kubeconfig = std::fs::read_to_string(env.kubeconfig()).expect("kubeconfig");
    let plain = kubeconfig.replacen(
        "    server:",
        "    disable-compression: true\n    server:",
        1,
    );
    assert_ne!(plain, kubeconfig, "{kubeconfig}");
    let plain = env.write("plain-kubeconfig", &plain);
    env.admin("POST", "/_sim/requests?clear=true");
    let faro = env.watch(CONFIG, &["--kubeconfig", plain.to_str().unwrap()]);
    let unencoded = lines_as_set(&faro);
    let done = faro.stop();
    assert!(done.status.success(), "{}", done.stderr);
    assert_eq!(paged_encodings(&env), ["", ""]);
    assert_eq!(unencoded, gzipped, "the same lines either way");
}
