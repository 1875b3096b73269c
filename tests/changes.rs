//! `diff` and `changedBy` for writes made with the real kubectl, against kube-sim's
//! managedFields (kept as kube-apiserver keeps them): each write yields one UPDATED with the
//! exact diff operations and the field manager the real server names.

use serde_json::{Value, json};

use crate::util::{Env, Event, Faro, namespace};

const LAST_APPLIED: &str =
    "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration";

fn deployment(replicas: u32, extra_label: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n  labels:\n    app: web\n{extra_label}spec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: c\n        image: nginx:1\n"
    )
}

/// Waits for the next UPDATED of `name` after the `seen` events already checked.
fn next_update(faro: &Faro, seen: &mut usize, name: &str) -> Event {
    let events = faro.wait_until(&format!("an UPDATED of {name}"), |events| {
        events[*seen..]
            .iter()
            .any(|e| e.event_type == "UPDATED" && e.name == name)
    });
    let (i, event) = events
        .iter()
        .enumerate()
        .skip(*seen)
        .find(|(_, e)| e.event_type == "UPDATED" && e.name == name)
        .unwrap();
    *seen = i + 1;
    event.clone()
}

fn manager(event: &Event) -> (&str, &str, Option<&str>) {
    let by = event
        .changed_by
        .as_ref()
        .unwrap_or_else(|| panic!("no changedBy: {event:?}"));
    (
        by["manager"].as_str().unwrap(),
        by["operation"].as_str().unwrap(),
        by.get("subresource").and_then(Value::as_str),
    )
}

#[test]
fn every_kubectl_write_has_its_diff_and_manager() {
    let env = Env::start();
    env.apply(&namespace("shop", &[]));
    env.apply(&deployment(2, ""));
    let faro = env.spawn_ready(&[
        "watch",
        "deploy,cm,secrets",
        "-n",
        "shop",
        "-o",
        "json",
        "--diff",
        "--diff-ignore",
        LAST_APPLIED,
    ]);
    let events = faro.wait_until("the initial deployment", |e| {
        e.iter().any(|e| e.name == "web")
    });
    let added = events.iter().find(|e| e.name == "web").unwrap();
    assert_eq!(added.event_type, "ADDED");
    assert!(added.diff.is_none(), "ADDED carries no diff: {added:?}");
    assert_eq!(
        manager(added),
        ("kubectl-client-side-apply", "Update", None)
    );
    let mut seen = events.len();

    // kubectl scale writes the scale subresource; the server names the manager `kubectl`.
    env.kubectl(&["scale", "deploy/web", "-n", "shop", "--replicas=3"]);
    let e = next_update(&faro, &mut seen, "web");
    assert_eq!(
        e.diff,
        Some(json!([{"op": "replace", "path": "/spec/replicas", "value": 3, "old": 2}]))
    );
    assert_eq!(manager(&e), ("kubectl", "Update", Some("scale")));
    assert!(!e.changed_by_ambiguous, "{e:?}");

    // kubectl edit, with an editor that changes the image: a strategic merge patch.
    let editor = env.write(
        "editor.sh",
        "#!/bin/sh\nsed -i 's/image: nginx:1/image: nginx:2/' \"$1\"\n",
    );
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = env
        .kubectl
        .command(&["edit", "deploy/web", "-n", "shop"])
        .env("KUBE_EDITOR", &editor)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl edit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = next_update(&faro, &mut seen, "web");
    assert_eq!(
        e.diff,
        Some(
            json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image",
            "value": "nginx:2", "old": "nginx:1"}])
        )
    );
    assert_eq!(manager(&e), ("kubectl-edit", "Update", None));

    // kubectl apply (client-side) of the manifest with a new label: the edited image goes
    // back; the annotation that apply rewrites is ignored.
    env.apply(&deployment(3, "    tier: front\n"));
    let e = next_update(&faro, &mut seen, "web");
    assert_eq!(
        e.diff,
        Some(json!([
            {"op": "add", "path": "/metadata/labels/tier", "value": "front"},
            {"op": "replace", "path": "/spec/template/spec/containers/0/image",
             "value": "nginx:1", "old": "nginx:2"},
        ])),
        "{e:?}"
    );
    assert_eq!(manager(&e), ("kubectl-client-side-apply", "Update", None));

    // kubectl label.
    env.kubectl(&["label", "deploy/web", "-n", "shop", "team=core"]);
    let e = next_update(&faro, &mut seen, "web");
    assert_eq!(
        e.diff,
        Some(json!([{"op": "add", "path": "/metadata/labels/team", "value": "core"}]))
    );
    assert_eq!(manager(&e), ("kubectl-label", "Update", None));

    // A status write, as a controller makes it (here through kubectl's --subresource); the
    // second one, so that the status exists before whatever the server starts it as.
    for ready in ["1", "3"] {
        env.kubectl(&[
            "patch",
            "deploy/web",
            "-n",
            "shop",
            "--subresource=status",
            "--type=merge",
            "-p",
            &format!(r#"{{"status":{{"readyReplicas":{ready}}}}}"#),
        ]);
    }
    next_update(&faro, &mut seen, "web");
    let e = next_update(&faro, &mut seen, "web");
    assert_eq!(
        e.diff,
        Some(json!([{"op": "replace", "path": "/status/readyReplicas", "value": 3, "old": 1}])),
        "{e:?}"
    );
    assert_eq!(manager(&e), ("kubectl-patch", "Update", Some("status")));

    // Server-side apply: manager `kubectl`, operation Apply.
    let cm = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  mode: {value}\n"
        )
    };
    env.kubectl.apply_yaml(&cm("a"), &["--server-side"]);
    let events = faro.wait_until("the configmap", |e| e.iter().any(|e| e.name == "settings"));
    let added = events.iter().find(|e| e.name == "settings").unwrap();
    assert_eq!(manager(added), ("kubectl", "Apply", None));
    env.kubectl.apply_yaml(&cm("b"), &["--server-side"]);
    let e = next_update(&faro, &mut seen, "settings");
    assert_eq!(
        e.diff,
        Some(json!([{"op": "replace", "path": "/data/mode", "value": "b", "old": "a"}]))
    );
    assert_eq!(manager(&e), ("kubectl", "Apply", None));

    // A Secret: the path is shown, its values never are.
    env.apply("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\ndata:\n  password: b25l\n");
    faro.wait_until("the secret", |e| e.iter().any(|e| e.name == "db"));
    env.kubectl(&[
        "patch",
        "secret/db",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"data":{"password":"dHdv","user":"YWRtaW4="}}"#,
    ]);
    let e = next_update(&faro, &mut seen, "db");
    assert_eq!(
        e.diff,
        Some(json!([
            {"op": "replace", "path": "/data/password", "value": "<redacted>", "old": "<redacted>"},
            {"op": "add", "path": "/data/user", "value": "<redacted>"},
        ]))
    );
    assert_eq!(manager(&e), ("kubectl-patch", "Update", None));
    let lines = faro.lines().join("\n");
    for secret in ["dHdv", "YWRtaW4=", "b25l"] {
        assert!(!lines.contains(secret), "a secret value reached the output");
    }
    faro.stop();
}

#[test]
fn config_entries_choose_what_is_diffed_and_an_empty_diff_still_prints() {
    let env = Env::start();
    env.apply(&namespace("shop", &[]));
    let config = "resources:\n- gvr: v1/configmaps\n  diff: true\n- gvr: v1/services\n";
    let faro = env.watch(config, &["--diff-ignore", "/data/ignored", "-o", "json"]);
    env.kubectl(&[
        "create",
        "configmap",
        "c",
        "-n",
        "shop",
        "--from-literal=k=1",
    ]);
    env.apply("apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: shop\nspec:\n  ports:\n  - port: 80\n");
    faro.wait_until("both objects", |e| e.len() >= 2);
    let mut seen = 2;
    env.kubectl(&["label", "svc/s", "-n", "shop", "a=b"]);
    let e = next_update(&faro, &mut seen, "s");
    assert!(e.diff.is_none(), "services are not diffed: {e:?}");
    assert_eq!(manager(&e).0, "kubectl-label");
    // Only an ignored path changes: the UPDATED still prints, with an empty diff.
    env.kubectl(&[
        "patch",
        "cm/c",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"data":{"ignored":"x"}}"#,
    ]);
    let e = next_update(&faro, &mut seen, "c");
    assert_eq!(e.diff, Some(json!([])));
    faro.stop();
}

#[test]
fn a_bad_ignore_pointer_is_a_usage_error() {
    let env = Env::start();
    let out = env.run_faro(&["watch", "cm", "--diff", "--diff-ignore", "status"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must start with /"), "{err}");
}

#[test]
fn text_lines_show_the_change_and_the_manager() {
    let env = Env::start();
    env.apply(&namespace("shop", &[]));
    env.apply(&deployment(2, ""));
    let faro = env.spawn_ready(&["watch", "deploy", "-n", "shop", "-o", "text", "--diff"]);
    let added = faro.wait_line("the ADDED line", |l| l.contains("ADDED"));
    assert!(
        added.ends_with("initial by kubectl-client-side-apply"),
        "{added:?}"
    );
    env.kubectl(&["scale", "deploy/web", "-n", "shop", "--replicas=3"]);
    let line = faro.wait_line("the UPDATED line", |l| l.contains("UPDATED"));
    assert!(
        line.contains("deployment.apps shop/web")
            && line.ends_with("spec.replicas: 2 → 3 by kubectl"),
        "{line:?}"
    );
    assert!(
        !line.contains('\x1b'),
        "no colours off a terminal: {line:?}"
    );
    faro.signal("TERM");
    let (status, _, stderr) = faro.wait_exit_lines(crate::util::PATIENCE);
    assert!(status.success(), "{stderr}");
}
