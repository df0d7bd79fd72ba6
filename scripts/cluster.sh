#!/usr/bin/env bash
# Starts, stops and inspects the server nodes (clouds, then edges) of a topology on this machine;
# devices are run separately against them. `up` makes missing certificates, starts each node in
# the background and waits until its listen: port accepts connections; `down` sends SIGTERM
# (edges first), SIGKILL after STOP_TIMEOUT (10) s; `status` lists the nodes. Logs and pid files
# go to run/<topology name>/. Environment: BRANCHY_BIN, START_TIMEOUT (30), STOP_TIMEOUT (10).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() { printf 'usage: %s up|down|status [TOPOLOGY]\n%s\n' "$(basename "$0")" \
    "TOPOLOGY defaults to topology/local.yaml. 'status' exits 0 when every node is up, 3 otherwise."; }
action="${1:-}"
case "$action" in
    up|down|status) [ "$#" -le 2 ] || { usage >&2; exit 2; } ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac
topology="$(resolve_topology "${2:-topology/local.yaml}")"
cd "$REPO_ROOT"
cluster="$(basename "$topology")"
cluster="${cluster%.*}"
rundir="$REPO_ROOT/run/$cluster"
STOP_TIMEOUT="${STOP_TIMEOUT:-10}"
ensure_built

# "name role listen dial" per server, clouds first; dial is address:, else listen:.
servers="$(topology_nodes "$topology" | awk -F'\t' '{ d = ($8 != "-" && $8 != "") ? $8 : $3 }
    $2 == "cloud" { print $1, $2, $3, d } $2 == "edge" { e = e $1 " " $2 " " $3 " " d "\n" } END { printf "%s", e }')"
[ -n "$servers" ] || die "no edge or cloud nodes in $topology"
while read -r name role listen dial; do [ "$listen" != "-" ] || die "node '$name' in $topology has no 'listen:' address"; done <<< "$servers"

pid_of() { cat "$rundir/$1.pid" 2>/dev/null || true; }
# pid_alive PID: PID runs a Branchy executable (a pid file's number reused by another program does not count).
pid_alive() { proc_running "$1" && { [ ! -r "/proc/$1/cmdline" ] || tr '\0' ' ' < "/proc/$1/cmdline" | grep -q 'branchy-'; }; }

stop_nodes() {
    local name pid entry
    local -a running=()
    for name in "$@"; do
        pid="$(pid_of "$name")"
        ! pid_alive "$pid" || { kill -TERM "$pid" 2>/dev/null || true; running+=("$name:$pid"); }
    done
    all_gone() { for entry in "${running[@]}"; do ! pid_alive "${entry#*:}" || return 1; done; }
    wait_for "$STOP_TIMEOUT" all_gone || true
    for entry in "${running[@]}"; do
        name="${entry%%:*}" pid="${entry#*:}"
        if pid_alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
            echo "killed $name (pid $pid): still running ${STOP_TIMEOUT} s after SIGTERM"
        else
            echo "stopped $name (pid $pid)"
        fi
    done
    for name in "$@"; do rm -f "$rundir/$name.pid"; done
}

up() {
    mkdir -p "$rundir"
    local name role listen dial pid started_names=()
    local -a pending=()
    while read -r name role listen dial; do
        pid="$(pid_of "$name")"
        if pid_alive "$pid"; then echo "$name is already running (pid $pid)"; else pending+=("$name $role $listen $dial"); fi
    done <<< "$servers"
    [ "${#pending[@]}" -gt 0 ] || { echo "cluster '$cluster' is already up"; return 0; }
    ensure_certs "$topology"
    for entry in "${pending[@]}"; do
        read -r name role listen dial <<< "$entry"
        server_pid=""
        if ! start_server "$topology" "$name" "$rundir/$name.log" > "$rundir/$name.why" 2>/dev/null; then
            [ -z "$server_pid" ] || echo "$server_pid" > "$rundir/$name.pid"
            say "$(cat "$rundir/$name.why")"
            say "--- last lines of $rundir/$name.log ---"; tail -n 20 "$rundir/$name.log" >&2 2>/dev/null || true; say "---"
            [ "${#started_names[@]}" -eq 0 ] || say "stopping the nodes started so far: ${started_names[*]}"
            stop_nodes "$name" "${started_names[@]}" >&2
            die "cluster '$cluster' did not come up"
        fi
        echo "$server_pid" > "$rundir/$name.pid"
        started_names+=("$name")
        echo "started $name ($role, pid $server_pid), listening on $listen$([ "$dial" = "$listen" ] || echo ", dialled at $dial"), log $rundir/$name.log"
    done
    echo "cluster '$cluster' is up ($topology)"
}

down() {
    local names=() name role listen dial any=0
    while read -r name role listen dial; do names=("$name" "${names[@]}"); [ ! -f "$rundir/$name.pid" ] || any=1; done <<< "$servers"
    [ "$any" -eq 1 ] || { echo "cluster '$cluster' is not running"; return 0; }
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
