//! Test harness: a kube-sim per test, kubectl bound to it, and faro run as a real process
//! whose stdout is decoded with test-local types (so renaming a wire field breaks a test).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube_sim::testkit::Kubectl;
use kube_sim::{Options, SimHandle};
use serde::Deserialize;

/// How long to wait for something that should happen within milliseconds on an idle machine;
/// CI machines are shared and noisy, so be generous.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// One event line, decoded with the wire names of design.md §2.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub timestamp: String,
    #[serde(rename = "eventType")]
    pub event_type: String,
    pub gvr: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    #[serde(rename = "resourceVersion")]
    pub resource_version: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub initial: bool,
    pub workload_id: Option<String>,
    pub workload_name: Option<String>,
    pub object: Option<serde_json::Value>,
    #[serde(default)]
    pub resync: bool,
    /// The RFC 6902 operations of an UPDATED event with diff on.
    pub diff: Option<serde_json::Value>,
    #[serde(rename = "changedBy")]
    pub changed_by: Option<serde_json::Value>,
    #[serde(rename = "changedByAmbiguous", default)]
    pub changed_by_ambiguous: bool,
}

impl Event {
    /// `TYPE gvr ns/name` for compact assertions.
    pub fn short(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {} {ns}/{}", self.event_type, self.gvr, self.name),
            None => format!("{} {} {}", self.event_type, self.gvr, self.name),
        }
    }
}

/// A kube-sim, a kubectl for it and a scratch directory.
pub struct Env {
    pub sim: SimHandle,
    pub kubectl: Kubectl,
    dir: tempfile::TempDir,
}

impl Env {
    /// kube-sim with the vanilla catalog.
    pub fn start() -> Env {
        Env::with(Options::default())
    }

    /// kube-sim with the given options.
    pub fn with(opts: Options) -> Env {
        let sim = SimHandle::start(opts).expect("starting kube-sim");
        let kubectl = Kubectl::new(&sim);
        let dir = tempfile::tempdir().expect("temp dir");
        Env { sim, kubectl, dir }
    }

    pub fn kubeconfig(&self) -> &Path {
        self.kubectl.kubeconfig()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file into the scratch directory.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).expect("writing a test file");
        path
    }

    /// faro with this cluster's kubeconfig and an isolated HOME.
    pub fn faro(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_faro"));
        c.env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        c
    }

    /// Runs faro to completion.
    pub fn run_faro(&self, args: &[&str]) -> Output {
        self.faro().args(args).output().expect("running faro")
    }

    /// `faro watch` on a config given as text, with `extra` flags; returns once it is ready.
    pub fn watch(&self, config: &str, extra: &[&str]) -> Faro {
        let path = self.write("config.yaml", config);
        let mut args = vec!["watch", "--config", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.spawn_ready(&args)
    }

    /// Starts faro and waits until it is ready.
    pub fn spawn_ready(&self, args: &[&str]) -> Faro {
        let mut faro = self.spawn_faro(args);
        faro.wait_ready();
        faro
    }

    /// Runs a program of examples/ (built by `cargo test`, which builds the examples) with
    /// this cluster's kubeconfig; stdout and stderr are collected as for faro.
    pub fn spawn_example(&self, name: &str, args: &[&str]) -> Faro {
        // The test binary is target/<profile>/deps/integration-*; examples are built next to
        // deps/, in examples/.
        let exe = std::env::current_exe().expect("the test binary's path");
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .map(|dir| dir.join("examples").join(name))
            .filter(|bin| bin.is_file())
            .unwrap_or_else(|| {
                panic!("examples/{name} is not built: run `cargo test` (which builds the examples) or `cargo build --examples`")
            });
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Faro::spawn(cmd, self.path("no-ready-file"))
    }

    /// Starts a long-running faro (`watch`/`workload`) with a ready file, without waiting for
    /// it (a standby of `--leader-elect` is never ready until it leads).
    pub fn spawn_faro(&self, args: &[&str]) -> Faro {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ready = self.path(&format!("ready-{n}"));
        let mut cmd = self.faro();
        cmd.args(args)
            .arg("--ready-file")
            .arg(&ready)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Faro::spawn(cmd, ready)
    }

    /// Calls kube-sim's admin API.
    pub fn admin(&self, method: &str, path: &str) -> serde_json::Value {
        self.sim
            .admin(method, path)
            .unwrap_or_else(|e| panic!("admin {method} {path}: {e:#}"))
    }

    /// kubectl apply of a manifest.
    pub fn apply(&self, yaml: &str) -> String {
        self.kubectl.apply_yaml(yaml, &[])
    }

    /// kubectl with arguments, asserting success.
    pub fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl.ok(args)
    }
}

/// A running faro process.
pub struct Faro {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    ready: PathBuf,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// What a finished faro left.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub events: Vec<Event>,
    pub stderr: String,
}

impl Faro {
    fn spawn(mut cmd: Command, ready: PathBuf) -> Faro {
        let mut child = cmd.spawn().expect("spawning faro");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let l = lines.clone();
        let r1 = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                l.lock().unwrap().push(line);
            }
        });
        let e = stderr.clone();
        let r2 = std::thread::spawn(move || {
            let mut reader = BufReader::new(err);
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => e
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        });
        Faro {
            child,
            lines,
            stderr,
            ready,
            readers: vec![r1, r2],
        }
    }

    /// Whether faro has written its ready file.
    pub fn is_ready(&self) -> bool {
        self.ready.exists()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Raw stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Decoded events so far (panics on a line that is not an event).
    pub fn events(&self) -> Vec<Event> {
        decode(&self.lines())
    }

    /// Waits until faro reports ready (panics after PATIENCE with its stderr).
    pub fn wait_ready(&mut self) {
        let start = Instant::now();
        while !self.ready.exists() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("faro exited ({status}) before ready:\n{}", self.stderr());
            }
            if start.elapsed() > PATIENCE {
                panic!("faro not ready after {PATIENCE:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // faro writes the ready file after flushing its initial events; give this harness's
        // reader thread a moment to take them off the pipe.
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Waits until the events so far satisfy `done`; returns them.
    pub fn wait_until(&self, what: &str, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let start = Instant::now();
        loop {
            let events = self.events();
            if done(&events) {
                return events;
            }
            if start.elapsed() > PATIENCE {
                panic!(
                    "timed out waiting for {what}; events so far:\n{}\nstderr:\n{}",
                    events
                        .iter()
                        .map(Event::short)
                        .collect::<Vec<_>>()
                        .join("\n"),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until a line of stdout satisfies `pred`; returns it (for programs whose output is
    /// not event lines).
    pub fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| pred(l)) {
                return line;
            }
            if start.elapsed() > PATIENCE {
                panic!(
                    "timed out waiting for {what}; stdout so far:\n{}\nstderr:\n{}",
                    self.lines().join("\n"),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until faro's stderr contains `needle`; returns it.
    pub fn wait_stderr(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let stderr = self.stderr();
            if stderr.contains(needle) {
                return stderr;
            }
            if start.elapsed() > PATIENCE {
                panic!("timed out waiting for {needle:?} on stderr:\n{stderr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for one event matching `pred` and returns it.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        let events = self.wait_until(what, |events| events.iter().any(&pred));
        events.into_iter().find(|e| pred(e)).expect("just seen")
    }

    /// Sends a signal by name (TERM, INT, KILL).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit by itself (panics after `limit`).
    pub fn wait_exit(mut self, limit: Duration) -> Finished {
        let status = self.finish(limit);
        Finished {
            status,
            events: decode(&self.lines()),
            stderr: self.stderr(),
        }
    }

    /// Waits for the exit and for the readers to take the last output.
    fn finish(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "the process did not exit within {limit:?}:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status
    }

    /// SIGTERM, then wait for the graceful exit.
    pub fn stop(self) -> Finished {
        self.signal("TERM");
        self.wait_exit(PATIENCE)
    }

    /// Waits for the process to exit by itself; returns its exit status, raw stdout lines and
    /// stderr.
    pub fn wait_exit_lines(mut self, limit: Duration) -> (ExitStatus, Vec<String>, String) {
        let status = self.finish(limit);
        (status, self.lines(), self.stderr())
    }
}

impl Drop for Faro {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Decodes JSON lines into events.
pub fn decode(lines: &[String]) -> Vec<Event> {
    lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not an event line ({e}): {l}")))
        .collect()
}

/// Short forms of the events for a GVR, without the initial listing.
pub fn changes(events: &[Event], gvr: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.gvr == gvr && !e.initial)
        .map(Event::short)
        .collect()
}

/// stdout of a finished command as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr of a finished command as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A `  labels:` block of a manifest's metadata (empty without labels).
fn labels_yaml(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut out = String::from("  labels:\n");
    for (k, v) in labels {
        out.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    out
}

/// A ConfigMap manifest.
pub fn configmap(namespace: &str, name: &str, labels: &[(&str, &str)], value: &str) -> String {
    let labels = labels_yaml(labels);
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\n{labels}data:\n  value: \"{value}\"\n"
    )
}

/// A Namespace manifest.
pub fn namespace(name: &str, labels: &[(&str, &str)]) -> String {
    let labels = labels_yaml(labels);
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n{labels}")
}

/// The file in `dir` whose name starts with `prefix` (panics if none).
pub fn file_starting_with(dir: &Path, prefix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}* file in {}", dir.display()))
}

/// State rebuilt from faro's events: (namespace, name) → (uid, resourceVersion).
pub fn rebuild(events: &[Event], gvr: &str) -> BTreeMap<(String, String), (String, String)> {
    let mut state = BTreeMap::new();
    for e in events.iter().filter(|e| e.gvr == gvr) {
        let key = (e.namespace.clone().unwrap_or_default(), e.name.clone());
        match e.event_type.as_str() {
            "ADDED" | "UPDATED" => {
                state.insert(key, (e.uid.clone(), e.resource_version.clone()));
            }
            "DELETED" => {
                let removed = state.remove(&key);
                assert!(removed.is_some(), "DELETED of an object never shown: {e:?}");
            }
            other => panic!("unknown event type {other}"),
        }
    }
    state
}

pub fn sim_state(env: &Env, namespaces: &[&str]) -> BTreeMap<(String, String), (String, String)> {
    let mut state = BTreeMap::new();
    for ns in namespaces {
        let dump = env.admin(
            "GET",
            &format!("/_sim/state?resource=configmaps&namespace={ns}"),
        );
        for o in dump["objects"].as_array().expect("objects") {
            let m = &o["metadata"];
            state.insert(
                (
                    m["namespace"].as_str().unwrap().to_owned(),
                    m["name"].as_str().unwrap().to_owned(),
                ),
                (
                    m["uid"].as_str().unwrap().to_owned(),
                    m["resourceVersion"].as_str().unwrap().to_owned(),
                ),
            );
        }
    }
    state
}
