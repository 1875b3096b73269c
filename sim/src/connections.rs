//! Open client connections (`GET /_sim/connections`, `POST /_sim/close-connections`): each
//! one's protocol and in-flight requests (HTTP/2 streams), and a switch that cuts them all.
//! The server registers a connection when it accepts it; nothing here touches a socket.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::Version;
use http_body::{Frame, SizeHint};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::object::rfc3339_nanos;

/// The application protocol of a connection, named as in ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Protocol {
    /// Not known yet: a plain connection before its first request.
    Unknown = 0,
    /// HTTP/1.0 (plain connections only).
    Http10 = 1,
    /// HTTP/1.1.
    Http11 = 2,
    /// HTTP/2 (ALPN `h2`, or h2c prior knowledge on a plain connection).
    H2 = 3,
}

impl Protocol {
    /// The protocol a request arrived with.
    pub fn of(v: Version) -> Protocol {
        match v {
            Version::HTTP_2 => Protocol::H2,
            Version::HTTP_10 | Version::HTTP_09 => Protocol::Http10,
            _ => Protocol::Http11,
        }
    }

    /// The name used in the admin API and the request log (`http/1.1`, `h2`); None if unknown.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Protocol::Unknown => None,
            Protocol::Http10 => Some("http/1.0"),
            Protocol::Http11 => Some("http/1.1"),
            Protocol::H2 => Some("h2"),
        }
    }

    fn from_u8(v: u8) -> Protocol {
        match v {
            1 => Protocol::Http10,
            2 => Protocol::Http11,
            3 => Protocol::H2,
            _ => Protocol::Unknown,
        }
    }
}

/// One open client connection.
#[derive(Debug)]
pub struct Conn {
    /// Sequence number (1-based, never reused).
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// When it was accepted.
    pub started: SystemTime,
    /// A [`Protocol`] as u8: set from ALPN under TLS, from the requests otherwise.
    protocol: AtomicU8,
    /// Requests (streams) whose response has not been completely sent yet.
    in_flight: AtomicU64,
    /// Requests received so far.
    requests: AtomicU64,
    /// Cancelled to cut the connection.
    cut: CancellationToken,
}

impl Conn {
    /// The protocol, as far as known.
    pub fn protocol(&self) -> Protocol {
        Protocol::from_u8(self.protocol.load(Ordering::Relaxed))
    }

    /// Records the protocol (ALPN, or a request's version).
    pub fn set_protocol(&self, p: Protocol) {
        self.protocol.store(p as u8, Ordering::Relaxed);
    }

    /// Completes when the connection is to be cut.
    pub fn cut(&self) -> &CancellationToken {
        &self.cut
    }

    /// Counts a request as in flight until the returned guard is dropped (the guard rides on
    /// the response body, so a watch stays in flight while it streams).
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn describe(&self) -> Value {
        json!({
            "id": self.id,
            "peer": self.peer.to_string(),
            "tls": self.tls,
            "protocol": self.protocol().name(),
            "inFlight": self.in_flight.load(Ordering::Relaxed),
            "requests": self.requests.load(Ordering::Relaxed),
            "started": rfc3339_nanos(self.started),
        })
    }
}

/// A request in flight on a connection; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request counted as in flight until hyper drops it: after the
/// last byte was written, or when the client reset the stream or the connection went away. It
/// also counts the body bytes handed to hyper as they stream (the request log's `bytes`).
#[derive(Debug)]
pub struct Counted<B> {
    body: B,
    _in_flight: InFlight,
    bytes: Option<Arc<AtomicU64>>,
}

impl<B> Counted<B> {
    /// Wraps `body`; `bytes`, when given, grows by the length of each data frame sent.
    pub fn new(body: B, in_flight: InFlight, bytes: Option<Arc<AtomicU64>>) -> Counted<B> {
        Counted {
            body,
            _in_flight: in_flight,
            bytes,
        }
    }
}

impl<B> http_body::Body for Counted<B>
where
    B: http_body::Body<Data = Bytes, Error = Infallible> + Unpin,
{
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let (Some(bytes), Poll::Ready(Some(Ok(frame)))) = (&this.bytes, &polled)
            && let Some(data) = frame.data_ref()
        {
            bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The open client connections of one server.
#[derive(Debug, Default)]
pub struct Connections {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
}

/// Keeps a connection listed until dropped (when its task ends).
#[derive(Debug)]
pub struct Registration<'a> {
    conns: &'a Connections,
    /// The connection.
    pub conn: Arc<Conn>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.conns.open.lock().remove(&self.conn.id);
    }
}

impl Connections {
    /// Lists a newly accepted connection.
    pub fn register(&self, peer: SocketAddr, tls: bool) -> Registration<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let conn = Arc::new(Conn {
            id,
            peer,
            tls,
            started: SystemTime::now(),
            protocol: AtomicU8::new(Protocol::Unknown as u8),
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            cut: CancellationToken::new(),
        });
        self.open.lock().insert(id, conn.clone());
        Registration { conns: self, conn }
    }

    /// `GET /_sim/connections`: every open connection except `asking` (the admin request's own).
    pub fn describe(&self, asking: u64) -> Value {
        let list: Vec<Value> = self
            .open
            .lock()
            .values()
            .filter(|c| c.id != asking)
            .map(|c| c.describe())
            .collect();
        json!({"count": list.len(), "connections": list})
    }

    /// Cuts every open connection except `asking`, whose reply still has to get out; returns
    /// how many were cut.
    pub fn cut_all(&self, asking: u64) -> usize {
        let open = self.open.lock();
        let mut n = 0;
        for c in open.values().filter(|c| c.id != asking) {
            if !c.cut.is_cancelled() {
                c.cut.cancel();
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:40000".parse().expect("address")
    }

    #[test]
    fn in_flight_counts_until_the_guard_drops_and_listing_until_the_registration_drops() {
        let conns = Connections::default();
        let a = conns.register(peer(), true);
        let b = conns.register(peer(), false);
        a.conn.set_protocol(Protocol::H2);
        let g1 = a.conn.begin();
        let g2 = a.conn.begin();
        let v = conns.describe(b.conn.id);
        assert_eq!(v["count"], 1);
        assert_eq!(v["connections"][0]["protocol"], "h2");
        assert_eq!(v["connections"][0]["inFlight"], 2);
        drop(g1);
        drop(g2);
        let v = conns.describe(b.conn.id);
        assert_eq!(v["connections"][0]["inFlight"], 0);
        assert_eq!(v["connections"][0]["requests"], 2);
        assert_eq!(conns.describe(0)["connections"][1]["protocol"], Value::Null);
        drop(a);
        assert_eq!(conns.describe(0)["count"], 1);
    }

    #[test]
    fn cutting_spares_the_asking_connection() {
        let conns = Connections::default();
        let a = conns.register(peer(), false);
        let b = conns.register(peer(), false);
        assert_eq!(conns.cut_all(b.conn.id), 1);
        assert!(a.conn.cut().is_cancelled());
        assert!(!b.conn.cut().is_cancelled());
        // Already cut, not counted again.
        assert_eq!(conns.cut_all(b.conn.id), 0);
    }
}
