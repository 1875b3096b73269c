//! NATS JetStream (design.md §15): a sink that publishes every event to a JetStream stream
//! ([`Publisher`]), and a key-value bucket that keeps the checkpoint ([`StateBucket`]), so
//! that whichever replica leads resumes it. Built on `async-nats`, the NATS project's client.
//!
//! # Subjects
//! Each event is published to `<prefix>.<cluster>.<gvr>.<namespace>` ([`Subjects`]): the
//! prefix (`faro` by default; it may hold several tokens, `org.faro`), then one token each for
//! the cluster's name, the GVR (`v1/configmaps`, `apps/v1/deployments`) and the namespace
//! (`_` for cluster-scoped objects: no namespace can be named so). A token carries its text
//! with every byte that a NATS subject token cannot hold, and `%` itself, written as `%XX`
//! (uppercase hex, as in a URL): `.` (the token separator), `*` and `>` (wildcards),
//! whitespace and control characters, and bytes outside ASCII. So
//! `networking.k8s.io/v1/ingresses` in namespace `web` of cluster `prod` is
//! `faro.prod.networking%2Ek8s%2Eio/v1/ingresses.web`; `faro.prod.v1/pods.*` subscribes to the
//! pods of every namespace, `faro.prod.>` to everything of that cluster.
//!
//! # Message ids and acknowledgements
//! Each message carries the header `Nats-Msg-Id: <uid>/<resourceVersion>/<eventType>`: a
//! message sent again within the stream's duplicate window (an event repeated after a restart
//! or a failover, a publish retried after a lost ack) is stored once. An event counts as
//! written only once JetStream has acknowledged it: [`Publisher::flush`] returns when every
//! event handed over before it is acknowledged, and the watcher's checkpoint waits for it.
//!
//! # Outages
//! Nothing is dropped. Publishes that fail or whose ack does not come are sent again, in
//! order, until JetStream takes them; at most [`QUEUE_EVENTS`] events wait in faro meanwhile,
//! then handing over an event waits, and so the watches wait (the API server keeps the rest).
//! The connection is re-established by the client with backoff, forever; each loss and
//! reconnection is logged, and counted in `faro_nats_reconnects_total`.

mod publisher;
mod state;
mod subject;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use async_nats;
pub use publisher::{Publisher, Retention, StreamSettings};
pub use state::StateBucket;
pub use subject::{Subjects, escape_token};

/// Checks a stream or bucket name (letters, digits, `-` and `_`); `what` names it in the
/// message.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    publisher::check_name(what, name)
}

/// Checks a `BUCKET` or `BUCKET/KEY` as [`StateBucket::open`] takes it.
pub fn check_bucket(text: &str) -> Result<()> {
    state::split_bucket(text).map(drop)
}

use crate::metrics::Metrics;

/// How many events may wait in faro for JetStream (queued or awaiting their ack) before
/// handing over the next one waits.
pub const QUEUE_EVENTS: usize = 1024;

/// Why NATS could not be used. [`Error::Options`] and [`Error::Stream`] need a change of
/// flags or of the stream; the others come from the server and are retried where faro waits
/// for it (connecting, publishing), not where it cannot (a credentials file it cannot read).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting cannot be used (a malformed URL, a bad name).
    #[error("{0}")]
    Options(String),
    /// A credentials, certificate or key file could not be read.
    #[error("{what} {}: {source}", path.display())]
    File {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The stream exists but does not take faro's subjects, or cannot be created as asked.
    #[error("JetStream stream {name}: {reason}")]
    Stream {
        /// The stream.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The key-value bucket cannot be used.
    #[error("JetStream key-value bucket {bucket}: {reason}")]
    Bucket {
        /// The bucket.
        bucket: String,
        /// What is wrong.
        reason: String,
    },
    /// The client failed (closed, or a request it cannot retry).
    #[error("NATS: {0}")]
    Client(String),
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where and how to connect to NATS.
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// Server URLs (`nats://host:4222`, `tls://host:4222`; user and password may be in the
    /// URL); the client tries them in turn and learns the rest of a cluster from the server.
    pub servers: Vec<async_nats::ServerAddr>,
    /// A CA certificate file (PEM) to verify the server with, instead of the system's roots;
    /// implies TLS.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key (PEM), for servers that verify clients; implies TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// A credentials file (`.creds`: a user JWT and its NKey seed).
    pub creds: Option<PathBuf>,
    /// The connection's name (shown by the server's monitoring).
    pub name: Option<String>,
}

impl NatsOptions {
    /// Options for a comma-separated list of server URLs (`nats://a:4222,nats://b:4222`).
    pub fn parse_servers(urls: &str) -> Result<Vec<async_nats::ServerAddr>> {
        let servers: Vec<async_nats::ServerAddr> = urls
            .split(',')
            .map(str::trim)
            .map(|url| {
                if url.is_empty() {
                    return Err(Error::Options(format!(
                        "{urls:?}: an empty URL in the list"
                    )));
                }
                let scheme = url.split_once("://").map(|(s, _)| s);
                if let Some(scheme) = scheme
                    && !["nats", "tls"].contains(&scheme)
                {
                    return Err(Error::Options(format!(
                        "{url:?}: the scheme must be nats:// or tls:// (or none, for nats://)"
                    )));
                }
                let addr = async_nats::ServerAddr::from_str(url)
                    .map_err(|e| Error::Options(format!("{url:?} is not a NATS URL: {e}")))?;
                if addr.host().is_empty() {
                    return Err(Error::Options(format!("{url:?}: no host")));
                }
                Ok(addr)
            })
            .collect::<Result<_>>()?;
        Ok(servers)
    }
}

/// A connection to NATS and its JetStream context; cheap to clone.
#[derive(Clone, Debug)]
pub struct Connection {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
}

impl Connection {
    /// Connects. An unreachable server is waited for (the client retries with backoff,
    /// forever, and so does every later loss of the connection): each loss and each
    /// reconnection is logged and counted in `faro_nats_reconnects_total` of `metrics`.
    /// Fails at once only on options that cannot work (an unreadable credentials file).
    pub async fn connect(options: &NatsOptions, metrics: &Metrics) -> Result<Connection> {
        if options.servers.is_empty() {
            return Err(Error::Options("no NATS server URL".into()));
        }
        let mut connect = match &options.creds {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|source| Error::File {
                    what: "NATS credentials file",
                    path: path.clone(),
                    source,
                })?,
            None => async_nats::ConnectOptions::new(),
        };
        if let Some(ca) = &options.ca {
            readable("NATS CA file", ca)?;
            connect = connect.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &options.client_cert {
            readable("NATS client certificate", cert)?;
            readable("NATS client key", key)?;
            connect = connect
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        if let Some(name) = &options.name {
            connect = connect.name(name);
        }
        let counts = metrics.nats();
        let seen = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicBool::new(false));
        let said = Arc::new(std::sync::Mutex::new(String::new()));
        let servers = options
            .servers
            .iter()
            .map(|s| format!("{}:{}", s.host(), s.port()))
            .collect::<Vec<_>>()
            .join(",");
        connect = connect
            .retry_on_initial_connect()
            .max_reconnects(None)
            // At most 2 s between attempts: an outage of a few seconds ends within that.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100 * attempts as u64).min(2000))
            })
            .event_callback(move |event| {
                let counts = counts.clone();
                let seen = seen.clone();
                let lost = lost.clone();
                let said = said.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            if seen.swap(true, Ordering::SeqCst) {
                                counts.reconnects.fetch_add(1, Ordering::Relaxed);
                                tracing::info!("NATS: reconnected");
                            } else {
                                tracing::info!("NATS: connected");
                            }
                            lost.store(false, Ordering::SeqCst);
                            said.lock().unwrap_or_else(|e| e.into_inner()).clear();
                        }
                        async_nats::Event::Disconnected => {
                            if !lost.swap(true, Ordering::SeqCst) {
                                tracing::warn!(
                                    "NATS: disconnected; reconnecting (the events wait, none is dropped)"
                                );
                            }
                        }
                        async_nats::Event::LameDuckMode => {
                            tracing::info!("NATS: the server is shutting down (lame duck mode)");
                        }
                        // A refused authorization, a permission violation: said once per
                        // episode (until connected), while the client goes on trying.
                        async_nats::Event::ServerError(e) => complain(&said, e.to_string()),
                        async_nats::Event::ClientError(e) => complain(&said, e.to_string()),
                        other => tracing::debug!("NATS: {other}"),
                    }
                }
            });
        tracing::info!("NATS: connecting to {servers}");
        let client = connect
            .connect(options.servers.clone())
            .await
            .map_err(|e| Error::Client(e.to_string()))?;
        let jetstream = async_nats::jetstream::context::ContextBuilder::new()
            .timeout(ACK_TIMEOUT)
            .max_ack_inflight(QUEUE_EVENTS)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Ok(Connection { client, jetstream })
    }

    /// The client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &async_nats::jetstream::Context {
        &self.jetstream
    }
}

/// How long a publish waits for its ack, and a JetStream request for its answer, before it
/// is tried again.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Logs a complaint of the client or the server unless it is the last one said.
fn complain(said: &std::sync::Mutex<String>, text: String) {
    let text = text.strip_prefix("nats: ").unwrap_or(&text).to_owned();
    let mut last = said.lock().unwrap_or_else(|e| e.into_inner());
    if *last != text {
        tracing::warn!("NATS: {text}; trying again");
        *last = text;
    }
}

fn readable(what: &'static str, path: &std::path::Path) -> Result<()> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|source| Error::File {
            what,
            path: path.to_owned(),
            source,
        })
}

/// Waits `attempt`'s backoff: 100 ms doubling to 2 s.
async fn backoff(attempt: u32) {
    let ms = 100u64.saturating_mul(1 << attempt.min(5)).min(2000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lists_take_nats_and_tls_urls_and_refuse_others() {
        let ok =
            NatsOptions::parse_servers("nats://127.0.0.1:4222, tls://a.example:4443,b:1").unwrap();
        assert_eq!(ok.len(), 3);
        assert_eq!(ok[1].port(), 4443);
        for bad in [
            "http://x:1",
            "nats://",
            "",
            "nats://a:1,,nats://b:2",
            "nats://a:port",
        ] {
            assert!(NatsOptions::parse_servers(bad).is_err(), "{bad:?}");
        }
    }
}
