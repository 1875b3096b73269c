//! Subcommand dispatch: turns parsed flags into resolved configs and runs them.

mod discover;

use crate::cli::{Cli, Command};
use crate::exit::Status;
use crate::kubeclient::ClusterOptions;
use crate::logging;

/// Runs the parsed command line to completion.
pub fn run(cli: Cli) -> anyhow::Result<Status> {
    let cluster = ClusterOptions {
        kubeconfig: cli.global.kubeconfig.clone(),
        context: cli.global.context.clone(),
    };
    let level = logging::level(cli.global.log_level, cli.global.verbose, cli.global.quiet);
    match cli.command {
        Command::Discover(args) => {
            logging::init(level, None)?;
            // One short-lived task tree: a current-thread runtime starts fastest.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(discover::run(args, &cluster))
        }
    }
}
