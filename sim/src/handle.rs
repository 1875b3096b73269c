//! [`SimHandle`]: a server running on its own thread and multi-thread tokio runtime, usable
//! from synchronous and asynchronous tests alike, plus a tiny blocking HTTP client for the
//! admin API.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::kubeconfig;
use crate::options::Options;
use crate::server;

/// A running kube-sim server; dropping it shuts the server down.
#[derive(Debug)]
pub struct SimHandle {
    url: String,
    addr: SocketAddr,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// Starts a server and returns once it is listening.
    pub fn start(opts: Options) -> anyhow::Result<SimHandle> {
        let (ready_tx, ready_rx) =
            std::sync::mpsc::channel::<anyhow::Result<(SocketAddr, CancellationToken)>>();
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
                            let _ = ready_tx.send(Ok((addr, sim.shutdown.clone())));
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
        let (addr, shutdown) = ready_rx
            .recv()
            .context("the kube-sim thread ended before listening")??;
        Ok(SimHandle {
            url: format!("http://{addr}"),
            addr,
            shutdown,
            thread: Some(thread),
        })
    }

    /// The server URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Writes a kubeconfig for this server (token `kube-sim`).
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        kubeconfig::write(path, &self.url, kubeconfig::DEFAULT_TOKEN)
    }

    /// Calls an admin endpoint (`admin("POST", "/_sim/compact")`) and returns its JSON reply;
    /// a non-2xx reply is an error carrying the body.
    pub fn admin(&self, method: &str, path_and_query: &str) -> anyhow::Result<serde_json::Value> {
        let r = request(self.addr, method, path_and_query, &[], b"")?;
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

/// A blocking HTTP/1.1 request over a fresh connection (`Connection: close`), read to the
/// end (so not for watches that stay open).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<RawResponse> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
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
    s.read_to_end(&mut raw)?;
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
