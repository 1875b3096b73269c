//! Exit codes and the final error report: the one place that turns an outcome into a status.
//!
//! 0 success (graceful shutdown and a closed stdout pipe included), 1 runtime failure,
//! 2 usage or configuration error, 130 a second interrupt signal. Which library errors are the
//! user's to fix (exit 2) is decided here, by their types, never by their text.

use std::fmt;
use std::process::ExitCode;

/// Exit status of a faro run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything asked for was done (or stopped gracefully).
    Success,
    /// A runtime failure: cluster unreachable, output not writable.
    Failure,
    /// Bad flags, config or input.
    Usage,
    /// Interrupted by a second signal during the graceful drain.
    Interrupted,
}

impl Status {
    /// The numeric process exit code.
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Failure => 1,
            Status::Usage => 2,
            Status::Interrupted => 130,
        }
    }
}

/// An error the user caused (bad flag, config or selector): exit code 2.
///
/// Wrap it in `anyhow::Error`; `report` finds it anywhere in the context chain.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for `Err(UsageError(msg).into())`.
pub fn usage<T>(msg: impl Into<String>) -> anyhow::Result<T> {
    Err(UsageError(msg.into()).into())
}

/// Prints the error (if any) as one line on stderr and returns the exit code.
///
/// A broken pipe anywhere in the chain means the reader went away (`faro … | head`): that is
/// a normal end, reported as success without a message, as ripgrep does.
pub fn report(outcome: anyhow::Result<Status>) -> ExitCode {
    let status = match outcome {
        Ok(status) => status,
        Err(err) if is_broken_pipe(&err) => Status::Success,
        Err(err) => {
            let status = if err.chain().any(is_usage) {
                Status::Usage
            } else {
                Status::Failure
            };
            #[allow(clippy::print_stderr)] // the final error line; logging may not be set up
            {
                eprintln!("faro: error: {}", one_line(&err));
            }
            status
        }
    };
    ExitCode::from(status.code())
}

/// Whether an error is one the user made: bad flags, a bad config, a config that contradicts
/// the cluster, a context without a kubeconfig.
fn is_usage(err: &(dyn std::error::Error + 'static)) -> bool {
    err.is::<UsageError>()
        || err.is::<faro::config::Error>()
        || err.is::<faro::tiers::Error>()
        || err.is::<faro::workload::Error>()
        || err.is::<faro::discovery::ResolveError>()
        || matches!(
            err.downcast_ref::<faro::nats::Error>(),
            Some(
                faro::nats::Error::Options(_)
                    | faro::nats::Error::File { .. }
                    | faro::nats::Error::Stream { .. }
            )
        )
        || matches!(
            err.downcast_ref::<faro::watcher::Error>(),
            Some(faro::watcher::Error::Config(_))
        )
        || matches!(
            err.downcast_ref::<faro::watcher::Error>(),
            Some(faro::watcher::Error::State(e)) if !matches!(e, faro::checkpoint::Error::Write { .. })
        )
        || matches!(
            err.downcast_ref::<faro::client::Error>(),
            Some(
                faro::client::Error::ContextWithoutKubeconfig
                    | faro::client::Error::UnknownContext { .. }
            )
        )
}

/// Prints `faro: error: MESSAGE` and exits 1 at once, whatever else is running (a stop that
/// cannot finish).
pub fn fail_now(message: &str) -> ! {
    #[allow(clippy::print_stderr)] // the final error line
    {
        eprintln!("faro: error: {message}");
    }
    std::process::exit(i32::from(Status::Failure.code()))
}

/// The context chain on one line, leaving out causes whose text the previous message already
/// quotes (kube's errors often repeat their source in their own message) and the drawings some
/// parsers add below their first line.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.lines().next().unwrap_or_default().trim().to_owned();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// True when the error chain holds an `io::ErrorKind::BrokenPipe`.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn usage_error_is_found_under_context() {
        let err = usage::<()>("bad flag").context("loading").unwrap_err();
        assert!(err.chain().any(|e| e.is::<UsageError>()));
    }

    #[test]
    fn broken_pipe_is_detected_under_context() {
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let err = anyhow::Error::from(io).context("writing stdout");
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }

    #[test]
    fn repeated_causes_are_printed_once() {
        let io = std::io::Error::other("No such file");
        let err = anyhow::Error::from(io)
            .context("failed to read 'x': No such file")
            .context("loading kubeconfig x");
        assert_eq!(
            one_line(&err),
            "loading kubeconfig x: failed to read 'x': No such file"
        );
    }

    #[test]
    fn library_errors_the_user_must_fix_are_usage_errors() {
        let config = faro::config::parse("bogus: 1\n", "c.yaml").unwrap_err();
        assert!(is_usage(&config));
        let scope = faro::watcher::Error::Config(config);
        let err = anyhow::Error::from(scope).context("starting");
        assert!(err.chain().any(is_usage));
        let context = anyhow::Error::from(faro::client::Error::ContextWithoutKubeconfig);
        assert!(context.chain().any(is_usage));
        let unreachable = anyhow::Error::from(faro::client::Error::NoKubeconfig);
        assert!(!unreachable.chain().any(is_usage));
    }

    #[test]
    fn codes_match_the_contract() {
        assert_eq!(Status::Success.code(), 0);
        assert_eq!(Status::Failure.code(), 1);
        assert_eq!(Status::Usage.code(), 2);
        assert_eq!(Status::Interrupted.code(), 130);
    }
}
