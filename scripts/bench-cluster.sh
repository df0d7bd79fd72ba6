#!/usr/bin/env bash
# Cluster benchmark: starts the edge and the cloud of a topology (default
# topology/local.yaml: three processes on loopback, mutual TLS), runs the device
# over the first LIMIT samples twice, once with one request in flight and once
# with its default window, and prints per-exit latency (p50, p99) for both runs
# and the throughput of the default run, then the edge's and cloud's batch-size
# distributions from their logs. The figures are those `ClusterBench.run` (in
# the branchy tool) returns.
#
# Environment: BRANCHY_BIN (folder of built executables: skips the build);
# TOPOLOGY (default topology/local.yaml); LIMIT (samples per run, default 10000);
# DEVICE (device node, default: the topology's first device).
# Reports go to run/bench/c1.json and run/bench/default.json; the summary to
# run/bench/summary.txt.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() { echo "usage: $(basename "$0")   (builds, starts the cluster, runs the device at concurrency 1 and at its default, prints latency and throughput)"; }
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

TOPO="$(abs_path "${TOPOLOGY:-$REPO_ROOT/topology/local.yaml}")"
[ -f "$TOPO" ] || die "no topology file $TOPO"
cd "$REPO_ROOT"
LIMIT="${LIMIT:-10000}"
work=run/bench
mkdir -p "$work"

ensure_packages openssl:openssl python3:python3
ensure_built
bin="$BRANCHY_BIN"
device="${DEVICE:-$(topology_nodes "$TOPO" | awk -F'\t' '$2 == "device" { print $1; exit }')}"
[ -n "$device" ] || die "no device in $TOPO"
logs="run/$(basename "$TOPO" .yaml)"

finish() {
    local status=$?
    scripts/cluster.sh down "$TOPO" >&2 || true
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

scripts/cluster.sh up "$TOPO" >&2
say "device $device, $LIMIT samples, one request in flight"
"$bin/branchy-device" --topology "$TOPO" --node "$device" --limit "$LIMIT" --concurrency 1 --report "$work/c1.json" > "$work/c1.txt"
say "device $device, $LIMIT samples, default window"
"$bin/branchy-device" --topology "$TOPO" --node "$device" --limit "$LIMIT" --report "$work/default.json" > "$work/default.txt"
scripts/cluster.sh down "$TOPO" >&2

python3 - "$work/c1.json" "$work/default.json" "$LIMIT" "${TOPO#"$REPO_ROOT"/}" > "$work/summary.txt" <<'PY'
import json, sys
c1, dflt = (json.load(open(p)) for p in sys.argv[1:3])
print(f"cluster bench: {sys.argv[4]}, {sys.argv[3]} samples per run")
print(f"{'exit':<14}{'samples':>8}{'c=1 p50 ms':>12}{'c=1 p99 ms':>12}{'dflt p50 ms':>13}{'dflt p99 ms':>13}")
for a in c1["exits"]:
    b = next((e for e in dflt["exits"] if e["name"] == a["name"]), None)
    if a["count"] == 0 and (b is None or b["count"] == 0):
        continue
    print(f"{a['name']:<14}{a['count']:>8}{a['latencyMs']['p50']:>12.3f}{a['latencyMs']['p99']:>12.3f}"
          f"{b['latencyMs']['p50'] if b else float('nan'):>13.3f}{b['latencyMs']['p99'] if b else float('nan'):>13.3f}")
print(f"throughput    c=1 {c1['samplesPerSecond']:.0f} samples/s, default window {dflt['samplesPerSecond']:.0f} samples/s")
print(f"answered      c=1 {c1['answered']}/{c1['samples']}, default {dflt['answered']}/{dflt['samples']} "
      f"(degraded {c1['degraded']} and {dflt['degraded']}, failed {c1['failed']} and {dflt['failed']})")
PY
for node in $(topology_nodes "$TOPO" | awk -F'\t' '$2 != "device" { print $1 }'); do
    line="$(grep -h 'batches by size' "$logs/$node.log" 2>/dev/null | tail -n 1 | sed 's/.*batches by size/batches by size/' || true)"
    [ -z "$line" ] || printf '%-13s %s\n' "$node" "$line" >> "$work/summary.txt"
done
cat "$work/summary.txt"
