//! `faro discover`: list the cluster's API resources and whether faro can watch them.

use std::fmt::Write as _;

use anyhow::Context;
use serde::Serialize;

use faro::client::{self, ClusterOptions};
use faro::discovery::{self, Resource};

use crate::cli::{DiscoverArgs, DiscoverOutput};
use crate::exit::Status;
use crate::sink;

/// Runs discovery and prints the resources the flags keep.
pub async fn run(args: DiscoverArgs, cluster: &ClusterOptions) -> anyhow::Result<Status> {
    let cluster = client::connect(cluster).await?;
    let found = discovery::discover(&cluster.client)
        .await
        .with_context(|| format!("discovering the API of {}", cluster.url))?;
    tracing::debug!(mode = ?found.mode, resources = found.resources.len(), "discovered");
    for warning in &found.warnings {
        tracing::warn!("unable to discover {warning}");
    }
    let group = args
        .api_group
        .as_deref()
        .map(|g| if g == "core" { "" } else { g });
    let kept: Vec<&Resource> = found
        .resources
        .iter()
        .filter(|r| !args.watchable || r.watchable())
        .filter(|r| group.is_none_or(|g| r.gvr.group == g))
        .filter(|r| args.namespaced.is_none_or(|n| r.namespaced == n))
        .collect();
    let output = args.output.unwrap_or(if sink::stdout_is_terminal() {
        DiscoverOutput::Table
    } else {
        DiscoverOutput::Json
    });
    let text = match output {
        DiscoverOutput::Table => table(&kept),
        DiscoverOutput::Json => json_lines(&kept)?,
        DiscoverOutput::Name => kept.iter().fold(String::new(), |mut out, r| {
            let _ = writeln!(out, "{}", r.gvr);
            out
        }),
    };
    sink::print_document(&text)?;
    Ok(Status::Success)
}

/// One line of `-o json`; the key names are part of the contract (design.md §5).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceLine<'a> {
    gvr: String,
    group: &'a str,
    version: &'a str,
    resource: &'a str,
    kind: &'a str,
    namespaced: bool,
    verbs: &'a [String],
    short_names: &'a [String],
    watchable: bool,
    preferred: bool,
}

fn json_lines(resources: &[&Resource]) -> anyhow::Result<String> {
    let mut out = String::new();
    for r in resources {
        let line = ResourceLine {
            gvr: r.gvr.to_string(),
            group: &r.gvr.group,
            version: &r.gvr.version,
            resource: &r.gvr.resource,
            kind: &r.kind,
            namespaced: r.namespaced,
            verbs: &r.verbs,
            short_names: &r.short_names,
            watchable: r.watchable(),
            preferred: r.preferred,
        };
        out.push_str(&serde_json::to_string(&line)?);
        out.push('\n');
    }
    Ok(out)
}

fn table(resources: &[&Resource]) -> String {
    let header = [
        "NAME",
        "SHORTNAMES",
        "APIVERSION",
        "NAMESPACED",
        "KIND",
        "WATCHABLE",
    ];
    let rows: Vec<[String; 6]> = resources
        .iter()
        .map(|r| {
            [
                r.gvr.resource.clone(),
                r.short_names.join(","),
                r.gvr.api_version(),
                r.namespaced.to_string(),
                r.kind.clone(),
                r.watchable().to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: &[&str]| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{:<width$}   ", cell, width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push_row(&header);
    for row in &rows {
        push_row(&row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use faro::Gvr;

    fn resource(gvr: &str, kind: &str, short: &[&str]) -> Resource {
        Resource {
            gvr: gvr.parse::<Gvr>().unwrap(),
            kind: kind.into(),
            namespaced: true,
            verbs: vec!["list".into(), "watch".into()],
            short_names: short.iter().map(|s| s.to_string()).collect(),
            singular: kind.to_lowercase(),
            preferred: true,
            subresources: vec![],
        }
    }

    #[test]
    fn table_columns_are_aligned_like_kubectl() {
        let a = resource("v1/configmaps", "ConfigMap", &["cm"]);
        let b = resource("apps/v1/deployments", "Deployment", &["deploy"]);
        let text = table(&[&a, &b]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("NAME          SHORTNAMES   APIVERSION"),
            "{text}"
        );
        let kind_col = lines[0].find("KIND").unwrap();
        assert_eq!(&lines[2][kind_col..kind_col + 10], "Deployment");
    }

    #[test]
    fn json_lines_carry_the_contract_keys() {
        let a = resource("apps/v1/deployments", "Deployment", &["deploy"]);
        let text = json_lines(&[&a]).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        for key in [
            "gvr",
            "group",
            "version",
            "resource",
            "kind",
            "namespaced",
            "verbs",
            "shortNames",
            "watchable",
            "preferred",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["gvr"], "apps/v1/deployments");
    }
}
