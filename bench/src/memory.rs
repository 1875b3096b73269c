//! Cases 2 and 5, memory and startup: 100,000 ~1 KiB ConfigMaps (10 namespaces × 10,000) are
//! loaded into one kube-sim, then each run starts `faro watch` on v1/configmaps in every
//! namespace (stdout into the line counter), times spawn → --ready-file (case 5; the 100,000
//! initial ADDED lines are flushed by then), makes 10,000 updates (merge PATCHes of
//! `data.value`, 1,000 per namespace, through one keep-alive connection), waits for faro's
//! 10,000 UPDATED lines and reads faro's VmHWM (case 2). The reference for startup is
//! `curl` fetching the same 100,000 objects as one unpaged LIST to /dev/null.

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

const NAMESPACES: usize = 10;
const PER_NAMESPACE: usize = 10_000;
const UPDATES: usize = 10_000;
const MIB: f64 = 1048576.0;

struct Run {
    ready_s: f64,
    ready_cpu: f64,
    rss_at_ready: u64,
    updates_s: f64,
    updates_cpu: f64,
    peak_rss: u64,
}

pub fn run(ctx: &Ctx) -> Result<CaseResult> {
    let objects = NAMESPACES * PER_NAMESPACE;
    let dir = ctx.case_dir("memory")?;
    let mut sim = Sim::start(&ctx.bin_dir, &dir, "vanilla")?;
    let t = Instant::now();
    for ns in 0..NAMESPACES {
        sim.post(&format!(
            "/_sim/load?namespace=mem-{ns}&resource=configmaps&count={PER_NAMESPACE}&size=1024"
        ))?;
    }
    eprintln!(
        "  memory: loaded {objects} ConfigMaps in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut runs = Vec::new();
    let mut list_s = Vec::new();
    for round in 0..ctx.runs {
        list_s.push(curl_list(&sim.url).context("curl LIST reference")?);
        let rdir = ctx.case_dir(&format!("memory/run-{round}"))?;
        let r = one(ctx, &mut sim, &rdir, round, objects)
            .with_context(|| format!("memory/startup run {}", round + 1))?;
        eprintln!(
            "  memory run {}: ready in {:.2} s (cpu {:.2} s), {UPDATES} updates in {:.2} s (cpu {:.2} s), peak RSS {:.1} MiB (at ready {:.1} MiB)",
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
        "namespaces": NAMESPACES,
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
    let pass = median(&peak) <= 64.0;
    let rows = vec![
        Row::new(
            "2. memory: peak RSS, 100k objects + 10k updates",
            format!("{} MiB", spread(&peak, 1)),
            "—".into(),
            format!("{:.2}× of target", median(&peak) / 64.0),
            "≤ 64 MiB",
            Some(pass),
        )
        .with_caveat(crate::stats::runs_over(&peak, 64.0)),
        Row::new(
            "5. startup to ready, 100k objects",
            format!("{} s", spread(&ready, 2)),
            format!("curl LIST → /dev/null {} s", spread(&list_s, 2)),
            format!("{:.1}×", median(&ready) / median(&list_s)),
            "— (no target)",
            None,
        ),
    ];
    let cpu_rows = vec![
        CpuRow {
            case: "5. startup (spawn → ready, 100k initial ADDED)".into(),
            process: "faro watch".into(),
            events: objects.to_string(),
            cpu: spread(&col(&|r| r.ready_cpu), 2),
            cpu_per_100k: spread(&ready_cpu100k, 3),
            peak_rss: spread(&col(&|r| r.rss_at_ready as f64 / MIB), 1),
        },
        CpuRow {
            case: "2. memory (10k PATCHes → 10k UPDATED lines)".into(),
            process: "faro watch".into(),
            events: UPDATES.to_string(),
            cpu: spread(&col(&|r| r.updates_cpu), 2),
            cpu_per_100k: spread(&upd_cpu100k, 3),
            peak_rss: spread(&peak, 1),
        },
    ];
    let mut findings = vec![format!(
        "Memory: faro's peak RSS with 100,000 objects watched and 10,000 updates was {} MiB ({} at ready); \
         startup to ready took {} s, while curl fetches the same objects as one LIST in {} s. \
         Updates arriving one by one cost faro {} CPU s per 100k events, against {} in the start-up burst.",
        spread(&peak, 1),
        spread(&col(&|r| r.rss_at_ready as f64 / MIB), 1),
        spread(&ready, 2),
        spread(&list_s, 2),
        spread(&upd_cpu100k, 2),
        spread(&ready_cpu100k, 2),
    )];
    if !pass {
        findings.push(format!(
            "Memory target missed: {:.1} MiB against ≤ 64 MiB ({:.0}% over).",
            median(&peak),
            (median(&peak) / 64.0 - 1.0) * 100.0
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
    objects: usize,
) -> Result<Run> {
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
        let ns = i % NAMESPACES;
        let idx = i / NAMESPACES;
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
