//! What an adversarial user found (issue "Hardening"): output files that cannot be hijacked, a
//! stop that always finishes, SIGHUP, fail-closed redaction, config validation and bounded
//! reads, a full disk, an unwritable ready file, and clearer messages. Each test fails on the
//! code before the fix.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::util::{Env, PATIENCE, configmap, decode, file_starting_with, stderr};

/// The file names a run started at `t` would use.
fn stamp(t: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(t).to_string();
    text.chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect::<String>()
        .replace('T', "-")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

fn watch_config(env: &Env) -> PathBuf {
    env.write("c.yaml", "resources:\n  - gvr: v1/configmaps\n")
}

#[test]
fn planted_links_and_existing_files_at_the_predicted_names_are_never_written() {
    let env = Env::start();
    let config = watch_config(&env);
    let out = env.path("out");
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let victim = env.path("victim");
    std::fs::write(&victim, "").unwrap();
    // The names of the next seconds: links for the events file, 0666 files for the log.
    let now = SystemTime::now();
    for s in 0..8 {
        let stamp = stamp(now + Duration::from_secs(s));
        std::os::unix::fs::symlink(&victim, logs.join(format!("events-{stamp}.json"))).unwrap();
        let open = logs.join(format!("faro-{stamp}.log"));
        std::fs::write(&open, "").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    env.apply(&configmap("default", "a", &[], "1"));
    let done = env.run_faro(&[
        "watch",
        "--config",
        config.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
        "--auto-shutdown",
        "1s",
    ]);
    assert!(done.status.success(), "{}", stderr(&done));
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"",
        "the link's target is untouched"
    );
    let written: Vec<PathBuf> = files_in(&logs)
        .into_iter()
        .filter(|p| {
            let m = std::fs::symlink_metadata(p).unwrap();
            m.is_file() && m.len() > 0
        })
        .collect();
    assert_eq!(written.len(), 2, "one events file and one log: {written:?}");
    for file in &written {
        assert!(
            file.to_string_lossy().contains("-1."),
            "a suffixed name: {}",
            file.display()
        );
        assert!(std::fs::symlink_metadata(file).unwrap().is_file());
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    let events = written
        .iter()
        .find(|p| p.to_string_lossy().contains("events-"))
        .unwrap();
    let lines = std::fs::read_to_string(events).unwrap();
    assert!(lines.contains("\"name\":\"a\""), "{lines}");
}

#[test]
fn the_output_directory_is_made_private_and_two_runs_in_one_second_get_two_files() {
    let env = Env::start();
    let config = watch_config(&env);
    let out = env.path("fresh");
    let run = || {
        env.faro()
            .args([
                "watch",
                "--config",
                config.to_str().unwrap(),
                "--output-dir",
                out.to_str().unwrap(),
                "--auto-shutdown",
                "1s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (run(), run());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let logs = out.join("logs");
    assert_eq!(mode(&logs), 0o700, "DIR/logs is made 0700");
    let files = files_in(&logs);
    let events = files
        .iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events-")
        })
        .count();
    assert_eq!(events, 2, "never one file for two runs: {files:?}");
    assert_eq!(files.len(), 4, "{files:?}");
}

#[test]
fn an_output_directory_that_is_a_symlink_is_refused() {
    let env = Env::start();
    let config = watch_config(&env);
    let real = env.path("real");
    std::fs::create_dir_all(&real).unwrap();
    let link = env.path("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = env.run_faro(&[
        "watch",
        "--config",
        config.to_str().unwrap(),
        "--output-dir",
        link.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("is a symbolic link") && err.contains(real.to_str().unwrap()),
        "{err}"
    );
    assert!(
        files_in(&real).is_empty(),
        "nothing written through the link"
    );
}

#[test]
fn a_stop_with_stdout_blocked_ends_within_the_shutdown_timeout_saying_what_is_missing() {
    let env = Env::start();
    env.admin("POST", "/_sim/load?namespace=big&count=3000&size=256");
    let config = watch_config(&env);
    let out_dir = env.path("out");
    // stdout is a pipe nobody reads: it fills after 64 KiB.
    let mut child = env
        .faro()
        .args([
            "watch",
            "--config",
            config.to_str().unwrap(),
            "--output-dir",
            out_dir.to_str().unwrap(),
            "--shutdown-timeout",
            "2s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = out_dir.join("logs");
    let start = Instant::now();
    while std::fs::read_dir(&logs).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("events-"))
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum::<u64>()
    }) < 32_768
    {
        assert!(start.elapsed() < PATIENCE, "no events written");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(15),
            "still running 15 s after SIGTERM with a shutdown timeout of 2 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "waited for the drain"
    );
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    let last = err.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("faro: error: the graceful stop did not finish within 2s: ")
            && last.contains("events did not reach stdout"),
        "{err}"
    );
    // The events file is never behind stdout, and holds only complete lines.
    let events = file_starting_with(&logs, "events-");
    let text = std::fs::read_to_string(&events).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert!(decode(&lines).len() > 100);
}

#[test]
fn sighup_reopens_moved_files_and_loses_no_line() {
    let env = Env::start();
    let config = watch_config(&env);
    let out = env.path("out");
    let faro = env.spawn_ready(&[
        "watch",
        "--config",
        config.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
    ]);
    let logs = out.join("logs");
    let events = file_starting_with(&logs, "events-");
    let log = file_starting_with(&logs, "faro-");
    env.apply(&configmap("default", "before", &[], "1"));
    faro.wait_for("before", |e| e.name == "before");
    std::fs::rename(&events, logs.join("rotated-events.json")).unwrap();
    std::fs::rename(&log, logs.join("rotated-faro.log")).unwrap();
    faro.signal("HUP");
    faro.wait_stderr("SIGHUP");
    env.apply(&configmap("default", "after", &[], "1"));
    faro.wait_for("after", |e| e.name == "after");
    let done = faro.stop();
    assert_eq!(
        done.status.code(),
        Some(0),
        "SIGHUP does not kill faro: {}",
        done.stderr
    );
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let old = read(&logs.join("rotated-events.json"));
    let new = read(&events);
    assert!(
        old.contains("\"before\"") && !old.contains("\"after\""),
        "{old}"
    );
    assert!(
        new.contains("\"after\"") && !new.contains("\"before\""),
        "{new}"
    );
    assert_eq!(mode(&events), 0o600);
    assert!(
        read(&log).contains("reopened"),
        "the log goes on in a fresh file"
    );
}

#[test]
fn secret_values_of_any_shape_are_redacted() {
    let env = Env::start();
    let body = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"odd","namespace":"default"},"data":"U0VDUkVU","stringData":["cGxhaW4="]}"#;
    let reply = kube_sim::request(
        env.sim.addr(),
        "POST",
        "/api/v1/namespaces/default/secrets",
        &[("Content-Type", "application/json")],
        body,
    )
    .unwrap();
    assert!(reply.status < 300, "kube-sim stores it: {}", reply.status);
    let faro = env.watch("resources:\n  - gvr: v1/secrets\n", &["--include-object"]);
    let odd = faro.wait_for("the odd secret", |e| e.name == "odd");
    let object = odd.object.unwrap();
    assert_eq!(object["data"], "<redacted>");
    assert_eq!(object["stringData"], "<redacted>");
    let all = faro.lines().join("\n");
    assert!(
        !all.contains("U0VDUkVU") && !all.contains("cGxhaW4="),
        "{all}"
    );
}

#[test]
fn invalid_names_and_unreadable_configs_are_refused_at_load() {
    let env = Env::start();
    let cases: &[(&str, &str)] = &[
        (
            "resources:\n  - gvr: v1/configmaps\n    name_selector: \"a,b\"\n",
            "c.yaml:3:20: name_selector: \"a,b\" is not a valid object name",
        ),
        (
            "resources:\n  - gvr: v1/configmaps\n    namespace_names: [\"Bad_NS!\"]\n",
            "c.yaml:3:23: namespace_names: \"Bad_NS!\" is not a valid namespace name",
        ),
        (
            "resources:\n  - gvr: v1/pods\n---\nresources: []\n",
            "one YAML document expected",
        ),
        (
            "cluster_wide_threshold: -1\nresources:\n  - gvr: v1/pods\n",
            "c.yaml:1:25: cluster_wide_threshold:",
        ),
    ];
    for (yaml, want) in cases {
        let path = env.write("c.yaml", yaml);
        let out = env.run_faro(&["watch", "--config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{yaml}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{yaml}: {}", stderr(&out));
    }
    let big = env.path("big.yaml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(17 << 20)
        .unwrap();
    for (path, want) in [
        ("/dev/zero", "is not a regular file"),
        (big.to_str().unwrap(), "is larger than 16 MiB"),
    ] {
        let started = Instant::now();
        let out = env.run_faro(&["watch", "--config", path]);
        assert_eq!(out.status.code(), Some(2), "{path}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{path}: {}", stderr(&out));
        assert!(started.elapsed() < Duration::from_secs(5), "{path}");
    }
}

#[test]
fn a_request_the_server_rejects_stops_that_stream_once_and_the_others_go_on() {
    let env = Env::start();
    env.admin("POST", "/_sim/fail?code=400&count=-1&path=/secrets");
    let faro = env.watch(
        "resources:\n  - gvr: v1/secrets\n  - gvr: v1/configmaps\n",
        &[],
    );
    env.apply(&configmap("default", "still-flowing", &[], "1"));
    faro.wait_for("a configmap", |e| e.name == "still-flowing");
    std::thread::sleep(Duration::from_secs(2));
    let requests = env.admin("GET", "/_sim/requests");
    let to_secrets = requests["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/secrets")))
        .count();
    assert_eq!(to_secrets, 1, "no retry loop: {requests}");
    let done = faro.stop();
    assert_eq!(
        done.stderr.matches("rejected a request faro built").count(),
        1,
        "{}",
        done.stderr
    );
    assert!(done.status.success(), "{}", done.stderr);
}

#[test]
fn a_full_disk_leaves_no_partial_line_and_exits_one() {
    // A 64 KiB tmpfs as the output directory, in a mount namespace of the test's own.
    let unshare = ["--user", "--map-root-user", "--mount"];
    assert!(
        Command::new("unshare")
            .args(unshare)
            .arg("true")
            .status()
            .is_ok_and(|s| s.success()),
        "this test needs util-linux's `unshare --user --map-root-user --mount`"
    );
    let env = Env::start();
    env.admin("POST", "/_sim/load?namespace=big&count=3000&size=256");
    let config = watch_config(&env);
    let disk = env.path("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let copy = env.path("copy.json");
    // The mount ends with the namespace: copy the events file out before it does.
    let script = format!(
        "mount -t tmpfs -o size=64k tmpfs {disk} || exit 99\n\
         {faro} watch --config {config} --output-dir {disk}/o\n\
         rc=$?\n\
         cat {disk}/o/logs/events-* > {copy}\n\
         exit $rc\n",
        disk = disk.display(),
        faro = env!("CARGO_BIN_EXE_faro"),
        config = config.display(),
        copy = copy.display(),
    );
    let out = Command::new("unshare")
        .args(unshare)
        .args(["sh", "-c", &script])
        .env("KUBECONFIG", env.kubeconfig())
        .env("HOME", env.path(""))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("No space left on device"),
        "{}",
        stderr(&out)
    );
    let text = std::fs::read_to_string(&copy).unwrap();
    assert!(!text.is_empty());
    assert!(
        text.ends_with('\n'),
        "the last line is complete: …{}",
        &text[text.len().saturating_sub(80)..]
    );
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    decode(&lines);
}

#[test]
fn an_unwritable_ready_file_is_a_usage_error_before_watching() {
    let env = Env::start();
    let config = watch_config(&env);
    let started = Instant::now();
    let out = env.run_faro(&[
        "watch",
        "--config",
        config.to_str().unwrap(),
        "--ready-file",
        "/nonexistent/dir/ready",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--ready-file /nonexistent/dir/ready"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let watches = env.admin("GET", "/_sim/watches");
    assert_eq!(watches["count"], 0, "nothing was watched");
}

#[test]
fn messages_name_the_whole_flag_and_a_bad_certificate_authority_at_load() {
    let env = Env::start();
    let out = env.run_faro(&["watch", "-bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("'--bogus'"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("'-b'"), "{}", stderr(&out));

    use base64_free::encode;
    for ca in [
        encode(b"not a certificate"),
        encode(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
    ] {
        let kubeconfig = env.write(
            "tls.yaml",
            &format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"https://127.0.0.1:1\", certificate-authority-data: \"{ca}\"}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user: {{token: t}}\n"
            ),
        );
        let started = Instant::now();
        let out = env.run_faro(&["--kubeconfig", kubeconfig.to_str().unwrap(), "discover"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(started.elapsed() < Duration::from_secs(5), "said at load");
        let err = stderr(&out);
        assert!(
            err.contains("certificate") && !err.contains("cannot reach"),
            "{err}"
        );
    }
}

/// Base64 without a dependency (tests only need to encode a few bytes).
mod base64_free {
    pub fn encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
