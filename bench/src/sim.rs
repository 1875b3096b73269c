//! One kube-sim server for a case: started on a free port with its own kubeconfig, reached
//! through a keep-alive HTTP client for the admin API and for plain writes, killed when
//! dropped. kube-sim runs as a separate process so that its CPU and memory are never read as
//! faro's.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::http::Http;
use crate::process::{Out, Proc};

pub struct Sim {
    pub url: String,
    pub kubeconfig: PathBuf,
    pub proc: Proc,
    http: Http,
}

impl Sim {
    /// Starts `bin_dir/kube-sim --catalog CATALOG`, writing its kubeconfig into `dir`.
    pub fn start(bin_dir: &Path, dir: &Path, catalog: &str) -> Result<Self> {
        Self::start_with(bin_dir, dir, catalog, &[])
    }

    /// [`Sim::start`] with more kube-sim flags (`--tls`: the admin client trusts the CA of the
    /// kubeconfig kube-sim writes).
    pub fn start_with(bin_dir: &Path, dir: &Path, catalog: &str, extra: &[&str]) -> Result<Self> {
        let kubeconfig = dir.join("kubeconfig");
        let mut cmd = Command::new(bin_dir.join("kube-sim"));
        cmd.args(["--port", "0", "--catalog", catalog])
            .args(extra)
            .arg("--kubeconfig")
            .arg(&kubeconfig);
        let mut proc = Proc::start("kube-sim", cmd, Out::Pipe, dir)?;
        let mut first = String::new();
        BufReader::new(proc.take_stdout()?)
            .read_line(&mut first)
            .context("reading kube-sim's URL line")?;
        let url = first.trim().to_string();
        let http = if url.starts_with("http://") {
            Http::new(&url)?
        } else if url.starts_with("https://") {
            Http::with_ca(&url, Some(&ca_of(&kubeconfig)?))?
        } else {
            proc.alive()?;
            bail!("kube-sim printed {first:?} instead of its URL");
        };
        Ok(Self {
            url,
            kubeconfig,
            proc,
            http,
        })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// `POST /_sim/...` (or any 2xx JSON request).
    pub fn post(&mut self, path: &str) -> Result<Value> {
        self.http.json("POST", path, None, b"")
    }

    pub fn get(&mut self, path: &str) -> Result<Value> {
        self.http.json("GET", path, None, b"")
    }

    /// A request with a JSON body; the reply must be 2xx JSON.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &Value,
    ) -> Result<Value> {
        self.http.json(
            method,
            path,
            Some(content_type),
            body.to_string().as_bytes(),
        )
    }

    /// Creates namespace `name` with `labels` (`{"k": "v"}`).
    pub fn create_namespace(&mut self, name: &str, labels: &Value) -> Result<Value> {
        let body = serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels},
        });
        self.send("POST", "/api/v1/namespaces", "application/json", &body)
    }

    /// Merge-patches `labels` onto namespace `name`; returns the namespace's new resourceVersion.
    pub fn label_namespace(&mut self, name: &str, labels: &Value) -> Result<u64> {
        let body = serde_json::json!({"metadata": {"labels": labels}});
        let ns = self.send(
            "PATCH",
            &format!("/api/v1/namespaces/{name}"),
            "application/merge-patch+json",
            &body,
        )?;
        rv_of(&ns)
    }

    /// Waits until an open watch on `resource` satisfies `pred` (a `/_sim/watches` entry).
    pub fn wait_watch(
        &mut self,
        timeout: Duration,
        mut alive: impl FnMut() -> Result<()>,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let w = self.get("/_sim/watches")?;
            if w["watches"]
                .as_array()
                .is_some_and(|ws| ws.iter().any(&pred))
            {
                return Ok(());
            }
            alive()?;
            if Instant::now() > deadline {
                bail!("no matching watch opened within {timeout:?}; open watches: {w}");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The PEM CA in a kubeconfig kube-sim wrote (`certificate-authority-data`).
pub fn ca_of(kubeconfig: &Path) -> Result<Vec<u8>> {
    use base64::Engine;
    let text = std::fs::read_to_string(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let data = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data:"))
        .with_context(|| format!("no certificate-authority-data in {}", kubeconfig.display()))?;
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .context("certificate-authority-data is not base64")
}

/// `metadata.resourceVersion` of an object as a number.
pub fn rv_of(obj: &Value) -> Result<u64> {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no resourceVersion in {}", short(obj)))
}

/// A JSON value cut for an error message.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}
