//! kube-sim: an in-memory Kubernetes API server for faro's tests, demo and benchmarks. It
//! speaks the real wire protocol (discovery, CRUD, patches, paged lists, watches with
//! bookmarks, 410 and streaming lists) well enough for kubectl and kube-rs, and adds an admin
//! API under `/_sim/` for fault injection, bulk load and introspection. See sim/README.md.
//!
//! ```no_run
//! let sim = kube_sim::SimHandle::start(kube_sim::Options::default())?;
//! sim.admin("POST", "/_sim/load?namespace=demo&count=100&size=512")?;
//! println!("{}", sim.url());
//! # anyhow::Ok(())
//! ```

mod admin;
mod body;
mod bulk;
pub mod catalog;
mod churn;
mod connections;
mod crd;
mod discovery;
mod event;
mod faults;
pub mod field_selector;
mod fieldset;
mod handle;
mod history;
pub mod kubeconfig;
pub mod label_selector;
mod managed_fields;
mod namespace;
mod object;
mod openapi;
mod options;
mod paging;
pub mod patch;
mod protobuf;
mod query;
mod registry;
mod reply;
mod request_log;
mod rest;
mod route;
mod server;
mod shard_selector;
mod sim;
mod status;
mod store;
pub mod testkit;
mod tls;
mod version_priority;
mod watch;

pub use catalog::Catalog;
pub use faults::FORBIDDEN_USER;
pub use handle::{RawResponse, SimHandle, request};
pub use options::Options;

/// Runs a server on the current tokio runtime until `shutdown` completes: prints nothing,
/// calls `on_listening` with the URL and, under TLS, the CA certificate (PEM) once bound (its
/// error aborts). Used by the binary.
pub async fn run_until<F>(
    opts: Options,
    on_listening: impl FnOnce(&str, Option<&str>) -> anyhow::Result<()>,
    shutdown: F,
) -> anyhow::Result<()>
where
    F: std::future::Future<Output = ()>,
{
    let (sim, listener, addr) = server::bind(opts).await?;
    on_listening(
        &server::url(&sim, addr),
        sim.tls.as_ref().map(|t| t.ca_pem.as_str()),
    )?;
    let token = sim.shutdown.clone();
    tokio::select! {
        _ = server::serve(sim, listener) => {}
        _ = shutdown => token.cancel(),
    }
    Ok(())
}
