//! `--tls` and HTTP/2: the real kubectl over TLS (it negotiates h2), certificate errors, the
//! per-connection stream limit seen by hyper's own HTTP/2 client, watches, lists and faults
//! over h2, and `/_sim/connections` / `/_sim/close-connections`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kube_sim::kubeconfig::{self, Trust};
use kube_sim::testkit::Kubectl;
use kube_sim::{Options, SimHandle};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

use crate::util::{RawWatch, start, start_with, wait_until};

fn start_tls() -> SimHandle {
    start_with(Options {
        tls: true,
        ..Options::default()
    })
}

/// The open connections that speak h2, from `/_sim/connections`.
fn h2_connections(sim: &SimHandle) -> Vec<Value> {
    let v = sim.admin("GET", "/_sim/connections").expect("connections");
    v["connections"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|c| c["protocol"] == "h2")
        .cloned()
        .collect()
}

/// Non-admin requests from the request log.
fn requests(sim: &SimHandle) -> Vec<Value> {
    sim.admin("GET", "/_sim/requests").expect("requests")["requests"]
        .as_array()
        .expect("a list")
        .clone()
}

/// Reads stdout lines of `child` on a thread; `next` waits for one up to a timeout.
struct Lines(mpsc::Receiver<String>);

impl Lines {
    fn of(child: &mut Child) -> Lines {
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines(rx)
    }

    fn next(&self, timeout: Duration) -> Option<String> {
        self.0.recv_timeout(timeout).ok()
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    err
}

#[test]
fn kubectl_gets_applies_and_creates_over_tls_and_http2() {
    let sim = start_tls();
    assert!(sim.url().starts_with("https://127.0.0.1:"), "{}", sim.url());
    let k = Kubectl::new(&sim);
    let kc = std::fs::read_to_string(k.kubeconfig()).expect("kubeconfig");
    assert!(kc.contains(&format!("server: {}", sim.url())), "{kc}");
    assert!(kc.contains("certificate-authority-data: "), "{kc}");

    let ns = k.ok(&["get", "namespaces", "-o", "name"]);
    assert!(ns.contains("namespace/default"), "{ns}");
    // kubectl's generators send protobuf bodies.
    k.ok(&["create", "namespace", "demo"]);
    k.ok(&[
        "create",
        "configmap",
        "pb",
        "-n",
        "demo",
        "--from-literal=a=1",
    ]);
    k.apply_yaml(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied, namespace: demo}\ndata: {k: v}\n",
        &[],
    );
    k.apply_yaml(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa, namespace: demo}\ndata: {k: v}\n",
        &["--server-side"],
    );
    let cms = k.ok(&["get", "configmaps", "-n", "demo", "-o", "name"]);
    for name in ["pb", "applied", "ssa"] {
        assert!(cms.contains(&format!("configmap/{name}")), "{cms}");
    }

    let reqs = requests(&sim);
    let kubectl: Vec<&Value> = reqs
        .iter()
        .filter(|r| {
            r["userAgent"]
                .as_str()
                .is_some_and(|u| u.starts_with("kubectl"))
        })
        .collect();
    assert!(kubectl.len() >= 10, "{reqs:?}");
    assert!(
        kubectl.iter().all(|r| r["protocol"] == "h2"),
        "every kubectl request came over HTTP/2: {reqs:?}"
    );
    assert!(
        kubectl
            .iter()
            .any(|r| r["method"] == "POST" && r["path"] == "/api/v1/namespaces/demo/configmaps"),
        "{reqs:?}"
    );
    assert!(
        kubectl.iter().any(|r| r["method"] == "PATCH"
            && r["query"]
                .as_str()
                .unwrap_or("")
                .contains("fieldManager=kubectl")),
        "{reqs:?}"
    );
}

#[test]
fn kubectl_get_watch_streams_over_an_h2_connection() {
    let sim = start_tls();
    let k = Kubectl::new(&sim);
    let mut child = k.spawn(&["get", "configmaps", "-w", "-o", "name"]);
    let lines = Lines::of(&mut child);
    assert!(
        wait_until(Duration::from_secs(10), || sim
            .admin("GET", "/_sim/watches")
            .map(|w| w["count"] == 1)
            .unwrap_or(false)),
        "kubectl's watch opened"
    );
    let conns = h2_connections(&sim);
    assert!(
        conns.iter().any(|c| c["tls"] == true && c["inFlight"] == 1),
        "the watch is one stream in flight on an h2 connection: {conns:?}"
    );
    for name in ["w1", "w2", "w3"] {
        k.ok(&["create", "configmap", name]);
        assert_eq!(
            lines.next(Duration::from_secs(10)).as_deref(),
            Some(format!("configmap/{name}").as_str()),
            "kubectl printed {name}'s event"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        wait_until(Duration::from_secs(10), || sim
            .admin("GET", "/_sim/watches")
            .map(|w| w["count"] == 0)
            .unwrap_or(false)),
        "the watch ended with kubectl"
    );
}

#[test]
fn kubectl_refuses_a_certificate_its_ca_did_not_sign() {
    let sim = start_tls();
    let other = start_tls();
    let k = Kubectl::new(&sim);
    let token = kubeconfig::DEFAULT_TOKEN;
    for (trust, what) in [
        (
            Trust::Ca(other.ca_pem().expect("a CA")),
            "another server's CA",
        ),
        (Trust::System, "the system roots"),
    ] {
        kubeconfig::write_with(k.kubeconfig(), sim.url(), token, trust).expect("kubeconfig");
        let out = k.run(&["get", "namespaces"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: kubectl succeeded");
        assert!(
            err.contains("x509: certificate signed by unknown authority"),
            "{what}: {err}"
        );
    }
    kubeconfig::write_with(k.kubeconfig(), sim.url(), token, Trust::Insecure).expect("kubeconfig");
    let ns = k.ok(&["get", "namespaces", "-o", "name"]);
    assert!(ns.contains("namespace/default"), "{ns}");
}

#[test]
fn the_binary_serves_tls_and_writes_the_ca_into_its_kubeconfig() {
    let dir = tempfile::tempdir().expect("tmp");
    let kc = dir.path().join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .args(["--tls", "--h2-max-streams", "7", "--kubeconfig"])
        .arg(&kc)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    let url = line.trim().to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let written = std::fs::read_to_string(&kc).expect("kubeconfig");
    assert!(written.contains(&format!("server: {url}")), "{written}");
    assert!(
        written.contains("certificate-authority-data: "),
        "{written}"
    );
    let out = Command::new(kube_sim::testkit::kubectl_path())
        .arg("--kubeconfig")
        .arg(&kc)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["get", "namespaces", "-o", "name"])
        .env("HOME", dir.path())
        .output()
        .expect("kubectl");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("namespace/default"));
}

#[test]
fn closing_connections_ends_open_watches_and_new_connections_are_accepted() {
    // HTTP/2 over TLS: kubectl's watch.
    let sim = start_tls();
    let k = Kubectl::new(&sim);
    let mut child = k.spawn(&["get", "configmaps", "-w", "-o", "name"]);
    let lines = Lines::of(&mut child);
    assert!(
        wait_until(Duration::from_secs(10), || !h2_connections(&sim).is_empty()
            && sim
                .admin("GET", "/_sim/watches")
                .map(|w| w["count"] == 1)
                .unwrap_or(false)),
        "kubectl's watch opened"
    );
    k.ok(&["create", "configmap", "before"]);
    assert_eq!(
        lines.next(Duration::from_secs(10)).as_deref(),
        Some("configmap/before")
    );
    let closed = sim.admin("POST", "/_sim/close-connections").expect("close");
    assert!(
        closed["closed"].as_u64().is_some_and(|n| n >= 1),
        "{closed}"
    );
    // kubectl get -w does not re-watch: its stream ended, so it exits.
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > end {
            break None;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    if status.is_none() {
        let _ = child.kill();
    }
    let err = stderr_of(&mut child);
    assert!(status.is_some(), "kubectl's watch did not end: {err}");
    assert!(
        wait_until(Duration::from_secs(10), || sim
            .admin("GET", "/_sim/watches")
            .map(|w| w["count"] == 0)
            .unwrap_or(false)),
        "the watch task ended too"
    );
    assert_eq!(
        sim.admin("GET", "/_sim/connections").expect("connections")["count"],
        0
    );
    // New connections are served as before.
    let ns = k.ok(&["get", "namespaces", "-o", "name"]);
    assert!(ns.contains("namespace/default"), "{ns}");

    // HTTP/1.1, plain: the chunked stream stops without its last chunk.
    let plain = start();
    let mut w = RawWatch::open(
        plain.addr(),
        "/api/v1/namespaces/default/configmaps?watch=true",
    );
    assert_eq!(w.status, 200);
    let conns = plain
        .admin("GET", "/_sim/connections")
        .expect("connections");
    assert_eq!(conns["count"], 1, "{conns}");
    assert_eq!(conns["connections"][0]["protocol"], "http/1.1");
    assert_eq!(conns["connections"][0]["tls"], false);
    assert_eq!(conns["connections"][0]["inFlight"], 1);
    assert_eq!(
        plain
            .admin("POST", "/_sim/close-connections")
            .expect("close")["closed"],
        1
    );
    assert!(w.next().is_none());
    assert!(w.ended, "the stream ended rather than timing out");
}

// ---- hyper's HTTP/2 client ---------------------------------------------------------------

/// One HTTP/2 connection: over TLS (ALPN h2) when the server serves TLS, h2c prior knowledge
/// otherwise.
struct H2 {
    send: SendRequest<Full<Bytes>>,
    base: String,
}

impl H2 {
    async fn connect(sim: &SimHandle) -> H2 {
        let tcp = tokio::net::TcpStream::connect(sim.addr())
            .await
            .expect("connect");
        let send = match sim.ca_pem() {
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    roots.add(cert.expect("CA PEM")).expect("CA");
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .expect("versions")
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                let name = ServerName::IpAddress(sim.addr().ip().into());
                let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
                    .connect(name, tcp)
                    .await
                    .expect("TLS handshake");
                assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
                let (send, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                        .await
                        .expect("h2 handshake");
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                send
            }
            None => {
                let (send, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                        .await
                        .expect("h2c handshake");
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                send
            }
        };
        let scheme = if sim.ca_pem().is_some() {
            "https"
        } else {
            "http"
        };
        let mut h2 = H2 {
            send,
            base: format!("{scheme}://{}", sim.addr()),
        };
        // A first exchange, so the server's SETTINGS (its stream limit) have arrived before a
        // test opens streams.
        let (status, _) = h2.json(Method::GET, "/version", None).await;
        assert_eq!(status, StatusCode::OK);
        h2
    }

    fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("accept", "application/json");
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Full::new(Bytes::from(v.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        b.body(body).expect("request")
    }

    /// Starts a request; the response future runs on its own task.
    fn spawn(
        &mut self,
        method: Method,
        path: &str,
    ) -> tokio::task::JoinHandle<hyper::Result<http::Response<Incoming>>> {
        let req = self.request(method, path, None);
        let mut send = self.send.clone();
        tokio::spawn(async move { send.send_request(req).await })
    }

    /// A complete request: status and JSON body.
    async fn json(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let resp = self.response(method, path, body).await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn response(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> http::Response<Incoming> {
        let req = self.request(method, path, body);
        assert_eq!(
            req.version(),
            http::Version::HTTP_11,
            "hyper sets h2 itself"
        );
        let resp = tokio::time::timeout(Duration::from_secs(10), self.send.send_request(req))
            .await
            .expect("a response within 10 s")
            .expect("response");
        assert_eq!(resp.version(), http::Version::HTTP_2);
        resp
    }
}

/// A watch response read DATA frame by DATA frame.
struct H2Watch(Incoming);

impl H2Watch {
    /// The next non-empty DATA frame: Some(bytes), or None at the end of the stream (hyper
    /// ends a body with an empty END_STREAM frame). Panics after 10 s.
    async fn frame(&mut self) -> Option<Bytes> {
        loop {
            let f = tokio::time::timeout(Duration::from_secs(10), self.0.frame())
                .await
                .expect("a frame within 10 s")?
                .expect("no stream error");
            if let Ok(data) = f.into_data()
                && !data.is_empty()
            {
                return Some(data);
            }
        }
    }

    /// The next frame, which must hold exactly one event line.
    async fn event(&mut self) -> Value {
        let data = self.frame().await.expect("an event, not the end");
        assert_eq!(data.iter().filter(|b| **b == b'\n').count(), 1, "{data:?}");
        assert!(data.ends_with(b"\n"));
        serde_json::from_slice(&data).expect("JSON")
    }
}

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_h2_max_streams_wait_for_a_free_one() {
    let sim = start_with(Options {
        tls: true,
        h2_max_streams: 2,
        ..Options::default()
    });
    let mut h2 = H2::connect(&sim).await;
    let watch = "/api/v1/namespaces/default/configmaps?watch=true";
    let first = h2.spawn(Method::GET, watch);
    let second = h2.spawn(Method::GET, watch);
    let first = first.await.expect("task").expect("first watch");
    let second = second.await.expect("task").expect("second watch");
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    // Both streams are taken: a third request on the connection waits.
    let mut third = h2.spawn(Method::GET, "/version");
    assert!(
        tokio::time::timeout(Duration::from_millis(700), &mut third)
            .await
            .is_err(),
        "the third stream was opened beyond the limit"
    );
    let conns = tokio::task::spawn_blocking(move || {
        let c = h2_connections(&sim);
        (sim, c)
    });
    let (sim, conns) = conns.await.expect("admin");
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert_eq!(conns[0]["inFlight"], 2, "{conns:?}");
    assert_eq!(
        conns[0]["requests"], 3,
        "/version and the two watches: {conns:?}"
    );
    // Ending one watch (dropping its body resets the stream) frees a stream for the third.
    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("the third request went out once a stream was free")
        .expect("task")
        .expect("response");
    assert_eq!(third.status(), StatusCode::OK);
    drop(second);
    drop(sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_lists_and_faults_work_over_h2() {
    let sim = start_tls();
    let mut h2 = H2::connect(&sim).await;
    let path = "/api/v1/namespaces/default/configmaps";
    for i in 0..5 {
        let (status, _) = h2
            .json(Method::POST, path, Some(&cm(&format!("cm{i}"))))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }

    // A paged list.
    let mut names = Vec::new();
    let mut cont = String::new();
    loop {
        let (status, page) = h2
            .json(
                Method::GET,
                &format!("{path}?limit=2&continue={cont}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        for item in page["items"].as_array().expect("items") {
            names.push(item["metadata"]["name"].as_str().expect("name").to_string());
        }
        match page["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => cont = c.to_string(),
            _ => break,
        }
    }
    assert_eq!(names, ["cm0", "cm1", "cm2", "cm3", "cm4"]);

    // A streaming list: the initial events, the end bookmark, then each change as a DATA frame
    // of its own as soon as it is committed.
    let resp = h2
        .response(
            Method::GET,
            &format!("{path}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"),
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("transfer-encoding").is_none());
    let mut w = H2Watch(resp.into_body());
    let mut initial = Vec::new();
    while initial.len() < 6 {
        let data = w.frame().await.expect("initial events");
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            initial.push(serde_json::from_slice::<Value>(line).expect("JSON"));
        }
    }
    assert!(
        initial[..5].iter().all(|e| e["type"] == "ADDED"),
        "{initial:?}"
    );
    assert_eq!(initial[5]["type"], "BOOKMARK");
    assert_eq!(
        initial[5]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    for name in ["late1", "late2"] {
        let started = Instant::now();
        let (status, _) = h2.json(Method::POST, path, Some(&cm(name))).await;
        assert_eq!(status, StatusCode::CREATED);
        let ev = w.event().await;
        assert_eq!(ev["type"], "ADDED");
        assert_eq!(ev["object"]["metadata"]["name"], name);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the event came promptly"
        );
    }

    // Injected failures apply over h2 too.
    let sim = tokio::task::spawn_blocking(move || {
        sim.admin("POST", "/_sim/fail?code=503&count=1&retry_after=3")
            .expect("fail");
        sim
    })
    .await
    .expect("admin");
    let resp = h2.response(Method::GET, path, None).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("3")
    );
    let (status, _) = h2.json(Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK);

    // drop-watches ends the stream cleanly (END_STREAM, not a reset) and the connection stays.
    let sim = tokio::task::spawn_blocking(move || {
        let closed = sim.admin("POST", "/_sim/drop-watches").expect("drop");
        assert_eq!(closed["closed"], 1);
        sim
    })
    .await
    .expect("admin");
    let last = w.frame().await;
    assert!(last.is_none(), "{last:?}");
    let (status, _) = h2.json(Method::GET, "/version", None).await;
    assert_eq!(status, StatusCode::OK);
    drop(sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_connections_take_h2c_prior_knowledge() {
    let sim = start();
    let mut h2 = H2::connect(&sim).await;
    let (status, v) = h2.json(Method::GET, "/api", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["kind"], "APIVersions");
    let reqs = tokio::task::spawn_blocking(move || requests(&sim))
        .await
        .expect("admin");
    assert!(reqs.iter().all(|r| r["protocol"] == "h2"), "{reqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_client_lists_over_tls_with_the_written_kubeconfig() {
    let sim = start_tls();
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&path).expect("kubeconfig");
    let kc = kube::config::Kubeconfig::read_from(&path).expect("read");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(cfg).expect("client");
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    let list = api.list(&Default::default()).await.expect("list over TLS");
    assert_eq!(list.items.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kube_watcher_over_tls_resumes_after_its_connection_is_cut() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::{self, Event};

    let sim = Arc::new(start_tls());
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&path).expect("kubeconfig");
    let kc = kube::config::Kubeconfig::read_from(&path).expect("read");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let api: kube::Api<ConfigMap> =
        kube::Api::namespaced(kube::Client::try_from(cfg).expect("client"), "default");
    let admin = |method: &'static str, path: &'static str| {
        let sim = sim.clone();
        async move {
            tokio::task::spawn_blocking(move || sim.admin(method, path).expect("admin"))
                .await
                .expect("join")
        }
    };

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut stream = Box::pin(watcher::watcher(api.clone(), watcher::Config::default()));
    tokio::spawn(async move {
        while let Some(e) = stream.next().await {
            let d = match e {
                Ok(Event::Apply(o)) => format!("apply:{}", o.metadata.name.unwrap_or_default()),
                Ok(Event::InitDone) => "done".into(),
                Ok(_) => continue,
                Err(_) => "err".into(),
            };
            if tx.send(d).is_err() {
                return;
            }
        }
    });
    // The next event other than an error (a cut stream may surface as one before the re-watch).
    let mut next = async || loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(e)) if e == "err" => continue,
            Ok(Some(e)) => return e,
            other => return format!("{other:?}"),
        }
    };
    let create = |name: &'static str| {
        let api = api.clone();
        async move {
            let cm: ConfigMap = serde_json::from_value(cm(name)).expect("a ConfigMap");
            // A pooled connection may have been cut a moment ago: retry once or twice.
            for _ in 0..3 {
                if api.create(&Default::default(), &cm).await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("creating {name} failed");
        }
    };

    assert_eq!(next().await, "done");
    create("before").await;
    assert_eq!(next().await, "apply:before");
    assert_eq!(admin("GET", "/_sim/watches").await["count"], 1);
    let closed = admin("POST", "/_sim/close-connections").await;
    assert!(
        closed["closed"].as_u64().is_some_and(|n| n >= 1),
        "{closed}"
    );
    create("after").await;
    assert_eq!(next().await, "apply:after");
    let reqs = admin("GET", "/_sim/requests").await;
    let watches: Vec<&Value> = reqs["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter(|r| {
            r["query"]
                .as_str()
                .is_some_and(|q| q.contains("watch=true"))
        })
        .collect();
    assert!(watches.len() >= 2, "the watcher re-watched: {watches:?}");
    assert!(
        watches[1]["query"]
            .as_str()
            .is_some_and(|q| q.contains("resourceVersion=")),
        "from its last RV: {watches:?}"
    );
}
