//! `faro watch [RESOURCE...] [--config FILE]`: watch resources named as kubectl names them,
//! what a config file names, or both (a union).
//!
//! RESOURCE arguments are resolved through discovery exactly once, at start-up, as
//! `kubectl get` resolves them (`faro::discovery::Discovery::resolve`); a name the server does
//! not serve is exit 2, as with kubectl. Resources that may appear later (a CRD not created
//! yet) belong in a config file, whose GVRs are watched from the moment they are served.
//!
//! Namespaces follow kubectl: `-n` (repeated or a comma list), `-A` for all, else the namespace
//! of the kubeconfig context; cluster-scoped resources ignore them. The selection flags apply to
//! the RESOURCE arguments only; a config file's entries keep their own filters.

use faro::client::{Cluster, ClusterOptions};
use faro::config::{Entry, WatchConfig};
use faro::discovery::{self, Discovery, ResolveError};
use faro::{Gvr, Watcher};

use crate::cli::{SelectArgs, WatchArgs};
use crate::cmd::session::{self, Settings};
use crate::exit::{Status, UsageError};
use crate::logging::{self, LogLevelChoice};

/// How long start-up retries discovery when RESOURCE arguments need it (as the watcher's).
const DISCOVERY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);

/// Checks the flags and the config, then runs the session.
pub fn run(
    args: WatchArgs,
    cluster: &ClusterOptions,
    level: LogLevelChoice,
) -> anyhow::Result<Status> {
    let wanted = wanted(&args.resources)?;
    let file = args.config.as_deref().map(faro::config::load).transpose()?;
    if wanted.is_empty() {
        let given = args.select.given();
        if !given.is_empty() {
            return crate::exit::usage(format!(
                "{} select among RESOURCE arguments (`faro watch pods -n prod -l app=web`), which there are none of; a config file's entries have their own filters",
                given.join(", "),
            ));
        }
    }
    let (config, run_settings) = match file {
        Some(file) => (file.watch, file.settings),
        None if wanted.is_empty() => {
            return crate::exit::usage(
                "name what to watch: resources as kubectl names them (`faro watch pods,deploy -n prod`), or --config FILE",
            );
        }
        None => (WatchConfig::new(), Default::default()),
    };
    if config.is_empty()
        && wanted.is_empty()
        && let Some(path) = &args.config
    {
        return crate::exit::usage(format!(
            "{}: the config names nothing to watch (add namespaces: or resources: entries)",
            path.display()
        ));
    }
    let select = Selection::check(&args.select)?;
    let settings = Settings::resolve(&args.output, &run_settings)?;
    logging::init(
        level.resolve(run_settings.log_level),
        settings.log_file.clone(),
    )?;
    session::run(cluster, settings, move |cluster| async move {
        if wanted.is_empty() {
            return Ok(Watcher::new(cluster.client, config));
        }
        let found = discovery::discover_patiently(&cluster.client, DISCOVERY_PATIENCE).await?;
        let (config, probes) = add_entries(config, &wanted, &select, &found, &cluster)?;
        if let Some(fields) = &select.field_selector {
            check_field_selector(&cluster.client, &probes, fields).await?;
        }
        Ok(Watcher::new(cluster.client, config).discovery(found))
    })
}

/// One resource of the RESOURCE arguments, as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted {
    /// A name kubectl would take (`po`, `deploy.apps`), and optionally one object of it.
    Name {
        name: String,
        object: Option<String>,
    },
    /// A faro GVR string (`apps/v1/deployments`).
    Gvr(Gvr),
}

/// Splits the RESOURCE arguments: comma lists, `TYPE/NAME`, GVR strings.
fn wanted(args: &[String]) -> anyhow::Result<Vec<Wanted>> {
    let mut out = Vec::new();
    for arg in args {
        for item in arg.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return crate::exit::usage(format!(
                    "{arg:?}: an empty resource name (write pods,deploy without spaces or empty items)"
                ));
            }
            let wanted = match item.matches('/').count() {
                0 => Wanted::Name {
                    name: item.to_owned(),
                    object: None,
                },
                // `v1/pods` is a GVR; `pod/web` (no version first) is TYPE/NAME, as kubectl.
                1 => match item.parse::<Gvr>() {
                    Ok(gvr) => Wanted::Gvr(gvr),
                    Err(_) => {
                        let (name, object) = item.split_once('/').unwrap_or((item, ""));
                        if name.is_empty() || object.is_empty() {
                            return crate::exit::usage(format!(
                                "{item:?}: expected TYPE/NAME (deploy/web) or a GVR (v1/pods)"
                            ));
                        }
                        Wanted::Name {
                            name: name.to_owned(),
                            object: Some(object.to_owned()),
                        }
                    }
                },
                _ => Wanted::Gvr(item.parse::<Gvr>().map_err(|e| UsageError(e.to_string()))?),
            };
            if !out.contains(&wanted) {
                out.push(wanted);
            }
        }
    }
    Ok(out)
}

/// The selection flags, checked before anything connects.
#[derive(Debug, Clone)]
struct Selection {
    /// Exact namespaces; empty means every namespace (`-A`), `None` the context's.
    namespaces: Option<Vec<String>>,
    selector: Option<String>,
    field_selector: Option<String>,
    name_pattern: Option<String>,
    label_patterns: Vec<String>,
}

impl Selection {
    fn check(args: &SelectArgs) -> anyhow::Result<Selection> {
        // The library's message names the filter ("field selector: …"); the flag names it here.
        let flag = |flag: &str, e: faro::config::Error| {
            let text = e.to_string();
            let text = ["label selector: ", "field selector: "]
                .iter()
                .find_map(|p| text.strip_prefix(p))
                .unwrap_or(&text)
                .to_owned();
            UsageError(format!("{flag}: {text}"))
        };
        // Build one entry with every filter, so that each is checked by the library's rules.
        let mut probe = Entry::new(Gvr::new("", "v1", "configmaps"));
        for ns in &args.namespace {
            probe = probe.namespace(ns).map_err(|e| flag("--namespace", e))?;
        }
        let probe = match &args.selector {
            Some(s) => probe.label_selector(s).map_err(|e| flag("--selector", e))?,
            None => probe,
        };
        let probe = match &args.field_selector {
            Some(s) => probe
                .field_selector(s)
                .map_err(|e| flag("--field-selector", e))?,
            None => probe,
        };
        let mut probe = match &args.name_pattern {
            Some(p) => probe
                .name_pattern(p)
                .map_err(|e| flag("--name-pattern", e))?,
            None => probe,
        };
        for p in &args.label_pattern {
            probe = probe
                .label_pattern(p)
                .map_err(|e| flag("--label-pattern", e))?;
        }
        Ok(Selection {
            namespaces: if args.all_namespaces {
                Some(Vec::new())
            } else if args.namespace.is_empty() {
                None
            } else {
                Some(args.namespace.clone())
            },
            selector: args.selector.clone(),
            field_selector: args.field_selector.clone(),
            name_pattern: args.name_pattern.clone(),
            label_patterns: args.label_pattern.clone(),
        })
    }

    /// The entry watching `gvr` (of this scope) with these filters, for one object or all.
    fn entry(
        &self,
        gvr: Gvr,
        namespaced: bool,
        object: Option<&str>,
        context_namespace: &str,
    ) -> anyhow::Result<Entry> {
        let mut entry = Entry::new(gvr);
        if namespaced {
            let context = [context_namespace.to_owned()];
            for ns in self.namespaces.as_deref().unwrap_or(&context) {
                entry = entry.namespace(ns)?;
            }
        }
        if let Some(object) = object {
            entry = entry
                .name(object)
                .map_err(|e| UsageError(format!("{object:?}: {e}")))?;
        }
        if let Some(s) = &self.selector {
            entry = entry.label_selector(s)?;
        }
        if let Some(s) = &self.field_selector {
            entry = entry.field_selector(s)?;
        }
        if let Some(p) = &self.name_pattern {
            entry = entry.name_pattern(p)?;
        }
        for p in &self.label_patterns {
            entry = entry.label_pattern(p)?;
        }
        Ok(entry)
    }

    /// Where the RESOURCE arguments are watched, for the log.
    fn describe(&self, context_namespace: &str) -> String {
        match &self.namespaces {
            Some(list) if list.is_empty() => "in all namespaces".to_owned(),
            Some(list) => format!("in namespace {}", list.join(", ")),
            None => format!("in namespace {context_namespace} (the context's)"),
        }
    }
}

/// A resource and a namespace it is watched in (`None`: cluster-wide).
type Probe = (Gvr, Option<String>);

/// Resolves the RESOURCE arguments against `found` and adds their entries to `config`; also
/// returns each resource with a namespace it is watched in (`None`: cluster-wide).
fn add_entries(
    mut config: WatchConfig,
    wanted: &[Wanted],
    select: &Selection,
    found: &Discovery,
    cluster: &Cluster,
) -> anyhow::Result<(WatchConfig, Vec<Probe>)> {
    let mut seen: Vec<(Gvr, Option<String>)> = Vec::new();
    let mut probes: Vec<Probe> = Vec::new();
    for wanted in wanted {
        let (resource, object) = match wanted {
            Wanted::Name { name, object } => {
                let resolved = found.resolve(name)?;
                for other in &resolved.shadowed {
                    tracing::warn!(
                        "{name:?} could also mean {other}; watching {} (name the other as {other})",
                        resolved.resource.gvr
                    );
                }
                (resolved.resource, object.as_deref())
            }
            Wanted::Gvr(gvr) => (served(found, gvr)?, None),
        };
        let key = (resource.gvr.clone(), object.map(str::to_owned));
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        tracing::info!(
            "watching {}{}{}",
            resource.gvr,
            object.map_or_else(String::new, |o| format!(" {o}")),
            if resource.namespaced {
                format!(" {}", select.describe(&cluster.namespace))
            } else {
                String::new()
            }
        );
        config = config.entry(select.entry(
            resource.gvr.clone(),
            resource.namespaced,
            object,
            &cluster.namespace,
        )?);
        let namespace = match &select.namespaces {
            _ if !resource.namespaced => None,
            Some(list) => list.first().cloned(),
            None => Some(cluster.namespace.clone()),
        };
        if !probes.iter().any(|(gvr, _)| *gvr == resource.gvr) {
            probes.push((resource.gvr.clone(), namespace));
        }
    }
    Ok((config, probes))
}

/// Lists one object of each resource with the field selector, so that a field the server does
/// not support is exit 2 with the server's word for it, as `kubectl get --field-selector` fails,
/// rather than a watch that never starts. Other failures (403, a slow server) are left to the
/// watches, which report and retry them.
async fn check_field_selector(
    client: &kube::Client,
    probes: &[Probe],
    fields: &str,
) -> anyhow::Result<()> {
    for (gvr, namespace) in probes {
        match faro::client::try_list(client, gvr, namespace.as_deref(), None, Some(fields)).await {
            Err(faro::client::RequestError::Api(status)) if status.code == 400 => {
                return crate::exit::usage(format!(
                    "--field-selector {fields:?}: the server refuses it for {gvr}: {}",
                    status.message
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The served, watchable resource of a GVR argument.
fn served<'a>(found: &'a Discovery, gvr: &Gvr) -> anyhow::Result<&'a discovery::Resource> {
    match found.find(gvr) {
        Some(r) if r.watchable() => Ok(r),
        Some(r) => Err(ResolveError::NotWatchable {
            name: gvr.to_string(),
            gvr: gvr.clone(),
            verbs: r.verbs.clone(),
        }
        .into()),
        None => {
            // Suggest what the resource name means on this cluster (v1/deployments → apps).
            let suggestions = match found.resolve(&gvr.resource) {
                Ok(r) => vec![r.resource.gvr.to_string()],
                Err(ResolveError::Unknown { suggestions, .. }) => suggestions,
                Err(_) => Vec::new(),
            };
            let hint = if found.group_version_failed(gvr) {
                format!(
                    " ({} could not be discovered; a config file watches it once it is served)",
                    gvr.api_version()
                )
            } else {
                String::new()
            };
            Err(UsageError(format!(
                "{}{hint}",
                ResolveError::Unknown {
                    name: gvr.to_string(),
                    suggestions,
                }
            ))
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(args: &[&str]) -> anyhow::Result<Vec<Wanted>> {
        wanted(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn name(n: &str, object: Option<&str>) -> Wanted {
        Wanted::Name {
            name: n.into(),
            object: object.map(Into::into),
        }
    }

    #[test]
    fn resource_arguments_split_into_names_objects_and_gvrs() {
        assert_eq!(
            w(&["pods,deploy", "cm", "pods"]).unwrap(),
            [name("pods", None), name("deploy", None), name("cm", None)]
        );
        assert_eq!(
            w(&["deploy/web", "v1/pods", "apps/v1/deployments"]).unwrap(),
            [
                name("deploy", Some("web")),
                Wanted::Gvr("v1/pods".parse().unwrap()),
                Wanted::Gvr("apps/v1/deployments".parse().unwrap()),
            ]
        );
        for bad in [
            "pods,",
            ",pods",
            "pods/",
            "/web",
            "a/b/c/d",
            "apps/v1/Deployments",
        ] {
            let err = w(&[bad]).unwrap_err();
            assert!(err.is::<UsageError>(), "{bad}: {err}");
        }
    }
}
