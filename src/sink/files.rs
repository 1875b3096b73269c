//! The files `--output-dir` makes: `DIR/logs/events-YYYYMMDD-HHMMSS.json` and
//! `DIR/logs/faro-YYYYMMDD-HHMMSS.log`, readable only by their owner.
//!
//! The names are predictable, so the files are created as nobody else can have prepared them:
//! `O_CREAT|O_EXCL|O_NOFOLLOW` with mode 0600. A name that exists already (a file, a symbolic
//! link planted there, the files of another run started in the same second) is never opened:
//! the files get the next free suffix (`-1`, `-2`, …) instead. `DIR/logs` is created 0700, and
//! an output directory that is a symbolic link is refused, so that a link cannot redirect the
//! files elsewhere without the user seeing the real path.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::Context;

use crate::exit::UsageError;

/// How many suffixes are tried before giving up (someone is racing us, or the directory is
/// full of our names).
const MAX_SUFFIX: u32 = 1000;

/// `YYYYMMDD-HHMMSS` (UTC) for output file names.
pub fn file_stamp(time: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(time).to_string(); // 2026-11-23T10:00:00Z
    text.chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect::<String>()
        .replace('T', "-")
}

/// Creates a file that did not exist, without following a symbolic link, readable only by its
/// owner.
fn create_new_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// `events-20261123-101500` + `-2` + `.json`.
fn with_suffix(stem: &str, n: u32, ext: &str) -> String {
    if n == 0 {
        format!("{stem}.{ext}")
    } else {
        format!("{stem}-{n}.{ext}")
    }
}

/// A file faro created and writes to, with the path it was created at.
#[derive(Debug)]
pub struct PrivateFile {
    /// Where it was created (reopened there after it is moved away).
    pub path: PathBuf,
    /// The open file.
    pub file: File,
}

impl PrivateFile {
    /// Creates a fresh file at `path`, or at the first free suffixed sibling of it.
    fn create_at(path: &Path) -> io::Result<PrivateFile> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (stem, ext) = name.rsplit_once('.').unwrap_or((&name, ""));
        for n in 0..MAX_SUFFIX {
            let candidate = dir.join(with_suffix(stem, n, ext));
            match create_new_private(&candidate) {
                Ok(file) => {
                    return Ok(PrivateFile {
                        path: candidate,
                        file,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} and {MAX_SUFFIX} suffixed names exist", path.display()),
        ))
    }

    /// After `SIGHUP`: if the file was moved or removed (logrotate), writes go on in a fresh
    /// file at the original path. A file still at its path is kept. Returns whether it changed.
    pub fn reopen(&mut self) -> io::Result<bool> {
        let current = self.file.metadata()?;
        let same = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|at| at.dev() == current.dev() && at.ino() == current.ino());
        if same {
            return Ok(false);
        }
        self.file.flush()?;
        *self = PrivateFile::create_at(&self.path)?;
        Ok(true)
    }
}

/// The output files of a run.
#[derive(Debug)]
pub struct OutputFiles {
    /// The events file, when events go to a file.
    pub events: Option<PrivateFile>,
    /// The text log.
    pub log: PrivateFile,
}

impl OutputFiles {
    /// Creates `DIR/logs` (0700) if needed and the files of a run started now. The two files
    /// share their name's time stamp and suffix.
    pub fn create(dir: &Path, events: bool) -> anyhow::Result<OutputFiles> {
        let logs = logs_dir(dir)?;
        let stamp = file_stamp(SystemTime::now());
        for n in 0..MAX_SUFFIX {
            let log_path = logs.join(with_suffix(&format!("faro-{stamp}"), n, "log"));
            let log = match create_new_private(&log_path) {
                Ok(file) => PrivateFile {
                    path: log_path,
                    file,
                },
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("creating {}", log_path.display()));
                }
            };
            if !events {
                return Ok(OutputFiles { events: None, log });
            }
            let events_path = logs.join(with_suffix(&format!("events-{stamp}"), n, "json"));
            match create_new_private(&events_path) {
                Ok(file) => {
                    return Ok(OutputFiles {
                        events: Some(PrivateFile {
                            path: events_path,
                            file,
                        }),
                        log,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // Keep the pair's names equal: give this suffix up.
                    let _ = std::fs::remove_file(&log.path);
                    continue;
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&log.path);
                    return Err(e).with_context(|| format!("creating {}", events_path.display()));
                }
            }
        }
        anyhow::bail!(
            "no free file name in {} for this second after {MAX_SUFFIX} tries",
            logs.display()
        )
    }
}

/// `DIR/logs`, made 0700 when faro makes it. The output directory and `logs` must not be
/// symbolic links.
fn logs_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    refuse_symlink(dir)?;
    let logs = dir.join("logs");
    refuse_symlink(&logs)?;
    match std::fs::metadata(&logs) {
        Ok(m) if m.is_dir() => Ok(logs),
        Ok(_) => Err(UsageError(format!(
            "output directory: {} exists and is not a directory",
            logs.display()
        ))
        .into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&logs)
                .with_context(|| format!("creating output directory {}", logs.display()))?;
            Ok(logs)
        }
        Err(e) => Err(e).with_context(|| format!("reading output directory {}", logs.display())),
    }
}

/// A symbolic link as output directory is a usage error: the user names the real path.
fn refuse_symlink(path: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            let target = std::fs::canonicalize(path)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "a path that does not resolve".to_owned());
            Err(UsageError(format!(
                "output directory: {} is a symbolic link (to {target}); faro does not write through links it did not make: pass the real path",
                path.display()
            ))
            .into())
        }
        _ => Ok(()),
    }
}

/// The text log file, shared by the logger and the `SIGHUP` handler.
#[derive(Debug)]
pub struct LogFile(Mutex<PrivateFile>);

impl LogFile {
    /// Wraps the log file.
    pub fn new(file: PrivateFile) -> LogFile {
        LogFile(Mutex::new(file))
    }

    fn file(&self) -> std::sync::MutexGuard<'_, PrivateFile> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// See [`PrivateFile::reopen`].
    pub fn reopen(&self) -> io::Result<bool> {
        self.file().reopen()
    }

    /// Where it is now.
    pub fn path(&self) -> PathBuf {
        self.file().path.clone()
    }
}

impl Write for &LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file().file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn file_stamps_are_compact_utc() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400 + 3_661);
        assert_eq!(file_stamp(t), "19700102-010101");
    }

    #[test]
    fn an_existing_name_or_link_is_never_opened_and_new_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "").unwrap();
        let planted = dir.path().join("events.json");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        std::fs::write(dir.path().join("events-1.json"), "").unwrap();
        std::fs::set_permissions(
            dir.path().join("events-1.json"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        let mut file = PrivateFile::create_at(&planted).unwrap();
        assert_eq!(file.path, dir.path().join("events-2.json"));
        file.file.write_all(b"x\n").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"");
        let mode = file.file.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn reopen_starts_a_fresh_file_only_when_the_old_one_was_moved() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = PrivateFile::create_at(&dir.path().join("a.log")).unwrap();
        file.file.write_all(b"one\n").unwrap();
        assert!(!file.reopen().unwrap(), "still in place");
        std::fs::rename(dir.path().join("a.log"), dir.path().join("a.log.1")).unwrap();
        assert!(file.reopen().unwrap());
        file.file.write_all(b"two\n").unwrap();
        assert_eq!(std::fs::read(dir.path().join("a.log")).unwrap(), b"two\n");
        assert_eq!(std::fs::read(dir.path().join("a.log.1")).unwrap(), b"one\n");
    }
}
