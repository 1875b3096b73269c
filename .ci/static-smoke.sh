#!/usr/bin/env bash
# The static binary must run: start kube-sim and let the static faro discover it.
set -euo pipefail
bin=${1:?usage: static-smoke.sh PATH-TO-FARO}
cargo build -q --release -p kube-sim
dir=$(mktemp -d)
trap 'kill "$sim" 2>/dev/null || true; rm -rf "$dir"' EXIT
target/release/kube-sim --port 0 --kubeconfig "$dir/kubeconfig" > "$dir/url" &
sim=$!
for _ in $(seq 100); do [ -s "$dir/url" ] && break; sleep 0.1; done
n=$(KUBECONFIG="$dir/kubeconfig" "$bin" discover --watchable -o name | grep -c '/')
grep -qx 'v1/pods' < <(KUBECONFIG="$dir/kubeconfig" "$bin" discover -o name) || { echo "static faro: v1/pods missing"; exit 1; }
echo "static faro discovered $n watchable resources from kube-sim"
