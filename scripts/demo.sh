#!/usr/bin/env bash
# The main job: classifies the Fashion-MNIST test set with the network split
# across three processes on this machine (device -> edge -> cloud, mutual TLS
# on loopback, topology/local.yaml) and prints the per-exit table.
#
# Installs openssl if missing, builds, makes the certificates if missing,
# starts the edge and the cloud, runs the device, and stops the cluster again,
# on failure and on Ctrl-C too. The device's JSON report is written to
# run/demo-report.json. Extra options go to branchy-device, e.g. --limit 1000.
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

scripts/cluster.sh up "$topology" >&2
mkdir -p "$(dirname "$report")"
say "running the device over the data set"
"$bin/branchy-device" --topology "$topology" --node device --report "$report" "$@"
say "report written to $report"
