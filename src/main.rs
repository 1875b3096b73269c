//! faro: watch Kubernetes resources and write one JSON line per change.
//!
//! `main` only parses the command line, runs the subcommand and maps the outcome to an exit
//! code (see `exit.rs`); everything else lives in the modules below.

mod cli;
mod cmd;
mod discovery;
mod emit;
mod gvr;
mod exit;
mod kubeclient;
mod logging;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::parse();
    let outcome = cmd::run(cli);
    exit::report(outcome)
}
