//! The binary's outputs: the [`Output`] handler renders each event (JSON lines in the wire
//! format of `faro::event`, or a human line with `--format text`) and hands the lines to the
//! writer thread, the only writer of stdout and of the events file; with `--nats` it also hands
//! each line to the library's JetStream sink (`faro::nats::Publisher`). Also the output files
//! (created 0600) and plain documents (`discover`, `generate`).

mod files;
mod tally;
mod text;
mod writer;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use faro::event::JsonEncoder;
use faro::metrics::Metrics;
use faro::nats::Publisher;
use faro::{Event, Handler};
use tokio::sync::{mpsc, oneshot};

pub use files::{Limits, LogFile, OutputFiles};
use tally::Tally;
use text::TextLines;
pub use text::colours_wanted;
use writer::{Chunk, Pool, Writer};
pub use writer::{EventsOut, WriterEnd, Written};

/// Lines rendered before they are handed to the writer even though more events are queued:
/// big enough to make each write worth a system call, small enough to stream.
const CHUNK_BYTES: usize = 64 << 10;

/// Whether stdout is a terminal (tables and colours only then).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Writes a whole document (a table, a name list) to stdout and flushes it.
pub fn print_document(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// How events are printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON lines (the default, and always in files).
    Json,
    /// One aligned line per event for people, coloured when `color`.
    Text {
        /// ANSI colours (only on a terminal).
        color: bool,
    },
    /// `kind.group/name` per event (`kubectl get -o name`).
    Name,
}

/// What the handler renders into, between two hand-overs to the writer.
struct Lines {
    json: JsonEncoder,
    chunk: Chunk,
    /// Column widths and the clock of the text lines.
    text: TextLines,
    /// Counts the lines for the metrics (with `--metrics-addr`).
    tally: Option<Tally>,
    /// The JSON line of an event for NATS when none is rendered for the outputs.
    scratch: Vec<u8>,
}

/// The JSON-lines (or text) output of `faro watch` and `faro workload`: a [`Handler`].
pub struct Output {
    format: Format,
    /// An events file is written (always JSON).
    file: bool,
    ready_file: Option<PathBuf>,
    lines: Mutex<Lines>,
    pool: Arc<Pool>,
    tx: mpsc::Sender<Chunk>,
    /// Events rendered so far (handed to this output).
    handed: Arc<AtomicU64>,
    /// Set once the initial listings are written (for `/readyz`).
    written_ready: Arc<AtomicBool>,
    /// `--nats`: every event is also published to JetStream.
    nats: Option<Publisher>,
}

/// How far the output got: for the report of a stop that timed out.
#[derive(Debug, Clone)]
pub struct OutputProgress {
    /// Events the handler took.
    pub handed: Arc<AtomicU64>,
    /// Events the writer wrote, per output.
    pub written: Arc<Written>,
    /// An events file is written.
    pub file: bool,
    /// The NATS sink.
    pub nats: Option<Publisher>,
}

impl Output {
    /// Starts the writer thread; `notify` is called if it stops early (a failed write, a closed
    /// stdout), so that the session can shut down.
    pub fn start(
        format: Format,
        events: Option<EventsOut>,
        ready_file: Option<PathBuf>,
        reopen: Arc<AtomicBool>,
        metrics: Option<Metrics>,
        nats: Option<Publisher>,
        notify: impl FnOnce() + Send + 'static,
    ) -> anyhow::Result<(Output, Writer, OutputProgress)> {
        let pool = Arc::new(Pool::default());
        let file = events.is_some();
        let written = Arc::new(Written::default());
        let (tx, writer) = Writer::spawn(
            !matches!(format, Format::Json),
            events,
            pool.clone(),
            written.clone(),
            reopen,
            notify,
        )
        .context("starting the writer thread")?;
        let handed = Arc::new(AtomicU64::new(0));
        let progress = OutputProgress {
            handed: handed.clone(),
            written,
            file,
            nats: nats.clone(),
        };
        let output = Output {
            format,
            file,
            ready_file,
            lines: Mutex::new(Lines {
                json: JsonEncoder::new(),
                chunk: Chunk::default(),
                text: TextLines::new(matches!(format, Format::Text { color: true })),
                tally: metrics.map(Tally::new),
                scratch: Vec::new(),
            }),
            pool,
            tx,
            handed,
            written_ready: Arc::default(),
            nats,
        };
        Ok((output, writer, progress))
    }

    /// Set once every initial listing is written out.
    pub fn written_ready(&self) -> Arc<AtomicBool> {
        self.written_ready.clone()
    }

    fn lines(&self) -> std::sync::MutexGuard<'_, Lines> {
        // Rendering cannot leave the buffers half-written in a way that matters more than
        // stopping would: keep going with what is there.
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes what is rendered so far.
    fn take(&self, lines: &mut Lines) -> Chunk {
        let spare = Chunk {
            json: self.pool.take(0),
            ..Chunk::default()
        };
        std::mem::replace(&mut lines.chunk, spare)
    }

    /// Hands a chunk to the writer; waits while it is behind.
    async fn send(&self, chunk: Chunk) {
        if !chunk.is_empty() {
            // A writer that stopped has told the session already: what is left is dropped.
            let _ = self.tx.send(chunk).await;
        }
    }

    /// Waits until everything rendered so far is written and flushed.
    async fn flushed(&self) {
        let (ack, done) = oneshot::channel();
        let mut chunk = self.take(&mut self.lines());
        chunk.ack = Some(ack);
        if self.tx.send(chunk).await.is_ok() {
            let _ = done.await;
        }
        if let Some(nats) = &self.nats {
            nats.flush().await;
        }
    }
}

impl Handler for Output {
    type Error = std::convert::Infallible;

    async fn on_event(&self, event: &Event<'_>) -> Result<(), Self::Error> {
        let (full, line) = {
            let mut lines = self.lines();
            let lines = &mut *lines;
            let start = lines.chunk.json.len();
            let mut json = false;
            match self.format {
                Format::Json => {
                    lines.json.encode(event, &mut lines.chunk.json);
                    json = true;
                }
                Format::Text { .. } | Format::Name => {
                    if self.format == Format::Name {
                        text::render_name(event, &mut lines.chunk.text);
                    } else {
                        lines.text.render(event, &mut lines.chunk.text);
                    }
                    if self.file {
                        lines.json.encode(event, &mut lines.chunk.json);
                        json = true;
                    }
                }
            }
            // NATS gets the same JSON line, without its newline.
            let line = self.nats.as_ref().map(|_| {
                let rendered = if json {
                    &lines.chunk.json[start..]
                } else {
                    lines.scratch.clear();
                    lines.json.encode(event, &mut lines.scratch);
                    &lines.scratch[..]
                };
                let end = rendered.len() - usize::from(rendered.last() == Some(&b'\n'));
                bytes::Bytes::copy_from_slice(&rendered[..end])
            });
            lines.chunk.events += 1;
            if let Some(tally) = &mut lines.tally {
                tally.count(event, &mut lines.chunk.counts);
            }
            let full = (lines.chunk.json.len() + lines.chunk.text.len() >= CHUNK_BYTES)
                .then(|| self.take(lines));
            (full, line)
        };
        self.handed.fetch_add(1, Ordering::Relaxed);
        if let Some(chunk) = full {
            self.send(chunk).await;
        }
        if let (Some(nats), Some(line)) = (&self.nats, line) {
            // Waits while JetStream is behind (an outage): the watches wait with it.
            nats.publish(event, line).await;
        }
        Ok(())
    }

    async fn on_idle(&self) {
        let chunk = self.take(&mut self.lines());
        self.send(chunk).await;
    }

    async fn flush(&self) {
        self.flushed().await;
    }

    async fn on_ready(&self, streams: usize) {
        // Announce only once the initial events are out: a script that sees the ready file
        // finds them in the output.
        self.flushed().await;
        self.written_ready.store(true, Ordering::SeqCst);
        if let Some(path) = &self.ready_file
            && let Err(e) = std::fs::write(path, format!("watching {streams} resource streams\n"))
        {
            tracing::warn!("cannot write the ready file {}: {e}", path.display());
        }
    }
}
