//! Case 6, restart: 100,000 ~1 KiB ConfigMaps (10 namespaces × 10,000) watched by `faro watch
//! --state-file` (checkpoint interval 1 s). A first run lists them, writes its checkpoints and
//! stops gracefully; then:
//! - the state file's size;
//! - the CPU a checkpoint costs: one object is changed, faro's CPU seconds (/proc) are read
//!   before the change and once the state file has been rewritten, five times; the change's own
//!   event is part of it (a few µs);
//! - faro's peak RSS with checkpoints on (VmHWM of the first run);
//! - restart to ready: a second run with the state, spawn → --ready-file, and that it listed
//!   nothing (kube-sim's request log).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

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
const CHECKPOINTS: usize = 5;
const MIB: f64 = 1048576.0;

struct Run {
    state_bytes: u64,
    checkpoint_cpu_s: f64,
    peak_rss: u64,
    restart_s: f64,
    relists: usize,
}

pub fn run(ctx: &Ctx) -> Result<CaseResult> {
    let objects = NAMESPACES * PER_NAMESPACE;
    let dir = ctx.case_dir("restart")?;
    let mut sim = Sim::start(&ctx.bin_dir, &dir, "vanilla")?;
    for ns in 0..NAMESPACES {
        sim.post(&format!(
            "/_sim/load?namespace=rs-{ns}&resource=configmaps&count={PER_NAMESPACE}&size=1024"
        ))?;
    }
    let mut runs = Vec::new();
    for round in 0..ctx.runs {
        let rdir = ctx.case_dir(&format!("restart/run-{round}"))?;
        let r = one(ctx, &mut sim, &rdir, objects)
            .with_context(|| format!("restart run {}", round + 1))?;
        eprintln!(
            "  restart run {}: state {:.1} MiB, checkpoint cpu {:.1} ms, peak RSS {:.1} MiB, restart to ready {:.3} s ({} lists)",
            round + 1,
            r.state_bytes as f64 / MIB,
            r.checkpoint_cpu_s * 1000.0,
            r.peak_rss as f64 / MIB,
            r.restart_s,
            r.relists
        );
        runs.push(r);
    }
    let col = |f: &dyn Fn(&Run) -> f64| -> Vec<f64> { runs.iter().map(f).collect() };
    let state = col(&|r| r.state_bytes as f64 / MIB);
    let cpu_ms = col(&|r| r.checkpoint_cpu_s * 1000.0);
    let rss = col(&|r| r.peak_rss as f64 / MIB);
    let restart = col(&|r| r.restart_s);
    let relists: usize = runs.iter().map(|r| r.relists).sum();
    let json = json!({
        "objects": objects,
        "runs": ctx.runs,
        "state_file_mib": summary(&state),
        "checkpoint_cpu_ms": summary(&cpu_ms),
        "peak_rss_mib": summary(&rss),
        "restart_to_ready_seconds": summary(&restart),
        "lists_at_restart": relists,
    });
    let rows = vec![
        Row::new(
            "6. restart: state file, 100k objects",
            format!("{} MiB", spread(&state, 1)),
            "—".into(),
            format!("{:.2}× of target", median(&state) / 8.0),
            "≤ 8 MiB",
            Some(median(&state) <= 8.0),
        ),
        Row::new(
            "6. restart: CPU per checkpoint",
            format!("{} ms", spread(&cpu_ms, 1)),
            "—".into(),
            format!("{:.2}× of target", median(&cpu_ms) / 50.0),
            "≤ 50 ms",
            Some(median(&cpu_ms) <= 50.0),
        ),
        Row::new(
            "6. restart: restart to ready (no relist)",
            format!("{} s", spread(&restart, 3)),
            format!("{relists} lists at restart"),
            format!("{:.2}× of target", median(&restart) / 0.2),
            "≤ 0.2 s",
            Some(median(&restart) <= 0.2 && relists == 0),
        ),
        Row::new(
            "6. restart: peak RSS with checkpoints",
            format!("{} MiB", spread(&rss, 1)),
            "—".into(),
            format!("{:.2}× of target", median(&rss) / 64.0),
            "≤ 64 MiB",
            Some(median(&rss) <= 64.0),
        ),
    ];
    let cpu_rows = vec![CpuRow {
        case: "6. restart (one checkpoint of 100k objects)".into(),
        process: "faro watch --state-file".into(),
        events: "1".into(),
        cpu: spread(&col(&|r| r.checkpoint_cpu_s), 3),
        cpu_per_100k: "—".into(),
        peak_rss: spread(&rss, 1),
    }];
    let findings = vec![format!(
        "Restart: with 100,000 objects the state file is {} MiB, a checkpoint costs {} ms of CPU, \
         faro's peak RSS with checkpoints on is {} MiB, and a restart with the state is ready in {} s \
         having listed nothing ({relists} list requests over all runs).",
        spread(&state, 1),
        spread(&cpu_ms, 1),
        spread(&rss, 1),
        spread(&restart, 3),
    )];
    Ok(CaseResult {
        json,
        rows,
        cpu_rows,
        findings,
        details: String::new(),
    })
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Waits until the state file is written after `since`.
fn wait_checkpoint(path: &Path, since: Option<SystemTime>, p: &mut Proc) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(m) = modified(path)
            && since.is_none_or(|s| m > s)
        {
            return Ok(());
        }
        p.alive()?;
        if Instant::now() > deadline {
            bail!("no checkpoint written to {} within 30 s", path.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn one(ctx: &Ctx, sim: &mut Sim, dir: &Path, objects: usize) -> Result<Run> {
    let cfg = dir.join("faro.yaml");
    fs::write(&cfg, "resources:\n  - gvr: v1/configmaps\n")?;
    let state = dir.join("state.json");
    let kubeconfig = sim.kubeconfig.clone();
    let args = |ready: &Path| {
        ctx.faro_cmd(
            &kubeconfig,
            [
                "watch".as_ref(),
                "--config".as_ref(),
                cfg.as_os_str(),
                "--state-file".as_ref(),
                state.as_os_str(),
                "--checkpoint-interval".as_ref(),
                "1s".as_ref(),
            ],
            ready,
        )
    };
    let ready = dir.join("ready-1");
    let mut p = Proc::start("faro", args(&ready), Out::Pipe, dir)?;
    let counter = Counter::spawn(p.take_stdout()?, false);
    p.wait_file(&ready, Duration::from_secs(120))?;
    counter
        .wait_lines(objects as u64, Duration::from_secs(60), || p.alive())
        .context("waiting for the initial lines")?;
    wait_checkpoint(&state, None, &mut p)?;
    let pid = p.pid();
    let mut cpu = Vec::new();
    for i in 0..CHECKPOINTS {
        // Between two checkpoints: the next one comes after this change.
        std::thread::sleep(Duration::from_millis(1100));
        let before = modified(&state);
        let cpu0 = procfs::cpu_seconds(pid)?;
        sim.send(
            "PATCH",
            &format!(
                "/api/v1/namespaces/rs-{}/configmaps/configmap-{i:06}",
                i % NAMESPACES
            ),
            "application/merge-patch+json",
            // A value no earlier run set: an unchanged object is no change (no event).
            &json!({"data": {"value": format!("checkpoint-{}-{i}", dir.display())}}),
        )?;
        wait_checkpoint(&state, before, &mut p)?;
        // The writer thread's last bytes are accounted once the rename is seen.
        std::thread::sleep(Duration::from_millis(20));
        cpu.push(procfs::cpu_seconds(pid)? - cpu0);
    }
    let peak_rss = procfs::peak_rss(pid)?;
    if !p.terminate(Duration::from_secs(30))? {
        bail!("faro did not stop within 30 s of SIGTERM");
    }
    let state_bytes = fs::metadata(&state)?.len();

    sim.post("/_sim/requests?clear=true")?;
    let ready = dir.join("ready-2");
    let t0 = Instant::now();
    let mut p = Proc::start("faro-restart", args(&ready), Out::Null, dir)?;
    let t_ready = p.wait_file(&ready, Duration::from_secs(60))?;
    let requests = sim.get("/_sim/requests")?;
    let relists = requests["requests"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter(|r| {
                    r["path"] == "/api/v1/configmaps"
                        && r["query"]
                            .as_str()
                            .is_some_and(|q| !q.contains("watch=true"))
                })
                .count()
        })
        .unwrap_or(0);
    p.kill();
    Ok(Run {
        state_bytes,
        checkpoint_cpu_s: median(&cpu),
        peak_rss,
        restart_s: (t_ready - t0).as_secs_f64(),
        relists,
    })
}
