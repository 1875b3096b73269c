//! Events-file rotation: `--max-file-size`, `--max-files`, their config keys, and `SIGHUP`
//! after an external `mv` with rotation on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Env, PATIENCE, stderr};

/// The events files in `logs`, in name order.
fn events_files(logs: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(logs)
        .expect("logs dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("events-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    files
}

/// The names of the objects in a file's lines, checking each line is a JSON event.
fn names(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("events file");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} ends mid-line",
        path.display()
    );
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", path.display()));
            v["name"].as_str().expect("name").to_owned()
        })
        .collect()
}

fn wait(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_million_events_rotate_into_at_most_five_files_without_a_gap() {
    const N: u64 = 1_000_000;
    const MAX: u64 = 10 << 20;
    let env = Env::start();
    let pre = env.admin(
        "POST",
        &format!("/_sim/prerender?namespace=rot&count={N}&size=64"),
    );
    let base = pre["baseResourceVersion"].as_str().expect("rv").to_owned();
    let out = env.path("out");
    let faro = env.spawn_ready(&[
        "watch",
        "configmaps",
        "-n",
        "rot",
        "-o",
        "name",
        "--output-dir",
        out.to_str().unwrap(),
        "--max-file-size",
        "10MiB",
        "--max-files",
        "5",
    ]);
    let logs = out.join("logs");
    let last = format!("burst-{base}-{}", N - 1);
    env.admin("POST", "/_sim/burst");
    // Done when the newest file ends with the last object.
    wait(
        "the last event in the newest file",
        Duration::from_secs(300),
        || {
            events_files(&logs).last().is_some_and(|newest| {
                std::fs::read(newest).is_ok_and(|text| {
                    text.ends_with(b"\n")
                        && text[..text.len() - 1]
                            .rsplit(|b| *b == b'\n')
                            .next()
                            .is_some_and(|line| {
                                line.windows(last.len() + 2)
                                    .any(|w| w == format!("\"{last}\"").as_bytes())
                            })
                })
            })
        },
    );
    faro.signal("TERM");
    let (status, _, err) = faro.wait_exit_lines(PATIENCE);
    assert_eq!(status.code(), Some(0), "{err}");
    let files = events_files(&logs);
    assert!(
        (2..=5).contains(&files.len()),
        "at most 5 files remain: {files:?}"
    );
    let mut all = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let text = std::fs::read(file).expect("file");
        let size = text.len() as u64;
        let last_line = text[..text.len() - 1]
            .rsplit(|b| *b == b'\n')
            .next()
            .map_or(0, |l| l.len() as u64 + 1);
        assert!(
            size <= MAX + last_line,
            "{} is {size} bytes: more than 10 MiB + one line",
            file.display()
        );
        if i + 1 < files.len() {
            assert!(size >= MAX, "a file is closed only at the limit: {size}");
        }
        all.extend(names(file));
    }
    // The files in name order hold a contiguous tail of the burst, ending with its last event.
    let index = |name: &str| -> u64 {
        name.strip_prefix(&format!("burst-{base}-"))
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("unexpected object {name}"))
    };
    let first = index(&all[0]);
    for (k, name) in all.iter().enumerate() {
        assert_eq!(index(name), first + k as u64, "gap or repeat at line {k}");
    }
    assert_eq!(index(all.last().unwrap()), N - 1);
    assert!(
        first > 0,
        "older files were deleted (retention), so the tail starts later"
    );
}

#[test]
fn sighup_after_mv_starts_a_new_file_and_keeps_the_moved_one() {
    let env = Env::start();
    let out = env.path("out");
    let faro = env.spawn_ready(&[
        "watch",
        "configmaps",
        "-n",
        "hup",
        "-o",
        "json",
        "--output-dir",
        out.to_str().unwrap(),
        "--max-file-size",
        "1MiB",
        "--max-files",
        "1",
    ]);
    let logs = out.join("logs");
    env.admin("POST", "/_sim/load?namespace=hup&count=100&prefix=a-");
    faro.wait_until("100 events", |evs| evs.len() == 100);
    let files = events_files(&logs);
    assert_eq!(files.len(), 1);
    let moved = logs.join("moved.json");
    std::fs::rename(&files[0], &moved).expect("mv");
    faro.signal("HUP");
    faro.wait_stderr("SIGHUP");
    env.admin("POST", "/_sim/load?namespace=hup&count=100&prefix=b-");
    faro.wait_until("200 events", |evs| evs.len() == 200);
    let done = faro.stop();
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    // The moved file is the user's: kept whole though --max-files is 1.
    let old = names(&moved);
    assert_eq!(old.len(), 100);
    assert!(old.iter().all(|n| n.starts_with("a-")));
    let files = events_files(&logs);
    assert_eq!(files.len(), 1, "{files:?}");
    let new = names(&files[0]);
    assert_eq!(new.len(), 100);
    assert!(new.iter().all(|n| n.starts_with("b-")), "{new:?}");
}

#[test]
fn config_keys_rotate_and_flags_override_them() {
    let env = Env::start();
    let out = env.path("out");
    let config = env.write(
        "rotate.yaml",
        &format!(
            "output_dir: {}\njson_export: true\nmax_file_size: 1MiB\nmax_files: 2\nresources:\n  - gvr: v1/configmaps\n    namespace_names: [cfg]\n",
            out.display()
        ),
    );
    env.admin("POST", "/_sim/load?namespace=cfg&count=12000&size=64");
    // The flag wins over max_files: 2.
    let faro = env.spawn_ready(&[
        "watch",
        "--config",
        config.to_str().unwrap(),
        "--max-files",
        "3",
        "-o",
        "name",
    ]);
    faro.signal("TERM");
    let (status, _, err) = faro.wait_exit_lines(PATIENCE);
    assert_eq!(status.code(), Some(0), "{err}");
    let files = events_files(&out.join("logs"));
    assert_eq!(files.len(), 3, "{files:?}");
    let mut previous: Option<String> = None;
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        // events-YYYYMMDD-HHMMSS-NNN.json
        let parts: Vec<&str> = name.trim_end_matches(".json").split('-').collect();
        assert!(
            parts.len() == 4 && parts[1].len() == 8 && parts[2].len() == 6 && parts[3].len() == 3,
            "{name}"
        );
        if let Some(p) = &previous {
            assert!(p < &name);
        }
        previous = Some(name);
        assert!(std::fs::metadata(file).unwrap().len() <= (1 << 20) + 4096);
        assert!(!names(file).is_empty());
    }
}

#[test]
fn bad_rotation_settings_are_usage_errors() {
    let env = Env::start();
    let out = env.path("out");
    let out = out.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["--max-file-size", "10", "--output-dir", out],
            "below the minimum of 1MiB",
        ),
        (
            vec!["--max-file-size", "10XB", "--output-dir", out],
            "is not a size",
        ),
        (
            vec![
                "--max-file-size",
                "1MiB",
                "--max-files",
                "0",
                "--output-dir",
                out,
            ],
            "--max-files",
        ),
        (
            vec!["--max-files", "3", "--output-dir", out],
            "it needs --max-file-size",
        ),
        (vec!["--max-file-size", "10MiB"], "they need --output-dir"),
    ] {
        let mut all = vec!["watch", "configmaps"];
        all.extend(args.iter().copied());
        let run = env.run_faro(&all);
        assert_eq!(run.status.code(), Some(2), "{all:?}: {}", stderr(&run));
        assert!(stderr(&run).contains(needle), "{all:?}: {}", stderr(&run));
    }
    let config = env.write(
        "bad.yaml",
        "max_file_size: lots\nresources:\n  - gvr: v1/configmaps\n",
    );
    let run = env.run_faro(&["watch", "--config", config.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("bad.yaml:1:") && stderr(&run).contains("max_file_size"),
        "{}",
        stderr(&run)
    );
}
