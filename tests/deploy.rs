//! The manifests in deploy/ stay valid: they apply to kube-sim with kubectl, the ConfigMap holds
//! a config faro accepts, and the ClusterRole grants list and watch on everything it names.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{Env, stderr};

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// The YAML files of a deploy directory, in the order `kubectl apply` is given them.
fn manifests(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// `kubectl apply -f` each file, in order.
fn apply(env: &Env, files: &[PathBuf]) {
    for file in files {
        env.kubectl(&["apply", "-f", file.to_str().unwrap()]);
    }
}

/// The (group, resource) of every `- gvr:` line of a config.
fn config_gvrs(config: &str) -> BTreeSet<(String, String)> {
    config
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
        .collect()
}

/// `kubectl ARGS -o json`, parsed.
fn kubectl_json(env: &Env, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&env.kubectl(&all)).unwrap()
}

#[test]
fn deploy_manifests_apply_and_are_consistent() {
    let env = Env::start();
    let dir = deploy_dir();
    let files = manifests(&dir);
    apply(&env, &files);
    let json = |args: &[&str]| kubectl_json(&env, args);
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
    let mut needed: BTreeSet<(String, String)> = config_gvrs(&config);
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

/// deploy/ha/: three replicas electing a leader through a Lease, with the RBAC that needs and
/// the NATS URL from a Secret; applied to kube-sim with kubectl (which runs no pods).
#[test]
fn ha_manifests_apply_and_are_consistent() {
    let env = Env::start();
    let dir = deploy_dir().join("ha");
    let files = manifests(&dir);
    assert!(files.len() >= 4, "{files:?}");
    apply(&env, &files);
    let json = |args: &[&str]| kubectl_json(&env, args);
    let deployment = json(&["get", "deployment", "faro-ha", "-n", "faro"]);
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod = &deployment["spec"]["template"]["spec"];
    let account = pod["serviceAccountName"].as_str().unwrap();
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--leader-elect"), "{args:?}");
    // The NATS URL comes from the Secret, through an environment variable kubelet expands
    // in the arguments.
    let nats = args
        .iter()
        .position(|a| *a == "--nats")
        .map(|i| args[i + 1])
        .expect("--nats");
    let var = nats
        .strip_prefix("$(")
        .and_then(|v| v.strip_suffix(')'))
        .expect("--nats $(VAR)");
    let env_var = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == var)
        .expect("the variable --nats names");
    let secret_ref = &env_var["valueFrom"]["secretKeyRef"];
    let secret = json(&[
        "get",
        "secret",
        secret_ref["name"].as_str().unwrap(),
        "-n",
        "faro",
    ]);
    assert!(
        secret["data"][secret_ref["key"].as_str().unwrap()].is_string(),
        "{secret}"
    );
    // Every flag of the arguments is one `faro watch` takes.
    let help = env.run_faro(&["watch", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(args.contains(&"--state-kv"), "{args:?}");
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        let known = [" ", "\n", ","]
            .iter()
            .any(|end| help.contains(&format!("{flag}{end}")));
        assert!(known, "faro watch does not take {flag}");
    }
    // The Lease's rights, in the namespace faro runs in (the Lease's default namespace).
    let role = json(&["get", "role", "faro-ha-leader-election", "-n", "faro"]);
    let rule = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "leases")
        })
        .expect("a rule on leases");
    assert_eq!(rule["apiGroups"][0], "coordination.k8s.io");
    let verbs: BTreeSet<&str> = rule["verbs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(verbs, BTreeSet::from(["get", "create", "update"]));
    let binding = json(&[
        "get",
        "rolebinding",
        "faro-ha-leader-election",
        "-n",
        "faro",
    ]);
    assert_eq!(binding["roleRef"]["name"], "faro-ha-leader-election");
    assert_eq!(binding["subjects"][0]["name"], account);
    // Probes: /healthz only (a standby is never /readyz, which would stall rollouts).
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/healthz");
    }
    json(&["get", "poddisruptionbudget", "faro-ha", "-n", "faro"]);
}

/// The (group, resource) pairs with list and watch in a ClusterRole.
fn granted(role: &Value) -> BTreeSet<(String, String)> {
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        let verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
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
    granted
}

/// deploy/sharded/: a StatefulSet whose pod ordinal (the `apps.kubernetes.io/pod-index` label,
/// through the downward API) is the shard index of `--shard $(POD_INDEX)/N`, N the replica
/// count; applied to kube-sim with kubectl (which runs no pods), and each shard's flags run.
#[test]
fn sharded_manifests_apply_and_are_consistent() {
    let env = Env::start();
    let dir = deploy_dir().join("sharded");
    let files = manifests(&dir);
    assert!(files.len() >= 4, "{files:?}");
    apply(&env, &files);
    let json = |args: &[&str]| kubectl_json(&env, args);
    let set = json(&["get", "statefulset", "faro-sharded", "-n", "faro"]);
    let replicas = set["spec"]["replicas"].as_u64().expect("replicas");
    assert!(replicas > 1);
    // The governing Service exists and selects the pods.
    let service = json(&[
        "get",
        "service",
        set["spec"]["serviceName"].as_str().unwrap(),
        "-n",
        "faro",
    ]);
    assert_eq!(
        service["spec"]["selector"],
        set["spec"]["template"]["metadata"]["labels"]
    );
    let pod = &set["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "watch");
    // --shard $(VAR)/N: VAR is the pod index from the downward API, N the replica count.
    let shard = args
        .iter()
        .position(|a| *a == "--shard")
        .map(|i| args[i + 1])
        .expect("--shard");
    let (var, count) = shard
        .strip_prefix("$(")
        .and_then(|s| s.split_once(")/"))
        .expect("--shard $(VAR)/N");
    assert_eq!(count.parse::<u64>().ok(), Some(replicas), "{shard}");
    let env_var = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == var)
        .expect("the variable --shard names");
    assert_eq!(
        env_var["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    // Each shard keeps its own state, on a volume of its own.
    let state = args
        .iter()
        .position(|a| *a == "--state-file")
        .map(|i| args[i + 1])
        .expect("--state-file");
    let claim = set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
        .as_str()
        .expect("a volume claim template");
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == claim)
        .expect("the claimed volume is mounted");
    assert!(state.starts_with(mount["mountPath"].as_str().unwrap()));
    // Every flag is one `faro watch` takes.
    let help = env.run_faro(&["watch", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        let known = [" ", "\n", ","]
            .iter()
            .any(|end| help.contains(&format!("{flag}{end}")));
        assert!(known, "faro watch does not take {flag}");
    }
    // The config, run as each pod runs it (its ordinal substituted as the kubelet does).
    let cm = json(&["get", "configmap", "faro-sharded-config", "-n", "faro"]);
    let config = cm["data"]["config.yaml"].as_str().unwrap().to_owned();
    let path = env.write("sharded-config.yaml", &config);
    for index in 0..replicas {
        let shard = shard.replace(&format!("$({var})"), &index.to_string());
        let out = env.run_faro(&[
            "watch",
            "--config",
            path.to_str().unwrap(),
            "--shard",
            &shard,
            "--auto-shutdown",
            "1s",
        ]);
        assert!(out.status.success(), "--shard {shard}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("shard {shard}: watching")),
            "{}",
            stderr(&out)
        );
    }
    // The ClusterRole covers every GVR of the config, and namespaces and CRDs.
    let role = json(&["get", "clusterrole", "faro-sharded-reader"]);
    let granted = granted(&role);
    let mut needed: BTreeSet<(String, String)> = config_gvrs(&config);
    needed.insert((String::new(), "namespaces".into()));
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
