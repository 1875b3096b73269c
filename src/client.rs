//! Connection to the API server: kubeconfig resolution as kubectl does it, and the raw HTTP
//! requests faro makes over kube's `Client`.
//!
//! faro uses kube for what it does well (kubeconfig, auth plugins, TLS) and speaks the
//! list/watch protocol itself on top of `Client::send` (see the `stream` module for why). Any
//! `kube::Client` works with a [`Watcher`](crate::Watcher); [`connect`] builds one the way the
//! faro binary does, with kube's own retry layer off.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use kube::config::{InClusterError, KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use serde::Deserialize;

use crate::gvr::Gvr;

/// Why no client could be built. Not retryable: the kubeconfig or the environment must change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An explicit kubeconfig file could not be read.
    #[error("reading kubeconfig {}: {source}", path.display())]
    ReadKubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KubeconfigError,
    },
    /// A kubeconfig was read but cannot be used (unknown context, bad credentials section).
    #[error("loading kubeconfig {from}: {source}")]
    LoadKubeconfig {
        /// The file, `$KUBECONFIG` or `~/.kube/config`.
        from: String,
        /// Why.
        #[source]
        source: KubeconfigError,
    },
    /// A context was named, but there is no kubeconfig to find it in.
    #[error(
        "--context needs a kubeconfig, but none was found: set KUBECONFIG or pass --kubeconfig"
    )]
    ContextWithoutKubeconfig,
    /// The context asked for is not in the kubeconfig.
    #[error("context {name:?} is not in the kubeconfig {from} (it has: {})", if known.is_empty() { "no contexts".to_owned() } else { known.join(", ") })]
    UnknownContext {
        /// The context asked for.
        name: String,
        /// The kubeconfig.
        from: String,
        /// The contexts it has.
        known: Vec<String>,
    },
    /// The cluster's certificate authority (`certificate-authority-data` or the file it names)
    /// holds no usable certificate.
    #[error("loading kubeconfig {from}: certificate-authority: {message}")]
    CertificateAuthority {
        /// The kubeconfig.
        from: String,
        /// What is wrong.
        message: String,
    },
    /// The in-cluster service account could not be loaded.
    #[error("loading the in-cluster service account config: {0}")]
    InCluster(#[source] InClusterError),
    /// Neither a kubeconfig nor an in-cluster service account exists.
    #[error("no kubeconfig found: set KUBECONFIG or pass --kubeconfig (or run inside a cluster)")]
    NoKubeconfig,
    /// kube could not build a client from the config (TLS setup, proxy).
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where to find the cluster (the faro binary's `--kubeconfig` and `--context`).
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Explicit kubeconfig file; else `$KUBECONFIG`, `~/.kube/config`, in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// Context name; else the kubeconfig's current context.
    pub context: Option<String>,
    /// Speak HTTP/1.1 only, through kube's default client (one connection per request in
    /// flight, a watch holding one for its whole life), even when the server offers HTTP/2.
    /// For debugging, or a proxy in the path that mishandles HTTP/2.
    pub http1: bool,
}

/// Builds a kube `Config` following kubectl's lookup order: `--kubeconfig`, `$KUBECONFIG`
/// (a path list is merged, as kubectl does), `~/.kube/config`, then the in-cluster service
/// account. A context that the kubeconfig does not have, and certificate-authority data that
/// holds no usable certificate, are reported here rather than when the first connection fails.
pub async fn config(opts: &ClusterOptions) -> Result<Config> {
    load(opts).await.map(|(config, _)| config)
}

/// As [`config`], with the name of the kubeconfig context's cluster (None in a pod without a
/// kubeconfig).
async fn load(opts: &ClusterOptions) -> Result<(Config, Option<String>)> {
    let kube_opts = KubeConfigOptions {
        context: opts.context.clone(),
        ..Default::default()
    };
    let (kubeconfig, from) = if let Some(path) = &opts.kubeconfig {
        let kubeconfig = Kubeconfig::read_from(path).map_err(|source| Error::ReadKubeconfig {
            path: path.clone(),
            source,
        })?;
        (kubeconfig, path.display().to_string())
    } else {
        let from_env = std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty());
        if !from_env && !home_kubeconfig().is_some_and(|p| p.exists()) {
            if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
                if opts.context.is_some() {
                    return Err(Error::ContextWithoutKubeconfig);
                }
                return Config::incluster()
                    .map(|c| (c, None))
                    .map_err(Error::InCluster);
            }
            return Err(Error::NoKubeconfig);
        }
        let from = if from_env {
            "from $KUBECONFIG"
        } else {
            "from ~/.kube/config"
        };
        let kubeconfig = Kubeconfig::read().map_err(|source| Error::LoadKubeconfig {
            from: from.to_owned(),
            source,
        })?;
        (kubeconfig, from.to_owned())
    };
    if let Some(name) = &opts.context
        && !kubeconfig.contexts.iter().any(|c| &c.name == name)
    {
        return Err(Error::UnknownContext {
            name: name.clone(),
            from,
            known: kubeconfig.contexts.iter().map(|c| c.name.clone()).collect(),
        });
    }
    let context = opts
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone());
    let name = kubeconfig
        .contexts
        .iter()
        .find(|c| Some(&c.name) == context.as_ref())
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .filter(|n| !n.is_empty());
    let config = Config::from_custom_kubeconfig(kubeconfig, &kube_opts)
        .await
        .map_err(|source| Error::LoadKubeconfig {
            from: from.clone(),
            source,
        })?;
    check_root_certificates(&config, &from)?;
    Ok((config, name))
}

/// kube takes every PEM block labelled CERTIFICATE from `certificate-authority(-data)` and leaves
/// the rest to the TLS handshake, so data that decodes to no certificate, or to bytes that are
/// not one, would only fail the first connection (after the start-up retries). rustls parses a
/// trust anchor exactly as the handshake will.
fn check_root_certificates(config: &Config, from: &str) -> Result<()> {
    let Some(roots) = &config.root_cert else {
        return Ok(());
    };
    let invalid = |message: String| Error::CertificateAuthority {
        from: from.to_owned(),
        message,
    };
    if roots.is_empty() {
        return Err(invalid("it holds no PEM CERTIFICATE block".into()));
    }
    let mut store = rustls::RootCertStore::empty();
    for (i, der) in roots.iter().enumerate() {
        store
            .add(rustls::pki_types::CertificateDer::from(der.as_slice()))
            .map_err(|e| invalid(format!("certificate {} is not usable: {e}", i + 1)))?;
    }
    Ok(())
}

fn home_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube").join("config"))
}

/// A client and the URL of the API server it talks to (for error messages).
#[derive(Clone)]
#[non_exhaustive]
pub struct Cluster {
    /// The client.
    pub client: Client,
    /// The API server URL.
    pub url: String,
    /// The namespace of the kubeconfig context (`default` when it names none, and the service
    /// account's namespace in a pod), which kubectl uses when given no `-n`.
    pub namespace: String,
    /// The name of the kubeconfig context's cluster (its `cluster:`), None in a pod without a
    /// kubeconfig.
    pub name: Option<String>,
    /// Whether responses may be compressed (the kubeconfig cluster's `disable-compression`
    /// unset or false), for [`Watcher::list_compression`](crate::Watcher::list_compression).
    pub compression: bool,
}

/// Connects a kube `Client` (no request is made yet).
///
/// Over `https://` the client speaks HTTP/2 when the server offers it (ALPN), many requests
/// sharing each connection, and HTTP/1.1 otherwise; kube's own client (HTTP/1.1 only) serves
/// plain `http://`, a proxied cluster and [`ClusterOptions::http1`]. Both use kube's layers
/// for the base URL, authentication (tokens, exec plugins, client certificates) and headers.
///
/// kube's own retry layer is turned off: it retries 503 fifteen times with backoff, which
/// turns one unavailable aggregated API group into a minute-long discovery, and it hides 429s
/// from the streams, which have their own backoff. faro retries 429 itself.
pub async fn connect(opts: &ClusterOptions) -> Result<Cluster> {
    let (mut config, name) = load(opts).await?;
    config.default_retry = false;
    let url = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_owned();
    let namespace = config.default_namespace.clone();
    let compression = !config.disable_compression;
    let https = config.cluster_url.scheme() == Some(&http::uri::Scheme::HTTPS);
    let client = if https && !opts.http1 && config.proxy_url.is_none() {
        crate::transport::client(&config)
    } else {
        Client::try_from(config)
    }
    .map_err(Error::Client)?;
    Ok(Cluster {
        client,
        url,
        namespace,
        name,
        compression,
    })
}

/// A non-2xx answer from the API server, decoded from its `Status` body when there is one.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason` (`NotFound`, `Forbidden`, `Expired`, …), empty when the body had none.
    pub reason: String,
    /// `Status.message`, or the body text.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{} ({})", self.message, self.code)
        } else {
            write!(f, "{} ({} {})", self.message, self.code, self.reason)
        }
    }
}

impl std::error::Error for ApiError {}

#[derive(Deserialize)]
struct StatusBody {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: u16,
}

impl ApiError {
    /// Decodes a `Status` object (also used for watch `ERROR` events).
    pub fn from_status(code: u16, body: &[u8]) -> ApiError {
        match serde_json::from_slice::<StatusBody>(body) {
            Ok(status) => ApiError {
                code: if status.code != 0 { status.code } else { code },
                reason: status.reason,
                message: status.message,
            },
            Err(_) => ApiError {
                code,
                reason: String::new(),
                message: String::from_utf8_lossy(body)
                    .trim()
                    .chars()
                    .take(200)
                    .collect(),
            },
        }
    }
}

/// Failure of one request: the server answered with an error, it could not be reached, or
/// what it sent made no sense.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The server answered non-2xx.
    #[error("{0}")]
    Api(ApiError),
    /// Connection, TLS, auth-plugin or body read failure; the text is the innermost cause.
    #[error("cannot reach the API server: {0}")]
    Transport(String),
    /// The answer could not be used (an undecodable line, a list without resourceVersion).
    #[error("{0}")]
    Malformed(String),
}

/// Sends a GET and returns the response if it is 2xx. A 429 is retried (twice, waiting as
/// `Retry-After` asks, at most 5 s): the server asks us to slow down, not to give up.
pub(crate) async fn get(
    client: &Client,
    path_and_query: &str,
    accept: Option<&str>,
) -> Result<Response<Body>, RequestError> {
    get_with(client, path_and_query, accept, &|| {}).await
}

/// [`get`], calling `throttled` for every 429 (retried or not), so that the streams can count
/// them.
pub(crate) async fn get_with(
    client: &Client,
    path_and_query: &str,
    accept: Option<&str>,
    throttled: &(dyn Fn() + Send + Sync),
) -> Result<Response<Body>, RequestError> {
    get_encoded(client, path_and_query, accept, false, throttled).await
}

/// [`get_with`], asking for a gzip-encoded body when `gzip` ([`read_body`] decodes it).
pub(crate) async fn get_encoded(
    client: &Client,
    path_and_query: &str,
    accept: Option<&str>,
    gzip: bool,
    throttled: &(dyn Fn() + Send + Sync),
) -> Result<Response<Body>, RequestError> {
    let mut attempt = 0;
    loop {
        let result = get_once(client, path_and_query, accept, gzip).await;
        if let Err((RequestError::Api(api), _)) = &result
            && api.code == 429
        {
            throttled();
        }
        match result {
            Err((RequestError::Api(api), retry_after)) if api.code == 429 && attempt < 2 => {
                attempt += 1;
                let wait = retry_after
                    .unwrap_or(Duration::from_millis(200 << attempt))
                    .min(Duration::from_secs(5));
                tracing::debug!("{path_and_query}: 429 Too Many Requests; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
            }
            other => return other.map_err(|(e, _)| e),
        }
    }
}

async fn get_once(
    client: &Client,
    path_and_query: &str,
    accept: Option<&str>,
    gzip: bool,
) -> Result<Response<Body>, (RequestError, Option<Duration>)> {
    let mut builder = Request::get(path_and_query);
    if let Some(accept) = accept {
        builder = builder.header(http::header::ACCEPT, accept);
    }
    if gzip {
        builder = builder.header(http::header::ACCEPT_ENCODING, "gzip");
    }
    let request = builder.body(Body::empty()).map_err(|e| {
        (
            RequestError::Malformed(format!("bad request {path_and_query}: {e}")),
            None,
        )
    })?;
    let response = client
        .send(request)
        .await
        .map_err(|e| (RequestError::Transport(transport_error(e)), None))?;
    if response.status().is_success() {
        return Ok(response);
    }
    let code = response.status();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = read_body(response).await.unwrap_or_default();
    Err((
        RequestError::Api(ApiError::from_status(code.as_u16(), &body)),
        retry_after,
    ))
}

/// Reads a whole body, decoding it when the server gzipped it.
pub(crate) async fn read_body(response: Response<Body>) -> Result<Bytes, RequestError> {
    let gzipped = response
        .headers()
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let body = response
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|e| RequestError::Transport(transport_error(e)))?;
    if !gzipped {
        return Ok(body);
    }
    gunzip(&body)
}

/// Decodes a gzip body (a list page: JSON compresses about 5–20×).
fn gunzip(body: &[u8]) -> Result<Bytes, RequestError> {
    use std::io::Read;
    let mut plain = Vec::with_capacity(body.len().saturating_mul(8));
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut plain)
        .map_err(|e| RequestError::Malformed(format!("undecodable gzip body: {e}")))?;
    Ok(Bytes::from(plain))
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass).
pub(crate) fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Lists at most one object of `gvr` with these selectors, to learn whether the server takes
/// them before watching: which fields a field selector may name is known only to the server,
/// which answers 400 BadRequest for others (as `kubectl get --field-selector` shows). In
/// `namespace`, or cluster-wide without one.
pub async fn try_list(
    client: &Client,
    gvr: &Gvr,
    namespace: Option<&str>,
    label_selector: Option<&str>,
    field_selector: Option<&str>,
) -> Result<(), RequestError> {
    let mut path = format!("{}?limit=1", gvr.collection_path(namespace));
    if let Some(ls) = label_selector {
        path.push_str("&labelSelector=");
        path.push_str(&encode_query_value(ls));
    }
    if let Some(fs) = field_selector {
        path.push_str("&fieldSelector=");
        path.push_str(&encode_query_value(fs));
    }
    get_document(client, &path, Some("application/json")).await?;
    Ok(())
}

/// GETs a document and returns its content type and body.
pub(crate) async fn get_document(
    client: &Client,
    path_and_query: &str,
    accept: Option<&str>,
) -> Result<(String, Bytes), RequestError> {
    let response = get(client, path_and_query, accept).await?;
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = read_body(response).await?;
    Ok((content_type, body))
}

/// Turns kube's transport errors into a message a user can act on.
fn transport_error(err: kube::Error) -> String {
    // kube wraps hyper/IO errors several layers deep ("ServiceError: client error (Connect)");
    // the innermost cause says what happened ("Connection refused (os error 111)").
    let root = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
        .last()
        .map(|e| e.to_string())
        .unwrap_or_default();
    if root.is_empty() {
        err.to_string()
    } else {
        root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_body_is_decoded() {
        let e = ApiError::from_status(
            403,
            br#"{"kind":"Status","status":"Failure","message":"pods is forbidden","reason":"Forbidden","code":403}"#,
        );
        assert_eq!(e.code, 403);
        assert_eq!(e.reason, "Forbidden");
        assert_eq!(e.message, "pods is forbidden");
    }

    #[test]
    fn non_json_body_keeps_the_http_code_and_text() {
        let e = ApiError::from_status(502, b"bad gateway\n");
        assert_eq!(e.code, 502);
        assert_eq!(e.message, "bad gateway");
        assert!(e.reason.is_empty());
    }
}
