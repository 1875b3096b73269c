//! Logging via `tracing` to stderr (and optionally a text log file); never to stdout.
//!
//! Level: `RUST_LOG` when set, else `--log-level` (or the config's `log_level`), else info
//! shifted by `-v`/`-q`.

use std::sync::Arc;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use faro::config::LogLevel;

use crate::sink::LogFile;

/// The level the command line asked for, to be resolved against a config file's `log_level`.
#[derive(Debug, Clone, Copy)]
pub struct LogLevelChoice {
    /// `--log-level`.
    pub explicit: Option<LogLevel>,
    /// `-v` count.
    pub verbose: u8,
    /// `-q` count.
    pub quiet: u8,
}

impl LogLevelChoice {
    /// Flags win over the config's level, which wins over the default.
    pub fn resolve(self, config: Option<LogLevel>) -> LogLevel {
        if self.explicit.is_none() && self.verbose == 0 && self.quiet == 0 {
            if let Some(level) = config {
                return level;
            }
        }
        level(self.explicit, self.verbose, self.quiet)
    }
}

/// Resolves the effective level from the flags: an explicit level wins over `-v`/`-q`.
pub fn level(explicit: Option<LogLevel>, verbose: u8, quiet: u8) -> LogLevel {
    if let Some(level) = explicit {
        return level;
    }
    match (verbose, quiet) {
        (0, 0) => LogLevel::Info,
        (1, _) => LogLevel::Debug,
        (v, _) if v >= 2 => LogLevel::Trace,
        (_, 1) => LogLevel::Warning,
        _ => LogLevel::Error,
    }
}

fn directive(level: LogLevel) -> &'static str {
    // Our own crate at the chosen level; dependencies (kube, hyper) one notch quieter unless
    // tracing everything, so `-v` shows faro's decisions rather than connection pool chatter.
    // kube-client's trace layer (client/builder.rs) logs every failed request at ERROR ("failed
    // with error client error (Connect)"); faro reports those failures itself, in its own words.
    // async-nats logs each failed reconnection attempt at ERROR; faro reports the connection's
    // losses, reconnections and the server's complaints itself (`faro::nats`), once each.
    // The library and the binary are both the `faro` crate to tracing.
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "warn,faro=debug,kube_client::client::builder=off,async_nats=off",
        LogLevel::Info => "warn,faro=info,kube_client::client::builder=off,async_nats=off",
        LogLevel::Warning => "warn,kube_client::client::builder=off,async_nats=off",
        LogLevel::Error => "error,kube_client::client::builder=off,async_nats=off",
    }
}

/// Installs the global subscriber. With `log_file`, the same lines also go to that file
/// (without colours); the file is shared with the `SIGHUP` handler, which reopens it.
pub fn init(level: LogLevel, log_file: Option<Arc<LogFile>>) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(spec)
            .map_err(|e| crate::exit::UsageError(format!("invalid RUST_LOG: {e}")))?,
        _ => EnvFilter::new(directive(level)),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi && log_file.is_none());
    let result = match log_file {
        None => builder.with_writer(std::io::stderr).try_init(),
        Some(file) => builder.with_writer(std::io::stderr.and(file)).try_init(),
    };
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = result;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_level_wins_over_verbosity() {
        assert_eq!(level(Some(LogLevel::Error), 2, 0), LogLevel::Error);
    }

    #[test]
    fn flags_win_over_the_config_level() {
        let none = LogLevelChoice {
            explicit: None,
            verbose: 0,
            quiet: 0,
        };
        assert_eq!(none.resolve(Some(LogLevel::Debug)), LogLevel::Debug);
        assert_eq!(none.resolve(None), LogLevel::Info);
        let quiet = LogLevelChoice { quiet: 1, ..none };
        assert_eq!(quiet.resolve(Some(LogLevel::Debug)), LogLevel::Warning);
    }

    #[test]
    fn verbosity_shifts_from_info() {
        assert_eq!(level(None, 0, 0), LogLevel::Info);
        assert_eq!(level(None, 1, 0), LogLevel::Debug);
        assert_eq!(level(None, 3, 0), LogLevel::Trace);
        assert_eq!(level(None, 0, 1), LogLevel::Warning);
        assert_eq!(level(None, 0, 2), LogLevel::Error);
    }
}
