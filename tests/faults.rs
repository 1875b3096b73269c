//! Reconnects, 410 relists, 429s, the fault soak and SIGKILL: nothing lost, nothing invented.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::{Env, Event, changes, configmap, file_starting_with, rebuild, sim_state};

#[test]
fn a_gap_with_410_is_relisted_and_only_the_difference_emitted() {
    let env = Env::start();
    for name in ["a", "b", "c"] {
        env.apply(&configmap("default", name, &[], "1"));
    }
    let faro = env.watch("resources:\n  - gvr: v1/configmaps\n", &[]);
    faro.wait_until("initial listing", |events| {
        ["a", "b", "c"]
            .iter()
            .all(|n| events.iter().any(|e| e.name == *n && e.initial))
    });
    // Cut faro off (its cluster-wide path only; kubectl's requests are namespaced), change
    // things, and compact the history so that resuming gets 410.
    env.admin(
        "POST",
        "/_sim/fail?code=503&count=-1&path=/api/v1/configmaps",
    );
    env.admin("POST", "/_sim/drop-watches");
    env.kubectl(&["delete", "configmap", "b"]);
    env.apply(&configmap("default", "c", &[], "2"));
    env.apply(&configmap("default", "d", &[], "1"));
    env.admin("POST", "/_sim/compact");
    env.admin("POST", "/_sim/fail?clear=true");
    let events = faro.wait_until("relist", |events| {
        events.iter().any(|e| e.name == "d")
            && events
                .iter()
                .any(|e| e.name == "b" && e.event_type == "DELETED")
            && events
                .iter()
                .any(|e| e.name == "c" && e.event_type == "UPDATED")
    });
    drop(events);
    std::thread::sleep(Duration::from_millis(300));
    let events = faro.events();
    let mut got = changes(&events, "v1/configmaps");
    got.sort();
    assert_eq!(
        got,
        [
            "ADDED v1/configmaps default/d",
            "DELETED v1/configmaps default/b",
            "UPDATED v1/configmaps default/c",
        ],
        "nothing for the unchanged object a"
    );
    let b_deleted = events
        .iter()
        .find(|e| e.name == "b" && e.event_type == "DELETED")
        .unwrap();
    let b_added = events
        .iter()
        .find(|e| e.name == "b" && e.event_type == "ADDED")
        .unwrap();
    assert_eq!(b_deleted.uid, b_added.uid);
    assert!(
        b_deleted.resource_version.parse::<u64>().unwrap()
            > b_added.resource_version.parse::<u64>().unwrap()
    );
    faro.stop();
}

#[test]
fn injected_429s_and_dropped_watches_lose_nothing() {
    let env = Env::start();
    let faro = env.watch(
        "resources:\n  - gvr: v1/configmaps\n    namespace_names: [default]\n",
        &[],
    );
    for i in 0..5 {
        env.admin("POST", "/_sim/fail?code=429&count=3&retry_after=0");
        env.admin("POST", "/_sim/drop-watches");
        env.apply(&configmap("default", &format!("x{i}"), &[], "1"));
    }
    faro.wait_until("all five", |events| {
        (0..5).all(|i| events.iter().any(|e| e.name == format!("x{i}")))
    });
    // kubectl may have met some of the 429s; faro's watches (only faro watches) met some too.
    let requests = env.admin("GET", "/_sim/requests");
    let requests = requests["requests"].as_array().expect("request log");
    assert!(
        requests.iter().any(|r| r["status"] == 429
            && r["query"]
                .as_str()
                .is_some_and(|q| q.contains("watch=true"))),
        "faro's watches met a 429"
    );
    faro.stop();
}

#[test]
fn fault_soak_rebuilt_state_equals_the_server_and_nothing_repeats() {
    fault_soak("on");
}

/// The same soak against a server without streaming lists: every listing is paged.
#[test]
fn fault_soak_with_paged_lists_only() {
    fault_soak("reject");
}

/// Churn with dropped watches, compactions (410 → relist) and 429s; `watch_list`: how kube-sim
/// serves streaming lists (`/_sim/watch-list` mode).
fn fault_soak(watch_list: &str) {
    let env = Env::start();
    env.admin("POST", &format!("/_sim/watch-list?mode={watch_list}"));
    for ns in ["soak-a", "soak-b"] {
        env.admin(
            "POST",
            &format!("/_sim/load?namespace={ns}&count=200&size=300"),
        );
    }
    // Overlapping entries: the cluster-wide one and a namespace-scoped one see soak-a's objects.
    let faro = env.watch("resources:\n  - gvr: v1/configmaps\n  - gvr: v1/configmaps\n    namespace_names: [soak-a]\n",
        &[],
    );
    env.admin(
        "POST",
        "/_sim/churn?count=4000&rate=1500&namespace=soak-a,soak-b&seed=7&wait=false",
    );
    let start = Instant::now();
    let mut round = 0;
    // Rounds begun while the churn was still running.
    let mut during = 0;
    loop {
        let status = env.admin("GET", "/_sim/churn");
        let running = status["running"].as_bool().expect("churn status");
        if !running && round > 3 {
            break;
        }
        if running {
            during += 1;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "churn did not finish: {status}"
        );
        match round % 3 {
            0 => {
                env.admin("POST", "/_sim/drop-watches");
            }
            1 => {
                // A real gap: faro is cut off while the churn goes on, the history it would
                // resume from is compacted, then it is let back in and must relist (410).
                env.admin("POST", "/_sim/fail?code=503&count=-1&path=configmaps");
                env.admin("POST", "/_sim/drop-watches");
                std::thread::sleep(Duration::from_millis(300));
                env.admin("POST", "/_sim/compact");
                env.admin("POST", "/_sim/fail?clear=true");
            }
            _ => {
                env.admin("POST", "/_sim/fail?code=429&count=2&retry_after=0");
                env.admin("POST", "/_sim/drop-watches");
            }
        }
        round += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    // Everything the server did is now committed; a fence object shows faro caught up.
    env.apply(&configmap("soak-b", "zz-fence", &[], "1"));
    faro.wait_for("fence", |e| e.name == "zz-fence");
    std::thread::sleep(Duration::from_millis(500));
    let done = faro.stop();
    assert!(done.status.success(), "{}", done.stderr);
    assert!(
        during >= 3,
        "all three kinds of fault hit while the churn ran ({during} rounds)"
    );

    let events: Vec<Event> = done.events;
    let mut pairs = BTreeSet::new();
    for e in &events {
        assert!(
            pairs.insert((e.uid.clone(), e.resource_version.clone())),
            "(uid, resourceVersion) emitted twice: {e:?}"
        );
    }
    // Per object, resourceVersions only go up.
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for e in &events {
        let rv: u64 = e.resource_version.parse().unwrap();
        if let Some(prev) = last.insert(e.uid.clone(), rv) {
            assert!(rv > prev, "out of order for {}: {prev} then {rv}", e.name);
        }
    }
    let ours = rebuild(&events, "v1/configmaps");
    let theirs = sim_state(
        &env,
        &[
            "soak-a",
            "soak-b",
            "default",
            "kube-system",
            "kube-public",
            "kube-node-lease",
        ],
    );
    let ours_soak: BTreeMap<_, _> = ours
        .into_iter()
        .filter(|((ns, _), _)| ns.starts_with("soak-"))
        .collect();
    let theirs_soak: BTreeMap<_, _> = theirs
        .into_iter()
        .filter(|((ns, _), _)| ns.starts_with("soak-"))
        .collect();
    assert_eq!(ours_soak.len(), theirs_soak.len());
    assert!(
        ours_soak == theirs_soak,
        "rebuilt state differs from the server's"
    );
    assert!(
        events.iter().any(|e| e.event_type == "DELETED"),
        "the churn deleted objects"
    );
    // The faults really hit faro: it relisted (410 after compaction) and met 429s.
    let requests = env.admin("GET", "/_sim/requests");
    let requests = requests["requests"].as_array().expect("request log");
    let first_pages = requests
        .iter()
        .filter(|r| {
            r["path"] == "/api/v1/configmaps"
                && r["query"].as_str().is_some_and(|q| {
                    // A paged list's first page, or a streaming list.
                    (q.contains("limit=") && !q.contains("continue="))
                        || q.contains("sendInitialEvents=true")
                })
                && r["status"] == 200
        })
        .count();
    assert!(
        first_pages >= 2,
        "relisted at least once ({first_pages} lists)"
    );
    assert!(
        requests.iter().any(|r| r["status"] == 429),
        "429s were served"
    );
}

#[test]
fn sigkill_right_after_a_change_keeps_it_in_the_events_file() {
    let env = Env::start();
    let out_dir = env.path("out");
    let faro = env.watch(
        "resources:\n  - gvr: v1/configmaps\n    namespace_names: [default]\n",
        &["--output-dir", out_dir.to_str().unwrap()],
    );
    env.apply(&configmap("default", "last-words", &[], "1"));
    faro.wait_for("the change on stdout", |e| e.name == "last-words");
    faro.signal("KILL");
    let done = faro.wait_exit(crate::util::PATIENCE);
    assert!(!done.status.success());
    let logs = out_dir.join("logs");
    let file = file_starting_with(&logs, "events-");
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.lines().any(|l| l.contains("\"last-words\"")), "{text}");
}

#[test]
fn a_second_signal_exits_130_when_the_drain_cannot_finish() {
    let env = Env::start();
    env.admin("POST", "/_sim/load?namespace=bulk&count=3000&size=200");
    let path = env.write("c.yaml", "resources:\n  - gvr: v1/configmaps\n");
    // stdout is a pipe nobody reads: once it is full, faro cannot finish its drain.
    let mut child = env
        .faro()
        .args(["watch", "--config", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let pid = child.id().to_string();
    let kill = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
    };
    kill("-TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still draining into the blocked pipe"
    );
    kill("-TERM");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no exit after the second signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("signal received"), "{err}");
}
