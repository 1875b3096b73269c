//! A flat CPU profile of one faro process with `perf record -F 2999 -p PID` (Debian's perf),
//! taken when a target is missed (or on `--perf`), so that the report can say where faro's
//! time goes. Self time per symbol from `perf report --no-children`, plus a rough grouping of
//! those symbols (input JSON parsing, object state, output, allocation and copies, kernel).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// A running `perf record` attached to one pid; it ends by itself when that process exits.
pub struct Recorder {
    child: Child,
    data: PathBuf,
}

/// Whether `perf` can be run at all.
pub fn available() -> bool {
    Command::new("perf")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Recorder {
    /// Starts sampling `pid` into `dir/perf.data`.
    pub fn start(pid: u32, dir: &Path) -> Result<Self> {
        let data = dir.join("perf.data");
        let child = Command::new("perf")
            .args(["record", "-q", "-F", "2999", "-p", &pid.to_string(), "-o"])
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.join("perf.stderr"))?)
            .spawn()
            .context("starting perf record")?;
        // perf needs a moment to attach to every thread.
        std::thread::sleep(std::time::Duration::from_millis(300));
        Ok(Self { child, data })
    }

    /// Waits for perf (after the profiled process was killed) and reads the flat profile.
    pub fn finish(mut self) -> Result<Value> {
        let st = self.child.wait().context("waiting for perf record")?;
        if !self.data.exists() {
            bail!("perf record wrote no data ({st})");
        }
        let out = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--sort",
                "symbol",
                "--percent-limit",
                "0.5",
                "-q",
                "-i",
            ])
            .arg(&self.data)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .context("running perf report")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut top = Vec::new();
        let mut groups: Vec<(&str, f64)> = GROUPS.iter().map(|(g, _)| (*g, 0.0)).collect();
        for line in text.lines() {
            let line = line.trim();
            let Some((pct, rest)) = line.split_once('%') else {
                continue;
            };
            let Ok(pct) = pct.trim().parse::<f64>() else {
                continue;
            };
            // perf pads the symbol column and may add empty "-" columns after it.
            let sym = rest
                .trim()
                .trim_end_matches(|c: char| c == '-' || c.is_whitespace())
                .to_string();
            let g = group_of(&sym);
            if let Some(e) = groups.iter_mut().find(|(n, _)| *n == g) {
                e.1 += pct;
            }
            top.push((pct, sym));
        }
        if top.is_empty() {
            bail!("perf report printed no samples");
        }
        let listed: f64 = top.iter().map(|(p, _)| p).sum();
        groups.push(("symbols under 0.5% each", (100.0 - listed).max(0.0)));
        Ok(json!({
            "top": top.iter().take(15).map(|(p, s)| json!({"percent": p, "symbol": s})).collect::<Vec<_>>(),
            "groups": groups.iter().map(|(g, p)| json!({"group": g, "percent": (p * 10.0).round() / 10.0})).collect::<Vec<_>>(),
            "data": self.data.display().to_string(),
        }))
    }
}

/// Groups in order of precedence (the first that matches takes a symbol), each with the substrings of the symbols it takes.
const GROUPS: &[(&str, &[&str])] = &[
    ("kernel (socket, pipe, page faults)", &["[k]"]),
    (
        "output (serialize, write)",
        &[
            "serde_json::ser",
            "format_escaped",
            "emit::",
            "render",
            "Serializer",
            "itoa",
        ],
    ),
    (
        "per-object state (uids, hash maps)",
        &["state::", "hashbrown", "Uid", "observe"],
    ),
    (
        "input JSON parsing (serde_json, UTF-8)",
        &[
            "serde_json",
            "utf8",
            "parse",
            "memchr",
            "Deserialize",
            "deserialize",
            "StrSearcher",
        ],
    ),
    (
        "allocation and copies",
        &[
            "malloc", "free", "realloc", "memmove", "memcpy", "memset", "alloc::",
        ],
    ),
    ("other (tokio, hyper, faro glue)", &[]),
];

fn group_of(sym: &str) -> &'static str {
    for (g, keys) in GROUPS {
        if keys.iter().any(|k| sym.contains(k)) {
            return g;
        }
    }
    GROUPS[GROUPS.len() - 1].0
}

/// The profile as Markdown: groups, then the top symbols.
pub fn markdown(p: &Value) -> String {
    let mut s = String::from("| where | share of faro's CPU samples |\n|---|---|\n");
    for g in p["groups"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {} | {}% |\n",
            g["group"].as_str().unwrap_or("?"),
            g["percent"]
        ));
    }
    s.push_str("\nTop symbols (self time):\n\n```\n");
    for t in p["top"].as_array().into_iter().flatten() {
        let sym = t["symbol"].as_str().unwrap_or("?");
        let sym: String = sym.chars().take(110).collect();
        s.push_str(&format!(
            "{:>6.2}%  {sym}\n",
            t["percent"].as_f64().unwrap_or(0.0)
        ));
    }
    s.push_str("```\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_fall_into_groups() {
        assert_eq!(group_of("[k] _copy_to_iter"), GROUPS[0].0);
        assert!(group_of("[.] faro::stream::Task::render").starts_with("output"));
        assert!(group_of("[.] faro::emit::push_str").starts_with("output"));
        assert!(group_of("[.] faro::stream::state::Uid::parse").starts_with("per-object"));
        assert!(group_of("[.] core::str::converts::from_utf8").starts_with("input"));
        assert!(group_of("[.] faro::stream::parse::scan::Cursor::string").starts_with("input"));
        assert!(group_of("[.] tokio::runtime::park").starts_with("other"));
    }
}
