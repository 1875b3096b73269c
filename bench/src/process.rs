//! Child processes of a benchmark (kube-sim, faro, curl, kubectl): started with stderr in a
//! file of the work directory, checked for an early exit with that stderr in the error, killed
//! (by their own pid only) when dropped.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// A running child with a name for messages.
pub struct Proc {
    pub name: String,
    child: Child,
    stderr: PathBuf,
}

/// Where the child's stdout goes.
pub enum Out {
    Null,
    Pipe,
}

impl Proc {
    /// Starts `cmd`; stderr goes to `dir/<name>.stderr`.
    pub fn start(name: &str, mut cmd: Command, out: Out, dir: &Path) -> Result<Self> {
        let stderr = dir.join(format!("{name}.stderr"));
        let err =
            File::create(&stderr).with_context(|| format!("creating {}", stderr.display()))?;
        cmd.stdin(Stdio::null()).stderr(err);
        cmd.stdout(match out {
            Out::Null => Stdio::null(),
            Out::Pipe => Stdio::piped(),
        });
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
            stderr,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The stdout pipe (once).
    pub fn take_stdout(&mut self) -> Result<ChildStdout> {
        self.child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("{}: stdout is not piped or already taken", self.name))
    }

    /// The last lines of the child's stderr.
    pub fn stderr_tail(&self) -> String {
        let s = fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Fails if the child has exited.
    pub fn alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(st)) => bail!(
                "{} exited early ({st}); stderr ({}):\n{}",
                self.name,
                self.stderr.display(),
                self.stderr_tail()
            ),
            Err(e) => Err(anyhow!("{}: wait failed: {e}", self.name)),
        }
    }

    /// Waits for `path` to exist (a --ready-file), failing if the child exits first.
    pub fn wait_file(&mut self, path: &Path, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if path.exists() {
                return Ok(Instant::now());
            }
            self.alive()?;
            if Instant::now() > deadline {
                bail!(
                    "{}: {} did not appear within {timeout:?}; stderr:\n{}",
                    self.name,
                    path.display(),
                    self.stderr_tail()
                );
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Kills the child (SIGKILL to its pid) and reaps it.
    /// SIGTERM, then waits for the exit (SIGKILL after `timeout`); true if it exited by itself.
    pub fn terminate(&mut self, timeout: Duration) -> Result<bool> {
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("running kill")?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(true);
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        Ok(false)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
