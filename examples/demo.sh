#!/usr/bin/env bash
# `make demo`: faro without a cluster. Builds faro and kube-sim (the in-memory API server the
# tests use), starts kube-sim, runs `faro watch` on examples/watch.yaml and makes changes with
# kubectl; faro's JSON lines appear on stdout, its log on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building faro and kube-sim" >&2
cargo build -q --release -p faro -p kube-sim
faro=target/release/faro

dir=$(mktemp -d)
cleanup() {
  [ -n "${faro_pid:-}" ] && kill "$faro_pid" 2>/dev/null || true
  [ -n "${sim_pid:-}" ] && kill "$sim_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

target/release/kube-sim --port 0 --kubeconfig "$dir/kubeconfig" > "$dir/url" 2> "$dir/sim.log" &
sim_pid=$!
for _ in $(seq 100); do [ -s "$dir/url" ] && break; sleep 0.1; done
[ -s "$dir/url" ] || { cat "$dir/sim.log" >&2; echo "kube-sim did not start" >&2; exit 1; }
echo "== kube-sim listening on $(head -1 "$dir/url")" >&2
export KUBECONFIG="$dir/kubeconfig"
kubectl() { command kubectl --cache-dir "$dir/cache" "$@"; }

echo "== faro watch --config examples/watch.yaml | jq -c '{eventType, gvr, namespace, name, resourceVersion, initial}'" >&2
"$faro" watch --config examples/watch.yaml --ready-file "$dir/ready" \
  > >(jq -c '{eventType, gvr, namespace, name, resourceVersion, initial}') &
faro_pid=$!
for _ in $(seq 100); do [ -f "$dir/ready" ] && break; sleep 0.1; done

step() { echo "== kubectl $*" >&2; kubectl "$@" >/dev/null; sleep 0.5; }
step apply -f examples/manifests/10-shop.yaml
step label configmap checkout -n shop-eu release=2026-11
step apply -f examples/manifests/20-widgets-crd.yaml
step apply -f examples/manifests/30-widget.yaml
step scale deployment storefront -n shop-eu --replicas=3
step delete namespace shop-eu
echo "== stopping faro (SIGTERM: drain and exit 0)" >&2
kill -TERM "$faro_pid"
wait "$faro_pid"
faro_pid=
sleep 0.2 # let jq print the last lines
