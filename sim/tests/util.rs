//! Shared helpers: starting servers and reading raw watch streams line by line.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use kube_sim::{Options, SimHandle};
use serde_json::Value;

/// A server with default options.
pub fn start() -> SimHandle {
    SimHandle::start(Options::default()).expect("kube-sim starts")
}

/// A server with custom options.
pub fn start_with(opts: Options) -> SimHandle {
    SimHandle::start(opts).expect("kube-sim starts")
}

/// GET returning (status, JSON body).
pub fn get_json(sim: &SimHandle, path: &str) -> (u16, Value) {
    let r = kube_sim::request(sim.addr(), "GET", path, &[], b"").expect("request");
    (r.status, r.json().unwrap_or(Value::Null))
}

/// Sends a request with a JSON body and returns (status, JSON body).
pub fn send_json(
    sim: &SimHandle,
    method: &str,
    path: &str,
    content_type: &str,
    body: &Value,
) -> (u16, Value) {
    let b = body.to_string();
    let r = kube_sim::request(
        sim.addr(),
        method,
        path,
        &[("Content-Type", content_type)],
        b.as_bytes(),
    )
    .expect("request");
    (r.status, r.json().unwrap_or(Value::Null))
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    f()
}

/// A raw watch: an HTTP/1.1 GET whose chunked body is split into lines.
pub struct RawWatch {
    reader: BufReader<TcpStream>,
    pending: Vec<u8>,
    /// Response status.
    pub status: u16,
    /// Whether the server ended the body (a silent stream that hit the 10 s read timeout
    /// has not ended).
    pub ended: bool,
}

impl RawWatch {
    /// Opens a watch on `path_and_query`.
    pub fn open(addr: SocketAddr, path_and_query: &str) -> RawWatch {
        let mut s = TcpStream::connect(addr).expect("connect");
        write!(
            s,
            "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n"
        )
        .expect("write");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut reader = BufReader::new(s);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).expect("status line");
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).expect("header");
            if h == "\r\n" || h.is_empty() {
                break;
            }
        }
        RawWatch {
            reader,
            pending: Vec::new(),
            status,
            ended: false,
        }
    }

    fn read_chunk(&mut self) -> bool {
        let mut size_line = String::new();
        match self.reader.read_line(&mut size_line) {
            Ok(0) => {
                self.ended = true;
                return false;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => {
                self.ended = true;
                return false;
            }
            Ok(_) => {}
        }
        let Ok(size) = usize::from_str_radix(size_line.trim(), 16) else {
            self.ended = true;
            return false;
        };
        if size == 0 {
            self.ended = true;
            return false;
        }
        let mut buf = vec![0; size + 2];
        if self.reader.read_exact(&mut buf).is_err() {
            self.ended = true;
            return false;
        }
        buf.truncate(size);
        self.pending.extend_from_slice(&buf);
        true
    }

    /// The next line as JSON, or None when the stream ended or stayed silent for 10 s.
    pub fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).expect("each line is one JSON event"));
            }
            if self.ended || !self.read_chunk() {
                return None;
            }
        }
    }

    /// How long `next` waits for a line before giving up (10 s unless changed).
    pub fn read_timeout(&mut self, timeout: Duration) {
        self.reader
            .get_ref()
            .set_read_timeout(Some(timeout))
            .expect("timeout");
    }

    /// Reads `n` events (fewer if the stream ends first).
    pub fn take(&mut self, n: usize) -> Vec<Value> {
        (0..n).map_while(|_| self.next()).collect()
    }
}
