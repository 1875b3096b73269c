//! The writer thread: the only writer of stdout and of the events file.
//!
//! It takes rendered chunks from a bounded queue, writes each to the events file first, then to
//! stdout, and flushes stdout whenever the queue is empty, so a consumer sees an event within
//! milliseconds and a SIGKILL loses nothing already handed over. A blocked stdout blocks the
//! queue, which slows the watches (the API server keeps the history: nothing is lost).
//!
//! A write to the events file that fails (a full disk) is rolled back to the last complete
//! line, so the file never ends in half a line. After `SIGHUP` the events file is reopened
//! before the next chunk if it was moved away (logrotate).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;

use tokio::sync::{mpsc, oneshot};

use faro::checkpoint::OutputPath;

use super::files::{PrivateFile, Rotation, cut};

/// Chunks queued for the writer: each is up to [`super::CHUNK_BYTES`] of lines, so this bounds
/// what a slow reader of stdout can make faro hold.
const QUEUE_CHUNKS: usize = 16;

/// Rendered lines on their way to the writer.
#[derive(Debug, Default)]
pub struct Chunk {
    /// JSON lines (stdout in JSON mode, and the events file).
    pub json: Vec<u8>,
    /// Text lines (stdout in text mode).
    pub text: Vec<u8>,
    /// Told once this chunk and everything before it is written and flushed.
    pub ack: Option<oneshot::Sender<()>>,
    /// Events in it.
    pub events: u64,
    /// Its lines per `faro_events_total` series, added once they are written.
    pub counts: Vec<(faro::metrics::EventCounter, u64)>,
}

/// Events written so far, per output.
#[derive(Debug, Default)]
pub struct Written {
    /// To stdout.
    pub stdout: AtomicU64,
    /// To the events file.
    pub file: AtomicU64,
}

impl Chunk {
    /// Whether nothing was rendered and nobody waits.
    pub fn is_empty(&self) -> bool {
        self.json.is_empty() && self.text.is_empty() && self.ack.is_none()
    }
}

/// Spare line buffers handed back by the writer: allocating and freeing a buffer of tens of
/// KiB per chunk costs more than the copy itself (glibc consolidates on every free).
#[derive(Debug, Default)]
pub struct Pool(std::sync::Mutex<Vec<Vec<u8>>>);

impl Pool {
    /// Spares kept: the queue's worth.
    const KEEP: usize = QUEUE_CHUNKS + 2;
    const MAX_CAPACITY: usize = 256 << 10;

    /// A buffer with room for `capacity` bytes.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
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

/// How the writer thread ended.
#[derive(Debug)]
pub enum WriterEnd {
    /// All chunks written and flushed.
    Done,
    /// stdout's reader went away (`faro … | head`): a normal end.
    BrokenPipe,
    /// Writing failed.
    Failed(anyhow::Error),
}

/// The events file and what goes with it: its rotation, and the path the checkpoint's fold
/// reads (it follows rotation and `SIGHUP` reopens).
#[derive(Debug)]
pub struct EventsOut {
    /// The file written now.
    pub file: PrivateFile,
    /// `--max-file-size`: the file rotates.
    pub rotation: Option<Rotation>,
    /// Told which file is written now.
    pub current: OutputPath,
}

/// The writer thread.
pub struct Writer {
    done: std_mpsc::Receiver<WriterEnd>,
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    /// Starts the writer. `text`: stdout takes the text lines instead of JSON; `events`: also
    /// append the JSON lines to this file. `notify` is called once when the writer stops
    /// early (error or broken pipe), so that the caller can shut down.
    pub fn spawn(
        text: bool,
        events: Option<EventsOut>,
        pool: Arc<Pool>,
        written: Arc<Written>,
        reopen: Arc<AtomicBool>,
        notify: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<(mpsc::Sender<Chunk>, Writer)> {
        let (tx, rx) = mpsc::channel::<Chunk>(QUEUE_CHUNKS);
        let (done_tx, done) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("faro-writer".into())
            .spawn(move || {
                let (file, rotation, current) = match events {
                    Some(e) => (Some(e.file), e.rotation, Some(e.current)),
                    None => (None, None, None),
                };
                let outputs = Outputs {
                    text,
                    file,
                    rotation,
                    current,
                    written,
                    reopen,
                };
                let end = write_loop(rx, outputs, &pool);
                if !matches!(end, WriterEnd::Done) {
                    notify();
                }
                let _ = done_tx.send(end);
            })?;
        Ok((tx, Writer { done, thread }))
    }

    /// Waits for the writer to finish (all senders dropped) and reports how it ended.
    pub fn join(self) -> WriterEnd {
        let end = self.done.recv().unwrap_or(WriterEnd::Done);
        let _ = self.thread.join();
        end
    }
}

/// Where the writer writes.
struct Outputs {
    /// stdout takes the text lines.
    text: bool,
    file: Option<PrivateFile>,
    /// `--max-file-size`: the events file rotates.
    rotation: Option<Rotation>,
    /// Told which file is written now (the checkpoint's fold reads from there).
    current: Option<OutputPath>,
    written: Arc<Written>,
    /// Set by `SIGHUP`: reopen the events file before the next chunk.
    reopen: Arc<AtomicBool>,
}

impl Outputs {
    /// Appends a chunk's JSON lines to the events file (rotating it at line boundaries); on
    /// failure, cuts the file back to its last complete line.
    fn write_file(&mut self, json: &[u8], events: u64) -> Result<(), WriterEnd> {
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        if self.reopen.swap(false, Ordering::SeqCst) {
            let reopened = match &mut self.rotation {
                Some(r) => r.reopen(f),
                None => f.reopen(),
            };
            match reopened {
                Ok(true) => {
                    tracing::info!("events file reopened: {}", f.path.display());
                    if let Some(current) = &self.current {
                        current.set(&f.path);
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!("cannot reopen the events file {}: {e}", f.path.display()),
            }
        }
        if json.is_empty() {
            return Ok(());
        }
        match &mut self.rotation {
            None => append(f, json)?,
            Some(r) => {
                let max = r.limits().max_size;
                let mut rest = json;
                while !rest.is_empty() {
                    let len = f.file.metadata().map_or(0, |m| m.len());
                    let n = cut(len, max, rest);
                    if n > 0 {
                        append(f, &rest[..n])?;
                        rest = &rest[n..];
                    }
                    if !rest.is_empty() {
                        r.next(f).map_err(|e| {
                            WriterEnd::Failed(
                                anyhow::Error::from(e).context(format!(
                                    "rotating the events file {}",
                                    f.path.display()
                                )),
                            )
                        })?;
                        if let Some(current) = &self.current {
                            current.set(&f.path);
                        }
                    }
                }
            }
        }
        self.written.file.fetch_add(events, Ordering::Relaxed);
        Ok(())
    }
}

/// Appends complete lines to `f`; on failure, cuts the file back to its last complete line.
fn append(f: &mut PrivateFile, json: &[u8]) -> Result<(), WriterEnd> {
    let before = f.file.metadata().map(|m| m.len());
    if let Err(e) = f.file.write_all(json) {
        let mut cut = String::new();
        if let (Ok(before), Ok(now)) = (before, f.file.metadata().map(|m| m.len())) {
            // Keep the complete lines of this chunk that made it, nothing of the next one.
            let landed = usize::try_from(now.saturating_sub(before)).unwrap_or(0);
            let keep = memchr::memrchr(b'\n', &json[..landed.min(json.len())]).map_or(0, |i| i + 1);
            if f.file.set_len(before + keep as u64).is_err() {
                cut = " (and cutting it back to its last complete line failed)".into();
            }
        }
        return Err(WriterEnd::Failed(anyhow::Error::from(e).context(format!(
            "writing the events file {}{cut}",
            f.path.display()
        ))));
    }
    Ok(())
}

fn write_loop(mut rx: mpsc::Receiver<Chunk>, mut outputs: Outputs, pool: &Pool) -> WriterEnd {
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut stdout_ok = true;
    loop {
        let chunk = match rx.try_recv() {
            Ok(chunk) => chunk,
            Err(mpsc::error::TryRecvError::Empty) => {
                // Queue empty: make everything written so far visible, then wait.
                if stdout_ok && let Err(e) = out.flush() {
                    return io_end(e, "writing to stdout");
                }
                match rx.blocking_recv() {
                    Some(chunk) => chunk,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        // The file first: a line seen on stdout is already in the file.
        if let Err(end) = outputs.write_file(&chunk.json, chunk.events) {
            return end;
        }
        let lines = if outputs.text {
            &chunk.text
        } else {
            &chunk.json
        };
        if stdout_ok {
            match out.write_all(lines) {
                Ok(()) => {
                    outputs
                        .written
                        .stdout
                        .fetch_add(chunk.events, Ordering::Relaxed);
                }
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe && outputs.file.is_some() => {
                    // Events still go to the file; a closed stdout pipe is not an error.
                    stdout_ok = false;
                }
                Err(e) => return io_end(e, "writing to stdout"),
            }
        }
        // Written to an output (a broken stdout leaves the file): the lines count.
        for (counter, n) in &chunk.counts {
            counter.add(*n);
        }
        if let Some(ack) = chunk.ack {
            if stdout_ok && let Err(e) = out.flush() {
                return io_end(e, "writing to stdout");
            }
            let _ = ack.send(());
        }
        pool.give(chunk.json);
        pool.give(chunk.text);
    }
    if stdout_ok && let Err(e) = out.flush() {
        return io_end(e, "writing to stdout");
    }
    if let Some(f) = outputs.file.as_mut()
        && let Err(e) = f.file.flush()
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
