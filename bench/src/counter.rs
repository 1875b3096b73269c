//! The line counter every consumer writes into: a thread drains the consumer's stdout pipe in
//! 1 MiB reads, counts newlines and records the instant at which an armed line count is
//! reached. It can also keep the lines with their arrival wall-clock time (for the fan-out
//! latency case, where faro's lines are few and are parsed afterwards).

use std::io::Read;
use std::process::ChildStdout;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, anyhow, bail};

#[derive(Default)]
struct State {
    lines: u64,
    bytes: u64,
    eof: bool,
    error: Option<String>,
    /// Line count to wait for and when it was reached.
    target: Option<u64>,
    reached: Option<Instant>,
    /// When the first line after arming arrived.
    armed_at_lines: u64,
    first: Option<Instant>,
    /// Kept lines (with `keep`), with their arrival time.
    kept: Vec<(SystemTime, String)>,
}

/// Counts the lines of one pipe.
pub struct Counter {
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl Counter {
    /// Starts draining `out`; with `keep`, every complete line is kept as well.
    pub fn spawn(mut out: ChildStdout, keep: bool) -> Self {
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let s2 = Arc::clone(&shared);
        thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 20];
            let mut partial: Vec<u8> = Vec::new();
            loop {
                let n = match out.read(&mut buf) {
                    Ok(0) => 0,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let (m, cv) = &*s2;
                        lock(m).error = Some(e.to_string());
                        cv.notify_all();
                        return;
                    }
                };
                let now = Instant::now();
                let (m, cv) = &*s2;
                if n == 0 {
                    lock(m).eof = true;
                    cv.notify_all();
                    return;
                }
                let chunk = &buf[..n];
                let newlines = memchr::memchr_iter(b'\n', chunk).count() as u64;
                let mut kept = Vec::new();
                if keep {
                    let wall = SystemTime::now();
                    let mut rest = chunk;
                    while let Some(i) = memchr::memchr(b'\n', rest) {
                        partial.extend_from_slice(&rest[..i]);
                        kept.push((wall, String::from_utf8_lossy(&partial).into_owned()));
                        partial.clear();
                        rest = &rest[i + 1..];
                    }
                    partial.extend_from_slice(rest);
                }
                let mut st = lock(m);
                st.lines += newlines;
                st.bytes += n as u64;
                st.kept.extend(kept);
                if newlines > 0 && st.first.is_none() && st.lines > st.armed_at_lines {
                    st.first = Some(now);
                }
                if let Some(t) = st.target
                    && st.reached.is_none()
                    && st.lines >= t
                {
                    st.reached = Some(now);
                    cv.notify_all();
                }
            }
        });
        Self { shared }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.0)
    }

    /// Lines counted so far.
    pub fn lines(&self) -> u64 {
        self.state().lines
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.state().bytes
    }

    /// Waits for `target` lines in total from now on, remembering the first line after this call.
    pub fn arm(&self, target: u64) {
        let mut st = self.state();
        st.armed_at_lines = st.lines;
        st.first = None;
        st.target = Some(target);
        st.reached = if st.lines >= target {
            Some(Instant::now())
        } else {
            None
        };
    }

    /// When the first line after `arm` arrived.
    pub fn first_after_arm(&self) -> Option<Instant> {
        self.state().first
    }

    /// Waits until the armed count is reached; `alive` is called about every 100 ms and fails
    /// the wait when the producer died. Returns the instant the count was reached.
    pub fn wait(
        &self,
        timeout: Duration,
        mut alive: impl FnMut() -> Result<()>,
    ) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.shared;
        let mut st = lock(m);
        loop {
            if let Some(t) = st.reached {
                return Ok(t);
            }
            let target = st.target.ok_or_else(|| anyhow!("counter not armed"))?;
            if let Some(e) = &st.error {
                bail!(
                    "reading the consumer's output failed after {} lines: {e}",
                    st.lines
                );
            }
            if st.eof {
                bail!(
                    "the consumer closed its output after {} of {target} lines",
                    st.lines
                );
            }
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "timed out after {timeout:?}: {} of {target} lines",
                    st.lines
                );
            }
            let (g, _) = cv
                .wait_timeout(st, (deadline - now).min(Duration::from_millis(100)))
                .map_err(|_| anyhow!("counter lock poisoned"))?;
            st = g;
            if st.reached.is_none() {
                let lines = st.lines;
                drop(st);
                alive().map_err(|e| e.context(format!("after {lines} lines")))?;
                st = lock(m);
            }
        }
    }

    /// Waits until at least `n` lines were counted (without arming).
    pub fn wait_lines(
        &self,
        n: u64,
        timeout: Duration,
        alive: impl FnMut() -> Result<()>,
    ) -> Result<Instant> {
        self.arm(n);
        self.wait(timeout, alive)
    }

    /// Takes the kept lines (arrival time, text).
    pub fn take_kept(&self) -> Vec<(SystemTime, String)> {
        std::mem::take(&mut self.state().kept)
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panicking reader thread leaves consistent counts behind; keep reading them.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
