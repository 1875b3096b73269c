//! `--shard i/N`: three shards run together write exactly the lines of one unsharded run, when
//! the API server filters by shard (KEP-5866 `shardSelector`, echoed), when it ignores the
//! parameter (kube-sim `--no-shard-selector`) and when it rejects it (a 400); with server-side
//! sharding each shard reads about a third of the bytes (kube-sim counts each request's bytes).
//!
//! Lines are compared as multisets of JSON objects without `timestamp` (when faro observed the
//! change: the only field that differs between runs of the same changes); every other field
//! (type, gvr, namespace, name, uid, resourceVersion, labels, initial, changedBy, workload) must
//! be equal.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube_sim::Options;
use serde_json::Value;

use crate::util::{Env, Faro, PATIENCE, configmap, namespace, stderr};

/// 26 namespaces with varied names: their FNV-1a hashes split 9/9/8 over three shards
/// (sequential names like `ns-0`..`ns-11` share their hash's top bits and split 10/2/0).
const WORDS: [&str; 26] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
];

fn namespaces() -> Vec<String> {
    WORDS.iter().map(|w| format!("prod-{w}")).collect()
}

/// The test's own 64-bit FNV-1a, independent of faro's.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `[start, end)` of shard i of 3, as hex in the selector.
fn range(i: u32) -> (String, String) {
    let at = |i: u32| (u128::from(i) << 64) / 3;
    let hex = |v: u128| {
        if v == 1 << 64 {
            "0x10000000000000000".to_string()
        } else {
            format!("0x{v:016x}")
        }
    };
    (hex(at(i)), hex(at(i + 1)))
}

fn owner(ns: &str) -> u32 {
    let h = u128::from(fnv1a(ns));
    (0..3)
        .find(|&i| (u128::from(i) << 64) / 3 <= h && h < (u128::from(i + 1) << 64) / 3)
        .expect("every hash has a shard")
}

/// Configmaps everywhere (one cluster-wide watch: the shardSelector), secrets by a namespace
/// pattern and services in exact namespaces (namespace-scoped watches: other shards'
/// namespaces are not watched), namespaces (cluster-scoped: shard 0).
const CONFIG: &str = r#"
resources:
  - gvr: v1/configmaps
  - gvr: v1/secrets
    namespace_patterns: ["prod-[a-m].*"]
  - gvr: v1/services
    namespace_names: [prod-alpha, prod-bravo, prod-golf, prod-kilo, prod-xray, prod-zulu]
  - gvr: v1/namespaces
    scope: Cluster
"#;

/// Loads the cluster: 4 configmaps of about 2 KB, 1 secret and 1 service per namespace.
fn load(env: &Env) {
    for ns in namespaces() {
        env.admin(
            "POST",
            &format!("/_sim/load?namespace={ns}&count=4&size=2000"),
        );
        env.admin(
            "POST",
            &format!("/_sim/load?namespace={ns}&resource=secrets&count=1&size=300"),
        );
        env.admin(
            "POST",
            &format!("/_sim/load?namespace={ns}&resource=services&count=1&size=300"),
        );
    }
}

/// Changes made with kubectl while every run watches: updates, deletions, a new namespace
/// (matching the secrets' pattern) with objects, and last a sentinel configmap in a namespace
/// of each shard.
fn churn(env: &Env) -> Vec<(u32, String)> {
    let names = namespaces();
    let mut yaml = String::new();
    for ns in names.iter().step_by(3) {
        yaml.push_str(&configmap(
            ns,
            "configmap-000001",
            &[("edited", "yes")],
            "v2",
        ));
        yaml.push_str("---\n");
    }
    yaml.push_str(&namespace("prod-kappa-new", &[("team", "new")]));
    env.apply(&yaml);
    let mut more = configmap("prod-kappa-new", "fresh", &[], "1");
    more.push_str("---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: fresh\n  namespace: prod-kappa-new\nstringData:\n  k: v\n");
    env.apply(&more);
    for ns in names.iter().skip(1).step_by(5) {
        env.kubectl(&["delete", "configmap", "configmap-000002", "-n", ns]);
    }
    env.kubectl(&["delete", "secret", "secret-000000", "-n", "prod-golf"]);
    env.kubectl(&["label", "namespace", "prod-echo", "tier=edge"]);
    // One sentinel per shard, in a namespace it owns (one of even index: those are the
    // workload namespaces of the workload test).
    let mut sentinels = Vec::new();
    for shard in 0..3 {
        let ns = names
            .iter()
            .step_by(2)
            .find(|ns| owner(ns) == shard)
            .expect("each shard owns a namespace")
            .clone();
        env.apply(&configmap(&ns, "sentinel", &[], "end"));
        sentinels.push((shard, ns));
    }
    sentinels
}

/// An event line without its `timestamp`, as compact JSON (keys in a fixed order).
fn normalized(line: &str) -> String {
    let mut v: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    v.as_object_mut()
        .expect("an event is an object")
        .remove("timestamp");
    let sorted: BTreeMap<String, Value> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::to_string(&sorted).unwrap()
}

fn sorted_lines(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| normalized(l))
        .collect();
    out.sort();
    out
}

fn has_sentinel(faro: &Faro, ns: &str) -> bool {
    faro.events()
        .iter()
        .any(|e| e.name == "sentinel" && e.namespace.as_deref() == Some(ns))
}

/// What one comparison saw.
struct Outcome {
    /// Each shard's stderr.
    stderr: Vec<String>,
    /// Lines of the unsharded run.
    lines: usize,
    /// Lines per shard.
    per_shard: Vec<usize>,
}

/// Runs an unsharded faro and shards 0/3, 1/3, 2/3 of `args` side by side through the same
/// changes, and asserts that the shards' lines together are exactly the unsharded run's.
fn compare(env: &Env, args: &[&str]) -> Outcome {
    let with = |shard: Option<String>| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["-o".into(), "json".into()]);
        if let Some(s) = shard {
            all.extend(["--shard".into(), s]);
        }
        all
    };
    let spawn = |a: Vec<String>| env.spawn_faro(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let mut whole = spawn(with(None));
    let mut shards: Vec<Faro> = (0..3)
        .map(|i| spawn(with(Some(format!("{i}/3")))))
        .collect();
    whole.wait_ready();
    for s in &mut shards {
        s.wait_ready();
    }
    let sentinels = churn(env);
    let start = Instant::now();
    loop {
        let all_seen = sentinels.iter().all(|(shard, ns)| {
            has_sentinel(&whole, ns) && has_sentinel(&shards[*shard as usize], ns)
        });
        let union: usize = shards.iter().map(|s| s.lines().len()).sum();
        if all_seen && union >= whole.lines().len() {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the runs did not catch up: unsharded {} lines, shards {:?}",
            whole.lines().len(),
            shards.iter().map(|s| s.lines().len()).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Anything still in flight (a late duplicate would show here).
    std::thread::sleep(Duration::from_millis(500));
    whole.signal("TERM");
    let (status, whole_lines, whole_err) = whole.wait_exit_lines(PATIENCE);
    assert!(status.success(), "{whole_err}");
    let mut per_shard = Vec::new();
    let mut union = Vec::new();
    let mut errs = Vec::new();
    for (i, s) in shards.into_iter().enumerate() {
        s.signal("TERM");
        let (status, lines, err) = s.wait_exit_lines(PATIENCE);
        assert!(status.success(), "shard {i}: {err}");
        per_shard.push(lines.len());
        union.extend(lines);
        errs.push(err);
    }
    let expected = sorted_lines(&whole_lines);
    let got = sorted_lines(&union);
    if expected != got {
        let missing: Vec<&String> = expected.iter().filter(|l| !got.contains(l)).collect();
        let extra: Vec<&String> = got.iter().filter(|l| !expected.contains(l)).collect();
        panic!(
            "the shards' lines differ from the unsharded run's ({} vs {}):\nmissing: {missing:#?}\nextra or repeated: {extra:#?}\nshard stderr:\n{}",
            got.len(),
            expected.len(),
            errs.join("\n----\n")
        );
    }
    assert!(
        per_shard.iter().all(|&n| n > 0),
        "every shard wrote: {per_shard:?}"
    );
    // Cluster-scoped namespaces only from shard 0.
    for (i, lines) in union_by_shard(&union, &per_shard).iter().enumerate() {
        let namespaces = lines
            .iter()
            .filter(|l| l.contains("\"gvr\":\"v1/namespaces\""))
            .count();
        assert_eq!(namespaces > 0, i == 0, "namespace events on shard {i}");
    }
    Outcome {
        stderr: errs,
        lines: expected.len(),
        per_shard,
    }
}

fn union_by_shard<'a>(union: &'a [String], per_shard: &[usize]) -> Vec<&'a [String]> {
    let mut out = Vec::new();
    let mut at = 0;
    for n in per_shard {
        out.push(&union[at..at + n]);
        at += n;
    }
    out
}

/// A measured figure, printed with the test's output (`--nocapture` shows it).
#[allow(clippy::print_stderr)]
fn report(figure: &str) {
    eprintln!("shard: {figure}");
}

/// Body bytes kube-sim sent for `/api/v1/configmaps` requests: (unsharded, per shard).
fn configmap_bytes(env: &Env) -> (u64, [u64; 3]) {
    let log = env.admin("GET", "/_sim/requests");
    let mut whole = 0;
    let mut shards = [0u64; 3];
    for r in log["requests"].as_array().expect("requests") {
        if r["path"] != "/api/v1/configmaps" {
            continue;
        }
        let query = r["query"].as_str().unwrap_or("");
        let bytes = r["bytes"].as_u64().expect("bytes");
        if !query.contains("shardSelector") {
            whole += bytes;
            continue;
        }
        let shard = (0..3u32)
            .find(|&i| {
                let (start, end) = range(i);
                query.contains(&start) && query.contains(&end)
            })
            .unwrap_or_else(|| panic!("a selector of no shard: {query}"));
        shards[shard as usize] += bytes;
    }
    (whole, shards)
}

#[test]
fn three_shards_write_the_lines_of_one_run_and_read_a_third_each() {
    let env = Env::start();
    load(&env);
    let config = env.write("shard.yaml", CONFIG);
    env.admin("POST", "/_sim/requests?clear=true");
    let out = compare(&env, &["watch", "--config", config.to_str().unwrap()]);
    for (i, err) in out.stderr.iter().enumerate() {
        assert!(
            err.contains("v1/configmaps: the API server filters by shard"),
            "shard {i}:\n{err}"
        );
        assert!(
            !err.contains("does not filter by shard"),
            "shard {i}:\n{err}"
        );
    }
    let (whole, shards) = configmap_bytes(&env);
    // The share of configmaps each shard owns, from the test's own hash (4 per namespace).
    let owned: Vec<f64> = (0..3)
        .map(|i| namespaces().iter().filter(|ns| owner(ns) == i).count() as f64 / 26.0)
        .collect();
    report(&format!(
        "server-side: {} lines, per shard {:?}; configmap bytes unsharded {whole}, per shard {shards:?}, owned shares {owned:?}",
        out.lines, out.per_shard
    ));
    for i in 0..3 {
        assert!(
            (0.25..0.42).contains(&owned[i]),
            "the namespaces split about evenly: {owned:?}"
        );
        let share = shards[i] as f64 / whole as f64;
        assert!(
            (share - owned[i]).abs() < 0.08,
            "shard {i} read {share:.3} of the unsharded run's bytes, owns {:.3}",
            owned[i]
        );
    }
}

#[test]
fn without_server_side_sharding_faro_filters_and_writes_the_same_lines() {
    let env = Env::with(Options {
        shard_selector: false,
        ..Options::default()
    });
    load(&env);
    let config = env.write("shard.yaml", CONFIG);
    env.admin("POST", "/_sim/requests?clear=true");
    let out = compare(&env, &["watch", "--config", config.to_str().unwrap()]);
    for (i, err) in out.stderr.iter().enumerate() {
        assert!(
            err.contains(
                "v1/configmaps: the API server does not filter by shard (it did not echo it"
            ),
            "shard {i}:\n{err}"
        );
    }
    // Only the probe carries the selector; everything else is read whole by every shard.
    let log = env.admin("GET", "/_sim/requests");
    let probes = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["query"].as_str().unwrap_or("").contains("shardSelector"))
        .count();
    assert_eq!(probes, 3, "one probe per shard");
    let (whole, shards) = configmap_bytes(&env);
    assert!(
        shards.iter().all(|&b| b < whole / 10),
        "probes only: {shards:?} of {whole}"
    );
}

#[test]
fn a_server_that_rejects_the_shard_selector_gets_requests_without_it() {
    let env = Env::start();
    load(&env);
    let config = env.write("shard.yaml", CONFIG);
    env.admin("POST", "/_sim/fail?code=400&count=-1&query=shardSelector");
    let out = compare(&env, &["watch", "--config", config.to_str().unwrap()]);
    for (i, err) in out.stderr.iter().enumerate() {
        assert!(
            err.contains(
                "v1/configmaps: the API server does not filter by shard (it rejected the parameter"
            ),
            "shard {i}:\n{err}"
        );
        assert!(!err.contains("not retrying this stream"), "{err}");
    }
}

#[test]
fn sharded_workload_watching_writes_the_lines_of_one_run() {
    let env = Env::start();
    // Workloads from the label team=<name>; half the namespaces carry one.
    let mut yaml = String::new();
    for (i, ns) in namespaces().iter().enumerate() {
        let team = format!("t{}", i % 5);
        let labels: &[(&str, &str)] = if i % 2 == 0 {
            &[("team", team.as_str())]
        } else {
            &[]
        };
        yaml.push_str(&namespace(ns, labels));
        yaml.push_str("---\n");
    }
    env.apply(&yaml);
    load(&env);
    let out = compare(
        &env,
        &[
            "workload",
            "--label",
            "team",
            "--workloadgvrs",
            "v1/configmaps,v1/services",
            "--allowedgvrs",
            "v1/namespaces,v1/secrets",
        ],
    );
    report(&format!(
        "workload: {} lines, per shard {:?}",
        out.lines, out.per_shard
    ));
}

#[test]
fn bad_shards_are_usage_errors() {
    let env = Env::start();
    for bad in ["3/3", "0/0", "a/b", "1", "-1/3", "1/3/4", "", "1/-3"] {
        let flag = format!("--shard={bad}");
        let out = env.run_faro(&["watch", "configmaps", "-A", &flag]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "--shard {bad:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("--shard") && stderr(&out).contains("i/N"),
            "--shard {bad:?}: {}",
            stderr(&out)
        );
    }
    let out = env.run_faro(&["workload", "--label", "team", "--shard", "2/2"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// `--shard` with `--leader-elect`, one Lease per shard: each shard has its leader and may have
/// a standby; the leaders write their own shard's objects.
#[test]
fn each_shard_can_have_its_own_leader_and_standby() {
    let env = Env::start();
    for ns in namespaces().iter().take(8) {
        env.admin(
            "POST",
            &format!("/_sim/load?namespace={ns}&count=2&size=200"),
        );
    }
    let replica = |shard: u32, id: &str| {
        env.spawn_faro(&[
            "watch",
            "configmaps",
            "-A",
            "-o",
            "json",
            "--shard",
            &format!("{shard}/3"),
            "--leader-elect",
            "--lease-name",
            &format!("faro-shard-{shard}"),
            "--lease-namespace",
            "default",
            "--lease-identity",
            id,
        ])
    };
    let mut leaders: Vec<Faro> = (0..3).map(|i| replica(i, &format!("leader-{i}"))).collect();
    for l in &mut leaders {
        l.wait_ready();
    }
    let standby = replica(1, "standby-1");
    standby.wait_stderr("standing by, Lease default/faro-shard-1 is held by leader-1");
    let mut total = 0;
    for (i, l) in leaders.iter().enumerate() {
        let events = l.events();
        assert!(
            events
                .iter()
                .all(|e| owner(e.namespace.as_deref().unwrap_or("")) == i as u32),
            "shard {i} wrote another shard's objects"
        );
        total += events.len();
    }
    assert_eq!(total, 16, "every configmap once");
    assert!(standby.events().is_empty());
}
