//! HTTP/2 to the API server: faro's own pool of hyper HTTP/2 connections under kube's layers.
//!
//! # Why not kube's default connector
//!
//! kube 5's client speaks HTTP/1.1 only (its hyper and hyper-rustls are built with `http1`
//! alone), so every request in flight holds a TCP+TLS connection of its own, and a watch holds
//! one for its whole life: `faro workload` with 1,000 workloads × 3 resources kept ~3,000
//! sockets open on both ends. kube-apiserver serves HTTP/2 (250 streams per connection by
//! default), and client-go multiplexes its watches over it. kube's HTTP/2 transport (kube PR #1823) is still
//! unmerged, and hyper-util's legacy pool would not do either: it keeps one HTTP/2 connection
//! per host and, when that connection reaches the server's SETTINGS_MAX_CONCURRENT_STREAMS,
//! queues further requests on it instead of opening another (hyper #2197, #3623), so the
//! 251st watch would hang.
//!
//! # What the pool does
//!
//! [`client`] stacks kube's own layers (base URI, auth with tokens and exec plugins, extra and
//! impersonation headers) on a [`Transport`], exactly as kube's `ClientBuilder` does, and wraps
//! it with `kube::Client::new`, so the rest of faro sees an ordinary `kube::Client`. TLS is
//! kube's `rustls::ClientConfig` from the same `Config` (root CAs, client certificates from the
//! kubeconfig or an exec plugin, `insecure-skip-tls-verify`), with `tls-server-name` as the
//! name verified and sent, and ALPN offering `h2` then `http/1.1`.
//!
//! - Each request takes a slot on a connection; the slot is held until the response body ends
//!   or is dropped (a watch's for its whole life). A connection takes requests up to the
//!   server's current SETTINGS_MAX_CONCURRENT_STREAMS, which hyper exposes (h2 holds the figure
//!   and updates it as SETTINGS frames arrive; it is read at every request); when every
//!   connection is full, one more is opened (one at a time, so a burst of 3,000 requests opens
//!   ceil(3000 / limit) connections, not 3,000). Requests fill the oldest connection with room
//!   first, which keeps the count at that minimum; a connection other than the oldest that has
//!   carried nothing for [`IDLE_TIMEOUT`] is closed.
//! - A new connection takes a single request until the server's SETTINGS are known (they come
//!   before any response; see [`SETTLE_TIMEOUT`]), so a burst never overfills a server whose
//!   limit is below hyper's initial assumption.
//! - Keep-alive PINGs ([`PING_INTERVAL`], [`PING_TIMEOUT`]) find a dead connection within 20 s
//!   even when no data flows; its streams then fail, and faro's streams resume each watch
//!   from its last resourceVersion on a connection that works. Connections that closed (GOAWAY,
//!   reset, PING timeout) leave the pool at the next request, and hyper's connection future is
//!   dropped as soon as it ends, so a request that raced the closing fails at once rather than
//!   waiting in a queue nobody reads.
//! - A failed connection attempt fails every request that waited for it (with the TLS or
//!   socket error as the innermost cause), rather than being retried once per waiting request.
//! - A server that picks `http/1.1` in ALPN is served by hyper-util's pool over kube's own
//!   connector, as kube's default client would (one connection per request in flight).
//!
//! Plain `http://`, a proxy, or [`ClusterOptions::http1`](crate::client::ClusterOptions::http1)
//! keep kube's default client altogether (the caller decides; see `client::connect`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http2;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use kube::Config;
use kube::client::{Body, ConfigExt};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tower::ServiceBuilder;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// hyper's assumption for SETTINGS_MAX_CONCURRENT_STREAMS until the server's SETTINGS arrive
/// (h2's default, the minimum RFC 9113 recommends). A server that sends no limit keeps it.
const INITIAL_MAX_STREAMS: usize = 100;

/// How long a new connection takes one request only while the server's limit is unknown. The
/// server's SETTINGS are the first frame it sends, and applied before any response, so this
/// only matters for a server that advertises exactly [`INITIAL_MAX_STREAMS`] (or none) and is
/// slow to answer the first request.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Interval of the keep-alive PINGs, sent also while no stream is open.
pub const PING_INTERVAL: Duration = Duration::from_secs(10);

/// How long a PING may go unanswered before the connection is closed and its streams fail.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection other than the oldest may stay without requests before the pool
/// closes it (hyper-util's legacy pool keeps idle connections as long).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Per-stream flow-control window (hyper's default): how far one watch may run ahead of faro.
const STREAM_WINDOW: u32 = 2 << 20;

/// Connection flow-control window, as Go's HTTP/2 transport (client-go) sets it: large enough
/// that a few watches whose consumer is slow never stall the other streams on the connection
/// (each is still bounded by [`STREAM_WINDOW`]).
const CONNECTION_WINDOW: u32 = 1 << 30;

/// A `kube::Client` over faro's HTTP/2 pool, with kube's layers from `config` (see the module
/// docs). Makes no connection yet.
pub fn client(config: &Config) -> Result<kube::Client, kube::Error> {
    let transport = Transport::new(config)?;
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .service(transport);
    Ok(kube::Client::new(service, config.default_namespace.clone()))
}

/// The pool as a tower service: `Request<kube Body>` → `Response<TrackedBody>`.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    state: Mutex<State>,
    /// Woken when a slot is freed, a connection is ready or settled, an attempt ends or a
    /// connection closes.
    changed: Notify,
    /// For a server that chose HTTP/1.1: kube's own connector under hyper-util's pool.
    http1: hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>,
    next_id: AtomicU64,
}

/// Where and how to connect.
struct Target {
    /// Host for the TCP connection (no IPv6 brackets) and its port.
    host: String,
    port: u16,
    /// Whom the certificate must name: `tls-server-name`, else the URL's host.
    server_name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Option<Duration>,
}

#[derive(Default)]
struct State {
    conns: Vec<Arc<Conn>>,
    /// A connection attempt is running.
    connecting: bool,
    /// Attempts finished so far, and the error of the last one if it failed.
    attempts: u64,
    failure: Option<(u64, ConnectError)>,
    /// The server chose HTTP/1.1: every request goes to `Inner::http1`.
    http1: bool,
}

/// One HTTP/2 connection of the pool.
struct Conn {
    id: u64,
    send: http2::SendRequest<Body>,
    /// hyper's connection future, run by a [`Driver`] task; shared to read the server's
    /// current SETTINGS_MAX_CONCURRENT_STREAMS, which hyper's h2 task (not this future)
    /// updates as SETTINGS frames arrive.
    connection: SharedConnection,
    in_flight: AtomicUsize,
    /// Since when `in_flight` has been 0 (`None` while it is not).
    idle_since: Mutex<Option<Instant>>,
    /// The limit is the server's: a figure other than [`INITIAL_MAX_STREAMS`] was read, a
    /// response arrived (SETTINGS are applied before any), or [`SETTLE_TIMEOUT`] passed.
    settled: AtomicBool,
    closed: AtomicBool,
}

/// `None` once the connection ended: dropping hyper's future drops its dispatch queue, so a
/// request sent in the meantime fails at once instead of waiting forever in a queue nobody
/// reads.
type SharedConnection = Arc<Mutex<Option<Pin<Box<H2Connection>>>>>;

impl Conn {
    fn idle_for(&self, limit: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && lock(&self.idle_since).is_some_and(|since| since.elapsed() >= limit)
    }

    fn usable(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && !self.send.is_closed()
    }

    /// The server's current stream limit, as h2 holds it.
    fn limit(&self) -> usize {
        lock(&self.connection)
            .as_ref()
            .map_or(0, |c| c.current_max_send_streams())
    }

    /// Whether the limit is known, settling the connection when the figure shows it is.
    ///
    /// Settling here must wake the waiters too: they sleep while a connection is unsettled
    /// (only its probe request may use it), and once this flag is set neither the probe's
    /// response nor the settle timer notifies them again. Without the wake-up, 30,000 watches
    /// stalled for good with a few requests waiting and no slot ever freed.
    fn is_settled(&self, limit: usize, pool: &Inner) -> bool {
        if self.settled.load(Ordering::Acquire) {
            return true;
        }
        if limit != INITIAL_MAX_STREAMS {
            self.settle(pool);
            return true;
        }
        false
    }

    /// Settles the connection (a response arrived, or the settle timeout passed).
    fn settle(&self, pool: &Inner) {
        if !self.settled.swap(true, Ordering::AcqRel) {
            tracing::debug!(
                connection = self.id,
                max_streams = self.limit(),
                "HTTP/2 connection ready"
            );
            pool.changed.notify_waiters();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every value behind these locks is consistent after each statement (a list and
    // counters, hyper's connection between polls): a panic elsewhere leaves nothing half-done.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a connection could not be made; cloned to every request that waited for it. The source
/// chain ends in the socket or TLS error (`invalid peer certificate: UnknownIssuer`), which is
/// what faro reports.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{context}")]
pub struct ConnectError {
    context: String,
    #[source]
    source: Arc<dyn std::error::Error + Send + Sync>,
}

impl Transport {
    fn new(config: &Config) -> Result<Transport, kube::Error> {
        let url = &config.cluster_url;
        let raw_host = url.host().unwrap_or("localhost");
        let host = raw_host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port_u16().unwrap_or(443);
        let name = config
            .tls_server_name
            .clone()
            .unwrap_or_else(|| host.clone());
        let server_name = ServerName::try_from(name).map_err(|e| {
            kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e))
        })?;
        let mut tls = config.rustls_client_config()?;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(config.connect_timeout);
        http.set_nodelay(true);
        let http1 = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build(config.rustls_https_connector_with_connector(http)?);
        Ok(Transport {
            inner: Arc::new(Inner {
                target: Target {
                    host,
                    port,
                    server_name,
                    tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
                    connect_timeout: config.connect_timeout,
                },
                state: Mutex::new(State::default()),
                changed: Notify::new(),
                http1,
                next_id: AtomicU64::new(1),
            }),
        })
    }

    /// A slot on a connection with room, or `None` when the server speaks HTTP/1.1.
    async fn checkout(&self) -> Result<Option<(Slot, http2::SendRequest<Body>)>, ConnectError> {
        // The attempt this request waits for, if any: its failure is this request's too.
        let mut waiting_for: Option<u64> = None;
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so no wake-up between the two is lost.
            notified.as_mut().enable();
            {
                let mut state = self.inner.lock();
                if state.http1 {
                    return Ok(None);
                }
                if let Some(slot) = self.take_slot(&mut state) {
                    return Ok(Some(slot));
                }
                if let (Some(attempt), Some((failed, error))) = (waiting_for, &state.failure)
                    && attempt == *failed
                {
                    return Err(error.clone());
                }
                let probing = state
                    .conns
                    .iter()
                    .any(|c| !c.settled.load(Ordering::Acquire));
                if state.connecting {
                    waiting_for = Some(state.attempts + 1);
                } else if !probing {
                    state.connecting = true;
                    waiting_for = Some(state.attempts + 1);
                    tokio::spawn(open(self.inner.clone()));
                }
            }
            notified.await;
        }
    }

    /// Takes a slot: on the oldest settled connection with room, else the single probe slot of
    /// an unsettled one. Drops closed connections, and those idle for [`IDLE_TIMEOUT`] but the
    /// oldest (a burst of short requests can leave a connection beyond what the watches need).
    fn take_slot(&self, state: &mut State) -> Option<(Slot, http2::SendRequest<Body>)> {
        let mut first = true;
        state.conns.retain(|c| {
            if !c.usable() {
                tracing::debug!(connection = c.id, "HTTP/2 connection closed; dropped");
                return false;
            }
            let keep = first || !c.idle_for(IDLE_TIMEOUT);
            first = false;
            if !keep {
                // Dropping its `SendRequest` lets hyper close it.
                tracing::debug!(connection = c.id, "HTTP/2 connection idle; closed");
            }
            keep
        });
        let mut probe = None;
        let mut pick = None;
        for c in &state.conns {
            let in_flight = c.in_flight.load(Ordering::Acquire);
            let limit = c.limit();
            if c.is_settled(limit, &self.inner) {
                if in_flight < limit {
                    pick = Some(c);
                    break;
                }
            } else if in_flight == 0 && probe.is_none() {
                probe = Some(c);
            }
        }
        let pick = pick.or(probe)?;
        pick.in_flight.fetch_add(1, Ordering::AcqRel);
        *lock(&pick.idle_since) = None;
        Some((
            Slot {
                conn: pick.clone(),
                pool: Arc::downgrade(&self.inner),
            },
            pick.send.clone(),
        ))
    }

    async fn send(self, request: Request<Body>) -> Result<Response<TrackedBody>, BoxError> {
        match self.checkout().await? {
            Some((slot, mut send)) => {
                let response = send.send_request(request).await;
                // A response (or a failure) comes after the server's SETTINGS were applied.
                slot.conn.settle(&self.inner);
                let response = response?;
                Ok(response.map(|body| TrackedBody {
                    inner: body,
                    slot: Some(slot),
                }))
            }
            None => {
                let response = self.inner.http1.request(request).await?;
                Ok(response.map(|body| TrackedBody {
                    inner: body,
                    slot: None,
                }))
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl tower::Service<Request<Body>> for Transport {
    type Response = Response<TrackedBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(self.clone().send(request))
    }
}

/// Opens one connection (spawned, so that a request given up meanwhile does not cancel an
/// attempt others wait for) and records the outcome.
async fn open(pool: Arc<Inner>) {
    let outcome = connect(&pool.target).await;
    let mut state = pool.lock();
    state.connecting = false;
    state.attempts += 1;
    match outcome {
        Ok(Connected::H2(send, connection)) => {
            state.failure = None;
            let id = pool.next_id.fetch_add(1, Ordering::Relaxed);
            let connection: SharedConnection = Arc::new(Mutex::new(Some(connection)));
            let conn = Arc::new(Conn {
                id,
                send,
                connection: connection.clone(),
                in_flight: AtomicUsize::new(0),
                idle_since: Mutex::new(Some(Instant::now())),
                settled: AtomicBool::new(false),
                closed: AtomicBool::new(false),
            });
            tracing::debug!(
                connection = id,
                open = state.conns.len() + 1,
                "HTTP/2 connection to {}:{}",
                pool.target.host,
                pool.target.port
            );
            state.conns.push(conn.clone());
            // Both hold the connection weakly: once the pool and every response body are gone,
            // its `SendRequest` is dropped and hyper closes it.
            tokio::spawn(Driver {
                connection,
                conn: Arc::downgrade(&conn),
                id,
                pool: Arc::downgrade(&pool),
            });
            let (weak_pool, weak_conn) = (Arc::downgrade(&pool), Arc::downgrade(&conn));
            tokio::spawn(async move {
                tokio::time::sleep(SETTLE_TIMEOUT).await;
                if let (Some(pool), Some(conn)) = (weak_pool.upgrade(), weak_conn.upgrade()) {
                    conn.settle(&pool);
                }
            });
        }
        Ok(Connected::Http1) => {
            state.failure = None;
            tracing::debug!("the API server chose HTTP/1.1; one connection per request");
            state.http1 = true;
        }
        Err(error) => {
            let attempt = state.attempts;
            state.failure = Some((attempt, error));
        }
    }
    drop(state);
    pool.changed.notify_waiters();
}

type H2Connection = http2::Connection<TokioIo<TlsStream>, Body, TokioExecutor>;

enum Connected {
    H2(http2::SendRequest<Body>, Pin<Box<H2Connection>>),
    Http1,
}

async fn connect(target: &Target) -> Result<Connected, ConnectError> {
    let address = format!("{}:{}", target.host, target.port);
    let fail = |what: &str, source: BoxError| ConnectError {
        context: format!("{what} {address}"),
        source: Arc::from(source),
    };
    let handshake = async {
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| fail("connecting to", e.into()))?;
        let _ = tcp.set_nodelay(true);
        target
            .tls
            .connect(target.server_name.clone(), tcp)
            .await
            .map_err(|e| fail("TLS handshake with", e.into()))
    };
    let tls = match target.connect_timeout {
        Some(limit) => tokio::time::timeout(limit, handshake)
            .await
            .map_err(|e| fail("connecting to", e.into()))??,
        None => handshake.await?,
    };
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Ok(Connected::Http1);
    }
    let (send, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .initial_max_send_streams(INITIAL_MAX_STREAMS)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .keep_alive_interval(PING_INTERVAL)
        .keep_alive_timeout(PING_TIMEOUT)
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(tls))
        .await
        .map_err(|e| fail("HTTP/2 handshake with", e.into()))?;
    Ok(Connected::H2(send, Box::pin(connection)))
}

/// Runs hyper's connection future (request dispatch; hyper runs the h2 connection in a task
/// of its own) and marks the connection closed when it ends.
struct Driver {
    connection: SharedConnection,
    conn: Weak<Conn>,
    id: u64,
    pool: Weak<Inner>,
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut connection = lock(&self.connection);
        let Some(future) = connection.as_mut() else {
            return Poll::Ready(());
        };
        let Poll::Ready(result) = future.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        *connection = None;
        drop(connection);
        match result {
            Ok(()) => tracing::debug!(connection = self.id, "HTTP/2 connection ended"),
            Err(e) => tracing::debug!(connection = self.id, "HTTP/2 connection failed: {e}"),
        }
        if let Some(conn) = self.conn.upgrade() {
            conn.closed.store(true, Ordering::Release);
        }
        if let Some(pool) = self.pool.upgrade() {
            pool.changed.notify_waiters();
        }
        Poll::Ready(())
    }
}

/// A request's hold on its connection, released when dropped.
struct Slot {
    conn: Arc<Conn>,
    pool: Weak<Inner>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.conn.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Slots are taken under the pool's lock, released without it: a slot taken since
            // clears this again, so idle time is never counted while a request is in flight.
            let mut idle = lock(&self.conn.idle_since);
            if self.conn.in_flight.load(Ordering::Acquire) == 0 {
                *idle = Some(Instant::now());
            }
        }
        if let Some(pool) = self.pool.upgrade() {
            pool.changed.notify_waiters();
        }
    }
}

/// A response body that gives its connection slot back when it ends or is dropped.
pub struct TrackedBody {
    inner: Incoming,
    slot: Option<Slot>,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) || self.inner.is_end_stream() {
            self.slot = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
