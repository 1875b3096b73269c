//! Case 1, throughput: one watch stream of N pre-rendered ~1 KiB ConfigMap creations
//! (`/_sim/prerender` then `/_sim/burst`), drained by faro, by `curl -N` (to /dev/null: the
//! limit; and into the same line-counter pipe as the others) and by kubectl 1.32
//! (`get configmaps -A -w -o json --output-watch-events`). Every run gets a fresh kube-sim.
//! The clock starts when the burst is committed (its reply, or the first byte a consumer gets
//! if that is earlier) and stops at the consumer's N-th line (curl to /dev/null: when it has
//! read all the stream's bytes, from /proc/PID/io).
//!
//! The same stream is also served by kube-sim `--tls` to `curl --http2` (to /dev/null) and to
//! faro, which speaks HTTP/2 there (issue 14: reported beside curl, with no target of its own).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::counter::Counter;
use crate::http::Http;
use crate::process::{Out, Proc};
use crate::report::{CaseResult, CpuRow, Row};
use crate::sim::Sim;
use crate::stats::{median, spread, summary};
use crate::{Ctx, procfs, profile};

#[derive(Clone, Copy, PartialEq)]
enum Consumer {
    CurlNull,
    CurlPipe,
    Faro,
    FaroNull,
    Kubectl,
    /// faro with `--metrics-addr` (issue 16: within 5 % of without).
    FaroMetrics,
    /// `curl --http2` over TLS (kube-sim `--tls`) to /dev/null: the limit over HTTP/2.
    CurlNullH2,
    /// faro over TLS, where it speaks HTTP/2 (ALPN), into the counter pipe.
    FaroH2,
}

impl Consumer {
    const ALL: [Consumer; 8] = [
        Consumer::CurlNull,
        Consumer::CurlPipe,
        Consumer::Faro,
        Consumer::FaroNull,
        Consumer::Kubectl,
        Consumer::FaroMetrics,
        Consumer::CurlNullH2,
        Consumer::FaroH2,
    ];

    fn name(self) -> &'static str {
        match self {
            Consumer::CurlNull => "curl_devnull",
            Consumer::CurlPipe => "curl_pipe",
            Consumer::Faro => "faro",
            Consumer::FaroNull => "faro_devnull",
            Consumer::Kubectl => "kubectl",
            Consumer::FaroMetrics => "faro_metrics",
            Consumer::CurlNullH2 => "curl_h2_devnull",
            Consumer::FaroH2 => "faro_h2",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Consumer::CurlNull => "curl -N → /dev/null",
            Consumer::CurlPipe => "curl -N → counter pipe",
            Consumer::Faro => "faro watch → counter pipe",
            Consumer::FaroNull => "faro watch → /dev/null",
            Consumer::Kubectl => "kubectl 1.32 get -w → counter pipe",
            Consumer::FaroMetrics => "faro watch --metrics-addr → counter pipe",
            Consumer::CurlNullH2 => "curl --http2 (TLS) → /dev/null",
            Consumer::FaroH2 => "faro watch (TLS, HTTP/2) → counter pipe",
        }
    }

    fn faro(self) -> bool {
        matches!(
            self,
            Consumer::Faro | Consumer::FaroNull | Consumer::FaroMetrics | Consumer::FaroH2
        )
    }

    /// Served by kube-sim `--tls` (and so over HTTP/2, as both curl and faro offer `h2`).
    fn tls(self) -> bool {
        matches!(self, Consumer::CurlNullH2 | Consumer::FaroH2)
    }
}

/// One consumer's run.
struct Run {
    seconds: f64,
    from_call: f64,
    first_delay: f64,
    burst_call: f64,
    cpu: f64,
    peak_rss: u64,
    sim_cpu: f64,
    bytes: u64,
    profile: Option<Value>,
}

pub fn run(ctx: &Ctx) -> Result<CaseResult> {
    let n = ctx.events;
    let mut runs: Vec<Vec<Run>> = Consumer::ALL.iter().map(|_| Vec::new()).collect();
    // The baseline faro (another build), run right after this one in each round.
    let baseline_ctx = ctx.baseline.as_ref().map(|dir| Ctx {
        faro_bin: Some(dir.join("faro")),
        ..ctx.clone()
    });
    let mut baseline_runs: Vec<Run> = Vec::new();
    for round in 0..ctx.runs {
        let mut faro_bytes = None;
        for (i, c) in Consumer::ALL.iter().enumerate() {
            let dir = ctx.case_dir(&format!("throughput/{}-{round}", c.name()))?;
            let r = one(ctx, *c, n, &dir, faro_bytes, false)
                .with_context(|| format!("throughput: {} run {}", c.name(), round + 1))?;
            eprintln!(
                "  throughput {:<13} run {}: {:>8.0} events/s ({:.3} s), cpu {:.2} s, peak RSS {:.1} MiB",
                c.name(),
                round + 1,
                n as f64 / r.seconds,
                r.seconds,
                r.cpu,
                r.peak_rss as f64 / 1048576.0
            );
            if *c == Consumer::Faro {
                faro_bytes = Some(r.bytes);
            }
            runs[i].push(r);
            if *c == Consumer::Faro
                && let Some(bctx) = &baseline_ctx
            {
                let dir = ctx.case_dir(&format!("throughput/faro_baseline-{round}"))?;
                let r = one(bctx, Consumer::Faro, n, &dir, None, false)
                    .with_context(|| format!("throughput: baseline faro run {}", round + 1))?;
                eprintln!(
                    "  throughput {:<13} run {}: {:>8.0} events/s ({:.3} s), cpu {:.2} s, peak RSS {:.1} MiB",
                    "faro_baseline",
                    round + 1,
                    n as f64 / r.seconds,
                    r.seconds,
                    r.cpu,
                    r.peak_rss as f64 / 1048576.0
                );
                baseline_runs.push(r);
            }
        }
    }

    let rate = |i: usize| -> Vec<f64> { runs[i].iter().map(|r| n as f64 / r.seconds).collect() };
    let cpu100k = |i: usize| -> Vec<f64> {
        runs[i]
            .iter()
            .map(|r| r.cpu * 100_000.0 / n as f64)
            .collect()
    };
    let (null, pipe, faro, faro_null, kubectl) = (rate(0), rate(1), rate(2), rate(3), rate(4));
    let with_metrics = rate(5);
    let (null_h2, faro_h2) = (rate(6), rate(7));
    let ratio_h2 = median(&faro_h2) / median(&null_h2);
    let ratio_metrics = median(&with_metrics) / median(&faro);
    let ratio_curl = median(&faro) / median(&null);
    let ratio_kubectl = median(&faro) / median(&kubectl);

    let mut consumers = serde_json::Map::new();
    for (i, c) in Consumer::ALL.iter().enumerate() {
        let rs = &runs[i];
        let col =
            |f: &dyn Fn(&Run) -> f64| -> Value { summary(&rs.iter().map(f).collect::<Vec<_>>()) };
        consumers.insert(
            c.name().into(),
            json!({
                "label": c.label(),
                "events_per_second": summary(&rate(i)),
                "seconds": col(&|r| r.seconds),
                "seconds_from_burst_call": col(&|r| r.from_call),
                "first_event_after_burst_call_seconds": col(&|r| r.first_delay),
                "megabytes_per_second": col(&|r| r.bytes as f64 / r.seconds / 1e6),
                "cpu_seconds": col(&|r| r.cpu),
                "cpu_seconds_per_100k_events": summary(&cpu100k(i)),
                "peak_rss_bytes": col(&|r| r.peak_rss as f64),
                "kube_sim_cpu_seconds": col(&|r| r.sim_cpu),
                "burst_call_seconds": col(&|r| r.burst_call),
            }),
        );
    }
    if let Some(dir) = &ctx.baseline {
        let rates: Vec<f64> = baseline_runs.iter().map(|r| n as f64 / r.seconds).collect();
        let cpus: Vec<f64> = baseline_runs
            .iter()
            .map(|r| r.cpu * 100_000.0 / n as f64)
            .collect();
        consumers.insert(
            "faro_baseline".into(),
            json!({
                "label": format!("faro from {} → counter pipe", dir.display()),
                "events_per_second": summary(&rates),
                "cpu_seconds_per_100k_events": summary(&cpus),
            }),
        );
    }
    // A missed target gets a profile of one more faro run (not part of the figures above).
    let mut details = String::new();
    let mut profile_json = Value::Null;
    if ratio_curl < 0.5 || ratio_kubectl < 3.0 || ctx.perf {
        if profile::available() {
            let dir = ctx.case_dir("throughput/faro-profile")?;
            let r = one(ctx, Consumer::Faro, n, &dir, None, true)
                .context("throughput: profiled faro run")?;
            if let Some(pr) = r.profile {
                details = format!(
                    "### Profile of faro in the throughput case

\
                     One extra `faro watch → counter pipe` run (not counted above), sampled by \
                     `perf record -F 2999` from just before the burst to the N-th line; it ran at {:.0} ev/s.\n\n{}",
                    n as f64 / r.seconds,
                    profile::markdown(&pr)
                );
                profile_json = pr;
            }
        } else {
            details = "perf is not installed: no profile of the missed throughput target.\n".into();
        }
    }
    let json = json!({
        "profile": profile_json,
        "events": n,
        "event_size_bytes": 1024,
        "runs": ctx.runs,
        "consumers": consumers,
        "ratio_faro_to_curl_devnull": ratio_curl,
        "ratio_faro_to_curl_pipe": median(&faro) / median(&pipe),
        "ratio_faro_devnull_to_curl_devnull": median(&faro_null) / median(&null),
        "ratio_faro_to_kubectl": ratio_kubectl,
        "ratio_faro_metrics_to_faro": ratio_metrics,
        "ratio_faro_h2_to_curl_h2_devnull": ratio_h2,
    });

    let ev = |xs: &[f64]| format!("{} ev/s", spread_k(xs));
    let rows = vec![
        Row::new(
            "1. throughput vs curl (the limit)",
            ev(&faro),
            format!("curl → /dev/null {}", ev(&null)),
            format!("{ratio_curl:.2}×"),
            "≥ 0.5×",
            Some(ratio_curl >= 0.5),
        ),
        Row::new(
            "1. throughput vs kubectl",
            ev(&faro),
            format!("kubectl {}", ev(&kubectl)),
            format!("{ratio_kubectl:.1}×"),
            "≥ 3×",
            Some(ratio_kubectl >= 3.0),
        ),
        Row::new(
            "1. throughput with --metrics-addr",
            ev(&with_metrics),
            format!("without {}", ev(&faro)),
            format!("{ratio_metrics:.2}×"),
            "≥ 0.95×",
            Some(ratio_metrics >= 0.95),
        ),
        // Reported, with no target of its own (issue 14): the same stream over TLS + HTTP/2.
        Row::new(
            "1. throughput over TLS + HTTP/2 vs curl --http2",
            ev(&faro_h2),
            format!("curl --http2 → /dev/null {}", ev(&null_h2)),
            format!("{ratio_h2:.2}×"),
            "reported",
            None,
        ),
    ];
    let mut cpu_rows: Vec<CpuRow> = Consumer::ALL
        .iter()
        .enumerate()
        .map(|(i, c)| CpuRow {
            case: "1. throughput (burst → N-th line)".into(),
            process: c.label().into(),
            events: n.to_string(),
            cpu: spread(&runs[i].iter().map(|r| r.cpu).collect::<Vec<_>>(), 2),
            cpu_per_100k: spread(&cpu100k(i), 3),
            peak_rss: spread(
                &runs[i]
                    .iter()
                    .map(|r| r.peak_rss as f64 / 1048576.0)
                    .collect::<Vec<_>>(),
                1,
            ),
        })
        .collect();
    if let Some(dir) = &ctx.baseline {
        let of = |f: &dyn Fn(&Run) -> f64| baseline_runs.iter().map(f).collect::<Vec<_>>();
        cpu_rows.push(CpuRow {
            case: "1. throughput (burst → N-th line)".into(),
            process: format!("baseline faro ({}) → counter pipe", dir.display()),
            events: n.to_string(),
            cpu: spread(&of(&|r| r.cpu), 2),
            cpu_per_100k: spread(&of(&|r| r.cpu * 100_000.0 / n as f64), 3),
            peak_rss: spread(&of(&|r| r.peak_rss as f64 / 1048576.0), 1),
        });
    }
    let faro_cores = median(
        &runs[2]
            .iter()
            .map(|r| r.cpu / r.seconds)
            .collect::<Vec<_>>(),
    );
    let mut findings = vec![
        format!(
            "Throughput: faro drained {} ev/s, {:.2}× curl's drain to /dev/null ({} ev/s, the source rate) and {:.1}× kubectl ({} ev/s). \
         faro kept {:.2} cores busy while draining ({:.2} µs of CPU per event), so it is CPU-bound; writing to /dev/null instead \
         of the counter pipe it reached {} ev/s, and curl into the same counter pipe reached {} ev/s.",
            spread_k(&faro),
            ratio_curl,
            spread_k(&null),
            ratio_kubectl,
            spread_k(&kubectl),
            faro_cores,
            median(&cpu100k(2)) * 10.0,
            spread_k(&faro_null),
            spread_k(&pipe),
        ),
        format!(
            "Over TLS + HTTP/2 (kube-sim --tls, the same prerendered stream), faro drained {} ev/s ({:.3} CPU s per 100,000 events), {:.2}× `curl --http2` to /dev/null ({} ev/s) and {:.2}× its own plain-HTTP rate.",
            spread_k(&faro_h2),
            median(&cpu100k(7)),
            ratio_h2,
            spread_k(&null_h2),
            median(&faro_h2) / median(&faro),
        ),
    ];
    if !baseline_runs.is_empty() {
        let rates: Vec<f64> = baseline_runs.iter().map(|r| n as f64 / r.seconds).collect();
        let cpus: Vec<f64> = baseline_runs
            .iter()
            .map(|r| r.cpu * 100_000.0 / n as f64)
            .collect();
        findings.push(format!(
            "Baseline, side by side in the same rounds: {} ev/s ({:.2}× curl) and {:.3} CPU s per 100,000 events, against {} ev/s ({:.2}× curl) and {:.3} for this build.",
            spread_k(&rates),
            median(&rates) / median(&null),
            median(&cpus),
            spread_k(&faro),
            ratio_curl,
            median(&cpu100k(2)),
        ));
    }
    if ratio_curl < 0.5 {
        findings.push(format!(
            "Throughput target vs curl missed: {ratio_curl:.2}× against ≥ 0.5× ({:.0}% short).",
            (0.5 - ratio_curl) / 0.5 * 100.0
        ));
    }
    if ratio_kubectl < 3.0 {
        findings.push(format!(
            "Throughput target vs kubectl missed: {ratio_kubectl:.1}× against ≥ 3×."
        ));
    }
    Ok(CaseResult {
        json,
        rows,
        cpu_rows,
        findings,
        details,
    })
}

/// Events per second in thousands with the spread: "186k (170k–190k)".
fn spread_k(xs: &[f64]) -> String {
    let k = |x: f64| format!("{:.0}k", x / 1000.0);
    if xs.len() <= 1 {
        return k(median(xs));
    }
    format!(
        "{} ({}–{})",
        k(median(xs)),
        k(crate::stats::min(xs)),
        k(crate::stats::max(xs))
    )
}

/// `faro_bytes`: what faro wrote into the pipe in this round (the byte count that ends a
/// faro → /dev/null run).
/// With `profile`, the consumer is sampled by perf from just before the burst to its end.
fn one(
    ctx: &Ctx,
    c: Consumer,
    n: u64,
    dir: &Path,
    faro_bytes: Option<u64>,
    profile: bool,
) -> Result<Run> {
    let mut sim = if c.tls() {
        Sim::start_with(&ctx.bin_dir, dir, "vanilla", &["--tls"])?
    } else {
        Sim::start(&ctx.bin_dir, dir, "vanilla")?
    };
    let pre = sim.post(&format!(
        "/_sim/prerender?namespace=bench&resource=configmaps&count={n}&size=1024"
    ))?;
    let base_rv = pre["baseResourceVersion"]
        .as_str()
        .context("prerender reply without baseResourceVersion")?
        .to_string();
    let bytes = pre["bytes"]
        .as_u64()
        .context("prerender reply without bytes")?;
    let watch_url = format!(
        "{}/api/v1/configmaps?watch=true&resourceVersion={base_rv}",
        sim.url
    );

    let mut cmd;
    let out;
    match c {
        Consumer::CurlNull | Consumer::CurlPipe | Consumer::CurlNullH2 => {
            cmd = Command::new("curl");
            cmd.args(["-sS", "-N"]);
            if c == Consumer::CurlNullH2 {
                let ca = dir.join("ca.pem");
                fs::write(&ca, crate::sim::ca_of(&sim.kubeconfig)?)?;
                cmd.arg("--http2").arg("--cacert").arg(&ca);
            }
            if c != Consumer::CurlPipe {
                cmd.args(["-o", "/dev/null"]);
                out = Out::Null;
            } else {
                out = Out::Pipe;
            }
            cmd.arg(&watch_url);
        }
        Consumer::Faro | Consumer::FaroNull | Consumer::FaroMetrics | Consumer::FaroH2 => {
            let cfg = dir.join("faro.yaml");
            fs::write(&cfg, "resources:\n  - gvr: v1/configmaps\n")?;
            cmd = ctx.faro_cmd(
                &sim.kubeconfig,
                ["watch".as_ref(), "--config".as_ref(), cfg.as_os_str()],
                &dir.join("ready"),
            );
            if c == Consumer::FaroMetrics {
                // Port 0: any free port; the cost measured is keeping the metrics.
                cmd.args(["--metrics-addr", "127.0.0.1:0"]);
            }
            out = if c != Consumer::FaroNull {
                Out::Pipe
            } else {
                Out::Null
            };
        }
        Consumer::Kubectl => {
            let home = dir.join("home");
            fs::create_dir_all(&home)?;
            cmd = Command::new(&ctx.kubectl);
            cmd.env("HOME", &home)
                .arg("--kubeconfig")
                .arg(&sim.kubeconfig)
                .arg("--cache-dir")
                .arg(dir.join("kubectl-cache"))
                .args([
                    "get",
                    "configmaps",
                    "-A",
                    "-w",
                    "-o",
                    "json",
                    "--output-watch-events",
                ]);
            out = Out::Pipe;
        }
    }
    let piped = matches!(out, Out::Pipe);
    let mut p = Proc::start(c.name(), cmd, out, dir)?;
    let counter = if piped {
        Some(Counter::spawn(p.take_stdout()?, false))
    } else {
        None
    };
    if c.faro() {
        p.wait_file(&dir.join("ready"), Duration::from_secs(60))?;
    }
    sim.wait_watch(
        Duration::from_secs(60),
        || p.alive(),
        |w| w["resource"] == "configmaps" && w["namespace"].is_null(),
    )?;
    thread::sleep(Duration::from_millis(200));
    p.alive()?;

    let pid = p.pid();
    let cpu0 = procfs::cpu_seconds(pid)?;
    let sim_cpu0 = procfs::cpu_seconds(sim.pid())?;
    let wchar0 = procfs::wchar(pid)?;
    let expect = if c == Consumer::FaroNull {
        faro_bytes.context("faro → /dev/null needs a faro → pipe run before it")?
    } else {
        bytes
    };
    let lines0 = counter.as_ref().map_or(0, Counter::lines);
    if let Some(k) = &counter {
        k.arm(lines0 + n);
    }
    let recorder = if profile {
        Some(profile::Recorder::start(pid, dir)?)
    } else {
        None
    };
    let url = sim.url.clone();
    let ca = if c.tls() {
        Some(crate::sim::ca_of(&sim.kubeconfig)?)
    } else {
        None
    };
    let timeout = Duration::from_secs(300);

    // The burst call runs on its own thread so that the consumer is watched from before it.
    let burst_failed = AtomicBool::new(false);
    let (burst, end, first) = thread::scope(|s| -> Result<_> {
        let h = s.spawn(|| -> Result<(Instant, Instant, Value)> {
            let r = (|| {
                let mut http = Http::with_ca(&url, ca.as_deref())?;
                let t0 = Instant::now();
                let v = http.json("POST", "/_sim/burst", None, b"")?;
                Ok((t0, Instant::now(), v))
            })();
            if r.is_err() {
                burst_failed.store(true, Ordering::SeqCst);
            }
            r
        });
        let mut alive = || -> Result<()> {
            if burst_failed.load(Ordering::SeqCst) {
                bail!("the burst call failed");
            }
            p.alive()
        };
        let (end, first) = match &counter {
            Some(k) => (k.wait(timeout, alive), k.first_after_arm()),
            None => {
                // curl to /dev/null: done once it has written the whole body (wchar).
                let deadline = Instant::now() + timeout;
                let mut first = None;
                let mut polls = 0u64;
                let end = loop {
                    let w = procfs::wchar(pid)? - wchar0;
                    let now = Instant::now();
                    if w > 0 && first.is_none() {
                        first = Some(now);
                    }
                    if w >= expect {
                        break Ok(now);
                    }
                    if now > deadline {
                        break Err(anyhow::anyhow!(
                            "{} wrote {w} of {expect} bytes in {timeout:?}",
                            c.name()
                        ));
                    }
                    polls += 1;
                    if polls % 500 == 0
                        && let Err(e) = alive()
                    {
                        break Err(e);
                    }
                    thread::sleep(Duration::from_micros(200));
                };
                (end, first)
            }
        };
        let burst = h
            .join()
            .map_err(|_| anyhow::anyhow!("burst thread panicked"))??;
        Ok((burst, end?, first))
    })?;
    let (t_call, t_ret, reply) = burst;
    if reply["count"].as_u64() != Some(n) {
        bail!("burst committed {} events, expected {n}", reply["count"]);
    }
    let cpu = procfs::cpu_seconds(pid)? - cpu0;
    let peak_rss = procfs::peak_rss(pid)?;
    let sim_cpu = procfs::cpu_seconds(sim.pid())? - sim_cpu0;
    let got_bytes = counter.as_ref().map_or(expect, Counter::bytes);
    p.kill();
    let profile = match recorder {
        Some(r) => Some(r.finish()?),
        None => None,
    };
    let start = first.map_or(t_ret, |f| f.min(t_ret));
    Ok(Run {
        seconds: (end - start).as_secs_f64(),
        from_call: (end - t_call).as_secs_f64(),
        first_delay: first.map_or(f64::NAN, |f| (f - t_call).as_secs_f64()),
        burst_call: (t_ret - t_call).as_secs_f64(),
        cpu,
        peak_rss,
        sim_cpu,
        bytes: got_bytes,
        profile,
    })
}
