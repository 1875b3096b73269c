//! Output: the only module that writes to stdout, and the creator of output files (0600).
//!
//! # Wire format
//!
//! One JSON object per line (design.md §2). Keys, in this order: `timestamp` (RFC 3339 UTC,
//! microseconds, when faro observed the change), `eventType` (`ADDED`, `UPDATED`, `DELETED`),
//! `gvr` (`v1/configmaps`, `apps/v1/deployments`), `namespace` (namespaced objects), `name`,
//! `uid`, `resourceVersion`, `labels` and `annotations` (when non-empty), `initial` (`true` only
//! on ADDED events of the start-up listing), `workload_id` and `workload_name` (`faro workload`),
//! `object` (`--include-object`). Keys may be added in later versions; none will be renamed.
//! For Secrets, `data` and `stringData` values become `"<redacted>"` and the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation (which holds them) is dropped.
//!
//! Stream tasks render lines into batches; one writer thread owns stdout and the events file,
//! writes each batch to the file first, then stdout, and flushes whenever the queue is empty,
//! so a consumer sees an event within milliseconds and a SIGKILL loses nothing already
//! processed.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::SystemTime;

use anyhow::Context;
use tokio::sync::mpsc;

/// Batches queued between the streams and the writer. A batch is one network frame of events
/// (tens of KiB) or one list page (up to ~150 KiB rendered): 32 keep the writer busy while
/// bounding what a slow consumer can make faro hold (back-pressure then reaches the sockets).
const QUEUE_BATCHES: usize = 32;

/// The annotation `kubectl apply` stores the whole applied object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Whether stdout is a terminal (tables and colours only then).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Writes a whole document (a table, name list) to stdout and flushes it.
pub fn print_document(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Creates (or appends to) a file readable only by its owner: events and logs may hold data
/// the cluster protects.
pub fn create_private_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// The event types faro emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// An object appeared (created, or entered the watched set).
    Added = 0,
    /// An object changed.
    Updated,
    /// An object went away (deleted, or left the watched set).
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Updated => "UPDATED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON lines (the default, and always in files).
    Json,
    /// One human line per event, coloured when `color`.
    Text {
        /// ANSI colours (only on a terminal).
        color: bool,
    },
}

/// One event to render.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// ADDED, UPDATED or DELETED.
    pub event_type: EventType,
    /// Namespace of namespaced objects.
    pub namespace: Option<&'a str>,
    /// Object name.
    pub name: &'a str,
    /// `metadata.uid`.
    pub uid: &'a str,
    /// The resourceVersion of this event.
    pub resource_version: &'a str,
    /// `metadata.labels` as raw JSON text.
    pub labels: Option<&'a str>,
    /// `metadata.annotations` as raw JSON text.
    pub annotations: Option<&'a str>,
    /// From the start-up listing.
    pub initial: bool,
    /// `(workload_id, workload_name)`.
    pub workload: Option<(&'a str, &'a str)>,
    /// The full object, raw JSON, already redacted for Secrets.
    pub object: Option<&'a str>,
    /// The object is a Secret (drop the last-applied annotation).
    pub secret: bool,
    /// Namespace, name, uid and resourceVersion were taken from the wire as they were (no
    /// escapes), so they need no escaping on the way out either.
    pub verbatim: bool,
}

/// What the lines of one batch share: the time faro observed them and, per event type, the
/// start of the JSON line (`{"timestamp":…,"eventType":…,"gvr":…`), built once per batch.
#[derive(Debug, Clone)]
pub struct Stamp {
    timestamp: String,
    gvr: std::sync::Arc<str>,
    json: [Vec<u8>; 3],
}

impl Stamp {
    /// A stamp for events of `gvr` observed now.
    pub fn now(gvr: &std::sync::Arc<str>) -> Stamp {
        Stamp::at(now(), gvr)
    }

    /// A stamp with a given time (tests).
    pub fn at(timestamp: String, gvr: &std::sync::Arc<str>) -> Stamp {
        let prefix = |event_type: EventType| {
            let mut out = Vec::with_capacity(96);
            out.extend_from_slice(b"{\"timestamp\":\"");
            out.extend_from_slice(timestamp.as_bytes());
            out.extend_from_slice(b"\",\"eventType\":\"");
            out.extend_from_slice(event_type.as_str().as_bytes());
            out.extend_from_slice(b"\",\"gvr\":");
            push_str(&mut out, gvr);
            out
        };
        Stamp {
            json: [
                prefix(EventType::Added),
                prefix(EventType::Updated),
                prefix(EventType::Deleted),
            ],
            timestamp,
            gvr: gvr.clone(),
        }
    }

    fn json_prefix(&self, event_type: EventType) -> &[u8] {
        &self.json[event_type as usize]
    }
}

fn is_empty_map(raw: Option<&str>) -> bool {
    raw.is_none_or(|r| {
        let t = r.trim();
        t == "{}" || t == "null"
    })
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    // Names, uids and resourceVersions almost never need escaping: copy them as they are.
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // serde_json escapes exactly what JSON requires; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A string known to need no escaping.
fn push_verbatim(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

fn push_annotations(out: &mut Vec<u8>, raw: &str, secret: bool) {
    if secret && raw.contains(LAST_APPLIED) {
        if let Ok(mut map) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw)
        {
            map.remove(LAST_APPLIED);
            if map.is_empty() {
                return;
            }
            out.extend_from_slice(b",\"annotations\":");
            let _ = serde_json::to_writer(&mut *out, &map);
        }
        return;
    }
    out.extend_from_slice(b",\"annotations\":");
    out.extend_from_slice(raw.as_bytes());
}

/// Rendered lines on their way to the writer: JSON (stdout in JSON mode, and the events
/// file) and text (stdout in text mode).
#[derive(Debug, Default)]
pub struct Batch {
    /// JSON lines.
    pub json: Vec<u8>,
    /// Text lines.
    pub text: Vec<u8>,
    /// Told once this batch and everything before it is written and flushed.
    ack: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Batch {
    /// Whether nothing was rendered.
    pub fn is_empty(&self) -> bool {
        self.json.is_empty() && self.text.is_empty() && self.ack.is_none()
    }
}

/// Renders records in the formats the outputs need.
#[derive(Debug, Clone, Copy)]
pub struct Renderer {
    /// The stdout format.
    pub format: Format,
    /// An events file is written (always JSON).
    pub file: bool,
}

impl Renderer {
    /// Renders one record into the batch.
    pub fn render(&self, record: &Record, stamp: &Stamp, batch: &mut Batch) {
        match self.format {
            Format::Json => render_json(record, stamp, &mut batch.json),
            Format::Text { color } => {
                render_text(record, stamp, color, &mut batch.text);
                if self.file {
                    render_json(record, stamp, &mut batch.json);
                }
            }
        }
    }
}

fn render_json(r: &Record, stamp: &Stamp, out: &mut Vec<u8>) {
    out.reserve(128);
    out.extend_from_slice(stamp.json_prefix(r.event_type));
    let string = if r.verbatim { push_verbatim } else { push_str };
    if let Some(ns) = r.namespace {
        out.extend_from_slice(b",\"namespace\":");
        string(out, ns);
    }
    out.extend_from_slice(b",\"name\":");
    string(out, r.name);
    out.extend_from_slice(b",\"uid\":");
    string(out, r.uid);
    out.extend_from_slice(b",\"resourceVersion\":");
    string(out, r.resource_version);
    if !is_empty_map(r.labels)
        && let Some(labels) = r.labels
    {
        out.extend_from_slice(b",\"labels\":");
        out.extend_from_slice(labels.as_bytes());
    }
    if !is_empty_map(r.annotations)
        && let Some(annotations) = r.annotations
    {
        push_annotations(out, annotations, r.secret);
    }
    if r.initial {
        out.extend_from_slice(b",\"initial\":true");
    }
    if let Some((id, name)) = r.workload {
        out.extend_from_slice(b",\"workload_id\":");
        push_str(out, id);
        out.extend_from_slice(b",\"workload_name\":");
        push_str(out, name);
    }
    if let Some(object) = r.object {
        out.extend_from_slice(b",\"object\":");
        out.extend_from_slice(object.as_bytes());
    }
    out.extend_from_slice(b"}\n");
}

fn render_text(r: &Record, stamp: &Stamp, color: bool, out: &mut Vec<u8>) {
    let timestamp = &stamp.timestamp;
    let (start, end) = match (color, r.event_type) {
        (false, _) => ("", ""),
        (true, EventType::Added) => ("\x1b[32m", "\x1b[0m"),
        (true, EventType::Updated) => ("\x1b[33m", "\x1b[0m"),
        (true, EventType::Deleted) => ("\x1b[31m", "\x1b[0m"),
    };
    let mut line = format!(
        "{timestamp} {start}{:<7}{end} {} ",
        r.event_type.as_str(),
        stamp.gvr
    );
    if let Some(ns) = r.namespace {
        line.push_str(ns);
        line.push('/');
    }
    line.push_str(r.name);
    line.push_str(" rv=");
    line.push_str(r.resource_version);
    if r.initial {
        line.push_str(" initial");
    }
    if let Some((id, name)) = r.workload {
        line.push_str(&format!(" workload={id}"));
        if name != id {
            line.push_str(&format!(" ({name})"));
        }
    }
    // Names are DNS-safe, but a hostile server could send control characters: keep one line.
    line.retain(|c| c != '\n' && c != '\r');
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
}

/// Replaces the values of a Secret's `data` and `stringData` with `"<redacted>"` and drops the
/// last-applied annotation. Returns the object as JSON.
pub fn redact_secret(raw: &str) -> String {
    let Ok(mut object) = serde_json::from_str::<serde_json::Value>(raw) else {
        return "null".to_owned();
    };
    for field in ["data", "stringData"] {
        if let Some(map) = object.get_mut(field).and_then(|v| v.as_object_mut()) {
            for value in map.values_mut() {
                *value = serde_json::Value::String("<redacted>".to_owned());
            }
        }
    }
    if let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(|v| v.as_object_mut())
    {
        annotations.remove(LAST_APPLIED);
    }
    object.to_string()
}

/// The current time as RFC 3339 UTC with microseconds.
pub fn now() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

/// `YYYYMMDD-HHMMSS` (UTC) for output file names.
pub fn file_stamp(time: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(time).to_string(); // 2026-11-23T10:00:00Z
    text.chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect::<String>()
        .replace('T', "-")
}

/// Paths of the files `--output-dir` creates.
#[derive(Debug, Clone)]
pub struct OutputFiles {
    /// `DIR/logs/events-YYYYMMDD-HHMMSS.json`, when events go to a file.
    pub events: Option<PathBuf>,
    /// `DIR/logs/faro-YYYYMMDD-HHMMSS.log`.
    pub log: PathBuf,
}

impl OutputFiles {
    /// Creates `DIR/logs` and names the files for a run started now.
    pub fn prepare(dir: &Path, events: bool) -> anyhow::Result<OutputFiles> {
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)
            .with_context(|| format!("creating output directory {}", logs.display()))?;
        let stamp = file_stamp(SystemTime::now());
        Ok(OutputFiles {
            events: events.then(|| logs.join(format!("events-{stamp}.json"))),
            log: logs.join(format!("faro-{stamp}.log")),
        })
    }
}

/// Spare line buffers handed back by the writer: allocating and freeing a buffer of tens of
/// KiB per network frame costs more than the copy itself (glibc consolidates on every free).
#[derive(Debug, Default)]
struct Pool(std::sync::Mutex<Vec<Vec<u8>>>);

impl Pool {
    /// Spares kept: enough for a burst's frames in flight, not for a relist's pages (a relist
    /// renders pages of up to ~600 KiB; keeping those would only pin memory).
    const KEEP: usize = 8;
    const MAX_CAPACITY: usize = 256 << 10;

    fn take(&self, capacity: usize) -> Vec<u8> {
        let spare = self.0.lock().ok().and_then(|mut spares| spares.pop());
        let mut buf = spare.unwrap_or_default();
        buf.reserve(capacity);
        buf
    }

    fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > Self::MAX_CAPACITY {
            return;
        }
        buf.clear();
        if let Ok(mut spares) = self.0.lock()
            && spares.len() < Self::KEEP
        {
            spares.push(buf);
        }
    }
}

/// The sending side of the output: stream tasks push rendered batches of lines.
#[derive(Debug, Clone)]
pub struct Sink {
    tx: mpsc::Sender<Batch>,
    pool: std::sync::Arc<Pool>,
}

impl Sink {
    /// An empty batch whose JSON buffer has room for about `capacity` bytes (recycled).
    pub fn batch(&self, capacity: usize) -> Batch {
        Batch {
            json: self.pool.take(capacity),
            ..Batch::default()
        }
    }

    /// Queues a batch of rendered lines; waits while the writer is behind (back-pressure).
    /// Returns false when the writer has stopped.
    pub async fn send(&self, batch: Batch) -> bool {
        if batch.is_empty() {
            // Bookmarks, partial lines and filtered events render nothing: keep the buffer.
            self.pool.give(batch.json);
            return true;
        }
        self.tx.send(batch).await.is_ok()
    }

    /// Waits until everything queued before this call is written and flushed (or the writer
    /// has stopped). Readiness waits for this, so a script that sees "ready" finds the initial
    /// events already in the output.
    pub async fn flushed(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let barrier = Batch {
            ack: Some(tx),
            ..Batch::default()
        };
        if self.tx.send(barrier).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// How the writer thread ended.
#[derive(Debug)]
pub enum WriterEnd {
    /// All batches written and flushed.
    Done,
    /// stdout's reader went away (`faro … | head`): a normal end.
    BrokenPipe,
    /// Writing failed.
    Failed(anyhow::Error),
}

/// The writer thread: owns stdout and the events file.
pub struct Writer {
    done: std_mpsc::Receiver<WriterEnd>,
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    /// Starts the writer. `text`: stdout takes the text lines instead of JSON;
    /// `events_file`: also append the JSON lines to this file. `notify` is called once when the
    /// writer stops early (error or broken pipe), so the caller can shut down.
    pub fn spawn(
        text: bool,
        events_file: Option<File>,
        notify: impl FnOnce() + Send + 'static,
    ) -> (Sink, Writer) {
        let (tx, rx) = mpsc::channel::<Batch>(QUEUE_BATCHES);
        let pool = std::sync::Arc::new(Pool::default());
        let spares = pool.clone();
        let (done_tx, done) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("faro-writer".into())
            .spawn(move || {
                let end = write_loop(rx, text, events_file, &spares);
                if !matches!(end, WriterEnd::Done) {
                    notify();
                }
                let _ = done_tx.send(end);
            })
            .expect("spawning the writer thread (only fails when the OS is out of threads)");
        (Sink { tx, pool }, Writer { done, thread })
    }

    /// Waits for the writer to finish (all senders dropped) and reports how it ended.
    pub fn join(self) -> WriterEnd {
        let end = self.done.recv().unwrap_or(WriterEnd::Done);
        let _ = self.thread.join();
        end
    }
}

fn write_loop(
    mut rx: mpsc::Receiver<Batch>,
    text: bool,
    mut file: Option<File>,
    pool: &Pool,
) -> WriterEnd {
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut stdout_ok = true;
    loop {
        let batch = match rx.try_recv() {
            Ok(batch) => batch,
            Err(mpsc::error::TryRecvError::Empty) => {
                // Queue empty: make everything written so far visible, then wait.
                if stdout_ok && let Err(e) = out.flush() {
                    return io_end(e, "writing to stdout");
                }
                match rx.blocking_recv() {
                    Some(batch) => batch,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        // The file first: a line seen on stdout is already in the file.
        if let Some(f) = file.as_mut()
            && let Err(e) = f.write_all(&batch.json)
        {
            return WriterEnd::Failed(anyhow::Error::from(e).context("writing the events file"));
        }
        if let Some(ack) = batch.ack {
            if stdout_ok && let Err(e) = out.flush() {
                return io_end(e, "writing to stdout");
            }
            let _ = ack.send(());
            continue;
        }
        let lines = if text { &batch.text } else { &batch.json };
        if stdout_ok && let Err(e) = out.write_all(lines) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                if file.is_none() {
                    return WriterEnd::BrokenPipe;
                }
                // Events still go to the file; a closed stdout pipe is not an error.
                stdout_ok = false;
                continue;
            }
            return io_end(e, "writing to stdout");
        }
        pool.give(batch.json);
    }
    if stdout_ok && let Err(e) = out.flush() {
        return io_end(e, "writing to stdout");
    }
    if let Some(f) = file.as_mut()
        && let Err(e) = f.flush()
    {
        return WriterEnd::Failed(anyhow::Error::from(e).context("flushing the events file"));
    }
    WriterEnd::Done
}

fn io_end(e: std::io::Error, what: &str) -> WriterEnd {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        WriterEnd::BrokenPipe
    } else {
        WriterEnd::Failed(anyhow::Error::from(e).context(what.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> &str {
        s
    }

    fn record<'a>() -> Record<'a> {
        Record {
            event_type: EventType::Added,
            namespace: Some("default"),
            name: "cm1",
            uid: "u1",
            resource_version: "42",
            labels: None,
            annotations: None,
            initial: false,
            workload: None,
            object: None,
            secret: false,
            verbatim: false,
        }
    }

    fn render(r: &Record, ts: &str, format: Format, out: &mut Vec<u8>) {
        render_gvr(r, "v1/configmaps", ts, format, out)
    }

    fn render_gvr(r: &Record, gvr: &str, ts: &str, format: Format, out: &mut Vec<u8>) {
        let mut batch = Batch::default();
        let stamp = Stamp::at(ts.into(), &std::sync::Arc::from(gvr));
        Renderer {
            format,
            file: false,
        }
        .render(r, &stamp, &mut batch);
        out.extend_from_slice(if format == Format::Json {
            &batch.json
        } else {
            &batch.text
        });
    }

    fn json(r: &Record) -> serde_json::Value {
        let mut out = Vec::new();
        render(r, "2026-11-23T10:00:00.000001Z", Format::Json, &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(out.last(), Some(&b'\n'));
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn json_lines_have_the_contract_keys_in_order() {
        let labels = raw(r#"{"app":"web"}"#);
        let r = Record {
            labels: Some(labels),
            initial: true,
            workload: Some(("w1", "tenant")),
            ..record()
        };
        let mut out = Vec::new();
        render(&r, "T", Format::Json, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"timestamp\":\"T\",\"eventType\":\"ADDED\",\"gvr\":\"v1/configmaps\",\"namespace\":\"default\",\"name\":\"cm1\",\"uid\":\"u1\",\"resourceVersion\":\"42\",\"labels\":{\"app\":\"web\"},\"initial\":true,\"workload_id\":\"w1\",\"workload_name\":\"tenant\"}\n"
        );
    }

    #[test]
    fn empty_maps_and_absent_options_are_left_out() {
        let empty = raw("{}");
        let v = json(&Record {
            labels: Some(empty),
            annotations: Some(empty),
            namespace: None,
            ..record()
        });
        for key in [
            "labels",
            "annotations",
            "namespace",
            "initial",
            "workload_id",
            "object",
        ] {
            assert!(v.get(key).is_none(), "{key} should be absent: {v}");
        }
    }

    #[test]
    fn verbatim_strings_render_like_escaped_ones_when_they_need_no_escaping() {
        let plain = json(&record());
        let verbatim = json(&Record {
            verbatim: true,
            ..record()
        });
        assert_eq!(plain, verbatim);
    }

    #[test]
    fn names_are_escaped() {
        let v = json(&Record {
            name: "we\"ird\n",
            ..record()
        });
        assert_eq!(v["name"], "we\"ird\n");
    }

    #[test]
    fn secrets_lose_last_applied_annotation_and_data_values() {
        let annotations = raw(
            r#"{"kubectl.kubernetes.io/last-applied-configuration":"{\"data\":{\"p\":\"c2VjcmV0\"}}","team":"a"}"#,
        );
        let object = redact_secret(
            r#"{"kind":"Secret","metadata":{"name":"s","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"x","team":"a"}},"data":{"p":"c2VjcmV0"},"stringData":{"q":"plain"}}"#,
        );
        let mut out = Vec::new();
        render_gvr(
            &Record {
                annotations: Some(annotations),
                object: Some(&object),
                secret: true,
                ..record()
            },
            "v1/secrets",
            "T",
            Format::Json,
            &mut out,
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["gvr"], "v1/secrets");
        assert_eq!(v["annotations"], serde_json::json!({"team": "a"}));
        assert_eq!(v["object"]["data"]["p"], "<redacted>");
        assert_eq!(v["object"]["stringData"]["q"], "<redacted>");
        let text = v.to_string();
        assert!(
            !text.contains("c2VjcmV0") && !text.contains("plain"),
            "{text}"
        );
    }

    #[test]
    fn text_format_is_one_readable_line() {
        let mut out = Vec::new();
        render(
            &Record {
                workload: Some(("w1", "w1")),
                ..record()
            },
            "T",
            Format::Text { color: false },
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "T ADDED   v1/configmaps default/cm1 rv=42 workload=w1\n"
        );
    }

    #[test]
    fn file_stamps_are_compact_utc() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400 + 3_661);
        assert_eq!(file_stamp(t), "19700102-010101");
    }
}
