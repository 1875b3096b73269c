//! Restarts without loss (`--state-file`): a graceful restart, a restart after the history was
//! compacted, SIGKILLs during churn, broken state files and a changed config. The server's
//! state (`/_sim/state`) is the truth the events of all runs together must rebuild.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::util::{Env, Event, PATIENCE, configmap, decode, namespace, rebuild, sim_state, stderr};

const NAMESPACES: [&str; 2] = ["r-a", "r-b"];

fn config(env: &Env) -> PathBuf {
    env.write(
        "c.yaml",
        "resources:\n  - gvr: v1/configmaps\n    namespace_names: [r-a, r-b]\n",
    )
}

fn setup() -> Env {
    let env = Env::start();
    for ns in NAMESPACES {
        env.apply(&namespace(ns, &[]));
        for i in 0..20 {
            env.apply(&configmap(ns, &format!("seed-{i}"), &[], "0"));
        }
    }
    env
}

fn churn(env: &Env, count: u32, seed: u32) {
    env.admin(
        "POST",
        &format!("/_sim/churn?count={count}&namespace=r-a,r-b&seed={seed}&wait=true"),
    );
}

/// No (uid, resourceVersion) twice, and per object resourceVersions only go up.
fn assert_once_and_in_order(events: &[Event]) {
    let mut pairs = BTreeSet::new();
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for e in events {
        assert!(
            pairs.insert((e.uid.clone(), e.resource_version.clone())),
            "(uid, resourceVersion) twice: {e:?}"
        );
        let rv: u64 = e.resource_version.parse().unwrap();
        if let Some(prev) = last.insert(&e.uid, rv) {
            assert!(rv > prev, "out of order for {}: {prev} then {rv}", e.name);
        }
    }
}

/// Waits until the events rebuild the server's state.
fn wait_rebuilt(env: &Env, faro: &crate::util::Faro, before: &[Event]) {
    let start = Instant::now();
    loop {
        let mut all = before.to_vec();
        all.extend(faro.events());
        if rebuild(&all, "v1/configmaps") == sim_state(env, &NAMESPACES) {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the events never rebuilt the server's state:\n{}",
            faro.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn with_state<'a>(config: &'a Path, state: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "watch",
        "--config",
        config.to_str().unwrap(),
        "--state-file",
        state.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn a_graceful_restart_continues_where_the_last_run_stopped() {
    let env = setup();
    let (config, state) = (config(&env), env.path("state.json"));
    let first = env.spawn_ready(&with_state(&config, &state, &[]));
    churn(&env, 300, 1);
    wait_rebuilt(&env, &first, &[]);
    let first = first.stop();
    assert!(first.status.success(), "{}", first.stderr);
    assert!(first.events.iter().any(|e| e.initial));
    // Changes while faro is down, deletions too.
    churn(&env, 300, 2);
    env.admin("POST", "/_sim/requests?clear=true");
    let second = env.spawn_ready(&with_state(&config, &state, &[]));
    wait_rebuilt(&env, &second, &first.events);
    let second = second.stop();
    assert!(second.status.success(), "{}", second.stderr);
    assert!(
        second.stderr.contains("resuming from the state file"),
        "{}",
        second.stderr
    );
    assert!(
        second.events.iter().all(|e| !e.initial && !e.resync),
        "no listing: the watch resumed"
    );
    assert!(second.events.iter().any(|e| e.event_type == "DELETED"));
    let mut all = first.events;
    all.extend(second.events);
    assert_once_and_in_order(&all);
    // The second run listed nothing.
    let requests = env.admin("GET", "/_sim/requests");
    let lists_after_restart = requests["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/configmaps"))
                && r["query"]
                    .as_str()
                    .is_some_and(|q| q.contains("limit=") && !q.contains("watch"))
        })
        .count();
    assert_eq!(lists_after_restart, 0, "{requests}");
}

#[test]
fn a_restart_after_compaction_relists_and_marks_the_difference_resync() {
    let env = setup();
    let (config, state) = (config(&env), env.path("state.json"));
    let first = env.spawn_ready(&with_state(&config, &state, &[]));
    churn(&env, 200, 3);
    wait_rebuilt(&env, &first, &[]);
    let first = first.stop();
    churn(&env, 200, 4);
    env.admin("POST", "/_sim/compact");
    let second = env.spawn_ready(&with_state(&config, &state, &[]));
    wait_rebuilt(&env, &second, &first.events);
    let second = second.stop();
    assert!(second.status.success(), "{}", second.stderr);
    assert!(!second.events.is_empty());
    assert!(
        second.events.iter().all(|e| e.resync && !e.initial),
        "the gap is reported from the relist: {:?}",
        second.events.iter().map(Event::short).collect::<Vec<_>>()
    );
    let mut all = first.events;
    all.extend(second.events);
    assert_once_and_in_order(&all);
}

/// The events of every file in `logs`, oldest run first.
fn all_files(logs: &Path) -> Vec<Event> {
    per_file(logs).into_iter().flatten().collect()
}

/// The events of each file in `logs`, oldest run first.
fn per_file(logs: &Path) -> Vec<Vec<Event>> {
    let mut files: Vec<(String, Vec<Event>)> = std::fs::read_dir(logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events-")
        })
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(text.is_empty() || text.ends_with('\n'), "{}", p.display());
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            let events = decode(&lines);
            let first = events
                .first()
                .map(|e| e.timestamp.clone())
                .unwrap_or_default();
            (first, events)
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files.into_iter().map(|(_, e)| e).collect()
}

#[test]
fn sigkills_during_churn_lose_nothing_and_repeat_nothing_in_the_files() {
    let env = setup();
    let (config, state) = (config(&env), env.path("state.json"));
    let out = env.path("out");
    let out_flag = out.to_str().unwrap().to_owned();
    let args = with_state(
        &config,
        &state,
        &["--output-dir", &out_flag, "--checkpoint-interval", "200ms"],
    );
    env.admin(
        "POST",
        "/_sim/churn?count=3000&rate=400&namespace=r-a,r-b&seed=5&wait=false",
    );
    // Kill faro at different moments of the churn, three times.
    for wait_ms in [700, 1300, 900] {
        let faro = env.spawn_ready(&args);
        std::thread::sleep(Duration::from_millis(wait_ms));
        faro.signal("KILL");
        let _ = faro.wait_exit(PATIENCE);
    }
    // The churn ends; one more run catches up and stops gracefully.
    let start = Instant::now();
    while env.admin("GET", "/_sim/churn")["running"] == true {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "churn did not end"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = env.spawn_ready(&args);
    let logs = out.join("logs");
    let start = Instant::now();
    while rebuild(&all_files(&logs), "v1/configmaps") != sim_state(&env, &NAMESPACES) {
        assert!(
            start.elapsed() < PATIENCE,
            "the files never rebuilt the server's state:\n{}",
            last.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let done = last.stop();
    assert!(done.status.success(), "{}", done.stderr);
    let events = all_files(&logs);
    assert_once_and_in_order(&events);
    assert_eq!(
        rebuild(&events, "v1/configmaps"),
        sim_state(&env, &NAMESPACES)
    );
    let files = per_file(&logs);
    assert_eq!(files.len(), 4, "one file per run");
    for later in &files[1..] {
        assert!(
            later.iter().all(|e| !e.initial),
            "only the first run listed"
        );
    }
}

#[test]
fn a_broken_state_file_is_a_clear_error_and_is_left_as_it_was() {
    let env = setup();
    let (config, state) = (config(&env), env.path("state.json"));
    let run = env.spawn_ready(&with_state(&config, &state, &[]));
    assert!(run.stop().status.success());
    let good = std::fs::read_to_string(&state).unwrap();
    let (header, body) = good.split_once('\n').unwrap();
    let cases = [
        ("garbage\n".to_owned(), "not a faro state file"),
        (good[..good.len() - 7].to_owned(), "truncated"),
        (
            format!("{header}\n{}", body.replacen("r-a", "r-x", 1)),
            "checksum",
        ),
        (
            format!(
                "{}\n{body}",
                header.replacen("\"version\":1", "\"version\":9", 1)
            ),
            "format version 9",
        ),
        (
            format!(
                "{}\n{body}",
                header.replacen("\"cluster\":\"", "\"cluster\":\"https://elsewhere", 1)
            ),
            "saved for the cluster https://elsewhere",
        ),
    ];
    for (content, want) in cases {
        std::fs::write(&state, &content).unwrap();
        let out = env.run_faro(&with_state(&config, &state, &[]));
        assert_eq!(out.status.code(), Some(2), "{want}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(state.to_str().unwrap()) && err.contains(want),
            "{want}: {err}"
        );
        assert_eq!(
            std::fs::read_to_string(&state).unwrap(),
            content,
            "not overwritten"
        );
    }
    // --state-reset starts afresh on purpose.
    std::fs::write(&state, "garbage\n").unwrap();
    let run = env.spawn_ready(&with_state(&config, &state, &["--state-reset"]));
    let done = run.stop();
    assert!(done.status.success(), "{}", done.stderr);
    assert!(done.events.iter().all(|e| e.initial));
    assert!(
        std::fs::read_to_string(&state)
            .unwrap()
            .starts_with("{\"format\":\"faro-state\"")
    );
}

#[test]
fn a_changed_config_lists_new_watches_drops_old_ones_and_resumes_the_rest() {
    let env = setup();
    env.apply(&namespace("r-c", &[]));
    env.apply(&configmap("r-c", "c-1", &[], "0"));
    let state = env.path("state.json");
    let before = env.write(
        "before.yaml",
        "resources:\n  - gvr: v1/configmaps\n    namespace_names: [r-a]\n  - gvr: v1/configmaps\n    namespace_names: [r-b]\n",
    );
    let first = env.spawn_ready(&with_state(&before, &state, &[]));
    assert!(first.stop().status.success());
    env.kubectl(&["label", "configmap", "seed-1", "-n", "r-a", "changed=yes"]);
    env.kubectl(&["label", "configmap", "seed-1", "-n", "r-b", "changed=yes"]);
    // r-b is gone from the config, r-c is new, r-a stays (written in another order).
    let after = env.write(
        "after.yaml",
        "resources:\n  - gvr: v1/configmaps\n    namespace_names: [r-c]\n  - gvr: v1/configmaps\n    namespace_names: [r-a]\n",
    );
    let second = env.spawn_ready(&with_state(&after, &state, &[]));
    let seen = second.wait_for("the change in r-a", |e| {
        e.namespace.as_deref() == Some("r-a") && e.name == "seed-1"
    });
    assert_eq!(seen.event_type, "UPDATED");
    let done = second.stop();
    let by_ns = |ns: &str| -> Vec<&Event> {
        done.events
            .iter()
            .filter(|e| e.namespace.as_deref() == Some(ns))
            .collect()
    };
    assert!(
        by_ns("r-b").is_empty(),
        "a dropped watch vanishes silently: {:?}",
        by_ns("r-b")
    );
    let c = by_ns("r-c");
    assert!(
        c.len() == 1 && c[0].initial && c[0].event_type == "ADDED",
        "a new watch lists: {c:?}"
    );
    let a = by_ns("r-a");
    assert!(a.iter().all(|e| !e.initial), "a kept watch resumes: {a:?}");
    assert_eq!(a.len(), 1, "{a:?}");
}

#[test]
fn workload_watching_resumes_too() {
    let env = Env::start();
    env.apply(&namespace("team-a", &[("team", "alpha")]));
    env.apply(&configmap("team-a", "app", &[], "1"));
    let state = env.path("state.json");
    let args = [
        "workload",
        "-label",
        "team",
        "-workloadgvrs",
        "v1/configmaps,v1/namespaces",
        "--state-file",
        state.to_str().unwrap(),
    ];
    let first = env.spawn_ready(&args);
    first.wait_for("app", |e| e.name == "app");
    let first = first.stop();
    assert!(first.status.success(), "{}", first.stderr);
    env.kubectl(&["label", "configmap", "app", "-n", "team-a", "v=2"]);
    env.apply(&configmap("team-a", "new", &[], "1"));
    let second = env.spawn_ready(&args);
    second.wait_for("new", |e| e.name == "new");
    let second = second.stop();
    assert!(second.status.success(), "{}", second.stderr);
    let short: Vec<String> = second.events.iter().map(Event::short).collect();
    assert_eq!(
        short,
        [
            "UPDATED v1/configmaps team-a/app",
            "ADDED v1/configmaps team-a/new"
        ],
        "the namespace is not reported again, nothing is initial"
    );
    assert!(
        second
            .events
            .iter()
            .all(|e| e.workload_name.as_deref() == Some("alpha") && !e.initial)
    );
}
