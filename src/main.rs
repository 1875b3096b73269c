//! faro: watch Kubernetes resources and write one JSON line per change.
//!
//! The binary is the first user of the `faro` library: `main` only parses the command line,
//! runs the subcommand and maps the outcome to an exit code (see `exit.rs`). Its own modules
//! are the command line (`cli`), the subcommands (`cmd`), exit codes (`exit`), stderr logging
//! (`logging`) and the outputs (`sink`: stdout and the event files).

mod cli;
mod cmd;
mod exit;
mod logging;
mod sink;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::complete_if_asked();
    let cli = cli::parse();
    let outcome = cmd::run(cli);
    exit::report(outcome)
}
