//! faro over TLS and HTTP/2 (kube-sim `--tls`): the kubeconfig's CA verified, a wrong one
//! refused, `insecure-skip-tls-verify` honoured, h2 spoken (and `--http1` forcing HTTP/1.1),
//! watches spread over as many connections as the server's stream limit needs, every watch
//! resumed without loss or repeat when the server cuts all connections during churn, and a
//! connection gone silent found by keep-alive PINGs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kube_sim::Options;
use kube_sim::kubeconfig::{self, Trust};
use serde_json::Value;

use crate::util::{Env, Event, PATIENCE, configmap, rebuild, sim_state, stderr, stdout};

fn tls(h2_max_streams: u32) -> Env {
    Env::with(Options {
        tls: true,
        h2_max_streams,
        ..Options::default()
    })
}

/// Local ports of the TCP sockets `pid` holds to `port` (its fds matched with
/// /proc/PID/net/tcp{,6} by inode).
fn ports_to(pid: u32, port: u16) -> BTreeSet<u16> {
    let mut inodes = BTreeSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("faro's fds") {
        let Ok(target) = std::fs::read_link(fd.expect("an fd").path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
        {
            inodes.insert(inode.to_owned());
        }
    }
    let mut ports = BTreeSet::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(inode)) =
                (fields.get(1), fields.get(2), fields.get(9))
            else {
                continue;
            };
            let port_of = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            // State 01 = ESTABLISHED.
            if fields.get(3) == Some(&"01")
                && port_of(remote) == Some(port)
                && inodes.contains(*inode)
                && let Some(local) = port_of(local)
            {
                ports.insert(local);
            }
        }
    }
    ports
}

/// kube-sim's view of the connections faro (process `pid`) holds.
fn faro_connections(env: &Env, pid: u32) -> Vec<Value> {
    let ports = ports_to(pid, env.sim.addr().port());
    let all = env.admin("GET", "/_sim/connections");
    all["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .filter(|c| {
            c["peer"]
                .as_str()
                .and_then(|p| p.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok())
                .is_some_and(|p| ports.contains(&p))
        })
        .cloned()
        .collect()
}

/// Protocols of the requests kube-sim logged from faro (which sends no User-Agent; kubectl
/// does) for `path`.
fn faro_protocols(env: &Env, path: &str) -> BTreeSet<String> {
    env.admin("GET", "/_sim/requests")["requests"]
        .as_array()
        .expect("request log")
        .iter()
        .filter(|r| r["userAgent"].as_str().unwrap_or("").is_empty() && r["path"] == path)
        .map(|r| r["protocol"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn faro_speaks_h2_over_tls_trusting_the_kubeconfig_ca() {
    let env = tls(250);
    env.apply(&configmap("default", "before", &[], "1"));
    let faro = env.watch(
        "resources:\n  - gvr: v1/configmaps\n    namespace_names: [default]\n",
        &[],
    );
    faro.wait_for("initial", |e| e.name == "before" && e.initial);
    env.apply(&configmap("default", "after", &[], "1"));
    faro.wait_for("a change", |e| e.name == "after" && e.event_type == "ADDED");
    assert_eq!(
        faro_protocols(&env, "/api/v1/namespaces/default/configmaps"),
        BTreeSet::from(["h2".to_owned()])
    );
    // Discovery, the CRD watch and the configmap watch share one connection.
    let conns = faro_connections(&env, faro.pid());
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert_eq!(conns[0]["protocol"], "h2");
    assert!(conns[0]["inFlight"].as_u64() >= Some(2), "{conns:?}");
    let done = faro.stop();
    assert!(done.status.success(), "{}", done.stderr);
}

#[test]
fn http1_flag_keeps_one_connection_per_watch() {
    let env = tls(250);
    let faro = env.watch(
        "resources:\n  - gvr: v1/configmaps\n    namespace_names: [default]\n",
        &["--http1"],
    );
    env.apply(&configmap("default", "after", &[], "1"));
    faro.wait_for("a change", |e| e.name == "after");
    assert_eq!(
        faro_protocols(&env, "/api/v1/namespaces/default/configmaps"),
        BTreeSet::from(["http/1.1".to_owned()])
    );
    let conns = faro_connections(&env, faro.pid());
    // (A connection still in its handshake has no protocol yet.)
    assert!(
        conns.iter().filter(|c| c["inFlight"] == 1).count() >= 2
            && conns
                .iter()
                .all(|c| c["protocol"] == "http/1.1" || c["protocol"].is_null()),
        "two watches, two HTTP/1.1 connections at least: {conns:?}"
    );
    drop(faro.stop());
}

#[test]
fn a_wrong_ca_is_refused_and_insecure_skip_tls_verify_is_honoured() {
    let env = tls(250);
    let other = tls(250);
    let other_ca = other.sim.ca_pem().expect("a TLS server has a CA");
    let wrong = env.path("wrong-ca.yaml");
    kubeconfig::write_with(
        &wrong,
        env.sim.url(),
        kubeconfig::DEFAULT_TOKEN,
        Trust::Ca(other_ca),
    )
    .expect("kubeconfig");
    for extra in [&[][..], &["--http1"][..]] {
        let started = Instant::now();
        let mut args = vec!["--kubeconfig", wrong.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push("discover");
        let out = env.run_faro(&args);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("faro: error:")
                && err.contains("cannot reach the API server: invalid peer certificate"),
            "{extra:?}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a certificate error is not retried"
        );
        assert!(stdout(&out).is_empty());
    }
    // `faro watch` retries at start-up, then fails the same way.
    let mut faro = env
        .faro()
        .args([
            "--kubeconfig",
            wrong.to_str().unwrap(),
            "watch",
            "configmaps",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("faro");
    let status = loop {
        if let Some(status) = faro.try_wait().expect("waiting") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut faro.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("invalid peer certificate"), "{err}");

    let insecure = env.path("insecure.yaml");
    kubeconfig::write_with(
        &insecure,
        env.sim.url(),
        kubeconfig::DEFAULT_TOKEN,
        Trust::Insecure,
    )
    .expect("kubeconfig");
    let out = env.run_faro(&["--kubeconfig", insecure.to_str().unwrap(), "discover"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("\"gvr\":\"v1/configmaps\""));
    assert!(
        faro_protocols(&env, "/api").contains("h2"),
        "h2 without verification too"
    );
}

/// A config with one entry per namespace: one server-side watch each.
fn per_namespace(namespaces: &[String]) -> String {
    let mut config = String::from("resources:\n");
    for ns in namespaces {
        config.push_str(&format!(
            "  - gvr: v1/configmaps\n    namespace_names: [{ns}]\n"
        ));
    }
    config
}

#[test]
fn watches_beyond_the_stream_limit_are_spread_over_more_connections() {
    let env = tls(2);
    let namespaces: Vec<String> = (1..=7).map(|i| format!("ns-{i}")).collect();
    for ns in &namespaces {
        env.admin(
            "POST",
            &format!("/_sim/load?namespace={ns}&count=3&size=100"),
        );
    }
    let faro = env.watch(&per_namespace(&namespaces), &[]);
    let events = faro.wait_until("every namespace listed", |events| {
        namespaces.iter().all(|ns| {
            events
                .iter()
                .filter(|e| e.initial && e.namespace.as_deref() == Some(ns.as_str()))
                .count()
                == 3
        })
    });
    drop(events);
    for ns in &namespaces {
        env.apply(&configmap(ns, "later", &[], "1"));
    }
    faro.wait_until("a change in every namespace", |events| {
        namespaces.iter().all(|ns| {
            events
                .iter()
                .any(|e| e.name == "later" && e.namespace.as_deref() == Some(ns.as_str()))
        })
    });
    // 7 configmap watches and the CRD watch, at 2 streams per connection: 4 connections carry
    // them; one more may hold discovery's requests, made while the others were full.
    let watches = env.admin("GET", "/_sim/watches")["count"]
        .as_u64()
        .expect("count");
    assert_eq!(watches, 8);
    let conns = faro_connections(&env, faro.pid());
    let busy: Vec<&Value> = conns
        .iter()
        .filter(|c| c["inFlight"].as_u64() > Some(0))
        .collect();
    assert_eq!(
        busy.len(),
        4,
        "ceil(8 / 2) connections carry the watches: {conns:?}"
    );
    assert!(conns.len() <= 5, "{conns:?}");
    assert!(conns.iter().all(|c| c["protocol"] == "h2"), "{conns:?}");
    assert!(
        busy.iter().all(|c| c["inFlight"] == 2),
        "each full, none over the limit: {conns:?}"
    );
    let done = faro.stop();
    assert!(done.status.success(), "{}", done.stderr);
}

#[test]
fn cut_connections_during_churn_resume_every_watch_without_loss_or_repeat() {
    let env = tls(2);
    let namespaces: Vec<String> = ["cut-a", "cut-b", "cut-c"].map(String::from).to_vec();
    for ns in &namespaces {
        env.admin(
            "POST",
            &format!("/_sim/load?namespace={ns}&count=100&size=200"),
        );
    }
    let faro = env.watch(&per_namespace(&namespaces), &["-v"]);
    env.admin(
        "POST",
        "/_sim/churn?count=3000&rate=1000&namespace=cut-a,cut-b,cut-c&seed=11&wait=false",
    );
    let start = Instant::now();
    let mut cuts = 0;
    loop {
        let status = env.admin("GET", "/_sim/churn");
        if !status["running"].as_bool().expect("churn status") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "churn: {status}");
        let closed = env.admin("POST", "/_sim/close-connections");
        if closed["closed"].as_u64() > Some(0) {
            cuts += 1;
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    assert!(
        cuts >= 3,
        "connections cut while the churn ran ({cuts} times)"
    );
    env.apply(&configmap("cut-c", "zz-fence", &[], "1"));
    let deadline = Instant::now() + PATIENCE;
    while !faro.events().iter().any(|e| e.name == "zz-fence") {
        assert!(
            Instant::now() < deadline,
            "no fence: {}\n{}\n{}",
            env.admin("GET", "/_sim/watches"),
            env.admin("GET", "/_sim/connections"),
            faro.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    // Every watch is back, over h2.
    let deadline = Instant::now() + PATIENCE;
    while env.admin("GET", "/_sim/watches")["count"] != 4 {
        assert!(
            Instant::now() < deadline,
            "the watches did not all come back: {}\n{}\n{}",
            env.admin("GET", "/_sim/watches"),
            env.admin("GET", "/_sim/connections"),
            faro.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        faro_connections(&env, faro.pid())
            .iter()
            .all(|c| c["protocol"] == "h2")
    );
    let done = faro.stop();
    assert!(done.status.success(), "{}", done.stderr);

    let events: Vec<Event> = done.events;
    let mut pairs = BTreeSet::new();
    for e in &events {
        assert!(
            pairs.insert((e.uid.clone(), e.resource_version.clone())),
            "(uid, resourceVersion) emitted twice: {e:?}"
        );
    }
    let ns: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    let ours: BTreeMap<_, _> = rebuild(&events, "v1/configmaps");
    let theirs = sim_state(&env, &ns);
    assert_eq!(ours.len(), theirs.len());
    assert!(ours == theirs, "rebuilt state differs from the server's");
    // The watches resumed from where they were (no relist was needed: the history is kept).
    let relists = env.admin("GET", "/_sim/requests")["requests"]
        .as_array()
        .expect("request log")
        .iter()
        .filter(|r| {
            r["userAgent"].as_str().unwrap_or("").is_empty()
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/api/v1/namespaces/cut-"))
                && r["query"].as_str().is_some_and(|q| {
                    q.contains("sendInitialEvents=true")
                        || (q.contains("limit=") && !q.contains("watch=true"))
                })
        })
        .count();
    assert_eq!(relists, 3, "one initial listing per watch, no relist");
}

/// A TCP relay to kube-sim whose connections can be frozen: open, but silent both ways, as a
/// connection whose peer vanished (no FIN, no RST) looks.
struct Relay {
    port: u16,
    /// Connections numbered below this are frozen.
    frozen_below: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Relay {
    fn start(to: std::net::SocketAddr) -> Relay {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("relay port");
        let port = listener.local_addr().unwrap().port();
        let frozen_below = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (frozen, count) = (frozen_below.clone(), accepted.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(to) else {
                    continue;
                };
                let n = count.fetch_add(1, Ordering::SeqCst);
                for (mut from, mut into) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let frozen = frozen.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = [0u8; 16384];
                        loop {
                            let Ok(len) = from.read(&mut buf) else { return };
                            if len == 0 {
                                let _ = into.shutdown(std::net::Shutdown::Write);
                                return;
                            }
                            // Frozen: the bytes are swallowed, the socket stays open.
                            if n >= frozen.load(Ordering::SeqCst)
                                && into.write_all(&buf[..len]).is_err()
                            {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Relay {
            port,
            frozen_below,
            accepted,
        }
    }

    /// Freezes every connection made so far.
    fn freeze(&self) {
        use std::sync::atomic::Ordering;
        self.frozen_below
            .store(self.accepted.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

#[test]
fn a_connection_gone_silent_is_found_by_keepalive_pings_and_its_watches_resume() {
    let env = tls(250);
    let relay = Relay::start(env.sim.addr());
    let via_relay = env.path("relay.yaml");
    kubeconfig::write_with(
        &via_relay,
        &format!("https://127.0.0.1:{}", relay.port),
        kubeconfig::DEFAULT_TOKEN,
        Trust::Ca(env.sim.ca_pem().expect("CA")),
    )
    .expect("kubeconfig");
    env.apply(&configmap("default", "before", &[], "1"));
    let faro = env.spawn_ready(&[
        "--kubeconfig",
        via_relay.to_str().unwrap(),
        "watch",
        "configmaps",
        "-n",
        "default",
        "-v",
    ]);
    relay.freeze();
    let frozen = Instant::now();
    env.apply(&configmap("default", "during", &[], "1"));
    let deadline = frozen + Duration::from_secs(40);
    while !faro.events().iter().any(|e| e.name == "during") {
        assert!(Instant::now() < deadline, "not resumed: {}", faro.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = frozen.elapsed();
    // PINGs every 10 s, 10 s to answer: dead within 20 s, then a new connection at once.
    assert!(
        took < Duration::from_secs(30) && took > Duration::from_secs(5),
        "took {took:?}"
    );
    let done = faro.stop();
    assert!(done.status.success(), "{}", done.stderr);
    let names: Vec<&str> = done.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["before", "during"], "nothing repeated");
}

#[test]
fn tls_server_name_is_the_name_verified() {
    let env = tls(250);
    let ca = env.sim.ca_pem().expect("CA");
    let with_name = |name: &str| {
        let text = kubeconfig::render_with(env.sim.url(), kubeconfig::DEFAULT_TOKEN, Trust::Ca(ca))
            .replace(
                &format!("    server: {}\n", env.sim.url()),
                &format!(
                    "    server: {}\n    tls-server-name: {name}\n",
                    env.sim.url()
                ),
            );
        assert!(text.contains("tls-server-name"), "{text}");
        env.write(&format!("{name}.yaml"), &text)
    };
    // kube-sim's certificate names 127.0.0.1, ::1 and localhost.
    let good = with_name("localhost");
    let out = env.run_faro(&["--kubeconfig", good.to_str().unwrap(), "discover"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bad = with_name("elsewhere.example");
    let out = env.run_faro(&["--kubeconfig", bad.to_str().unwrap(), "discover"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("certificate not valid for name"),
        "{}",
        stderr(&out)
    );
}

/// Many watches started at once against a small stream limit: each new connection is settled
/// by whichever request sees the server's limit first, and the requests waiting for room must
/// be woken then, not only when a slot is freed (long watches free none). Without that wake-up
/// 30,000 watches at 250 per connection stalled for good with a few still waiting.
#[test]
fn watches_started_together_fill_connection_after_connection_without_stalling() {
    let env = tls(3);
    let namespaces: Vec<String> = (1..=60).map(|i| format!("many-{i:02}")).collect();
    for ns in &namespaces {
        env.admin(
            "POST",
            &format!("/_sim/load?namespace={ns}&count=1&size=100"),
        );
    }
    // `watch` returns once faro is ready: every one of the 61 watches was served.
    let faro = env.watch(&per_namespace(&namespaces), &[]);
    let listed: BTreeSet<String> = faro
        .events()
        .iter()
        .filter(|e| e.initial)
        .filter_map(|e| e.namespace.clone())
        .collect();
    assert_eq!(listed.len(), namespaces.len());
    let conns = faro_connections(&env, faro.pid());
    assert!(
        conns.len() >= 21 && conns.len() <= 23,
        "ceil(61 / 3) connections, give or take discovery's: {}",
        conns.len()
    );
    let done = faro.stop();
    assert!(done.status.success(), "{}", done.stderr);
}
