//! `faro watch --config FILE`: watch what a config file names.

use faro::Watcher;
use faro::client::ClusterOptions;

use crate::cli::WatchArgs;
use crate::cmd::session::{self, Settings};
use crate::exit::Status;
use crate::logging::{self, LogLevelChoice};

/// Loads the config, then runs the session.
pub fn run(
    args: WatchArgs,
    cluster: &ClusterOptions,
    level: LogLevelChoice,
) -> anyhow::Result<Status> {
    let file = faro::config::load(&args.config)?;
    if file.watch.is_empty() {
        return crate::exit::usage(format!(
            "{}: the config names nothing to watch (add namespaces: or resources: entries)",
            args.config.display()
        ));
    }
    let settings = Settings::resolve(&args.output, &file.settings)?;
    logging::init(
        level.resolve(file.settings.log_level),
        settings.log_file.clone(),
    )?;
    session::run(cluster, settings, |client| Watcher::new(client, file.watch))
}
