//! Kubeconfig files pointing at a kube-sim server: cluster, context and user all named
//! `kube-sim`, the context current, the user authenticating with a bearer token.

use std::path::Path;

use anyhow::Context;

/// The token written into kubeconfigs (enable checking with `POST /_sim/auth?token=kube-sim`).
pub const DEFAULT_TOKEN: &str = "kube-sim";

/// Renders a kubeconfig for `url`.
pub fn render(url: &str, token: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kube-sim
  cluster:
    server: {url}
contexts:
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
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, render(url, token))
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
    }
}
