//! Subcommand dispatch: turns parsed flags into resolved configs and runs them.

pub mod complete;
mod discover;
mod generate;
pub mod monitor;
mod session;
mod watch;
mod workload;

use faro::client::ClusterOptions;

use crate::cli::{Cli, Command};
use crate::exit::Status;
use crate::logging::{self, LogLevelChoice};

/// Runs the parsed command line to completion.
pub fn run(cli: Cli) -> anyhow::Result<Status> {
    let cluster = ClusterOptions {
        kubeconfig: cli.global.kubeconfig.clone(),
        context: cli.global.context.clone(),
        http1: cli.global.http1,
    };
    let level = LogLevelChoice {
        explicit: cli.global.log_level,
        verbose: cli.global.verbose,
        quiet: cli.global.quiet,
    };
    match cli.command {
        Command::Watch(args) => watch::run(args, &cluster, level),
        Command::Workload(args) => workload::run(args, &cluster, level),
        Command::Generate(args) => generate::run(args),
        Command::Discover(args) => {
            logging::init(level.resolve(None), None)?;
            // One short-lived task tree: a current-thread runtime starts fastest.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(discover::run(args, &cluster))
        }
    }
}
