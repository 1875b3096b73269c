//! The outputs of `make bench`: BENCHMARKS.md (targets table, CPU table, machine, method,
//! findings, and the hand-written notes of bench/NOTES.md) and bench/results.json (every figure,
//! every run). Also collects the machine information both carry.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// One line of the targets table.
pub struct Row {
    pub case: String,
    pub faro: String,
    pub reference: String,
    pub ratio: String,
    pub target: String,
    /// None: no target.
    pub pass: Option<bool>,
    /// Said after the verdict, e.g. that the median passes but a run did not.
    pub caveat: Option<String>,
}

impl Row {
    pub fn new(
        case: &str,
        faro: String,
        reference: String,
        ratio: String,
        target: &str,
        pass: Option<bool>,
    ) -> Self {
        Self {
            case: case.into(),
            faro,
            reference,
            ratio,
            target: target.into(),
            pass,
            caveat: None,
        }
    }

    /// Adds a caveat to the verdict.
    pub fn with_caveat(mut self, caveat: Option<String>) -> Self {
        self.caveat = caveat;
        self
    }

    fn verdict(&self) -> String {
        let v = match self.pass {
            Some(true) => "pass",
            Some(false) => "**FAIL**",
            None => "info",
        };
        match &self.caveat {
            Some(c) => format!("{v} ({c})"),
            None => v.to_string(),
        }
    }
}

/// One line of the CPU table.
pub struct CpuRow {
    pub case: String,
    pub process: String,
    /// Events (lines) printed in the timed phase.
    pub events: String,
    /// CPU seconds of the timed phase.
    pub cpu: String,
    pub cpu_per_100k: String,
    pub peak_rss: String,
}

/// What a case hands back.
pub struct CaseResult {
    pub json: Value,
    pub rows: Vec<Row>,
    pub cpu_rows: Vec<CpuRow>,
    pub findings: Vec<String>,
    /// Markdown appended after the findings (e.g. a profile).
    pub details: String,
}

/// One case's outcome, for the report.
pub struct Outcome {
    pub key: &'static str,
    pub title: &'static str,
    pub seconds: f64,
    pub result: Result<CaseResult>,
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .map(|o| {
            let s = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&s)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// CPU, cores, memory, kernel, toolchain and tool versions, commit and date.
pub fn machine(kubectl: &Path) -> Value {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_kib: u64 = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--", "src", "sim", "Cargo.lock"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    json!({
        "date": first_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": (mem_kib as f64 / 1048576.0 * 10.0).round() / 10.0,
        "kernel": fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "load_average_at_start": fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "rustc": first_line("rustc", &["--version"]),
        "commit": first_line("git", &["rev-parse", "--short", "HEAD"]),
        "source_dirty": dirty,
        "kubectl": format!("{} ({})", kubectl.display(), first_line(&kubectl.display().to_string(), &["version", "--client"])),
        "curl": first_line("curl", &["--version"]).split_whitespace().take(2).collect::<Vec<_>>().join(" "),
        "hyperfine": first_line("hyperfine", &["--version"]),
    })
}

const METHOD: &str = "\
- **Processes.** kube-sim, faro, curl and kubectl run as separate processes; CPU seconds are \
utime + stime of the measured process alone from /proc/PID/stat (all its threads), peak RSS is its \
VmHWM from /proc/PID/status, read just before it is killed. kube-sim's CPU and memory are never \
counted. kubectl is the versioned binary (`kubectl.1.32`), not the /usr/bin/kubectl dispatcher.
- **Line counting.** faro, kubectl and one curl write into a pipe read by the driver's counter \
thread (1 MiB reads, newline count, instant of the N-th line). Exit codes are not trusted.
- **1. Throughput.** Fresh kube-sim per run. `/_sim/prerender` builds N creation events of ~1 KiB \
serialized back to back; the consumer opens its watch on `/api/v1/configmaps` (all namespaces) \
from the RV before the burst (faro: its --ready-file and the watch in `/_sim/watches`; kubectl and \
curl: the watch in `/_sim/watches`), then `/_sim/burst` commits them at once. The clock starts when \
the burst is committed (its reply, or the consumer's first byte if earlier) and stops at the \
N-th line (for `curl -N -o /dev/null`, when its wchar in /proc/PID/io has grown by the stream's \
size; for `faro → /dev/null`, by the bytes faro wrote into the pipe in the same round). Consumers run one at a time, interleaved in each round. curl → /dev/null is the source \
rate (the limit); curl into the counter pipe shows what the pipe itself allows.
- **2./5. Memory and startup.** One kube-sim loaded with 10 namespaces × 10,000 ConfigMaps of \
~1 KiB. Each run starts `faro watch` on v1/configmaps (every namespace, initial events printed), \
times spawn → --ready-file (ready means every initial line is flushed; 100,000 are checked), \
then sends 10,000 merge PATCHes of `data.value` (1,000 objects per namespace, one keep-alive \
connection; kube-sim's churn mixes creates and deletes in, so it is not used) and waits for the \
10,000 UPDATED lines; peak RSS is faro's VmHWM after that. The startup reference is curl fetching \
the same objects as one unpaged LIST to /dev/null.
- **3. Discovery.** kube-sim `--catalog large`. hyperfine `-N`, 2 warmups, `--prepare 'rm -rf \
CACHE'` before every run of both commands: `kubectl.1.32 --cache-dir CACHE api-resources` vs \
`faro discover` (JSON lines, the full information of every GVR); outputs to /dev/null. Ratio of \
medians.
- **4. Fan-out.** Fresh kube-sim per run with 1,000 namespaces labelled `team=<name>`, each \
with one ConfigMap, Secret and Service; `faro workload -label team -workloadgvrs \
v1/configmaps,v1/secrets,v1/services`. Peak RSS over the whole run (startup and latency phase). \
Latency: namespaces are created without the label, get their three objects, then are labelled \
by a merge PATCH at a fixed pace; a sample is faro's `timestamp` on the first line of that \
namespace minus the label's commit time in `/_sim/history` (same machine clock; the arrival time \
at the counter is in results.json as a cross-check). Percentiles are nearest-rank over the \
samples of all runs; a namespace never seen counts as infinite.
- **Spread.** Each figure is the median over the runs, with (min–max). Ratios are ratios of \
medians.
- **CPU seconds per 100,000 events** = the process's CPU seconds over the timed phase × \
100,000 / events printed in it. The fan-out rows are dominated by starting watches (3,000 at \
start-up, 3 per joining namespace), not by events.";

/// Writes BENCHMARKS.md and results.json.
pub fn write(
    md_path: &Path,
    json_path: &Path,
    machine: &Value,
    settings: &Value,
    outcomes: &[Outcome],
    notes: Option<String>,
    total_s: f64,
) -> Result<()> {
    let mut md = String::new();
    let m = |k: &str| {
        machine[k]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| machine[k].to_string())
    };
    writeln!(md, "# Benchmarks\n")?;
    writeln!(
        md,
        "Written by `make bench` (bench/run.sh → the `faro-bench` driver in bench/) on {} at commit {}{}; \
         the driver took {:.0} s{}. Do not edit by hand: rerun `make bench`. The hand-written notes at the end \
         come from bench/NOTES.md. Every figure and every run is in bench/results.json. Targets: \
         shared design.md §8. Options go through run.sh to the driver, e.g. \
         `bash bench/run.sh --cases throughput --runs 5 --perf` (`target/release/faro-bench --help`).\n",
        m("date"),
        m("commit"),
        if machine["source_dirty"] == true {
            " (with uncommitted changes to src/ or sim/)"
        } else {
            ""
        },
        total_s,
        settings["build_seconds"]
            .as_f64()
            .map(|b| format!(" after a {b:.0} s release build"))
            .unwrap_or_default()
    )?;
    writeln!(md, "## Results\n")?;
    writeln!(md, "| case | faro | reference | ratio | target | result |")?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    let mut rows_json = Vec::new();
    for o in outcomes {
        match &o.result {
            Ok(r) => {
                for row in &r.rows {
                    writeln!(
                        md,
                        "| {} | {} | {} | {} | {} | {} |",
                        row.case,
                        row.faro,
                        row.reference,
                        row.ratio,
                        row.target,
                        row.verdict()
                    )?;
                    rows_json.push(json!({
                        "case": row.case, "faro": row.faro, "reference": row.reference,
                        "ratio": row.ratio, "target": row.target, "pass": row.pass,
                        "caveat": row.caveat,
                    }));
                }
            }
            Err(e) => {
                writeln!(md, "| {} | error | — | — | — | **ERROR** |", o.title)?;
                rows_json.push(json!({"case": o.title, "error": format!("{e:#}")}));
            }
        }
    }
    writeln!(
        md,
        "\nMedian of the runs, (min–max) across them. A verdict is on the median; a caveat says \
         when single runs fell on the other side of the target.\n"
    )?;

    writeln!(md, "## CPU seconds per 100,000 events\n")?;
    writeln!(
        md,
        "| case (timed phase) | process | events | CPU s | CPU s / 100k events | peak RSS (MiB) |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    for o in outcomes {
        if let Ok(r) = &o.result {
            for c in &r.cpu_rows {
                writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} |",
                    c.case, c.process, c.events, c.cpu, c.cpu_per_100k, c.peak_rss
                )?;
            }
        }
    }

    writeln!(md, "\n## Machine\n")?;
    for (k, label) in [
        ("cpu", "CPU"),
        ("cores", "cores"),
        ("memory_gib", "memory (GiB)"),
        ("kernel", "kernel"),
        ("load_average_at_start", "load average at start"),
        ("rustc", "rustc"),
        ("kubectl", "kubectl"),
        ("curl", "curl"),
        ("hyperfine", "hyperfine"),
        ("date", "date (UTC)"),
    ] {
        writeln!(md, "- {label}: {}", m(k))?;
    }
    writeln!(
        md,
        "- settings: {} runs per case, {} throughput events, {} latency samples per fan-out run",
        settings["runs"], settings["events"], settings["latency_samples"]
    )?;

    writeln!(md, "\n## Method\n\n{METHOD}\n")?;
    writeln!(md, "## Findings\n")?;
    for o in outcomes {
        match &o.result {
            Ok(r) => {
                for f in &r.findings {
                    writeln!(md, "- {f}")?;
                }
            }
            Err(e) => writeln!(
                md,
                "- {}: the case failed: {}",
                o.title,
                format!("{e:#}").replace('\n', " ")
            )?,
        }
    }
    for o in outcomes {
        if let Ok(r) = &o.result
            && !r.details.is_empty()
        {
            writeln!(md, "\n{}", r.details.trim_end())?;
        }
    }
    if let Some(n) = notes {
        writeln!(md, "\n{}", n.trim_end())?;
    }
    fs::write(md_path, md).with_context(|| format!("writing {}", md_path.display()))?;

    let mut cases = serde_json::Map::new();
    for o in outcomes {
        cases.insert(
            o.key.into(),
            match &o.result {
                Ok(r) => {
                    let mut v = r.json.clone();
                    v["case_seconds"] = json!(o.seconds);
                    v
                }
                Err(e) => json!({"error": format!("{e:#}"), "case_seconds": o.seconds}),
            },
        );
    }
    let all = json!({
        "machine": machine,
        "settings": settings,
        "driver_seconds": total_s,
        "targets": rows_json,
        "cases": cases,
    });
    fs::write(json_path, serde_json::to_string_pretty(&all)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    Ok(())
}
