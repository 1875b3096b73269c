#!/usr/bin/env bash
# `make bench`: builds the release binaries (faro, kube-sim and the faro-bench driver), makes
# sure hyperfine is installed (Debian package; case 3 falls back to the driver's own timing loop
# if apt cannot install it), then runs the driver, which writes BENCHMARKS.md and
# bench/results.json. Extra arguments go to the driver (see `target/release/faro-bench --help`),
# e.g. `bash bench/run.sh --cases throughput --runs 5`.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
start=$(date +%s)

if ! command -v hyperfine >/dev/null 2>&1; then
    echo "bench: installing hyperfine with apt-get" >&2
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
    if ! { $sudo apt-get install -y -qq hyperfine >/dev/null 2>&1 ||
        { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq hyperfine >/dev/null 2>&1; }; }; then
        echo "bench: hyperfine could not be installed; discovery will be timed by the driver's loop" >&2
    fi
fi

echo "bench: building release binaries" >&2
$CARGO build --release -p faro -p kube-sim -p faro-bench
built=$(date +%s)

target/release/faro-bench --build-seconds $((built - start)) "$@"
echo "bench: make bench took $(($(date +%s) - start)) s (build $((built - start)) s)" >&2
