//! The HTTP server: accepts connections (plain, or TLS with ALPN `h2`/`http/1.1`), serves
//! HTTP/1.1 and HTTP/2 on them, applies the fault switches to non-admin requests (latency, auth,
//! injected failures), routes to discovery, OpenAPI, the admin API or the resource verbs, and
//! records each request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use http::{Method, Request, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::admin;
use crate::connections::{Conn, Counted, Protocol};
use crate::discovery::{self, AGGREGATED_CONTENT_TYPE, wants_aggregated};
use crate::openapi;
use crate::options::Options;
use crate::query::Query;
use crate::reply::{self, Reply};
use crate::request_log::RequestRecord;
use crate::rest::{self, Call};
use crate::route::{self, Route};
use crate::sim::Sim;
use crate::status::{ApiError, for_code};
use crate::tls;

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// A TLS handshake that takes longer than this is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the listener and builds the state (generating the certificates under `--tls`);
/// `serve` then runs it.
pub async fn bind(opts: Options) -> anyhow::Result<(Arc<Sim>, TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(SocketAddr::new(opts.bind, opts.port)).await?;
    let addr = listener.local_addr()?;
    let tls = if opts.tls {
        Some(tls::generate(opts.bind)?)
    } else {
        None
    };
    Ok((Sim::new(opts, tls), listener, addr))
}

/// The URL clients use: `https://ADDR` under TLS, `http://ADDR` otherwise.
pub fn url(sim: &Sim, addr: SocketAddr) -> String {
    let scheme = if sim.tls.is_some() { "https" } else { "http" };
    format!("{scheme}://{addr}")
}

/// Accepts connections until `sim.shutdown` is cancelled.
pub async fn serve(sim: Arc<Sim>, listener: TcpListener) {
    let acceptor = sim
        .tls
        .as_ref()
        .map(|t| TlsAcceptor::from(t.server.clone()));
    loop {
        let accepted = tokio::select! {
            _ = sim.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                eprintln!("kube-sim: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let sim = sim.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let registration = sim.connections.register(peer, acceptor.is_some());
            let conn = registration.conn.clone();
            let work = async {
                let Some(acceptor) = acceptor else {
                    return serve_connection(&sim, &conn, TokioIo::new(stream), None).await;
                };
                let stream =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            if sim.opts.log_requests {
                                eprintln!("kube-sim: TLS handshake with {peer} failed: {e}");
                            }
                            return;
                        }
                        Err(_) => return,
                    };
                let alpn = match stream.get_ref().1.alpn_protocol() {
                    Some(b"h2") => Some(Protocol::H2),
                    Some(b"http/1.1") => Some(Protocol::Http11),
                    _ => None,
                };
                if let Some(p) = alpn {
                    conn.set_protocol(p);
                }
                serve_connection(&sim, &conn, TokioIo::new(stream), alpn).await;
            };
            // Cutting drops the connection future and with it the socket: no GOAWAY, no TLS
            // close_notify, no last chunk, as when the network or the apiserver goes away.
            tokio::select! {
                _ = work => {}
                _ = conn.cut().cancelled() => {}
                _ = sim.shutdown.cancelled() => {}
            }
            drop(registration);
        });
    }
}

/// Serves HTTP on one connection: the protocol ALPN chose, or (plain, or TLS without ALPN)
/// whichever the client speaks, HTTP/2 being recognised by its connection preface.
async fn serve_connection<I>(
    sim: &Arc<Sim>,
    conn: &Arc<Conn>,
    io: TokioIo<I>,
    alpn: Option<Protocol>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc_sim = sim.clone();
    let svc_conn = conn.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let sim = svc_sim.clone();
        let conn = svc_conn.clone();
        async move {
            conn.set_protocol(Protocol::of(req.version()));
            let in_flight = conn.begin();
            let reply = handle(sim, &conn, req).await;
            Ok::<_, Infallible>(reply.map(|b| Counted::new(b, in_flight)))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(true);
    builder
        .http2()
        .max_concurrent_streams(sim.opts.h2_max_streams);
    let builder = match alpn {
        Some(Protocol::H2) => builder.http2_only(),
        Some(_) => builder.http1_only(),
        None => builder,
    };
    let _ = builder.serve_connection(io, svc).await;
}

async fn handle(sim: Arc<Sim>, conn: &Conn, req: Request<Incoming>) -> Reply {
    let arrived = SystemTime::now();
    let protocol = Protocol::of(req.version()).name().unwrap_or("");
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let query = Query::parse(parts.uri.query());
    let route = route::parse(&path);
    if let Route::Admin(name) = &route {
        let r = admin::handle(&sim, &parts.method, name, &query, conn.id).await;
        if sim.opts.log_requests {
            eprintln!(
                "kube-sim: {} {}?{} -> {} [{protocol}]",
                parts.method,
                path,
                raw_query,
                r.status().as_u16()
            );
        }
        return r;
    }
    let latency = sim.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let reply = match prelude(&sim, &parts.headers, &path, &raw_query) {
        Err(e) => reply::error(&e),
        Ok(()) => match Limited::new(body, MAX_BODY).collect().await {
            Err(_) => reply::error(&ApiError::new(
                413,
                "RequestEntityTooLarge",
                "request body too large",
            )),
            Ok(b) => {
                let body = b.to_bytes();
                dispatch(
                    &sim,
                    &parts.method,
                    &parts.headers,
                    &path,
                    &raw_query,
                    &query,
                    route,
                    body,
                )
                .unwrap_or_else(|e| reply::error(&e))
            }
        },
    };
    let reply = reply::negotiate_encoding(reply, &parts.headers);
    let status = reply.status().as_u16();
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if sim.opts.log_requests {
        eprintln!(
            "kube-sim: {} {}?{} -> {status} ({user_agent}) [{protocol}]",
            parts.method, path, raw_query
        );
    }
    sim.requests.record(RequestRecord {
        seq: 0,
        time: arrived,
        method: parts.method.to_string(),
        path,
        query: raw_query,
        status,
        user_agent: user_agent.to_string(),
        protocol,
        content_encoding: if reply.headers().contains_key(header::CONTENT_ENCODING) {
            "gzip"
        } else {
            ""
        },
    });
    reply
}

/// Auth and injected failures, before anything else is looked at.
fn prelude(sim: &Sim, headers: &http::HeaderMap, path: &str, query: &str) -> Result<(), ApiError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    sim.faults.check_auth(auth)?;
    match sim.faults.take_failure(path, query) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn group_down(sim: &Sim, group: &str) -> Result<(), ApiError> {
    if !group.is_empty() && sim.faults.down_groups().contains(group) {
        return Err(for_code(503));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn dispatch(
    sim: &Arc<Sim>,
    method: &Method,
    headers: &http::HeaderMap,
    path: &str,
    raw_query: &str,
    query: &Query,
    route: Route,
    body: bytes::Bytes,
) -> Result<Reply, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let aggregated = sim.aggregated.load(Ordering::Relaxed) && wants_aggregated(accept);
    let is_get = *method == Method::GET;
    match route {
        Route::Version if is_get => Ok(reply::json(200, &discovery::version())),
        Route::Api | Route::Apis if is_get && aggregated => {
            let reg = sim.registry.read();
            let doc = discovery::aggregated(&reg, route == Route::Api, &sim.faults.down_groups());
            Ok(reply::raw(200, AGGREGATED_CONTENT_TYPE, doc.to_string()))
        }
        Route::Api if is_get => Ok(reply::json(200, &discovery::api_versions())),
        Route::Apis if is_get => Ok(reply::json(
            200,
            &discovery::api_group_list(&sim.registry.read()),
        )),
        Route::Group(g) if is_get => {
            group_down(sim, &g)?;
            discovery::api_group(&sim.registry.read(), &g)
                .map(|d| reply::json(200, &d))
                .ok_or_else(ApiError::path_not_found)
        }
        Route::GroupVersion(g, v) if is_get => {
            group_down(sim, &g)?;
            discovery::resource_list(&sim.registry.read(), &g, &v)
                .map(|d| reply::json(200, &d))
                .ok_or_else(ApiError::path_not_found)
        }
        Route::OpenApiIndex if is_get => {
            Ok(reply::json(200, &openapi::index(&sim.registry.read())))
        }
        Route::OpenApiDoc(p) if is_get => openapi::document(&sim.registry.read(), &p)
            .map(|d| reply::json(200, &d))
            .ok_or_else(ApiError::path_not_found),
        Route::Health => Ok(reply::raw(200, "text/plain; charset=utf-8", "ok")),
        Route::Resource {
            group,
            version,
            segments,
            watch_prefix,
        } => {
            group_down(sim, &group)?;
            let target = route::resolve(&sim.registry.read(), &group, &version, &segments)?;
            let call = Call {
                sim,
                method,
                path,
                raw_query,
                query,
                headers,
                body,
            };
            rest::handle(call, target, watch_prefix)
        }
        Route::Version
        | Route::Api
        | Route::Apis
        | Route::Group(_)
        | Route::GroupVersion(..)
        | Route::OpenApiIndex
        | Route::OpenApiDoc(_) => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
        Route::Admin(_) | Route::Unknown => Err(ApiError::path_not_found()),
    }
}
