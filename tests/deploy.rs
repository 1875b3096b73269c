//! The manifests in deploy/ stay valid: they apply to kube-sim with kubectl, the ConfigMap holds
//! a config faro accepts, and the ClusterRole grants list and watch on everything it names.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use crate::util::{Env, stderr};

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

#[test]
fn deploy_manifests_apply_and_are_consistent() {
    let env = Env::start();
    let dir = deploy_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in &files {
        env.kubectl(&["apply", "-f", file.to_str().unwrap()]);
    }
    let json = |args: &[&str]| -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&env.kubectl(&all)).unwrap()
    };
    let deployment = json(&["get", "deployment", "faro", "-n", "faro"]);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "faro");
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&args[..2], ["watch", "--config"]);
    let mount = pod["containers"][0]["volumeMounts"][0]["mountPath"]
        .as_str()
        .unwrap();
    assert!(
        args[2].starts_with(mount),
        "the config path is inside the mounted ConfigMap"
    );
    // The state file lives on the claimed volume.
    let state = args
        .iter()
        .position(|a| *a == "--state-file")
        .map(|i| args[i + 1])
        .expect("--state-file");
    let state_mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "state")
        .expect("a state volume mount");
    assert!(state.starts_with(state_mount["mountPath"].as_str().unwrap()));
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "state")
        .unwrap();
    let claim = volume["persistentVolumeClaim"]["claimName"]
        .as_str()
        .unwrap();
    json(&["get", "persistentvolumeclaim", claim, "-n", "faro"]);

    // The metrics endpoint: the port faro listens on is the container port named "metrics",
    // which the probes and the scrape annotations use.
    let container = &pod["containers"][0];
    let addr = args
        .iter()
        .position(|a| *a == "--metrics-addr")
        .map(|i| args[i + 1])
        .expect("--metrics-addr");
    let port = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a port named metrics");
    assert!(
        addr.starts_with("0.0.0.0:"),
        "reachable by the kubelet: {addr}"
    );
    assert_eq!(
        addr.rsplit(':').next().unwrap(),
        port["containerPort"].to_string()
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "metrics");
    }
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(
        annotations["prometheus.io/port"],
        port["containerPort"].to_string()
    );
    assert!(container["resources"]["limits"]["memory"].is_string());

    // The config inside the ConfigMap is one faro accepts, and runs against the cluster.
    let cm = json(&["get", "configmap", "faro-config", "-n", "faro"]);
    let config = cm["data"]["config.yaml"].as_str().unwrap().to_owned();
    let path = env.write("deployed-config.yaml", &config);
    let out = env.run_faro(&[
        "watch",
        "--config",
        path.to_str().unwrap(),
        "--auto-shutdown",
        "1s",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("ready: watching"), "{}", stderr(&out));

    // Every GVR the config names (and the namespaces and CRD streams faro runs itself) is
    // covered by list and watch in the ClusterRole.
    let role = json(&["get", "clusterrole", "faro-reader"]);
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        let verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            verbs.iter().all(|v| ["get", "list", "watch"].contains(v)),
            "read-only: {verbs:?}"
        );
        if !(verbs.contains(&"list") && verbs.contains(&"watch")) {
            continue;
        }
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                granted.insert((
                    group.as_str().unwrap().to_owned(),
                    resource.as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    let mut needed: BTreeSet<(String, String)> = config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- gvr:"))
        .map(|g| {
            let g = g.trim().trim_matches('"');
            let parts: Vec<&str> = g.split('/').collect();
            match parts.as_slice() {
                [_, r] => (String::new(), r.to_string()),
                [group, _, r] => (group.to_string(), r.to_string()),
                _ => panic!("bad gvr {g}"),
            }
        })
        .collect();
    assert!(!needed.is_empty());
    needed.insert((
        "apiextensions.k8s.io".into(),
        "customresourcedefinitions".into(),
    ));
    for need in &needed {
        assert!(
            granted.contains(need),
            "ClusterRole lacks list/watch on {need:?}"
        );
    }
}
