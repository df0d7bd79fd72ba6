#!/usr/bin/env bash
# Starts, stops and inspects the server nodes (edges and cloud) of a topology on
# this machine. Devices are not started here: run branchy-device against the
# running cluster.
#
#   up      makes the certificates if missing, builds if needed, starts the
#           cloud, then the edges, in the background, and waits until each one
#           accepts TCP connections on its `listen:` port (a node bound to
#           0.0.0.0 or :: is probed on this machine's loopback address)
#   down    SIGTERM to every node, SIGKILL after STOP_TIMEOUT seconds
#   status  each node, its pid, whether it runs and whether its port listens
#
# Logs and pid files: run/<topology name>/<node>.log and <node>.pid.
# Environment: BRANCHY_BIN (folder of built executables; skips the build),
# START_TIMEOUT (seconds per node, default 30), STOP_TIMEOUT (default 10).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() {
    cat <<USAGE
usage: $(basename "$0") up|down|status [TOPOLOGY]
TOPOLOGY defaults to topology/local.yaml. 'status' exits 0 when every node is up, 3 otherwise.
USAGE
}

action="${1:-}"
case "$action" in
    up|down|status) [ "$#" -le 2 ] || { usage >&2; exit 2; } ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac

# A topology path is relative to the directory the script was started from,
# or failing that to the repository root.
topology="${2:-topology/local.yaml}"
topology="$(resolve_topology "$topology")" || exit 1
cd "$REPO_ROOT"

cluster="$(basename "$topology")"
cluster="${cluster%.*}"
rundir="$REPO_ROOT/run/$cluster"
START_TIMEOUT="${START_TIMEOUT:-30}"
STOP_TIMEOUT="${STOP_TIMEOUT:-10}"

# The topology is read by `branchy topology show` (see common.sh): build once, here.
ensure_built

# Server nodes as "name role listen dial" lines: clouds first, then edges. `listen` is
# the address a node binds, `dial` the one its children dial (`address:`, else `listen`).
servers="$(topology_nodes "$topology" | awk -F'\t' '
    { dial = ($8 != "-" && $8 != "") ? $8 : $3 }
    $2 == "cloud" { print $1, $2, $3, dial }
    $2 == "edge"  { edges = edges $1 " " $2 " " $3 " " dial "\n" }
    END { printf "%s", edges }')"
[ -n "$servers" ] || die "no edge or cloud nodes in $topology"
while read -r name role listen dial; do
    [ "$listen" != "-" ] || die "node '$name' in $topology has no 'listen:' address"
done <<< "$servers"

pid_of() { cat "$rundir/$1.pid" 2>/dev/null || true; }

log_tail() {
    say "--- last lines of $1 ---"
    tail -n 20 "$1" >&2 2>/dev/null || true
    say "---"
}

# Makes the TLS files when the CA or any node's certificate or key is missing.
ensure_certs() {
    local dir name
    dir="$(topology_certs_dir "$topology")"
    local missing=0
    [ -f "$dir/ca.pem" ] || missing=1
    for name in $(topology_nodes "$topology" | cut -f1); do
        [ -f "$dir/$name.pem" ] && [ -f "$dir/$name-key.pem" ] || missing=1
    done
    if [ "$missing" -eq 1 ]; then
        say "making certificates in $dir"
        "$REPO_ROOT/scripts/gen-certs.sh" "$topology" "$dir" >&2
    fi
}

# Sends SIGTERM to the given nodes, waits, then SIGKILLs what is left.
stop_nodes() {
    local name pid entry waited=0
    local -a running=() left=()
    for name in "$@"; do
        pid="$(pid_of "$name")"
        if pid_alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            running+=("$name:$pid")
        fi
    done
    while :; do
        left=()
        for entry in "${running[@]}"; do
            pid_alive "${entry#*:}" && left+=("$entry")
        done
        [ "${#left[@]}" -eq 0 ] || [ "$waited" -ge $((STOP_TIMEOUT * 10)) ] && break
        sleep 0.1
        waited=$((waited + 1))
    done
    for entry in "${running[@]}"; do
        name="${entry%%:*}"; pid="${entry#*:}"
        if pid_alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
            echo "killed $name (pid $pid): still running ${STOP_TIMEOUT} s after SIGTERM"
        else
            echo "stopped $name (pid $pid)"
        fi
    done
    for name in "$@"; do rm -f "$rundir/$name.pid"; done
}

# Starts one node and waits until its port listens. The probe runs on this machine,
# against the bound address (port_listening takes 0.0.0.0 and :: as the loopback).
start_node() {
    local name="$1" role="$2" listen="$3" dial="$4" bin="$5"
    local host port log="$rundir/$name.log" pid waited=0
    host="$(host_of "$listen")"; port="$(port_of "$listen")"
    if port_listening "$host" "$port"; then
        say "port $port ($name) is already taken by another process:"
        ss -ltnp "sport = :$port" >&2 2>/dev/null || true
        return 1
    fi
    "$bin/branchy-$role" --topology "$topology" --node "$name" </dev/null >"$log" 2>&1 &
    pid=$!
    echo "$pid" > "$rundir/$name.pid"
    while ! port_listening "$host" "$port"; do
        if ! proc_running "$pid"; then
            say "$name exited before listening on $listen"
            log_tail "$log"
            return 1
        fi
        if [ "$waited" -ge $((START_TIMEOUT * 5)) ]; then
            say "$name did not listen on $listen within $START_TIMEOUT s"
            log_tail "$log"
            return 1
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
    local dialled=""
    [ "$dial" = "$listen" ] || dialled=", dialled at $dial"
    echo "started $name ($role, pid $pid), listening on $listen$dialled, log $log"
}

up() {
    mkdir -p "$rundir"
    local name role listen dial pid bin="" started=()
    local -a pending=()
    while read -r name role listen dial; do
        pid="$(pid_of "$name")"
        if pid_alive "$pid"; then
            echo "$name is already running (pid $pid)"
        else
            pending+=("$name $role $listen $dial")
        fi
    done <<< "$servers"
    if [ "${#pending[@]}" -eq 0 ]; then
        echo "cluster '$cluster' is already up"
        return 0
    fi
    ensure_certs
    ensure_built
    bin="$BRANCHY_BIN"
    for entry in "${pending[@]}"; do
        read -r name role listen dial <<< "$entry"
        if ! start_node "$name" "$role" "$listen" "$dial" "$bin"; then
            [ "${#started[@]}" -eq 0 ] || say "stopping the nodes started so far: ${started[*]}"
            stop_nodes "$name" "${started[@]}" >&2
            die "cluster '$cluster' did not come up"
        fi
        started+=("$name")
    done
    echo "cluster '$cluster' is up ($topology)"
}

down() {
    local names=() name role listen dial
    # Edges first, so that they drain into a cloud that still answers.
    while read -r name role listen dial; do names=("$name" "${names[@]}"); done <<< "$servers"
    local any=0
    for name in "${names[@]}"; do [ -f "$rundir/$name.pid" ] && any=1; done
    if [ "$any" -eq 0 ]; then
        echo "cluster '$cluster' is not running"
        return 0
    fi
    stop_nodes "${names[@]}"
}

status() {
    local name role listen dial pid state port all=0
    printf '%-12s %-6s %-22s %-22s %-8s %-8s %s\n' node role listen dialled pid process port
    while read -r name role listen dial; do
        pid="$(pid_of "$name")"
        if pid_alive "$pid"; then state=alive; else state=dead; all=3; fi
        [ -n "$pid" ] || { pid=-; state=stopped; }
        if port_listening "$(host_of "$listen")" "$(port_of "$listen")"; then port=listening; else port=closed; all=3; fi
        printf '%-12s %-6s %-22s %-22s %-8s %-8s %s\n' "$name" "$role" "$listen" "$dial" "$pid" "$state" "$port"
    done <<< "$servers"
    return "$all"
}

"$action"
