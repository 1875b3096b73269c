//! Case 3, discovery: `faro discover` (default JSON-lines output to /dev/null) against
//! `kubectl api-resources` with a cold cache (its --cache-dir removed before every run) on
//! kube-sim's `large` catalog. Timed by hyperfine (`-N`, warmups, `--prepare`); when hyperfine
//! is missing, by a loop here that does the same (fresh cache dir, output to /dev/null).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::Ctx;
use crate::report::{CaseResult, CpuRow, Row};
use crate::sim::Sim;
use crate::stats::{median, spread, summary};

pub fn run(ctx: &Ctx) -> Result<CaseResult> {
    let dir = ctx.case_dir("discovery")?;
    let sim = Sim::start(&ctx.bin_dir, &dir, "large")?;
    let cache = dir.join("kubectl-cache");
    let home = dir.join("home");
    fs::create_dir_all(&home)?;
    let kc = sim.kubeconfig.display().to_string();
    let kubectl_cmd = format!(
        "{} --kubeconfig {kc} --cache-dir {} api-resources",
        ctx.kubectl.display(),
        cache.display()
    );
    let faro_cmd = format!("{} --kubeconfig {kc} discover", ctx.faro().display());
    // Sanity: both list the catalog.
    let rows_k = count_lines(
        &ctx.kubectl,
        &[
            "--kubeconfig",
            &kc,
            "--cache-dir",
            &cache.display().to_string(),
            "api-resources",
            "--no-headers",
        ],
        &home,
    )?;
    let rows_f = count_lines(
        &ctx.faro(),
        &["--kubeconfig", &kc, "discover", "-o", "name"],
        &home,
    )?;
    eprintln!("  discovery: kubectl lists {rows_k} resources, faro {rows_f} GVRs");

    let runs = ctx.discovery_runs;
    let (tool, faro_s, kubectl_s) = match which("hyperfine") {
        Some(hf) => {
            let out = dir.join("hyperfine.json");
            let st = Command::new(hf)
                .env("HOME", &home)
                .args(["-N", "--style", "basic", "--warmup", "2", "--runs"])
                .arg(runs.to_string())
                .arg("--prepare")
                .arg(format!("rm -rf {}", cache.display()))
                .arg("--export-json")
                .arg(&out)
                .args([
                    "-n",
                    "faro discover",
                    &faro_cmd,
                    "-n",
                    "kubectl api-resources",
                    &kubectl_cmd,
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(dir.join("hyperfine.stderr"))?)
                .status()
                .context("running hyperfine")?;
            if !st.success() {
                bail!(
                    "hyperfine failed ({st}): {}",
                    fs::read_to_string(dir.join("hyperfine.stderr")).unwrap_or_default()
                );
            }
            let v: Value = serde_json::from_str(&fs::read_to_string(&out)?)
                .context("reading hyperfine's JSON")?;
            let times = |i: usize| -> Result<Vec<f64>> {
                v["results"][i]["times"]
                    .as_array()
                    .context("hyperfine JSON without times")?
                    .iter()
                    .map(|t| t.as_f64().context("bad time"))
                    .collect()
            };
            ("hyperfine", times(0)?, times(1)?)
        }
        None => {
            eprintln!("  discovery: hyperfine not found, timing with a loop");
            let mut f = Vec::new();
            let mut k = Vec::new();
            for i in 0..runs + 2 {
                let tf = time_cmd(&faro_cmd, &home)?;
                let _ = fs::remove_dir_all(&cache);
                let tk = time_cmd(&kubectl_cmd, &home)?;
                if i >= 2 {
                    f.push(tf);
                    k.push(tk);
                }
            }
            ("loop (hyperfine missing)", f, k)
        }
    };
    drop(sim);
    let ratio = median(&faro_s) / median(&kubectl_s);
    let ms = |xs: &[f64]| xs.iter().map(|x| x * 1000.0).collect::<Vec<_>>();
    let json = json!({
        "catalog": "large",
        "timed_by": tool,
        "runs": runs,
        "kubectl_resources": rows_k,
        "faro_gvrs": rows_f,
        "faro_ms": summary(&ms(&faro_s)),
        "kubectl_ms": summary(&ms(&kubectl_s)),
        "ratio": ratio,
    });
    let rows = vec![Row::new(
        "3. discovery (large catalog, cold cache)",
        format!("{} ms", spread(&ms(&faro_s), 1)),
        format!("kubectl api-resources {} ms", spread(&ms(&kubectl_s), 1)),
        format!("{ratio:.2}×"),
        "≤ 0.3×",
        Some(ratio <= 0.3),
    )];
    let mut findings = vec![format!(
        "Discovery ({tool}, {runs} runs, median): faro {} ms against kubectl's {} ms with a cold cache, {ratio:.2}× \
         (kubectl lists {rows_k} resources, faro {rows_f} GVRs: every served version).",
        spread(&ms(&faro_s), 1),
        spread(&ms(&kubectl_s), 1),
    )];
    if ratio > 0.3 {
        findings.push(format!(
            "Discovery target missed: {ratio:.2}× against ≤ 0.3×."
        ));
    }
    Ok(CaseResult {
        json,
        rows,
        cpu_rows: Vec::<CpuRow>::new(),
        findings,
        details: String::new(),
    })
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// Lines `bin args` prints (fails on a non-zero exit).
fn count_lines(bin: &Path, args: &[&str], home: &Path) -> Result<usize> {
    let out = Command::new(bin)
        .args(args)
        .env("HOME", home)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} {args:?} failed ({}): {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout.iter().filter(|&&b| b == b'\n').count())
}

/// Wall seconds of one run of a space-separated command line, output to /dev/null.
fn time_cmd(cmdline: &str, home: &Path) -> Result<f64> {
    let mut parts = cmdline.split_whitespace();
    let bin = parts.next().context("empty command")?;
    let t = Instant::now();
    let st = Command::new(bin)
        .args(parts)
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {cmdline}"))?;
    let dt = t.elapsed().as_secs_f64();
    if !st.success() {
        bail!("{cmdline} failed: {st}");
    }
    Ok(dt)
}
