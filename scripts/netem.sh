#!/usr/bin/env bash
# Branchy over emulated real links: device, edge and cloud each in a network namespace, joined by veth
# pairs (device <-> edge <-> cloud, the edge routing), each link shaped both ways (rate, delay, loss;
# scripts/lib/netns.sh). Runs the test set through the Branchy cluster (topology/local.yaml), then the
# cloud-only baseline (topology/cloud-only.yaml: raw input over both links to the cloud) on the same
# links, and prints latency per exit and overall, the ratio cloud-only / Branchy, and bytes per sample;
# writes run/netem-summary.json (reports and logs in run/netem/). Needs root; removes its namespaces
# (bnet-*) and their processes at the end, on Ctrl-C and on SIGTERM too, and those of a crashed run.
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
de_rate=1mbit de_delay=5ms de_loss=0% ec_rate=10mbit ec_delay=40ms ec_loss=0%
limit="" rate=50 short=0 measure=0 also_ec=0 topology=topology/local.yaml baseline="" edge_cloud=topology/edge-cloud.yaml
while [ "$#" -gt 0 ]; do
    case "$1" in
        --de-rate|--de-delay|--de-loss|--ec-rate|--ec-delay|--ec-loss|--limit|--rate|--topology|--baseline|--edge-cloud)
            [ "$#" -ge 2 ] && [ -n "$2" ] || { usage >&2; die "$1 needs a value"; }
            v="${1#--}"; v="${v//-/_}"; [ "$v" != edge_cloud ] || also_ec=1; printf -v "$v" %s "$2"; shift 2 ;;
        --also-edge-cloud) also_ec=1; shift ;;
        --short) short=1; shift ;;
        --measure) measure=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[ -n "$limit" ] || limit=$((short ? 300 : 5000))
[[ "$limit" =~ ^[1-9][0-9]*$ ]] || die "--limit must be a positive integer"
[[ "$rate" =~ ^[0-9]+([.][0-9]+)?$ ]] && awk -v r="$rate" 'BEGIN { exit !(r > 0) }' || die "--rate must be a positive number"
for v in "$de_rate" "$ec_rate"; do [ "$(netns_rate_bits "$v")" -gt 0 ] || die "bad rate '$v' (e.g. 1mbit, 500kbit)"; done
for v in "$de_delay" "$ec_delay"; do [ "$(netns_delay_ms "$v")" != -1 ] || die "bad delay '$v' (e.g. 5ms)"; done
for v in "$de_loss" "$ec_loss"; do [ "$(netns_loss_prob "$v")" != -1 ] || die "bad loss '$v' (e.g. 0.5%)"; done
topology="$(resolve_topology "$topology")"
baseline_kind=file
if [ -n "$baseline" ]; then baseline="$(resolve_topology "$baseline")"
elif [ -f "$REPO_ROOT/topology/cloud-only.yaml" ]; then baseline="$REPO_ROOT/topology/cloud-only.yaml"
else baseline_kind=standin; fi
[ "$also_ec" -eq 0 ] || edge_cloud="$(resolve_topology "$edge_cloud")"
cd "$REPO_ROOT"

PREFIX=bnet- NS_DEVICE=bnet-device NS_EDGE=bnet-edge NS_CLOUD=bnet-cloud
DEVICE_IP=10.77.1.1 EDGE_DE_IP=10.77.1.2 EDGE_EC_IP=10.77.2.1 CLOUD_IP=10.77.2.2
work="$REPO_ROOT/run/netem"
log="$work/netem.log"
DEVICE_TIMEOUT="${DEVICE_TIMEOUT:-$(awk -v n="$limit" -v r="$rate" 'BEGIN { printf "%d", n / r * 2 + 120 }')}"
export NETNS_STATE_DIR="$work/netns"
netns_require
ensure_packages openssl:openssl
ensure_built
rm -rf "$work"
mkdir -p "$work" "$NETNS_STATE_DIR"
: > "$log"
netns_trap
[ -z "$(netns_list "$PREFIX")" ] || { say "removing namespaces left by an earlier run: $(netns_list "$PREFIX" | tr '\n' ' ')"; netns_cleanup "$PREFIX"; }

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

# link FROM_NS TO_NS HOST rtt|rate: the median TCP connect time in ms over 7 tries, or the TCP goodput
# in Mbit/s over 4 s, from FROM_NS to a listener in TO_NS.
link() {
    local pid out=""
    ip netns exec "$2" "${PY[@]}" listen 5990 10 $([ "$4" = rtt ] || echo sink) </dev/null > "$work/sink.out" 2>>"$log" &
    pid=$!
    wait_for 5 netns_listening "$2" 5990 || true
    if [ "$4" = rtt ]; then out="$(ip netns exec "$1" "${PY[@]}" rtt "$3" 5990 7 2>>"$log")" || true; kill "$pid" 2>/dev/null || true
    else ip netns exec "$1" "${PY[@]}" blast "$3" 5990 4 >>"$log" 2>&1 || true; fi
    wait "$pid" 2>/dev/null || true
    [ "$4" = rtt ] || out="$(awk '{ print $1 }' "$work/sink.out" 2>/dev/null)"
    echo "${out:-nan}"
}
rtt_de="$(link "$NS_DEVICE" "$NS_EDGE" "$EDGE_DE_IP" rtt)" rtt_dc="$(link "$NS_DEVICE" "$NS_CLOUD" "$CLOUD_IP" rtt)"
say "round trip (TCP connect, median of 7): device->edge $rtt_de ms, device->cloud $rtt_dc ms"
goodput_de=null goodput_ec=null goodput_ce=null
if [ "$measure" -eq 1 ]; then
    goodput_de="$(link "$NS_DEVICE" "$NS_EDGE" "$EDGE_DE_IP" rate)" goodput_ec="$(link "$NS_EDGE" "$NS_CLOUD" "$CLOUD_IP" rate)"
    goodput_ce="$(link "$NS_CLOUD" "$NS_EDGE" "$EDGE_EC_IP" rate)"
    say "TCP goodput: device->edge $goodput_de Mbit/s, edge->cloud $goodput_ec Mbit/s, cloud->edge $goodput_ce Mbit/s"
fi

# in_namespaces SRC LABEL: SRC with every edge listening on its namespace's address toward the device and
# the cloud on its own, as run/netem/LABEL.yaml.
in_namespaces() {
    local name role listen edits=()
    while read -r name role listen; do edits+=("$name.listen=$([ "$role" = edge ] && echo "$EDGE_DE_IP" || echo "$CLOUD_IP"):$(port_of "$listen")"); done < <(servers_of "$1")
    ensure_certs "$1" 2>>"$log" && topology_with "$1" "$work/$2.yaml" "${edits[@]}" || die "could not make $work/$2.yaml from $1"
}
# run_config LABEL: servers in their namespaces (clouds first), the device in its own; every sample answered.
run_config() {
    local label="$1" topo="$work/$1.yaml" name role listen ns why device
    say "--- $label: $(basename "$topo"), $limit samples at $rate/s"
    while read -r name role listen; do
        ns="bnet-$role"
        LISTENING="netns_listening $ns" start_server "$topo" "$name" "$work/$label-$name.log" ip netns exec "$ns" > "$work/why" \
            || { tail -n 5 "$work/$label-$name.log" >&2; die "$label: $(cat "$work/why")"; }
        echo "$label: started $name ($role) in $ns on $listen" >>"$log"
    done < <(servers_of "$topo")
    device="$(nodes_of "$topo" device | head -n 1)"
    [ -n "$device" ] || die "$label: no device in $topo"
    # In the background, so that a signal to this script is handled at once.
    DEVICE_NS="$NS_DEVICE" run_device "$topo" "$device" "$work/$label" --limit "$limit" --rate "$rate" > "$work/why" &
    device_pid=$!
    wait "$device_pid" || { device_pid=""; stop_children "$log" "${started[@]}"; tail -n 5 "$work/$label.err" >&2; die "$label: $(cat "$work/why")"; }
    device_pid=""
    stop_children "$log" "${started[@]}"
    started=()
    why="$("${PY[@]}" all-answered "$work/$label.json" "$limit")" || die "$label: not every sample was answered: $why"
    say "$label: all $limit samples answered"
}

in_namespaces "$topology" branchy
runs=(branchy cloud-only)
if [ "$baseline_kind" = file ]; then
    in_namespaces "$baseline" cloud-only
else   # the device runs its stages but never exits and sends to the cloud, which runs every other stage
    say "no topology/cloud-only.yaml: the baseline is a stand-in made from $(basename "$topology") (see --help)"
    mapfile -t edits < <(topology_show "$topology" | "${PY[@]}" standin-edits "$CLOUD_IP")
    topology_with "$topology" "$work/cloud-only.yaml" "${edits[@]}" || die "could not make the stand-in"
fi
[ "$also_ec" -eq 0 ] || { in_namespaces "$edge_cloud" edge-cloud; runs+=(edge-cloud); }
for label in "${runs[@]}"; do run_config "$label"; done

config="$(python3 -c 'import json, sys
a = sys.argv[1:]
num = lambda v: None if v in ("nan", "null", "") else float(v)
print(json.dumps({"links": {"deviceEdge": {"rate": a[0], "delay": a[1], "loss": a[2]}, "edgeCloud": {"rate": a[3], "delay": a[4], "loss": a[5]}},
    "samples": int(a[6]), "samplesPerSecond": float(a[7]), "topology": a[8], "baseline": a[9], "baselineKind": a[10], "edgeCloudTopology": a[11] or None,
    "shaping": "tbf rate on each end; loss by iptables statistic; fixed delay by NFQUEUE at the receiving end",
    "measured": {"rttMs": {"deviceEdge": num(a[12]), "deviceCloud": num(a[13])},
                 "goodputMbit": {"deviceToEdge": num(a[14]), "edgeToCloud": num(a[15]), "cloudToEdge": num(a[16])}}}))' \
    "$de_rate" "$de_delay" "$de_loss" "$ec_rate" "$ec_delay" "$ec_loss" "$limit" "$rate" "$topology" "${baseline:-standin from $topology}" \
    "$baseline_kind" "$([ "$also_ec" -eq 0 ] || echo "$edge_cloud")" "$rtt_de" "$rtt_dc" "$goodput_de" "$goodput_ec" "$goodput_ce")"
echo "links: device<->edge $de_rate, $de_delay, loss $de_loss; edge<->cloud $ec_rate, $ec_delay, loss $ec_loss;" \
    "round trip device->edge $rtt_de ms, device->cloud $rtt_dc ms"
[ "$baseline_kind" = file ] || echo "cloud-only: a stand-in (device features, not raw input, to the cloud), since topology/cloud-only.yaml is missing"
"${PY[@]}" netem-summary run/netem-summary.json "$config" $(for l in "${runs[@]}"; do echo "$l=$work/$l.json"; done)
echo
echo "summary written to run/netem-summary.json"
