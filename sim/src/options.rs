//! Server options shared by the library ([`crate::SimHandle::start`]) and the binary's flags.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::catalog::Catalog;

/// How to run a kube-sim server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which built-in catalog of API resources to serve.
    pub catalog: Catalog,
    /// Serve aggregated discovery (apidiscovery.k8s.io/v2) when the Accept header asks for it.
    pub aggregated: bool,
    /// Address to bind.
    pub bind: IpAddr,
    /// Port to bind (0 = any free port).
    pub port: u16,
    /// Events kept in the watch history; older resume points get `410 Expired`.
    pub history_limit: usize,
    /// Interval of progress BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Serve streaming lists (`sendInitialEvents=true`), as Kubernetes 1.32 does by default;
    /// when false such watches get the 422 of a server with the WatchList gate off.
    pub watch_list: bool,
    /// Honour the KEP-5866 `shardSelector` parameter (alpha in 1.36); false = ignore it as an
    /// older server does.
    pub shard_selector: bool,
    /// Log every request to stderr.
    pub log_requests: bool,
    /// Require `Authorization: Bearer <token>` from the start (admin requests excepted).
    pub require_token: Option<String>,
    /// Number of recent requests kept for `GET /_sim/requests`.
    pub request_log_size: usize,
    /// Delay between a namespace turning Terminating and its contents being deleted.
    pub namespace_delete_delay: Duration,
    /// Serve HTTPS (ALPN `h2` and `http/1.1`) with a CA and server certificate generated at
    /// start; [`crate::SimHandle::ca_pem`] and the written kubeconfigs carry the CA.
    pub tls: bool,
    /// SETTINGS_MAX_CONCURRENT_STREAMS advertised on each HTTP/2 connection (250, as Go's
    /// HTTP/2 server that kube-apiserver uses).
    pub h2_max_streams: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            catalog: Catalog::Vanilla,
            aggregated: true,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            history_limit: 500_000,
            bookmark_interval: Duration::from_secs(60),
            watch_list: true,
            shard_selector: true,
            log_requests: false,
            require_token: None,
            request_log_size: 10_000,
            namespace_delete_delay: Duration::from_millis(100),
            tls: false,
            h2_max_streams: 250,
        }
    }
}
