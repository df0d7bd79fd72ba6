#!/usr/bin/env bash
# Measures what each configuration puts on the wire for the Fashion-MNIST test set, on loopback: the
# raw-offload baseline (topology/cloud-only.yaml) first, then every topology given (default: edge-cloud,
# local, compact, a protocol version 1 copy of local, b-lenet3-bin and b-lenet when present), each
# device run compared with the baseline (--baseline). Prints one markdown table row per configuration:
# accuracy, the float model's final exit alone, bytes per sample per link and in all, with handshakes,
# and the ratio to the measured raw offload. Reports go to run/communication/.
# usage: scripts/communication.sh [TOPOLOGY...]      Environment: BRANCHY_BIN.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

case "${1:-}" in -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
cd "$REPO_ROOT"
ensure_packages openssl:openssl python3:python3
ensure_built
work=run/communication
mkdir -p "$work"
if [ "$#" -gt 0 ]; then
    topologies=("$@")
else
    topologies=(topology/edge-cloud.yaml topology/local.yaml topology/compact.yaml "$work/local-v1.yaml")
    for t in topology/b-lenet3-bin.yaml topology/b-lenet.yaml; do [ ! -f "$t" ] || topologies+=("$t"); done
    topology_with topology/local.yaml "$work/local-v1.yaml" device.protocol=1 edge.protocol=1
fi
current=""
trap '[ -z "$current" ] || scripts/cluster.sh down "$current" >&2 || true' EXIT

# measure TOPOLOGY NAME [DEVICE OPTIONS]: the whole test set through one cluster; the model's float
# figures and the topology's model, link codecs and thresholds for the table.
measure() {
    say "measuring $1"
    current="$1"
    cluster up "$1" >&2 || die "$1: the cluster did not start"
    DEVICE_TIMEOUT=3600 run_device "$1" device "$work/$2" "${@:3}" > "$work/$2.why" || { cluster down "$1"; die "the device of $1 failed: $(cat "$work/$2.why")"; }
    cluster down "$1"
    current=""
    "$BRANCHY_BIN/branchy" eval --model "$(topology_path "$1" model)" --codec float32 --json 2>/dev/null > "$work/$2-float.json"
    topology_query "$1" '"\t".join([t["model"].rsplit("/", 1)[1], " / ".join(n["codec"] for n in t["nodes"] if n["upstream"]),
        " / ".join(", ".join(map(str, n["thresholds"])) for n in t["nodes"] if n["thresholds"]) or "model defaults"])' > "$work/$2.meta"
}
measure topology/cloud-only.yaml cloud-only
for t in "${topologies[@]}"; do measure "$t" "$(basename "$t" .yaml)" --baseline "$work/cloud-only.json"; done
python3 - "$work" cloud-only $(for t in "${topologies[@]}"; do basename "$t" .yaml; done) <<'PY'
import json, sys
work, names = sys.argv[1], sys.argv[2:]
b = json.load(open(f"{work}/cloud-only.json"))
print("| configuration | model | codecs (device / edge) | thresholds (device / edge) | accuracy | float final alone | per link (bytes per sample) | bytes per sample | with handshakes | vs raw offload | with handshakes |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name in names:
    r, f = json.load(open(f"{work}/{name}.json")), json.load(open(f"{work}/{name}-float.json"))
    model, codecs, thresholds = open(f"{work}/{name}.meta").read().rstrip("\n").split("\t")
    links = ", ".join(f"{l['link']} {(l['requestTLSBytes'] + l['responseTLSBytes']) / r['samples']:.1f}" for l in r["links"])
    ratio = lambda k: b[k] / r[k] if r[k] else float("inf")
    print(f"| {name} | {model} | {codecs} | {thresholds} | {100 * r['accuracy']:.2f}% | {100 * f['finalOnlyAccuracy']:.2f}% | {links} | "
          f"{r['bytesPerSample']:.1f} | {r['bytesPerSampleWithHandshakes']:.1f} | {ratio('bytesPerSample'):.2f}x | {ratio('bytesPerSampleWithHandshakes'):.2f}x |")
PY
