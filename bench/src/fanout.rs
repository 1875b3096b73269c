//! Case 4, fan-out: 1,000 namespaces `w00000`… labelled `team=<name>`, each holding one
//! ConfigMap, Secret and Service of ~1 KiB, watched by `faro workload -label team
//! -workloadgvrs v1/configmaps,v1/secrets,v1/services` (3,000 namespace-scoped streams).
//! Each run (fresh kube-sim) reads faro's peak RSS after ready and after the latency phase:
//! namespaces `lat-NNN` are created without the label, given their three objects, then labelled
//! at a steady pace; the latency of a sample is faro's `timestamp` on the first line of that
//! namespace minus the commit time of the label (kube-sim's `/_sim/history`). Both clocks are
//! this machine's. The TCP connections faro holds to kube-sim are counted at ready and at the
//! end. kube-sim serves TLS and faro speaks HTTP/2 (`--fanout-http1`: plain HTTP/1.1, one
//! connection per watch); design.md §8 asks for ≤ 16 connections (3,000 watches at 250 streams
//! each need 12).
//!
//! Case 4b, `fanout-large`, is the same with 10,000 workloads (30,000 watches): ≤ 160
//! connections, ≤ 256 MiB, ready ≤ 10 s, join p99 ≤ 200 ms.

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::counter::Counter;
use crate::process::{Out, Proc};
use crate::report::{CaseResult, CpuRow, Row};
use crate::sim::Sim;
use crate::stats::{self, median, parse_rfc3339_utc, percentile, spread, summary};
use crate::{Ctx, procfs};

/// What a fan-out case starts and what it must stay under (design.md §8).
struct Shape {
    workloads: usize,
    number: &'static str,
    label: &'static str,
    rss_mib: f64,
    p99_ms: f64,
    connections: f64,
    ready_s: Option<f64>,
    join_cpu_ms: Option<f64>,
}

const THOUSAND: Shape = Shape {
    workloads: 1000,
    number: "4",
    label: "1,000 workloads × 3 GVRs",
    rss_mib: 64.0,
    p99_ms: 100.0,
    connections: 16.0,
    ready_s: None,
    join_cpu_ms: Some(1.0),
};

const TEN_THOUSAND: Shape = Shape {
    workloads: 10_000,
    number: "4b",
    label: "10,000 workloads × 3 GVRs",
    rss_mib: 256.0,
    p99_ms: 200.0,
    connections: 160.0,
    ready_s: Some(10.0),
    join_cpu_ms: None,
};

const GVRS: [&str; 3] = ["configmaps", "secrets", "services"];
const MIB: f64 = 1048576.0;

struct Run {
    setup_s: f64,
    ready_s: f64,
    rss_at_ready: u64,
    peak_rss: u64,
    /// CPU seconds spawn → ready (3,000 streams listed and watched).
    ready_cpu: f64,
    /// CPU seconds of the latency phase.
    phase_cpu: f64,
    lines: u64,
    /// Label commit → faro's timestamp of the namespace's first line, ms (∞ if never seen).
    latency_ms: Vec<f64>,
    /// Label commit → arrival of that line at the counter, ms.
    arrival_ms: Vec<f64>,
    missing: usize,
    /// TCP connections faro held to kube-sim at ready and at the end of the latency phase.
    conns_at_ready: usize,
    conns_at_end: usize,
}

/// Case 4: 1,000 workloads.
pub fn run(ctx: &Ctx) -> Result<CaseResult> {
    run_shape(ctx, &THOUSAND)
}

/// Case 4b: 10,000 workloads.
pub fn run_large(ctx: &Ctx) -> Result<CaseResult> {
    run_shape(ctx, &TEN_THOUSAND)
}

fn run_shape(ctx: &Ctx, shape: &Shape) -> Result<CaseResult> {
    let mut runs = Vec::new();
    for round in 0..ctx.runs {
        let dir = ctx.case_dir(&format!("fanout-{}/run-{round}", shape.workloads))?;
        let r = one(ctx, shape, &dir)
            .with_context(|| format!("fan-out ({}) run {}", shape.label, round + 1))?;
        eprintln!(
            "  fan-out {} run {}: setup {:.1} s, ready in {:.2} s, RSS {:.1} MiB at ready, peak {:.1} MiB; latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms ({} missing); {} TCP connections at ready, {} at the end",
            shape.workloads,
            round + 1,
            r.setup_s,
            r.ready_s,
            r.rss_at_ready as f64 / MIB,
            r.peak_rss as f64 / MIB,
            percentile(&r.latency_ms, 50.0),
            percentile(&r.latency_ms, 99.0),
            stats::max(&r.latency_ms),
            r.missing,
            r.conns_at_ready,
            r.conns_at_end
        );
        runs.push(r);
    }
    let col = |f: &dyn Fn(&Run) -> f64| -> Vec<f64> { runs.iter().map(f).collect() };
    let peak = col(&|r| r.peak_rss as f64 / MIB);
    let all: Vec<f64> = runs.iter().flat_map(|r| r.latency_ms.clone()).collect();
    let arrival: Vec<f64> = runs.iter().flat_map(|r| r.arrival_ms.clone()).collect();
    let missing: usize = runs.iter().map(|r| r.missing).sum();
    let (p50, p99, pmax) = (
        percentile(&all, 50.0),
        percentile(&all, 99.0),
        stats::max(&all),
    );
    let p99_runs = col(&|r| percentile(&r.latency_ms, 99.0));
    let initial = (shape.workloads * GVRS.len()) as f64;
    let ready_cpu100k = col(&|r| r.ready_cpu * 100_000.0 / initial);
    let phase_cpu100k = col(&|r| r.phase_cpu * 100_000.0 / (r.lines as f64 - initial).max(1.0));
    let conns = col(&|r| r.conns_at_ready.max(r.conns_at_end) as f64);
    let json = json!({
        "workloads": shape.workloads,
        "tls_http2": ctx.fanout_tls,
        "tcp_connections_at_ready": summary(&col(&|r| r.conns_at_ready as f64)),
        "tcp_connections_at_end": summary(&col(&|r| r.conns_at_end as f64)),
        "gvrs": GVRS,
        "runs": ctx.runs,
        "samples_per_run": ctx.latency_samples,
        "label_interval_ms": ctx.label_interval.as_secs_f64() * 1000.0,
        "setup_seconds": summary(&col(&|r| r.setup_s)),
        "startup_to_ready_seconds": summary(&col(&|r| r.ready_s)),
        "rss_at_ready_mib": summary(&col(&|r| r.rss_at_ready as f64 / MIB)),
        "peak_rss_mib": summary(&peak),
        "startup_cpu_seconds": summary(&col(&|r| r.ready_cpu)),
        "startup_cpu_seconds_per_100k_events": summary(&ready_cpu100k),
        "latency_phase_cpu_seconds": summary(&col(&|r| r.phase_cpu)),
        "latency_phase_cpu_seconds_per_100k_events": summary(&phase_cpu100k),
        "lines": summary(&col(&|r| r.lines as f64)),
        "latency_ms": {
            "samples": all.len(),
            "missing": missing,
            "p50": p50, "p90": percentile(&all, 90.0), "p99": p99, "max": pmax,
            "p99_per_run": p99_runs,
        },
        "arrival_latency_ms": {
            "p50": percentile(&arrival, 50.0), "p99": percentile(&arrival, 99.0), "max": stats::max(&arrival),
        },
    });
    let rss_target = shape.rss_mib;
    let rss_pass = median(&peak) <= rss_target;
    let lat_pass = p99 <= shape.p99_ms && missing == 0;
    let conns_pass = stats::max(&conns) <= shape.connections;
    let n = shape.number;
    let join_ms = col(&|r| r.phase_cpu * 1000.0 / ctx.latency_samples.max(1) as f64);
    let ready = col(&|r| r.ready_s);
    let mut rows = vec![
        Row::new(
            &format!("{n}. fan-out: peak RSS, {}", shape.label),
            format!("{} MiB", spread(&peak, 1)),
            "—".into(),
            format!("{:.2}× of target", median(&peak) / rss_target),
            &format!("≤ {rss_target:.0} MiB"),
            Some(rss_pass),
        )
        .with_caveat(stats::runs_over(&peak, rss_target)),
        Row::new(
            &format!("{n}. fan-out: label → first event"),
            format!(
                "p99 {p99:.1} ms (p50 {p50:.1}, max {pmax:.1}; n={}{})",
                all.len(),
                if missing > 0 {
                    format!(", {missing} missing")
                } else {
                    String::new()
                }
            ),
            "—".into(),
            format!("{:.2}× of target", p99 / shape.p99_ms),
            &format!("p99 ≤ {:.0} ms", shape.p99_ms),
            Some(lat_pass),
        ),
    ];
    rows.push(Row::new(
        &if ctx.fanout_tls {
            format!("{n}. fan-out: TCP connections of faro (TLS + HTTP/2)")
        } else {
            format!("{n}. fan-out: TCP connections of faro (plain HTTP/1.1)")
        },
        spread(&conns, 0),
        "—".into(),
        format!("{:.2}× of target", median(&conns) / shape.connections),
        &format!("≤ {:.0}", shape.connections),
        // Over plain HTTP/1.1 every watch holds a connection: the target is for TLS + HTTP/2.
        ctx.fanout_tls.then_some(conns_pass),
    ));
    if let Some(most) = shape.join_cpu_ms {
        rows.push(Row::new(
            &format!("{n}. fan-out: CPU per join"),
            format!("{} ms", spread(&join_ms, 2)),
            "—".into(),
            format!("{:.2}× of target", median(&join_ms) / most),
            &format!("≤ {most:.0} ms"),
            Some(median(&join_ms) <= most),
        ));
    }
    if let Some(most) = shape.ready_s {
        rows.push(Row::new(
            &format!("{n}. fan-out: start-up to ready"),
            format!("{} s", spread(&ready, 2)),
            "—".into(),
            format!("{:.2}× of target", median(&ready) / most),
            &format!("≤ {most:.0} s"),
            Some(median(&ready) <= most),
        ));
    }
    let cpu_rows = vec![
        CpuRow {
            case: format!(
                "{n}. fan-out startup (spawn → ready: {initial} streams, {initial} initial ADDED)"
            ),
            process: "faro workload".into(),
            events: format!("{initial}"),
            cpu: spread(&col(&|r| r.ready_cpu), 2),
            cpu_per_100k: spread(&ready_cpu100k, 1),
            peak_rss: spread(&col(&|r| r.rss_at_ready as f64 / MIB), 1),
        },
        CpuRow {
            case: format!(
                "{n}. fan-out latency phase ({} namespaces join, 3 streams each)",
                ctx.latency_samples
            ),
            process: "faro workload".into(),
            events: spread(&col(&|r| r.lines as f64 - initial), 0),
            cpu: spread(&col(&|r| r.phase_cpu), 2),
            cpu_per_100k: spread(&phase_cpu100k, 1),
            peak_rss: spread(&peak, 1),
        },
    ];
    let mut findings = vec![format!(
        "Fan-out: with {} faro was ready in {} s at {} MiB and peaked at {} MiB; \
         label → first event p50 {p50:.1} ms, p99 {p99:.1} ms, max {pmax:.1} ms over {} samples \
         (p99 per run: {}).",
        shape.label,
        spread(&col(&|r| r.ready_s), 2),
        spread(&col(&|r| r.rss_at_ready as f64 / MIB), 1),
        spread(&peak, 1),
        all.len(),
        p99_runs
            .iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(", "),
    )];
    findings.push(format!(
        "Fan-out CPU ({}): starting {initial} streams took {} CPU s; in the latency phase each joining namespace \
         cost faro {} ms of CPU ({} CPU s for {} joins in {:.1} s).",
        shape.label,
        spread(&col(&|r| r.ready_cpu), 2),
        spread(&join_ms, 2),
        spread(&col(&|r| r.phase_cpu), 2),
        ctx.latency_samples,
        ctx.latency_samples as f64 * ctx.label_interval.as_secs_f64(),
    ));
    if rss_pass && stats::max(&peak) > 0.9 * rss_target {
        findings.push(format!(
            "Fan-out memory is close to its limit: the median passes, but the worst run peaked at {:.1} MiB \
             ({:.0}% of {rss_target:.0} MiB{}); the RSS at ready varies by run ({} MiB).",
            stats::max(&peak),
            stats::max(&peak) / rss_target * 100.0,
            if stats::max(&peak) > rss_target { ", over the limit" } else { "" },
            spread(&col(&|r| r.rss_at_ready as f64 / MIB), 1),
        ));
    }
    findings.push(format!(
        "Fan-out connections: faro held {} TCP connections to kube-sim at ready ({initial} workload watches) and {} at the end ({} after the joins) over {}.",
        spread(&col(&|r| r.conns_at_ready as f64), 0),
        spread(&col(&|r| r.conns_at_end as f64), 0),
        shape.workloads * GVRS.len() + ctx.latency_samples * GVRS.len(),
        if ctx.fanout_tls {
            "TLS, HTTP/2"
        } else {
            "plain HTTP/1.1, one per watch"
        },
    ));
    if !rss_pass {
        findings.push(format!(
            "Fan-out memory target missed ({}): {:.1} MiB against ≤ {rss_target:.0} MiB.",
            shape.label,
            median(&peak)
        ));
    }
    if !lat_pass {
        findings.push(format!(
            "Fan-out latency target missed ({}): p99 {p99:.1} ms against ≤ {:.0} ms ({missing} namespaces never seen).",
            shape.label,
            shape.p99_ms
        ));
    }
    Ok(CaseResult {
        json,
        rows,
        cpu_rows,
        findings,
        details: String::new(),
    })
}

fn one(ctx: &Ctx, shape: &Shape, dir: &std::path::Path) -> Result<Run> {
    let tls: &[&str] = if ctx.fanout_tls { &["--tls"] } else { &[] };
    let mut sim = Sim::start_with(&ctx.bin_dir, dir, "vanilla", tls)?;
    let sim_port: u16 = sim
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .context("kube-sim's URL has no port")?;
    let t = Instant::now();
    for i in 0..shape.workloads {
        let ns = format!("w{i:05}");
        sim.create_namespace(&ns, &json!({"team": ns}))?;
        for r in GVRS {
            sim.post(&format!(
                "/_sim/load?namespace={ns}&resource={r}&count=1&size=1024"
            ))?;
        }
    }
    let setup_s = t.elapsed().as_secs_f64();

    let ready = dir.join("ready");
    let gvrs = GVRS.map(|g| format!("v1/{g}")).join(",");
    let cmd = ctx.faro_cmd(
        &sim.kubeconfig,
        ["workload", "-label", "team", "-workloadgvrs", &gvrs],
        &ready,
    );
    let t0 = Instant::now();
    let mut p = Proc::start("faro", cmd, Out::Pipe, dir)?;
    let counter = Counter::spawn(p.take_stdout()?, true);
    let t_ready = p.wait_file(&ready, Duration::from_secs(180))?;
    let pid = p.pid();
    let rss_at_ready = procfs::peak_rss(pid)?;
    let ready_cpu = procfs::cpu_seconds(pid)?;
    let conns_at_ready = procfs::tcp_connections_to(pid, sim_port)?;
    let initial = (shape.workloads * GVRS.len()) as u64;
    counter
        .wait_lines(initial, Duration::from_secs(30), || p.alive())
        .context("waiting for the initial ADDED lines")?;

    // Latency phase.
    let rv0 = crate::sim::rv_of(&sim.get("/api/v1/namespaces?limit=1")?)?;
    let mut labelled: Vec<(String, u64)> = Vec::new();
    let start = Instant::now();
    for i in 0..ctx.latency_samples {
        let due = start + ctx.label_interval * i as u32;
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            thread::sleep(d);
        }
        let ns = format!("lat-{i:03}");
        sim.create_namespace(&ns, &json!({}))?;
        for r in GVRS {
            sim.post(&format!(
                "/_sim/load?namespace={ns}&resource={r}&count=1&size=1024"
            ))?;
        }
        let rv = sim.label_namespace(&ns, &json!({"team": ns}))?;
        labelled.push((ns, rv));
        if i % 20 == 19 {
            p.alive()?;
        }
    }
    let expected = initial + (ctx.latency_samples * GVRS.len()) as u64;
    if let Err(e) = counter.wait_lines(expected, Duration::from_secs(20), || p.alive()) {
        p.alive()?;
        eprintln!("  fan-out: {e:#}; the namespaces never seen count as missing");
    }
    let peak_rss = procfs::peak_rss(pid)?;
    let phase_cpu = procfs::cpu_seconds(pid)? - ready_cpu;
    let conns_at_end = procfs::tcp_connections_to(pid, sim_port)?;
    let lines = counter.lines();
    p.kill();

    let history = sim.get(&format!("/_sim/history?since={rv0}"))?;
    let mut commit: HashMap<u64, i128> = HashMap::new();
    for ev in history["events"]
        .as_array()
        .context("history without events")?
    {
        if ev["resource"] == "namespaces" {
            let rv = ev["rv"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
            let t = ev["time"].as_str().context("history event without time")?;
            commit.insert(rv, parse_rfc3339_utc(t)?);
        }
    }
    // First line per namespace: faro's timestamp and arrival time.
    let mut first: HashMap<String, (i128, i128)> = HashMap::new();
    for (arrived, line) in counter.take_kept() {
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("faro printed a line that is not JSON: {line}"))?;
        let Some(ns) = v["namespace"].as_str() else {
            continue;
        };
        if !ns.starts_with("lat-") {
            continue;
        }
        let ts = parse_rfc3339_utc(v["timestamp"].as_str().context("line without timestamp")?)?;
        let arr = arrived
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let e = first.entry(ns.to_string()).or_insert((ts, arr));
        e.0 = e.0.min(ts);
        e.1 = e.1.min(arr);
    }
    let mut latency_ms = Vec::new();
    let mut arrival_ms = Vec::new();
    let mut missing = 0;
    for (ns, rv) in &labelled {
        let c = *commit
            .get(rv)
            .with_context(|| format!("no history event for the label of {ns} (rv {rv})"))?;
        match first.get(ns) {
            Some((ts, arr)) => {
                latency_ms.push((ts - c) as f64 / 1e6);
                arrival_ms.push((arr - c) as f64 / 1e6);
            }
            None => {
                missing += 1;
                latency_ms.push(f64::INFINITY);
            }
        }
    }
    Ok(Run {
        setup_s,
        ready_s: (t_ready - t0).as_secs_f64(),
        rss_at_ready,
        peak_rss,
        ready_cpu,
        phase_cpu,
        lines,
        latency_ms,
        arrival_ms,
        missing,
        conns_at_ready,
        conns_at_end,
    })
}
