//! kubectl habits: `faro watch RESOURCE… -n … -l …` without a config file, compared with what
//! the real `kubectl get -w` shows; names resolved as kubectl resolves them; `-o text` on a
//! terminal (a pty made by `script`), `-o name`; completions from the live cluster.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube_sim::{Catalog, Options};

use crate::discover::CRD;
use crate::util::{Env, PATIENCE, configmap, namespace, stderr, stdout};

fn pod(ns: &str, name: &str, app: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    app: {app}\nspec:\n  containers:\n  - name: c\n    image: nginx\n"
    )
}

/// `kubectl get pods -w -n NS -l app=web`, printing `TYPE ns/name` per watch event.
struct KubectlWatch {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl KubectlWatch {
    fn start(env: &Env, ns: &str) -> KubectlWatch {
        let mut child = env.kubectl.spawn(&[
            "get",
            "pods",
            "-w",
            "-n",
            ns,
            "-l",
            "app=web",
            "--output-watch-events",
            "-o",
            "jsonpath={.type} {.object.metadata.namespace}/{.object.metadata.name}{\"\\n\"}",
        ]);
        let out = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // kubectl says MODIFIED where faro's wire format says UPDATED.
                let line = line.replacen("MODIFIED", "UPDATED", 1);
                sink.lock().unwrap().push(line);
            }
        });
        KubectlWatch { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn wait_for(&self, line: &str) {
        let start = Instant::now();
        while !self.lines().iter().any(|l| l == line) {
            assert!(
                start.elapsed() < PATIENCE,
                "kubectl never printed {line:?}: {:?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for KubectlWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn pods_in_two_namespaces_with_a_selector_match_kubectl_get_watch() {
    let env = Env::start();
    for ns in ["a", "b", "c"] {
        env.apply(&namespace(ns, &[]));
    }
    env.apply(&pod("a", "web-1", "web"));
    env.apply(&pod("a", "other-1", "db"));
    env.apply(&pod("b", "web-2", "web"));
    env.apply(&pod("c", "web-3", "web"));
    let kubectl_a = KubectlWatch::start(&env, "a");
    let kubectl_b = KubectlWatch::start(&env, "b");
    let faro = env.spawn_ready(&["watch", "po", "-n", "a,b", "-l", "app=web", "-o", "json"]);
    kubectl_a.wait_for("ADDED a/web-1");
    kubectl_b.wait_for("ADDED b/web-2");

    env.apply(&pod("a", "web-4", "web"));
    env.kubectl(&["-n", "b", "annotate", "pod", "web-2", "note=1"]);
    // Starts matching the selector: both see it arrive.
    env.kubectl(&[
        "-n",
        "a",
        "label",
        "pod",
        "other-1",
        "app=web",
        "--overwrite",
    ]);
    // A namespace not asked for.
    env.apply(&pod("c", "web-5", "web"));
    env.kubectl(&["-n", "a", "delete", "pod", "web-1", "--wait=false"]);
    env.kubectl(&["-n", "b", "delete", "pod", "web-2", "--wait=false"]);
    env.kubectl(&["-n", "a", "delete", "pod", "web-4", "--wait=false"]);
    kubectl_a.wait_for("DELETED a/web-4");
    kubectl_b.wait_for("DELETED b/web-2");
    faro.wait_for("the last deletion", |e| {
        e.event_type == "DELETED" && e.name == "web-4"
    });
    let seen = faro.events();
    let faro_in = |ns: &str| -> Vec<String> {
        seen.iter()
            .filter(|e| e.namespace.as_deref() == Some(ns))
            .map(|e| {
                assert_eq!(e.gvr, "v1/pods");
                format!("{} {ns}/{}", e.event_type, e.name)
            })
            .collect()
    };
    assert_eq!(faro_in("a"), kubectl_a.lines(), "namespace a");
    assert_eq!(faro_in("b"), kubectl_b.lines(), "namespace b");
    assert!(faro_in("c").is_empty(), "{:?}", faro_in("c"));
    for expected in ["DELETED a/web-1", "ADDED a/other-1", "ADDED a/web-4"] {
        assert!(faro_in("a").contains(&expected.to_owned()), "{expected}");
    }
    assert!(faro_in("b").contains(&"UPDATED b/web-2".to_owned()));
    drop(faro);
}

#[test]
fn deployments_by_group_and_configmaps_in_all_namespaces() {
    let env = Env::start();
    for ns in ["ns-x", "ns-y"] {
        env.apply(&namespace(ns, &[]));
    }
    let faro = env.spawn_ready(&["watch", "deploy.apps,cm", "-A", "--since-now"]);
    env.apply(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: ns-x\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: nginx}]}\n",
    );
    env.apply(&configmap("ns-y", "settings", &[], "1"));
    let events = faro.wait_until("the deployment and the configmap", |events| {
        events.iter().any(|e| e.name == "web") && events.iter().any(|e| e.name == "settings")
    });
    let deploy = events.iter().find(|e| e.name == "web").unwrap();
    assert_eq!(
        (deploy.gvr.as_str(), deploy.namespace.as_deref()),
        ("apps/v1/deployments", Some("ns-x"))
    );
    let cm = events.iter().find(|e| e.name == "settings").unwrap();
    assert_eq!(
        (cm.gvr.as_str(), cm.namespace.as_deref()),
        ("v1/configmaps", Some("ns-y"))
    );
    assert!(events.iter().all(|e| !e.initial), "--since-now: {events:?}");
    drop(faro);
}

#[test]
fn a_crd_by_its_short_name_kind_and_full_name() {
    let env = Env::start();
    env.apply(CRD);
    env.apply(&namespace("shop", &[]));
    let widget = |name: &str| {
        format!(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n  namespace: shop\n"
        )
    };
    env.apply(&widget("w1"));
    let faro = env.spawn_ready(&["watch", "wd", "-A"]);
    env.apply(&widget("w2"));
    let events = faro.wait_until("w2", |events| events.iter().any(|e| e.name == "w2"));
    assert!(
        events
            .iter()
            .any(|e| e.name == "w1" && e.initial && e.gvr == "example.com/v1/widgets"),
        "{events:?}"
    );
    drop(faro);
    for name in ["Widget", "widgets.example.com", "widget.v1.example.com"] {
        let out = env.run_faro(&["watch", name, "-A", "--for", "1s", "-o", "name"]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let printed = stdout(&out);
        assert!(
            printed.lines().any(|l| l == "widget.example.com/w1"),
            "{name}: {printed}"
        );
    }
}

#[test]
fn unknown_ambiguous_and_unwatchable_names_are_exit_2_with_a_suggestion() {
    let env = Env::start();
    let cases: &[(&[&str], &str)] = &[
        (
            &["watch", "podz"],
            "the server doesn't have a resource type \"podz\" (did you mean \"pods\"?)",
        ),
        (
            &["watch", "deploymnets"],
            "did you mean \"deployments.apps\"?",
        ),
        (
            &["watch", "apps/v1/deploymnets"],
            "did you mean \"deployments.apps\"?",
        ),
        (&["watch", "tokenreviews"], "cannot be watched"),
        (&["watch", "pods,"], "empty resource name"),
        (&["watch", "-n", "a"], "RESOURCE arguments"),
        (&["watch"], "name what to watch"),
        (&["watch", "pods", "-n", "Bad_NS"], "--namespace"),
        (&["watch", "pods", "-l", "app in"], "--selector"),
        (
            &["watch", "pods", "--field-selector", "bogus.field=x"],
            "the server refuses it for v1/pods",
        ),
        (&["watch", "pods", "-n", "a", "-A"], "cannot be used with"),
    ];
    for (args, words) in cases {
        let out = env.run_faro(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(words), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }

    // On a cluster where two non-core groups serve `builds`, faro does not pick one.
    let large = Env::with(Options {
        catalog: Catalog::Large,
        ..Options::default()
    });
    let out = large.run_faro(&["watch", "builds"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ambiguous")
            && err.contains("builds.build.openshift.io")
            && err.contains("builds.config.openshift.io"),
        "{err}"
    );
    // The core group and kube-apiserver's own groups win, as with kubectl (with a warning
    // naming the other).
    let out = large.run_faro(&["watch", "ev", "-A", "--for", "1s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("could also mean events.events.k8s.io"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_context_namespace_is_the_default_as_with_kubectl() {
    let env = Env::start();
    for ns in ["a", "b"] {
        env.apply(&namespace(ns, &[]));
        env.apply(&configmap(ns, &format!("cm-{ns}"), &[], "1"));
    }
    env.kubectl(&["config", "set-context", "--current", "--namespace=b"]);
    // kubectl now lists b's configmaps without -n; faro must watch the same.
    let listed = env.kubectl(&["get", "cm", "-o", "name"]);
    assert!(
        listed.contains("configmap/cm-b") && !listed.contains("cm-a"),
        "{listed}"
    );
    let out = env.run_faro(&["watch", "cm", "--for", "1s", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let names: Vec<String> =
        crate::util::decode(&stdout(&out).lines().map(str::to_owned).collect::<Vec<_>>())
            .into_iter()
            .map(|e| format!("{}/{}", e.namespace.unwrap_or_default(), e.name))
            .collect();
    assert!(names.contains(&"b/cm-b".to_owned()), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("b/")), "{names:?}");
    assert!(stderr(&out).contains("in namespace b (the context's)"));
    // Cluster-scoped resources ignore the namespace, as kubectl does.
    let out = env.run_faro(&["watch", "ns", "--for", "1s", "-o", "name"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).lines().any(|l| l == "namespace/a"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn one_object_by_type_and_name_printed_as_kubectl_names_it() {
    let env = Env::start();
    env.apply(&namespace("a", &[]));
    env.apply(&configmap("a", "one", &[], "1"));
    env.apply(&configmap("a", "two", &[], "1"));
    let faro = env.spawn_ready(&["watch", "cm/one", "-n", "a", "-o", "name"]);
    env.apply(&configmap("a", "two", &[], "2"));
    env.apply(&configmap("a", "one", &[], "2"));
    let start = Instant::now();
    while faro.lines().len() < 2 {
        assert!(start.elapsed() < PATIENCE, "{:?}", faro.lines());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(faro.lines(), ["configmap/one", "configmap/one"]);
    drop(faro);
}

/// Strips ANSI colour sequences (`ESC [ … m`).
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs faro on a pseudo-terminal (util-linux `script`), as a person at a terminal would.
fn on_a_terminal(env: &Env, args: &[&str], no_color: bool) -> String {
    let faro = env!("CARGO_BIN_EXE_faro");
    let mut line = String::from(faro);
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let mut cmd = Command::new("script");
    cmd.args(["-qefc", &line, "/dev/null"])
        .env("KUBECONFIG", env.kubeconfig())
        .env("HOME", env.path(""))
        .env("TERM", "xterm-256color")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    let out = cmd.output().expect("running script(1)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

#[test]
fn text_is_coloured_and_aligned_on_a_terminal_and_json_when_piped() {
    let env = Env::start();
    env.apply(&namespace("a-long-namespace-name", &[]));
    env.apply(&configmap("default", "x", &[], "1"));
    env.apply(&configmap(
        "a-long-namespace-name",
        "a-much-longer-configmap-name",
        &[],
        "1",
    ));
    env.apply(&namespace("b", &[]));

    let screen = on_a_terminal(&env, &["watch", "cm,ns", "-A", "--for", "2s", "-q"], false);
    let lines: Vec<&str> = screen.lines().filter(|l| l.contains("ADDED")).collect();
    assert!(lines.len() >= 4, "{screen:?}");
    // Coloured: ADDED in green, the time dimmed.
    assert!(
        lines
            .iter()
            .all(|l| l.contains("\x1b[32mADDED") && l.starts_with("\x1b[2m")),
        "{screen:?}"
    );
    let plain_lines: Vec<String> = lines.iter().map(|l| plain(l)).collect();
    let x = plain_lines
        .iter()
        .find(|l| l.contains("default/x"))
        .unwrap();
    assert!(x.contains(" configmap ") && x.contains(" initial"), "{x}");
    let ns = plain_lines
        .iter()
        .find(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.get(2..4) == Some(&["namespace", "b"][..])
        })
        .unwrap();
    // Aligned: the name column starts at the same place on every line, whatever the kind.
    let column = |line: &str, needle: &str| line.find(needle).unwrap();
    assert_eq!(
        column(x, "default/x"),
        column(ns, " b ") + 1,
        "{plain_lines:#?}"
    );
    // ... and so does the notes column, after the longest name seen so far.
    let long = plain_lines
        .iter()
        .find(|l| l.contains("a-much-longer-configmap-name"))
        .unwrap();
    let after_long = plain_lines.iter().skip_while(|l| *l != long).skip(1);
    for line in after_long {
        assert_eq!(
            column(line, " initial"),
            column(long, " initial"),
            "{plain_lines:#?}"
        );
    }

    // NO_COLOR: the same lines without escape sequences.
    let screen = on_a_terminal(&env, &["watch", "cm", "-A", "--for", "1s", "-q"], true);
    assert!(
        screen.contains("default/x") && !screen.contains('\x1b'),
        "{screen:?}"
    );

    // Piped: JSON lines, and `-o text` piped is plain text.
    let out = env.run_faro(&["watch", "cm", "-A", "--for", "1s"]);
    assert!(
        stdout(&out).lines().all(|l| l.starts_with('{')),
        "{}",
        stdout(&out)
    );
    let out = env.run_faro(&["watch", "cm", "-A", "--for", "1s", "-o", "text"]);
    let text = stdout(&out);
    assert!(
        text.contains("default/x") && !text.contains('\x1b') && !text.contains('{'),
        "{text}"
    );
}

/// What clap_complete's bash registration asks faro for the word `current` of `words`.
fn bash_protocol(env: &Env, words: &[&str]) -> Vec<String> {
    let index = (words.len() - 1).to_string();
    let out = env
        .faro()
        .env("COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", index)
        .env("_CLAP_COMPLETE_COMP_TYPE", "9")
        .env("_CLAP_COMPLETE_SPACE", "true")
        .env("_CLAP_IFS", "\n")
        .arg("--")
        .args(words)
        .output()
        .expect("running faro");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().map(str::to_owned).collect()
}

#[test]
fn resource_names_complete_from_the_live_cluster() {
    let env = Env::start();
    env.apply(CRD);
    let got = bash_protocol(&env, &["faro", "watch", "dep"]);
    assert!(
        got.iter().any(|c| c == "deployments") && got.iter().any(|c| c == "deploy"),
        "{got:?}"
    );
    assert!(got.iter().all(|c| c.starts_with("dep")), "{got:?}");
    // A CRD and its short name; the last item of a comma list.
    let got = bash_protocol(&env, &["faro", "watch", "pods,w"]);
    assert!(
        got.iter().any(|c| c == "pods,widgets") && got.iter().any(|c| c == "pods,wd"),
        "{got:?}"
    );
    // Flags still complete from the command definition.
    let got = bash_protocol(&env, &["faro", "watch", "--field-"]);
    assert!(got.iter().any(|c| c == "--field-selector"), "{got:?}");

    // A real bash sourcing the registration script, as in ~/.bashrc.
    let dir = std::path::Path::new(env!("CARGO_BIN_EXE_faro"))
        .parent()
        .unwrap();
    let script = "source <(COMPLETE=bash faro)\n\
        COMP_WORDS=(faro watch config); COMP_CWORD=2; COMP_LINE='faro watch config'; COMP_POINT=${#COMP_LINE}; COMP_TYPE=9\n\
        _clap_complete_faro faro config watch\n\
        printf '%s\\n' \"${COMPREPLY[@]}\"\n";
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script])
        .env("PATH", format!("{}:/usr/bin:/bin", dir.display()))
        .env("KUBECONFIG", env.kubeconfig())
        .env("HOME", env.path(""))
        .output()
        .expect("running bash");
    let got = stdout(&out);
    assert!(
        got.lines().any(|l| l.trim() == "configmaps"),
        "{got}\n{}",
        stderr(&out)
    );

    // Without a reachable cluster: no candidates and no noise.
    let out = env
        .faro()
        .env("KUBECONFIG", env.path("missing"))
        .env("COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "2")
        .env("_CLAP_IFS", "\n")
        .args(["--", "faro", "watch", "po"])
        .output()
        .unwrap();
    assert!(out.status.success() && stdout(&out).trim().is_empty() && stderr(&out).is_empty());

    // zsh and fish get their registration scripts from the same binary.
    for shell in ["zsh", "fish"] {
        let out = env.faro().env("COMPLETE", shell).output().unwrap();
        assert!(
            out.status.success() && stdout(&out).contains("faro"),
            "{shell}"
        );
    }
}
