//! Restarts without loss (design.md §11): the state file a watcher saves, and resumes from.
//!
//! The state holds, per server-side watch, where its watch would resume (the last
//! resourceVersion of its events and bookmarks) and the objects it sees (uid, resourceVersion,
//! namespace, name): what faro keeps in memory anyway. A watcher started with a state file
//! resumes each watch the state knows from its resourceVersion, with no listing and no
//! `initial` events; a watch that gets `410 Gone` relists and reports the difference against
//! the saved objects, as `resync` events. Watches the state does not know start as usual;
//! saved ones the config no longer asks for are dropped without events.
//!
//! # When a checkpoint is taken
//! A snapshot is taken every interval (default 5 s) when something changed, and once more when
//! the watcher stops. It is written only when every event it covers has been handed to the
//! handler and the handler's [`flush`](crate::Handler::flush) has returned: a checkpoint never
//! covers an event that has not been written out. It may lag behind what was written: after a
//! crash, the events after it are delivered again, unless the handler's output file is given
//! with [`Checkpoint::output`], whose lines after the checkpoint are folded into the state at
//! start, so that they are not.
//!
//! # Where it is kept
//! In a file ([`Checkpoint::file`]), or in a [`Store`] of one value that every replica of a
//! deployment reads ([`Checkpoint::store`]; faro's is a JetStream key-value bucket,
//! [`crate::nats::StateBucket`]), so that whichever replica leads next resumes it. The bytes are
//! the same either way.
//!
//! # The file
//! One JSON header line (`format`, `version`, the cluster it belongs to, a CRC-32 and the
//! length of the body), then the body, a JSON document. It is written to a temporary file in
//! the same directory (mode 0600), synced and renamed over the old one. A file that does not
//! read back exactly (truncated, corrupt, another format version, another cluster) is an error,
//! never a silent fresh start.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::gvr::Gvr;
use crate::plan;
use crate::stream::snapshot::OutputMark;
use crate::stream::state::{Rv, Uid};

/// The `format` of the header.
const FORMAT: &str = "faro-state";
/// The format version this faro writes and reads.
pub const VERSION: u32 = 1;
/// A state file larger than this is not read (a million objects take about 70 MiB).
const MAX_STATE_BYTES: u64 = 1 << 30;

/// Where and how often a [`Watcher`](crate::Watcher) saves its state.
///
/// ```
/// # use std::time::Duration;
/// let checkpoint = faro::checkpoint::Checkpoint::file("/var/lib/faro/state.json", "https://10.0.0.1:6443")
///     .interval(Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub(crate) at: Location,
    pub(crate) store: Option<Arc<dyn Store>>,
    pub(crate) cluster: String,
    pub(crate) interval: Duration,
    pub(crate) reset: bool,
    pub(crate) output: Option<OutputPath>,
}

/// The path of the output file a handler writes now, shared with a [`Checkpoint`]: a writer
/// that rotates its file ([`OutputPath::set`]) keeps the checkpoint's mark on the right file.
///
/// After a crash, the lines after the mark are folded from the marked file and then from the
/// files of the same directory whose names sort after it and start the same way (up to the
/// first `-`, as `events-20261202-101500-003.json`), in name order: the files the writer
/// rotated to since.
#[derive(Debug, Clone)]
pub struct OutputPath(Arc<std::sync::Mutex<PathBuf>>);

impl OutputPath {
    /// A handle on `path`.
    pub fn new(path: impl Into<PathBuf>) -> OutputPath {
        OutputPath(Arc::new(std::sync::Mutex::new(path.into())))
    }

    /// The writer writes to `path` from now on.
    pub fn set(&self, path: impl Into<PathBuf>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = path.into();
    }

    /// The file written now.
    pub fn get(&self) -> PathBuf {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Where a state is kept, as messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file.
    File(PathBuf),
    /// A [`Store`], by its own description (`JetStream key-value bucket faro-state, key state`).
    Store(String),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "state file {}", path.display()),
            Location::Store(what) => write!(f, "state in the {what}"),
        }
    }
}

/// The future a [`Store`] returns.
pub type StoreFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<T>> + Send + 'a>>;

/// A place other than a file that keeps one state: the whole of what [`Checkpoint`] writes
/// (a header line and the body), replaced as one value. Shared by the replicas of a
/// deployment, it lets any of them resume where the last leader's checkpoint was.
///
/// A store should refuse a write when the value changed since this process last read or wrote
/// it (another replica took over and checkpointed): the old leader's late checkpoint must not
/// replace the new leader's.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// What messages call it (`JetStream key-value bucket faro-state, key state`).
    fn describe(&self) -> String;
    /// The value, or `None` when there is none yet.
    fn read(&self) -> StoreFuture<'_, Option<Vec<u8>>>;
    /// Replaces the value.
    fn write(&self, value: Vec<u8>) -> StoreFuture<'_, ()>;
}

impl Checkpoint {
    /// Saves to and resumes from `path`. `cluster` identifies the cluster (faro uses the API
    /// server's URL): a state saved for another one is refused.
    pub fn file(path: impl Into<PathBuf>, cluster: impl Into<String>) -> Checkpoint {
        Checkpoint {
            at: Location::File(path.into()),
            store: None,
            cluster: cluster.into(),
            interval: Duration::from_secs(5),
            reset: false,
            output: None,
        }
    }

    /// Saves to and resumes from `store` (see [`Store`]); `cluster` as for
    /// [`Checkpoint::file`].
    pub fn store(store: Arc<dyn Store>, cluster: impl Into<String>) -> Checkpoint {
        Checkpoint {
            at: Location::Store(store.describe()),
            store: Some(store),
            cluster: cluster.into(),
            interval: Duration::from_secs(5),
            reset: false,
            output: None,
        }
    }

    /// Where the state is kept.
    pub fn location(&self) -> &Location {
        &self.at
    }

    /// How often a checkpoint is taken when something changed (default 5 s).
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Checkpoint {
        self.interval = interval.max(Duration::from_millis(100));
        self
    }

    /// Ignores (and at the first checkpoint replaces) an existing state file.
    #[must_use]
    pub fn reset(mut self, reset: bool) -> Checkpoint {
        self.reset = reset;
        self
    }

    /// The JSON-lines file (in faro's wire format) the handler writes every event to before it
    /// returns from [`flush`](crate::Handler::flush). Its lines after the last checkpoint
    /// are folded into the state at start, so that a crash repeats none of them in that file;
    /// a partial last line, left by a crash mid-write, is cut off it.
    #[must_use]
    pub fn output(mut self, path: impl Into<PathBuf>) -> Checkpoint {
        self.output = Some(OutputPath::new(path));
        self
    }

    /// As [`Checkpoint::output`], for a writer that rotates its file: it tells `path` which
    /// file it writes now.
    #[must_use]
    pub fn output_path(mut self, path: OutputPath) -> Checkpoint {
        self.output = Some(path);
        self
    }
}

/// A state (file or [`Store`]) that cannot be used. All but [`Error::Write`] mean the file must be looked at
/// (or the state reset): faro never starts afresh over a state it cannot read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{at}: {source}")]
    Read {
        /// The file or store.
        at: Location,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a complete faro state (truncated, corrupt, not faro's).
    #[error("{at}: {reason}; move it away or reset the state to start afresh")]
    Corrupt {
        /// The file or store.
        at: Location,
        /// What is wrong.
        reason: String,
    },
    /// The file was written by another format version.
    #[error(
        "{at}: written in format version {found}, this faro reads version {VERSION}; reset the state to start afresh"
    )]
    Version {
        /// The file or store.
        at: Location,
        /// Its version.
        found: u32,
    },
    /// The file belongs to another cluster.
    #[error(
        "{at}: saved for the cluster {saved}, not {current}; use another state file, or reset the state"
    )]
    ForeignCluster {
        /// The file or store.
        at: Location,
        /// The cluster it was saved for.
        saved: String,
        /// The cluster watched now.
        current: String,
    },
    /// A checkpoint could not be written (the watcher goes on; the next one is tried).
    #[error("writing the {at}: {source}")]
    Write {
        /// The file or store.
        at: Location,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

// ---- the saved form ----

#[derive(serde::Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    cluster: String,
    crc32: u32,
    length: u64,
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(default)]
    output: Option<OutputMark>,
    streams: Vec<BodyStream>,
    #[serde(borrow)]
    objects: Vec<BodyGvr<'a>>,
}

#[derive(Deserialize)]
struct BodyStream {
    id: String,
    rv: Option<String>,
}

/// A string borrowed from the file when it holds no escape.
type Text<'a> = std::borrow::Cow<'a, str>;

#[derive(Deserialize)]
struct BodyGvr<'a> {
    gvr: String,
    /// `[name, uid, resourceVersion, namespace index, [stream indexes]]`
    #[serde(borrow)]
    objects: Vec<(Text<'a>, Text<'a>, Text<'a>, usize, Holders)>,
    /// The namespaces the objects' indexes point to (null: cluster-scoped).
    namespaces: Vec<Option<String>>,
}

/// The streams that hold an object: almost always one (no allocation then).
#[derive(Debug)]
enum Holders {
    One(usize),
    Many(Vec<usize>),
}

impl<'de> Deserialize<'de> for Holders {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Holders;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of stream indexes")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Holders, A::Error> {
                let Some(first) = seq.next_element::<usize>()? else {
                    return Ok(Holders::Many(Vec::new()));
                };
                let Some(second) = seq.next_element::<usize>()? else {
                    return Ok(Holders::One(first));
                };
                let mut all = vec![first, second];
                while let Some(more) = seq.next_element()? {
                    all.push(more);
                }
                Ok(Holders::Many(all))
            }
        }
        d.deserialize_seq(Visitor)
    }
}

impl Holders {
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let (one, many) = match self {
            Holders::One(i) => (Some(*i), &[][..]),
            Holders::Many(all) => (None, all.as_slice()),
        };
        one.into_iter().chain(many.iter().copied())
    }
}

/// An object as saved (uid and resourceVersion already in the form faro keeps them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SavedObject {
    pub uid: Uid,
    pub rv: Rv,
    pub namespace: Option<Arc<str>>,
    pub name: Box<str>,
}

/// A watch as saved.
#[derive(Debug, Clone, Default)]
pub(crate) struct SavedStream {
    /// Where its watch resumes.
    pub rv: Option<String>,
    /// The resource (the first part of its identity).
    pub gvr: Option<Gvr>,
    pub objects: Vec<SavedObject>,
}

/// A saved state, read back.
#[derive(Debug, Default)]
pub(crate) struct Saved {
    /// By stream identity.
    pub streams: HashMap<String, SavedStream>,
    /// Deletions folded from the output file: (resource, uid, resourceVersion).
    pub tombstones: Vec<(Gvr, Uid, Rv)>,
}

impl Checkpoint {
    /// Reads the state, when there is one to resume from: a file on a blocking thread; a
    /// store's value is parsed on one.
    pub(crate) async fn load_async(&self) -> Result<Option<Saved>> {
        let joined = |e: tokio::task::JoinError| Error::Read {
            at: self.at.clone(),
            source: std::io::Error::other(e.to_string()),
        };
        let this = self.clone();
        let Some(store) = &self.store else {
            return tokio::task::spawn_blocking(move || this.load())
                .await
                .map_err(joined)?;
        };
        // Read even with reset: a store learns which revision it replaces.
        let bytes = store.read().await.map_err(|source| Error::Read {
            at: self.at.clone(),
            source,
        })?;
        match bytes {
            Some(bytes) if !self.reset => tokio::task::spawn_blocking(move || this.parse(&bytes))
                .await
                .map_err(joined)?,
            _ => Ok(None),
        }
    }

    /// Reads the state file, when there is one to resume from.
    pub(crate) fn load(&self) -> Result<Option<Saved>> {
        if self.reset {
            return Ok(None);
        }
        let Location::File(path) = &self.at else {
            return Ok(None);
        };
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Read {
                    at: self.at.clone(),
                    source,
                });
            }
        };
        let mut bytes = Vec::new();
        Read::by_ref(&mut file)
            .take(MAX_STATE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::Read {
                at: self.at.clone(),
                source,
            })?;
        self.parse(&bytes)
    }

    /// Decodes a saved state (header line and body).
    fn parse(&self, bytes: &[u8]) -> Result<Option<Saved>> {
        let corrupt = |reason: String| Error::Corrupt {
            at: self.at.clone(),
            reason,
        };
        if bytes.len() as u64 > MAX_STATE_BYTES {
            return Err(corrupt(format!(
                "larger than {} MiB",
                MAX_STATE_BYTES >> 20
            )));
        }
        let Some(newline) = memchr::memchr(b'\n', bytes) else {
            return Err(corrupt("no header line: not a faro state file".into()));
        };
        let header: Header = serde_json::from_slice(&bytes[..newline])
            .map_err(|e| corrupt(format!("unreadable header ({e}): not a faro state file")))?;
        if header.format != FORMAT {
            return Err(corrupt(format!(
                "format {:?}: not a faro state file",
                header.format
            )));
        }
        if header.version != VERSION {
            return Err(Error::Version {
                at: self.at.clone(),
                found: header.version,
            });
        }
        if header.cluster != self.cluster {
            return Err(Error::ForeignCluster {
                at: self.at.clone(),
                saved: header.cluster,
                current: self.cluster.clone(),
            });
        }
        let body = &bytes[newline + 1..];
        if body.len() as u64 != header.length {
            return Err(corrupt(format!(
                "truncated: {} of {} bytes",
                body.len(),
                header.length
            )));
        }
        if crc32fast::hash(body) != header.crc32 {
            return Err(corrupt(
                "checksum mismatch: the file was changed or damaged".into(),
            ));
        }
        let body: Body =
            serde_json::from_slice(body).map_err(|e| corrupt(format!("unreadable body: {e}")))?;
        let mut saved = Saved::default();
        let ids: Vec<String> = body.streams.iter().map(|s| s.id.clone()).collect();
        for stream in body.streams {
            let gvr = plan::identity_gvr(&stream.id);
            saved.streams.insert(
                stream.id,
                SavedStream {
                    rv: stream.rv,
                    gvr,
                    objects: Vec::new(),
                },
            );
        }
        for group in body.objects {
            group
                .gvr
                .parse::<Gvr>()
                .map_err(|e| corrupt(format!("resource {:?}: {e}", group.gvr)))?;
            let namespaces: Vec<Option<Arc<str>>> = group
                .namespaces
                .into_iter()
                .map(|ns| ns.map(Arc::from))
                .collect();
            for (name, uid, rv, ns, holders) in group.objects {
                let namespace = namespaces.get(ns).cloned().ok_or_else(|| {
                    corrupt(format!(
                        "object {uid} names namespace {ns}, which the file does not have"
                    ))
                })?;
                let object = SavedObject {
                    uid: Uid::parse(&uid),
                    rv: Rv::parse(&rv),
                    namespace,
                    name: Box::from(&*name),
                };
                let mut object = Some(object);
                let mut holders = holders.iter().peekable();
                while let Some(holder) = holders.next() {
                    let id = ids.get(holder).ok_or_else(|| {
                        corrupt(format!(
                            "object {uid} names stream {holder}, which the file does not have"
                        ))
                    })?;
                    // The last holder takes the object itself, the others a copy.
                    let copy = if holders.peek().is_none() {
                        object.take()
                    } else {
                        object.clone()
                    };
                    if let (Some(stream), Some(copy)) = (saved.streams.get_mut(id), copy) {
                        stream.objects.push(copy);
                    }
                }
            }
        }
        if let Some(mark) = &body.output {
            saved.fold(mark);
        }
        Ok(Some(saved))
    }

    /// The header line of a body.
    fn header(&self, body: &[u8]) -> Header {
        Header {
            format: FORMAT.into(),
            version: VERSION,
            cluster: self.cluster.clone(),
            crc32: crc32fast::hash(body),
            length: body.len() as u64,
        }
    }

    /// Writes a snapshot's body where the state is kept (a file on a blocking thread).
    pub(crate) async fn write_async(&self, body: Vec<u8>) -> Result<()> {
        let Some(store) = &self.store else {
            let this = self.clone();
            return match tokio::task::spawn_blocking(move || this.write(&body)).await {
                Ok(written) => written,
                Err(e) => Err(Error::Write {
                    at: self.at.clone(),
                    source: std::io::Error::other(e.to_string()),
                }),
            };
        };
        let mut value = serde_json::to_vec(&self.header(&body)).map_err(|e| Error::Write {
            at: self.at.clone(),
            source: std::io::Error::other(e),
        })?;
        value.push(b'\n');
        value.extend_from_slice(&body);
        store.write(value).await.map_err(|source| Error::Write {
            at: self.at.clone(),
            source,
        })
    }

    /// Writes a snapshot's body atomically: a temporary file in the same directory, synced,
    /// renamed over the state file, and the directory synced.
    pub(crate) fn write(&self, body: &[u8]) -> Result<()> {
        let Location::File(path) = &self.at else {
            return Err(Error::Write {
                at: self.at.clone(),
                source: std::io::Error::other("not a file"),
            });
        };
        let write_error = |source| Error::Write {
            at: self.at.clone(),
            source,
        };
        let header = self.header(body);
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&temp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(write_error)?;
        let written = serde_json::to_writer(&mut file, &header)
            .map_err(std::io::Error::other)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.write_all(body))
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&temp, path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(write_error(e));
        }
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// The size of the output file now (where a fold would start from a snapshot taken now).
    pub(crate) fn output_mark(&self) -> Option<OutputMark> {
        let path = self.output.as_ref()?.get();
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Some(OutputMark { path, offset })
    }
}

/// One line of the output file, as much as folding needs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    event_type: String,
    gvr: String,
    #[serde(default)]
    namespace: Option<String>,
    name: String,
    uid: String,
    resource_version: String,
}

/// The files next to `marked` whose names start as its name does up to the first `-` and sort
/// after it, in the order they were made: the files a rotating writer went on to, and those of
/// later runs (which may have been killed before their first checkpoint).
///
/// Names are compared without their extension: a run that starts in the same second as the
/// marked file's gets `events-…-101500-1.json`, which sorts before `events-…-101500.json` as
/// whole names (`-` is below `.`), and its lines would not be folded in (delivered again).
fn later_files(marked: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (marked.parent(), marked.file_name().and_then(|n| n.to_str()))
    else {
        return Vec::new();
    };
    let Some(dash) = name.find('-') else {
        return Vec::new();
    };
    let prefix = &name[..=dash];
    let stem = |n: &str| -> String { n.rsplit_once('.').map_or(n, |(stem, _)| stem).to_owned() };
    let marked_stem = stem(name);
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut later: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let key = stem(&n);
            (n.starts_with(prefix) && key > marked_stem && e.file_type().ok()?.is_file())
                .then(|| (key, e.path()))
        })
        .collect();
    later.sort();
    later.into_iter().map(|(_, p)| p).collect()
}

impl Saved {
    /// Folds the output file's lines after `mark` into the state: the events they hold were
    /// written after the checkpoint, so that they are not delivered again. A partial first
    /// line (the checkpoint was taken while a line was being written) is skipped, a partial
    /// last line (the writer was killed mid-line) is cut off the file; a file that cannot be
    /// read folds nothing. The files the writer rotated to after the marked one are folded
    /// too (see [`OutputPath`]).
    fn fold(&mut self, mark: &OutputMark) {
        let mut files = vec![mark.path.clone()];
        files.extend(later_files(&mark.path));
        let newest = files.len() - 1;
        let mut lines: Vec<u8> = Vec::new();
        for (n, path) in files.iter().enumerate() {
            let Ok(mut text) = std::fs::read(path) else {
                continue;
            };
            if text.last().is_some_and(|b| *b != b'\n') {
                // The writer was killed mid-line: that line is no event, and the next run
                // delivers it again (the checkpoint does not cover it). Cut it off the file.
                let keep = memchr::memrchr(b'\n', &text).map_or(0, |i| i + 1);
                if n == newest
                    && let Ok(file) = std::fs::OpenOptions::new().write(true).open(path)
                    && file.set_len(keep as u64).is_ok()
                {
                    tracing::info!(
                        "cut a partial last line off {} (written when faro was killed)",
                        path.display()
                    );
                }
                text.truncate(keep);
            }
            let mut rest: &[u8] = &text;
            if n == 0 {
                let Some(tail) = text.get(usize::try_from(mark.offset).unwrap_or(usize::MAX)..)
                else {
                    continue;
                };
                rest = tail;
                if mark.offset > 0 && text.get(mark.offset as usize - 1) != Some(&b'\n') {
                    // The checkpoint was taken in the middle of a line: that line was covered.
                    match memchr::memchr(b'\n', rest) {
                        Some(i) => rest = &rest[i + 1..],
                        None => continue,
                    }
                }
            }
            lines.extend_from_slice(rest);
        }
        let rest: &[u8] = &lines;
        // uid → (stream id, index) of every saved copy.
        let mut index: HashMap<Uid, Vec<(String, usize)>> = HashMap::new();
        for (id, stream) in &self.streams {
            for (i, o) in stream.objects.iter().enumerate() {
                index
                    .entry(o.uid.clone())
                    .or_default()
                    .push((id.clone(), i));
            }
        }
        let mut removed: Vec<(String, usize)> = Vec::new();
        for line in rest.split_inclusive(|b| *b == b'\n') {
            if line.last() != Some(&b'\n') {
                break; // the writer stopped mid-line
            }
            let Ok(line) = serde_json::from_slice::<Line>(line) else {
                continue;
            };
            let Ok(gvr) = line.gvr.parse::<Gvr>() else {
                continue;
            };
            let uid = Uid::parse(&line.uid);
            let rv = Rv::parse(&line.resource_version);
            if line.event_type == "DELETED" {
                removed.extend(index.remove(&uid).into_iter().flatten());
                self.tombstones.push((gvr, uid, rv));
                continue;
            }
            if let Some(copies) = index.get(&uid) {
                // An object's lines come in resourceVersion order: the last one wins.
                for (id, i) in copies {
                    if let Some(o) = self.streams.get_mut(id).and_then(|s| s.objects.get_mut(*i)) {
                        o.rv = rv.clone();
                    }
                }
                continue;
            }
            // New since the checkpoint: held by a saved watch of its resource and namespace
            // (exact when entries do not overlap): a watch of its namespace before a
            // cluster-wide one; then by identity, so that the choice does not depend on the
            // map's order.
            let holder = self
                .streams
                .iter_mut()
                .filter(|(id, s)| {
                    s.gvr.as_ref() == Some(&gvr)
                        && plan::identity_namespace(id)
                            .is_none_or(|ns| Some(ns) == line.namespace.as_deref())
                })
                .min_by(|(a, _), (b, _)| {
                    let wide = |id: &str| plan::identity_namespace(id).is_none();
                    (wide(a), a.as_str()).cmp(&(wide(b), b.as_str()))
                });
            if let Some((id, stream)) = holder {
                index
                    .entry(uid.clone())
                    .or_default()
                    .push((id.clone(), stream.objects.len()));
                stream.objects.push(SavedObject {
                    uid,
                    rv,
                    namespace: line.namespace.map(Arc::from),
                    name: line.name.into(),
                });
            }
        }
        // Remove deleted copies, highest index first so that the others stay valid.
        removed.sort_by_key(|r| std::cmp::Reverse(r.1));
        for (id, i) in removed {
            if let Some(stream) = self.streams.get_mut(&id)
                && i < stream.objects.len()
            {
                stream.objects.swap_remove(i);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A body as `stream::snapshot` writes it: two streams, one namespaced, sharing `u-b`.
    pub(crate) const BODY: &str = r#"{"written":"2026-12-02T10:00:00Z","streams":[{"id":"v1/configmaps|ns|||all","rv":"10"},{"id":"v1/configmaps||||all","rv":"11"}],"objects":[{"gvr":"v1/configmaps","objects":[["c","u-c","9",0,[1]],["a","u-a","5",1,[0]],["b\"quoted","u-b","7",1,[0,1]]],"namespaces":[null,"ns"]}]}"#;

    fn with_output(mark: &OutputMark) -> String {
        BODY.replacen(
            "\"streams\"",
            &format!(
                "\"output\":{{\"path\":{},\"offset\":{}}},\"streams\"",
                serde_json::to_string(&mark.path).unwrap(),
                mark.offset
            ),
            1,
        )
    }

    #[test]
    fn a_state_reads_back_as_the_objects_each_stream_holds() {
        let d = tempfile::tempdir().unwrap();
        let checkpoint = Checkpoint::file(d.path().join("state"), "https://c");
        checkpoint.write(BODY.as_bytes()).unwrap();
        let saved = checkpoint.load().unwrap().unwrap();
        let a = &saved.streams["v1/configmaps|ns|||all"];
        assert_eq!(a.rv.as_deref(), Some("10"));
        assert_eq!(a.gvr, Some("v1/configmaps".parse().unwrap()));
        let mut names: Vec<&str> = a.objects.iter().map(|o| &*o.name).collect();
        names.sort();
        assert_eq!(names, ["a", "b\"quoted"]);
        let b = &saved.streams["v1/configmaps||||all"];
        assert_eq!(b.objects.len(), 2);
        assert!(
            b.objects
                .iter()
                .any(|o| o.namespace.is_none() && o.rv == Rv::Num(9))
        );
        let mode = std::fs::metadata(d.path().join("state")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_truncated_foreign_or_newer_file_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("state");
        let checkpoint = Checkpoint::file(&path, "https://c");
        checkpoint.write(BODY.as_bytes()).unwrap();
        let good = std::fs::read(&path).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..good.len() - 5].to_vec(), "truncated"),
            (
                {
                    let mut bad = good.clone();
                    let at = bad.len() - 10;
                    bad[at] ^= 1;
                    bad
                },
                "checksum",
            ),
            (b"hello\n".to_vec(), "not a faro state file"),
            (b"".to_vec(), "no header"),
        ];
        for (bytes, want) in cases {
            std::fs::write(&path, &bytes).unwrap();
            let err = checkpoint.load().unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains(want), "{err}");
        }
        std::fs::write(&path, &good).unwrap();
        let foreign = Checkpoint::file(&path, "https://other");
        assert!(matches!(
            foreign.load().unwrap_err(),
            Error::ForeignCluster { .. }
        ));
        let newer =
            String::from_utf8(good.clone())
                .unwrap()
                .replacen("\"version\":1", "\"version\":2", 1);
        std::fs::write(&path, newer).unwrap();
        assert!(matches!(
            checkpoint.load().unwrap_err(),
            Error::Version { found: 2, .. }
        ));
        assert!(checkpoint.clone().reset(true).load().unwrap().is_none());
        assert!(
            Checkpoint::file(d.path().join("absent"), "x")
                .load()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn lines_written_after_the_checkpoint_are_folded_in() {
        let d = tempfile::tempdir().unwrap();
        let events = d.path().join("events.json");
        let before = "{\"eventType\":\"ADDED\",\"gvr\":\"v1/configmaps\",\"namespace\":\"ns\",\"name\":\"a\",\"uid\":\"u-a\",\"resourceVersion\":\"5\"}\n";
        let after = [
            "{\"eventType\":\"UPDATED\",\"gvr\":\"v1/configmaps\",\"namespace\":\"ns\",\"name\":\"a\",\"uid\":\"u-a\",\"resourceVersion\":\"12\"}",
            "{\"eventType\":\"DELETED\",\"gvr\":\"v1/configmaps\",\"namespace\":\"ns\",\"name\":\"b\\\"quoted\",\"uid\":\"u-b\",\"resourceVersion\":\"13\"}",
            "{\"eventType\":\"ADDED\",\"gvr\":\"v1/configmaps\",\"namespace\":\"ns\",\"name\":\"d\",\"uid\":\"u-d\",\"resourceVersion\":\"14\"}",
        ];
        std::fs::write(
            &events,
            format!("{before}{}\n{{\"eventType\":\"ADD", after.join("\n")),
        )
        .unwrap();
        let checkpoint = Checkpoint::file(d.path().join("state"), "c").output(&events);
        let mark = OutputMark {
            path: events.clone(),
            offset: before.len() as u64,
        };
        checkpoint.write(with_output(&mark).as_bytes()).unwrap();
        let saved = checkpoint.load().unwrap().unwrap();
        let ns = &saved.streams["v1/configmaps|ns|||all"];
        let find = |uid: &str| ns.objects.iter().find(|o| o.uid == Uid::parse(uid));
        assert_eq!(find("u-a").unwrap().rv, Rv::Num(12));
        assert!(find("u-b").is_none(), "deleted after the checkpoint");
        assert!(
            saved.streams["v1/configmaps||||all"]
                .objects
                .iter()
                .all(|o| o.uid != Uid::parse("u-b")),
            "in every stream that held it"
        );
        assert_eq!(find("u-d").unwrap().rv, Rv::Num(14));
        assert_eq!(saved.tombstones.len(), 1);
    }

    #[test]
    fn later_files_are_those_made_after_the_marked_one_even_in_the_same_second() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "events-20261203-083528.json",
            "events-20261203-083529.json",
            "events-20261203-083529-1.json",
            "events-20261203-083530-000.json",
            "events-20261203-083530-001.json",
            "faro-20261203-083531.log",
        ] {
            std::fs::write(d.path().join(n), "").unwrap();
        }
        let names = |marked: &str| -> Vec<String> {
            later_files(&d.path().join(marked))
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names("events-20261203-083529.json"),
            [
                "events-20261203-083529-1.json",
                "events-20261203-083530-000.json",
                "events-20261203-083530-001.json"
            ]
        );
        assert_eq!(
            names("events-20261203-083529-1.json"),
            [
                "events-20261203-083530-000.json",
                "events-20261203-083530-001.json"
            ]
        );
    }

    #[test]
    fn the_files_a_rotating_writer_went_on_to_are_folded_too() {
        let d = tempfile::tempdir().unwrap();
        let line = |t: &str, uid: &str, rv: u32| {
            format!(
                "{{\"eventType\":\"{t}\",\"gvr\":\"v1/configmaps\",\"namespace\":\"ns\",\"name\":\"x\",\"uid\":\"{uid}\",\"resourceVersion\":\"{rv}\"}}\n"
            )
        };
        let marked = d.path().join("events-20261202-100000-000.json");
        let before = line("ADDED", "u-a", 5);
        std::fs::write(&marked, format!("{before}{}", line("UPDATED", "u-a", 12))).unwrap();
        // Rotated to, after the mark; and a file of another kind that sorts later.
        std::fs::write(
            d.path().join("events-20261202-100001-000.json"),
            line("ADDED", "u-d", 14),
        )
        .unwrap();
        std::fs::write(
            d.path().join("events-20261202-100001-001.json"),
            line("UPDATED", "u-d", 15),
        )
        .unwrap();
        std::fs::write(d.path().join("other-9.json"), line("DELETED", "u-c", 16)).unwrap();
        let current = OutputPath::new(&marked);
        let checkpoint = Checkpoint::file(d.path().join("state"), "c").output_path(current.clone());
        let mark = checkpoint.output_mark().unwrap();
        assert_eq!(mark.path, marked);
        checkpoint
            .write(
                with_output(&OutputMark {
                    path: marked.clone(),
                    offset: before.len() as u64,
                })
                .as_bytes(),
            )
            .unwrap();
        let saved = checkpoint.load().unwrap().unwrap();
        let ns = &saved.streams["v1/configmaps|ns|||all"];
        let find = |uid: &str| ns.objects.iter().find(|o| o.uid == Uid::parse(uid));
        assert_eq!(find("u-a").unwrap().rv, Rv::Num(12));
        assert_eq!(
            find("u-d").unwrap().rv,
            Rv::Num(15),
            "both rotated files, in order"
        );
        assert!(saved.tombstones.is_empty(), "other files are not read");
        // The writer tells the checkpoint where it writes now.
        let later = d.path().join("events-20261202-100001-001.json");
        current.set(&later);
        assert_eq!(checkpoint.output_mark().unwrap().path, later);
    }
}
