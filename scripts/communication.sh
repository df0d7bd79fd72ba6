#!/usr/bin/env bash
# Measures what each configuration puts on the wire for the Fashion-MNIST test set, on
# loopback: the raw-offload baseline (topology/cloud-only.yaml) first, then every other
# topology given (default: edge-cloud, local, compact, a protocol version 1 copy of local,
# and b-lenet3-bin when it is present), each device run compared with the baseline
# (--baseline). Prints one markdown table row per configuration: accuracy, the float
# model's final exit alone, bytes per sample on each link and in all, with handshakes,
# and the ratio to the measured raw offload. Reports go to run/communication/.
# usage: scripts/communication.sh [TOPOLOGY...]
# Environment: BRANCHY_BIN (folder of already built executables: skips the build).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

case "${1:-}" in -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
cd "$REPO_ROOT"
ensure_packages openssl:openssl python3:python3
ensure_built
bin="$BRANCHY_BIN"
work=run/communication
mkdir -p "$work"

baseline=topology/cloud-only.yaml
if [ "$#" -gt 0 ]; then
    topologies=("$@")
else
    topologies=(topology/edge-cloud.yaml topology/local.yaml topology/compact.yaml "$work/local-v1.yaml")
    [ -f topology/b-lenet3-bin.yaml ] && topologies+=(topology/b-lenet3-bin.yaml)
    [ -f topology/b-lenet.yaml ] && topologies+=(topology/b-lenet.yaml)
    root="$(cd topology && pwd)"
    sed -e "s|: \.\./|: $root/../|" -e '/^    upstream: \(edge\|cloud\)$/a\    protocol: 1' topology/local.yaml > "$work/local-v1.yaml"
fi

current=""
finish() { [ -z "$current" ] || scripts/cluster.sh down "$current" >&2 || true; }
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run TOPOLOGY NAME [device options]: the whole test set through one cluster.
run() {
    local topology="$1" name="$2"
    shift 2
    current="$topology"
    scripts/cluster.sh up "$topology" >&2
    "$bin/branchy-device" --topology "$topology" --node device --report "$work/$name.json" "$@" > "$work/$name.out" 2> "$work/$name.err" \
        || { scripts/cluster.sh down "$topology" >&2; die "the device of $topology failed: $(tail -n 1 "$work/$name.err")"; }
    scripts/cluster.sh down "$topology" >&2
    current=""
}

say "baseline: $baseline"
run "$baseline" cloud-only
basename "$(topology_path "$baseline" model)" > "$work/cloud-only.model"
for t in "${topologies[@]}"; do
    name="$(basename "$t" .yaml)"
    say "measuring $t"
    run "$t" "$name" --baseline "$work/cloud-only.json"
    model="$(topology_path "$t" model)"
    basename "$model" > "$work/$name.model"
    "$bin/branchy" eval --model "$model" --codec float32 --json 2>/dev/null > "$work/$name-float.json"
done

"$bin/branchy" eval --model "$(topology_path "$baseline" model)" --codec float32 --json 2>/dev/null > "$work/cloud-only-float.json"
python3 - "$work" "$baseline" "${topologies[@]}" <<'PY'
import json, os, re, sys
work, base_topology = sys.argv[1], sys.argv[2]
base = "cloud-only"
topologies = dict((os.path.basename(t)[:-5], t) for t in [base_topology] + sys.argv[3:])
names = [os.path.basename(t)[:-5] for t in sys.argv[3:]]

def node_values(path, key):
    """The `key:` values of the topology's nodes in file order (codecs, thresholds)."""
    out = []
    for line in open(path):
        m = re.match(r"\s+" + key + r":\s*(.+?)\s*$", line)
        if m: out.append(m.group(1).strip("[] "))
    return out
b = json.load(open(f"{work}/{base}.json"))
print("| configuration | model | codecs (device / edge) | thresholds (device / edge) | accuracy | float final alone | per link (bytes per sample) | bytes per sample | with handshakes | vs raw offload | with handshakes |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
def row(name, r, final):
    n = r["samples"]
    links = ", ".join(f"{l['link']} {(l['requestTLSBytes'] + l['responseTLSBytes']) / n:.1f}" for l in r["links"])
    ratio = b["bytesPerSample"] / r["bytesPerSample"] if r["bytesPerSample"] else float("inf")
    ratio_h = b["bytesPerSampleWithHandshakes"] / r["bytesPerSampleWithHandshakes"] if r["bytesPerSampleWithHandshakes"] else float("inf")
    t = " / ".join(node_values(topologies[name], "thresholds")) or "model defaults"
    codecs = " / ".join(node_values(topologies[name], "codec"))
    model = open(f"{work}/{name}.model").read().strip() if os.path.exists(f"{work}/{name}.model") else ""
    print(f"| {name} | {model} | {codecs} | {t} | {100 * r['accuracy']:.2f}% | {final} | {links} | "
          f"{r['bytesPerSample']:.1f} | {r['bytesPerSampleWithHandshakes']:.1f} | {ratio:.2f}x | {ratio_h:.2f}x |")
row(base, b, f"{100 * json.load(open(f'{work}/{base}-float.json'))['finalOnlyAccuracy']:.2f}%")
for name in names:
    r = json.load(open(f"{work}/{name}.json"))
    f = json.load(open(f"{work}/{name}-float.json"))
    row(name, r, f"{100 * f['finalOnlyAccuracy']:.2f}%")
PY
