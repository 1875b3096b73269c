//! The HTTP/1.1 server: accepts connections, applies the fault switches to non-admin requests
//! (latency, auth, injected failures), routes to discovery, OpenAPI, the admin API or the
//! resource verbs, and records each request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use http::{Method, Request, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::admin;
use crate::discovery::{self, AGGREGATED_CONTENT_TYPE, wants_aggregated};
use crate::openapi;
use crate::options::Options;
use crate::query::Query;
use crate::reply::{self, Reply};
use crate::rest::{self, Call};
use crate::route::{self, Route};
use crate::sim::Sim;
use crate::status::{ApiError, for_code};

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Binds the listener and builds the state; `serve` then runs it.
pub async fn bind(opts: Options) -> anyhow::Result<(Arc<Sim>, TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(SocketAddr::new(opts.bind, opts.port)).await?;
    let addr = listener.local_addr()?;
    Ok((Sim::new(opts), listener, addr))
}

/// Accepts connections until `sim.shutdown` is cancelled.
pub async fn serve(sim: Arc<Sim>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = sim.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, _) = match accepted {
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
        tokio::spawn(async move {
            let svc_sim = sim.clone();
            let svc = service_fn(move |req| {
                let sim = svc_sim.clone();
                async move { Ok::<_, Infallible>(handle(sim, req).await) }
            });
            let conn = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = sim.shutdown.cancelled() => {}
            }
        });
    }
}

async fn handle(sim: Arc<Sim>, req: Request<Incoming>) -> Reply {
    let arrived = SystemTime::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let query = Query::parse(parts.uri.query());
    let route = route::parse(&path);
    if let Route::Admin(name) = &route {
        let r = admin::handle(&sim, &parts.method, name, &query).await;
        if sim.opts.log_requests {
            eprintln!(
                "kube-sim: {} {}?{} -> {}",
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
    let reply = match prelude(&sim, &parts.headers, &path) {
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
    sim.requests.record(
        arrived,
        parts.method.as_str(),
        &path,
        &raw_query,
        status,
        user_agent,
    );
    if sim.opts.log_requests {
        eprintln!(
            "kube-sim: {} {}?{} -> {status} ({user_agent})",
            parts.method, path, raw_query
        );
    }
    reply
}

/// Auth and injected failures, before anything else is looked at.
fn prelude(sim: &Sim, headers: &http::HeaderMap, path: &str) -> Result<(), ApiError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    sim.faults.check_auth(auth)?;
    match sim.faults.take_failure(path) {
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
