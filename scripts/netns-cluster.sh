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
# With --cloud-replicas N (N >= 2) the cloud node runs as N replicas, each in its own
# namespace (bhost-cloud-0, bhost-cloud-1, ...) with its own IP: the generated topology
# gives the cloud `listen: 0.0.0.0:PORT` and `replicas:` with each replica's IP:PORT
# (and `metrics:` at IP:MPORT, MPORT the cloud's metrics port, else PORT + 1000) instead
# of `address:`; each replica runs `branchy-cloud --replica K`, the edge must connect to
# every one, and every replica must answer requests (its branchy_requests_total, read
# from the device's namespace, above 0; together, the samples that reached the cloud).
#
# With --replicas-by-name as well, the children of the cloud find its replicas by name, as
# behind a Kubernetes headless Service: the generated topology gives the cloud
# `listen: 0.0.0.0:PORT`, `metrics: 0.0.0.0:MPORT` and `replicas: "cloud.branchy.test:PORT"`
# (one host name) instead of the list; the namespace of each child of the cloud (the edge)
# gets /etc/netns/NS/hosts, which `ip netns exec` puts over /etc/hosts, with one
# `IP cloud.branchy.test` line per replica, and /etc/netns/NS/host.conf with `multi on`
# (without it glibc's getaddrinfo returns only the first matching line); getaddrinfo there
# (`getent ahostsv4`) must return every replica's IP. The replicas start without --replica,
# each binding the node's listen: and metrics: (read at its IP:MPORT); the edge resolves
# the name (at start and every 5 s) and must connect to every address.
#
# Prints `ok - ...` or `not ok - ...` per check, then `N passed, M failed`; exits 1
# when a check failed. Details (node logs, reports) go to run/netns-cluster/.
# Needs root. Removes its namespaces (bhost-*), every process in them and their files
# /etc/netns/bhost-* at the end, on Ctrl-C and on SIGTERM too, and those a crashed earlier
# run left at the start.
# Environment: BRANCHY_BIN (folder of built executables; skips the build),
# START_TIMEOUT (seconds per server, default 30), DEVICE_TIMEOUT (default 900).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/netns.sh"

usage() {
    cat <<USAGE
usage: $(basename "$0") [--limit N] [--topology F] [--cloud-replicas N [--replicas-by-name]]
  --limit N            samples through the device (default: the whole test set, 10,000)
  --topology F         the cluster (default topology/local.yaml); every node gets a namespace
  --cloud-replicas N   run the cloud node as N replicas, each in its own namespace
                       (bhost-cloud-0, bhost-cloud-1, ...); default 1, one cloud process
  --replicas-by-name   with --cloud-replicas N >= 2: the topology names the replicas by one
                       host name, replicas: "$REPLICAS_NAME:PORT", which resolves (the
                       /etc/hosts of the cloud's children's namespaces) to every replica's
                       IP, instead of listing them; the replicas start without --replica
USAGE
}

REPLICAS_NAME=cloud.branchy.test   # the host name of the replicas, with --replicas-by-name
limit="" topology=topology/local.yaml cloud_replicas=1 by_name=0
need() { [ "$#" -ge 2 ] && [ -n "$2" ] || { usage >&2; die "$1 needs a value"; }; }
while [ "$#" -gt 0 ]; do
    case "$1" in
        --limit) need "$@"; limit="$2"; shift 2 ;;
        --topology) need "$@"; topology="$2"; shift 2 ;;
        --cloud-replicas) need "$@"; cloud_replicas="$2"; shift 2 ;;
        --replicas-by-name) by_name=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[ -z "$limit" ] || [[ "$limit" =~ ^[1-9][0-9]*$ ]] || die "--limit must be a positive integer"
[[ "$cloud_replicas" =~ ^[1-9][0-9]*$ ]] || die "--cloud-replicas must be a positive integer"
[ "$cloud_replicas" -le 200 ] || die "--cloud-replicas: at most 200 (one /24 holds every host)"
[ "$by_name" -eq 0 ] || [ "$cloud_replicas" -ge 2 ] || die "--replicas-by-name needs --cloud-replicas N with N >= 2"
topology="$(resolve_topology "$topology")" || exit 1
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
[ "$cloud_replicas" -eq 1 ] || ensure_packages curl:curl
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
    if compgen -G "/etc/netns/$PREFIX*" >/dev/null; then
        say "netns-cluster: files left over: $(echo /etc/netns/"$PREFIX"*)"
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

# node_hosts NODE: the hosts that run node NODE, one a line: NODE itself, or NODE-0,
# NODE-1, ... for the replicated cloud (--cloud-replicas N >= 2).
node_hosts() {
    local k
    if [ "$1" = "$replicated" ]; then
        for ((k = 0; k < cloud_replicas; k++)); do printf '%s-%s\n' "$1" "$k"; done
    else
        printf '%s\n' "$1"
    fi
}

# all_hosts: every host, in the order of the topology's nodes.
all_hosts() {
    local name
    for name in $(cut -f1 <<< "$nodes"); do node_hosts "$name"; done
}

# dial_lines NODE: the line a child logs for each connection to NODE (one per replica).
dial_lines() {
    local role port host
    role="$(node_field "$generated" "$1" 2)"
    port="$(port_of "$(node_field "$generated" "$1" 3)")"
    for host in $(node_hosts "$1"); do
        printf "connected to %s '%s' at %s:%s\n" "$role" "$1" "${host_ip[$host]}" "$port"
    done
}

# add_host NAME: a namespace for node (or replica) NAME with the next IP of the subnet,
# joined to the bridge (interface eth0 inside, port hN on the bridge). Call it again,
# for another replica or node, to grow the layout.
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
replicated=""   # the node that runs as --cloud-replicas replicas, when N >= 2
children=""     # with --replicas-by-name: the nodes whose upstream is $replicated
if [ "$cloud_replicas" -ge 2 ]; then
    clouds="$(awk -F'\t' '$2 == "cloud" { print $1 }' <<< "$nodes")"
    [ "$(grep -c . <<< "$clouds")" -eq 1 ] || die "--cloud-replicas needs exactly one cloud node in $topology, found: ${clouds:-none}"
    replicated="$clouds"
    [ -z "$(topology_query "$topology" '[n["name"] for n in t["nodes"] if n["replicas"] is not None]')" ] \
        || die "--cloud-replicas: $topology already lists replicas"
    [ "$(node_field "$topology" "$replicated" 3)" != - ] || die "--cloud-replicas: cloud '$replicated' of $topology has no listen: (its port is every replica's)"
    if [ "$by_name" -eq 1 ]; then
        children="$(topology_nodes "$topology" | awk -F'\t' -v up="$replicated" '$4 == up { print $1 }')"
        [ -n "$children" ] || die "--replicas-by-name: no node of $topology has '$replicated' as its upstream"
    fi
fi

# check NAME FUNCTION: runs FUNCTION in this shell (so that the processes and hosts it
# adds stay known); it prints nothing on success, or why it failed on its last line
# of standard output; its standard error goes to the log. Figures it appends to
# $work/figures (one a line) are shown after the name. Prints `ok - NAME (figures)` or
# `not ok - NAME: why`; returns 1 on failure.
check() {
    local name="$1" why status=0 figures
    printf '\n### %s\n' "$name" >> "$log"
    : > "$work/figures"
    "$2" > "$work/why" 2>>"$log" || status=$?
    figures="$(awk 'NF { printf "%s%s", sep, $0; sep = "; " }' "$work/figures")"
    if [ "$status" -eq 0 ]; then
        echo "ok - $name${figures:+ ($figures)}"
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
    ! all_hosts | grep -qx lan || { echo "a node named 'lan' would share the bridge's namespace $NS_LAN"; return 1; }
    if [ -n "$(netns_list "$PREFIX")" ] || compgen -G "/etc/netns/$PREFIX*" >/dev/null; then
        say "removing what an earlier run left: $( (netns_list "$PREFIX"; compgen -G "/etc/netns/$PREFIX*") | tr '\n' ' ')"
        netns_cleanup "$PREFIX"
        [ -z "$(netns_list "$PREFIX")" ] || { echo "could not remove the namespaces of an earlier run"; return 1; }
        ! compgen -G "/etc/netns/$PREFIX*" >/dev/null || { echo "could not remove the files /etc/netns/$PREFIX* of an earlier run"; return 1; }
    fi
    lan_create || { echo "could not make the bridge namespace $NS_LAN"; return 1; }
    local name
    for name in $(all_hosts); do
        add_host "$name" || { echo "could not make the namespace of '$name'"; return 1; }
    done
    # The device's host reaches every other across the bridge.
    for name in $(all_hosts); do
        [ "$name" != "$device" ] || continue
        reachable "$(host_ns "$device")" "${host_ip[$name]}" \
            || { echo "$device cannot reach $name at ${host_ip[$name]}"; return 1; }
    done
}

# --replicas-by-name: in the namespace of each child of the replicated cloud, $REPLICAS_NAME
# names every replica's IP. /etc/netns/NS/hosts (which `ip netns exec NS` bind-mounts over
# /etc/hosts) is the machine's /etc/hosts plus one line per replica; /etc/netns/NS/host.conf
# says `multi on`, since glibc's getaddrinfo stops at the first matching line of /etc/hosts
# without it (and the machine's host.conf may not say it). getaddrinfo there (getent
# ahostsv4, as the child's lookup) must return every replica's IP and no other.
check_name_resolves() {
    local child ns host want got
    want="$(for host in $(node_hosts "$replicated"); do echo "${host_ip[$host]}"; done | sort)"
    for child in $children; do
        ns="$(host_ns "$child")"
        {
            echo "# Written by scripts/netns-cluster.sh --replicas-by-name: /etc/hosts in $ns."
            grep -vwF "$REPLICAS_NAME" /etc/hosts || true
            for host in $(node_hosts "$replicated"); do printf '%s\t%s\n' "${host_ip[$host]}" "$REPLICAS_NAME"; done
        } | netns_etc "$ns" hosts || { echo "could not write /etc/netns/$ns/hosts"; return 1; }
        printf '# Written by scripts/netns-cluster.sh --replicas-by-name: every matching line of /etc/hosts.\nmulti on\n' \
            | netns_etc "$ns" host.conf || { echo "could not write /etc/netns/$ns/host.conf"; return 1; }
        cat "/etc/netns/$ns/hosts" "/etc/netns/$ns/host.conf" >&2
        got="$(ip netns exec "$ns" getent ahostsv4 "$REPLICAS_NAME" | awk '$2 == "STREAM" { print $1 }' | sort -u)" || got=""
        echo "ip netns exec $ns getent ahostsv4 $REPLICAS_NAME: $(echo $got)" >&2
        [ "$got" = "$want" ] || { echo "$REPLICAS_NAME resolves in $ns to $(echo ${got:-nothing}), not to every replica ($(echo $want))"; return 1; }
        echo "in $ns: $(echo $got | sed 's/ /, /g')" >> "$work/figures"
    done
}

# Makes the TLS files when any is missing (as cluster.sh does); they name the
# nodes, not their addresses, so the generated topology uses the same ones.
check_topology() {
    local dir name host ips missing=0 pairs=()
    dir="$(topology_certs_dir "$topology")"
    [ -f "$dir/ca.pem" ] || missing=1
    for name in $(cut -f1 <<< "$nodes"); do
        [ -f "$dir/$name.pem" ] && [ -f "$dir/$name-key.pem" ] || missing=1
        # A replicated node: one IP per replica (they share the node's certificate).
        ips=""
        for host in $(node_hosts "$name"); do ips+=",${host_ip[$host]}"; done
        pairs+=("$name=${ips#,}")
    done
    if [ "$missing" -eq 1 ]; then
        scripts/gen-certs.sh "$topology" "$dir" >&2 || { echo "could not make the certificates of $topology"; return 1; }
    fi
    local -a by=()
    [ "$by_name" -eq 0 ] || by=(--by-name "$REPLICAS_NAME")
    python3 scripts/lib/netem.py hosts "$topology" "$generated" --bind 0.0.0.0 "${by[@]}" "${pairs[@]}" || return 1
    cat "$generated" >&2
    # The real loader must accept it.
    local -a args=(eval --model "$model" --topology "$generated" --limit 1)
    [ -z "$dataset" ] || args+=(--dataset "$dataset")
    "$bin/branchy" "${args[@]}" >"$work/validate.out" 2>&1 \
        || { echo "the generated topology is refused: $(tail -n 1 "$work/validate.out")"; return 1; }
}

# Servers, clouds first, each in its namespace (each replica of the replicated cloud in
# its own, with --replica K, or without it with --replicas-by-name); waits until each
# listens on 0.0.0.0, then until every child of the replicated cloud (other than the
# device) has connected to every replica.
check_servers() {
    [ -s "$generated" ] || { echo "no generated topology"; return 1; }
    local name role listen port host ns pid waited bound k
    local -a replica
    while IFS=$'\t' read -r name role listen; do
        port="$(port_of "$listen")"
        k=0
        for host in $(node_hosts "$name"); do
            ns="$(host_ns "$host")"
            replica=()
            [ "$name" != "$replicated" ] || [ "$by_name" -eq 1 ] || replica=(--replica "$k")
            ip netns exec "$ns" "$bin/branchy-$role" --topology "$generated" --node "$name" "${replica[@]}" \
                </dev/null >"$work/$host.log" 2>&1 &
            pid=$!
            server_pids+=("$pid")
            waited=0
            until netns_listening "$ns" "$port"; do
                proc_running "$pid" || { echo "$host exited before listening: $(tail -n 1 "$work/$host.log")"; return 1; }
                [ "$waited" -lt $((START_TIMEOUT * 10)) ] || { echo "$host did not listen within $START_TIMEOUT s"; return 1; }
                sleep 0.1
                waited=$((waited + 1))
            done
            bound="$(ip netns exec "$ns" ss -Hltn "sport = :$port" | awk '{ print $4; exit }')"
            [ "$bound" = "0.0.0.0:$port" ] || { echo "$host is bound to $bound, not 0.0.0.0:$port"; return 1; }
            echo "started $host ($role${replica[*]:+, ${replica[*]}}, pid $pid) in $ns: bound to $bound, dialled at ${host_ip[$host]}:$port" >&2
            k=$((k + 1))
        done
    done < <(topology_nodes "$generated" | awk -F'\t' '$2 == "cloud" { print $1 "\t" $2 "\t" $3 }
                                                      $2 == "edge" { e = e $1 "\t" $2 "\t" $3 "\n" } END { printf "%s", e }')
    if [ -n "$replicated" ]; then
        # So that requests can go to every replica from the first sample on.
        local line
        for name in $(topology_nodes "$generated" | awk -F'\t' -v up="$replicated" -v d="$device" '$4 == up && $1 != d { print $1 }'); do
            while IFS= read -r line; do
                waited=0
                until grep -qF "$line" "$work/$name.log"; do
                    [ "$waited" -lt $((START_TIMEOUT * 10)) ] || { echo "$name's log has no '$line' within $START_TIMEOUT s"; return 1; }
                    sleep 0.1
                    waited=$((waited + 1))
                done
            done < <(dial_lines "$replicated")
        done
    fi
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

# Each link went to the address its upstream is dialled at, not to loopback; a child of
# the replicated cloud connected to every replica's (with --replicas-by-name, after it
# logged that the name resolves to all of them).
check_dialled() {
    local name up line file
    if [ "$by_name" -eq 1 ]; then
        line="$REPLICAS_NAME resolves to $(for name in $(node_hosts "$replicated"); do echo "${host_ip[$name]}"; done \
                                           | LC_ALL=C sort | paste -sd, | sed 's/,/, /g')"
        for name in $children; do
            if [ "$name" = "$device" ]; then file="$work/device.err"; else file="$work/$name.log"; fi
            grep -qF "$line" "$file" || { echo "$name's log has no '$line'"; return 1; }
        done
    fi
    while IFS=$'\t' read -r name _ _ up _; do
        [ "$up" != "-" ] || continue
        while IFS= read -r line; do
            if [ "$name" = "$device" ]; then
                grep -qF "$line" "$work/device.err" || { echo "the device's log has no '$line'"; return 1; }
            elif [ -f "$work/$name.log" ]; then
                grep -qF "$line" "$work/$name.log" || { echo "$name's log has no '$line'"; return 1; }
            fi
        done < <(dial_lines "$up")
    done < <(topology_nodes "$generated")
}

# node_metrics_port NODE: the port of NODE's own `metrics:` in the generated topology.
node_metrics_port() {
    local metrics
    metrics="$(topology_query "$generated" '[n["metrics"] for n in t["nodes"] if n["name"] == a[0]]' "$1")" || return 1
    [ -z "$metrics" ] || port_of "$metrics"
}

# Every replica of the replicated cloud answered requests: its branchy_requests_total (the
# sum of its series), read from the device's namespace at the replica's `metrics:` address
# (with --replicas-by-name, the replica's IP and the port of the node's `metrics:`, which
# every replica binds on 0.0.0.0), is above 0, and the replicas' add up to the samples the
# device's report has the cloud answer.
check_replicas_answered() {
    [ "$servers_up" -eq 1 ] || { echo "the servers are not all running"; return 1; }
    [ -s "$work/device.json" ] || { echo "no report from the device"; return 1; }
    local host ip address count total=0 expected mport=""
    if [ "$by_name" -eq 1 ]; then
        mport="$(node_metrics_port "$replicated")"
        [[ "$mport" =~ ^[0-9]+$ ]] || { echo "'$replicated' has no metrics: port in $generated"; return 1; }
    fi
    for host in $(node_hosts "$replicated"); do
        ip="${host_ip[$host]}"
        if [ -n "$mport" ]; then
            address="$ip:$mport"
        else
            # The replica's own `metrics:`, the one on its IP.
            address="$(topology_query "$generated" '[r["metrics"] for n in t["nodes"] if n["name"] == a[0]
                                                     for r in (n["replicas"] if isinstance(n["replicas"], list) else [])
                                                     if r["metrics"] and r["metrics"].rsplit(":", 1)[0] == a[1]][:1]' \
                       "$replicated" "$ip")" || address=""
        fi
        [ -n "$address" ] || { echo "$host has no metrics address in $generated"; return 1; }
        count="$(ip netns exec "$(host_ns "$device")" curl -sf --max-time 10 "http://$address/metrics" \
                 | awk '$1 ~ /^branchy_requests_total([{]|$)/ { s += $NF } END { printf "%d\n", s }')" \
            || { echo "no metrics from $host at http://$address/metrics"; return 1; }
        echo "$host at $address: branchy_requests_total $count" >&2
        echo "$host: $count requests" >> "$work/figures"
        [ "$count" -gt 0 ] || { echo "$host answered no request"; return 1; }
        total=$((total + count))
    done
    expected="$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(sum(e["count"] for e in r["exits"] if e.get("node") == sys.argv[2]))' "$work/device.json" "$replicated")" \
        || { echo "no readable report"; return 1; }
    [ "$total" -eq "$expected" ] || { echo "the replicas answered $total requests, the report has '$replicated' answer $expected samples"; return 1; }
}

# The same (sample, exit, class) as `branchy eval` on the generated topology.
check_matches_eval() {
    [ -s "$work/device.jsonl" ] || { echo "no predictions from the device"; return 1; }
    # eval --topology applies the thresholds of the nodes on the device's path, as the cluster does.
    local -a args=(eval --model "$model" --topology "$generated" --device "$device" --predictions "$work/eval.jsonl")
    [ -z "$dataset" ] || args+=(--dataset "$dataset")
    [ -z "$limit" ] || args+=(--limit "$limit")
    echo "branchy ${args[*]}" >&2
    "$bin/branchy" "${args[@]}" > "$work/eval.out" 2> "$work/eval.err" \
        || { echo "branchy eval failed: $(tail -n 1 "$work/eval.err")"; return 1; }
    "${e2e[@]}" same-predictions "$work/device.jsonl" "$work/eval.jsonl" "$work/device.json"
}

# Everything stops and every namespace goes away, with its files in /etc/netns.
check_cleanup() {
    [ "${#server_pids[@]}" -eq 0 ] || stop_children "$log" "${server_pids[@]}"
    server_pids=()
    servers_up=0
    netns_cleanup "$PREFIX" >&2 || true
    [ -z "$(netns_list "$PREFIX")" ] || { echo "namespaces left: $(netns_list "$PREFIX" | tr '\n' ' ')"; return 1; }
    ! compgen -G "/etc/netns/$PREFIX*" >/dev/null || { echo "files left: $(echo /etc/netns/"$PREFIX"*)"; return 1; }
}

if [ -z "$limit" ]; then samples_label="the whole test set"; elif [ "$limit" = 1 ]; then samples_label="1 sample"; else samples_label="$limit samples"; fi
answered_label="every replica of '$replicated'" servers_label="" cleanup_label=""
if [ "$by_name" -eq 1 ]; then
    replicas_name="$REPLICAS_NAME:$(port_of "$(node_field "$topology" "$replicated" 3)")"
    replicas_label=", '$replicated' as $cloud_replicas replicas found by name (replicas: $replicas_name)"
    servers_label=", '$replicated' as $cloud_replicas replicas started without --replica"
    dialled_label=", every address $REPLICAS_NAME resolves to"
    answered_label="every replica of '$replicated' found by name"
    cleanup_label=", /etc/netns/$PREFIX* removed"
elif [ -n "$replicated" ]; then
    replicas_label=", '$replicated' as $cloud_replicas replicas"
    servers_label="$replicas_label"
    dialled_label=", every replica's"
else
    replicas_label="" dialled_label=""
fi
check "namespaces for $(all_hosts | tr '\n' ' ' | sed 's/ $//; s/ /, /g') on one bridge ($SUBNET.0/24)" check_namespaces \
    || { echo "$passed passed, $failed failed"; exit 1; }
if [ "$by_name" -eq 1 ]; then
    check "$REPLICAS_NAME resolves to every replica of '$replicated' in the namespace of $(echo $children | sed 's/ /, /g') (/etc/netns/NS/hosts, getaddrinfo)" check_name_resolves || true
fi
check "topology with each server bound to 0.0.0.0 and dialled at its namespace's IP$replicas_label (${generated#"$REPO_ROOT"/})" check_topology || true
check "servers bound to 0.0.0.0 in their namespaces$servers_label" check_servers || true
check "$samples_label through the device in its namespace, all answered" check_device || true
check "each node dialled its upstream at the upstream's namespace address$dialled_label" check_dialled || true
if [ -n "$replicated" ]; then
    check "$answered_label answered requests, in all as many as the report's samples answered at '$replicated'" check_replicas_answered || true
fi
check "predictions identical to branchy eval on the generated topology" check_matches_eval || true
check "servers stopped, namespaces removed$cleanup_label" check_cleanup || true

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
