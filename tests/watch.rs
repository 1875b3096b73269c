//! `faro watch --config`: each config feature shows what is emitted and what is not. Changes
//! are made with kubectl; what faro asked the server is read from kube-sim's `/_sim/watches`.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::discover::CRD;
use crate::util::{Env, Event, changes, configmap, file_starting_with, namespace, stderr, stdout};

/// A marker object created last: once faro has shown it, everything before it was processed.
fn fence(env: &Env, faro: &crate::util::Faro, n: u32) -> Vec<Event> {
    let name = format!("fence-{n}");
    env.apply(&configmap("default", &name, &[], "x"));
    faro.wait_until(&name, |events| events.iter().any(|e| e.name == name))
}

fn open_watches(env: &Env) -> Vec<serde_json::Value> {
    env.admin("GET", "/_sim/watches")["watches"]
        .as_array()
        .expect("kube-sim lists its watches")
        .clone()
}

#[test]
fn namespace_pattern_follows_namespaces_created_after_start() {
    let env = Env::start();
    env.apply(&namespace("prod-old", &[]));
    env.apply(&configmap("prod-old", "before", &[], "1"));
    env.apply(&namespace("dev", &[]));
    let faro = env.watch("resources:\n  - gvr: v1/configmaps\n    namespace_patterns: [\"prod-.*\"]\n  - gvr: v1/configmaps\n    namespace_names: [default]\n",
        &[],
    );
    env.apply(&namespace("prod-new", &[]));
    env.apply(&configmap("prod-new", "after", &[], "1"));
    env.apply(&configmap("dev", "ignored", &[], "1"));
    env.apply(&configmap("prod-old", "before", &[], "2"));
    let events = fence(&env, &faro, 1);
    let shown: BTreeSet<String> = events.iter().map(Event::short).collect();
    assert!(shown.contains("ADDED v1/configmaps prod-old/before"));
    assert!(
        shown.contains("ADDED v1/configmaps prod-new/after"),
        "{shown:?}"
    );
    assert!(shown.contains("UPDATED v1/configmaps prod-old/before"));
    assert!(
        !events.iter().any(|e| e.namespace.as_deref() == Some("dev")),
        "{shown:?}"
    );
    assert!(events.iter().find(|e| e.name == "before").unwrap().initial);
    assert!(!events.iter().find(|e| e.name == "after").unwrap().initial);
    // Pushed down: one watch per matching namespace, none cluster-wide for configmaps.
    let watches = open_watches(&env);
    let paths: Vec<String> = watches
        .iter()
        .filter_map(|w| w["path"].as_str().map(str::to_owned))
        .filter(|p| p.contains("configmaps"))
        .collect();
    assert!(
        paths
            .iter()
            .any(|p| p.contains("/namespaces/prod-new/configmaps")),
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .any(|p| p.contains("/namespaces/default/configmaps")),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p == "/api/v1/configmaps"),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.contains("/namespaces/dev/")),
        "{paths:?}"
    );
    // Deleting the namespace reports its objects' deletions, then stops that watch.
    env.kubectl(&["delete", "namespace", "prod-new"]);
    faro.wait_for("DELETED prod-new/after", |e| {
        e.event_type == "DELETED" && e.name == "after"
    });
    let done = faro.stop();
    assert!(done.status.success(), "{}", done.stderr);
    let deleted: Vec<_> = done
        .events
        .iter()
        .filter(|e| e.name == "after" && e.event_type == "DELETED")
        .collect();
    assert_eq!(deleted.len(), 1, "exactly one DELETED");
}

#[test]
fn exact_names_go_to_the_server_and_regex_names_are_filtered_here() {
    let env = Env::start();
    let faro = env.watch("resources:\n  - gvr: v1/configmaps\n    namespace_names: [default]\n    name_selector: exact-one\n  - gvr: v1/configmaps\n    namespace_names: [default]\n    name_pattern: \"web-.*\"\n  - gvr: v1/configmaps\n    namespace_names: [default]\n    name_pattern: \"fence-.*\"\n",
        &[],
    );
    for name in ["exact-one", "exact-two", "web-1", "my-web-1", "web-2"] {
        env.apply(&configmap("default", name, &[], "1"));
    }
    let events = fence(&env, &faro, 1);
    let names: BTreeSet<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["exact-one", "fence-1", "web-1", "web-2"].into(),
        "{names:?}"
    );
    let watches = open_watches(&env);
    let selectors: Vec<String> = watches
        .iter()
        .filter_map(|w| w["fieldSelector"].as_str().map(str::to_owned))
        .collect();
    assert!(
        selectors.iter().any(|s| s == "metadata.name=exact-one"),
        "{watches:?}"
    );
    faro.stop();
}

#[test]
fn label_selector_is_server_side_and_label_pattern_client_side() {
    let env = Env::start();
    let faro = env.watch(
        r#"namespaces:
  - name_selector: default
    resources:
      "v1/configmaps":
        label_selector: "app=web,tier!=db"
  - name_selector: default
    resources:
      "v1/configmaps":
        label_pattern: "team=^pay-.*$"
  - name_selector: default
    resources:
      "v1/configmaps":
        name_pattern: "fence-.*"
"#,
        &[],
    );
    env.apply(&configmap("default", "sel-yes", &[("app", "web")], "1"));
    env.apply(&configmap(
        "default",
        "sel-db",
        &[("app", "web"), ("tier", "db")],
        "1",
    ));
    env.apply(&configmap("default", "pat-yes", &[("team", "pay-eu")], "1"));
    env.apply(&configmap(
        "default",
        "pat-no",
        &[("team", "ops-pay-eu")],
        "1",
    ));
    // Leaving the selector is a DELETED, entering it again an ADDED.
    env.kubectl(&["label", "configmap", "sel-yes", "app=other", "--overwrite"]);
    env.kubectl(&["label", "configmap", "sel-yes", "app=web", "--overwrite"]);
    // The same for the client-side pattern.
    env.kubectl(&["label", "configmap", "pat-yes", "team=ops", "--overwrite"]);
    let events = fence(&env, &faro, 1);
    assert_eq!(
        changes(&events, "v1/configmaps")
            .into_iter()
            .filter(|c| !c.contains("fence"))
            .collect::<Vec<_>>(),
        [
            "ADDED v1/configmaps default/sel-yes",
            "ADDED v1/configmaps default/pat-yes",
            "DELETED v1/configmaps default/sel-yes",
            "ADDED v1/configmaps default/sel-yes",
            "DELETED v1/configmaps default/pat-yes",
        ]
    );
    let watches = open_watches(&env);
    assert!(
        watches
            .iter()
            .any(|w| w["labelSelector"].as_str() == Some("app=web,tier!=db")),
        "{watches:?}"
    );
    faro.stop();
}

#[test]
fn overlapping_entries_emit_each_change_once() {
    let env = Env::start();
    env.apply(&namespace("shop", &[]));
    let faro = env.watch(
        r#"resources:
  - gvr: v1/configmaps
  - gvr: v1/configmaps
    namespace_names: [shop]
  - gvr: v1/configmaps
    label_selector: app=web
  - gvr: v1/configmaps
    name_pattern: "c.*"
"#,
        &[],
    );
    env.apply(&configmap("shop", "cart", &[("app", "web")], "1"));
    env.apply(&configmap("shop", "cart", &[("app", "web")], "2"));
    env.kubectl(&["delete", "configmap", "cart", "-n", "shop"]);
    let events = fence(&env, &faro, 1);
    assert_eq!(
        changes(&events, "v1/configmaps")
            .into_iter()
            .filter(|c| c.contains("cart"))
            .collect::<Vec<_>>(),
        [
            "ADDED v1/configmaps shop/cart",
            "UPDATED v1/configmaps shop/cart",
            "DELETED v1/configmaps shop/cart",
        ]
    );
    let mut seen = BTreeSet::new();
    for e in &events {
        assert!(
            seen.insert((e.uid.clone(), e.resource_version.clone())),
            "duplicate {e:?}"
        );
    }
    // Entries 1 and 4 have the same server-side part (cluster-wide, no selector): one watch.
    let configmap_watches = open_watches(&env)
        .into_iter()
        .filter(|w| w["resource"] == "configmaps")
        .count();
    assert_eq!(configmap_watches, 3, "cluster-wide, shop, app=web");
    faro.stop();
}

#[test]
fn cluster_scoped_resources_and_namespace_events() {
    let env = Env::start();
    // Exists before start: without --no-initial it would be an initial ADDED.
    env.apply(&namespace("team-pre", &[]));
    let faro = env.watch("resources:\n  - gvr: v1/namespaces\n    scope: Cluster\n    name_pattern: \"team-.*\"\n  - gvr: rbac.authorization.k8s.io/v1/clusterroles\n",
        &["--no-initial"],
    );
    // `other` first: the namespaces stream delivers in resourceVersion order, so once team-a
    // is shown, `other` has been processed too.
    env.apply(&namespace("other", &[]));
    env.apply(&namespace("team-a", &[]));
    env.apply(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: reader\nrules: []\n",
    );
    let events = faro.wait_until("namespace and clusterrole", |events| {
        ["team-a", "reader"]
            .iter()
            .all(|n| events.iter().any(|e| e.name == *n))
    });
    let team = events.iter().find(|e| e.name == "team-a").expect("team-a");
    assert_eq!(team.namespace, None);
    assert_eq!(team.event_type, "ADDED");
    assert!(!events.iter().any(|e| e.name == "other"));
    assert!(!events.iter().any(|e| e.name == "team-pre"), "--no-initial");
    assert!(!events.iter().any(|e| e.initial), "--no-initial");
    faro.stop();
}

#[test]
fn namespace_filter_on_a_cluster_scoped_resource_is_a_config_error() {
    let env = Env::start();
    let path = env.write(
        "c.yaml",
        "resources:\n  - gvr: v1/nodes\n    namespace_names: [default]\n",
    );
    let out = env.run_faro(&["watch", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("c.yaml:3:22"), "{}", stderr(&out));
    assert!(stderr(&out).contains("cluster-scoped"), "{}", stderr(&out));
    let path = env.write(
        "d.yaml",
        "resources:\n  - gvr: v1/pods\n    scope: Cluster\n",
    );
    let out = env.run_faro(&["watch", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("d.yaml:2:10"), "{}", stderr(&out));
}

#[test]
fn a_crd_that_arrives_cluster_scoped_keeps_its_namespace_filter_by_not_being_watched() {
    // The config expects gadgets in the namespace `default`; the CRD arrives after start-up and
    // is cluster-scoped. Watching it anyway would drop the namespace filter and show every
    // gadget of the cluster: faro warns and leaves the entry out instead.
    let env = Env::start();
    let faro = env.watch(
        "resources:\n  - gvr: example.com/v1/gadgets\n    namespace_names: [default]\n  - gvr: v1/configmaps\n    namespace_names: [default]\n",
        &[],
    );
    env.apply(
        &CRD.replace("widget", "gadget")
            .replace("Widget", "Gadget")
            .replace("Namespaced", "Cluster")
            .replace("shortNames: [wd]", "shortNames: [gd]"),
    );
    let stderr = faro.wait_stderr("example.com/v1/gadgets is cluster-scoped, so it cannot have a namespace filter; not watching it");
    assert!(
        !stderr.contains("example.com/v1/gadgets is now served"),
        "never said to be watched: {stderr}"
    );
    env.apply(
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g1\nspec:\n  size: 1\n",
    );
    let events = fence(&env, &faro, 1);
    assert!(
        events.iter().all(|e| e.gvr != "example.com/v1/gadgets"),
        "no gadget shown"
    );
    assert!(
        !open_watches(&env)
            .iter()
            .any(|w| w["path"].as_str().is_some_and(|p| p.contains("gadgets"))),
        "no gadgets watch"
    );
    let done = faro.stop();
    assert!(done.status.success());
}

#[test]
fn a_crd_created_after_start_is_watched_and_its_deletion_reported() {
    let env = Env::start();
    let faro = env.watch("resources:\n  - gvr: example.com/v1/widgets\n  - gvr: v1/configmaps\n    namespace_names: [default]\n",
        &[],
    );
    assert!(
        faro.stderr()
            .contains("example.com/v1/widgets is not served"),
        "{}",
        faro.stderr()
    );
    env.apply(CRD);
    let widget = |name: &str| {
        format!(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  size: 1\n"
        )
    };
    // The CRD may need a moment to be picked up: retry the first object until it shows.
    env.apply(&widget("w1"));
    faro.wait_for("widget w1", |e| {
        e.gvr == "example.com/v1/widgets" && e.name == "w1"
    });
    env.apply(&widget("w2"));
    faro.wait_for("widget w2", |e| e.name == "w2");
    env.kubectl(&["delete", "crd", "widgets.example.com"]);
    let events = faro.wait_until("widgets deleted", |events| {
        ["w1", "w2"].iter().all(|n| {
            events
                .iter()
                .any(|e| e.name == *n && e.event_type == "DELETED")
        })
    });
    for n in ["w1", "w2"] {
        let deleted = events
            .iter()
            .filter(|e| e.name == n && e.event_type == "DELETED")
            .count();
        assert_eq!(deleted, 1, "{n} deleted once");
    }
    // Other streams keep flowing, and the widgets stream is gone from the server.
    fence(&env, &faro, 1);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !open_watches(&env)
            .iter()
            .any(|w| w["path"].as_str().is_some_and(|p| p.contains("widgets"))),
        "widgets watch stopped"
    );
    // A CRD coming back is watched again.
    env.apply(CRD);
    env.apply(&widget("w3"));
    faro.wait_for("widget w3", |e| e.name == "w3");
    let done = faro.stop();
    assert!(done.status.success());
}

#[test]
fn a_gvr_denied_by_rbac_is_logged_once_and_the_rest_keeps_flowing() {
    let env = Env::start();
    env.admin("POST", "/_sim/forbid?resource=secrets");
    let faro = env.watch(
        "resources:\n  - gvr: v1/secrets\n  - gvr: v1/configmaps\n",
        &[],
    );
    env.apply(&configmap("default", "still-flowing", &[], "1"));
    faro.wait_for("configmap", |e| e.name == "still-flowing");
    // "Once" means something only after the list was denied again (a retry every few seconds).
    let start = std::time::Instant::now();
    loop {
        let requests = env.admin("GET", "/_sim/requests");
        let denied = requests["requests"]
            .as_array()
            .expect("request log")
            .iter()
            .filter(|r| r["path"] == "/api/v1/secrets" && r["status"] == 403)
            .count();
        if denied >= 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "faro did not retry the denied list"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let done = faro.stop();
    assert!(done.status.success());
    let warnings: Vec<&str> = done
        .stderr
        .lines()
        .filter(|l| l.contains("forbidden"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", done.stderr);
    assert!(
        warnings[0].contains("\"list\" and \"watch\""),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("\"secrets\""), "{}", warnings[0]);
    assert!(
        done.stderr.contains("ready: watching"),
        "ready despite the 403"
    );
}

#[test]
fn output_dir_files_include_object_and_secret_redaction() {
    let env = Env::start();
    let out_dir = env.path("out");
    let faro = env.watch("resources:\n  - gvr: v1/secrets\n    namespace_names: [default]\n  - gvr: v1/configmaps\n    namespace_names: [default]\n",
        &[
            "--output-dir",
            out_dir.to_str().unwrap(),
            "--include-object",
        ],
    );
    env.apply(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: default\ndata:\n  password: c2VjcmV0LXZhbHVl\nstringData:\n  token: plain-token\n",
    );
    env.apply(&configmap("default", "cfg", &[("app", "a")], "visible"));
    let events = fence(&env, &faro, 1);
    let done = faro.stop();
    assert!(done.status.success());
    let secret = events
        .iter()
        .find(|e| e.name == "db")
        .expect("secret event");
    let object = secret.object.as_ref().expect("object included");
    for (_, v) in object["data"].as_object().unwrap() {
        assert_eq!(v, "<redacted>");
    }
    assert!(
        !secret
            .annotations
            .contains_key("kubectl.kubernetes.io/last-applied-configuration")
    );
    let cfg = events.iter().find(|e| e.name == "cfg").unwrap();
    assert_eq!(cfg.object.as_ref().unwrap()["data"]["value"], "visible");
    assert_eq!(cfg.object.as_ref().unwrap()["kind"], "ConfigMap");
    // Files: same lines as stdout, mode 0600.
    let logs = out_dir.join("logs");
    let events_file = file_starting_with(&logs, "events-");
    let log_file = file_starting_with(&logs, "faro-");
    use std::os::unix::fs::PermissionsExt;
    for f in [&events_file, &log_file] {
        assert_eq!(
            std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
            0o600,
            "{f:?}"
        );
    }
    let text = std::fs::read_to_string(events_file).unwrap();
    assert_eq!(text.lines().count(), done.events.len());
    assert!(!text.contains("c2VjcmV0LXZhbHVl") && !text.contains("plain-token"));
    assert!(
        std::fs::read_to_string(log_file)
            .unwrap()
            .contains("ready: watching")
    );
}

#[test]
fn text_format_and_initial_events() {
    let env = Env::start();
    env.apply(&configmap("default", "pre", &[], "1"));
    let path = env.write("c.yaml", "resources:\n  - gvr: v1/configmaps\n");
    let faro = env.spawn_ready(&[
        "watch",
        "--config",
        path.to_str().unwrap(),
        "--format",
        "text",
    ]);
    env.apply(&configmap("default", "post", &[], "1"));
    let start = std::time::Instant::now();
    while !faro.lines().iter().any(|l| l.contains("default/post")) {
        assert!(
            start.elapsed() < crate::util::PATIENCE,
            "{:?}",
            faro.lines()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = faro.lines();
    let pre = lines.iter().find(|l| l.contains("default/pre")).unwrap();
    assert!(
        pre.contains(" ADDED ") && pre.contains(" configmap ") && pre.contains(" initial"),
        "{pre}"
    );
    let post = lines.iter().find(|l| l.contains("default/post")).unwrap();
    assert!(
        !post.contains("initial") && !post.starts_with('{'),
        "{post}"
    );
    drop(faro);
}

#[test]
fn auto_shutdown_and_closed_stdout_exit_zero() {
    let env = Env::start();
    let path = env.write(
        "c.yaml",
        "resources:\n  - gvr: v1/configmaps\nauto_shutdown: 30s\n",
    );
    let started = std::time::Instant::now();
    let out = env.run_faro(&[
        "watch",
        "--config",
        path.to_str().unwrap(),
        "--auto-shutdown",
        "1s",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the flag overrides the file"
    );
    assert!(stderr(&out).contains("auto-shutdown"));
    // `faro … | head -1`: the reader goes away, faro ends quietly with 0.
    for i in 0..30 {
        env.apply(&configmap("default", &format!("cm-{i}"), &[], "1"));
    }
    let sh = format!(
        "{} watch --config {} | head -1; exit ${{PIPESTATUS[0]}}",
        env!("CARGO_BIN_EXE_faro"),
        path.display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &sh])
        .env("KUBECONFIG", env.kubeconfig())
        .env("HOME", env.path(""))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1);
    assert!(!stderr(&out).contains("error"), "{}", stderr(&out));
}

#[test]
fn sigint_drains_gracefully_and_exits_zero() {
    let env = Env::start();
    let faro = env.watch("resources:\n  - gvr: v1/configmaps\n", &[]);
    faro.signal("INT");
    let done = faro.wait_exit(crate::util::PATIENCE);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
}

#[test]
fn bad_configs_exit_two_naming_the_problem() {
    let env = Env::start();
    let cases: &[(&str, &str)] = &[
        ("bogus: 1\n", "unknown field `bogus`"),
        (
            "resources:\n  - gvr: v1/pods\n    colour: red\n",
            "unknown field `colour`",
        ),
        ("resources:\n  - gvr: pods\n", "invalid GVR"),
        (
            "resources:\n  - gvr: apps/v1/deployments/scale\n",
            "invalid GVR",
        ),
        (
            "resources:\n  - gvr: v1/pods\n    name_pattern: \"web-(\"\n",
            "invalid regex",
        ),
        (
            "resources:\n  - gvr: v1/pods\n    namespace_patterns: [\"a[\"]\n",
            "invalid regex",
        ),
        (
            "resources:\n  - gvr: v1/pods\n    label_selector: \"app in prod\"\n",
            "label_selector",
        ),
        (
            "resources:\n  - gvr: v1/pods\n    label_pattern: \"novalue\"\n",
            "key=regex",
        ),
        (
            "resources:\n  - gvr: v1/nodes\n    scope: Cluster\n    namespace_names: [a]\n",
            "cluster-scoped",
        ),
        (
            "resources:\n  - gvr: v1/nodes\n    namespace_names: [a]\n",
            "cluster-scoped",
        ),
        (
            "resources:\n  - gvr: v1/pods\n    scope: Global\n",
            "Cluster or Namespaced",
        ),
        (
            "auto_shutdown: soon\nresources:\n  - gvr: v1/pods\n",
            "auto_shutdown",
        ),
        (
            "log_level: loud\nresources:\n  - gvr: v1/pods\n",
            "unknown level",
        ),
        (
            "namespaces:\n  - resources:\n      v1/pods: {}\n",
            "name_pattern or name_selector",
        ),
        (
            "namespaces:\n  - name_pattern: a\n    resources:\n      v1/pods: {}\n      v1/pods: {}\n",
            "duplicate",
        ),
        ("resources: [\n", "unclosed"),
        ("resources:\n  - scope: Cluster\n", "gvr"),
        ("{}\n", "names nothing to watch"),
    ];
    for (i, (yaml, words)) in cases.iter().enumerate() {
        let path = env.write(&format!("bad-{i}.yaml"), yaml);
        let out = env.run_faro(&["watch", "--config", path.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{yaml:?}: {err}");
        assert!(err.contains(words), "{yaml:?}: {err}");
        assert!(
            err.contains(&format!("bad-{i}.yaml")),
            "names the file: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn a_gvr_whose_list_keeps_failing_does_not_block_ready() {
    let env = Env::start();
    env.admin("POST", "/_sim/fail?code=500&count=-1&path=/api/v1/secrets");
    let faro = env.watch(
        "resources:\n  - gvr: v1/secrets\n  - gvr: v1/configmaps\n",
        &[],
    );
    env.apply(&configmap("default", "flowing", &[], "1"));
    faro.wait_for("configmap", |e| e.name == "flowing");
    // Once the server recovers, the failing stream catches up on its own.
    env.admin("POST", "/_sim/fail?clear=true");
    env.apply(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: late\n  namespace: default\nstringData:\n  k: v\n",
    );
    faro.wait_for("secret after recovery", |e| {
        e.gvr == "v1/secrets" && e.name == "late"
    });
    let done = faro.stop();
    assert!(
        done.stderr.contains("watch failed, retrying"),
        "{}",
        done.stderr
    );
}
