//! Flags, help, version and usage errors of the binary.

use crate::util::{Env, stderr, stdout};
use std::process::Command;

fn faro(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_faro"))
        .args(args)
        .env("HOME", "/nonexistent")
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("running faro")
}

#[test]
fn version_and_help_exit_zero() {
    let out = faro(&["--version"]);
    assert!(out.status.success());
    assert!(stdout(&out).starts_with("faro "), "{}", stdout(&out));
    let out = faro(&["--help"]);
    assert!(out.status.success());
    for sub in ["watch", "workload", "discover"] {
        assert!(stdout(&out).contains(sub), "help lists {sub}");
    }
    assert!(!stdout(&out).contains("generate"), "generate is hidden");
    let out = faro(&["workload", "--help"]);
    assert!(stdout(&out).contains("-workloadgvrs") || stdout(&out).contains("--workloadgvrs"));
}

#[test]
fn unknown_flags_and_subcommands_exit_two() {
    for args in [
        &["bogus"][..],
        &["discover", "-foo"][..],
        &["discover", "--foo"][..],
        &["watch"][..],
        &["workload", "-workloadgvrs", "v1/pods"][..],
        &["workload", "-label", "x", "-workloadgvrs", "pods"][..],
        &["discover", "-o", "yaml"][..],
    ] {
        let out = faro(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?}");
    }
}

#[test]
fn single_dash_long_flags_reach_the_subcommand() {
    // The config does not exist: the error must name it, proving -config was understood.
    for args in [
        &["watch", "-config", "/nonexistent/c.yaml"][..],
        &["watch", "-config=/nonexistent/c.yaml"][..],
        &["watch", "--config", "/nonexistent/c.yaml"][..],
    ] {
        let out = faro(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("/nonexistent/c.yaml"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn missing_kubeconfig_is_one_clear_line_and_exit_one() {
    let out = faro(&["discover"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("no kubeconfig found: set KUBECONFIG or pass --kubeconfig"),
        "{err}"
    );
}

#[test]
fn bad_workload_flags_exit_two_with_a_clear_message() {
    let env = Env::start();
    for (args, words) in [
        (
            &[
                "workload",
                "-label",
                "team",
                "-pattern",
                "a(",
                "-workloadgvrs",
                "v1/pods",
            ][..],
            "-pattern",
        ),
        (
            &[
                "workload",
                "-label",
                "team",
                "-namespace-pattern",
                "[x",
                "-workloadgvrs",
                "v1/pods",
            ][..],
            "-namespace-pattern",
        ),
        (
            &["workload", "-label", "bad key!", "-workloadgvrs", "v1/pods"][..],
            "-label",
        ),
        (
            &[
                "workload",
                "-label",
                "team",
                "-allowedgvrs",
                "v1/pods",
                "-deniedgvrs",
                "v1/pods",
            ][..],
            "both",
        ),
        (&["workload", "-label", "team"][..], "nothing to watch"),
    ] {
        let out = env.run_faro(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(words), "{args:?}: {}", stderr(&out));
    }
}
