#!/usr/bin/env bash
# Branchy over emulated real links: device, edge and cloud each in a Linux network
# namespace, joined by veth pairs (device <-> edge <-> cloud, the edge routing between
# them), each link shaped in both directions (rate, delay, loss; see scripts/lib/netns.sh).
# Runs the test set through the Branchy cluster (topology/local.yaml), then through
# the cloud-only baseline (topology/cloud-only.yaml: the device sends the raw input
# across both links to the cloud, which runs every stage) on the same links, and
# prints latency per exit and overall, the ratio cloud-only / Branchy, and bytes per
# sample. Writes run/netem-summary.json; reports, topologies and logs go to run/netem/.
#
# Needs root. Removes the namespaces (bnet-*) and every process in them at the end,
# on Ctrl-C and on SIGTERM too, and those a crashed earlier run left at the start.
# Environment: BRANCHY_BIN (folder of built executables; skips the build).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/netns.sh"

usage() {
    cat <<USAGE
usage: $(basename "$0") [options]
  --de-rate R      device<->edge rate, tc units (default 1mbit)
  --de-delay D     device<->edge one-way delay (default 5ms)
  --de-loss L      device<->edge loss per direction (default 0%)
  --ec-rate R      edge<->cloud rate (default 10mbit)
  --ec-delay D     edge<->cloud one-way delay (default 40ms)
  --ec-loss L      edge<->cloud loss (default 0%)
  --limit N        samples per run (default 5000; 300 with --short)
  --rate S         samples per second the device starts, as a camera (default 50)
  --topology F     the Branchy cluster (default topology/local.yaml)
  --baseline F     the cloud-only baseline (default topology/cloud-only.yaml; while that
                   file is missing, a stand-in made from the Branchy topology, see below)
  --also-edge-cloud  a third run with topology/edge-cloud.yaml (raw input to the edge)
  --edge-cloud F   that topology (default topology/edge-cloud.yaml; implies --also-edge-cloud)
  --short          a quick run: 300 samples per configuration
  --measure        also measure each link's throughput before the runs (about 10 s)
Without topology/cloud-only.yaml and without --baseline, the baseline is a stand-in: the
device runs its own stages but never exits there and sends its features (not the raw
input) to the cloud, which runs the rest and exits only at the last exit.
USAGE
}

de_rate=1mbit de_delay=5ms de_loss=0%
ec_rate=10mbit ec_delay=40ms ec_loss=0%
limit="" rate=50 short=0 measure=0 also_ec=0
topology=topology/local.yaml baseline="" edge_cloud=topology/edge-cloud.yaml

need() { [ "$#" -ge 2 ] && [ -n "$2" ] || { usage >&2; die "$1 needs a value"; }; }
while [ "$#" -gt 0 ]; do
    case "$1" in
        --de-rate) need "$@"; de_rate="$2"; shift 2 ;;
        --de-delay) need "$@"; de_delay="$2"; shift 2 ;;
        --de-loss) need "$@"; de_loss="$2"; shift 2 ;;
        --ec-rate) need "$@"; ec_rate="$2"; shift 2 ;;
        --ec-delay) need "$@"; ec_delay="$2"; shift 2 ;;
        --ec-loss) need "$@"; ec_loss="$2"; shift 2 ;;
        --limit) need "$@"; limit="$2"; shift 2 ;;
        --rate) need "$@"; rate="$2"; shift 2 ;;
        --topology) need "$@"; topology="$2"; shift 2 ;;
        --baseline) need "$@"; baseline="$2"; shift 2 ;;
        --edge-cloud) need "$@"; edge_cloud="$2"; also_ec=1; shift 2 ;;
        --also-edge-cloud) also_ec=1; shift ;;
        --short) short=1; shift ;;
        --measure) measure=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[ -n "$limit" ] || { if [ "$short" -eq 1 ]; then limit=300; else limit=5000; fi; }
[[ "$limit" =~ ^[1-9][0-9]*$ ]] || die "--limit must be a positive integer"
[[ "$rate" =~ ^[0-9]+([.][0-9]+)?$ ]] && awk -v r="$rate" 'BEGIN { exit !(r > 0) }' || die "--rate must be a positive number"
for v in "$de_rate" "$ec_rate"; do [ "$(netns_rate_bits "$v")" -gt 0 ] || die "bad rate '$v' (e.g. 1mbit, 500kbit)"; done
for v in "$de_delay" "$ec_delay"; do [ "$(netns_delay_ms "$v")" != -1 ] || die "bad delay '$v' (e.g. 5ms)"; done
for v in "$de_loss" "$ec_loss"; do [ "$(netns_loss_prob "$v")" != -1 ] || die "bad loss '$v' (e.g. 0.5%)"; done

# Paths are relative to the directory the script was started from, or to the repository.
resolve() {
    if [ -f "$1" ]; then abs_path "$1"; elif [ -f "$REPO_ROOT/$1" ]; then printf '%s\n' "$REPO_ROOT/$1"; else return 1; fi
}
topology="$(resolve "$topology")" || die "no topology file '$topology'"
baseline_kind=file
if [ -n "$baseline" ]; then
    baseline="$(resolve "$baseline")" || die "no baseline topology '$baseline'"
elif baseline="$(resolve topology/cloud-only.yaml)"; then
    :
else
    baseline_kind=standin
    baseline=""
fi
if [ "$also_ec" -eq 1 ]; then
    edge_cloud="$(resolve "$edge_cloud")" || die "no edge-cloud topology '$edge_cloud' (--also-edge-cloud)"
fi
cd "$REPO_ROOT"

PREFIX=bnet-
NS_DEVICE="${PREFIX}device" NS_EDGE="${PREFIX}edge" NS_CLOUD="${PREFIX}cloud"
DEVICE_IP=10.77.1.1 EDGE_DE_IP=10.77.1.2 EDGE_EC_IP=10.77.2.1 CLOUD_IP=10.77.2.2
work="$REPO_ROOT/run/netem"
summary_json="$REPO_ROOT/run/netem-summary.json"
log="$work/netem.log"
START_TIMEOUT="${START_TIMEOUT:-30}"
DEVICE_TIMEOUT="${DEVICE_TIMEOUT:-$(awk -v n="$limit" -v r="$rate" 'BEGIN { printf "%d", n / r * 2 + 120 }')}"
export NETNS_STATE_DIR="$work/netns"

netns_require
ensure_packages openssl:openssl
ensure_built
bin="$BRANCHY_BIN"

rm -rf "$work"
mkdir -p "$work" "$NETNS_STATE_DIR"
: > "$log"

nodes_pids=()
device_pid=""
finish() {
    local status=$?
    trap '' INT TERM
    [ -z "$device_pid" ] || stop_children "$log" "$device_pid"
    [ "${#nodes_pids[@]}" -eq 0 ] || stop_children "$log" "${nodes_pids[@]}"
    netns_cleanup "$PREFIX" 2>>"$log" || true
    if [ -n "$(netns_list "$PREFIX")" ]; then
        say "netem: namespaces left over: $(netns_list "$PREFIX" | tr '\n' ' ')"
    fi
    [ "$status" -eq 0 ] || say "netem: failed (exit $status); details in $log"
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Namespaces and links ----------------------------------------------------------

if [ -n "$(netns_list "$PREFIX")" ]; then
    say "removing namespaces left by an earlier run: $(netns_list "$PREFIX" | tr '\n' ' ')"
    netns_cleanup "$PREFIX"
fi
for ns in "$NS_DEVICE" "$NS_EDGE" "$NS_CLOUD"; do netns_create "$ns"; done
netns_link "$NS_DEVICE" de-device "$DEVICE_IP/24" "$NS_EDGE" de-edge "$EDGE_DE_IP/24"
netns_link "$NS_EDGE" ec-edge "$EDGE_EC_IP/24" "$NS_CLOUD" ec-cloud "$CLOUD_IP/24"
netns_forwarding "$NS_EDGE"
netns_route "$NS_DEVICE" default "$EDGE_DE_IP"
netns_route "$NS_CLOUD" default "$EDGE_EC_IP"
netns_shape "$NS_DEVICE" de-device "$de_rate" "$de_delay" "$de_loss"
netns_shape "$NS_EDGE" de-edge "$de_rate" "$de_delay" "$de_loss"
netns_shape "$NS_EDGE" ec-edge "$ec_rate" "$ec_delay" "$ec_loss"
netns_shape "$NS_CLOUD" ec-cloud "$ec_rate" "$ec_delay" "$ec_loss"
say "links: device<->edge $de_rate $de_delay loss $de_loss; edge<->cloud $ec_rate $ec_delay loss $ec_loss (each direction)"

# --- Link check: round trips (TCP connect) and, with --measure, throughput --------------

helper=(python3 "$REPO_ROOT/scripts/lib/netem.py")
listener_port=5990

# link_rtt FROM_NS TO_NS HOST: median TCP connect time in ms.
link_rtt() {
    local pid out
    ip netns exec "$2" python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16); s.settimeout(20)
try:
    while True: s.accept()[0].close()
except OSError: pass' "$listener_port" </dev/null >/dev/null 2>&1 &
    pid=$!
    local waited=0
    until netns_listening "$2" "$listener_port" || [ "$waited" -ge 50 ]; do sleep 0.1; waited=$((waited + 1)); done
    out="$(ip netns exec "$1" "${helper[@]}" rtt "$3" "$listener_port" 7 2>>"$log")" || out=""
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    printf '%s\n' "${out:-nan}"
}

# link_rate FROM_NS TO_NS HOST: TCP goodput in Mbit/s over 4 s.
link_rate() {
    local pid out
    ip netns exec "$2" "${helper[@]}" sink "$listener_port" 4 > "$work/sink.out" 2>>"$log" &
    pid=$!
    local waited=0
    until netns_listening "$2" "$listener_port" || [ "$waited" -ge 50 ]; do sleep 0.1; waited=$((waited + 1)); done
    ip netns exec "$1" "${helper[@]}" blast "$3" "$listener_port" 4 >>"$log" 2>&1 || true
    wait "$pid" 2>/dev/null || true
    out="$(awk '{ print $1 }' "$work/sink.out" 2>/dev/null)"
    printf '%s\n' "${out:-nan}"
}

rtt_de="$(link_rtt "$NS_DEVICE" "$NS_EDGE" "$EDGE_DE_IP")"
rtt_dc="$(link_rtt "$NS_DEVICE" "$NS_CLOUD" "$CLOUD_IP")"
say "round trip (TCP connect, median of 7): device->edge $rtt_de ms, device->cloud $rtt_dc ms"
goodput_de=null goodput_ec=null goodput_ce=null
if [ "$measure" -eq 1 ]; then
    goodput_de="$(link_rate "$NS_DEVICE" "$NS_EDGE" "$EDGE_DE_IP")"
    goodput_ec="$(link_rate "$NS_EDGE" "$NS_CLOUD" "$CLOUD_IP")"
    goodput_ce="$(link_rate "$NS_CLOUD" "$NS_EDGE" "$EDGE_EC_IP")"
    say "TCP goodput: device->edge $goodput_de Mbit/s, edge->cloud $goodput_ec Mbit/s, cloud->edge $goodput_ce Mbit/s"
fi

# --- Runs ------------------------------------------------------------------------------

# ensure_certs TOPOLOGY: makes the TLS files when any is missing (as cluster.sh does).
ensure_certs() {
    local dir name missing=0
    dir="$(topology_certs_dir "$1")"
    [ -f "$dir/ca.pem" ] || missing=1
    for name in $(topology_nodes "$1" | cut -f1); do
        [ -f "$dir/$name.pem" ] && [ -f "$dir/$name-key.pem" ] || missing=1
    done
    if [ "$missing" -eq 1 ]; then
        say "making certificates in $dir"
        scripts/gen-certs.sh "$1" "$dir" >>"$log" 2>&1 || die "could not make the certificates of $1"
    fi
}

# ns_of_role ROLE
ns_of_role() { case "$1" in edge) echo "$NS_EDGE" ;; cloud) echo "$NS_CLOUD" ;; *) echo "$NS_DEVICE" ;; esac; }

# run_config LABEL TOPOLOGY: servers in their namespaces, the device in its own,
# report in $work/LABEL.json. Fails unless every sample was answered.
run_config() {
    local label="$1" topo="$2" name role listen port ns pid waited status=0 device
    nodes_pids=()
    say "--- $label: $(basename "$topo"), $limit samples at $rate/s"
    # Clouds first, then edges, as cluster.sh starts them.
    while IFS=$'\t' read -r name role listen; do
        ns="$(ns_of_role "$role")"
        port="$(port_of "$listen")"
        ip netns exec "$ns" "$bin/branchy-$role" --topology "$topo" --node "$name" \
            </dev/null >"$work/$label-$name.log" 2>&1 &
        pid=$!
        nodes_pids+=("$pid")
        waited=0
        until netns_listening "$ns" "$port"; do
            proc_running "$pid" || { tail -n 5 "$work/$label-$name.log" >&2; die "$label: $name exited before listening on $listen"; }
            [ "$waited" -lt $((START_TIMEOUT * 10)) ] || die "$label: $name did not listen on $listen within $START_TIMEOUT s"
            sleep 0.1
            waited=$((waited + 1))
        done
        echo "$label: started $name ($role) in $ns on $listen" >>"$log"
    done < <(topology_nodes "$topo" | awk -F'\t' '$2 == "cloud" { print $1 "\t" $2 "\t" $3 }
                                                  $2 == "edge" { e = e $1 "\t" $2 "\t" $3 "\n" } END { printf "%s", e }')
    device="$(topology_nodes "$topo" | awk -F'\t' '$2 == "device" { print $1; exit }')"
    [ -n "$device" ] || die "$label: no device in $topo"
    # In the background, so that a signal to this script is handled at once.
    timeout "$DEVICE_TIMEOUT" ip netns exec "$NS_DEVICE" "$bin/branchy-device" --topology "$topo" --node "$device" \
        --limit "$limit" --rate "$rate" --report "$work/$label.json" \
        </dev/null >"$work/$label.out" 2>"$work/$label.err" &
    device_pid=$!
    wait "$device_pid" || status=$?
    device_pid=""
    stop_children "$log" "${nodes_pids[@]}"
    nodes_pids=()
    if [ "$status" -ne 0 ]; then
        tail -n 5 "$work/$label.err" >&2
        [ "$status" -ne 124 ] || die "$label: the device did not finish within $DEVICE_TIMEOUT s"
        die "$label: the device exited $status"
    fi
    "${helper[@]}" check "$work/$label.json" "$limit" || die "$label: not every sample was answered"
    say "$label: all $limit samples answered"
}

ensure_certs "$topology"
"${helper[@]}" topology "$topology" "$work/branchy.yaml" --edge-ip "$EDGE_DE_IP" --cloud-ip "$CLOUD_IP"
if [ "$baseline_kind" = file ]; then
    ensure_certs "$baseline"
    "${helper[@]}" topology "$baseline" "$work/cloud-only.yaml" --edge-ip "$EDGE_DE_IP" --cloud-ip "$CLOUD_IP"
else
    say "no topology/cloud-only.yaml: the baseline is a stand-in made from $(basename "$topology") (see --help)"
    "${helper[@]}" standin "$topology" "$work/cloud-only.yaml" --cloud-ip "$CLOUD_IP"
fi
runs=(branchy "cloud-only")
if [ "$also_ec" -eq 1 ]; then
    ensure_certs "$edge_cloud"
    "${helper[@]}" topology "$edge_cloud" "$work/edge-cloud.yaml" --edge-ip "$EDGE_DE_IP" --cloud-ip "$CLOUD_IP"
    runs+=(edge-cloud)
fi

for label in "${runs[@]}"; do run_config "$label" "$work/$label.yaml"; done

# --- Summary -----------------------------------------------------------------------------

config="$(python3 -c '
import json, sys
a = sys.argv[1:]
num = lambda v: None if v in ("nan", "null", "") else float(v)
print(json.dumps({
    "links": {"deviceEdge": {"rate": a[0], "delay": a[1], "loss": a[2]},
              "edgeCloud": {"rate": a[3], "delay": a[4], "loss": a[5]}},
    "samples": int(a[6]), "samplesPerSecond": float(a[7]),
    "topology": a[8], "baseline": a[9], "baselineKind": a[10],
    "edgeCloudTopology": a[11] or None,
    "shaping": "tbf rate on each end; loss by iptables statistic; fixed delay by NFQUEUE at the receiving end",
    "measured": {"rttMs": {"deviceEdge": num(a[12]), "deviceCloud": num(a[13])},
                 "goodputMbit": {"deviceToEdge": num(a[14]), "edgeToCloud": num(a[15]), "cloudToEdge": num(a[16])}},
}))' "$de_rate" "$de_delay" "$de_loss" "$ec_rate" "$ec_delay" "$ec_loss" "$limit" "$rate" \
    "$topology" "${baseline:-standin from $topology}" "$baseline_kind" "$([ "$also_ec" -eq 1 ] && echo "$edge_cloud" || true)" \
    "$rtt_de" "$rtt_dc" "$goodput_de" "$goodput_ec" "$goodput_ce")"

reports=()
for label in "${runs[@]}"; do reports+=("$label=$work/$label.json"); done
echo "links: device<->edge $de_rate, $de_delay, loss $de_loss; edge<->cloud $ec_rate, $ec_delay, loss $ec_loss;" \
    "round trip device->edge $rtt_de ms, device->cloud $rtt_dc ms"
[ "$baseline_kind" = file ] || echo "cloud-only: a stand-in (device features, not raw input, to the cloud), since topology/cloud-only.yaml is missing"
"${helper[@]}" summary --out "$summary_json" --config "$config" "${reports[@]}"
echo
echo "summary written to ${summary_json#"$REPO_ROOT"/}"
