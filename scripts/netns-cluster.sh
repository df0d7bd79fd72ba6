#!/usr/bin/env bash
# The cluster on several hosts, emulated: each node of a topology (default topology/local.yaml) in its
# own network namespace with its own IP on one bridge (10.77.1.0/24, in the namespace bhost-lan). Each
# server binds 0.0.0.0:PORT and is dialled at its namespace's IP (`address:`), as on real hosts (the
# generated topology: run/netns-cluster/topology.yaml); the test set (or --limit N) runs through the
# device in its namespace with the predictions of `branchy eval` on the generated topology.
# --cloud-replicas N (N >= 2): the cloud runs as N replicas in namespaces of their own (bhost-cloud-0,
# ...), listed under `replicas:` (each with `metrics:` at IP:MPORT, the cloud's metrics port or PORT +
# 1000) and started with --replica K; the edge must connect to each, and each must answer requests
# (branchy_requests_total, together the samples the report has the cloud answer).
# --replicas-by-name as well: the cloud's children find the replicas by one name, `replicas:
# "cloud.branchy.test:PORT"`, which /etc/netns/NS/hosts (with `multi on` in host.conf, without which
# glibc returns only the first matching line) of each child's namespace resolves to every replica's IP;
# the replicas start without --replica, binding the node's listen: and metrics:.
# Needs root; removes its namespaces (bhost-*), their processes and /etc/netns/bhost-* at the end, on
# Ctrl-C and on SIGTERM too, and those of a crashed run. Prints `ok`/`not ok` lines and `N passed, M
# failed`; details in run/netns-cluster/. Environment: BRANCHY_BIN, START_TIMEOUT (30), DEVICE_TIMEOUT (900).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/netns.sh"

REPLICAS_NAME=cloud.branchy.test
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
limit="" topology=topology/local.yaml cloud_replicas=1 by_name=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        --limit|--topology|--cloud-replicas) [ "$#" -ge 2 ] && [ -n "$2" ] || { usage >&2; die "$1 needs a value"; }
            v="${1#--}"; printf -v "${v//-/_}" %s "$2"; shift 2 ;;
        --replicas-by-name) by_name=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[ -z "$limit" ] || [[ "$limit" =~ ^[1-9][0-9]*$ ]] || die "--limit must be a positive integer"
[[ "$cloud_replicas" =~ ^[1-9][0-9]*$ ]] || die "--cloud-replicas must be a positive integer"
[ "$cloud_replicas" -le 200 ] || die "--cloud-replicas: at most 200 (one /24 holds every host)"
[ "$by_name" -eq 0 ] || [ "$cloud_replicas" -ge 2 ] || die "--replicas-by-name needs --cloud-replicas N with N >= 2"
topology="$(resolve_topology "$topology")"
cd "$REPO_ROOT"

PREFIX=bhost- SUBNET=10.77.1   # hosts .1, .2, ... in the order they are added
work="$REPO_ROOT/run/netns-cluster"
log="$work/netns-cluster.log"
generated="$work/topology.yaml"
DEVICE_TIMEOUT="${DEVICE_TIMEOUT:-900}"
export NETNS_STATE_DIR="$work/netns"
netns_require
ensure_packages openssl:openssl curl:curl
ensure_built
bin="$BRANCHY_BIN"
rm -rf "$work"
mkdir -p "$work" "$NETNS_STATE_DIR"
: > "$log"
netns_trap

nodes="$(topology_nodes "$topology")"
device="$(awk -F'\t' '$2 == "device" { print $1; exit }' <<< "$nodes")"
replicated="" children=""   # the node run as replicas; with --replicas-by-name, the nodes whose upstream it is
if [ "$cloud_replicas" -ge 2 ]; then
    replicated="$(awk -F'\t' '$2 == "cloud" { print $1 }' <<< "$nodes")"
    [ "$(grep -c . <<< "$replicated")" -eq 1 ] || die "--cloud-replicas needs exactly one cloud node in $topology, found: ${replicated:-none}"
    [ -z "$(topology_query "$topology" '[n["name"] for n in t["nodes"] if n["replicas"] is not None]')" ] || die "--cloud-replicas: $topology already lists replicas"
    [ "$(node_field "$topology" "$replicated" 3)" != - ] || die "--cloud-replicas: cloud '$replicated' of $topology has no listen: (its port is every replica's)"
    [ "$by_name" -eq 0 ] || children="$(awk -F'\t' -v up="$replicated" '$4 == up { print $1 }' <<< "$nodes")"
    [ "$by_name" -eq 0 ] || [ -n "$children" ] || die "--replicas-by-name: no node of $topology has '$replicated' as its upstream"
fi

declare -A host_ip=()   # node (or replica) name -> its namespace's IP
# node_hosts NODE: the hosts that run NODE: itself, or NODE-0, NODE-1, ... for the replicated cloud.
node_hosts() { if [ -n "$replicated" ] && [ "$1" = "$replicated" ]; then seq -f "$1-%g" 0 $((cloud_replicas - 1)); else echo "$1"; fi; }
all_hosts() { local n; for n in $(cut -f1 <<< "$nodes"); do node_hosts "$n"; done; }
ips_of() { local h; for h in $(node_hosts "$1"); do echo "${host_ip[$h]}"; done; }
# dial_lines NODE: the line a child logs for each connection to NODE (one per replica).
dial_lines() {
    local port ip
    port="$(port_of "$(node_field "$generated" "$1" 3)")"
    for ip in $(ips_of "$1"); do echo "connected to $(node_field "$generated" "$1" 2) '$1' at $ip:$port"; done
}
log_of() { if [ "$1" = "$device" ]; then echo "$work/device.err"; else echo "$work/$1.log"; fi; }
servers_up=0

check_namespaces() {
    [ -n "$device" ] || { echo "no device in $topology"; return 1; }
    ! all_hosts | grep -qx lan || { echo "a node named 'lan' would share the bridge's namespace ${PREFIX}lan"; return 1; }
    if [ -n "$(netns_list "$PREFIX")" ] || compgen -G "/etc/netns/$PREFIX*" >/dev/null; then
        say "removing what an earlier run left: $( (netns_list "$PREFIX"; compgen -G "/etc/netns/$PREFIX*") | tr '\n' ' ')"
        netns_cleanup "$PREFIX"
        [ -z "$(netns_list "$PREFIX")" ] || { echo "could not remove the namespaces of an earlier run"; return 1; }
        ! compgen -G "/etc/netns/$PREFIX*" >/dev/null || { echo "could not remove the files /etc/netns/$PREFIX* of an earlier run"; return 1; }
    fi
    netns_create "${PREFIX}lan" && netns_bridge "${PREFIX}lan" br0 - || { echo "could not make the bridge namespace ${PREFIX}lan"; return 1; }
    local name i=0
    for name in $(all_hosts); do
        i=$((i + 1)) host_ip[$name]="$SUBNET.$i"
        netns_create "$PREFIX$name" && netns_attach "$PREFIX$name" eth0 "${PREFIX}lan" "h$i" br0 "$SUBNET.$i/24" \
            || { echo "could not make the namespace of '$name'"; return 1; }
        echo "host $name: namespace $PREFIX$name, $SUBNET.$i" >>"$log"
    done
    for name in $(all_hosts); do   # the device's host reaches every other (a refusal counts: the host is there)
        [ "$name" = "$device" ] || ip netns exec "$PREFIX$device" python3 -c 'import socket, sys
try: socket.create_connection((sys.argv[1], 9), timeout=3)
except ConnectionRefusedError: pass' "${host_ip[$name]}" || { echo "$device cannot reach $name at ${host_ip[$name]}"; return 1; }
    done
}

# In the namespace of each child of the replicated cloud, /etc/netns/NS/hosts (the machine's /etc/hosts
# plus one line per replica) and host.conf (`multi on`): getaddrinfo there (getent ahostsv4, as the
# child's lookup) must give every replica's IP and no other.
check_name_resolves() {
    local child ns want got
    want="$(ips_of "$replicated" | sort)"
    for child in $children; do
        ns="$PREFIX$child"
        { echo "# Written by scripts/netns-cluster.sh --replicas-by-name: /etc/hosts in $ns."; grep -vwF "$REPLICAS_NAME" /etc/hosts || true
          for got in $want; do printf '%s\t%s\n' "$got" "$REPLICAS_NAME"; done; } | netns_etc "$ns" hosts || { echo "could not write /etc/netns/$ns/hosts"; return 1; }
        printf '# Written by scripts/netns-cluster.sh --replicas-by-name: every matching line of /etc/hosts.\nmulti on\n' \
            | netns_etc "$ns" host.conf || { echo "could not write /etc/netns/$ns/host.conf"; return 1; }
        cat "/etc/netns/$ns/hosts" "/etc/netns/$ns/host.conf" >&2
        got="$(ip netns exec "$ns" getent ahostsv4 "$REPLICAS_NAME" | awk '$2 == "STREAM" { print $1 }' | sort -u)" || got=""
        echo "ip netns exec $ns getent ahostsv4 $REPLICAS_NAME: $(echo $got)" >&2
        [ "$got" = "$want" ] || { echo "$REPLICAS_NAME resolves in $ns to $(echo ${got:-nothing}), not to every replica ($(echo $want))"; return 1; }
        figure "in $ns: $(echo $got | sed 's/ /, /g')"
    done
}

# The generated topology: every server binds 0.0.0.0 and is dialled at its namespace's IP(s); the
# certificates name nodes, not addresses, so it uses the same ones. The real loader must accept it.
check_topology() {
    local name listen port mport ips edits=()
    ensure_certs "$topology" || { echo "could not make the certificates of $topology"; return 1; }
    while read -r name _ listen; do
        port="$(port_of "$listen")" ips=($(ips_of "$name"))
        edits+=("$name.listen=0.0.0.0:$port")
        if [ "${#ips[@]}" -eq 1 ]; then edits+=("$name.address=${ips[0]}:$port"); continue; fi
        mport="$(topology_query "$topology" '[(n["metrics"] or ":" + str(int(a[1]) + 1000)).rsplit(":", 1)[1] for n in t["nodes"] if n["name"] == a[0]]' "$name" "$port")"
        if [ "$by_name" -eq 1 ]; then edits+=("$name.address=" "$name.metrics=0.0.0.0:$mport" "$name.replicas=$REPLICAS_NAME:$port")
        else edits+=("$name.address=" "$name.metrics=" "$name.replicas=[$(printf '{"address": "%s:'"$port"'", "metrics": "%s:'"$mport"'"},' $(for i in "${ips[@]}"; do echo "$i $i"; done) | sed 's/,$//')]"); fi
    done < <(servers_of "$topology")
    topology_with "$topology" "$generated" "${edits[@]}" || { echo "could not write $generated"; return 1; }
    cat "$generated" >&2
    "$bin/branchy" eval --topology "$generated" --limit 1 >"$work/validate.out" 2>&1 || { echo "the generated topology is refused: $(tail -n 1 "$work/validate.out")"; return 1; }
}

# Servers, clouds first, each in its namespace (each replica of the replicated cloud in its own, with
# --replica K unless by name), bound to 0.0.0.0; then every child of the replicated cloud (other than
# the device) connected to every replica, so that requests can reach each from the first sample on.
check_servers() {
    [ -s "$generated" ] || { echo "no generated topology"; return 1; }
    local name role listen host k bound line child
    while read -r name role listen; do
        k=0
        for host in $(node_hosts "$name"); do
            NODE_ARGS="$([ "$name" != "$replicated" ] || [ "$by_name" -eq 1 ] || echo "--replica $k")" LISTENING="netns_listening $PREFIX$host" \
                start_server "$generated" "$name" "$work/$host.log" ip netns exec "$PREFIX$host" || return 1
            bound="$(ip netns exec "$PREFIX$host" ss -Hltn "sport = :$(port_of "$listen")" | awk '{ print $4; exit }')"
            [ "$bound" = "0.0.0.0:$(port_of "$listen")" ] || { echo "$host is bound to $bound, not 0.0.0.0:$(port_of "$listen")"; return 1; }
            echo "started $host ($role, replica $k) in $PREFIX$host: bound to $bound, dialled at ${host_ip[$host]}:$(port_of "$listen")" >&2
            k=$((k + 1))
        done
    done < <(servers_of "$generated")
    for child in $( [ -z "$replicated" ] || awk -F'\t' -v up="$replicated" -v d="$device" '$4 == up && $1 != d { print $1 }' <<< "$nodes"); do
        while IFS= read -r line; do
            wait_for "${START_TIMEOUT:-30}" grep -qF "$line" "$work/$child.log" || { echo "$child's log has no '$line' within ${START_TIMEOUT:-30} s"; return 1; }
        done < <(dial_lines "$replicated")
    done
    servers_up=1
}
check_device() {
    [ "$servers_up" -eq 1 ] || { echo "the servers are not all running"; return 1; }
    DEVICE_NS="$PREFIX$device" run_device "$generated" "$device" "$work/device" ${limit:+--limit "$limit"} > "$work/why" &   # a signal is handled at once
    device_pid=$!
    wait "$device_pid" || { device_pid=""; cat "$work/why"; return 1; }
    device_pid=""
    local samples
    samples="$("${PY[@]}" get "$work/device.json" 'r["samples"]')" || { echo "no readable report"; return 1; }
    [ -z "$limit" ] || [ "$samples" -eq "$limit" ] || { echo "the report has $samples samples, not $limit"; return 1; }
    "${PY[@]}" report "$work/device.json" "$samples" "$work/device.jsonl"
}
# Each link went to the address its upstream is dialled at, not to loopback; a child of the replicated
# cloud to every replica's (by name: after it logged that the name resolves to all of them).
check_dialled() {
    local name up line
    [ "$by_name" -eq 0 ] || line="$REPLICAS_NAME resolves to $(ips_of "$replicated" | LC_ALL=C sort | paste -sd, | sed 's/,/, /g')"
    for name in $children; do grep -qF "$line" "$(log_of "$name")" || { echo "$name's log has no '$line'"; return 1; }; done
    while IFS=$'\t' read -r name _ _ up _; do
        [ "$up" != - ] || continue
        while IFS= read -r line; do
            [ "$name" = "$device" ] || [ -f "$work/$name.log" ] || continue
            grep -qF "$line" "$(log_of "$name")" || { [ "$name" = "$device" ] && echo "the device's log has no '$line'" || echo "$name's log has no '$line'"; return 1; }
        done < <(dial_lines "$up")
    done < <(topology_nodes "$generated")
}
# Every replica answered requests: its branchy_requests_total, read from the device's namespace at the
# replica's metrics address (by name: its IP and the node's metrics port), above 0, and together the
# samples the report has the cloud answer.
check_replicas_answered() {
    [ "$servers_up" -eq 1 ] || { echo "the servers are not all running"; return 1; }
    [ -s "$work/device.json" ] || { echo "no report from the device"; return 1; }
    local host address count total=0 expected
    for host in $(node_hosts "$replicated"); do
        address="$(topology_query "$generated" '[r["metrics"] for n in t["nodes"] if n["name"] == a[0] for r in (n["replicas"] if isinstance(n["replicas"], list)
            else [{"metrics": a[1] + ":" + n["metrics"].rsplit(":", 1)[1]}]) if r["metrics"].rsplit(":", 1)[0] == a[1]][:1]' "$replicated" "${host_ip[$host]}")" || address=""
        [ -n "$address" ] || { echo "$host has no metrics address in $generated"; return 1; }
        count="$(ip netns exec "$PREFIX$device" "${PY[@]}" metric "$address" branchy_requests_total)" || { echo "no metrics from $host at http://$address/metrics"; return 1; }
        echo "$host at $address: branchy_requests_total $count" >&2
        figure "$host: $count requests"
        [ "$count" -gt 0 ] || { echo "$host answered no request"; return 1; }
        total=$((total + count))
    done
    expected="$("${PY[@]}" get "$work/device.json" "sum(e['count'] for e in r['exits'] if e.get('node') == '$replicated')")" || { echo "no readable report"; return 1; }
    [ "$total" -eq "$expected" ] || { echo "the replicas answered $total requests, the report has '$replicated' answer $expected samples"; return 1; }
}
check_matches_eval() {   # eval --topology applies the thresholds of the nodes on the device's path, as the cluster does
    [ -s "$work/device.jsonl" ] || { echo "no predictions from the device"; return 1; }
    same_as_eval "$generated" "$work/device" --device "$device" ${limit:+--limit "$limit"}
}
check_cleanup() {
    [ "${#started[@]}" -eq 0 ] || stop_children "$log" "${started[@]}"
    started=() servers_up=0
    netns_cleanup "$PREFIX" >&2 || true
    [ -z "$(netns_list "$PREFIX")" ] || { echo "namespaces left: $(netns_list "$PREFIX" | tr '\n' ' ')"; return 1; }
    ! compgen -G "/etc/netns/$PREFIX*" >/dev/null || { echo "files left: $(echo /etc/netns/"$PREFIX"*)"; return 1; }
}

case "$limit" in "") samples="the whole test set" ;; 1) samples="1 sample" ;; *) samples="$limit samples" ;; esac
answered="every replica of '$replicated'" servers="" cleanup="" replicas="" dialled=""
if [ "$by_name" -eq 1 ]; then
    replicas=", '$replicated' as $cloud_replicas replicas found by name (replicas: $REPLICAS_NAME:$(port_of "$(node_field "$topology" "$replicated" 3)"))"
    servers=", '$replicated' as $cloud_replicas replicas started without --replica" dialled=", every address $REPLICAS_NAME resolves to"
    answered="every replica of '$replicated' found by name" cleanup=", /etc/netns/$PREFIX* removed"
elif [ -n "$replicated" ]; then
    replicas=", '$replicated' as $cloud_replicas replicas" servers="$replicas" dialled=", every replica's"
fi
run_check "namespaces for $(all_hosts | paste -sd, | sed 's/,/, /g') on one bridge ($SUBNET.0/24)" check_namespaces
[ "$failed" -eq 0 ] || { summary; exit 1; }
[ "$by_name" -eq 0 ] || run_check "$REPLICAS_NAME resolves to every replica of '$replicated' in the namespace of $(echo $children | sed 's/ /, /g') (/etc/netns/NS/hosts, getaddrinfo)" check_name_resolves
run_check "topology with each server bound to 0.0.0.0 and dialled at its namespace's IP$replicas (${generated#"$REPO_ROOT"/})" check_topology
run_check "servers bound to 0.0.0.0 in their namespaces$servers" check_servers
run_check "$samples through the device in its namespace, all answered" check_device
run_check "each node dialled its upstream at the upstream's namespace address$dialled" check_dialled
[ -z "$replicated" ] || run_check "$answered answered requests, in all as many as the report's samples answered at '$replicated'" check_replicas_answered
run_check "predictions identical to branchy eval on the generated topology" check_matches_eval
run_check "servers stopped, namespaces removed$cleanup" check_cleanup
summary
