//! Kubeconfig files pointing at a kube-sim server: cluster, context and user all named
//! `kube-sim`, the context current, the user authenticating with a bearer token, and under TLS
//! the cluster trusting the server's CA (or skipping verification).

use std::path::Path;

use anyhow::Context;
use base64::Engine;

/// The token written into kubeconfigs (enable checking with `POST /_sim/auth?token=kube-sim`).
pub const DEFAULT_TOKEN: &str = "kube-sim";

/// How the cluster entry lets a client trust an `https` server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust<'a> {
    /// Nothing written: plain `http`, or the system's roots.
    System,
    /// `certificate-authority-data`: this CA certificate (PEM), base64-encoded.
    Ca(&'a str),
    /// `insecure-skip-tls-verify: true`.
    Insecure,
}

/// Renders a kubeconfig for `url` (a plain `http` server, or one with a publicly trusted
/// certificate).
pub fn render(url: &str, token: &str) -> String {
    render_with(url, token, Trust::System)
}

/// Renders a kubeconfig for `url` whose cluster trusts the server as `trust` says.
pub fn render_with(url: &str, token: &str, trust: Trust<'_>) -> String {
    let trust = match trust {
        Trust::System => String::new(),
        Trust::Ca(pem) => format!(
            "    certificate-authority-data: {}\n",
            base64::engine::general_purpose::STANDARD.encode(pem)
        ),
        Trust::Insecure => "    insecure-skip-tls-verify: true\n".to_string(),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kube-sim
  cluster:
    server: {url}
{trust}contexts:
- name: kube-sim
  context:
    cluster: kube-sim
    user: kube-sim
    namespace: default
current-context: kube-sim
users:
- name: kube-sim
  user:
    token: {token}
preferences: {{}}
"
    )
}

/// Writes a kubeconfig for `url` to `path`.
pub fn write(path: &Path, url: &str, token: &str) -> anyhow::Result<()> {
    write_with(path, url, token, Trust::System)
}

/// Writes a kubeconfig for `url` to `path`, trusting the server as `trust` says.
pub fn write_with(path: &Path, url: &str, token: &str, trust: Trust<'_>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, render_with(url, token, trust))
        .with_context(|| format!("writing kubeconfig {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_names_the_server_and_token() {
        let k = render("http://127.0.0.1:1234", "t0k");
        assert!(k.contains("server: http://127.0.0.1:1234"));
        assert!(k.contains("token: t0k"));
        assert!(k.contains("current-context: kube-sim"));
        assert!(!k.contains("certificate-authority"));
    }

    #[test]
    fn kubeconfig_carries_the_ca_or_skips_verification() {
        let k = render_with("https://127.0.0.1:1", "t", Trust::Ca("PEM"));
        assert!(k.contains(
            "    server: https://127.0.0.1:1\n    certificate-authority-data: UEVN\ncontexts:"
        ));
        let k = render_with("https://127.0.0.1:1", "t", Trust::Insecure);
        assert!(k.contains("    insecure-skip-tls-verify: true\ncontexts:"));
    }
}
