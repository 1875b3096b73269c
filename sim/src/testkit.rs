//! Helpers for tests that drive a server with the real kubectl: [`Kubectl`] runs
//! `/usr/bin/kubectl` (or `$FARO_TEST_KUBECTL`) with its own kubeconfig, HOME and discovery
//! cache, so discovery never leaks from one test into another.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::handle::SimHandle;

/// The kubectl binary tests run.
pub fn kubectl_path() -> PathBuf {
    std::env::var_os("FARO_TEST_KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/kubectl"))
}

/// kubectl bound to one server, with a private temporary directory.
#[derive(Debug)]
pub struct Kubectl {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    cache: PathBuf,
    bin: PathBuf,
}

impl Kubectl {
    /// A kubectl for `sim` (panics if the temporary directory cannot be made: tests only).
    pub fn new(sim: &SimHandle) -> Kubectl {
        let dir = tempfile::tempdir().expect("creating a temporary directory for kubectl");
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig)
            .expect("writing the kubeconfig");
        let cache = dir.path().join("cache");
        Kubectl {
            kubeconfig,
            cache,
            bin: kubectl_path(),
            dir,
        }
    }

    /// The kubeconfig path (also usable by other clients, e.g. faro).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The private temporary directory (manifests may be written here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The command with kubeconfig, cache dir and HOME set, and `args` appended.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .env("HOME", self.dir.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null());
        c
    }

    /// Runs kubectl and returns its output (whatever the exit status).
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin.display()))
    }

    /// Runs kubectl, asserts success and returns stdout (panics with stderr otherwise).
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        if !out.status.success() {
            panic!(
                "kubectl {} failed ({}):\nstdout: {}\nstderr: {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes `yaml` to a temporary manifest and runs `kubectl apply -f` on it with `extra`
    /// arguments (asserting success); returns stdout.
    pub fn apply_yaml(&self, yaml: &str, extra: &[&str]) -> String {
        let path = self.write_manifest(yaml);
        let p = path.to_string_lossy().into_owned();
        let mut args = vec!["apply", "-f", p.as_str()];
        args.extend_from_slice(extra);
        self.ok(&args)
    }

    /// Writes a manifest into the private directory and returns its path.
    pub fn write_manifest(&self, yaml: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.dir.path().join(format!("manifest-{n}.yaml"));
        std::fs::write(&path, yaml).expect("writing a manifest");
        path
    }

    /// Spawns kubectl with piped stdout and stderr (for `get -w`).
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.bin.display()))
    }
}
