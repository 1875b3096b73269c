//! kube-sim's integration tests, built as one binary (one link instead of one per file).
//! Each test starts its own server on port 0.
//!
//! - `kubectl`: the real kubectl against kube-sim (discovery, CRUD, apply, watch, CRDs, namespaces);
//! - `watcher`: kube-runtime watchers (resume, 410 relist, bookmarks, streaming lists, selectors);
//! - `managed_fields`: managedFields after kubectl's writes, applies, conflicts, subresources;
//! - `admin`: the `/_sim/` fault injection, bulk and introspection endpoints;
//! - `protocol`: raw HTTP details (paging, 410 events, validation errors, the binary);
//! - `sharding`: KEP-5866 `shardSelector` on LIST and WATCH, the `shardInfo` echo, the switch,
//!   and the bytes per request in the request log;
//! - `tls`: `--tls` and HTTP/2 (kubectl over h2, certificate errors, the stream limit,
//!   `/_sim/connections` and `close-connections`).

mod admin;
mod kubectl;
mod managed_fields;
mod protocol;
mod sharding;
mod tls;
mod util;
mod watcher;
