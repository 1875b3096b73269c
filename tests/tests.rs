//! faro's integration tests: the real binary against kube-sim, changes made with the real
//! kubectl, faults injected through kube-sim's admin API only (so the same tests could run
//! against kind or k3s).
//!
//! Modules:
//! - `util`: the harness (kube-sim per test, kubectl wrapper, faro process, event decoding);
//! - `cli`: flags, help, version, usage errors;
//! - `discover`: `faro discover`;
//! - `watch`: `faro watch --config` features;
//! - `faults`: reconnects, 410, 429, the fault soak, SIGKILL;
//! - `workload`: `faro workload`.

mod util;

mod cli;
mod deploy;
mod discover;
mod faults;
mod generated;
mod watch;
mod workload;
