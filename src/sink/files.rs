//! The files `--output-dir` makes: `DIR/logs/events-YYYYMMDD-HHMMSS.json` and
//! `DIR/logs/faro-YYYYMMDD-HHMMSS.log`, readable only by their owner.
//!
//! The names are predictable, so the files are created as nobody else can have prepared them:
//! `O_CREAT|O_EXCL|O_NOFOLLOW` with mode 0600. A name that exists already (a file, a symbolic
//! link planted there, the files of another run started in the same second) is never opened:
//! the files get the next free suffix (`-1`, `-2`, …) instead. `DIR/logs` is created 0700, and
//! an output directory that is a symbolic link is refused, so that a link cannot redirect the
//! files elsewhere without the user seeing the real path.
//!
//! # Rotation
//!
//! With `--max-file-size`, every events file has a three-digit sequence number within its
//! second: `events-YYYYMMDD-HHMMSS-NNN.json`, so that a plain `ls` lists them in the order they
//! were written (`events-X.json` would sort after `events-X-1.json`, and `-10` before `-2`).
//! A file is closed only after the line that reaches the limit, so it holds at most the limit
//! plus one line; a line is never split. `--max-files N` keeps the newest N events files that
//! this run created and deletes older ones; files of other runs, and files moved away (by
//! logrotate, before `SIGHUP`), are never deleted. The text log is not rotated.

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

/// `--max-file-size` and `--max-files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A file is closed after the line that makes it reach this many bytes.
    pub max_size: u64,
    /// Events files of this run kept (None: all).
    pub max_files: Option<usize>,
}

/// The rotation of the events file.
#[derive(Debug)]
pub struct Rotation {
    limits: Limits,
    dir: PathBuf,
    /// Stamp and sequence number of the newest file.
    stamp: String,
    seq: u32,
    /// The files this run created and still owns, oldest first, with their identity (a file
    /// moved away and replaced by another at its path is not ours to delete).
    created: std::collections::VecDeque<(PathBuf, u64, u64)>,
}

/// Highest sequence number within one second; beyond it the next file waits for the next
/// second (a thousand files a second would take a gigabyte per second at the 1 MiB minimum).
const MAX_SEQ: u32 = 999;

fn sequenced(stamp: &str, seq: u32) -> String {
    format!("events-{stamp}-{seq:03}.json")
}

impl Rotation {
    /// Creates the first events file of a rotating run in `logs`.
    fn first(logs: &Path, stamp: &str, limits: Limits) -> io::Result<(Rotation, PrivateFile)> {
        let mut rotation = Rotation {
            limits,
            dir: logs.to_owned(),
            stamp: stamp.to_owned(),
            seq: 0,
            created: Default::default(),
        };
        let file = rotation.create(stamp.to_owned(), 0)?;
        Ok((rotation, file))
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Creates the first free `events-STAMP-NNN.json` from `seq` on.
    fn create(&mut self, stamp: String, from: u32) -> io::Result<PrivateFile> {
        for seq in from..=MAX_SEQ {
            let path = self.dir.join(sequenced(&stamp, seq));
            match create_new_private(&path) {
                Ok(file) => {
                    let meta = file.metadata()?;
                    self.created
                        .push_back((path.clone(), meta.dev(), meta.ino()));
                    self.stamp = stamp;
                    self.seq = seq;
                    return Ok(PrivateFile { path, file });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("every events-{stamp}-NNN.json name is taken"),
        ))
    }

    /// Closes `current` (flushed: its last line is complete) and opens the next file, then
    /// deletes the oldest files beyond `--max-files`.
    pub fn next(&mut self, current: &mut PrivateFile) -> io::Result<()> {
        current.file.flush()?;
        let next = loop {
            let stamp = file_stamp(SystemTime::now());
            let from = if stamp == self.stamp { self.seq + 1 } else { 0 };
            if from <= MAX_SEQ {
                break self.create(stamp, from)?;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        *current = next;
        self.prune();
        Ok(())
    }

    /// After `SIGHUP`: if `current` was moved away, it is the user's now (never deleted) and
    /// writing goes on in a new file. Returns whether it did.
    pub fn reopen(&mut self, current: &mut PrivateFile) -> io::Result<bool> {
        let meta = current.file.metadata()?;
        let still_there = std::fs::symlink_metadata(&current.path)
            .is_ok_and(|at| at.dev() == meta.dev() && at.ino() == meta.ino());
        if still_there {
            return Ok(false);
        }
        self.created
            .retain(|(_, dev, ino)| !(*dev == meta.dev() && *ino == meta.ino()));
        self.next(current)?;
        Ok(true)
    }

    fn prune(&mut self) {
        let Some(keep) = self.limits.max_files else {
            return;
        };
        while self.created.len() > keep {
            let Some((path, dev, ino)) = self.created.pop_front() else {
                break;
            };
            let ours =
                std::fs::symlink_metadata(&path).is_ok_and(|at| at.dev() == dev && at.ino() == ino);
            if ours && let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!("cannot delete the old events file {}: {e}", path.display());
            }
        }
    }
}

/// Where to cut `json` (complete lines) so that a file of `len` bytes gets at most `max` bytes
/// plus the line that reaches `max`: the length of the part that goes into this file. All of
/// it when it fits; 0 when the file is full already.
pub fn cut(len: u64, max: u64, json: &[u8]) -> usize {
    let room = max.saturating_sub(len);
    if room == 0 {
        return 0;
    }
    if json.len() as u64 <= room {
        return json.len();
    }
    // The line holding the byte that reaches the limit (index room - 1) ends the file.
    let from = usize::try_from(room - 1).unwrap_or(usize::MAX);
    memchr::memchr(b'\n', &json[from..]).map_or(json.len(), |i| from + i + 1)
}

/// The output files of a run.
#[derive(Debug)]
pub struct OutputFiles {
    /// The events file, when events go to a file.
    pub events: Option<PrivateFile>,
    /// Its rotation (`--max-file-size`).
    pub rotation: Option<Rotation>,
    /// The text log.
    pub log: PrivateFile,
}

impl OutputFiles {
    /// Creates `DIR/logs` (0700) if needed and the files of a run started now. The two files
    /// share their name's time stamp and suffix.
    pub fn create(dir: &Path, events: bool, limits: Option<Limits>) -> anyhow::Result<OutputFiles> {
        let logs = logs_dir(dir)?;
        let stamp = file_stamp(SystemTime::now());
        if let Some(limits) = limits.filter(|_| events) {
            // Sequenced names: the log keeps the plain name, the events files are numbered.
            let log = PrivateFile::create_at(&logs.join(format!("faro-{stamp}.log")))
                .with_context(|| format!("creating the log file in {}", logs.display()))?;
            let (rotation, first) = Rotation::first(&logs, &stamp, limits)
                .with_context(|| format!("creating the events file in {}", logs.display()))?;
            return Ok(OutputFiles {
                events: Some(first),
                rotation: Some(rotation),
                log,
            });
        }
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
                return Ok(OutputFiles {
                    events: None,
                    rotation: None,
                    log,
                });
            }
            let events_path = logs.join(with_suffix(&format!("events-{stamp}"), n, "json"));
            match create_new_private(&events_path) {
                Ok(file) => {
                    return Ok(OutputFiles {
                        events: Some(PrivateFile {
                            path: events_path,
                            file,
                        }),
                        rotation: None,
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
    fn a_file_ends_with_the_line_that_reaches_the_limit() {
        let json = b"aaaa\nbbbb\ncccc\n";
        for (len, max, want) in [
            (0, 100, json.len()), // all fits
            (0, 15, json.len()),  // exactly the limit
            (0, 5, 5),            // the first line reaches it
            (0, 6, 10),           // the second line crosses it
            (0, 1, 5),            // one byte of room: the whole first line
            (10, 10, 0),          // full: nothing more, rotate first
            (12, 10, 0),          // over (one line past the limit)
            (8, 10, 5),           // 2 bytes of room: the first line crosses
        ] {
            assert_eq!(cut(len, max, json), want, "len {len} max {max}");
        }
    }

    #[test]
    fn rotation_keeps_the_newest_files_and_never_deletes_a_moved_one() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_size: 1 << 20,
            max_files: Some(2),
        };
        let (mut rotation, mut current) =
            Rotation::first(dir.path(), "20261202-101500", limits).unwrap();
        assert!(current.path.ends_with("events-20261202-101500-000.json"));
        let first = current.path.clone();
        rotation.next(&mut current).unwrap();
        let second = current.path.clone();
        // Moved away by logrotate, then SIGHUP: the moved file is the user's.
        let moved = dir.path().join("moved.json");
        std::fs::rename(&second, &moved).unwrap();
        assert!(rotation.reopen(&mut current).unwrap());
        assert!(!rotation.reopen(&mut current).unwrap(), "still in place");
        rotation.next(&mut current).unwrap();
        rotation.next(&mut current).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left.len(), 3, "two of ours and the moved one: {left:?}");
        assert!(left.contains(&"moved.json".to_owned()));
        assert!(!first.exists(), "the oldest of ours is gone");
        let mut sorted = left.clone();
        sorted.retain(|n| n.starts_with("events-"));
        assert_eq!(
            sorted.last().unwrap(),
            current.path.file_name().unwrap().to_str().unwrap()
        );
    }

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
