//! The `faro watch` configuration file: YAML (serde-saphyr) read into resolved, validated
//! entries. Every error names `file:line:column` and what would be valid (exit code 2).
//!
//! Two forms, freely mixed (design.md §3): namespace-centric (`namespaces:` with per-GVR
//! filters) and resource-centric (`resources:`). Both become the same [`Entry`] list: within one
//! entry all filters must hold, entries are a union.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ValueEnum;
use regex::Regex;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::cli::LogLevel;
use crate::discovery::Discovery;
use crate::exit::UsageError;
use crate::gvr::Gvr;
use crate::selector::{self, LabelPattern, NamePattern};

/// Default number of matching namespaces past which a namespace-pattern entry is served by one
/// cluster-wide watch with client-side namespace filtering instead of one watch per namespace.
pub const DEFAULT_CLUSTER_WIDE_THRESHOLD: usize = 50;

/// A resolved configuration file.
#[derive(Debug, Clone)]
pub struct FileConfig {
    /// What to watch.
    pub entries: Vec<Entry>,
    /// `output_dir`: where the text log (and, with `json_export`, event files) go.
    pub output_dir: Option<PathBuf>,
    /// `json_export`: also write events to `output_dir/logs/events-*.json`.
    pub json_export: bool,
    /// `log_level`.
    pub log_level: Option<LogLevel>,
    /// `auto_shutdown` / `auto_shutdown_sec`.
    pub auto_shutdown: Option<Duration>,
    /// `cluster_wide_threshold`.
    pub cluster_wide_threshold: usize,
}

/// Scope of a resource, as declared with `scope:` or found by discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Cluster-scoped.
    Cluster,
    /// Namespaced.
    Namespaced,
}

/// Which namespaces an entry covers.
#[derive(Debug, Clone)]
pub enum NamespaceFilter {
    /// Every namespace (or a cluster-scoped resource).
    All,
    /// Exact names (watched namespace-scoped) and anchored regexes (resolved live).
    Only {
        /// Exact namespace names.
        exact: BTreeSet<String>,
        /// Anchored regexes on namespace names.
        patterns: Vec<Regex>,
    },
}

impl NamespaceFilter {
    /// The namespaces named exactly or matched by a pattern.
    fn only(names: Vec<NamePattern>) -> NamespaceFilter {
        let mut exact = BTreeSet::new();
        let mut patterns = Vec::new();
        for name in names {
            match name {
                NamePattern::Exact(name) => {
                    exact.insert(name);
                }
                NamePattern::Regex(re) => patterns.push(re),
            }
        }
        NamespaceFilter::Only { exact, patterns }
    }

    /// Whether `namespace` is covered.
    pub fn matches(&self, namespace: &str) -> bool {
        match self {
            NamespaceFilter::All => true,
            NamespaceFilter::Only { exact, patterns } => {
                exact.contains(namespace) || patterns.iter().any(|p| p.is_match(namespace))
            }
        }
    }

    /// Whether resolving this filter needs the live namespace list.
    pub fn has_patterns(&self) -> bool {
        matches!(self, NamespaceFilter::Only { patterns, .. } if !patterns.is_empty())
    }
}

/// One thing to watch: a GVR and the filters that must all hold.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The resource.
    pub gvr: Gvr,
    /// Declared scope (`scope:`), checked against discovery.
    pub scope: Option<Scope>,
    /// Namespace filter.
    pub namespaces: NamespaceFilter,
    /// Name filters (`name_selector`, `name_pattern`); all must match.
    pub names: Vec<NamePattern>,
    /// Server-side label selector.
    pub label_selector: Option<String>,
    /// Client-side label patterns; all must match.
    pub label_patterns: Vec<LabelPattern>,
    /// `file:line:column` of the entry's GVR, for errors found later (after discovery).
    pub location: String,
    /// `file:line:column` of its namespace filter, if any.
    pub namespace_location: Option<String>,
}

impl Entry {
    /// The exact object name, if the name filters pin one (pushed down as a field selector).
    pub fn exact_name(&self) -> Option<&str> {
        self.names.iter().find_map(NamePattern::exact)
    }
}

// ---- the YAML shape ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    output_dir: Option<Spanned<String>>,
    json_export: Option<bool>,
    log_level: Option<Spanned<String>>,
    auto_shutdown: Option<Spanned<String>>,
    auto_shutdown_sec: Option<Spanned<u64>>,
    cluster_wide_threshold: Option<Spanned<u64>>,
    #[serde(default)]
    namespaces: Vec<RawNamespaceEntry>,
    #[serde(default)]
    resources: Vec<RawResourceEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamespaceEntry {
    name_pattern: Option<Spanned<String>>,
    name_selector: Option<Spanned<String>>,
    resources: Spanned<PairList<Option<RawFilter>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    name_pattern: Option<Spanned<String>>,
    name_selector: Option<Spanned<String>>,
    label_selector: Option<Spanned<String>>,
    label_pattern: Option<Spanned<OneOrMany>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResourceEntry {
    gvr: Spanned<String>,
    scope: Option<Spanned<String>>,
    namespace_names: Option<Spanned<Vec<Spanned<String>>>>,
    namespace_patterns: Option<Spanned<Vec<Spanned<String>>>>,
    name_pattern: Option<Spanned<String>>,
    name_selector: Option<Spanned<String>>,
    label_selector: Option<Spanned<String>>,
    label_pattern: Option<Spanned<OneOrMany>>,
}

/// A string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A YAML mapping read as ordered (key, value) pairs, so that keys keep their locations
/// (`Spanned` is not `Ord`, so it cannot key a map). Duplicate keys are rejected by the parser.
struct PairList<V>(Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for PairList<V> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<V> {
            type Value = PairList<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping of GVR to filters")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(PairList(pairs))
            }
        }
        deserializer.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

// ---- loading ----

/// Reads and resolves a configuration file.
pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("cannot read config file {}: {e}", path.display())))?;
    parse(&text, &path.display().to_string()).map_err(|e| UsageError(e).into())
}

/// Parses configuration text; `file` names it in error messages.
pub fn parse(text: &str, file: &str) -> Result<FileConfig, String> {
    let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| yaml_error(file, &e))?;
    Resolver { file }.resolve(raw)
}

fn yaml_error(file: &str, err: &serde_saphyr::Error) -> String {
    let message = err.without_snippet().to_string();
    // The message starts with "error: line L column C: "; we print "file:L:C: " instead.
    let message = message.trim_start_matches("error: ");
    let message = match message.split_once(": ") {
        Some((prefix, rest)) if prefix.starts_with("line ") => rest,
        _ => message,
    };
    let mut message = message.lines().next().unwrap_or(message);
    // serde-saphyr repeats the position at the end, and advertises its own options.
    if let Some(i) = message.rfind(" at line ") {
        message = &message[..i];
    }
    let message = message.replace(", set DuplicateKeyPolicy in Options if acceptable", "");
    match err.location() {
        Some(loc) => format!("{file}:{}:{}: {message}", loc.line(), loc.column()),
        None => format!("{file}: {message}"),
    }
}

struct Resolver<'a> {
    file: &'a str,
}

impl Resolver<'_> {
    fn at<T>(&self, spanned: &Spanned<T>) -> String {
        format!(
            "{}:{}:{}",
            self.file,
            spanned.referenced.line(),
            spanned.referenced.column()
        )
    }

    fn fail<T, U>(
        &self,
        spanned: &Spanned<T>,
        message: impl std::fmt::Display,
    ) -> Result<U, String> {
        Err(format!("{}: {message}", self.at(spanned)))
    }

    fn resolve(&self, raw: RawConfig) -> Result<FileConfig, String> {
        let log_level = match &raw.log_level {
            None => None,
            // The same names as --log-level.
            Some(level) => Some(match LogLevel::from_str(&level.value, true) {
                Ok(parsed) => parsed,
                Err(_) => {
                    return self.fail(
                        level,
                        format_args!(
                            "log_level: unknown level {:?} (expected debug, info, warning or error)",
                            level.value.to_ascii_lowercase()
                        ),
                    );
                }
            }),
        };
        let auto_shutdown = match (&raw.auto_shutdown, &raw.auto_shutdown_sec) {
            (Some(_), Some(sec)) => {
                return self.fail(sec, "give only one of auto_shutdown and auto_shutdown_sec");
            }
            (Some(text), None) => Some(
                crate::cli::parse_duration(&text.value)
                    .map_err(|e| format!("{}: auto_shutdown: {e}", self.at(text)))?,
            ),
            (None, Some(sec)) => Some(Duration::from_secs(sec.value)),
            (None, None) => None,
        };
        let cluster_wide_threshold = match &raw.cluster_wide_threshold {
            Some(n) if n.value == 0 => {
                return self.fail(n, "cluster_wide_threshold must be at least 1");
            }
            Some(n) => usize::try_from(n.value).unwrap_or(usize::MAX),
            None => DEFAULT_CLUSTER_WIDE_THRESHOLD,
        };
        let output_dir = match &raw.output_dir {
            Some(dir) if dir.value.trim().is_empty() => {
                return self.fail(dir, "output_dir is empty");
            }
            Some(dir) => Some(PathBuf::from(&dir.value)),
            None => None,
        };
        let json_export = raw.json_export.unwrap_or(false);

        let mut entries = Vec::new();
        for ns_entry in raw.namespaces {
            entries.extend(self.namespace_entry(ns_entry)?);
        }
        for res_entry in raw.resources {
            entries.push(self.resource_entry(res_entry)?);
        }
        Ok(FileConfig {
            entries,
            output_dir,
            json_export,
            log_level,
            auto_shutdown,
            cluster_wide_threshold,
        })
    }

    fn gvr(&self, text: &Spanned<String>) -> Result<Gvr, String> {
        text.value.parse::<Gvr>().or_else(|e| self.fail(text, e))
    }

    fn pattern(&self, key: &str, text: &Spanned<String>) -> Result<NamePattern, String> {
        if text.value.is_empty() {
            return self.fail(text, format_args!("{key} is empty"));
        }
        NamePattern::new(&text.value).or_else(|e| self.fail(text, format_args!("{key}: {e}")))
    }

    fn exact(&self, key: &str, text: &Spanned<String>) -> Result<NamePattern, String> {
        if text.value.is_empty() {
            return self.fail(text, format_args!("{key} is empty"));
        }
        Ok(NamePattern::Exact(text.value.clone()))
    }

    fn label_selector(&self, text: &Option<Spanned<String>>) -> Result<Option<String>, String> {
        let Some(text) = text else { return Ok(None) };
        selector::parse_label_selector(&text.value)
            .or_else(|e| self.fail(text, format_args!("label_selector: {e}")))?;
        Ok(Some(text.value.trim().to_owned()).filter(|s| !s.is_empty()))
    }

    fn label_patterns(&self, raw: Option<Spanned<OneOrMany>>) -> Result<Vec<LabelPattern>, String> {
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        let location = self.at(&raw);
        raw.value
            .into_vec()
            .iter()
            .map(|p| LabelPattern::parse(p).map_err(|e| format!("{location}: label_pattern: {e}")))
            .collect()
    }

    fn names(
        &self,
        selector: &Option<Spanned<String>>,
        pattern: &Option<Spanned<String>>,
    ) -> Result<Vec<NamePattern>, String> {
        let mut names = Vec::new();
        if let Some(s) = selector {
            names.push(self.exact("name_selector", s)?);
        }
        if let Some(p) = pattern {
            names.push(self.pattern("name_pattern", p)?);
        }
        Ok(names)
    }

    fn namespace_entry(&self, raw: RawNamespaceEntry) -> Result<Vec<Entry>, String> {
        let (namespaces, namespace_location) = match (&raw.name_selector, &raw.name_pattern) {
            (None, None) => {
                return self.fail(
                    &raw.resources,
                    "a namespaces entry needs name_pattern or name_selector (for all namespaces use the resources: form)",
                );
            }
            (selector, pattern) => {
                let namespaces = NamespaceFilter::only(self.names(selector, pattern)?);
                let location = selector.as_ref().or(pattern.as_ref()).map(|s| self.at(s));
                // Both given: the namespace must satisfy both (AND), so an exact name that the
                // pattern rejects selects nothing; keep it simple and refuse the combination.
                if let (Some(_), Some(pattern)) = (selector, pattern) {
                    return self.fail(
                        pattern,
                        "give either name_selector or name_pattern in a namespaces entry, not both",
                    );
                }
                (namespaces, location)
            }
        };
        if raw.resources.value.0.is_empty() {
            return self.fail(&raw.resources, "resources: names no GVR");
        }
        let mut entries = Vec::new();
        for (gvr_text, filter) in raw.resources.value.0 {
            let filter = filter.unwrap_or_default();
            entries.push(Entry {
                gvr: self.gvr(&gvr_text)?,
                scope: Some(Scope::Namespaced),
                namespaces: namespaces.clone(),
                names: self.names(&filter.name_selector, &filter.name_pattern)?,
                label_selector: self.label_selector(&filter.label_selector)?,
                label_patterns: self.label_patterns(filter.label_pattern)?,
                location: self.at(&gvr_text),
                namespace_location: namespace_location.clone(),
            });
        }
        Ok(entries)
    }

    fn resource_entry(&self, raw: RawResourceEntry) -> Result<Entry, String> {
        let gvr = self.gvr(&raw.gvr)?;
        let scope = match &raw.scope {
            None => None,
            Some(s) => Some(match s.value.as_str() {
                "Cluster" | "cluster" => Scope::Cluster,
                "Namespaced" | "namespaced" => Scope::Namespaced,
                other => {
                    return self.fail(
                        s,
                        format_args!(
                            "scope: {other:?} is not a scope (expected Cluster or Namespaced)"
                        ),
                    );
                }
            }),
        };
        let mut names = Vec::new();
        let mut namespace_location = None;
        if let Some(list) = &raw.namespace_names {
            namespace_location = Some(self.at(list));
            for name in &list.value {
                names.push(self.exact("namespace_names", name)?);
            }
        }
        if let Some(list) = &raw.namespace_patterns {
            namespace_location.get_or_insert_with(|| self.at(list));
            for p in &list.value {
                names.push(self.pattern("namespace_patterns", p)?);
            }
        }
        let namespaces = match (&raw.namespace_names, &raw.namespace_patterns) {
            (None, None) => NamespaceFilter::All,
            _ if names.is_empty() => {
                return Err(format!(
                    "{}: the namespace list is empty (leave it out to watch all namespaces)",
                    namespace_location.unwrap_or_default()
                ));
            }
            _ => NamespaceFilter::only(names),
        };
        if scope == Some(Scope::Cluster) && namespace_location.is_some() {
            return Err(format!(
                "{}: {gvr} is declared cluster-scoped but has a namespace filter",
                namespace_location.unwrap_or_default()
            ));
        }
        Ok(Entry {
            names: self.names(&raw.name_selector, &raw.name_pattern)?,
            label_selector: self.label_selector(&raw.label_selector)?,
            label_patterns: self.label_patterns(raw.label_pattern)?,
            location: self.at(&raw.gvr),
            gvr,
            scope,
            namespaces,
            namespace_location,
        })
    }
}

/// Checks entries against discovery: a declared scope must match, and a cluster-scoped resource
/// cannot take a namespace filter. Resources not served (yet) are not errors: a CRD may come.
pub fn check_scopes(entries: &[Entry], discovery: &Discovery) -> Result<(), UsageError> {
    for entry in entries {
        if let Some(resource) = discovery.find(&entry.gvr)
            && let Some(problem) = scope_problem(entry, resource.namespaced)
        {
            return Err(UsageError(problem));
        }
    }
    Ok(())
}

/// Why `entry` cannot be served by its resource with this scope: a namespace filter on a
/// cluster-scoped resource, or a declared scope the cluster does not have. At start-up this is a
/// usage error ([`check_scopes`]); for a CRD that appears later with such a scope, the planner
/// warns and leaves the entry out.
pub fn scope_problem(entry: &Entry, namespaced: bool) -> Option<String> {
    if !namespaced && !matches!(entry.namespaces, NamespaceFilter::All) {
        return Some(format!(
            "{}: {} is cluster-scoped, so it cannot have a namespace filter",
            entry
                .namespace_location
                .as_deref()
                .unwrap_or(&entry.location),
            entry.gvr
        ));
    }
    let actual = if namespaced {
        Scope::Namespaced
    } else {
        Scope::Cluster
    };
    match entry.scope {
        Some(declared) if declared != actual => Some(format!(
            "{}: {} is {actual:?}-scoped on this cluster, but the config says scope: {declared:?}",
            entry.location, entry.gvr
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(yaml: &str) -> FileConfig {
        parse(yaml, "cfg.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn design_example_parses_into_entries() {
        let cfg = ok(r#"
output_dir: ./out
json_export: true
log_level: info
auto_shutdown: 10m
namespaces:
  - name_pattern: "prod-.*"
    resources:
      "v1/pods":
        name_pattern: "web-.*"
        label_selector: "app=nginx,tier!=db"
      "v1/configmaps":
        label_pattern: "app=^nginx-.*$"
resources:
  - gvr: "v1/configmaps"
    scope: Namespaced
    namespace_names: ["default", "kube-system"]
    namespace_patterns: ["test-.*"]
    name_selector: "app-config"
    label_selector: "app=web"
  - gvr: "v1/namespaces"
    scope: Cluster
    name_pattern: "prod-.*"
  - gvr: "example.com/v1/widgets"
"#);
        assert_eq!(cfg.entries.len(), 5);
        assert_eq!(cfg.auto_shutdown, Some(Duration::from_secs(600)));
        assert!(cfg.json_export);
        assert_eq!(cfg.log_level, Some(LogLevel::Info));
        let pods = &cfg.entries[0];
        assert_eq!(pods.gvr.to_string(), "v1/pods");
        assert!(pods.namespaces.matches("prod-eu") && !pods.namespaces.matches("dev"));
        assert_eq!(pods.label_selector.as_deref(), Some("app=nginx,tier!=db"));
        assert_eq!(pods.location, "cfg.yaml:9:7");
        let cms = &cfg.entries[2];
        assert_eq!(cms.exact_name(), Some("app-config"));
        assert!(cms.namespaces.matches("kube-system") && cms.namespaces.matches("test-1"));
        assert!(matches!(cfg.entries[4].namespaces, NamespaceFilter::All));
    }

    #[test]
    fn auto_shutdown_sec_is_accepted() {
        let cfg = ok("auto_shutdown_sec: 5\nresources:\n  - gvr: v1/pods\n");
        assert_eq!(cfg.auto_shutdown, Some(Duration::from_secs(5)));
    }

    #[test]
    fn namespace_pattern_without_metacharacters_is_an_exact_name() {
        let cfg = ok("resources:\n  - gvr: v1/pods\n    namespace_patterns: [kube-system]\n");
        match &cfg.entries[0].namespaces {
            NamespaceFilter::Only { exact, patterns } => {
                assert!(exact.contains("kube-system") && patterns.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_configs_name_the_place_and_the_problem() {
        // (yaml, expected location prefix, expected words in the message)
        let cases: &[(&str, &str, &str)] = &[
            ("bogus: 1\n", "cfg.yaml:1:1", "unknown field `bogus`"),
            (
                "resources:\n  - gvr: v1/pods\n    colour: red\n",
                "cfg.yaml:3:5",
                "unknown field `colour`",
            ),
            (
                "resources:\n  - gvr: pods\n",
                "cfg.yaml:2:10",
                "invalid GVR",
            ),
            (
                "resources:\n  - gvr: apps/v1/deployments/scale\n",
                "cfg.yaml:2:10",
                "invalid GVR",
            ),
            (
                "resources:\n  - gvr: v1/pods\n    name_pattern: \"web-(\"\n",
                "cfg.yaml:3:19",
                "invalid regex",
            ),
            (
                "resources:\n  - gvr: v1/pods\n    namespace_patterns: [\"a[\"]\n",
                "cfg.yaml:3",
                "invalid regex",
            ),
            (
                "resources:\n  - gvr: v1/pods\n    label_selector: \"app in prod\"\n",
                "cfg.yaml:3:21",
                "label_selector",
            ),
            (
                "resources:\n  - gvr: v1/pods\n    label_selector: \"=x\"\n",
                "cfg.yaml:3:21",
                "expected a label key",
            ),
            (
                "resources:\n  - gvr: v1/pods\n    label_pattern: \"novalue\"\n",
                "cfg.yaml:3:20",
                "key=regex",
            ),
            (
                "resources:\n  - gvr: v1/pods\n    label_pattern: \"app=(\"\n",
                "cfg.yaml:3:20",
                "invalid regex",
            ),
            (
                "resources:\n  - gvr: v1/nodes\n    scope: Cluster\n    namespace_names: [a]\n",
                "cfg.yaml:4:22",
                "cluster-scoped",
            ),
            (
                "resources:\n  - gvr: v1/pods\n    scope: Global\n",
                "cfg.yaml:3:12",
                "expected Cluster or Namespaced",
            ),
            (
                "auto_shutdown: soon\nresources:\n  - gvr: v1/pods\n",
                "cfg.yaml:1:16",
                "auto_shutdown",
            ),
            (
                "auto_shutdown: 1m\nauto_shutdown_sec: 5\n",
                "cfg.yaml:2:20",
                "only one of",
            ),
            ("auto_shutdown_sec: -3\n", "cfg.yaml:1:20", ""),
            ("log_level: loud\n", "cfg.yaml:1:12", "unknown level"),
            (
                "namespaces:\n  - resources:\n      v1/pods: {}\n",
                "cfg.yaml:3:7",
                "name_pattern or name_selector",
            ),
            (
                "namespaces:\n  - name_pattern: a\n    resources:\n      v1/pods: {}\n      v1/pods: {}\n",
                "cfg.yaml:5:7",
                "duplicate",
            ),
            (
                "namespaces:\n  - name_pattern: a\n    resources:\n      v1/pods:\n        label_selector: \"app=a b\"\n",
                "cfg.yaml:5:25",
                "unexpected",
            ),
            ("resources: [\n", "cfg.yaml:1:12", ""),
            ("resources:\n  - scope: Cluster\n", "cfg.yaml:2", "gvr"),
            (
                "resources:\n  - gvr: v1/pods\n    namespace_names: []\n",
                "cfg.yaml:3",
                "empty",
            ),
            ("cluster_wide_threshold: 0\n", "cfg.yaml:1:25", "at least 1"),
        ];
        for (yaml, at, words) in cases {
            let err = parse(yaml, "cfg.yaml")
                .err()
                .unwrap_or_else(|| panic!("accepted: {yaml}"));
            assert!(
                err.starts_with(at),
                "{yaml:?}\n  gave {err:?}\n  want prefix {at:?}"
            );
            assert!(
                err.contains(words),
                "{yaml:?}\n  gave {err:?}\n  want {words:?}"
            );
            assert!(!err.contains('\n'), "one line: {err:?}");
        }
    }
}
