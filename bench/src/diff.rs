//! Case 7, diff. Each round, one kube-sim gets 100,000 ~1 KiB ConfigMaps from a burst
//! (`/_sim/prerender` + `/_sim/burst`), then faro is run twice on it, without and then with
//! `--diff`: start `faro watch` on v1/configmaps (stdout into the line counter), wait for
//! ready (the 100,000 initial ADDED lines), then one burst of 100,000 MODIFIED events (every
//! object's `data.value` changed, `prerender?modify=true`) arrives at once, and faro's CPU is
//! read from before the burst to its last UPDATED line. Reported: CPU per UPDATED with
//! `--diff` (target ≤ 10 µs) next to the same without, and peak RSS with `--diff` against
//! 1.5 × the raw object bytes (the size of one unpaged LIST, as the server sends it) plus
//! 32 MiB.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::counter::Counter;
use crate::process::{Out, Proc};
use crate::report::{CaseResult, CpuRow, Row};
use crate::sim::Sim;
use crate::stats::{median, spread, summary};
use crate::{Ctx, procfs};

const OBJECTS: usize = 100_000;
const MIB: f64 = 1048576.0;
/// µs of CPU per UPDATED the target allows.
const CPU_TARGET_US: f64 = 10.0;

struct Run {
    /// CPU seconds from the burst to the last UPDATED line.
    updates_cpu: f64,
    updates_s: f64,
    rss_at_ready: u64,
    peak_rss: u64,
}

pub fn run(ctx: &Ctx) -> Result<CaseResult> {
    let (mut plain, mut diffed) = (Vec::new(), Vec::new());
    let mut raw = 0;
    for round in 0..ctx.runs {
        let dir = ctx.case_dir(&format!("diff/run-{round}"))?;
        let mut sim = Sim::start(&ctx.bin_dir, &dir, "vanilla")?;
        sim.post(&format!(
            "/_sim/prerender?namespace=diff&count={OBJECTS}&size=1024&prefix=cm-"
        ))?;
        sim.post("/_sim/burst")?;
        raw = raw_object_bytes(&sim.url)?;
        for (with, runs) in [(false, &mut plain), (true, &mut diffed)] {
            let r = one(ctx, &mut sim, &dir.join(format!("faro-{with}")), with)
                .with_context(|| format!("diff run {} (--diff {with})", round + 1))?;
            eprintln!(
                "  diff run {} {}: {:.2} µs CPU per UPDATED ({OBJECTS} in {:.2} s), peak RSS {:.1} MiB (at ready {:.1} MiB)",
                round + 1,
                if with { "--diff" } else { "plain " },
                r.updates_cpu * 1e6 / OBJECTS as f64,
                r.updates_s,
                r.peak_rss as f64 / MIB,
                r.rss_at_ready as f64 / MIB
            );
            runs.push(r);
        }
    }
    let budget_mib = 1.5 * raw as f64 / MIB + 32.0;
    let col = |runs: &[Run], f: &dyn Fn(&Run) -> f64| -> Vec<f64> { runs.iter().map(f).collect() };
    let us = |r: &Run| r.updates_cpu * 1e6 / OBJECTS as f64;
    let mib = |r: &Run| r.peak_rss as f64 / MIB;
    let (us_plain, us_diff) = (col(&plain, &us), col(&diffed, &us));
    let (rss_plain, rss_diff) = (col(&plain, &mib), col(&diffed, &mib));
    let cpu_pass = median(&us_diff) <= CPU_TARGET_US;
    let rss_pass = median(&rss_diff) <= budget_mib;
    let json = json!({
        "objects": OBJECTS,
        "updates": OBJECTS,
        "raw_object_bytes": raw,
        "rss_budget_mib": budget_mib,
        "cpu_us_per_updated_plain": summary(&us_plain),
        "cpu_us_per_updated_diff": summary(&us_diff),
        "updates_seconds_diff": summary(&col(&diffed, &|r| r.updates_s)),
        "peak_rss_mib_plain": summary(&rss_plain),
        "peak_rss_mib_diff": summary(&rss_diff),
        "rss_at_ready_mib_diff": summary(&col(&diffed, &|r| r.rss_at_ready as f64 / MIB)),
    });
    let rows = vec![
        Row::new(
            "7. diff: CPU per UPDATED with --diff (burst of 100k, 1 KiB ConfigMaps)",
            format!("{} µs", spread(&us_diff, 2)),
            format!("without --diff {} µs", spread(&us_plain, 2)),
            format!("{:.2}× of target", median(&us_diff) / CPU_TARGET_US),
            "≤ 10 µs",
            Some(cpu_pass),
        )
        .with_caveat(crate::stats::runs_over(&us_diff, CPU_TARGET_US)),
        Row::new(
            "7. diff: peak RSS with --diff, 100k objects, each updated once",
            format!("{} MiB", spread(&rss_diff, 1)),
            format!("without --diff {} MiB", spread(&rss_plain, 1)),
            format!("{:.2}× of budget", median(&rss_diff) / budget_mib),
            &format!(
                "≤ 1.5 × {:.0} MiB raw + 32 = {budget_mib:.0} MiB",
                raw as f64 / MIB
            ),
            Some(rss_pass),
        )
        .with_caveat(crate::stats::runs_over(&rss_diff, budget_mib)),
    ];
    let cpu_rows = vec![
        CpuRow {
            case: "7. diff (burst of 100k MODIFIED → UPDATED lines with diff)".into(),
            process: "faro watch --diff".into(),
            events: OBJECTS.to_string(),
            cpu: spread(&col(&diffed, &|r| r.updates_cpu), 2),
            cpu_per_100k: spread(
                &col(&diffed, &|r| r.updates_cpu * 100_000.0 / OBJECTS as f64),
                3,
            ),
            peak_rss: spread(&rss_diff, 1),
        },
        CpuRow {
            case: "7. the same without --diff".into(),
            process: "faro watch".into(),
            events: OBJECTS.to_string(),
            cpu: spread(&col(&plain, &|r| r.updates_cpu), 2),
            cpu_per_100k: spread(
                &col(&plain, &|r| r.updates_cpu * 100_000.0 / OBJECTS as f64),
                3,
            ),
            peak_rss: spread(&rss_plain, 1),
        },
    ];
    let mut findings = vec![format!(
        "Diff: each UPDATED with its diff cost faro {} µs of CPU ({} µs without --diff); with \
         --diff, peak RSS was {} MiB against {} MiB without, for {:.0} MiB of raw objects.",
        spread(&us_diff, 2),
        spread(&us_plain, 2),
        spread(&rss_diff, 1),
        spread(&rss_plain, 1),
        raw as f64 / MIB
    )];
    if !cpu_pass {
        findings.push(format!(
            "Diff CPU target missed: {:.2} µs against ≤ 10 µs.",
            median(&us_diff)
        ));
    }
    if !rss_pass {
        findings.push(format!(
            "Diff memory target missed: {:.1} MiB against ≤ {budget_mib:.1} MiB.",
            median(&rss_diff)
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

/// One faro: ready over the objects, then a burst that modifies each of them once.
fn one(ctx: &Ctx, sim: &mut Sim, dir: &Path, diff: bool) -> Result<Run> {
    fs::create_dir_all(dir)?;
    let cfg = dir.join("faro.yaml");
    fs::write(&cfg, "resources:\n  - gvr: v1/configmaps\n")?;
    let ready = dir.join("ready");
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["watch".as_ref(), "--config".as_ref(), cfg.as_os_str()];
    if diff {
        args.push("--diff".as_ref());
    }
    let cmd = ctx.faro_cmd(&sim.kubeconfig, args, &ready);
    let mut p = Proc::start("faro", cmd, Out::Pipe, dir)?;
    let counter = Counter::spawn(p.take_stdout()?, false);
    p.wait_file(&ready, Duration::from_secs(120))?;
    let pid = p.pid();
    counter
        .wait_lines(OBJECTS as u64, Duration::from_secs(60), || p.alive())
        .context("waiting for the initial ADDED lines")?;
    let rss_at_ready = procfs::peak_rss(pid)?;
    // Rendered before the clock starts, so that kube-sim's work is not on faro's account.
    sim.post(&format!(
        "/_sim/prerender?namespace=diff&count={OBJECTS}&prefix=cm-&modify=true"
    ))?;
    counter.arm(2 * OBJECTS as u64);
    let cpu0 = procfs::cpu_seconds(pid)?;
    let t0 = std::time::Instant::now();
    sim.post("/_sim/burst")?;
    let t_done = counter
        .wait(Duration::from_secs(120), || p.alive())
        .context("waiting for the UPDATED lines")?;
    let updates_cpu = procfs::cpu_seconds(pid)? - cpu0;
    let peak_rss = procfs::peak_rss(pid)?;
    p.kill();
    Ok(Run {
        updates_cpu,
        updates_s: (t_done - t0).as_secs_f64(),
        rss_at_ready,
        peak_rss,
    })
}

/// The bytes of every ConfigMap as the server sends them: the `items` of one unpaged LIST
/// (the list's envelope is a few hundred bytes and counted too).
fn raw_object_bytes(url: &str) -> Result<u64> {
    let out = Command::new("curl")
        .args(["-sS", "-f", "-o", "/dev/null", "-w", "%{size_download}"])
        .arg(format!("{url}/api/v1/configmaps"))
        .stdin(Stdio::null())
        .output()
        .context("running curl")?;
    if !out.status.success() {
        bail!("curl LIST failed: {}", out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("curl's size_download")
}
