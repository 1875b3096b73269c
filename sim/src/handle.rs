//! [`SimHandle`]: a server running on its own thread and multi-thread tokio runtime, usable
//! from synchronous and asynchronous tests alike, plus a tiny blocking HTTP/1.1 client (over
//! TLS when the server serves it) for the admin API.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};
use rustls::pki_types::ServerName;
use tokio_util::sync::CancellationToken;

use crate::kubeconfig::{self, Trust};
use crate::options::Options;
use crate::server;
use crate::tls;

/// A running kube-sim server; dropping it shuts the server down.
#[derive(Debug)]
pub struct SimHandle {
    url: String,
    addr: SocketAddr,
    ca_pem: Option<String>,
    /// The blocking client's TLS configuration (trusting `ca_pem`).
    client_tls: Option<Arc<rustls::ClientConfig>>,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

/// What the server thread reports once listening.
struct Ready {
    url: String,
    addr: SocketAddr,
    ca_pem: Option<String>,
    shutdown: CancellationToken,
}

impl SimHandle {
    /// Starts a server and returns once it is listening.
    pub fn start(opts: Options) -> anyhow::Result<SimHandle> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<Ready>>();
        let thread = std::thread::Builder::new()
            .name("kube-sim".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .thread_name("kube-sim-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async move {
                    match server::bind(opts).await {
                        Ok((sim, listener, addr)) => {
                            let _ = ready_tx.send(Ok(Ready {
                                url: server::url(&sim, addr),
                                addr,
                                ca_pem: sim.tls.as_ref().map(|t| t.ca_pem.clone()),
                                shutdown: sim.shutdown.clone(),
                            }));
                            server::serve(sim, listener).await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(2));
            })
            .context("spawning the kube-sim thread")?;
        let ready = ready_rx
            .recv()
            .context("the kube-sim thread ended before listening")??;
        let client_tls = match &ready.ca_pem {
            Some(pem) => Some(tls::client_config(pem)?),
            None => None,
        };
        Ok(SimHandle {
            url: ready.url,
            addr: ready.addr,
            ca_pem: ready.ca_pem,
            client_tls,
            shutdown: ready.shutdown,
            thread: Some(thread),
        })
    }

    /// The server URL (`http://127.0.0.1:PORT`, or `https://…` under TLS).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) that signed the server's certificate, when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Writes a kubeconfig for this server (token `kube-sim`; under TLS it carries the CA as
    /// `certificate-authority-data`).
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        let trust = match &self.ca_pem {
            Some(pem) => Trust::Ca(pem),
            None => Trust::System,
        };
        kubeconfig::write_with(path, &self.url, kubeconfig::DEFAULT_TOKEN, trust)
    }

    /// A blocking HTTP/1.1 request like [`request`], over TLS (trusting the server's CA) when
    /// the server serves TLS.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<RawResponse> {
        let Some(cfg) = &self.client_tls else {
            return request(self.addr, method, path, headers, body);
        };
        let tcp = connect(self.addr)?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        let conn =
            rustls::ClientConnection::new(cfg.clone(), name).context("starting the TLS client")?;
        exchange(
            rustls::StreamOwned::new(conn, tcp),
            self.addr,
            method,
            path,
            headers,
            body,
        )
    }

    /// Calls an admin endpoint (`admin("POST", "/_sim/compact")`) and returns its JSON reply;
    /// a non-2xx reply is an error carrying the body.
    pub fn admin(&self, method: &str, path_and_query: &str) -> anyhow::Result<serde_json::Value> {
        let r = self.request(method, path_and_query, &[], b"")?;
        if !(200..300).contains(&r.status) {
            bail!(
                "{method} {path_and_query} -> {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
        serde_json::from_slice(&r.body)
            .with_context(|| format!("{method} {path_and_query}: reply is not JSON"))
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A complete HTTP response read by [`request`].
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Headers (names lower-cased), in order.
    pub headers: Vec<(String, String)>,
    /// Body, de-chunked.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

/// A blocking HTTP/1.1 request over a fresh plain connection (`Connection: close`), read to
/// the end (so not for watches that stay open). [`SimHandle::request`] also speaks TLS.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<RawResponse> {
    exchange(connect(addr)?, addr, method, path, headers, body)
}

fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    Ok(s)
}

/// Writes the request on `s` and reads the response to EOF.
fn exchange(
    mut s: impl Read + Write,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<RawResponse> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        // A TLS peer that closed without close_notify after a complete response.
        Err(e) if e.kind() == ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e).context("reading the response"),
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed status line")?;
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body)?;
    }
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk")?;
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..line_end]).trim(), 16)?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(b.get(..size).context("short chunk")?);
        b = b.get(size + 2..).context("short chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").expect("ok"),
            b"abcde"
        );
        assert!(dechunk(b"zz\r\n").is_err());
    }
}
