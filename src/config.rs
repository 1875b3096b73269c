//! What to watch: a [`WatchConfig`] of [`Entry`]s, built in code or read from faro's YAML
//! config file. Every error of a file names `file:line:column` and what would be valid.
//!
//! Two forms of the file, freely mixed (design.md §3): namespace-centric (`namespaces:` with
//! per-GVR filters) and resource-centric (`resources:`). Both become the same [`Entry`] list:
//! within one entry all filters must hold, entries are a union.
//!
//! The file also carries a few keys that configure the faro process rather than what it
//! watches (`output_dir`, `json_export`, `log_level`, `auto_shutdown`, `state_file`). They are parsed and
//! validated here, so that one file has one set of error messages, and handed back as
//! [`RunSettings`]; the library itself does not act on them.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::gvr::Gvr;
use crate::selector::{self, LabelPattern, NamePattern, NameRule};

/// Default number of matching namespaces past which a namespace-pattern entry is served by one
/// cluster-wide watch with client-side namespace filtering instead of one watch per namespace.
pub const DEFAULT_CLUSTER_WIDE_THRESHOLD: usize = 50;

/// A place in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, as it was named when it was read.
    pub file: Arc<str>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A configuration that cannot be used. Not retryable: the input has to change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A value at a known place is invalid.
    #[error("{location}: {message}")]
    At {
        /// Where.
        location: Location,
        /// What is wrong and what would be valid.
        message: String,
    },
    /// The file is invalid, and the YAML parser gave no position.
    #[error("{file}: {message}")]
    InFile {
        /// The file.
        file: Arc<str>,
        /// What is wrong.
        message: String,
    },
    /// The path is not a regular file (a directory, a device, a FIFO).
    #[error("config file {} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is larger than any config needs to be (see [`MAX_CONFIG_BYTES`]).
    #[error("config file {} is larger than {} MiB", path.display(), MAX_CONFIG_BYTES >> 20)]
    TooLarge {
        /// The path.
        path: PathBuf,
    },
    /// A value given in code (not from a file) is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// The largest config file faro reads: a config that names every resource of a large cluster
/// is a few hundred KiB; reading without a bound would let `--config /dev/zero` eat memory.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

impl Error {
    /// Where the problem is, when it is in a file at a known position.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::At { location, .. } => Some(location),
            _ => None,
        }
    }

    fn at(location: Option<&Location>, message: String) -> Error {
        match location {
            Some(location) => Error::At {
                location: location.clone(),
                message,
            },
            None => Error::Invalid(message),
        }
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Parses a humantime duration (`90s`, `10m`, `1h30m`), as `auto_shutdown` and the command
/// line's `--auto-shutdown` spell it.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (expected a duration such as 90s, 10m or 1h30m)"))
}

/// Log levels of `log_level:` (and of the binary's `--log-level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// faro's decisions.
    Debug,
    /// The default.
    Info,
    /// Problems only (`warn` is accepted too).
    Warning,
    /// Errors only.
    Error,
}

impl LogLevel {
    /// The names accepted, in order of verbosity (without the alias `warn`).
    pub const NAMES: [&'static str; 5] = ["trace", "debug", "info", "warning", "error"];
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<LogLevel, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warning" | "warn" => LogLevel::Warning,
            "error" => LogLevel::Error,
            other => {
                return Err(format!(
                    "unknown level {other:?} (expected debug, info, warning or error)"
                ));
            }
        })
    }
}

/// The keys of a config file that configure a faro process, not what it watches.
#[derive(Debug, Clone, Default)]
pub struct RunSettings {
    /// `output_dir`: where the text log (and, with `json_export`, event files) go.
    pub output_dir: Option<PathBuf>,
    /// `json_export`: also write events to `output_dir/logs/events-*.json`.
    pub json_export: bool,
    /// `log_level`.
    pub log_level: Option<LogLevel>,
    /// `auto_shutdown` / `auto_shutdown_sec`.
    pub auto_shutdown: Option<Duration>,
    /// `state_file`: where the watches' state is saved and resumed from.
    pub state_file: Option<PathBuf>,
    /// `max_file_size`: rotate the events file at this size.
    pub max_file_size: Option<ByteSize>,
    /// `max_files`: events files kept when rotating.
    pub max_files: Option<usize>,
}

/// A size in bytes as people write it: `1048576`, `500KB`, `100MiB`, `1GB` (`B`; `KB`, `MB`,
/// `GB` are powers of 1000, `KiB`, `MiB`, `GiB` powers of 1024, as in Kubernetes quantities;
/// `K`, `M`, `G` and `Ki`, `Mi`, `Gi` too). Used by `max_file_size` and `--max-file-size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(u64);

impl ByteSize {
    /// The smallest size a rotated file may have: below it, rotation would churn files faster
    /// than anyone could read them.
    pub const MIN: ByteSize = ByteSize(1 << 20);

    /// The number of bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<ByteSize, String> {
        let t = text.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(digits);
        let bad = || format!("{text:?} is not a size such as 10MiB, 500MB or 1048576");
        let number: u64 = number.parse().map_err(|_| bad())?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "K" | "KB" | "k" | "kB" => 1_000,
            "M" | "MB" => 1_000_000,
            "G" | "GB" => 1_000_000_000,
            "Ki" | "KiB" => 1 << 10,
            "Mi" | "MiB" => 1 << 20,
            "Gi" | "GiB" => 1 << 30,
            _ => return Err(bad()),
        };
        let bytes = number
            .checked_mul(factor)
            .ok_or_else(|| format!("{text:?} is too large"))?;
        if bytes < ByteSize::MIN.0 {
            return Err(format!("{text:?} is below the minimum of 1MiB"));
        }
        Ok(ByteSize(bytes))
    }
}

/// A config file, read: what to watch and the process settings it carries.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// What to watch.
    pub watch: WatchConfig,
    /// Settings for the faro process.
    pub settings: RunSettings,
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
pub(crate) enum NamespaceFilter {
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
    fn add(&mut self, name: NamePattern) {
        if let NamespaceFilter::All = self {
            *self = NamespaceFilter::Only {
                exact: BTreeSet::new(),
                patterns: Vec::new(),
            };
        }
        if let NamespaceFilter::Only { exact, patterns } = self {
            match name {
                NamePattern::Exact(name) => {
                    exact.insert(name);
                }
                NamePattern::Regex(re) => patterns.push(re),
            }
        }
    }

    /// Whether `namespace` is covered.
    pub(crate) fn matches(&self, namespace: &str) -> bool {
        match self {
            NamespaceFilter::All => true,
            NamespaceFilter::Only { exact, patterns } => {
                exact.contains(namespace) || patterns.iter().any(|p| p.is_match(namespace))
            }
        }
    }

    /// Whether resolving this filter needs the live namespace list.
    pub(crate) fn has_patterns(&self) -> bool {
        matches!(self, NamespaceFilter::Only { patterns, .. } if !patterns.is_empty())
    }
}

/// One thing to watch: a GVR and the filters that must all hold.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use faro::config::Entry;
/// let web_pods = Entry::new("v1/pods".parse()?)
///     .namespace("shop")?
///     .name_pattern("web-.*")?
///     .label_selector("tier!=db")?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Entry {
    pub(crate) gvr: Gvr,
    pub(crate) scope: Option<Scope>,
    pub(crate) namespaces: NamespaceFilter,
    /// Name filters (`name_selector`, `name_pattern`); all must match.
    pub(crate) names: Vec<NamePattern>,
    /// Server-side label selector.
    pub(crate) label_selector: Option<String>,
    /// Server-side field selector (besides the exact name).
    pub(crate) field_selector: Option<String>,
    /// Client-side label patterns; all must match.
    pub(crate) label_patterns: Vec<LabelPattern>,
    /// UPDATED events carry a diff against the previous version.
    pub(crate) diff: bool,
    /// Where the entry's GVR is in its file, for errors found later (after discovery).
    pub(crate) location: Option<Location>,
    /// Where its namespace filter is, if any.
    pub(crate) namespace_location: Option<Location>,
}

impl Entry {
    /// Every object of `gvr`, in all namespaces.
    pub fn new(gvr: Gvr) -> Entry {
        Entry {
            gvr,
            scope: None,
            namespaces: NamespaceFilter::All,
            names: Vec::new(),
            label_selector: None,
            field_selector: None,
            label_patterns: Vec::new(),
            diff: false,
            location: None,
            namespace_location: None,
        }
    }

    /// UPDATED events of this entry's resource carry `diff`: what changed since the version
    /// before (see [`crate::diff`]; YAML `diff: true`). faro then keeps the last version of
    /// each of its objects, as compact JSON. The diff is per resource: when any entry of a
    /// resource has it on, every event of that resource carries it.
    #[must_use]
    pub fn diff(mut self, diff: bool) -> Entry {
        self.diff = diff;
        self
    }

    /// Declares the scope; start-up fails when the cluster disagrees.
    #[must_use]
    pub fn scope(mut self, scope: Scope) -> Entry {
        self.scope = Some(scope);
        self
    }

    /// Adds an exact namespace (watched namespace-scoped). Several namespaces are a union. The
    /// name must be a valid namespace name (a DNS-1123 label).
    pub fn namespace(mut self, name: &str) -> Result<Entry> {
        NameRule::Namespace.check(name).map_err(Error::Invalid)?;
        self.namespaces.add(NamePattern::Exact(name.to_owned()));
        Ok(self)
    }

    /// Adds a namespace pattern: an anchored regex resolved against the live namespace list
    /// (a pattern without regex metacharacters is an exact name).
    pub fn namespace_pattern(mut self, pattern: &str) -> Result<Entry> {
        let pattern = checked(pattern, NameRule::Namespace)?;
        self.namespaces.add(pattern);
        Ok(self)
    }

    /// Only the object with this exact name (sent to the server as a field selector). The name
    /// must be one the API server accepts for the resource.
    pub fn name(mut self, name: &str) -> Result<Entry> {
        NameRule::for_objects(&self.gvr)
            .check(name)
            .map_err(Error::Invalid)?;
        self.names.push(NamePattern::Exact(name.to_owned()));
        Ok(self)
    }

    /// Only objects whose name the anchored regex matches.
    pub fn name_pattern(mut self, pattern: &str) -> Result<Entry> {
        let pattern = checked(pattern, NameRule::for_objects(&self.gvr))?;
        self.names.push(pattern);
        Ok(self)
    }

    /// A Kubernetes label selector (`app=web,tier!=db`), applied by the server.
    pub fn label_selector(mut self, selector: &str) -> Result<Entry> {
        selector::parse_label_selector(selector)
            .map_err(|e| Error::Invalid(format!("label selector: {e}")))?;
        self.label_selector = Some(selector.trim().to_owned()).filter(|s| !s.is_empty());
        Ok(self)
    }

    /// A Kubernetes field selector (`status.phase=Running,spec.nodeName=n1`), applied by the
    /// server. Which fields a resource supports depends on the resource (every resource has
    /// `metadata.name` and `metadata.namespace`); the server refuses others, and faro then logs
    /// the refusal and stops that watch.
    pub fn field_selector(mut self, selector: &str) -> Result<Entry> {
        selector::check_field_selector(selector)
            .map_err(|e| Error::Invalid(format!("field selector: {e}")))?;
        self.field_selector = Some(selector.trim().to_owned()).filter(|s| !s.is_empty());
        Ok(self)
    }

    /// `key=regex`: the label must exist and its value match (applied by faro). Several
    /// patterns must all hold.
    pub fn label_pattern(mut self, pattern: &str) -> Result<Entry> {
        self.label_patterns
            .push(LabelPattern::parse(pattern).map_err(Error::Invalid)?);
        Ok(self)
    }

    /// The resource.
    pub fn gvr(&self) -> &Gvr {
        &self.gvr
    }

    /// Where the entry is in its config file (None for entries built in code).
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }

    /// The exact object name, if the name filters pin one (pushed down as a field selector).
    pub(crate) fn exact_name(&self) -> Option<&str> {
        self.names.iter().find_map(NamePattern::exact)
    }

    /// Where to point at in a message about this entry.
    fn describe_location(&self, prefer_namespaces: bool) -> Option<&Location> {
        if prefer_namespaces {
            self.namespace_location.as_ref().or(self.location.as_ref())
        } else {
            self.location.as_ref()
        }
    }

    /// Why this entry cannot be served by its resource with this scope: a namespace filter on a
    /// cluster-scoped resource, or a declared scope the cluster does not have.
    pub(crate) fn scope_problem(&self, namespaced: bool) -> Option<Error> {
        if !namespaced && !matches!(self.namespaces, NamespaceFilter::All) {
            return Some(Error::at(
                self.describe_location(true),
                format!(
                    "{} is cluster-scoped, so it cannot have a namespace filter",
                    self.gvr
                ),
            ));
        }
        let actual = if namespaced {
            Scope::Namespaced
        } else {
            Scope::Cluster
        };
        match self.scope {
            Some(declared) if declared != actual => Some(Error::at(
                self.describe_location(false),
                format!(
                    "{} is {actual:?}-scoped on this cluster, but the config says scope: {declared:?}",
                    self.gvr
                ),
            )),
            _ => None,
        }
    }
}

/// A name pattern; one without regex metacharacters is an exact name, checked by `rule`.
fn checked(pattern: &str, rule: NameRule) -> Result<NamePattern> {
    let pattern = NamePattern::new(pattern).map_err(Error::Invalid)?;
    if let Some(exact) = pattern.exact() {
        rule.check(exact).map_err(Error::Invalid)?;
    }
    Ok(pattern)
}

/// What a watcher watches: entries (a union) and how namespace patterns are served.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub(crate) entries: Vec<Entry>,
    pub(crate) cluster_wide_threshold: usize,
}

impl Default for WatchConfig {
    fn default() -> WatchConfig {
        WatchConfig {
            entries: Vec::new(),
            cluster_wide_threshold: DEFAULT_CLUSTER_WIDE_THRESHOLD,
        }
    }
}

impl WatchConfig {
    /// An empty configuration (watches nothing until entries are added).
    pub fn new() -> WatchConfig {
        WatchConfig::default()
    }

    /// Adds an entry. Entries are a union: an object any of them matches is reported, once.
    #[must_use]
    pub fn entry(mut self, entry: Entry) -> WatchConfig {
        self.entries.push(entry);
        self
    }

    /// Number of namespaces matching a pattern entry past which one cluster-wide watch,
    /// filtered by faro, replaces the per-namespace watches (default 50, at least 1).
    #[must_use]
    pub fn cluster_wide_threshold(mut self, namespaces: usize) -> WatchConfig {
        self.cluster_wide_threshold = namespaces.max(1);
        self
    }

    /// The entries, in order; [`Event::matched_entries`](crate::Event::matched_entries)
    /// indexes into this slice.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whether the entries name nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
    state_file: Option<Spanned<String>>,
    max_file_size: Option<Spanned<String>>,
    max_files: Option<Spanned<u64>>,
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
    field_selector: Option<Spanned<String>>,
    label_pattern: Option<Spanned<OneOrMany>>,
    #[serde(default)]
    diff: bool,
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
    field_selector: Option<Spanned<String>>,
    label_pattern: Option<Spanned<OneOrMany>>,
    #[serde(default)]
    diff: bool,
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
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Visitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<V> {
            type Value = PairList<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping of GVR to filters")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
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
pub fn load(path: &Path) -> Result<ConfigFile> {
    use std::io::Read;
    let read = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read)?;
    if !metadata.is_file() {
        return Err(Error::NotAFile {
            path: path.to_owned(),
        });
    }
    if metadata.len() > MAX_CONFIG_BYTES {
        return Err(Error::TooLarge {
            path: path.to_owned(),
        });
    }
    // The file may grow between the check and the read: read at most one byte past the limit.
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(read)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::TooLarge {
            path: path.to_owned(),
        });
    }
    parse(&text, &path.display().to_string())
}

/// Parses configuration text; `file` names it in error messages.
pub fn parse(text: &str, file: &str) -> Result<ConfigFile> {
    let file: Arc<str> = Arc::from(file);
    let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| yaml_error(&file, text, &e))?;
    Resolver { file }.resolve(raw)
}

fn yaml_error(file: &Arc<str>, text: &str, err: &serde_saphyr::Error) -> Error {
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
    let mut message = message.replace(", set DuplicateKeyPolicy in Options if acceptable", "");
    if message.starts_with("multiple YAML documents") {
        message = "one YAML document expected; a second one starts here".into();
    }
    if message == "invalid u64" {
        message = "expected a whole number, 0 or more".into();
    }
    match err.location() {
        Some(loc) => Error::At {
            message: match key_at(text, loc.line() as usize, loc.column() as usize) {
                // Say which key the value belongs to, unless the message already does.
                Some(key) if !message.contains(key) => format!("{key}: {message}"),
                _ => message,
            },
            location: Location {
                file: file.clone(),
                line: loc.line() as usize,
                column: loc.column() as usize,
            },
        },
        None => Error::InFile {
            file: file.clone(),
            message,
        },
    }
}

/// The mapping key whose value is at `line:column` (1-based) of `text`: `key` in
/// `  key: value` when the column is past the colon.
fn key_at(text: &str, line: usize, column: usize) -> Option<&str> {
    let line = text.lines().nth(line.checked_sub(1)?)?;
    let body = line.trim_start();
    let body = body.strip_prefix("- ").map_or(body, str::trim_start);
    let indent = line.len() - body.len();
    let colon = body.find(':')?;
    let key = body[..colon].trim().trim_matches(|c| c == '"' || c == '\'');
    let simple = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    (simple && column > indent + colon + 1).then_some(key)
}

struct Resolver {
    file: Arc<str>,
}

impl Resolver {
    fn at<T>(&self, spanned: &Spanned<T>) -> Location {
        Location {
            file: self.file.clone(),
            line: spanned.referenced.line() as usize,
            column: spanned.referenced.column() as usize,
        }
    }

    fn fail<T, U>(&self, spanned: &Spanned<T>, message: impl fmt::Display) -> Result<U> {
        Err(Error::At {
            location: self.at(spanned),
            message: message.to_string(),
        })
    }

    fn resolve(&self, raw: RawConfig) -> Result<ConfigFile> {
        let log_level = match &raw.log_level {
            None => None,
            // The same names as --log-level.
            Some(level) => Some(
                level
                    .value
                    .parse::<LogLevel>()
                    .or_else(|e| self.fail(level, format_args!("log_level: {e}")))?,
            ),
        };
        let auto_shutdown = match (&raw.auto_shutdown, &raw.auto_shutdown_sec) {
            (Some(_), Some(sec)) => {
                return self.fail(sec, "give only one of auto_shutdown and auto_shutdown_sec");
            }
            (Some(text), None) => Some(
                parse_duration(&text.value)
                    .or_else(|e| self.fail(text, format_args!("auto_shutdown: {e}")))?,
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
        let state_file = match &raw.state_file {
            Some(path) if path.value.trim().is_empty() => {
                return self.fail(path, "state_file is empty");
            }
            Some(path) => Some(PathBuf::from(&path.value)),
            None => None,
        };
        let max_file_size = match &raw.max_file_size {
            Some(size) => Some(
                size.value
                    .parse::<ByteSize>()
                    .or_else(|e| self.fail(size, format_args!("max_file_size: {e}")))?,
            ),
            None => None,
        };
        let max_files = match &raw.max_files {
            Some(n) if n.value == 0 => return self.fail(n, "max_files must be at least 1"),
            Some(n) => Some(usize::try_from(n.value).unwrap_or(usize::MAX)),
            None => None,
        };

        let mut entries = Vec::new();
        for ns_entry in raw.namespaces {
            entries.extend(self.namespace_entry(ns_entry)?);
        }
        for res_entry in raw.resources {
            entries.push(self.resource_entry(res_entry)?);
        }
        Ok(ConfigFile {
            watch: WatchConfig {
                entries,
                cluster_wide_threshold,
            },
            settings: RunSettings {
                output_dir,
                json_export,
                log_level,
                auto_shutdown,
                state_file,
                max_file_size,
                max_files,
            },
        })
    }

    fn gvr(&self, text: &Spanned<String>) -> Result<Gvr> {
        text.value.parse::<Gvr>().or_else(|e| self.fail(text, e))
    }

    /// A name pattern; one without regex metacharacters is an exact name, checked as `rule`
    /// says the API server would.
    fn pattern(&self, key: &str, text: &Spanned<String>, rule: NameRule) -> Result<NamePattern> {
        if text.value.is_empty() {
            return self.fail(text, format_args!("{key} is empty"));
        }
        let pattern = NamePattern::new(&text.value)
            .or_else(|e| self.fail(text, format_args!("{key}: {e}")))?;
        if let Some(exact) = pattern.exact() {
            rule.check(exact)
                .or_else(|e| self.fail(text, format_args!("{key}: {e}")))?;
        }
        Ok(pattern)
    }

    /// An exact name, checked as `rule` says the API server would: a name no object can have
    /// would only see nothing, or be refused by the server once faro runs.
    fn exact(&self, key: &str, text: &Spanned<String>, rule: NameRule) -> Result<NamePattern> {
        if text.value.is_empty() {
            return self.fail(text, format_args!("{key} is empty"));
        }
        rule.check(&text.value)
            .or_else(|e| self.fail(text, format_args!("{key}: {e}")))?;
        Ok(NamePattern::Exact(text.value.clone()))
    }

    fn label_selector(&self, text: &Option<Spanned<String>>) -> Result<Option<String>> {
        let Some(text) = text else { return Ok(None) };
        selector::parse_label_selector(&text.value)
            .or_else(|e| self.fail(text, format_args!("label_selector: {e}")))?;
        Ok(Some(text.value.trim().to_owned()).filter(|s| !s.is_empty()))
    }

    fn field_selector(&self, text: &Option<Spanned<String>>) -> Result<Option<String>> {
        let Some(text) = text else { return Ok(None) };
        selector::check_field_selector(&text.value)
            .or_else(|e| self.fail(text, format_args!("field_selector: {e}")))?;
        Ok(Some(text.value.trim().to_owned()).filter(|s| !s.is_empty()))
    }

    fn label_patterns(&self, raw: Option<Spanned<OneOrMany>>) -> Result<Vec<LabelPattern>> {
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        let location = self.at(&raw);
        raw.value
            .into_vec()
            .iter()
            .map(|p| {
                LabelPattern::parse(p).map_err(|e| Error::At {
                    location: location.clone(),
                    message: format!("label_pattern: {e}"),
                })
            })
            .collect()
    }

    fn names(
        &self,
        selector: &Option<Spanned<String>>,
        pattern: &Option<Spanned<String>>,
        rule: NameRule,
    ) -> Result<Vec<NamePattern>> {
        let mut names = Vec::new();
        if let Some(s) = selector {
            names.push(self.exact("name_selector", s, rule)?);
        }
        if let Some(p) = pattern {
            names.push(self.pattern("name_pattern", p, rule)?);
        }
        Ok(names)
    }

    fn namespace_entry(&self, raw: RawNamespaceEntry) -> Result<Vec<Entry>> {
        let (namespaces, namespace_location) = match (&raw.name_selector, &raw.name_pattern) {
            (None, None) => {
                return self.fail(
                    &raw.resources,
                    "a namespaces entry needs name_pattern or name_selector (for all namespaces use the resources: form)",
                );
            }
            (selector, pattern) => {
                // Both given: the namespace must satisfy both (AND), so an exact name that the
                // pattern rejects selects nothing; keep it simple and refuse the combination.
                if let (Some(_), Some(pattern)) = (selector, pattern) {
                    return self.fail(
                        pattern,
                        "give either name_selector or name_pattern in a namespaces entry, not both",
                    );
                }
                let mut namespaces = NamespaceFilter::All;
                for name in self.names(selector, pattern, NameRule::Namespace)? {
                    namespaces.add(name);
                }
                let location = selector.as_ref().or(pattern.as_ref()).map(|s| self.at(s));
                (namespaces, location)
            }
        };
        if raw.resources.value.0.is_empty() {
            return self.fail(&raw.resources, "resources: names no GVR");
        }
        let mut entries = Vec::new();
        for (gvr_text, filter) in raw.resources.value.0 {
            let filter = filter.unwrap_or_default();
            let gvr = self.gvr(&gvr_text)?;
            let rule = NameRule::for_objects(&gvr);
            entries.push(Entry {
                names: self.names(&filter.name_selector, &filter.name_pattern, rule)?,
                gvr,
                scope: Some(Scope::Namespaced),
                namespaces: namespaces.clone(),
                label_selector: self.label_selector(&filter.label_selector)?,
                field_selector: self.field_selector(&filter.field_selector)?,
                label_patterns: self.label_patterns(filter.label_pattern)?,
                diff: filter.diff,
                location: Some(self.at(&gvr_text)),
                namespace_location: namespace_location.clone(),
            });
        }
        Ok(entries)
    }

    fn resource_entry(&self, raw: RawResourceEntry) -> Result<Entry> {
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
                names.push(self.exact("namespace_names", name, NameRule::Namespace)?);
            }
        }
        if let Some(list) = &raw.namespace_patterns {
            namespace_location.get_or_insert_with(|| self.at(list));
            for p in &list.value {
                names.push(self.pattern("namespace_patterns", p, NameRule::Namespace)?);
            }
        }
        let mut namespaces = NamespaceFilter::All;
        if let Some(location) = &namespace_location {
            if names.is_empty() {
                return Err(Error::At {
                    location: location.clone(),
                    message: "the namespace list is empty (leave it out to watch all namespaces)"
                        .into(),
                });
            }
            if scope == Some(Scope::Cluster) {
                return Err(Error::At {
                    location: location.clone(),
                    message: format!("{gvr} is declared cluster-scoped but has a namespace filter"),
                });
            }
            for name in names {
                namespaces.add(name);
            }
        }
        Ok(Entry {
            names: self.names(
                &raw.name_selector,
                &raw.name_pattern,
                NameRule::for_objects(&gvr),
            )?,
            label_selector: self.label_selector(&raw.label_selector)?,
            field_selector: self.field_selector(&raw.field_selector)?,
            label_patterns: self.label_patterns(raw.label_pattern)?,
            diff: raw.diff,
            location: Some(self.at(&raw.gvr)),
            gvr,
            scope,
            namespaces,
            namespace_location,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_as_people_write_them() {
        for (text, want) in [
            ("1048576", Ok(1 << 20)),
            ("1MiB", Ok(1 << 20)),
            ("10MiB", Ok(10 << 20)),
            ("2Mi", Ok(2 << 20)),
            ("1GiB", Ok(1 << 30)),
            ("5MB", Ok(5_000_000)),
            ("2G", Ok(2_000_000_000)),
            ("4096KiB", Ok(4 << 20)),
            (" 3 MiB ", Ok(3 << 20)),
            ("1000", Err("below the minimum")),
            ("1KiB", Err("below the minimum")),
            ("10XB", Err("is not a size")),
            ("MiB", Err("is not a size")),
            ("-1MiB", Err("is not a size")),
            ("99999999999999GiB", Err("too large")),
        ] {
            match (text.parse::<ByteSize>(), want) {
                (Ok(got), Ok(want)) => assert_eq!(got.bytes(), want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                (got, want) => panic!("{text}: {got:?}, wanted {want:?}"),
            }
        }
    }

    fn ok(yaml: &str) -> ConfigFile {
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
        let entries = cfg.watch.entries();
        assert_eq!(entries.len(), 5);
        assert_eq!(cfg.settings.auto_shutdown, Some(Duration::from_secs(600)));
        assert!(cfg.settings.json_export);
        assert_eq!(cfg.settings.log_level, Some(LogLevel::Info));
        let pods = &entries[0];
        assert_eq!(pods.gvr.to_string(), "v1/pods");
        assert!(pods.namespaces.matches("prod-eu") && !pods.namespaces.matches("dev"));
        assert_eq!(pods.label_selector.as_deref(), Some("app=nginx,tier!=db"));
        assert_eq!(
            pods.location.as_ref().map(ToString::to_string).as_deref(),
            Some("cfg.yaml:9:7")
        );
        let cms = &entries[2];
        assert_eq!(cms.exact_name(), Some("app-config"));
        assert!(cms.namespaces.matches("kube-system") && cms.namespaces.matches("test-1"));
        assert!(matches!(entries[4].namespaces, NamespaceFilter::All));
    }

    #[test]
    fn auto_shutdown_sec_is_accepted() {
        let cfg = ok("auto_shutdown_sec: 5\nresources:\n  - gvr: v1/pods\n");
        assert_eq!(cfg.settings.auto_shutdown, Some(Duration::from_secs(5)));
    }

    #[test]
    fn namespace_pattern_without_metacharacters_is_an_exact_name() {
        let cfg = ok("resources:\n  - gvr: v1/pods\n    namespace_patterns: [kube-system]\n");
        match &cfg.watch.entries()[0].namespaces {
            NamespaceFilter::Only { exact, patterns } => {
                assert!(exact.contains("kube-system") && patterns.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn entries_built_in_code_equal_entries_read_from_a_file() {
        let built = Entry::new("v1/pods".parse().unwrap())
            .namespace("a")
            .unwrap()
            .namespace_pattern("p-.*")
            .unwrap()
            .name_pattern("web-.*")
            .unwrap()
            .label_selector("app=web")
            .unwrap()
            .label_pattern("tier=^f.*$")
            .unwrap();
        let read = ok(
            "resources:\n  - gvr: v1/pods\n    namespace_names: [a]\n    namespace_patterns: [\"p-.*\"]\n    name_pattern: web-.*\n    label_selector: app=web\n    label_pattern: tier=^f.*$\n",
        );
        let read = &read.watch.entries()[0];
        for ns in ["a", "p-1", "b"] {
            assert_eq!(
                built.namespaces.matches(ns),
                read.namespaces.matches(ns),
                "{ns}"
            );
        }
        assert_eq!(built.label_selector, read.label_selector);
        assert_eq!(built.names.len(), read.names.len());
        assert_eq!(built.label_patterns.len(), read.label_patterns.len());
        assert!(built.location().is_none() && read.location().is_some());
    }

    #[test]
    fn invalid_values_given_in_code_are_errors_without_a_location() {
        let pods = || Entry::new("v1/pods".parse().unwrap());
        for err in [
            pods().name_pattern("web-(").unwrap_err(),
            pods().name("a,b").unwrap_err(),
            pods().namespace("Bad_NS!").unwrap_err(),
            pods().namespace_pattern("Bad_NS").unwrap_err(),
            pods().label_selector("app in prod").unwrap_err(),
            pods().label_pattern("novalue").unwrap_err(),
        ] {
            assert!(matches!(err, Error::Invalid(_)), "{err}");
            assert!(err.location().is_none());
        }
    }

    #[test]
    fn scope_problems_point_at_the_namespace_filter_or_the_gvr() {
        let cfg = ok(
            "resources:\n  - gvr: v1/nodes\n    namespace_names: [a]\n  - gvr: v1/pods\n    scope: Cluster\n",
        );
        let nodes = cfg.watch.entries()[0].scope_problem(false).unwrap();
        assert_eq!(nodes.location().unwrap().line, 3, "{nodes}");
        assert!(nodes.to_string().contains("cluster-scoped"), "{nodes}");
        let pods = cfg.watch.entries()[1].scope_problem(true).unwrap();
        assert_eq!(pods.location().unwrap().line, 4, "{pods}");
        assert!(cfg.watch.entries()[1].scope_problem(false).is_none());
    }

    #[test]
    fn rbac_names_may_hold_colons() {
        let cfg = ok(
            "resources:\n  - gvr: rbac.authorization.k8s.io/v1/clusterroles\n    name_selector: \"system:aggregate-to-admin\"\n",
        );
        assert_eq!(
            cfg.watch.entries()[0].exact_name(),
            Some("system:aggregate-to-admin")
        );
    }

    #[test]
    fn a_config_that_is_no_regular_file_or_too_large_is_refused() {
        assert!(matches!(
            load(Path::new("/dev/zero")),
            Err(Error::NotAFile { .. })
        ));
        let dir = std::env::temp_dir().join(format!("faro-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(load(&dir), Err(Error::NotAFile { .. })));
        let big = dir.join("big.yaml");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(MAX_CONFIG_BYTES + 1).unwrap();
        assert!(matches!(load(&big), Err(Error::TooLarge { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn log_levels_parse_case_insensitively_with_the_warn_alias() {
        assert_eq!("WARN".parse::<LogLevel>(), Ok(LogLevel::Warning));
        assert_eq!("debug".parse::<LogLevel>(), Ok(LogLevel::Debug));
        assert!("loud".parse::<LogLevel>().is_err());
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
            (
                "cluster_wide_threshold: -1\n",
                "cfg.yaml:1:25",
                "cluster_wide_threshold: expected a whole number",
            ),
            (
                "resources:\n  - gvr: v1/pods\n    name_selector: \"a,b\"\n",
                "cfg.yaml:3:20",
                "name_selector: \"a,b\" is not a valid object name",
            ),
            (
                "resources:\n  - gvr: v1/pods\n    name_pattern: \"Web\"\n",
                "cfg.yaml:3:19",
                "name_pattern: \"Web\" is not a valid object name",
            ),
            (
                "resources:\n  - gvr: v1/pods\n    namespace_names: [\"Bad_NS!\"]\n",
                "cfg.yaml:3:23",
                "namespace_names: \"Bad_NS!\" is not a valid namespace name",
            ),
            (
                "namespaces:\n  - name_selector: Prod\n    resources:\n      v1/pods: {}\n",
                "cfg.yaml:2:20",
                "not a valid namespace name",
            ),
            (
                "resources:\n  - gvr: v1/pods\n    name_selector: [a]\n",
                "cfg.yaml:3:20",
                "name_selector: expected string",
            ),
            (
                "resources:\n  - gvr: v1/pods\n---\nresources: []\n",
                "cfg.yaml:4:1",
                "one YAML document expected",
            ),
        ];
        for (yaml, at, words) in cases {
            let err = parse(yaml, "cfg.yaml")
                .err()
                .unwrap_or_else(|| panic!("accepted: {yaml}"))
                .to_string();
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
