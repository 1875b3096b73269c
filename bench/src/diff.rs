//! Case 7, diff: the memory case's 100,000 ~1 KiB ConfigMaps and 10,000 updates, each run made
//! twice in a row on the same kube-sim: `faro watch` as in case 2, then with `--diff` (every
//! UPDATED carries its diff; faro keeps the last version of each object). Reported: CPU per
//! UPDATED with diff (target ≤ 10 µs) next to the same without, and peak RSS with `--diff`
//! against 1.5 × the raw object bytes (the size of one unpaged LIST's items, as the server
//! sends them) plus 32 MiB.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::Ctx;
use crate::memory::{self, MIB, NAMESPACES, PER_NAMESPACE, UPDATES};
use crate::report::{CaseResult, CpuRow, Row};
use crate::stats::{median, spread, summary};

/// µs of CPU per UPDATED the target allows.
const CPU_TARGET_US: f64 = 10.0;

pub fn run(ctx: &Ctx) -> Result<CaseResult> {
    let objects = NAMESPACES * PER_NAMESPACE;
    let dir = ctx.case_dir("diff")?;
    let mut sim = memory::loaded_sim(ctx, &dir)?;
    let raw = raw_object_bytes(&sim.url)?;
    let budget_mib = 1.5 * raw as f64 / MIB + 32.0;
    eprintln!(
        "  diff: raw object bytes {:.1} MiB ({} per object), RSS budget {budget_mib:.1} MiB",
        raw as f64 / MIB,
        raw / objects as u64
    );
    let (mut plain, mut diffed) = (Vec::new(), Vec::new());
    for round in 0..ctx.runs {
        for (with, runs) in [(false, &mut plain), (true, &mut diffed)] {
            let rdir = ctx.case_dir(&format!("diff/run-{round}-{with}"))?;
            let extra: &[&str] = if with { &["--diff"] } else { &[] };
            // Rounds of the two differ in their values (and so make real changes).
            let r = memory::one(ctx, &mut sim, &rdir, round * 2 + with as usize, extra)
                .with_context(|| format!("diff run {} (--diff {with})", round + 1))?;
            eprintln!(
                "  diff run {} {}: {:.2} µs CPU per UPDATED, peak RSS {:.1} MiB (at ready {:.1} MiB)",
                round + 1,
                if with { "--diff" } else { "plain " },
                r.updates_cpu * 1e6 / UPDATES as f64,
                r.peak_rss as f64 / MIB,
                r.rss_at_ready as f64 / MIB
            );
            runs.push(r);
        }
    }
    let col = |runs: &[memory::Run], f: &dyn Fn(&memory::Run) -> f64| -> Vec<f64> {
        runs.iter().map(f).collect()
    };
    let us = |r: &memory::Run| r.updates_cpu * 1e6 / UPDATES as f64;
    let mib = |r: &memory::Run| r.peak_rss as f64 / MIB;
    let (us_plain, us_diff) = (col(&plain, &us), col(&diffed, &us));
    let (rss_plain, rss_diff) = (col(&plain, &mib), col(&diffed, &mib));
    let ready_diff = col(&diffed, &|r| r.ready_s);
    let cpu_pass = median(&us_diff) <= CPU_TARGET_US;
    let rss_pass = median(&rss_diff) <= budget_mib;
    let json = json!({
        "objects": objects,
        "updates": UPDATES,
        "raw_object_bytes": raw,
        "rss_budget_mib": budget_mib,
        "cpu_us_per_updated_plain": summary(&us_plain),
        "cpu_us_per_updated_diff": summary(&us_diff),
        "peak_rss_mib_plain": summary(&rss_plain),
        "peak_rss_mib_diff": summary(&rss_diff),
        "startup_to_ready_seconds_diff": summary(&ready_diff),
    });
    let rows = vec![
        Row::new(
            "7. diff: CPU per UPDATED with --diff (1 KiB ConfigMaps)",
            format!("{} µs", spread(&us_diff, 2)),
            format!("without --diff {} µs", spread(&us_plain, 2)),
            format!("{:.2}× of target", median(&us_diff) / CPU_TARGET_US),
            "≤ 10 µs",
            Some(cpu_pass),
        )
        .with_caveat(crate::stats::runs_over(&us_diff, CPU_TARGET_US)),
        Row::new(
            "7. diff: peak RSS with --diff, 100k objects + 10k updates",
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
            case: "7. diff (10k PATCHes → 10k UPDATED lines with diff)".into(),
            process: "faro watch --diff".into(),
            events: UPDATES.to_string(),
            cpu: spread(&col(&diffed, &|r| r.updates_cpu), 2),
            cpu_per_100k: spread(
                &col(&diffed, &|r| r.updates_cpu * 100_000.0 / UPDATES as f64),
                3,
            ),
            peak_rss: spread(&rss_diff, 1),
        },
        CpuRow {
            case: "7. diff, startup (100k initial ADDED, versions kept)".into(),
            process: "faro watch --diff".into(),
            events: objects.to_string(),
            cpu: spread(&col(&diffed, &|r| r.ready_cpu), 2),
            cpu_per_100k: spread(
                &col(&diffed, &|r| r.ready_cpu * 100_000.0 / objects as f64),
                3,
            ),
            peak_rss: spread(&col(&diffed, &|r| r.rss_at_ready as f64 / MIB), 1),
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
