#!/usr/bin/env bash
# Cluster benchmark: starts the edge and the cloud of a topology (default topology/local.yaml), runs the
# device over the first LIMIT samples twice, with one request in flight and with its default window,
# and prints per-exit latency (p50, p99) of both runs, their throughput and the servers' batch sizes
# (the figures of `ClusterBench.run` in the branchy tool). Reports go to run/bench/c1.json and
# default.json, the summary to run/bench/summary.txt. Environment: BRANCHY_BIN; TOPOLOGY; LIMIT (10000);
# DEVICE (default: the topology's first device).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
no_args "builds, starts the cluster, runs the device at concurrency 1 and at its default, prints latency and throughput" "$@"

TOPO="$(topology_env TOPOLOGY topology/local.yaml)"
cd "$REPO_ROOT"
LIMIT="${LIMIT:-10000}"
work=run/bench
mkdir -p "$work"
ensure_packages openssl:openssl python3:python3
ensure_built
device="${DEVICE:-$(nodes_of "$TOPO" device | head -n 1)}"
[ -n "$device" ] || die "no device in $TOPO"
trap 'status=$?; scripts/cluster.sh down "$TOPO" >&2 || true; exit "$status"' EXIT

scripts/cluster.sh up "$TOPO" >&2
for run in "c1 one request in flight:--concurrency 1" "default default window:"; do
    say "device $device, $LIMIT samples, ${run#* }"
    "$BRANCHY_BIN/branchy-device" --topology "$TOPO" --node "$device" --limit "$LIMIT" ${run##*:} --report "$work/${run%% *}.json" > "$work/${run%% *}.txt"
done
scripts/cluster.sh down "$TOPO" >&2
python3 - "$work/c1.json" "$work/default.json" "$LIMIT" "${TOPO#"$REPO_ROOT"/}" > "$work/summary.txt" <<'PY'
import json, sys
c1, dflt = (json.load(open(p)) for p in sys.argv[1:3])
print(f"cluster bench: {sys.argv[4]}, {sys.argv[3]} samples per run")
print(f"{'exit':<14}{'samples':>8}{'c=1 p50 ms':>12}{'c=1 p99 ms':>12}{'dflt p50 ms':>13}{'dflt p99 ms':>13}")
nan = {"latencyMs": {"p50": float("nan"), "p99": float("nan")}, "count": 0}
for a in c1["exits"]:
    b = next((e for e in dflt["exits"] if e["name"] == a["name"]), nan)
    if a["count"] or b["count"]:
        print(f"{a['name']:<14}{a['count']:>8}{a['latencyMs']['p50']:>12.3f}{a['latencyMs']['p99']:>12.3f}{b['latencyMs']['p50']:>13.3f}{b['latencyMs']['p99']:>13.3f}")
print(f"throughput    c=1 {c1['samplesPerSecond']:.0f} samples/s, default window {dflt['samplesPerSecond']:.0f} samples/s")
print(f"answered      c=1 {c1['answered']}/{c1['samples']}, default {dflt['answered']}/{dflt['samples']} "
      f"(degraded {c1['degraded']} and {dflt['degraded']}, failed {c1['failed']} and {dflt['failed']})")
PY
for node in $(topology_nodes "$TOPO" | awk -F'\t' '$2 != "device" { print $1 }'); do
    line="$(grep -h 'batches by size' "run/$(basename "$TOPO" .yaml)/$node.log" 2>/dev/null | tail -n 1 | sed 's/.*batches by size/batches by size/' || true)"
    [ -z "$line" ] || printf '%-13s %s\n' "$node" "$line" >> "$work/summary.txt"
done
cat "$work/summary.txt"
