//! The `kube-sim` binary: parses flags, serves until SIGINT/SIGTERM, prints the URL as the
//! first line of stdout once listening and optionally writes a kubeconfig. Logs go to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use kube_sim::{Catalog, Options};

const USAGE: &str = "\
kube-sim: an in-memory Kubernetes API server for tests, demos and benchmarks

USAGE:
    kube-sim [OPTIONS]

OPTIONS:
    --port N                 port to listen on (default 0: any free port)
    --bind ADDR              address to bind (default 127.0.0.1)
    --kubeconfig FILE        write a kubeconfig (cluster/context/user kube-sim, token kube-sim)
    --catalog NAME           vanilla | large (default vanilla)
    --no-aggregated          do not serve aggregated discovery
    --no-watch-list          refuse streaming lists (sendInitialEvents) with 422
    --no-shard-selector      ignore shardSelector (KEP-5866) as a pre-1.36 server does
    --history N              events kept for watch resumption (default 500000)
    --bookmark-interval DUR  interval of progress bookmarks, e.g. 5s (default 60s)
    --namespace-delete-delay DUR
                             delay before a Terminating namespace is emptied (default 100ms)
    --token TOKEN            require this bearer token from the start
    --log-requests           log every request to stderr
    --tls                    serve HTTPS (h2 and http/1.1) with a CA generated at start;
                             the kubeconfig carries the CA
    --h2-max-streams N       concurrent streams per HTTP/2 connection (default 250)
    -h, --help               print this help
    -V, --version            print the version

The first line on stdout is the server URL (http://127.0.0.1:PORT, or https:// under --tls). The admin API is
documented in sim/README.md.
";

/// Parsed command line.
struct Args {
    opts: Options,
    kubeconfig: Option<PathBuf>,
}

fn parse(argv: Vec<String>) -> anyhow::Result<Option<Args>> {
    let mut opts = Options::default();
    let mut kubeconfig = None;
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> anyhow::Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().with_context(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "-V" | "--version" => {
                println!("kube-sim {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            "--port" => opts.port = value("--port")?.parse().context("--port")?,
            "--bind" => opts.bind = value("--bind")?.parse().context("--bind")?,
            "--kubeconfig" => kubeconfig = Some(PathBuf::from(value("--kubeconfig")?)),
            "--catalog" => opts.catalog = value("--catalog")?.parse::<Catalog>()?,
            "--no-aggregated" => opts.aggregated = false,
            "--no-watch-list" => opts.watch_list = false,
            "--no-shard-selector" => opts.shard_selector = false,
            "--history" => opts.history_limit = value("--history")?.parse().context("--history")?,
            "--bookmark-interval" => {
                let v = value("--bookmark-interval")?;
                opts.bookmark_interval = humantime::parse_duration(&v)
                    .with_context(|| format!("--bookmark-interval {v}"))?;
                if opts.bookmark_interval < Duration::from_millis(10) {
                    bail!("--bookmark-interval must be at least 10ms");
                }
            }
            "--namespace-delete-delay" => {
                let v = value("--namespace-delete-delay")?;
                opts.namespace_delete_delay = humantime::parse_duration(&v)
                    .with_context(|| format!("--namespace-delete-delay {v}"))?;
            }
            "--token" => opts.require_token = Some(value("--token")?),
            "--log-requests" => opts.log_requests = true,
            "--tls" => opts.tls = true,
            "--h2-max-streams" => {
                opts.h2_max_streams = value("--h2-max-streams")?
                    .parse()
                    .context("--h2-max-streams")?;
                if opts.h2_max_streams == 0 {
                    bail!("--h2-max-streams must be at least 1");
                }
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    Ok(Some(Args { opts, kubeconfig }))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn main() -> std::process::ExitCode {
    let args = match parse(std::env::args().skip(1).collect()) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("kube-sim: error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kube-sim: error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let kubeconfig = args.kubeconfig.clone();
    let catalog = args.opts.catalog;
    let result = rt.block_on(kube_sim::run_until(
        args.opts,
        move |url, ca_pem| {
            if let Some(path) = &kubeconfig {
                let trust = match ca_pem {
                    Some(pem) => kube_sim::kubeconfig::Trust::Ca(pem),
                    None => kube_sim::kubeconfig::Trust::System,
                };
                kube_sim::kubeconfig::write_with(
                    path,
                    url,
                    kube_sim::kubeconfig::DEFAULT_TOKEN,
                    trust,
                )?;
            }
            let mut out = std::io::stdout().lock();
            writeln!(out, "{url}")?;
            out.flush()?;
            eprintln!("kube-sim: serving catalog {catalog} at {url}");
            Ok(())
        },
        shutdown_signal(),
    ));
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => {
            eprintln!("kube-sim: stopped");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kube-sim: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flags_parse_in_both_spellings() {
        let a = parse(argv(&[
            "--port",
            "8080",
            "--catalog=large",
            "--no-aggregated",
            "--bookmark-interval",
            "5s",
            "--history=10",
            "--tls",
            "--h2-max-streams=2",
        ]))
        .expect("parses")
        .expect("not help");
        assert_eq!(a.opts.port, 8080);
        assert_eq!(a.opts.catalog, Catalog::Large);
        assert!(!a.opts.aggregated);
        assert_eq!(a.opts.bookmark_interval, Duration::from_secs(5));
        assert_eq!(a.opts.history_limit, 10);
        assert!(a.opts.tls);
        assert_eq!(a.opts.h2_max_streams, 2);
    }

    #[test]
    fn bad_flags_are_errors() {
        assert!(parse(argv(&["--nope"])).is_err());
        assert!(parse(argv(&["--port"])).is_err());
        assert!(parse(argv(&["--catalog", "huge"])).is_err());
        assert!(parse(argv(&["--h2-max-streams", "0"])).is_err());
        assert!(parse(argv(&["--help"])).expect("ok").is_none());
    }
}
