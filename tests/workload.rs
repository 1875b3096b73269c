//! `faro workload`: workloads detected from namespace labels, at start-up and live.

use std::collections::BTreeSet;

use crate::util::{Env, Event, Faro, configmap, namespace};

const LABEL: &str = "api.openshift.com/name";

fn spawn(env: &Env, args: &[&str]) -> Faro {
    let mut all = vec!["workload"];
    all.extend_from_slice(args);
    env.spawn_ready(&all)
}

/// The events of one object, as "TYPE workload_id".
fn history(events: &[Event], name: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.name == name)
        .map(|e| {
            format!(
                "{}{} {}",
                e.event_type,
                if e.initial { "(initial)" } else { "" },
                e.workload_id.as_deref().unwrap_or("-")
            )
        })
        .collect()
}

fn fence(env: &Env, faro: &Faro, ns: &str, n: u32) -> Vec<Event> {
    let name = format!("fence-{n}");
    env.apply(&configmap(ns, &name, &[], "x"));
    faro.wait_until(&name, |events| events.iter().any(|e| e.name == name))
}

#[test]
fn workloads_are_detected_at_start_and_live() {
    let env = Env::start();
    env.apply(&namespace("ocm-staging-pre", &[(LABEL, "toda-pre")]));
    env.apply(&configmap("ocm-staging-pre", "pre-cm", &[], "1"));
    env.apply(&namespace("ocm-logs-pre", &[]));
    env.apply(&configmap("ocm-logs-pre", "related-cm", &[], "1"));
    env.apply(&namespace("plain", &[]));
    env.apply(&configmap("plain", "plain-cm", &[], "1"));
    env.apply(&namespace("ocm-staging-other", &[(LABEL, "not-toda")]));
    env.apply(&configmap("ocm-staging-other", "other-cm", &[], "1"));

    let faro = spawn(
        &env,
        &[
            "-label",
            LABEL,
            "-pattern",
            "toda-.*",
            "-namespace-pattern",
            "ocm-(?:staging|logs)-(.+)",
            "-allowedgvrs",
            "v1/namespaces",
            "-workloadgvrs",
            "v1/configmaps,v1/secrets",
        ],
    );
    let events = faro.events();
    assert_eq!(history(&events, "pre-cm"), ["ADDED(initial) pre"]);
    assert_eq!(
        history(&events, "related-cm"),
        ["ADDED(initial) pre"],
        "related by name"
    );
    let pre_ns = events
        .iter()
        .find(|e| e.gvr == "v1/namespaces" && e.name == "ocm-staging-pre")
        .unwrap();
    assert_eq!(pre_ns.workload_id.as_deref(), Some("pre"));
    assert_eq!(pre_ns.workload_name.as_deref(), Some("toda-pre"));
    let plain_ns = events
        .iter()
        .find(|e| e.gvr == "v1/namespaces" && e.name == "plain")
        .unwrap();
    assert_eq!(
        plain_ns.workload_id, None,
        "allowed namespaces are all shown, without workload"
    );

    // Created with the label: watched at once.
    env.apply(&namespace("ocm-staging-new", &[(LABEL, "toda-new")]));
    env.apply(&configmap("ocm-staging-new", "new-cm", &[], "1"));
    // Created without the label, labelled later.
    env.apply(&namespace("ocm-staging-late", &[]));
    env.apply(&configmap("ocm-staging-late", "late-cm", &[], "1"));
    fence(&env, &faro, "ocm-staging-new", 1);
    env.kubectl(&[
        "label",
        "namespace",
        "ocm-staging-late",
        &format!("{LABEL}=toda-late"),
    ]);
    faro.wait_for("late-cm", |e| e.name == "late-cm");
    env.apply(&configmap("ocm-staging-late", "late-cm", &[], "2"));
    faro.wait_for("late-cm updated", |e| {
        e.name == "late-cm" && e.event_type == "UPDATED"
    });
    // Label removed: its objects leave; later changes are not shown.
    env.kubectl(&[
        "label",
        "namespace",
        "ocm-staging-late",
        &format!("{LABEL}-"),
    ]);
    faro.wait_for("late-cm left", |e| {
        e.name == "late-cm" && e.event_type == "DELETED"
    });
    env.apply(&configmap("ocm-staging-late", "late-cm", &[], "3"));
    // Deleted namespace: its objects' deletions, then the namespace's.
    env.kubectl(&["delete", "namespace", "ocm-staging-new"]);
    faro.wait_for("new namespace deleted", |e| {
        e.gvr == "v1/namespaces" && e.name == "ocm-staging-new" && e.event_type == "DELETED"
    });
    env.apply(&configmap("plain", "plain-cm", &[], "2"));
    env.apply(&configmap("ocm-staging-other", "other-cm", &[], "2"));
    let events = fence(&env, &faro, "ocm-staging-pre", 2);

    assert_eq!(history(&events, "new-cm"), ["ADDED new", "DELETED new"]);
    assert_eq!(
        history(&events, "late-cm"),
        ["ADDED late", "UPDATED late", "DELETED late"]
    );
    assert!(
        history(&events, "plain-cm").is_empty(),
        "not a workload namespace"
    );
    assert!(
        history(&events, "other-cm").is_empty(),
        "label value does not match -pattern"
    );
    let new_ns: Vec<&Event> = events
        .iter()
        .filter(|e| e.gvr == "v1/namespaces" && e.name == "ocm-staging-new")
        .collect();
    assert!(
        new_ns
            .iter()
            .all(|e| e.workload_id.as_deref() == Some("new")),
        "{new_ns:?}"
    );
    let late_ns: Vec<(String, Option<String>)> = events
        .iter()
        .filter(|e| e.gvr == "v1/namespaces" && e.name == "ocm-staging-late")
        .map(|e| (e.event_type.clone(), e.workload_id.clone()))
        .collect();
    assert_eq!(
        late_ns,
        [
            ("ADDED".to_string(), None),
            ("UPDATED".to_string(), Some("late".to_string())),
            ("UPDATED".to_string(), None),
        ],
        "the labelling event itself carries the workload"
    );
    // Every configmap event from a workload namespace carries its workload.
    for e in events.iter().filter(|e| e.gvr == "v1/configmaps") {
        assert!(
            e.workload_id.is_some() && e.workload_name.is_some(),
            "{e:?}"
        );
    }
    let done = faro.stop();
    assert!(done.status.success(), "{}", done.stderr);
    assert!(done.stderr.contains("joined workload"), "{}", done.stderr);
}

#[test]
fn two_workloads_with_overlapping_name_patterns_stay_apart() {
    let env = Env::start();
    for (ns, name) in [("ns-a", "toda-a"), ("ns-ab", "toda-ab")] {
        env.apply(&namespace(ns, &[("team", name)]));
        env.apply(&configmap(ns, "cm", &[], "1"));
    }
    // "ns-a-logs" yields id "a-logs": a workload of its own only if labelled; it is not.
    env.apply(&namespace("ns-a-logs", &[]));
    env.apply(&configmap("ns-a-logs", "cm", &[], "1"));
    let faro = spawn(
        &env,
        &[
            "--label",
            "team",
            "--namespace-pattern",
            "ns-(.+)",
            "--workloadgvrs",
            "v1/configmaps",
        ],
    );
    env.apply(&configmap("ns-a", "cm", &[], "2"));
    env.apply(&configmap("ns-ab", "cm", &[], "2"));
    let events = fence(&env, &faro, "ns-ab", 1);
    let attributed: BTreeSet<(String, String, String)> = events
        .iter()
        .filter(|e| e.name == "cm")
        .map(|e| {
            (
                e.namespace.clone().unwrap(),
                e.workload_id.clone().unwrap(),
                e.workload_name.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        attributed,
        [
            ("ns-a".into(), "a".into(), "toda-a".into()),
            ("ns-ab".into(), "ab".into(), "toda-ab".into()),
        ]
        .into()
    );
    assert_eq!(events.iter().filter(|e| e.name == "cm").count(), 4);
    faro.stop();
}

#[test]
fn denied_beats_allowed_and_workload_and_other_namespaces_never_appear() {
    let env = Env::start();
    env.apply(&namespace("w1", &[("team", "one")]));
    env.apply(&namespace("outside", &[]));
    let secret = |ns: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: {ns}\nstringData:\n  k: v\n"
        )
    };
    let faro = spawn(
        &env,
        &[
            "-label",
            "team",
            "-allowedgvrs",
            "v1/services",
            "-workloadgvrs",
            "v1/secrets,v1/configmaps,v1/services",
            "-deniedgvrs",
            "v1/secrets",
        ],
    );
    env.apply(&secret("w1"));
    env.apply(&configmap("w1", "in", &[], "1"));
    env.apply(&configmap("outside", "out", &[], "1"));
    env.apply(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\n  namespace: outside\nspec:\n  ports: [{port: 80}]\n",
    );
    let events = fence(&env, &faro, "w1", 1);
    assert!(
        !events.iter().any(|e| e.gvr == "v1/secrets"),
        "denied wins over workload"
    );
    assert!(events.iter().any(|e| e.name == "in"));
    assert!(
        !events.iter().any(|e| e.name == "out"),
        "not a workload namespace"
    );
    let svc = events
        .iter()
        .find(|e| e.name == "svc")
        .expect("allowed: cluster-wide");
    assert_eq!(svc.workload_id, None);
    assert!(
        !events.iter().any(|e| e.gvr == "v1/namespaces"),
        "namespaces not asked for"
    );
    let watches = env.admin("GET", "/_sim/watches");
    let text = watches.to_string();
    assert!(!text.contains("secrets"), "no secrets watch at all: {text}");
    assert!(text.contains("/api/v1/namespaces/w1/configmaps"), "{text}");
    assert!(
        !text.contains("/api/v1/namespaces/outside/configmaps"),
        "{text}"
    );
    let done = faro.stop();
    assert!(
        done.stderr
            .contains("never watched (-deniedgvrs v1/secrets)"),
        "{}",
        done.stderr
    );
}

#[test]
fn single_and_double_dash_flags_are_the_same() {
    let env = Env::start();
    env.apply(&namespace("w1", &[("team", "one")]));
    env.apply(&configmap("w1", "cm", &[], "1"));
    for args in [
        &[
            "-label",
            "team",
            "-workloadgvrs",
            "v1/configmaps",
            "-workload-id-pattern",
            "w(.+)",
        ][..],
        &[
            "--label=team",
            "--workloadgvrs=v1/configmaps",
            "--namespace-pattern=w(.+)",
        ][..],
    ] {
        let faro = spawn(&env, args);
        let events = faro.events();
        let cm = events.iter().find(|e| e.name == "cm").expect("cm");
        assert_eq!(cm.workload_id.as_deref(), Some("1"), "{args:?}");
        assert_eq!(cm.workload_name.as_deref(), Some("one"));
        faro.stop();
    }
}
