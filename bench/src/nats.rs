//! Case 8, NATS: publish throughput to a local JetStream (a nats-server on loopback, its store
//! on disk), with acks, beside the stdout rate of the same events. 50,000 ~1 KiB ConfigMaps
//! (5 namespaces × 10,000) are listed by `faro watch`:
//! - stdout alone: spawn → `--ready-file` (every initial line written and flushed);
//! - with `--nats` (a fresh stream per run): spawn → `--ready-file`, which faro creates only
//!   once JetStream has acknowledged every initial event; the stream's message count (the
//!   server's `/jsz`) must then be the object count.
//!
//! Events per second = objects / that time; faro's and nats-server's CPU seconds per 100,000
//! events beside it.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::counter::Counter;
use crate::process::{Out, Proc};
use crate::report::{CaseResult, CpuRow, Row};
use crate::sim::Sim;
use crate::stats::{median, spread, summary};
use crate::{Ctx, procfs};

const NAMESPACES: usize = 5;
const PER_NAMESPACE: usize = 10_000;
const NATS_SERVER: &str = "/usr/sbin/nats-server";

struct Run {
    stdout_rate: f64,
    nats_rate: f64,
    stdout_cpu: f64,
    nats_cpu: f64,
    server_cpu: f64,
    nats_rss: u64,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub fn run(ctx: &Ctx) -> Result<CaseResult> {
    if !Path::new(NATS_SERVER).is_file() {
        bail!("{NATS_SERVER} not found (apt-get install nats-server)");
    }
    let objects = NAMESPACES * PER_NAMESPACE;
    let dir = ctx.case_dir("nats")?;
    let mut sim = Sim::start(&ctx.bin_dir, &dir, "vanilla")?;
    for ns in 0..NAMESPACES {
        sim.post(&format!(
            "/_sim/load?namespace=nb-{ns}&resource=configmaps&count={PER_NAMESPACE}&size=1024"
        ))?;
    }
    let port = free_port()?;
    let monitor = free_port()?;
    let mut server = Proc::start(
        "nats-server",
        {
            let mut c = Command::new(NATS_SERVER);
            c.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
                .args(["-m", &monitor.to_string(), "-sd"])
                .arg(dir.join("js"));
            c
        },
        Out::Null,
        &dir,
    )?;
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        server.alive()?;
        if start.elapsed() > Duration::from_secs(10) {
            bail!("nats-server did not listen on {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut runs = Vec::new();
    for round in 0..ctx.runs {
        let rdir = ctx.case_dir(&format!("nats/run-{round}"))?;
        let r = one(ctx, &sim, &mut server, port, monitor, &rdir, objects, round)
            .with_context(|| format!("nats run {}", round + 1))?;
        eprintln!(
            "  nats run {}: stdout {:.0} events/s; JetStream (acked) {:.0} events/s; faro CPU {:.2} s / {:.2} s, nats-server {:.2} s; faro peak RSS {:.1} MiB",
            round + 1,
            r.stdout_rate,
            r.nats_rate,
            r.stdout_cpu,
            r.nats_cpu,
            r.server_cpu,
            r.nats_rss as f64 / 1048576.0
        );
        runs.push(r);
    }
    server.kill();
    drop(sim);
    let col = |f: &dyn Fn(&Run) -> f64| -> Vec<f64> { runs.iter().map(f).collect() };
    let stdout = col(&|r| r.stdout_rate);
    let nats = col(&|r| r.nats_rate);
    let per100k = |cpu: f64| cpu * 100_000.0 / objects as f64;
    let stdout_cpu = col(&|r| per100k(r.stdout_cpu));
    let nats_cpu = col(&|r| per100k(r.nats_cpu));
    let server_cpu = col(&|r| per100k(r.server_cpu));
    let rss = col(&|r| r.nats_rss as f64 / 1048576.0);
    let ratio = median(&nats) / median(&stdout);
    let json = json!({
        "objects": objects,
        "runs": ctx.runs,
        "stdout_events_per_second": summary(&stdout),
        "jetstream_acked_events_per_second": summary(&nats),
        "faro_cpu_seconds_per_100k_stdout": summary(&stdout_cpu),
        "faro_cpu_seconds_per_100k_nats": summary(&nats_cpu),
        "nats_server_cpu_seconds_per_100k": summary(&server_cpu),
        "faro_peak_rss_mib_nats": summary(&rss),
    });
    let rows = vec![Row::new(
        "8. NATS: publish throughput to JetStream (acked)",
        format!("{} events/s", spread(&nats, 0)),
        format!("stdout {} events/s", spread(&stdout, 0)),
        format!("{ratio:.2}× of stdout"),
        "—",
        None,
    )];
    let cpu_rows = vec![
        CpuRow {
            case: "8. NATS (50k initial events)".into(),
            process: "faro watch (stdout)".into(),
            events: objects.to_string(),
            cpu: spread(&col(&|r| r.stdout_cpu), 2),
            cpu_per_100k: spread(&stdout_cpu, 2),
            peak_rss: "—".into(),
        },
        CpuRow {
            case: "8. NATS (50k initial events)".into(),
            process: "faro watch --nats".into(),
            events: objects.to_string(),
            cpu: spread(&col(&|r| r.nats_cpu), 2),
            cpu_per_100k: spread(&nats_cpu, 2),
            peak_rss: spread(&rss, 1),
        },
        CpuRow {
            case: "8. NATS (50k initial events)".into(),
            process: "nats-server (JetStream, file store)".into(),
            events: objects.to_string(),
            cpu: spread(&col(&|r| r.server_cpu), 2),
            cpu_per_100k: spread(&server_cpu, 2),
            peak_rss: "—".into(),
        },
    ];
    let findings = vec![format!(
        "NATS: faro publishes {} events/s to a local JetStream with every ack awaited, {ratio:.2}× \
         its stdout rate of the same 50,000 events ({} events/s); faro spends {} s of CPU per \
         100,000 events with NATS ({} s without), nats-server {} s.",
        spread(&nats, 0),
        spread(&stdout, 0),
        spread(&nats_cpu, 2),
        spread(&stdout_cpu, 2),
        spread(&server_cpu, 2),
    )];
    Ok(CaseResult {
        json,
        rows,
        cpu_rows,
        findings,
        details: String::new(),
    })
}

/// Messages the server's monitoring says `stream` holds.
fn stream_messages(monitor: u16, stream: &str) -> Result<u64> {
    let out = Command::new("curl")
        .args(["-s", "-m", "5"])
        .arg(format!(
            "http://127.0.0.1:{monitor}/jsz?streams=true&config=true"
        ))
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("/jsz")?;
    let streams = v["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten());
    for s in streams {
        if s["name"] == stream {
            return Ok(s["state"]["messages"].as_u64().unwrap_or(0));
        }
    }
    Ok(0)
}

#[allow(clippy::too_many_arguments)]
fn one(
    ctx: &Ctx,
    sim: &Sim,
    server: &mut Proc,
    port: u16,
    monitor: u16,
    dir: &Path,
    objects: usize,
    round: usize,
) -> Result<Run> {
    let cfg = dir.join("faro.yaml");
    fs::write(&cfg, "resources:\n  - gvr: v1/configmaps\n")?;
    let url = format!("nats://127.0.0.1:{port}");
    // A stream and subjects of its own per round: JetStream refuses a stream whose subjects
    // overlap another's.
    let stream = format!("BENCH{round}");
    let prefix = format!("bench{round}");
    let measure = |name: &str, extra: &[&str]| -> Result<(f64, f64, u64)> {
        let ready = dir.join(format!("ready-{name}"));
        let mut args: Vec<std::ffi::OsString> = vec!["watch".into(), "--config".into()];
        args.push(cfg.clone().into_os_string());
        args.extend(["-o".into(), "json".into()]);
        args.extend(extra.iter().map(std::ffi::OsString::from));
        let t0 = Instant::now();
        let mut p = Proc::start(
            name,
            ctx.faro_cmd(&sim.kubeconfig, args, &ready),
            Out::Pipe,
            dir,
        )?;
        let counter = Counter::spawn(p.take_stdout()?, false);
        let t_ready = p.wait_file(&ready, Duration::from_secs(300))?;
        counter.wait_lines(objects as u64, Duration::from_secs(30), || p.alive())?;
        let cpu = procfs::cpu_seconds(p.pid())?;
        let rss = procfs::peak_rss(p.pid())?;
        p.kill();
        Ok(((t_ready - t0).as_secs_f64(), cpu, rss))
    };
    let (stdout_s, stdout_cpu, _) = measure("faro-stdout", &[])?;
    let server_cpu0 = procfs::cpu_seconds(server.pid())?;
    let (nats_s, nats_cpu, nats_rss) = measure(
        "faro-nats",
        &[
            "--nats",
            &url,
            "--nats-stream",
            &stream,
            "--nats-subject-prefix",
            &prefix,
        ],
    )?;
    let server_cpu = procfs::cpu_seconds(server.pid())? - server_cpu0;
    let stored = stream_messages(monitor, &stream)?;
    if stored != objects as u64 {
        bail!("the stream {stream} holds {stored} messages, not {objects}, at ready");
    }
    Ok(Run {
        stdout_rate: objects as f64 / stdout_s,
        nats_rate: objects as f64 / nats_s,
        stdout_cpu,
        nats_cpu,
        server_cpu,
        nats_rss,
    })
}
