//! What the benchmarks read from /proc about one process: CPU seconds (utime + stime, all
//! threads, dead ones included), peak resident set (VmHWM), bytes written (wchar) and TCP
//! connections to a port.
//! Only the process measured is read, so kube-sim's CPU and memory never count as faro's.

use std::fs;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};

/// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`, 100 on Linux).
fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// User + system CPU seconds of the process so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("bad /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, utime field 14, stime field 15 (1-based in proc(5)).
    let tick = |i: usize| -> Result<f64> {
        f.get(i - 3)
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or_else(|| anyhow!("bad /proc/{pid}/stat field {i}"))
    };
    Ok((tick(14)? + tick(15)?) / clk_tck())
}

fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no {key} in /proc/{pid}/status"))
}

/// Peak resident set size (VmHWM), bytes.
pub fn peak_rss(pid: u32) -> Result<u64> {
    Ok(status_kib(pid, "VmHWM:")? * 1024)
}

/// Bytes the process has passed to write(2) and friends (`wchar` of /proc/PID/io). For
/// `curl -o /dev/null` that is the de-chunked body it has received (socket reads through
/// recv(2) are not in `rchar`).
pub fn wchar(pid: u32) -> Result<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/io"))
        .with_context(|| format!("reading /proc/{pid}/io"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("no wchar in /proc/{pid}/io"))
}

/// ESTABLISHED TCP connections the process holds to `port` on any address: its socket fds
/// (/proc/PID/fd) matched by inode with /proc/PID/net/tcp and tcp6.
pub fn tcp_connections_to(pid: u32, port: u16) -> Result<usize> {
    let mut inodes = std::collections::HashSet::new();
    for fd in fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("reading /proc/{pid}/fd"))?
    {
        let Ok(target) = fs::read_link(fd?.path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
        {
            inodes.insert(inode.to_owned());
        }
    }
    let mut count = 0;
    for table in ["tcp", "tcp6"] {
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let remote_port = f
                .get(2)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // Field 4 is the state, 01 = ESTABLISHED; field 10 the inode.
            if f.get(3) == Some(&"01")
                && remote_port == Some(port)
                && f.get(9).is_some_and(|i| inodes.contains(*i))
            {
                count += 1;
            }
        }
    }
    Ok(count)
}
