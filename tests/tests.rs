//! faro's integration tests: the real binary against kube-sim, changes made with the real
//! kubectl, faults injected through kube-sim's admin API only (so the same tests could run
//! against kind or k3s).
//!
//! Modules:
//! - `util`: the harness (kube-sim per test, kubectl wrapper, faro process, event decoding);
//! - `cli`: flags, help, version, usage errors;
//! - `discover`: `faro discover`;
//! - `watch`: `faro watch --config` features;
//! - `habits`: `faro watch RESOURCE -n -l` as kubectl users type it, `-o text|name`, completions;
//! - `faults`: reconnects, 410, 429, the fault soak, SIGKILL;
//! - `http2`: TLS (the kubeconfig's CA, a wrong one, insecure-skip-tls-verify) and HTTP/2:
//!   watches spread over connections by the server's stream limit, cut connections resumed;
//! - `workload`: `faro workload`;
//! - `hardening`: output-file safety, stops that finish, SIGHUP, validation, full disks;
//! - `library`: the `faro` library (Watcher, Handler, EventStream) in-process against kube-sim;
//! - `examples`: the programs in examples/, run as a user would;
//! - `restart`: `--state-file`: restarts, compaction, SIGKILL, broken state files;
//! - `nats`: `--nats` and `--state-kv` against real nats-server processes: subjects, ids,
//!   repeats dropped, exactly-once across failover, a 3-node cluster losing a node, an outage;
//! - `lease`: `--leader-elect`: takeover after SIGKILL, release on SIGTERM, fencing;
//! - `diff_patch`: diffs applied as RFC 6902 patches reproduce the new version (property test);
//! - `changes`: `diff` and `changedBy` for writes made with the real kubectl;
//! - `monitoring`: `--metrics-addr` scraped by a real Prometheus, `/readyz`, `--stall-timeout`;
//! - `rotation`: `--max-file-size`/`--max-files`, their config keys, SIGHUP with rotation;
//! - `streaming`: streaming lists, and the paged fallback when kube-sim rejects them or never
//!   ends them;
//! - `shard`: `--shard i/N`: shards together write one run's lines (server-side shardSelector,
//!   client-side filtering, a server that rejects it), bytes read per shard, bad values;
//! - `layout`: the module layout (one-way imports, clap only in the binary).

mod util;

mod changes;
mod cli;
mod deploy;
mod diff_patch;
mod discover;
mod examples;
mod faults;
mod generated;
mod habits;
mod hardening;
mod http2;
mod layout;
mod lease;
mod library;
mod monitoring;
mod nats;
mod restart;
mod rotation;
mod shard;
mod streaming;
mod watch;
mod workload;
