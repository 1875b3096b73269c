//! The `--metrics-addr` endpoint: `/metrics` (the watcher's [`Metrics`] in the OpenMetrics text
//! format), `/healthz` and `/readyz`, over HTTP/1.1 with hyper's server.
//!
//! - `/healthz` answers 200 while the process serves requests (the liveness probe: a faro whose
//!   runtime is wedged stops answering).
//! - `/readyz` answers 200 only once every initial listing has been written out and while no
//!   stream is forbidden, rejected or retrying after a failure; otherwise 503, with one line per
//!   reason in the body (`v1/secrets: forbidden: …`). Unlike readiness endpoints that always
//!   answer 200, it tells when the recorded set of changes is incomplete.
//!
//! The address is bound before faro connects to the cluster, so that a port in use or a
//! forbidden address is a usage error (exit 2) at once rather than a surprise later.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use faro::metrics::Metrics;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::exit::UsageError;

/// What `/metrics` answers with (OpenMetrics 1.0 text; Prometheus asks for it first).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Parses `HOST:PORT`, `PORT` or `:PORT`. A bare port listens on 127.0.0.1 only: metrics of
/// what changed in a cluster are not for every interface unless asked (`0.0.0.0:PORT`).
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let port_only = text.strip_prefix(':').unwrap_or(text);
    if !port_only.is_empty() && port_only.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = port_only
            .parse()
            .map_err(|_| format!("{text:?}: the port must be 0 to 65535"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    match text.rsplit_once(':') {
        Some(("localhost", port)) => port
            .parse::<u16>()
            .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
            .map_err(|_| format!("{text:?}: the port must be 0 to 65535")),
        _ => Err(format!(
            "{text:?} is not HOST:PORT with an IP address (e.g. 127.0.0.1:9090, 0.0.0.0:9090, [::1]:9090) or a port"
        )),
    }
}

/// A bound `--metrics-addr`.
#[derive(Debug)]
pub struct Endpoint {
    listener: std::net::TcpListener,
}

impl Endpoint {
    /// Binds the address now.
    pub fn bind(addr: SocketAddr) -> Result<Endpoint, UsageError> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| UsageError(format!("--metrics-addr {addr}: cannot listen: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| UsageError(format!("--metrics-addr {addr}: {e}")))?;
        Ok(Endpoint { listener })
    }

    /// Serves until the task is aborted. `written` is set once the initial listings are
    /// written out.
    pub fn serve(
        self,
        metrics: Metrics,
        written: Arc<AtomicBool>,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!("serving /metrics, /healthz and /readyz on http://{addr}");
        }
        let state = Arc::new(State { metrics, written });
        Ok(tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, say: wait a little rather than spin.
                        tracing::debug!("metrics endpoint: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.answer(&req)) }
                    });
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!("metrics endpoint: connection ended: {e}");
                    }
                });
            }
        }))
    }
}

struct State {
    metrics: Metrics,
    written: Arc<AtomicBool>,
}

impl State {
    fn answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "GET only\n".into(),
            );
        }
        match req.uri().path() {
            "/metrics" => {
                let mut body = String::new();
                match self.metrics.encode(&mut body) {
                    Ok(()) => reply(StatusCode::OK, OPENMETRICS, body),
                    Err(_) => reply(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain",
                        "encoding the metrics failed\n".into(),
                    ),
                }
            }
            "/healthz" | "/livez" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
            "/readyz" => {
                let (ready, body) = readiness(&self.metrics, self.written.load(Ordering::SeqCst));
                let code = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                reply(code, "text/plain; charset=utf-8", body)
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found: faro serves /metrics, /healthz and /readyz\n".into(),
            ),
        }
    }
}

/// Whether faro is ready, and the body that says why (not).
fn readiness(metrics: &Metrics, written: bool) -> (bool, String) {
    let problems = metrics.problems();
    let watches = metrics.watches();
    let count = |state: &str| {
        watches
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    };
    let total: usize = watches.iter().map(|(_, n)| n).sum();
    let mut body = String::new();
    if !written {
        body.push_str(&format!(
            "not ready: the initial listings are not all written yet ({} of {total} watches listing)\n",
            count("listing")
        ));
    }
    if !problems.is_empty() {
        body.push_str(&format!(
            "not ready: {} GVR(s) incomplete\n",
            problems.len()
        ));
        for p in &problems {
            body.push_str(p);
            body.push('\n');
        }
    }
    let ready = written && problems.is_empty();
    if ready {
        body.push_str(&format!("ready: {} watches running\n", count("watching")));
    }
    (ready, body)
}

fn reply(code: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_loopback_and_bad_ones_are_explained() {
        let local = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        for (text, want) in [
            ("9090", Ok(local(9090))),
            (":9090", Ok(local(9090))),
            ("localhost:9090", Ok(local(9090))),
            ("127.0.0.1:80", Ok(local(80))),
            ("0.0.0.0:9090", Ok("0.0.0.0:9090".parse().unwrap())),
            ("[::]:9090", Ok("[::]:9090".parse().unwrap())),
            ("70000", Err("the port must be 0 to 65535")),
            ("example.com:80", Err("is not HOST:PORT")),
            ("", Err("is not HOST:PORT")),
            ("1.2.3.4", Err("is not HOST:PORT")),
        ] {
            match (parse_addr(text), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                (got, want) => panic!("{text}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn a_port_in_use_is_a_usage_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = Endpoint::bind(taken.local_addr().unwrap()).unwrap_err();
        assert!(err.0.contains("cannot listen"), "{err}");
    }
}
