//! Cases 2 and 5, memory and startup: 100,000 ~1 KiB ConfigMaps (10 namespaces × 10,000) are
//! loaded into one kube-sim, then each run starts `faro watch` on v1/configmaps in every
//! namespace (stdout into the line counter), times spawn → --ready-file (case 5; the 100,000
//! initial ADDED lines are flushed by then), makes 10,000 updates (merge PATCHes of
//! `data.value`, 1,000 per namespace, through one keep-alive connection), waits for faro's
//! 10,000 UPDATED lines and reads faro's VmHWM (case 2). The reference for startup is
//! `curl` fetching the same 100,000 objects as one unpaged LIST to /dev/null.
//!
//! Case 2b, `million`, is the same with 1,000,000 ConfigMaps (100 namespaces × 10,000): peak
//! RSS against ≤ 256 MiB, and start-up compared with the 100,000-object case of the same run
//! (linear start-up takes ten times as long).

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::counter::Counter;
use crate::process::{Out, Proc};
use crate::report::{CaseResult, CpuRow, Row};
use crate::sim::Sim;
use crate::stats::{median, spread, summary};
use crate::{Ctx, procfs};

const UPDATES: usize = 10_000;
const MIB: f64 = 1048576.0;

/// What a case loads and what it must stay under.
struct Shape {
    name: &'static str,
    namespaces: usize,
    per_namespace: usize,
    target_mib: f64,
    /// Row labels: the memory row's and the start-up row's.
    memory_label: &'static str,
    startup_label: &'static str,
    /// Start-up against curl's LIST: at most this ratio (issue 15), where there is a target.
    startup_ratio: Option<f64>,
    startup_target: &'static str,
    count: &'static str,
    number_memory: &'static str,
    number_startup: &'static str,
}

const HUNDRED_K: Shape = Shape {
    name: "memory",
    namespaces: 10,
    per_namespace: 10_000,
    target_mib: 64.0,
    memory_label: "2. memory: peak RSS, 100k objects + 10k updates",
    startup_label: "5. startup to ready, 100k objects",
    startup_ratio: Some(1.5),
    startup_target: "≤ 1.5× curl LIST",
    count: "100k",
    number_memory: "2",
    number_startup: "5",
};

const MILLION: Shape = Shape {
    name: "million",
    namespaces: 100,
    per_namespace: 10_000,
    target_mib: 256.0,
    memory_label: "2b. memory: peak RSS, 1M objects + 10k updates",
    startup_label: "5b. startup to ready, 1M objects",
    startup_ratio: None,
    startup_target: "— (linear: see notes)",
    count: "1M",
    number_memory: "2b",
    number_startup: "5b",
};

/// The 100,000-object case's median start-up, for the million case's linearity check.
static HUNDRED_K_READY: std::sync::Mutex<Option<f64>> = std::sync::Mutex::new(None);

struct Run {
    ready_s: f64,
    ready_cpu: f64,
    rss_at_ready: u64,
    updates_s: f64,
    updates_cpu: f64,
    peak_rss: u64,
}

/// Cases 2 and 5: 100,000 objects.
pub fn run(ctx: &Ctx) -> Result<CaseResult> {
    let result = run_shape(ctx, &HUNDRED_K)?;
    *HUNDRED_K_READY.lock().unwrap_or_else(|e| e.into_inner()) = result
        .json
        .pointer("/startup_to_ready_seconds/median")
        .and_then(serde_json::Value::as_f64);
    Ok(result)
}

/// Case 2b: 1,000,000 objects.
pub fn run_million(ctx: &Ctx) -> Result<CaseResult> {
    run_shape(ctx, &MILLION)
}

fn run_shape(ctx: &Ctx, shape: &Shape) -> Result<CaseResult> {
    let objects = shape.namespaces * shape.per_namespace;
    let dir = ctx.case_dir(shape.name)?;
    let mut sim = Sim::start(&ctx.bin_dir, &dir, "vanilla")?;
    let t = Instant::now();
    for ns in 0..shape.namespaces {
        sim.post(&format!(
            "/_sim/load?namespace=mem-{ns}&resource=configmaps&count={}&size=1024",
            shape.per_namespace
        ))?;
    }
    eprintln!(
        "  {}: loaded {objects} ConfigMaps in {:.1} s",
        shape.name,
        t.elapsed().as_secs_f64()
    );

    let mut runs = Vec::new();
    let mut list_s = Vec::new();
    for round in 0..ctx.runs {
        list_s.push(curl_list(&sim.url).context("curl LIST reference")?);
        let rdir = ctx.case_dir(&format!("{}/run-{round}", shape.name))?;
        let r = one(ctx, &mut sim, &rdir, round, shape)
            .with_context(|| format!("{} run {}", shape.name, round + 1))?;
        eprintln!(
            "  {} run {}: ready in {:.2} s (cpu {:.2} s), {UPDATES} updates in {:.2} s (cpu {:.2} s), peak RSS {:.1} MiB (at ready {:.1} MiB)",
            shape.name,
            round + 1,
            r.ready_s,
            r.ready_cpu,
            r.updates_s,
            r.updates_cpu,
            r.peak_rss as f64 / MIB,
            r.rss_at_ready as f64 / MIB
        );
        runs.push(r);
    }

    let col = |f: &dyn Fn(&Run) -> f64| -> Vec<f64> { runs.iter().map(f).collect() };
    let peak = col(&|r| r.peak_rss as f64 / MIB);
    let ready = col(&|r| r.ready_s);
    let ready_cpu100k = col(&|r| r.ready_cpu * 100_000.0 / objects as f64);
    let upd_cpu100k = col(&|r| r.updates_cpu * 100_000.0 / UPDATES as f64);
    let json = json!({
        "objects": objects,
        "namespaces": shape.namespaces,
        "object_size_bytes": 1024,
        "updates": UPDATES,
        "runs": ctx.runs,
        "peak_rss_mib": summary(&peak),
        "rss_at_ready_mib": summary(&col(&|r| r.rss_at_ready as f64 / MIB)),
        "startup_to_ready_seconds": summary(&ready),
        "startup_cpu_seconds": summary(&col(&|r| r.ready_cpu)),
        "startup_cpu_seconds_per_100k_events": summary(&ready_cpu100k),
        "updates_seconds": summary(&col(&|r| r.updates_s)),
        "updates_cpu_seconds": summary(&col(&|r| r.updates_cpu)),
        "updates_cpu_seconds_per_100k_events": summary(&upd_cpu100k),
        "curl_list_seconds": summary(&list_s),
    });
    let target = shape.target_mib;
    let pass = median(&peak) <= target;
    let rows = vec![
        Row::new(
            shape.memory_label,
            format!("{} MiB", spread(&peak, 1)),
            "—".into(),
            format!("{:.2}× of target", median(&peak) / target),
            &format!("≤ {target:.0} MiB"),
            Some(pass),
        )
        .with_caveat(crate::stats::runs_over(&peak, target)),
        Row::new(
            shape.startup_label,
            format!("{} s", spread(&ready, 2)),
            format!("curl LIST → /dev/null {} s", spread(&list_s, 2)),
            format!("{:.2}×", median(&ready) / median(&list_s)),
            shape.startup_target,
            shape
                .startup_ratio
                .map(|most| median(&ready) / median(&list_s) <= most),
        ),
    ];
    let cpu_rows = vec![
        CpuRow {
            case: format!(
                "{}. startup (spawn → ready, {} initial ADDED)",
                shape.number_startup, shape.count
            ),
            process: "faro watch".into(),
            events: objects.to_string(),
            cpu: spread(&col(&|r| r.ready_cpu), 2),
            cpu_per_100k: spread(&ready_cpu100k, 3),
            peak_rss: spread(&col(&|r| r.rss_at_ready as f64 / MIB), 1),
        },
        CpuRow {
            case: format!(
                "{}. memory ({}, 10k PATCHes → 10k UPDATED lines)",
                shape.number_memory, shape.count
            ),
            process: "faro watch".into(),
            events: UPDATES.to_string(),
            cpu: spread(&col(&|r| r.updates_cpu), 2),
            cpu_per_100k: spread(&upd_cpu100k, 3),
            peak_rss: spread(&peak, 1),
        },
    ];
    let mut findings = vec![format!(
        "Memory ({} objects): faro's peak RSS with {objects} objects watched and 10,000 updates was {} MiB ({} at ready); \
         startup to ready took {} s, while curl fetches the same objects as one LIST in {} s. \
         Updates arriving one by one cost faro {} CPU s per 100k events, against {} in the start-up burst.",
        shape.count,
        spread(&peak, 1),
        spread(&col(&|r| r.rss_at_ready as f64 / MIB), 1),
        spread(&ready, 2),
        spread(&list_s, 2),
        spread(&upd_cpu100k, 2),
        spread(&ready_cpu100k, 2),
    )];
    if let Some(small) = *HUNDRED_K_READY.lock().unwrap_or_else(|e| e.into_inner())
        && shape.namespaces != HUNDRED_K.namespaces
    {
        let factor = objects as f64 / (HUNDRED_K.namespaces * HUNDRED_K.per_namespace) as f64;
        findings.push(format!(
            "Start-up scales {:.1}× for {factor:.0}× the objects ({:.2} s against {small:.2} s for 100k in this run; {factor:.0}× is linear).",
            median(&ready) / small,
            median(&ready),
        ));
    }
    if !pass {
        findings.push(format!(
            "Memory target missed ({}): {:.1} MiB against ≤ {target:.0} MiB ({:.0}% over).",
            shape.count,
            median(&peak),
            (median(&peak) / target - 1.0) * 100.0
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

/// Seconds for `curl` to fetch every ConfigMap as one LIST to /dev/null.
fn curl_list(url: &str) -> Result<f64> {
    let t = Instant::now();
    let st = Command::new("curl")
        .args(["-sS", "-f", "-o", "/dev/null"])
        .arg(format!("{url}/api/v1/configmaps"))
        .stdin(Stdio::null())
        .status()
        .context("running curl")?;
    if !st.success() {
        bail!("curl LIST failed: {st}");
    }
    Ok(t.elapsed().as_secs_f64())
}

fn one(
    ctx: &Ctx,
    sim: &mut Sim,
    dir: &std::path::Path,
    round: usize,
    shape: &Shape,
) -> Result<Run> {
    let objects = shape.namespaces * shape.per_namespace;
    let cfg = dir.join("faro.yaml");
    fs::write(&cfg, "resources:\n  - gvr: v1/configmaps\n")?;
    let ready = dir.join("ready");
    let cmd = ctx.faro_cmd(
        &sim.kubeconfig,
        ["watch".as_ref(), "--config".as_ref(), cfg.as_os_str()],
        &ready,
    );
    let t0 = Instant::now();
    let mut p = Proc::start("faro", cmd, Out::Pipe, dir)?;
    let counter = Counter::spawn(p.take_stdout()?, false);
    let t_ready = p.wait_file(&ready, Duration::from_secs(120))?;
    let pid = p.pid();
    let ready_cpu = procfs::cpu_seconds(pid)?;
    let rss_at_ready = procfs::peak_rss(pid)?;
    // Ready means the initial lines were written; the counter may still be reading them.
    counter
        .wait_lines(objects as u64, Duration::from_secs(30), || p.alive())
        .context("waiting for the initial ADDED lines")?;
    let lines0 = counter.lines();
    if lines0 != objects as u64 {
        bail!("faro printed {lines0} initial lines, expected {objects}");
    }

    counter.arm(lines0 + UPDATES as u64);
    let cpu0 = procfs::cpu_seconds(pid)?;
    let t1 = Instant::now();
    for i in 0..UPDATES {
        let ns = i % shape.namespaces;
        let idx = i / shape.namespaces;
        sim.send(
            "PATCH",
            &format!("/api/v1/namespaces/mem-{ns}/configmaps/configmap-{idx:06}"),
            "application/merge-patch+json",
            &json!({"data": {"value": format!("run{round}-{i}")}}),
        )?;
        if i % 1000 == 999 {
            p.alive()?;
        }
    }
    let t_done = counter
        .wait(Duration::from_secs(120), || p.alive())
        .context("waiting for the UPDATED lines")?;
    let updates_cpu = procfs::cpu_seconds(pid)? - cpu0;
    let peak_rss = procfs::peak_rss(pid)?;
    p.kill();
    Ok(Run {
        ready_s: (t_ready - t0).as_secs_f64(),
        ready_cpu,
        rss_at_ready,
        updates_s: (t_done - t1).as_secs_f64(),
        updates_cpu,
        peak_rss,
    })
}
