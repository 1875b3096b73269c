//! `--nats` and `--state-kv` against real `nats-server` processes (Debian's, 2.9; .ci/run
//! installs it), each on its own 127.0.0.1 ports with its own store directory: the stream's
//! subjects, message ids and bodies; repeats dropped by message id; exactly-once across a
//! SIGKILLed leader with the checkpoint in a key-value bucket; a 3-node JetStream cluster that
//! loses a node; NATS down for 10 s; bad flags. What a test reads back comes from the stream
//! itself (through async-nats, the client faro uses, as any consumer would).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faro::nats::async_nats;

use crate::util::{Env, Event, Faro, PATIENCE, configmap, namespace, rebuild, sim_state};

const NATS_SERVER: &str = "/usr/sbin/nats-server";

#[allow(clippy::print_stderr)]
fn skip(why: &str) {
    eprintln!("SKIPPED: {why}");
}

/// A measured figure, printed with the test's output (`--nocapture` shows it).
#[allow(clippy::print_stderr)]
fn report(figure: &str) {
    eprintln!("nats: {figure}");
}

fn have_nats() -> bool {
    if Path::new(NATS_SERVER).is_file() {
        return true;
    }
    // .ci/run installs Debian's nats-server; a developer machine may lack it.
    skip("no /usr/sbin/nats-server (apt-get install nats-server); .ci/run installs it");
    false
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One nats-server with JetStream, restartable on the same port and store.
struct NatsServer {
    child: Option<Child>,
    port: u16,
    config: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl NatsServer {
    /// A single server.
    fn start() -> NatsServer {
        NatsServer::start_with("")
    }

    /// A single server, with more configuration.
    fn start_with(extra: &str) -> NatsServer {
        let dir = tempfile::tempdir().expect("dir");
        let port = free_port();
        let config = dir.path().join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n}}\n{extra}",
                dir.path().join("js").display()
            ),
        )
        .expect("config");
        let mut server = NatsServer {
            child: None,
            port,
            config,
            _dir: Some(dir),
        };
        server.run();
        server
    }

    /// Three servers clustered on loopback (JetStream's Raft needs 2 of 3).
    fn cluster(dir: &Path) -> Vec<NatsServer> {
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, route)| format!("nats-route://127.0.0.1:{route}"))
            .collect();
        let mut servers: Vec<NatsServer> = ports
            .iter()
            .enumerate()
            .map(|(i, (port, route))| {
                let config = dir.join(format!("n{i}.conf"));
                std::fs::write(
                    &config,
                    format!(
                        "server_name: n{i}\nlisten: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n}}\ncluster {{\n  name: faro-test\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n",
                        dir.join(format!("js{i}")).display(),
                        routes.join(", ")
                    ),
                )
                .expect("config");
                NatsServer {
                    child: None,
                    port: *port,
                    config,
                    _dir: None,
                }
            })
            .collect();
        for s in &mut servers {
            s.run();
        }
        servers
    }

    fn run(&mut self) {
        let log = self.config.with_extension("log");
        let child = Command::new(NATS_SERVER)
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("starting nats-server");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            assert!(
                start.elapsed() < PATIENCE && !exited,
                "nats-server did not listen:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A message of the stream, as a consumer reads it.
#[derive(Debug, Clone)]
struct Stored {
    subject: String,
    id: String,
    body: String,
}

impl Stored {
    fn event(&self) -> Event {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not an event ({e}): {}", self.body))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Every message of `stream`, in order, read from `url` (a comma list).
fn read_stream(url: &str, stream: &str) -> Vec<Stored> {
    read_stream_with(async_nats::ConnectOptions::new(), url, stream)
}

/// As [`read_stream`], connecting with `options`.
fn read_stream_with(options: async_nats::ConnectOptions, url: &str, stream: &str) -> Vec<Stored> {
    runtime().block_on(async {
        let servers: Vec<async_nats::ServerAddr> =
            url.split(',').map(|u| u.parse().unwrap()).collect();
        let client = options.connect(servers).await.expect("connecting");
        let js = async_nats::jetstream::new(client);
        let start = Instant::now();
        let mut handle = loop {
            match js.get_stream(stream).await {
                Ok(s) => break s,
                Err(e) => {
                    assert!(start.elapsed() < PATIENCE, "stream {stream}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let info = handle.info().await.expect("stream info").clone();
        let mut out = Vec::new();
        for seq in info.state.first_sequence..=info.state.last_sequence {
            if info.state.messages == 0 {
                break;
            }
            let message = loop {
                match handle.get_raw_message(seq).await {
                    Ok(m) => break m,
                    Err(e) => {
                        assert!(start.elapsed() < PATIENCE * 3, "message {seq}: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            };
            let id = message
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            out.push(Stored {
                subject: message.subject.to_string(),
                id,
                body: String::from_utf8(message.payload.to_vec()).expect("utf-8"),
            });
        }
        out
    })
}

/// No (uid, resourceVersion, type) twice, and every id is what the body says.
fn assert_exactly_once(stored: &[Stored]) {
    let mut seen = BTreeSet::new();
    for m in stored {
        let e = m.event();
        assert_eq!(
            m.id,
            format!("{}/{}/{}", e.uid, e.resource_version, e.event_type),
            "{m:?}"
        );
        assert!(
            seen.insert((
                e.uid.clone(),
                e.resource_version.clone(),
                e.event_type.clone()
            )),
            "stored twice: {m:?}"
        );
    }
}

/// Waits until the stream's events, replayed per object, are kube-sim's state.
fn wait_stream_rebuilds(env: &Env, url: &str, namespaces: &[&str]) -> Vec<Stored> {
    let start = Instant::now();
    loop {
        let stored = read_stream(url, "FARO");
        let events: Vec<Event> = stored.iter().map(Stored::event).collect();
        if rebuild(&events, "v1/configmaps") == sim_state(env, namespaces) {
            return stored;
        }
        assert!(
            start.elapsed() < PATIENCE * 3,
            "the stream's {} events never rebuilt the server's state",
            stored.len()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn wait_churn(env: &Env) -> u64 {
    let start = Instant::now();
    loop {
        let status = env.admin("GET", "/_sim/churn");
        if status["running"] != true {
            return status["done"].as_u64().unwrap_or(0);
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "churn did not end"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn seed(env: &Env, namespaces: &[&str], per: usize) {
    for ns in namespaces {
        env.apply(&namespace(ns, &[]));
        for i in 0..per {
            env.apply(&configmap(ns, &format!("seed-{i}"), &[], "0"));
        }
    }
}

#[test]
fn events_arrive_with_their_subjects_ids_and_lines_and_repeats_are_stored_once() {
    if !have_nats() {
        return;
    }
    let nats = NatsServer::start();
    let env = Env::start();
    seed(&env, &["n-a"], 3);
    let config = env.write(
        "c.yaml",
        "resources:\n  - gvr: v1/configmaps\n    namespace_names: [n-a]\n  - gvr: v1/namespaces\n    name_pattern: n-a\n",
    );
    let url = nats.url();
    let args = [
        "watch",
        "--config",
        config.to_str().unwrap(),
        "--nats",
        &url,
        "--cluster-name",
        "kind.test",
    ];
    let mut faro = env.spawn_faro(&args);
    faro.wait_ready();
    env.apply(&configmap("n-a", "live", &[], "1"));
    env.apply(&configmap("n-a", "live", &[], "2"));
    env.kubectl(&["delete", "configmap", "live", "-n", "n-a"]);
    faro.wait_for("the deletion", |e| e.event_type == "DELETED");
    let first = faro.stop();
    assert!(first.status.success(), "{}", first.stderr);
    let stored = read_stream(&url, "FARO");
    assert_eq!(stored.len(), first.events.len(), "{stored:#?}");
    for (m, e) in stored.iter().zip(&first.events) {
        let body = m.event();
        assert_eq!(
            (
                &body.uid,
                &body.resource_version,
                &body.event_type,
                &body.timestamp
            ),
            (&e.uid, &e.resource_version, &e.event_type, &e.timestamp),
            "the stream holds the lines in the order written"
        );
        let expected = match &e.namespace {
            Some(ns) => format!("faro.kind%2Etest.v1/configmaps.{ns}"),
            None => "faro.kind%2Etest.v1/namespaces._".to_owned(),
        };
        assert_eq!(m.subject, expected);
        assert_eq!(
            m.id,
            format!("{}/{}/{}", e.uid, e.resource_version, e.event_type)
        );
        assert!(!m.body.ends_with('\n'));
    }
    assert!(stored.iter().any(|m| m.subject.ends_with("._")));
    assert_exactly_once(&stored);
    // The same bytes as stdout: a run whose stdout lines are kept verbatim.
    let mut second = env.spawn_faro(&args);
    second.wait_ready();
    let raw = second.lines();
    let second_end = second.stop();
    assert!(second_end.status.success(), "{}", second_end.stderr);
    assert!(!raw.is_empty());
    // A second run lists the same objects again: the same ids, all dropped as repeats.
    let after = read_stream(&url, "FARO");
    assert_eq!(
        after.len(),
        stored.len(),
        "{} initial events repeated by the second run were stored again",
        after.len() - stored.len()
    );
    let bodies: BTreeSet<&str> = stored.iter().map(|m| m.body.as_str()).collect();
    for line in &raw {
        let e: Event = serde_json::from_str(line).unwrap();
        let first_line = stored
            .iter()
            .find(|m| m.id == format!("{}/{}/{}", e.uid, e.resource_version, e.event_type))
            .expect("a repeat of a stored event");
        // Only the observation time differs between the runs.
        assert_eq!(
            first_line.body.replace(&first_line.event().timestamp, ""),
            line.replace(&e.timestamp, "")
        );
        assert!(bodies.contains(first_line.body.as_str()));
    }
    report(&format!(
        "{} messages stored; the second run's {} repeats were dropped by message id",
        stored.len(),
        raw.len()
    ));
}

/// A replica: `--leader-elect` with the given identity, `--nats` and `--state-kv`.
fn replica(env: &Env, config: &Path, url: &str, identity: &str) -> Faro {
    env.spawn_faro(&[
        "watch",
        "--config",
        config.to_str().unwrap(),
        "--nats",
        url,
        "--state-kv",
        "faro-state",
        "--checkpoint-interval",
        "200ms",
        "--leader-elect",
        "--lease-namespace",
        "default",
        "--lease-identity",
        identity,
        "--lease-duration",
        "3s",
        "--lease-renew-deadline",
        "2s",
        "--lease-retry-period",
        "500ms",
    ])
}

#[test]
fn a_sigkilled_leader_is_replaced_and_the_stream_holds_every_change_exactly_once() {
    if !have_nats() {
        return;
    }
    let nats = NatsServer::start();
    let url = nats.url();
    let env = Env::start();
    let namespaces = ["f-a", "f-b"];
    seed(&env, &namespaces, 20);
    let config = env.write(
        "c.yaml",
        "resources:\n  - gvr: v1/configmaps\n    namespace_names: [f-a, f-b]\n",
    );
    let mut one = replica(&env, &config, &url, "replica-one");
    one.wait_ready();
    let two = replica(&env, &config, &url, "replica-two");
    two.wait_stderr("standing by, Lease default/faro is held by replica-one");
    env.admin(
        "POST",
        "/_sim/churn?count=1500&rate=300&namespace=f-a,f-b&seed=28&wait=false",
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!one.events().is_empty());
    one.signal("KILL");
    let killed = Instant::now();
    let first = one.wait_exit(PATIENCE).events;
    let start = Instant::now();
    while !two
        .stderr()
        .contains("acquired Lease default/faro as replica-two")
    {
        assert!(start.elapsed() < PATIENCE, "no takeover:\n{}", two.stderr());
        std::thread::sleep(Duration::from_millis(10));
    }
    let takeover = killed.elapsed();
    report(&format!(
        "takeover {takeover:?} after SIGKILL (lease duration 3s, retry 500ms)"
    ));
    two.wait_stderr("resuming from the state in the JetStream key-value bucket faro-state");
    wait_churn(&env);
    let stored = wait_stream_rebuilds(&env, &url, &namespaces);
    assert_exactly_once(&stored);
    let ids: BTreeSet<String> = first
        .iter()
        .map(|e| format!("{}/{}/{}", e.uid, e.resource_version, e.event_type))
        .collect();
    let second = two.events();
    let repeated = second
        .iter()
        .filter(|e| {
            ids.contains(&format!(
                "{}/{}/{}",
                e.uid, e.resource_version, e.event_type
            ))
        })
        .count();
    assert!(second.iter().all(|e| !e.initial), "it resumed, no listing");
    report(&format!(
        "{} events before the kill, {} after; {repeated} sent again by the new leader and stored once; {} messages in the stream",
        first.len(),
        second.len(),
        stored.len()
    ));
}

#[test]
fn an_r3_stream_loses_nothing_when_a_nats_node_is_killed_mid_stream() {
    if !have_nats() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut servers = NatsServer::cluster(dir.path());
    let urls: Vec<String> = servers.iter().map(NatsServer::url).collect();
    let url = urls.join(",");
    let env = Env::start();
    let namespaces = ["r-a", "r-b"];
    seed(&env, &namespaces, 10);
    let config = env.write(
        "c.yaml",
        "resources:\n  - gvr: v1/configmaps\n    namespace_names: [r-a, r-b]\n",
    );
    let mut faro = env.spawn_faro(&[
        "watch",
        "--config",
        config.to_str().unwrap(),
        "--nats",
        &url,
        "--nats-replicas",
        "3",
        "--metrics-addr",
        "0",
    ]);
    faro.wait_ready();
    env.admin(
        "POST",
        "/_sim/churn?count=1500&rate=300&namespace=r-a,r-b&seed=29&wait=false",
    );
    std::thread::sleep(Duration::from_millis(1500));
    // Kill the node faro is connected to, if it can be told, else the first.
    let ports = connected_ports(faro.pid());
    let connected = servers.iter().position(|s| ports.contains(&s.port));
    let victim = connected.unwrap_or(0);
    report(&format!(
        "killing node n{victim} (pid {}) mid-stream; faro was connected to it: {}",
        servers[victim].pid(),
        connected.is_some()
    ));
    servers[victim].kill();
    let done = wait_churn(&env);
    let alive: Vec<String> = urls
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, u)| u.clone())
        .collect();
    let stored = wait_stream_rebuilds(&env, &alive.join(","), &namespaces);
    assert_exactly_once(&stored);
    report(&format!(
        "{done} changes churned, {} messages in the R3 stream after losing a node",
        stored.len()
    ));
    let end = faro.stop();
    assert!(end.status.success(), "{}", end.stderr);
}

/// The remote ports of faro's established TCP connections (from /proc).
fn connected_ports(pid: u32) -> Vec<u16> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: BTreeSet<String> = fds
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .map(str::to_owned)
        })
        .collect();
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    tcp.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "01" && inodes.contains(f[9]) {
                u16::from_str_radix(f[2].rsplit(':').next()?, 16).ok()
            } else {
                None
            }
        })
        .collect()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn with_nats_down_for_10s_faro_blocks_then_delivers_everything_in_bounded_memory() {
    if !have_nats() {
        return;
    }
    let mut nats = NatsServer::start();
    let url = nats.url();
    let env = Env::start();
    let namespaces = ["d-a", "d-b"];
    seed(&env, &namespaces, 10);
    let config = env.write(
        "c.yaml",
        "resources:\n  - gvr: v1/configmaps\n    namespace_names: [d-a, d-b]\n",
    );
    let metrics_port = free_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let mut faro = env.spawn_faro(&[
        "watch",
        "--config",
        config.to_str().unwrap(),
        "--nats",
        &url,
        "--metrics-addr",
        &metrics,
    ]);
    faro.wait_ready();
    // 20 s of changes at 400/s: the outage (10 s, 4,000 changes) is far more than faro holds
    // for JetStream (1,024 queued and 256 awaiting acks).
    env.admin(
        "POST",
        "/_sim/churn?count=8000&rate=400&namespace=d-a,d-b&seed=30&wait=false",
    );
    std::thread::sleep(Duration::from_secs(3));
    let rss_before = rss_kib(faro.pid());
    nats.kill();
    let down = Instant::now();
    faro.wait_stderr("NATS: disconnected");
    let mut samples: Vec<(Duration, usize, u64)> = Vec::new();
    while down.elapsed() < Duration::from_secs(10) {
        samples.push((down.elapsed(), faro.lines().len(), rss_kib(faro.pid())));
        std::thread::sleep(Duration::from_millis(250));
    }
    let churned = env.admin("GET", "/_sim/churn")["done"].as_u64().unwrap();
    nats.run();
    let (_, lines_at_end, _) = *samples.last().unwrap();
    let stalled_since = samples
        .iter()
        .find(|(_, n, _)| *n == lines_at_end)
        .map(|(t, _, _)| *t)
        .unwrap();
    let peak = samples.iter().map(|(_, _, r)| *r).max().unwrap();
    report(&format!(
        "outage: faro wrote nothing more from {stalled_since:?} into it ({lines_at_end} lines, {churned} changes made by then); RSS {rss_before} KiB before, peak {peak} KiB during"
    ));
    assert!(
        stalled_since < Duration::from_secs(8),
        "faro kept writing while NATS was down: {samples:?}"
    );
    assert!(
        (lines_at_end as u64) < churned,
        "faro did not fall behind the changes ({lines_at_end} lines, {churned} changes)"
    );
    assert!(peak < 256 * 1024, "RSS {peak} KiB during the outage");
    faro.wait_stderr("NATS: reconnected");
    let done = wait_churn(&env);
    let stored = wait_stream_rebuilds(&env, &url, &namespaces);
    assert_exactly_once(&stored);
    let scrape = Command::new("curl")
        .args(["-s", "-m", "5"])
        .arg(format!("http://{metrics}/metrics"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&scrape.stdout).into_owned();
    let reconnects: f64 = text
        .lines()
        .find(|l| l.starts_with("faro_nats_reconnects_total "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no faro_nats_reconnects_total in\n{text}"));
    assert!(reconnects >= 1.0, "{text}");
    let end = faro.stop();
    assert!(end.status.success(), "{}", end.stderr);
    let by_uid: BTreeMap<String, usize> = stored.iter().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(s.event().uid).or_default() += 1;
        m
    });
    report(&format!(
        "{done} changes, {} messages stored for {} objects after the outage; {reconnects} reconnects counted",
        stored.len(),
        by_uid.len()
    ));
}

#[test]
fn bad_nats_flags_are_usage_errors() {
    let env = Env::start();
    let creds = env.path("absent.creds");
    let garbage = env.write("garbage.creds", "not a credentials file\n");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--state-kv".into(), "b".into()], "--nats"),
        (
            vec!["--nats".into(), "http://127.0.0.1:1".into()],
            "nats://",
        ),
        (
            vec!["--nats".into(), "nats://127.0.0.1:port".into()],
            "not a NATS URL",
        ),
        (
            vec!["--nats".into(), "nats://a:1,,nats://b:2".into()],
            "empty URL",
        ),
        (
            vec![
                "--nats".into(),
                "nats://127.0.0.1:1".into(),
                "--state-kv".into(),
                "a.b".into(),
            ],
            "bucket",
        ),
        (
            vec![
                "--nats".into(),
                "nats://127.0.0.1:1".into(),
                "--nats-subject-prefix".into(),
                "faro.*".into(),
            ],
            "wildcards",
        ),
        (
            vec![
                "--nats".into(),
                "nats://127.0.0.1:1".into(),
                "--nats-replicas".into(),
                "7".into(),
            ],
            "--nats-replicas",
        ),
        (
            vec![
                "--nats".into(),
                "nats://127.0.0.1:1".into(),
                "--nats-creds".into(),
                creds.display().to_string(),
            ],
            "--nats-creds",
        ),
        (
            vec![
                "--nats".into(),
                "nats://127.0.0.1:1".into(),
                "--state-kv".into(),
                "b".into(),
                "--state-file".into(),
                "s.json".into(),
            ],
            "--state-file",
        ),
        (vec!["--nats-stream".into(), "S".into()], "--nats"),
        // Read when faro connects (after the cluster's discovery): still a usage error.
        (
            vec![
                "--nats".into(),
                "nats://127.0.0.1:1".into(),
                "--nats-creds".into(),
                garbage.display().to_string(),
            ],
            "NATS credentials file",
        ),
    ];
    for (args, want) in cases {
        let mut all: Vec<String> = vec!["watch".into(), "configmaps".into()];
        all.extend(args.iter().cloned());
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = env.run_faro(&refs);
        let err = crate::util::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_state_larger_than_a_message_is_kept_in_parts_and_a_stale_replica_cannot_replace_it() {
    use faro::checkpoint::Store;
    if !have_nats() {
        return;
    }
    let nats = NatsServer::start();
    let options = faro::nats::NatsOptions {
        servers: faro::nats::NatsOptions::parse_servers(&nats.url()).unwrap(),
        ..Default::default()
    };
    runtime().block_on(async {
        let metrics = faro::Watcher::new(
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap()))
                .unwrap(),
            faro::WatchConfig::new(),
        )
        .metrics();
        let connection = faro::nats::Connection::connect(&options, &metrics)
            .await
            .unwrap();
        let old = faro::nats::StateBucket::open(&connection, "parts/prod", 1)
            .await
            .unwrap();
        let new = faro::nats::StateBucket::open(&connection, "parts/prod", 1)
            .await
            .unwrap();
        assert_eq!(old.read().await.unwrap(), None);
        // 3 MiB: more than the server's max_payload (1 MiB) takes in one message.
        let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        old.write(big.clone()).await.unwrap();
        assert_eq!(new.read().await.unwrap().as_deref(), Some(&big[..]));
        // `new` took over and saved; `old`'s late checkpoint is refused.
        new.write(b"newer".to_vec()).await.unwrap();
        let err = old.write(b"stale".to_vec()).await.unwrap_err();
        assert!(err.to_string().contains("another replica"), "{err}");
        assert_eq!(old.read().await.unwrap().as_deref(), Some(&b"newer"[..]));
        // Only the head and the current generation's part are left.
        let js = connection.jetstream();
        let store = js.get_key_value("parts").await.unwrap();
        let mut keys = store.keys().await.unwrap();
        let mut n = 0;
        while let Some(key) = futures::StreamExt::next(&mut keys).await {
            key.unwrap();
            n += 1;
        }
        assert_eq!(n, 2, "the head and one part");
    });
}

/// PEM files of a throwaway CA, a server certificate for 127.0.0.1 and a client certificate,
/// in `dir`: (ca, server cert, server key, client cert, client key).
fn certificates(dir: &Path) -> [PathBuf; 5] {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "faro test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, "faro test");
        p.use_authority_key_identifier_extension = true;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let server = leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let client = leaf(vec!["faro".into()], ExtendedKeyUsagePurpose::ClientAuth);
    let files = [
        ("ca.pem", ca_cert.pem()),
        ("server.pem", server.0),
        ("server-key.pem", server.1),
        ("client.pem", client.0),
        ("client-key.pem", client.1),
    ];
    files.map(|(name, pem)| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    })
}

#[test]
fn over_tls_faro_verifies_the_server_with_nats_ca_and_presents_its_client_certificate() {
    if !have_nats() {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let [ca, server_cert, server_key, client_cert, client_key] = certificates(certs.path());
    let nats = NatsServer::start_with(&format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n}}\n",
        server_cert.display(),
        server_key.display(),
        ca.display()
    ));
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let env = Env::start();
    seed(&env, &["t-a"], 2);
    let config = env.write(
        "c.yaml",
        "resources:\n  - gvr: v1/configmaps\n    namespace_names: [t-a]\n",
    );
    let config = config.to_str().unwrap();
    // Without its client certificate, the server refuses faro: it keeps trying, writes nothing.
    let refused = env.spawn_faro(&[
        "watch",
        "--config",
        config,
        "--nats",
        &url,
        "--nats-ca",
        ca.to_str().unwrap(),
    ]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(!refused.is_ready(), "{}", refused.stderr());
    assert!(
        !refused.stderr().contains("NATS: connected"),
        "{}",
        refused.stderr()
    );
    drop(refused);
    let mut faro = env.spawn_faro(&[
        "watch",
        "--config",
        config,
        "--nats",
        &url,
        "--nats-ca",
        ca.to_str().unwrap(),
        "--nats-cert",
        client_cert.to_str().unwrap(),
        "--nats-key",
        client_key.to_str().unwrap(),
    ]);
    faro.wait_ready();
    env.apply(&configmap("t-a", "over-tls", &[], "1"));
    faro.wait_for("the new configmap", |e| e.name == "over-tls");
    let end = faro.stop();
    assert!(end.status.success(), "{}", end.stderr);
    let reader = async_nats::ConnectOptions::new()
        .add_root_certificates(ca.clone())
        .add_client_certificate(client_cert.clone(), client_key.clone());
    let stored = read_stream_with(reader, &url, "FARO");
    assert_eq!(stored.len(), end.events.len());
    assert!(stored.iter().any(|m| m.event().name == "over-tls"));
    assert_exactly_once(&stored);
}

#[test]
fn a_stream_that_cannot_take_faros_subjects_or_replicas_is_exit_2() {
    if !have_nats() {
        return;
    }
    let nats = NatsServer::start();
    let url = nats.url();
    runtime().block_on(async {
        let client = async_nats::connect(url.as_str()).await.unwrap();
        async_nats::jetstream::new(client)
            .create_stream(async_nats::jetstream::stream::Config {
                name: "OTHER".into(),
                subjects: vec!["other.>".into()],
                ..Default::default()
            })
            .await
            .unwrap();
    });
    let env = Env::start();
    for (extra, want) in [
        (
            &["--nats-stream", "OTHER"][..],
            "do not take faro.kube-sim.>",
        ),
        // One server is no JetStream cluster: three copies cannot be kept.
        (&["--nats-replicas", "3"][..], "JetStream stream FARO"),
    ] {
        let mut args = vec![
            "watch",
            "configmaps",
            "--nats",
            &url,
            "--cluster-name",
            "kube-sim",
        ];
        args.extend_from_slice(extra);
        let out = env.run_faro(&args);
        let err = crate::util::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: {err}");
    }
}

/// A JWT of the NATS decentralised auth (nats-io/jwt v2), signed by `issuer`.
fn nats_jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": format!("{:X}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()),
        "iat": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let claims = b64.encode(serde_json::to_vec(&claims).unwrap());
    let signed = format!("{header}.{claims}");
    let signature = b64.encode(issuer.sign(signed.as_bytes()).unwrap());
    format!("{signed}.{signature}")
}

#[test]
fn with_a_credentials_file_faro_authenticates_to_an_operator_mode_server() {
    if !have_nats() {
        return;
    }
    let operator = nkeys::KeyPair::new_operator();
    let system = nkeys::KeyPair::new_account();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let operator_jwt = nats_jwt(
        &operator,
        &operator.public_key(),
        "test-operator",
        serde_json::json!({"type": "operator", "version": 2, "system_account": system.public_key()}),
    );
    let system_jwt = nats_jwt(
        &operator,
        &system.public_key(),
        "SYS",
        serde_json::json!({"type": "account", "version": 2}),
    );
    let unlimited = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1
    });
    let account_jwt = nats_jwt(
        &operator,
        &account.public_key(),
        "faro",
        serde_json::json!({"type": "account", "version": 2, "limits": unlimited}),
    );
    let user_jwt = nats_jwt(
        &account,
        &user.public_key(),
        "faro",
        serde_json::json!({"type": "user", "version": 2, "subs": -1, "data": -1, "payload": -1}),
    );
    let nats = NatsServer::start_with(&format!(
        "operator: \"{operator_jwt}\"\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n  {}: \"{account_jwt}\"\n  {}: \"{system_jwt}\"\n}}\n",
        system.public_key(),
        account.public_key(),
        system.public_key()
    ));
    let env = Env::start();
    seed(&env, &["c-a"], 2);
    let creds = env.write(
        "faro.creds",
        &format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        ),
    );
    let config = env.write(
        "c.yaml",
        "resources:\n  - gvr: v1/configmaps\n    namespace_names: [c-a]\n",
    );
    let url = nats.url();
    // Without credentials the server refuses faro: it keeps trying and writes nothing.
    let refused = env.spawn_faro(&[
        "watch",
        "--config",
        config.to_str().unwrap(),
        "--nats",
        &url,
    ]);
    refused.wait_stderr("NATS: authorization violation; trying again");
    std::thread::sleep(Duration::from_secs(1));
    assert!(!refused.is_ready(), "{}", refused.stderr());
    drop(refused);
    let mut faro = env.spawn_faro(&[
        "watch",
        "--config",
        config.to_str().unwrap(),
        "--nats",
        &url,
        "--nats-creds",
        creds.to_str().unwrap(),
    ]);
    faro.wait_ready();
    let end = faro.stop();
    assert!(end.status.success(), "{}", end.stderr);
    let reader = runtime()
        .block_on(async_nats::ConnectOptions::with_credentials_file(&creds))
        .unwrap();
    let stored = read_stream_with(reader, &url, "FARO");
    assert_eq!(stored.len(), end.events.len());
    assert_eq!(stored.len(), 2);
    assert_exactly_once(&stored);
}
