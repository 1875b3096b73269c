//! `faro discover` against kube-sim's catalogs.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use kube_sim::{Catalog, Options};
use serde_json::Value;

use crate::util::{Env, stderr, stdout};

/// What faro should call watchable, decided here from the catalog independently of faro's code.
fn expected_watchable(catalog: Catalog) -> usize {
    catalog
        .resources()
        .iter()
        .filter(|r| {
            let v = &r.entry.verbs;
            v.iter().any(|x| x == "list")
                && v.iter().any(|x| x == "watch")
                && r.group != "metrics.k8s.io"
                && !(r.group.is_empty()
                    && ["componentstatuses", "bindings"].contains(&r.entry.name.as_str()))
        })
        .count()
}

fn json_lines(env: &Env, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["discover", "-o", "json"];
    args.extend_from_slice(extra);
    let out = env.run_faro(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn check_catalog(catalog: Catalog, aggregated: bool) {
    let env = Env::with(Options {
        catalog,
        aggregated,
        ..Options::default()
    });
    let all = json_lines(&env, &[]);
    assert_eq!(
        all.len(),
        catalog.resources().len(),
        "{catalog} all (aggregated={aggregated})"
    );
    let watchable = json_lines(&env, &["--watchable"]);
    assert_eq!(
        watchable.len(),
        expected_watchable(catalog),
        "{catalog} watchable"
    );
    assert!(watchable.iter().all(|r| r["watchable"] == true));
    // Exactly one preferred version per (group, resource) served in the preferred version.
    let preferred: BTreeSet<(String, String)> = all
        .iter()
        .filter(|r| r["preferred"] == true)
        .map(|r| {
            (
                r["group"].as_str().unwrap().to_owned(),
                r["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let groups: BTreeSet<String> = all
        .iter()
        .map(|r| r["group"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        preferred.len(),
        groups.len(),
        "one preferred version per group"
    );
}

#[test]
fn vanilla_counts_match_the_catalog_in_both_discovery_modes() {
    check_catalog(Catalog::Vanilla, true);
    check_catalog(Catalog::Vanilla, false);
}

#[test]
fn large_counts_match_the_catalog_in_both_discovery_modes() {
    check_catalog(Catalog::Large, true);
    check_catalog(Catalog::Large, false);
}

#[test]
fn known_non_watchable_resources_are_marked() {
    let env = Env::start();
    let all = json_lines(&env, &[]);
    let find = |gvr: &str| {
        all.iter()
            .find(|r| r["gvr"] == gvr)
            .unwrap_or_else(|| panic!("{gvr} listed"))
            .clone()
    };
    for gvr in [
        "v1/componentstatuses",
        "v1/bindings",
        "metrics.k8s.io/v1beta1/pods",
        "authentication.k8s.io/v1/tokenreviews",
    ] {
        assert_eq!(find(gvr)["watchable"], false, "{gvr}");
    }
    let pods = find("v1/pods");
    assert_eq!(pods["watchable"], true);
    assert_eq!(pods["kind"], "Pod");
    assert_eq!(pods["namespaced"], true);
    assert!(
        pods["shortNames"]
            .as_array()
            .unwrap()
            .contains(&Value::from("po"))
    );
    assert!(
        pods["verbs"]
            .as_array()
            .unwrap()
            .contains(&Value::from("watch"))
    );
    assert_eq!(find("apps/v1/deployments")["preferred"], true);
    // No subresource is listed as a resource.
    assert!(
        all.iter()
            .all(|r| !r["resource"].as_str().unwrap().contains('/'))
    );
}

#[test]
fn output_is_valid_json_lines_for_jq_and_names_are_gvrs() {
    let env = Env::start();
    let out = env.run_faro(&["discover"]);
    assert!(out.status.success());
    // Not a terminal: JSON lines by default; jq must accept every line.
    let mut jq = Command::new("jq")
        .args([
            "-e",
            "-c",
            "select(.gvr and (.watchable|type==\"boolean\"))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("jq is installed");
    use std::io::Write;
    jq.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let jq_out = jq.wait_with_output().unwrap();
    assert!(jq_out.status.success());
    assert_eq!(
        stdout(&jq_out).lines().count(),
        stdout(&out).lines().count()
    );

    let names = env.run_faro(&[
        "discover",
        "--watchable",
        "-o",
        "name",
        "--api-group",
        "apps",
    ]);
    let names = stdout(&names);
    assert!(names.lines().any(|l| l == "apps/v1/deployments"), "{names}");
    assert!(names.lines().all(|l| l.starts_with("apps/v1/")), "{names}");
    let core = stdout(&env.run_faro(&[
        "discover",
        "-o",
        "name",
        "--api-group",
        "core",
        "--namespaced=false",
    ]));
    assert!(core.lines().any(|l| l == "v1/namespaces"), "{core}");
    assert!(!core.lines().any(|l| l == "v1/pods"), "{core}");
}

#[test]
fn discover_names_feed_faro_watch() {
    // Every watchable GVR faro discovers can be put in a config as-is and watched.
    let env = Env::start();
    let names = stdout(&env.run_faro(&["discover", "--watchable", "-o", "name"]));
    let mut config = String::from("resources:\n");
    for gvr in names.lines() {
        config.push_str(&format!("  - gvr: \"{gvr}\"\n"));
    }
    let path = env.write("all.yaml", &config);
    let faro = env.spawn_ready(&["watch", "--config", path.to_str().unwrap(), "--no-initial"]);
    let done = faro.stop();
    assert!(done.status.success(), "{}", done.stderr);
    // One stream per GVR plus the CRD control stream.
    let expected = format!(
        "ready: watching {} resource streams",
        names.lines().count() + 1
    );
    assert!(
        done.stderr.contains(&expected),
        "{expected}\n{}",
        done.stderr
    );
}

#[test]
fn a_failing_group_is_a_warning_and_the_rest_is_listed() {
    for aggregated in [true, false] {
        let env = Env::with(Options {
            aggregated,
            ..Options::default()
        });
        env.admin("POST", "/_sim/group-down?group=metrics.k8s.io");
        let out = env.run_faro(&["discover", "-o", "name"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("metrics.k8s.io/v1beta1"),
            "warning names the group: {}",
            stderr(&out)
        );
        let names = stdout(&out);
        assert!(!names.contains("metrics.k8s.io"), "{names}");
        assert!(names.lines().any(|l| l == "v1/pods"));
        assert_eq!(
            names.lines().count(),
            Catalog::Vanilla.resources().len() - 2
        );
    }
}

#[test]
fn a_crd_created_with_kubectl_appears_in_the_next_discover() {
    let env = Env::start();
    let before = stdout(&env.run_faro(&["discover", "-o", "name"]));
    assert!(!before.contains("example.com"));
    env.apply(CRD);
    let after = stdout(&env.run_faro(&["discover", "-o", "name"]));
    assert!(
        after.lines().any(|l| l == "example.com/v1/widgets"),
        "{after}"
    );
    let widget = json_lines(&env, &["--api-group", "example.com"]);
    assert_eq!(widget.len(), 1);
    assert_eq!(widget[0]["kind"], "Widget");
    assert_eq!(widget[0]["shortNames"], serde_json::json!(["wd"]));
}

pub const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;

#[test]
fn server_errors_are_one_line_and_exit_one() {
    // Unreachable: a port nothing listens on.
    let env = Env::start();
    let dead = env.write(
        "dead.yaml",
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"http://127.0.0.1:1\"}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {token: t}\n",
    );
    let garbage = env.write("garbage.yaml", "{ this is: [not a kubeconfig\n");
    let kc = env.kubeconfig().to_str().unwrap().to_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--kubeconfig", dead.to_str().unwrap(), "discover"],
            "127.0.0.1:1",
        ),
        (
            vec!["--kubeconfig", garbage.to_str().unwrap(), "discover"],
            "kubeconfig",
        ),
    ];
    for (args, words) in cases {
        let out = env.run_faro(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(words), "{args:?}: {err}");
        assert!(!err.contains("panicked"));
    }
    // A context the kubeconfig does not have is the user's to fix (exit 2), named with the
    // ones it has.
    let out = env.run_faro(&["--kubeconfig", &kc, "--context", "nope", "discover"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("context \"nope\" is not in the kubeconfig") && err.contains("kube-sim"),
        "{err}"
    );
    // 401 and 403 on discovery.
    env.admin("POST", "/_sim/auth?token=something-else");
    let out = env.run_faro(&["discover"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("credentials"), "{}", stderr(&out));
    env.admin("POST", "/_sim/auth?clear=true");
    env.admin("POST", "/_sim/fail?code=403&count=-1&path=/apis");
    let out = env.run_faro(&["discover"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));
}
