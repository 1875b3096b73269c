//! faro: watch Kubernetes resources and write one JSON line per change.
//!
//! `main` only parses the command line, runs the subcommand and maps the outcome to an exit
//! code (see `exit.rs`); everything else lives in the modules below.

mod cli;
mod cmd;
mod config;
mod discovery;
mod emit;
mod exit;
mod filter;
mod gvr;
mod kubeclient;
mod logging;
mod registry;
mod selector;
mod stream;
mod workload;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::parse();
    let outcome = cmd::run(cli);
    exit::report(outcome)
}
