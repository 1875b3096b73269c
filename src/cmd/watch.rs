//! `faro watch --config FILE`: watch what a config file names.

use crate::cli::WatchArgs;
use crate::cmd::session::{self, Output};
use crate::config;
use crate::exit::Status;
use crate::filter::{Mode, Planner};
use crate::kubeclient::ClusterOptions;
use crate::logging::{self, LogLevelChoice};

/// Loads the config, discovers the cluster and runs the session.
pub fn run(
    args: WatchArgs,
    cluster: &ClusterOptions,
    level: LogLevelChoice,
) -> anyhow::Result<Status> {
    let file = config::load(&args.config)?;
    if file.entries.is_empty() {
        return crate::exit::usage(format!(
            "{}: the config names nothing to watch (add namespaces: or resources: entries)",
            args.config.display()
        ));
    }
    let output = Output::resolve(&args.output, file.output_dir.clone(), file.json_export)?;
    logging::init(
        level.resolve(file.log_level),
        output.files.as_ref().map(|f| f.log.as_path()),
    )?;
    let auto_shutdown = args.output.auto_shutdown.or(file.auto_shutdown);
    session::start(cluster, output, auto_shutdown, None, |discovery| {
        config::check_scopes(&file.entries, discovery)?;
        Ok(Planner::new(Mode::Watch {
            entries: file.entries,
            threshold: file.cluster_wide_threshold,
        }))
    })
}
