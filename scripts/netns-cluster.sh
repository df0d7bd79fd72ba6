#!/usr/bin/env bash
# The cluster on several hosts, emulated: each node of a topology (default
# topology/local.yaml: device, edge and cloud) in its own Linux network namespace
# with its own IP on one bridge (10.77.1.0/24; a namespace `bhost-lan` holds the
# bridge, as a switch). Each server binds 0.0.0.0:PORT and is dialled at its
# namespace's IP (`address:`), as on real hosts; the generated topology goes to
# run/netns-cluster/topology.yaml. Runs the test set (all of it, or --limit N)
# through the device in its namespace and checks that the predictions equal
# `branchy eval --topology <generated topology>`.
#
# Prints `ok - ...` or `not ok - ...` per check, then `N passed, M failed`; exits 1
# when a check failed. Details (node logs, reports) go to run/netns-cluster/.
# Needs root. Removes its namespaces (bhost-*) and every process in them at the end,
# on Ctrl-C and on SIGTERM too, and those a crashed earlier run left at the start.
# Environment: BRANCHY_BIN (folder of built executables; skips the build),
# START_TIMEOUT (seconds per server, default 30), DEVICE_TIMEOUT (default 900).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/netns.sh"

usage() {
    cat <<USAGE
usage: $(basename "$0") [--limit N] [--topology F]
  --limit N      samples through the device (default: the whole test set, 10,000)
  --topology F   the cluster (default topology/local.yaml); every node gets a namespace
USAGE
}

limit="" topology=topology/local.yaml
need() { [ "$#" -ge 2 ] && [ -n "$2" ] || { usage >&2; die "$1 needs a value"; }; }
while [ "$#" -gt 0 ]; do
    case "$1" in
        --limit) need "$@"; limit="$2"; shift 2 ;;
        --topology) need "$@"; topology="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[ -z "$limit" ] || [[ "$limit" =~ ^[1-9][0-9]*$ ]] || die "--limit must be a positive integer"
if [ -f "$topology" ]; then
    topology="$(abs_path "$topology")"
elif [ -f "$REPO_ROOT/$topology" ]; then
    topology="$REPO_ROOT/$topology"
else
    die "no topology file '$topology'"
fi
cd "$REPO_ROOT"

PREFIX=bhost-
NS_LAN="${PREFIX}lan"
BRIDGE=br0
SUBNET=10.77.1      # hosts .1, .2, ... in the order they are added
work="$REPO_ROOT/run/netns-cluster"
log="$work/netns-cluster.log"
generated="$work/topology.yaml"
START_TIMEOUT="${START_TIMEOUT:-30}"
DEVICE_TIMEOUT="${DEVICE_TIMEOUT:-900}"
export NETNS_STATE_DIR="$work/netns"
e2e=(python3 "$REPO_ROOT/scripts/lib/e2e.py")

netns_require
ensure_packages openssl:openssl
ensure_built
bin="$BRANCHY_BIN"

rm -rf "$work"
mkdir -p "$work" "$NETNS_STATE_DIR"
: > "$log"

server_pids=()
servers_up=0
device_pid=""
finish() {
    local status=$?
    trap '' INT TERM
    [ -z "$device_pid" ] || stop_children "$log" "$device_pid"
    [ "${#server_pids[@]}" -eq 0 ] || stop_children "$log" "${server_pids[@]}"
    netns_cleanup "$PREFIX" 2>>"$log" || true
    if [ -n "$(netns_list "$PREFIX")" ]; then
        say "netns-cluster: namespaces left over: $(netns_list "$PREFIX" | tr '\n' ' ')"
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- The bridge and its hosts ----------------------------------------------------------

declare -A host_ip=()   # node name -> its namespace's IP
hosts=0

# lan_create: the namespace that holds the bridge every host joins.
lan_create() {
    netns_create "$NS_LAN" && netns_bridge "$NS_LAN" "$BRIDGE" -
}

# host_ns NAME: the namespace of node NAME.
host_ns() { printf '%s%s\n' "$PREFIX" "$1"; }

# add_host NAME: a namespace for node NAME with the next IP of the subnet, joined to
# the bridge (interface eth0 inside, port hN on the bridge). Call it again, for
# another replica or node, to grow the layout.
add_host() {
    local name="$1" ns ip
    [ -z "${host_ip[$name]:-}" ] || { say "add_host: '$name' already has a namespace"; return 1; }
    [ "$hosts" -lt 250 ] || { say "add_host: $SUBNET.0/24 is full"; return 1; }
    hosts=$((hosts + 1))
    ip="$SUBNET.$hosts"
    ns="$(host_ns "$name")"
    netns_create "$ns" || return 1
    netns_attach "$ns" eth0 "$NS_LAN" "h$hosts" "$BRIDGE" "$ip/24" || return 1
    host_ip[$name]="$ip"
    echo "host $name: namespace $ns, $ip" >>"$log"
}

# --- Checks ---------------------------------------------------------------------------

passed=0
failed=0
nodes="$(topology_nodes "$topology")"
device="$(awk -F'\t' '$2 == "device" { print $1; exit }' <<< "$nodes")"
model="$(topology_path "$topology" model)"
dataset="$(topology_path "$topology" dataset)"

# check NAME FUNCTION: runs FUNCTION in this shell (so that the processes and hosts it
# adds stay known); it prints nothing on success, or why it failed on its last line
# of standard output; its standard error goes to the log. Prints `ok - NAME` or
# `not ok - NAME: why`; returns 1 on failure.
check() {
    local name="$1" why status=0
    printf '\n### %s\n' "$name" >> "$log"
    "$2" > "$work/why" 2>>"$log" || status=$?
    if [ "$status" -eq 0 ]; then
        echo "ok - $name"
        passed=$((passed + 1))
    else
        why="$(awk 'NF { last = $0 } END { print last }' "$work/why")"
        echo "not ok - $name: ${why:-failed, see $log}"
        failed=$((failed + 1))
        return 1
    fi
}

# reachable FROM_NS IP: a TCP connection attempt from FROM_NS to IP gets an answer
# (a refusal counts: nothing listens yet, but the host is there).
reachable() {
    ip netns exec "$1" python3 -c '
import errno, socket, sys
s = socket.socket(); s.settimeout(3)
try:
    s.connect((sys.argv[1], 9))
except ConnectionRefusedError:
    sys.exit(0)
except OSError as e:
    print(e, file=sys.stderr); sys.exit(1)
sys.exit(0)' "$2"
}

check_namespaces() {
    [ -n "$device" ] || { echo "no device in $topology"; return 1; }
    ! cut -f1 <<< "$nodes" | grep -qx lan || { echo "a node named 'lan' would share the bridge's namespace $NS_LAN"; return 1; }
    if [ -n "$(netns_list "$PREFIX")" ]; then
        say "removing namespaces left by an earlier run: $(netns_list "$PREFIX" | tr '\n' ' ')"
        netns_cleanup "$PREFIX"
        [ -z "$(netns_list "$PREFIX")" ] || { echo "could not remove the namespaces of an earlier run"; return 1; }
    fi
    lan_create || { echo "could not make the bridge namespace $NS_LAN"; return 1; }
    local name
    for name in $(cut -f1 <<< "$nodes"); do
        add_host "$name" || { echo "could not make the namespace of '$name'"; return 1; }
    done
    # Every host reaches every other across the bridge.
    for name in $(cut -f1 <<< "$nodes"); do
        [ "$name" != "$device" ] || continue
        reachable "$(host_ns "$device")" "${host_ip[$name]}" \
            || { echo "$device cannot reach $name at ${host_ip[$name]}"; return 1; }
    done
}

# Makes the TLS files when any is missing (as cluster.sh does); they name the
# nodes, not their addresses, so the generated topology uses the same ones.
check_topology() {
    local dir name missing=0 pairs=()
    dir="$(topology_certs_dir "$topology")"
    [ -f "$dir/ca.pem" ] || missing=1
    for name in $(cut -f1 <<< "$nodes"); do
        [ -f "$dir/$name.pem" ] && [ -f "$dir/$name-key.pem" ] || missing=1
        pairs+=("$name=${host_ip[$name]}")
    done
    if [ "$missing" -eq 1 ]; then
        scripts/gen-certs.sh "$topology" "$dir" >&2 || { echo "could not make the certificates of $topology"; return 1; }
    fi
    python3 scripts/lib/netem.py hosts "$topology" "$generated" --bind 0.0.0.0 "${pairs[@]}" || return 1
    cat "$generated" >&2
    # The real loader must accept it.
    local -a args=(eval --model "$model" --topology "$generated" --limit 1)
    [ -z "$dataset" ] || args+=(--dataset "$dataset")
    "$bin/branchy" "${args[@]}" >"$work/validate.out" 2>&1 \
        || { echo "the generated topology is refused: $(tail -n 1 "$work/validate.out")"; return 1; }
}

# Servers, clouds first, each in its namespace; waits until each listens on 0.0.0.0.
check_servers() {
    [ -s "$generated" ] || { echo "no generated topology"; return 1; }
    local name role listen port ns pid waited bound
    while IFS=$'\t' read -r name role listen; do
        ns="$(host_ns "$name")"
        port="$(port_of "$listen")"
        ip netns exec "$ns" "$bin/branchy-$role" --topology "$generated" --node "$name" \
            </dev/null >"$work/$name.log" 2>&1 &
        pid=$!
        server_pids+=("$pid")
        waited=0
        until netns_listening "$ns" "$port"; do
            proc_running "$pid" || { echo "$name exited before listening: $(tail -n 1 "$work/$name.log")"; return 1; }
            [ "$waited" -lt $((START_TIMEOUT * 10)) ] || { echo "$name did not listen within $START_TIMEOUT s"; return 1; }
            sleep 0.1
            waited=$((waited + 1))
        done
        bound="$(ip netns exec "$ns" ss -Hltn "sport = :$port" | awk '{ print $4; exit }')"
        [ "$bound" = "0.0.0.0:$port" ] || { echo "$name is bound to $bound, not 0.0.0.0:$port"; return 1; }
        echo "started $name ($role, pid $pid) in $ns: bound to $bound, dialled at ${host_ip[$name]}:$port" >&2
    done < <(topology_nodes "$generated" | awk -F'\t' '$2 == "cloud" { print $1 "\t" $2 "\t" $3 }
                                                      $2 == "edge" { e = e $1 "\t" $2 "\t" $3 "\n" } END { printf "%s", e }')
    servers_up=1
}

# The device in its namespace, through the servers; a complete report and every sample answered.
check_device() {
    [ "$servers_up" -eq 1 ] || { echo "the servers are not all running"; return 1; }
    local status=0
    local -a args=(--topology "$generated" --node "$device" --report "$work/device.json" --predictions "$work/device.jsonl")
    [ -z "$limit" ] || args+=(--limit "$limit")
    # In the background, so that a signal to this script is handled at once.
    timeout "$DEVICE_TIMEOUT" ip netns exec "$(host_ns "$device")" "$bin/branchy-device" "${args[@]}" \
        </dev/null >"$work/device.out" 2>"$work/device.err" &
    device_pid=$!
    wait "$device_pid" || status=$?
    device_pid=""
    if [ "$status" -ne 0 ]; then
        [ "$status" -ne 124 ] || { echo "the device did not finish within $DEVICE_TIMEOUT s"; return 1; }
        echo "the device exited $status: $(tail -n 1 "$work/device.err")"
        return 1
    fi
    local samples
    samples="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["samples"])' "$work/device.json")" \
        || { echo "no readable report"; return 1; }
    [ -z "$limit" ] || [ "$samples" -eq "$limit" ] || { echo "the report has $samples samples, not $limit"; return 1; }
    "${e2e[@]}" report "$work/device.json" "$samples" "$work/device.jsonl" || return 1
    echo "$samples" > "$work/samples"
}

# Each link went to the address its upstream is dialled at, not to loopback.
check_dialled() {
    local name up line
    while IFS=$'\t' read -r name _ _ up _; do
        [ "$up" != "-" ] || continue
        line="connected to $(node_field "$generated" "$up" 2) '$up' at ${host_ip[$up]}:$(port_of "$(node_field "$generated" "$up" 3)")"
        if [ "$name" = "$device" ]; then
            grep -qF "$line" "$work/device.err" || { echo "the device's log has no '$line'"; return 1; }
        elif [ -f "$work/$name.log" ]; then
            grep -qF "$line" "$work/$name.log" || { echo "$name's log has no '$line'"; return 1; }
        fi
    done < <(topology_nodes "$generated")
}

# The same (sample, exit, class) as `branchy eval` on the generated topology.
check_matches_eval() {
    [ -s "$work/device.jsonl" ] || { echo "no predictions from the device"; return 1; }
    local thresholds defaults info
    info="$("$bin/branchy" info --model "$model" 2>&1)" || info=""
    defaults="$(sed -nE 's/^default thresholds \[([^]]*)\].*/\1/p' <<< "$info" | tr -d ' ')"
    thresholds="$(eval_thresholds "$generated" "$device" "$defaults")" || { echo "$thresholds"; return 1; }
    local -a args=(eval --model "$model" --topology "$generated" --device "$device" --predictions "$work/eval.jsonl")
    [ -z "$dataset" ] || args+=(--dataset "$dataset")
    [ -z "$limit" ] || args+=(--limit "$limit")
    [ -z "$thresholds" ] || args+=(--thresholds "$thresholds")
    echo "branchy ${args[*]}" >&2
    "$bin/branchy" "${args[@]}" > "$work/eval.out" 2> "$work/eval.err" \
        || { echo "branchy eval failed: $(tail -n 1 "$work/eval.err")"; return 1; }
    "${e2e[@]}" same-predictions "$work/device.jsonl" "$work/eval.jsonl" "$work/device.json"
}

# Everything stops and every namespace goes away.
check_cleanup() {
    [ "${#server_pids[@]}" -eq 0 ] || stop_children "$log" "${server_pids[@]}"
    server_pids=()
    servers_up=0
    netns_cleanup "$PREFIX" >&2 || true
    [ -z "$(netns_list "$PREFIX")" ] || { echo "namespaces left: $(netns_list "$PREFIX" | tr '\n' ' ')"; return 1; }
}

if [ -z "$limit" ]; then samples_label="the whole test set"; elif [ "$limit" = 1 ]; then samples_label="1 sample"; else samples_label="$limit samples"; fi
check "namespaces for $(cut -f1 <<< "$nodes" | tr '\n' ' ' | sed 's/ $//; s/ /, /g') on one bridge ($SUBNET.0/24)" check_namespaces \
    || { echo "$passed passed, $failed failed"; exit 1; }
check "topology with each server bound to 0.0.0.0 and dialled at its namespace's IP (${generated#"$REPO_ROOT"/})" check_topology || true
check "servers bound to 0.0.0.0 in their namespaces" check_servers || true
check "$samples_label through the device in its namespace, all answered" check_device || true
check "each node dialled its upstream at the upstream's namespace address" check_dialled || true
check "predictions identical to branchy eval on the generated topology" check_matches_eval || true
check "servers stopped, namespaces removed" check_cleanup || true

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
