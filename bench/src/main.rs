//! `faro-bench`, the driver of `make bench`: runs the benchmark cases of design.md §8 against
//! kube-sim (throughput, memory and startup, discovery, fan-out), each several times side by
//! side with its reference (curl, kubectl), and writes BENCHMARKS.md and bench/results.json.
//! Argument parsing and the case loop live here; each case has its own module.

mod counter;
mod diff;
mod discovery;
mod fanout;
mod http;
mod memory;
mod nats;
mod process;
mod procfs;
mod profile;
mod report;
mod restart;
mod sim;
mod stats;
mod throughput;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::report::{CaseResult, Outcome};

const USAGE: &str = "\
usage: faro-bench [options]
  --bin-dir DIR        faro and kube-sim binaries (default target/release)
  --kubectl PATH       kubectl to compare with (default /usr/lib/google-cloud-sdk/bin/kubectl.1.32)
  --work-dir DIR       scratch directory, emptied first (default target/bench-work)
  --md PATH            report (default BENCHMARKS.md)
  --json PATH          machine-readable results (default bench/results.json)
  --notes PATH         hand-written notes appended to the report (default bench/NOTES.md)
  --cases LIST         throughput,memory,million,discovery,fanout,fanout-large,restart,diff,nats
                       (default all)
  --runs N             runs per case (default 3)
  --events N           throughput events (default 200000)
  --samples N          fan-out latency samples per run (default 200)
  --label-interval-ms N  pace of the fan-out labels (default 25)
  --fanout-http1       serve the fan-out cases over plain HTTP/1.1 (one connection per watch)
                       instead of TLS + HTTP/2 (kube-sim --tls), as design.md §8 measures them;
                       the TCP connection count is reported either way
  --discovery-runs N   hyperfine runs per command (default 20)
  --build-seconds N    time run.sh spent building, for the report
  --perf               profile faro in the throughput case even when its targets are met
                       (it is profiled whenever they are missed)
  --baseline DIR       also run the faro binary in DIR in every throughput round, side by side
                       with this one (to compare two commits in one run; kube-sim stays this one)";

/// A case: runs its runs and hands back its figures.
type CaseFn = fn(&Ctx) -> Result<CaseResult>;

/// What every case needs.
#[derive(Clone)]
pub struct Ctx {
    pub bin_dir: PathBuf,
    pub kubectl: PathBuf,
    pub work: PathBuf,
    pub runs: usize,
    pub events: u64,
    pub latency_samples: usize,
    pub label_interval: Duration,
    /// Fan-out over TLS (and so HTTP/2).
    pub fanout_tls: bool,
    pub discovery_runs: usize,
    /// Profile faro in the throughput case even when the targets are met.
    pub perf: bool,
    /// A directory with another faro binary to run side by side in the throughput case.
    pub baseline: Option<PathBuf>,
    /// The faro binary, when it is not the one in `bin_dir`.
    pub faro_bin: Option<PathBuf>,
}

impl Ctx {
    pub fn faro(&self) -> PathBuf {
        self.faro_bin
            .clone()
            .unwrap_or_else(|| self.bin_dir.join("faro"))
    }

    /// `faro --kubeconfig KUBECONFIG ARGS... --ready-file READY`: how every case starts faro.
    pub fn faro_cmd<S: AsRef<std::ffi::OsStr>>(
        &self,
        kubeconfig: &std::path::Path,
        args: impl IntoIterator<Item = S>,
        ready: &std::path::Path,
    ) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.faro());
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .arg("--ready-file")
            .arg(ready);
        cmd
    }

    /// A fresh directory under the work dir.
    pub fn case_dir(&self, name: &str) -> Result<PathBuf> {
        let d = self.work.join(name);
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        Ok(d)
    }
}

struct Args {
    ctx: Ctx,
    md: PathBuf,
    json: PathBuf,
    notes: PathBuf,
    cases: Vec<String>,
    build_seconds: Option<f64>,
}

/// Every case, in the order they run.
const CASES: [&str; 9] = [
    "throughput",
    "memory",
    "million",
    "discovery",
    "fanout",
    "fanout-large",
    "restart",
    "diff",
    "nats",
];

fn parse_args() -> Result<Args> {
    let mut ctx = Ctx {
        bin_dir: "target/release".into(),
        kubectl: "/usr/lib/google-cloud-sdk/bin/kubectl.1.32".into(),
        work: "target/bench-work".into(),
        runs: 3,
        events: 200_000,
        latency_samples: 200,
        label_interval: Duration::from_millis(25),
        fanout_tls: true,
        discovery_runs: 20,
        perf: false,
        baseline: None,
        faro_bin: None,
    };
    let mut md = PathBuf::from("BENCHMARKS.md");
    let mut json = PathBuf::from("bench/results.json");
    let mut notes = PathBuf::from("bench/NOTES.md");
    let mut cases: Vec<String> = CASES.map(String::from).to_vec();
    let mut build_seconds = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "-h" || a == "--help" {
            eprintln!("{USAGE}");
            std::process::exit(0);
        }
        if a == "--perf" {
            ctx.perf = true;
            continue;
        }
        if a == "--fanout-http1" {
            ctx.fanout_tls = false;
            continue;
        }
        let v = it
            .next()
            .with_context(|| format!("{a} needs a value\n{USAGE}"))?;
        let num = |v: &str| -> Result<usize> {
            v.parse().with_context(|| format!("{a}: not a number: {v}"))
        };
        match a.as_str() {
            "--bin-dir" => ctx.bin_dir = v.into(),
            "--kubectl" => ctx.kubectl = v.into(),
            "--work-dir" => ctx.work = v.into(),
            "--md" => md = v.into(),
            "--json" => json = v.into(),
            "--notes" => notes = v.into(),
            "--cases" => cases = v.split(',').map(str::to_string).collect(),
            "--runs" => ctx.runs = num(&v)?.max(1),
            "--events" => ctx.events = num(&v)? as u64,
            "--samples" => ctx.latency_samples = num(&v)?,
            "--label-interval-ms" => ctx.label_interval = Duration::from_millis(num(&v)? as u64),
            "--discovery-runs" => ctx.discovery_runs = num(&v)?.max(1),
            "--build-seconds" => build_seconds = Some(num(&v)? as f64),
            "--baseline" => ctx.baseline = Some(v.into()),
            _ => bail!("unknown option {a}\n{USAGE}"),
        }
    }
    for c in &cases {
        if !CASES.contains(&c.as_str()) {
            bail!("unknown case {c}\n{USAGE}");
        }
    }
    Ok(Args {
        ctx,
        md,
        json,
        notes,
        cases,
        build_seconds,
    })
}

fn check_tools(ctx: &Ctx) -> Result<()> {
    for b in [
        ctx.faro(),
        ctx.bin_dir.join("kube-sim"),
        ctx.kubectl.clone(),
    ] {
        if !b.is_file() {
            bail!(
                "{} not found (build with `cargo build --release -p faro -p kube-sim`)",
                b.display()
            );
        }
    }
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!("curl not found");
    }
    Ok(())
}

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("faro-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ok(false) when a case failed (the report is still written).
fn real_main() -> Result<bool> {
    let args = parse_args()?;
    let ctx = &args.ctx;
    check_tools(ctx)?;
    let _ = fs::remove_dir_all(&ctx.work);
    fs::create_dir_all(&ctx.work).with_context(|| format!("creating {}", ctx.work.display()))?;
    let machine = report::machine(&ctx.kubectl);
    let settings = json!({
        "runs": ctx.runs,
        "events": ctx.events,
        "latency_samples": ctx.latency_samples,
        "label_interval_ms": ctx.label_interval.as_millis() as u64,
        "discovery_runs": ctx.discovery_runs,
        "cases": args.cases,
        "build_seconds": args.build_seconds,
    });
    let t0 = Instant::now();
    let mut outcomes = Vec::new();
    for c in &args.cases {
        let (key, title, f): (&str, &str, CaseFn) = match c.as_str() {
            "throughput" => ("throughput", "1. throughput", throughput::run),
            "memory" => ("memory_startup", "2./5. memory and startup", memory::run),
            "million" => ("million", "2b./5b. a million objects", memory::run_million),
            "discovery" => ("discovery", "3. discovery", discovery::run),
            "restart" => ("restart", "6. restart", restart::run),
            "diff" => ("diff", "7. diff", diff::run),
            "nats" => ("nats", "8. NATS JetStream", nats::run),
            "fanout-large" => (
                "fanout_large",
                "4b. fan-out, 10,000 workloads",
                fanout::run_large,
            ),
            _ => ("fanout", "4. fan-out", fanout::run),
        };
        eprintln!("== {title}");
        let t = Instant::now();
        let result = f(ctx);
        if let Err(e) = &result {
            eprintln!("faro-bench: {title} failed: {e:#}");
        }
        eprintln!("   ({:.0} s)", t.elapsed().as_secs_f64());
        outcomes.push(Outcome {
            key,
            title,
            seconds: t.elapsed().as_secs_f64(),
            result,
        });
    }
    let notes = read_notes(&args.notes);
    report::write(
        &args.md,
        &args.json,
        &machine,
        &settings,
        &outcomes,
        notes,
        t0.elapsed().as_secs_f64(),
    )?;
    eprintln!("wrote {} and {}", args.md.display(), args.json.display());
    Ok(outcomes.iter().all(|o| o.result.is_ok()))
}

fn read_notes(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok()
}
