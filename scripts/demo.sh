#!/usr/bin/env bash
# The main job: classifies the Fashion-MNIST test set with the network split
# across three processes on this machine (device -> edge -> cloud, mutual TLS
# on loopback, topology/local.yaml) and prints the per-exit table.
#
# Installs openssl if missing, builds, makes the certificates if missing,
# starts the edge and the cloud, runs the device, and stops the cluster again,
# on failure and on Ctrl-C too. First measures the raw-offload baseline
# (topology/cloud-only.yaml, every raw image to the cloud) and compares the run
# with it. The device's JSON report is written to run/demo-report.json, its
# HTML report (charts) to run/demo-report.html. Extra options go to branchy-device, e.g. --limit 1000.
# Environment: BRANCHY_BIN (folder of already built executables: skips the build).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() { echo "usage: $(basename "$0") [branchy-device options, e.g. --limit N]"; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac

cd "$REPO_ROOT"
topology=topology/local.yaml
report=run/demo-report.json

ensure_packages openssl:openssl
ensure_built
bin="$BRANCHY_BIN"

model="$(topology_path "$topology" model)"
[ -f "$model/model.json" ] || die "no trained model in $model; scripts/train-default.sh makes it again"

finish() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        say "the demo failed (exit $status); last lines of the node logs:"
        for log in run/local/*.log; do
            [ -f "$log" ] || continue
            say "--- $log"
            tail -n 10 "$log" >&2
        done
    fi
    scripts/cluster.sh down "$topology" >&2 || true
    scripts/cluster.sh down topology/cloud-only.yaml >&2 || true
    if [ "$status" -eq 0 ]; then
        # Each server logs its batch sizes when it stops.
        for node in edge cloud; do
            line="$(grep -h 'batches by size' "run/local/$node.log" 2>/dev/null | tail -n 1 | sed 's/.*batches by size/batches by size/' || true)"
            [ -z "$line" ] || printf '%-6s %s\n' "$node" "$line"
        done
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$(dirname "$report")"
# The raw-offload baseline, measured: every raw image to the cloud (topology/cloud-only.yaml).
baseline_topology=topology/cloud-only.yaml
baseline=run/demo-cloud-only.json
say "measuring the raw-offload baseline ($baseline_topology)"
scripts/cluster.sh up "$baseline_topology" >&2
"$bin/branchy-device" --topology "$baseline_topology" --node device --report "$baseline" "$@" > run/demo-cloud-only.out 2>&1 \
    || { scripts/cluster.sh down "$baseline_topology" >&2; die "the baseline run failed: $(tail -n 1 run/demo-cloud-only.out)"; }
scripts/cluster.sh down "$baseline_topology" >&2
scripts/cluster.sh up "$topology" >&2
say "running the device over the data set"
"$bin/branchy-device" --topology "$topology" --node device --report "$report" --baseline "$baseline" \
    --html run/demo-report.html "$@"
say "reports written to $report and run/demo-report.html"
