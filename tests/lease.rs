//! `--leader-elect`: two replicas on one kube-sim share a Lease and a state file. Exactly one
//! writes; a SIGKILLed leader is replaced once its Lease expires, a SIGTERMed one hands over at
//! once, and a leader that cannot renew stops its output before the other takes over. The
//! union of the replicas' outputs, replayed per object, rebuilds `/_sim/state`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::util::{Env, Event, Faro, PATIENCE, configmap, namespace, rebuild, sim_state};

const NAMESPACES: [&str; 2] = ["l-a", "l-b"];

fn setup() -> (Env, PathBuf, PathBuf) {
    let env = Env::start();
    for ns in NAMESPACES {
        env.apply(&namespace(ns, &[]));
        for i in 0..20 {
            env.apply(&configmap(ns, &format!("seed-{i}"), &[], "0"));
        }
    }
    let config = env.write(
        "c.yaml",
        "resources:\n  - gvr: v1/configmaps\n    namespace_names: [l-a, l-b]\n",
    );
    let state = env.path("state.json");
    (env, config, state)
}

/// A replica: `--leader-elect` with the given identity and timings, the shared state file.
fn replica(env: &Env, config: &Path, state: &Path, identity: &str, timings: [&str; 3]) -> Faro {
    env.spawn_faro(&[
        "watch",
        "--config",
        config.to_str().unwrap(),
        "--state-file",
        state.to_str().unwrap(),
        "--checkpoint-interval",
        "200ms",
        "--leader-elect",
        "--lease-namespace",
        "default",
        "--lease-identity",
        identity,
        "--lease-duration",
        timings[0],
        "--lease-renew-deadline",
        timings[1],
        "--lease-retry-period",
        timings[2],
    ])
}

const SHORT: [&str; 3] = ["3s", "2s", "500ms"];

/// A measured figure, printed with the test's output (`--nocapture` shows it).
#[allow(clippy::print_stderr)]
fn report(figure: &str) {
    eprintln!("lease: {figure}");
}

fn holder(env: &Env) -> String {
    env.kubectl(&[
        "get",
        "lease",
        "faro",
        "-n",
        "default",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])
}

fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

/// Starts `one` and waits until it leads, then `two` and waits until it stands by.
fn leader_and_standby(env: &Env, config: &Path, state: &Path, timings: [&str; 3]) -> (Faro, Faro) {
    let mut one = replica(env, config, state, "replica-one", timings);
    one.wait_ready();
    let two = replica(env, config, state, "replica-two", timings);
    two.wait_stderr("standing by, Lease default/faro is held by replica-one");
    assert_eq!(holder(env), "replica-one");
    (one, two)
}

fn wait_churn(env: &Env) {
    wait_until("the churn to end", Duration::from_secs(60), || {
        env.admin("GET", "/_sim/churn")["running"] != true
    });
}

/// The events of both replicas rebuild the server's state once repeats are dropped; returns
/// how many (uid, resourceVersion, type) the second repeated of the first.
fn assert_union_rebuilds(env: &Env, first: &[Event], second: &Faro) -> usize {
    let start = Instant::now();
    loop {
        let mut seen = BTreeSet::new();
        let mut repeated = 0;
        let mut union = Vec::new();
        for (i, e) in first.iter().chain(second.events().iter()).enumerate() {
            let key = (
                e.uid.clone(),
                e.resource_version.clone(),
                e.event_type.clone(),
            );
            if seen.insert(key) {
                union.push(e.clone());
            } else {
                assert!(i >= first.len(), "one replica repeated itself: {e:?}");
                repeated += 1;
            }
        }
        if rebuild(&union, "v1/configmaps") == sim_state(env, &NAMESPACES) {
            return repeated;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the replicas' events never rebuilt the server's state:\n{}",
            second.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_sigkilled_leader_is_replaced_once_its_lease_expires_and_nothing_is_lost() {
    let (env, config, state) = setup();
    let (one, two) = leader_and_standby(&env, &config, &state, SHORT);
    env.admin(
        "POST",
        "/_sim/churn?count=1500&rate=300&namespace=l-a,l-b&seed=18&wait=false",
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!one.events().is_empty());
    assert!(two.lines().is_empty(), "the standby writes nothing");
    one.signal("KILL");
    let killed = Instant::now();
    let first = one.wait_exit(PATIENCE).events;
    wait_until("the standby to take over", PATIENCE, || {
        two.stderr()
            .contains("acquired Lease default/faro as replica-two")
    });
    let takeover = killed.elapsed();
    // Within the lease duration (3 s, counted from the last renewal the standby saw, before
    // the kill) plus a retry period (0.5 s); kept loose on a busy machine.
    report(&format!(
        "takeover {takeover:?} after SIGKILL (lease duration 3s, retry 500ms)"
    ));
    assert!(takeover < Duration::from_secs(20), "{takeover:?}");
    two.wait_stderr("resuming from the state file");
    assert_eq!(holder(&env), "replica-two");
    wait_churn(&env);
    let repeated = assert_union_rebuilds(&env, &first, &two);
    report(&format!(
        "{} events before the kill, {} after; {repeated} repeated across the takeover (since the last checkpoint)",
        first.len(),
        two.events().len()
    ));
    assert!(
        two.events().iter().all(|e| !e.initial),
        "it resumed, no listing"
    );
}

#[test]
fn a_sigtermed_leader_releases_the_lease_and_the_standby_takes_over_at_once() {
    let (env, config, state) = setup();
    // A long lease: a takeover well within it shows the release, not the expiry.
    let long = ["30s", "20s", "500ms"];
    let (one, two) = leader_and_standby(&env, &config, &state, long);
    env.admin(
        "POST",
        "/_sim/churn?count=300&namespace=l-a,l-b&seed=19&wait=true",
    );
    std::thread::sleep(Duration::from_millis(500));
    one.signal("TERM");
    let stopped = Instant::now();
    let first = one.wait_exit(PATIENCE);
    assert!(first.status.success(), "{}", first.stderr);
    assert!(
        first.stderr.contains("released Lease default/faro"),
        "{}",
        first.stderr
    );
    wait_until("the standby to take over", Duration::from_secs(15), || {
        two.stderr()
            .contains("acquired Lease default/faro as replica-two")
    });
    let takeover = stopped.elapsed();
    report(&format!(
        "takeover {takeover:?} after SIGTERM (lease duration 30s)"
    ));
    assert_eq!(holder(&env), "replica-two");
    env.admin(
        "POST",
        "/_sim/churn?count=300&namespace=l-a,l-b&seed=20&wait=true",
    );
    let repeated = assert_union_rebuilds(&env, &first.events, &two);
    assert_eq!(
        repeated, 0,
        "a graceful handover repeats nothing (final checkpoint)"
    );
}

#[test]
fn a_leader_that_cannot_renew_stops_its_output_before_the_standby_takes_over() {
    let (env, config, state) = setup();
    let (one, two) = leader_and_standby(&env, &config, &state, SHORT);
    env.admin(
        "POST",
        "/_sim/churn?count=3000&rate=300&namespace=l-a,l-b&seed=21&wait=false",
    );
    std::thread::sleep(Duration::from_millis(800));
    // replica-one's writes of the Lease fail from now on; its watches and replica-two's
    // requests are untouched.
    env.admin(
        "POST",
        "/_sim/fail?code=503&count=-1&path=/leases&query=fieldManager%3Dfaro-replica-one",
    );
    let fault = Instant::now();
    let ended = one.wait_exit(PATIENCE);
    let stopped = fault.elapsed();
    assert!(
        !two.stderr().contains("acquired Lease"),
        "the standby took over before the old leader had stopped:\n{}",
        two.stderr()
    );
    assert_eq!(ended.status.code(), Some(1), "{}", ended.stderr);
    assert!(ended.stderr.contains("lost the Lease"), "{}", ended.stderr);
    wait_until("the standby to take over", PATIENCE, || {
        two.stderr()
            .contains("acquired Lease default/faro as replica-two")
    });
    let takeover = fault.elapsed();
    report(&format!(
        "fenced leader exited {stopped:?} after its renewals began failing; the standby took over {takeover:?} after"
    ));
    env.admin("POST", "/_sim/fail?clear=true");
    wait_churn(&env);
    let repeated = assert_union_rebuilds(&env, &ended.events, &two);
    report(&format!(
        "{repeated} events repeated across the fenced takeover"
    ));
}

#[test]
fn lease_timings_that_cannot_fence_and_lease_flags_alone_are_usage_errors() {
    let env = Env::start();
    for (args, want) in [
        (
            &[
                "--leader-elect",
                "--lease-duration",
                "2s",
                "--lease-renew-deadline",
                "5s",
            ][..],
            "not shorter than the lease duration",
        ),
        (
            &["--leader-elect", "--lease-retry-period", "10s"][..],
            "not shorter than the renew deadline",
        ),
        (&["--lease-name", "other"][..], "--leader-elect"),
    ] {
        let mut all = vec!["watch", "configmaps"];
        all.extend_from_slice(args);
        let out = env.run_faro(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = crate::util::stderr(&out);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
