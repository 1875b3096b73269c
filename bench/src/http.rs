//! A minimal blocking HTTP/1.1 client over one keep-alive TCP connection, for kube-sim's admin
//! API and the plain Kubernetes writes the benchmarks make (namespace creates, labels, PATCHes).
//! Thousands of small requests go through one connection, so setting up a case costs little
//! and no `curl` process is started per write. Over `https://` (kube-sim `--tls`) the
//! connection is TLS, trusting the CA given (HTTP/1.1 by ALPN).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// A reply: status and body.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON, or an error naming the request.
    pub fn json(&self, what: &str) -> Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "{what}: reply is not JSON: {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        })
    }
}

/// A plain or TLS connection.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

type Conn = BufReader<Box<dyn Stream>>;

/// One server (`host:port`), one connection reused across requests.
pub struct Http {
    host: String,
    scheme: &'static str,
    tls: Option<Arc<rustls::ClientConfig>>,
    conn: Option<Conn>,
}

impl Http {
    /// A client for `http://host:port` (the URL kube-sim prints).
    pub fn new(url: &str) -> Result<Self> {
        Self::with_ca(url, None)
    }

    /// A client for `http://host:port`, or `https://host:port` trusting the PEM CA `ca`.
    pub fn with_ca(url: &str, ca: Option<&[u8]>) -> Result<Self> {
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
            ("https", rest)
        } else {
            (
                "http",
                url.strip_prefix("http://")
                    .ok_or_else(|| anyhow!("not an http(s):// URL: {url}"))?,
            )
        };
        let host = rest.trim_end_matches('/').to_string();
        let tls = if scheme == "https" {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let ca = ca.ok_or_else(|| anyhow!("{url}: https needs a CA"))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca) {
                roots.add(cert.context("the CA is not PEM")?)?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(Arc::new(config))
        } else {
            None
        };
        Ok(Self {
            host,
            scheme,
            tls,
            conn: None,
        })
    }

    /// Sends one request; retries once on a fresh connection if a reused one was closed.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Reply> {
        let reused = self.conn.is_some();
        match self.try_request(method, path, content_type, body) {
            Ok(r) => Ok(r),
            Err(_) if reused => {
                self.conn = None;
                self.try_request(method, path, content_type, body)
            }
            Err(e) => Err(e),
        }
        .with_context(|| format!("{method} {}://{}{path}", self.scheme, self.host))
    }

    /// A request whose reply must be 2xx JSON.
    pub fn json(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Value> {
        let r = self.request(method, path, content_type, body)?;
        if !(200..300).contains(&r.status) {
            bail!(
                "{method} {path}: HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body[..r.body.len().min(500)])
            );
        }
        r.json(&format!("{method} {path}"))
    }

    fn connect(&mut self) -> Result<&mut Conn> {
        if self.conn.is_none() {
            let s = TcpStream::connect(&self.host)
                .with_context(|| format!("connecting to {}", self.host))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(120)))?;
            let stream: Box<dyn Stream> = match &self.tls {
                None => Box::new(s),
                Some(config) => {
                    let name = self.host.rsplit_once(':').map_or(&*self.host, |(h, _)| h);
                    let name = rustls::pki_types::ServerName::try_from(
                        name.trim_start_matches('[')
                            .trim_end_matches(']')
                            .to_owned(),
                    )?;
                    let conn = rustls::ClientConnection::new(config.clone(), name)?;
                    Box::new(rustls::StreamOwned::new(conn, s))
                }
            };
            self.conn = Some(BufReader::with_capacity(1 << 16, stream));
        }
        self.conn.as_mut().ok_or_else(|| anyhow!("no connection"))
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Reply> {
        let host = self.host.clone();
        let conn = self.connect()?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str("\r\n");
        let s = conn.get_mut();
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let result = read_reply(conn, method == "HEAD");
        match result {
            Ok((reply, keep)) => {
                if !keep {
                    self.conn = None;
                }
                Ok(reply)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }
}

/// Reads one reply; the bool says whether the connection can be reused.
fn read_reply(r: &mut Conn, head_only: bool) -> Result<(Reply, bool)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        bail!("connection closed before the status line");
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {line:?}"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut keep = true;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            bail!("connection closed in the headers");
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "content-length" => length = v.parse().ok(),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "connection" => keep = !v.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    let mut body = Vec::new();
    if head_only || status == 204 || status == 304 {
    } else if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .with_context(|| format!("bad chunk size {line:?}"))?;
            if size == 0 {
                // Trailers end with an empty line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
        keep = false;
    }
    Ok((Reply { status, body }, keep))
}
