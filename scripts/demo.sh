#!/usr/bin/env bash
# The main job: classifies the Fashion-MNIST test set with the network split across three processes on
# this machine (device -> edge -> cloud over mutual TLS on loopback, topology/local.yaml), after measuring
# the raw-offload baseline (topology/cloud-only.yaml), and prints the per-exit table compared with it.
# Builds, makes missing certificates, starts and stops the clusters (on failure and Ctrl-C too). Writes
# run/demo-report.json and run/demo-report.html; extra options go to branchy-device (e.g. --limit 1000).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

case "${1:-}" in -h|--help) echo "usage: $(basename "$0") [branchy-device options, e.g. --limit N]"; exit 0 ;; esac
cd "$REPO_ROOT"
ensure_packages openssl:openssl
ensure_built
model="$(topology_path topology/local.yaml model)"
[ -f "$model/model.json" ] || die "no trained model in $model; scripts/train-default.sh makes it again"
finish() {
    local status=$? log node
    [ "$status" -eq 0 ] || { say "the demo failed (exit $status); last lines of the node logs:"; for log in run/local/*.log; do [ ! -f "$log" ] || { say "--- $log"; tail -n 10 "$log" >&2; }; done; }
    scripts/cluster.sh down topology/local.yaml >&2 || true
    scripts/cluster.sh down topology/cloud-only.yaml >&2 || true
    for node in edge cloud; do   # each server logs its batch sizes when it stops
        [ "$status" -ne 0 ] || grep -h 'batches by size' "run/local/$node.log" 2>/dev/null | tail -n 1 | sed "s/.*batches by size/$(printf '%-6s' "$node") batches by size/" || true
    done
    exit "$status"
}
trap finish EXIT

mkdir -p run
say "measuring the raw-offload baseline (topology/cloud-only.yaml)"
scripts/cluster.sh up topology/cloud-only.yaml >&2
"$BRANCHY_BIN/branchy-device" --topology topology/cloud-only.yaml --node device --report run/demo-cloud-only.json "$@" > run/demo-cloud-only.out 2>&1 \
    || die "the baseline run failed: $(tail -n 1 run/demo-cloud-only.out)"
scripts/cluster.sh down topology/cloud-only.yaml >&2
scripts/cluster.sh up topology/local.yaml >&2
say "running the device over the data set"
"$BRANCHY_BIN/branchy-device" --topology topology/local.yaml --node device --report run/demo-report.json --baseline run/demo-cloud-only.json \
    --html run/demo-report.html "$@"
say "reports written to run/demo-report.json and run/demo-report.html"
