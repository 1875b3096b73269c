//! The writer thread: the only writer of stdout and of the events file.
//!
//! It takes rendered chunks from a bounded queue, writes each to the events file first, then to
//! stdout, and flushes stdout whenever the queue is empty, so a consumer sees an event within
//! milliseconds and a SIGKILL loses nothing already handed over. A blocked stdout blocks the
//! queue, which slows the watches (the API server keeps the history: nothing is lost).

use std::fs::File;
use std::io::Write;
use std::sync::mpsc as std_mpsc;

use tokio::sync::{mpsc, oneshot};

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

/// The writer thread.
pub struct Writer {
    done: std_mpsc::Receiver<WriterEnd>,
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    /// Starts the writer. `text`: stdout takes the text lines instead of JSON; `events_file`:
    /// also append the JSON lines to this file. `notify` is called once when the writer stops
    /// early (error or broken pipe), so that the caller can shut down.
    pub fn spawn(
        text: bool,
        events_file: Option<File>,
        pool: std::sync::Arc<Pool>,
        notify: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<(mpsc::Sender<Chunk>, Writer)> {
        let (tx, rx) = mpsc::channel::<Chunk>(QUEUE_CHUNKS);
        let (done_tx, done) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("faro-writer".into())
            .spawn(move || {
                let end = write_loop(rx, text, events_file, &pool);
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

fn write_loop(
    mut rx: mpsc::Receiver<Chunk>,
    text: bool,
    mut file: Option<File>,
    pool: &Pool,
) -> WriterEnd {
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
        if let Some(f) = file.as_mut()
            && let Err(e) = f.write_all(&chunk.json)
        {
            return WriterEnd::Failed(anyhow::Error::from(e).context("writing the events file"));
        }
        let lines = if text { &chunk.text } else { &chunk.json };
        if stdout_ok && let Err(e) = out.write_all(lines) {
            if e.kind() == std::io::ErrorKind::BrokenPipe && file.is_some() {
                // Events still go to the file; a closed stdout pipe is not an error.
                stdout_ok = false;
            } else {
                return io_end(e, "writing to stdout");
            }
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
