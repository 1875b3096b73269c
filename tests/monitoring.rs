//! `--metrics-addr` (/metrics scraped by a real Prometheus server, /healthz, /readyz) and
//! `--stall-timeout` against kube-sim.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube_sim::Options;

use crate::util::{Env, PATIENCE};

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// GET with curl: (status, body).
fn get(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "5", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// The sum of a metric's samples in an exposition (None when absent).
fn sample_sum(exposition: &str, metric: &str) -> Option<f64> {
    let mut found = None;
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
        *found.get_or_insert(0.0) += value;
    }
    found
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[allow(clippy::print_stderr)]
fn skip(why: &str) {
    eprintln!("SKIPPED: {why}");
}

/// A Prometheus server scraping `target` every 500 ms, on loopback.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn binary() -> Option<PathBuf> {
        ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    }

    fn start(bin: &Path, target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\nscrape_configs:\n  - job_name: faro\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("config");
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// The value of an instant query's single sample, if it has one.
    fn query(&self, expr: &str) -> Option<f64> {
        let out = Command::new("curl")
            .args(["-s", "-m", "5", "-G"])
            .arg(format!("{}/api/v1/query", self.url))
            .arg("--data-urlencode")
            .arg(format!("query={expr}"))
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let result = v["data"]["result"].as_array()?;
        let [sample] = result.as_slice() else {
            return None;
        };
        sample["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_scrapes_event_counters_equal_to_the_lines_written() {
    let Some(prometheus) = Prometheus::binary() else {
        // .ci/run installs Debian's prometheus package; a developer machine may lack it.
        skip("no prometheus binary (apt-get install prometheus); .ci/run installs it");
        return;
    };
    let env = Env::start();
    env.admin("POST", "/_sim/load?namespace=shop&count=300&size=400");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let faro = env.spawn_ready(&[
        "watch",
        "configmaps,secrets",
        "-A",
        "-o",
        "json",
        "--metrics-addr",
        &port.to_string(),
    ]);
    let prometheus = Prometheus::start(&prometheus, &addr);
    env.admin(
        "POST",
        "/_sim/churn?count=2000&namespace=shop,shop-b&seed=3&wait=true",
    );
    // All lines out: the count stops moving.
    let lines = wait_for("faro to settle", PATIENCE, {
        let mut last = (0, Instant::now());
        let faro = &faro;
        move || {
            let n = faro.lines().len();
            if n != last.0 {
                last = (n, Instant::now());
                None
            } else {
                (last.1.elapsed() > Duration::from_millis(700)).then_some(n)
            }
        }
    });
    assert!(lines > 2000, "{lines} lines");
    // The endpoint itself: the counter equals the lines, by GVR and type.
    let (code, exposition) = get(&format!("http://{addr}/metrics"));
    assert_eq!(code, 200);
    assert_eq!(
        sample_sum(&exposition, "faro_events_total"),
        Some(lines as f64),
        "{exposition}"
    );
    let events = faro.events();
    let added = events.iter().filter(|e| e.event_type == "ADDED").count();
    assert_eq!(
        sample_sum(
            &exposition,
            "faro_events_total{gvr=\"v1/configmaps\",type=\"ADDED\"}"
        ),
        Some(added as f64)
    );
    assert!(exposition.ends_with("# EOF\n"));
    // No series is labelled by namespace or name.
    assert!(!exposition.contains("namespace=") && !exposition.contains("name="));
    // Prometheus, through its query API.
    let scraped = wait_for("Prometheus to scrape faro", Duration::from_secs(60), || {
        prometheus
            .query("sum(faro_events_total)")
            .filter(|v| *v == lines as f64)
    });
    assert_eq!(scraped, lines as f64);
    assert_eq!(prometheus.query("up{job=\"faro\"}"), Some(1.0));
    assert_eq!(
        prometheus.query("sum(faro_watches{state=\"watching\"})"),
        Some(3.0),
        "configmaps, secrets and the CRD watch"
    );
    assert_eq!(prometheus.query("faro_queue_events"), Some(0.0));
    let tracked = prometheus
        .query("faro_objects_tracked{gvr=\"v1/configmaps\"}")
        .expect("objects tracked");
    let state = env.admin("GET", "/_sim/state?resource=configmaps");
    assert_eq!(
        tracked as usize,
        state["objects"].as_array().map_or(0, Vec::len)
    );
    let (code, body) = get(&format!("http://{addr}/healthz"));
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, _) = get(&format!("http://{addr}/nope"));
    assert_eq!(code, 404);
}

#[test]
fn readyz_is_503_until_the_initial_listing_is_written_then_200() {
    let env = Env::start();
    env.admin("POST", "/_sim/load?namespace=big&count=100000&size=200");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/readyz");
    // stdout straight into a file: the lines faro wrote are there the moment it wrote them.
    let out_path = env.path("out.json");
    let mut child = env
        .faro()
        .args([
            "watch",
            "configmaps",
            "-A",
            "-o",
            "json",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(std::fs::File::create(&out_path).expect("out"))
        .stderr(Stdio::null())
        .spawn()
        .expect("faro");
    let mut saw_503 = None;
    let start = Instant::now();
    let ready_body = loop {
        assert!(start.elapsed() < Duration::from_secs(120), "never ready");
        let (code, body) = get(&url);
        match code {
            503 => {
                saw_503.get_or_insert(body);
            }
            200 => break body,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // Every initial line is in the file when /readyz first says 200.
    let written = std::fs::read_to_string(&out_path)
        .expect("out")
        .lines()
        .count();
    let _ = child.kill();
    let _ = child.wait();
    let not_ready = saw_503.expect("a 503 before the listing was written");
    assert!(
        not_ready.contains("not ready: the initial listings are not all written yet"),
        "{not_ready}"
    );
    assert!(written >= 100_000, "only {written} lines when ready");
    assert!(ready_body.starts_with("ready: "), "{ready_body}");
}

#[test]
fn readyz_names_a_forbidden_gvr_and_metrics_count_its_403s() {
    let env = Env::start();
    env.admin("POST", "/_sim/forbid?resource=secrets");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let faro = env.spawn_ready(&[
        "watch",
        "configmaps,secrets",
        "-A",
        "--metrics-addr",
        &port.to_string(),
    ]);
    let (code, body) = get(&format!("{base}/readyz"));
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("v1/secrets: forbidden: ") && !body.contains("v1/configmaps"),
        "{body}"
    );
    assert!(!body.contains("initial listings"), "{body}");
    let (_, metrics) = get(&format!("{base}/metrics"));
    assert_eq!(
        sample_sum(&metrics, "faro_watches{state=\"forbidden\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample_sum(
            &metrics,
            "faro_api_errors_total{gvr=\"v1/secrets\",code=\"403\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    drop(faro);
}

#[test]
fn a_silent_watch_is_reestablished_within_the_stall_timeout_and_loses_nothing() {
    let env = Env::with(Options {
        bookmark_interval: Duration::from_millis(300),
        ..Options::default()
    });
    env.admin("POST", "/_sim/load?namespace=quiet&count=3&prefix=old-");
    let port = free_port();
    let faro = env.spawn_ready(&[
        "watch",
        "configmaps",
        "-n",
        "quiet",
        "-o",
        "json",
        "--stall-timeout",
        "3s",
        "--metrics-addr",
        &port.to_string(),
    ]);
    // Healthy watches with bookmarks every 300 ms never stall.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !faro.stderr().contains("delivered neither"),
        "{}",
        faro.stderr()
    );
    assert_eq!(
        env.admin("POST", "/_sim/silence-watches?resource=configmaps")["silenced"],
        1
    );
    let silenced = Instant::now();
    env.admin("POST", "/_sim/load?namespace=quiet&count=5&prefix=new-");
    let events = faro.wait_until("the objects created while the watch was silent", |evs| {
        evs.iter().filter(|e| e.name.starts_with("new-")).count() == 5
    });
    let took = silenced.elapsed();
    assert!(
        took < Duration::from_secs(3) + Duration::from_millis(1500),
        "re-established after {took:?}"
    );
    assert!(
        took >= Duration::from_secs(2),
        "not before the stall timeout: {took:?}"
    );
    assert_eq!(events.len(), 8, "nothing lost or repeated");
    let stderr = faro.wait_stderr("delivered neither an event nor a bookmark");
    assert_eq!(stderr.matches("delivered neither").count(), 1, "{stderr}");
    let (_, metrics) = get(&format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(
        sample_sum(&metrics, "faro_watch_stalls_total{gvr=\"v1/configmaps\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert!(sample_sum(&metrics, "faro_watch_reconnects_total").unwrap_or(0.0) >= 1.0);
}

#[test]
fn bad_monitoring_flags_are_usage_errors() {
    let env = Env::start();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let in_use = taken.local_addr().expect("addr").to_string();
    for (args, needle) in [
        (
            vec!["watch", "configmaps", "--metrics-addr", "example.com:80"],
            "is not HOST:PORT",
        ),
        (
            vec!["watch", "configmaps", "--metrics-addr", "99999"],
            "the port must be",
        ),
        (
            vec!["watch", "configmaps", "--metrics-addr", in_use.as_str()],
            "cannot listen",
        ),
        (
            vec!["watch", "configmaps", "--stall-timeout", "10ms"],
            "below the minimum",
        ),
        (
            vec!["watch", "configmaps", "--stall-timeout", "soon"],
            "expected a duration",
        ),
    ] {
        let out = env.run_faro(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
