//! Dynamic completion of RESOURCE arguments from the live cluster's discovery.
//!
//! The shell asks faro itself (clap_complete's `CompleteEnv`: `source <(COMPLETE=bash faro)`);
//! for a RESOURCE argument, faro connects with the `--kubeconfig` and `--context` of the command
//! line being completed, discovers the API (two requests with aggregated discovery) and offers
//! the plural, short names and `resource.group` names of every watchable resource. No cluster,
//! or one slower than [`PATIENCE`], means no candidates, never an error on the terminal.

use std::ffi::{OsStr, OsString};
use std::time::Duration;

use clap_complete::engine::CompletionCandidate;
use faro::client::ClusterOptions;

/// How long a completion may wait for the cluster.
const PATIENCE: Duration = Duration::from_secs(3);

/// Candidates for the RESOURCE argument being typed (`current`), which may be a comma list.
pub fn resources(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(current) = current.to_str() else {
        return Vec::new();
    };
    // Complete the last item of a comma list; `TYPE/NAME` object names are not completed.
    let (done, partial) = match current.rsplit_once(',') {
        Some((done, partial)) => (format!("{done},"), partial),
        None => (String::new(), current),
    };
    if partial.contains('/') {
        return Vec::new();
    }
    let partial = partial.to_ascii_lowercase();
    let Some(names) = served_names(&cluster_options(std::env::args_os())) else {
        return Vec::new();
    };
    names
        .into_iter()
        .filter(|(name, _)| name.starts_with(&partial))
        .map(|(name, help)| {
            CompletionCandidate::new(format!("{done}{name}")).help(Some(help.into()))
        })
        .collect()
}

/// `--kubeconfig`, `--context` and `--http1` of the command line being completed (after `--`).
fn cluster_options(args: impl Iterator<Item = OsString>) -> ClusterOptions {
    let words: Vec<String> = args
        .skip_while(|a| a != "--")
        .skip(1)
        .filter_map(|a| a.into_string().ok())
        .collect();
    let mut options = ClusterOptions::default();
    let mut i = 0;
    while i < words.len() {
        let word = words[i].trim_start_matches('-');
        let (flag, inline) = match word.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (word, None),
        };
        if words[i] == "--http1" {
            options.http1 = true;
        } else if words[i].starts_with('-') && matches!(flag, "kubeconfig" | "context") {
            let value = inline.or_else(|| {
                i += 1;
                words.get(i).cloned()
            });
            match (flag, value) {
                ("kubeconfig", Some(v)) => options.kubeconfig = Some(v.into()),
                ("context", Some(v)) => options.context = Some(v),
                _ => {}
            }
        }
        i += 1;
    }
    options
}

/// (name, description) of every watchable resource in its preferred version, as kubectl users
/// type them, sorted and without duplicates; `None` when the cluster cannot be read in time.
fn served_names(options: &ClusterOptions) -> Option<Vec<(String, String)>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let found = runtime.block_on(async {
        let cluster = faro::client::connect(options).await.ok()?;
        tokio::time::timeout(PATIENCE, faro::discovery::discover(&cluster.client))
            .await
            .ok()?
            .ok()
    })?;
    let mut names: Vec<(String, String)> = Vec::new();
    for r in found
        .resources
        .iter()
        .filter(|r| r.preferred && r.watchable())
    {
        let group = &r.gvr.group;
        let what = if group.is_empty() {
            r.kind.clone()
        } else {
            format!("{} ({group})", r.kind)
        };
        names.push((r.gvr.resource.clone(), what.clone()));
        if !group.is_empty() {
            names.push((format!("{}.{group}", r.gvr.resource), what.clone()));
        }
        for short in &r.short_names {
            names.push((
                short.clone(),
                format!("{what}, short for {}", r.gvr.resource),
            ));
        }
    }
    names.sort();
    names.dedup_by(|a, b| a.0 == b.0);
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_flags_are_read_from_the_completed_line() {
        let args = [
            "faro",
            "--",
            "faro",
            "--kubeconfig",
            "/k",
            "watch",
            "-context=c",
            "po",
        ]
        .map(OsString::from);
        let options = cluster_options(args.into_iter());
        assert_eq!(
            options.kubeconfig.as_deref(),
            Some(std::path::Path::new("/k"))
        );
        assert_eq!(options.context.as_deref(), Some("c"));
        let none = cluster_options(
            ["faro", "--", "faro", "watch"]
                .map(OsString::from)
                .into_iter(),
        );
        assert!(none.kubeconfig.is_none() && none.context.is_none());
    }
}
