//! The programs in examples/, run as a user would against kube-sim, so that they cannot rot:
//! each must produce the output its module comment documents.

use std::time::Duration;

use crate::util::{Env, PATIENCE, configmap, namespace};

#[test]
fn library_usage_prints_events_then_ready_then_changes_and_stops_on_ctrl_c() {
    let env = Env::start();
    env.apply(&namespace("shop-eu", &[]));
    env.apply(&configmap("shop-eu", "checkout", &[], "1"));
    let config = env.write(
        "watch.yaml",
        "namespaces:\n  - name_pattern: \"shop-.*\"\n    resources:\n      \"v1/configmaps\": {}\n",
    );
    let program = env.spawn_example("library_usage", &[config.to_str().unwrap()]);
    let ready = program.wait_line("the ready line", |l| l.starts_with("ready: "));
    assert!(
        ready.ends_with("watches have delivered everything that existed at start-up"),
        "{ready}"
    );
    let lines = program.lines();
    let initial = lines
        .iter()
        .position(|l| l.starts_with("ADDED v1/configmaps shop-eu/checkout rv="))
        .unwrap_or_else(|| panic!("no initial line: {lines:?}"));
    assert!(
        lines[initial].ends_with(" (existed at start-up)"),
        "{lines:?}"
    );
    assert!(
        initial < lines.iter().position(|l| l == &ready).unwrap(),
        "initial events come before ready: {lines:?}"
    );
    env.kubectl(&[
        "label",
        "configmap",
        "checkout",
        "-n",
        "shop-eu",
        "release=2",
    ]);
    env.kubectl(&["delete", "configmap", "checkout", "-n", "shop-eu"]);
    program.wait_line("the deletion", |l| {
        l.starts_with("DELETED v1/configmaps shop-eu/checkout rv=")
    });
    program.signal("INT");
    let (status, lines, stderr) = program.wait_exit_lines(PATIENCE);
    assert!(status.success(), "{status}: {stderr}");
    let changes: Vec<&str> = lines
        .iter()
        .filter(|l| l.contains("shop-eu/checkout") && !l.contains("start-up"))
        .map(|l| l.split(" rv=").next().unwrap())
        .collect();
    assert_eq!(
        changes,
        [
            "UPDATED v1/configmaps shop-eu/checkout",
            "DELETED v1/configmaps shop-eu/checkout"
        ]
    );
}

#[test]
fn worker_dispatcher_annotates_the_configmaps_of_a_changed_secret_retrying_failures() {
    let env = Env::start();
    env.apply(&namespace("demo", &[]));
    env.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n  namespace: demo\n  annotations:\n    example.faro.dev/secret: db-password\ndata:\n  k: v\n",
    );
    env.apply(&configmap("demo", "unrelated", &[], "1"));
    env.apply(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-password\n  namespace: demo\nstringData:\n  password: one\n",
    );
    let program = env.spawn_example("worker_dispatcher", &["demo", "3"]);
    program.wait_line("ready", |l| l == "ready: watching 3 streams in demo");
    // The next two PATCHes of the ConfigMap fail: the worker must retry.
    env.admin("POST", "/_sim/fail?code=500&count=2&path=/configmaps/web");
    env.kubectl(&[
        "patch",
        "secret",
        "db-password",
        "-n",
        "demo",
        "--type=merge",
        "-p",
        r#"{"stringData":{"password":"two"}}"#,
    ]);
    let rv = env.kubectl(&[
        "get",
        "secret",
        "db-password",
        "-n",
        "demo",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let line = program.wait_line("the annotation", |l| l.starts_with("annotated demo/web"));
    assert_eq!(
        line,
        format!(
            "annotated demo/web: secret demo/db-password is at resourceVersion {rv} (attempt 3)"
        )
    );
    let annotation = env.kubectl(&[
        "get",
        "configmap",
        "web",
        "-n",
        "demo",
        "-o",
        r"jsonpath={.metadata.annotations.example\.faro\.dev/secret-version}",
    ]);
    assert_eq!(annotation, rv);
    assert!(
        !program.lines().iter().any(|l| l.contains("unrelated")),
        "only the ConfigMaps that name the Secret: {:?}",
        program.lines()
    );
    program.signal("INT");
    let (status, _, stderr) = program.wait_exit_lines(PATIENCE);
    assert!(status.success(), "{status}: {stderr}");
}

#[test]
fn workload_monitor_prints_json_lines_with_the_workload_of_each_event() {
    let env = Env::start();
    env.apply(&namespace("team-a", &[("team", "alpha")]));
    env.apply(&namespace("outside", &[]));
    env.apply(&configmap("team-a", "app", &[], "1"));
    env.apply(&configmap("outside", "other", &[], "1"));
    let program = env.spawn_example("workload_monitor", &["team", "v1/configmaps"]);
    program.wait_stderr("ready: watching");
    let decoded = |lines: Vec<String>| -> Vec<serde_json::Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    // stdout and stderr are separate pipes read by separate threads: the "ready" line can be
    // seen before the initial events already written to stdout are, so wait for them.
    program.wait_line("the initial ConfigMap", |l| l.contains("\"name\":\"app\""));
    let initial = decoded(program.lines());
    let app = initial
        .iter()
        .find(|e| e["gvr"] == "v1/configmaps" && e["name"] == "app")
        .unwrap_or_else(|| panic!("{initial:?}"));
    assert_eq!(app["initial"], true);
    assert_eq!(app["workload_id"], "team-a");
    assert_eq!(app["workload_name"], "alpha");
    assert!(
        initial.iter().all(|e| e["namespace"] != "outside"),
        "{initial:?}"
    );
    // A namespace that joins later is watched from then on.
    env.kubectl(&["label", "namespace", "outside", "team=beta"]);
    program.wait_line("the joining namespace's ConfigMap", |l| {
        l.contains("\"name\":\"other\"") && l.contains("\"workload_name\":\"beta\"")
    });
    std::thread::sleep(Duration::from_millis(100));
    program.signal("INT");
    let (status, _, stderr) = program.wait_exit_lines(PATIENCE);
    assert!(status.success(), "{status}: {stderr}");
}
