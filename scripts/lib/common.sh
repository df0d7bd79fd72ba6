# shellcheck shell=bash
# Shared helpers of the scripts in scripts/; source it: . "$(dirname "$0")/lib/common.sh"
# Sets REPO_ROOT; the caller cds there once it has resolved its own path arguments.
# Topology files are read only through `branchy topology show` (the loader the nodes use, paths
# absolute), and modified copies are written only by topology_with.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY=(python3 "$REPO_ROOT/scripts/lib/common.py")   # its checks: see scripts/lib/common.py

trap 'exit 130' INT   # so that the scripts' EXIT traps clean up after Ctrl-C and SIGTERM too
trap 'exit 143' TERM
say() { printf '%s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2; exit 1; }
abs_path() { realpath -m "$1"; }

# no_args WHAT "$@": a script without arguments: -h/--help prints its usage line, anything else is an error.
no_args() {
    local u="usage: $(basename "$0")   ($1)"
    shift
    case "${1:-}" in -h|--help) echo "$u"; exit 0 ;; "") ;; *) echo "$u" >&2; exit 2 ;; esac
}

# resolve_topology PATH: PATH made absolute, relative to the current directory or else the repository.
resolve_topology() {
    if [ -f "$1" ]; then abs_path "$1"; elif [ -f "$REPO_ROOT/$1" ]; then echo "$REPO_ROOT/$1"; else die "no topology file '$1'"; fi
}

# topology_env VAR DEFAULT: the topology file the environment variable VAR names (relative to the
# starting directory), else DEFAULT (relative to the repository), as an absolute path.
topology_env() { local f; f="$(abs_path "${!1:-$REPO_ROOT/$2}")"; [ -f "$f" ] || die "no topology file $f"; echo "$f"; }

# apt_install PACKAGE...; ensure_packages COMMAND:PACKAGE...: installs the packages of missing commands.
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "missing $* and no apt-get to install them"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    say "installing $*"
    "${sudo[@]}" apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >&2
}
ensure_packages() {
    local p m=()
    for p in "$@"; do command -v "${p%%:*}" >/dev/null 2>&1 || m+=("${p#*:}"); done
    [ "${#m[@]}" -eq 0 ] || apt_install "${m[@]}"
}
TRAINING_SET=/usr/share/datasets/fashion-mnist
ensure_training_set() {
    [ -e "$TRAINING_SET/train-images-idx3-ubyte.gz" ] || [ -e "$TRAINING_SET/train-images-idx3-ubyte" ] || apt_install dataset-fashion-mnist
}

# ensure_built: exports BRANCHY_BIN, the folder of the release executables (built once by build.sh).
ensure_built() {
    [ -n "${BRANCHY_BIN:-}" ] || BRANCHY_BIN="$("$REPO_ROOT/scripts/build.sh")" || die "the build failed"
    export BRANCHY_BIN
}

# ensure_venv DIR [PIP PACKAGES...]: a Python venv at DIR (python3-venv installed when needed).
ensure_venv() {
    [ -x "$1/bin/python" ] || python3 -m venv "$1" 2>/dev/null || { rm -rf "$1"; apt_install python3-venv && python3 -m venv "$1"; } \
        || die "could not create $1"
    [ "$#" -eq 1 ] || { say "installing ${*:2} into $1"; "$1/bin/python" -m pip install -q --disable-pip-version-check "${@:2}" >&2; } \
        || die "pip could not install ${*:2}"
}
# ensure_onnx_venv: run/venv with numpy, onnx and onnxruntime; sets ONNX_PYTHON.
ensure_onnx_venv() {
    ONNX_PYTHON="$REPO_ROOT/run/venv/bin/python"
    "$ONNX_PYTHON" -c 'import numpy, onnx, onnxruntime' 2>/dev/null || ensure_venv "$REPO_ROOT/run/venv" numpy onnx onnxruntime
}

# --- Topologies ------------------------------------------------------------------------------
# topology_show FILE [--format json|tsv]: as the loader reads it (a refused file fails with its error).
topology_show() {
    [ -n "${BRANCHY_BIN:-}" ] || ensure_built
    "$BRANCHY_BIN/branchy" topology show "$@"
}
# topology_query FILE EXPR [ARG...]: the Python EXPR over `t` (the JSON of topology_show) and `a`
# (the ARGs); a list prints one item a line, None nothing. E.g. '[n["name"] for n in t["nodes"]]'.
topology_query() {
    local json
    json="$(topology_show "$1")" || return 1
    "${PY[@]}" query "${@:2}" <<< "$json"
}
# topology_path FILE model|dataset|certs: the absolute path (certs: else the topology's folder).
topology_path() { topology_query "$1" 't.get(a[0])' "$2"; }
topology_certs_dir() { topology_path "$1" certs; }
# topology_nodes FILE: one line per node: name role listen upstream stages thresholds codec address.
topology_nodes() { topology_show "$1" --format tsv; }
# node_field FILE NODE COLUMN: one column of topology_nodes.
node_field() { topology_nodes "$1" | awk -F'\t' -v n="$2" -v c="$3" '$1 == n { print $c }'; }
# nodes_of FILE ROLE: the names of the nodes of ROLE; servers_of FILE: "name role listen", clouds, then edges.
nodes_of() { topology_nodes "$1" | awk -F'\t' -v r="$2" '$2 == r { print $1 }'; }
servers_of() {
    topology_nodes "$1" | awk -F'\t' '$2 == "cloud" { print $1, $2, $3 } $2 == "edge" { e = e $1 " " $2 " " $3 "\n" } END { printf "%s", e }'
}
# node_dial FILE NODE: the address NODE's children dial (address:, else listen:).
node_dial() { topology_query "$1" '[n["address"] or n["listen"] for n in t["nodes"] if n["name"] == a[0]]' "$2"; }
# node_key FILE NODE KEY: a node setting by its topology key (deadlineMs, maxInFlight, onUpstreamFailure,
# a key of limits: ...), as the loader reads it, defaults included.
node_key() {
    topology_query "$1" '[(n["limits"].get(k) if k in n["limits"] else n.get(k)) for n in t["nodes"] if n["name"] == a[0]
                          for k in [a[1].replace("Ms", "Millis").replace("protocol", "protocolVersion")]]' "$2" "$3"
}
# topology_with SRC OUT EDIT...: a copy of SRC with absolute paths and each edit KEY=VALUE (see
# topology_with in common.py), checked with topology_show.
topology_with() {
    local json
    json="$(topology_show "$1")" || return 1
    python3 -c 'import yaml' 2>/dev/null || apt_install python3-yaml
    "${PY[@]}" topology-with "$@" <<< "$json" && topology_show "$2" > /dev/null
}
# ensure_certs TOPOLOGY: makes the TLS files with gen-certs.sh when the CA or a node's are missing.
ensure_certs() {
    local dir name
    dir="$(topology_certs_dir "$1")"
    for name in ca $(topology_nodes "$1" | cut -f1); do
        [ -f "$dir/$name.pem" ] && { [ "$name" = ca ] || [ -f "$dir/$name-key.pem" ]; } && continue
        say "making certificates in $dir"
        "$REPO_ROOT/scripts/gen-certs.sh" "$1" "$dir" >&2
        return
    done
}

# host_of / port_of ADDRESS: the parts of host:port or [ipv6]:port.
host_of() { local h="${1%:*}"; h="${h#[}"; echo "${h%]}"; }
port_of() { echo "${1##*:}"; }

# --- Processes and ports -----------------------------------------------------------------------
# port_listening HOST PORT: something on this machine listens on PORT.
port_listening() { [ -n "$(ss -Hltn "sport = :$2" 2>/dev/null)" ]; }
# proc_running PID: PID exists and has not exited (a zombie has).
proc_running() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
    [ -r "/proc/$1/stat" ] || return 0   # no procfs: kill -0 is all there is
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1   # gone since kill -0
    stat="${stat##*) }"
    [ "${stat%% *}" != Z ]
}
# cpu_ticks PID: its user + system time so far, in clock ticks.
cpu_ticks() { local s; s="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1; s="${s##*) }"; set -- $s; echo $(( ${12} + ${13} )); }
# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds; false after SECONDS.
wait_for() {
    local i=0
    until "${@:2}"; do [ "$i" -lt $(($1 * 10)) ] || return 1; sleep 0.1; i=$((i + 1)); done
}
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
# stop_children LOG PID...: SIGCONT and SIGTERM to those PIDs still children of this shell, SIGKILL
# (noted in LOG) to those still running 10 s later; reaps them.
stop_children() {
    local log="$1" pid stat
    local -a mine=()
    shift
    for pid in "$@"; do
        stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
        stat="${stat##*) }"
        set -- $stat
        [ "${2:-}" != "$$" ] || { mine+=("$pid"); kill -CONT "$pid"; kill -TERM "$pid"; } 2>/dev/null
    done
    alive() { for pid in "${mine[@]}"; do proc_running "$pid" && return 0; done; return 1; }
    wait_for 10 eval '! alive' || true
    for pid in "${mine[@]}"; do
        ! proc_running "$pid" || { echo "cleanup: killing pid $pid, still running 10 s after SIGTERM" >> "$log"; kill -KILL "$pid" || true; } 2>/dev/null
        wait "$pid" 2>/dev/null || true
    done
}
# start_server TOPOLOGY NODE LOG [PREFIX...]: starts an edge or cloud node in the background (run
# through PREFIX, e.g. `ip netns exec NS`; the environment's NODE_ARGS are added), sets
# server_pid, adds it to `started`, and waits up to START_TIMEOUT (30) s until its port listens
# (LISTENING, default port_listening HOST PORT, is the test); prints why not.
started=()
start_server() {
    local topology="$1" node="$2" slog="$3" role listen port
    role="$(node_field "$topology" "$node" 2)"; listen="$(node_field "$topology" "$node" 3)"; port="$(port_of "$listen")"
    local -a test=(${LISTENING:-port_listening "$(host_of "$listen")"} "$port")
    if "${test[@]}"; then echo "port $port for $node is taken by another process: $(ss -Hltnp "sport = :$port" 2>/dev/null | head -n 1)"; return 1; fi
    "${@:4}" "$BRANCHY_BIN/branchy-$role" --topology "$topology" --node "$node" ${NODE_ARGS:-} </dev/null >"$slog" 2>&1 &
    server_pid=$!
    started+=("$server_pid")
    echo "started $node of $(basename "$topology") (pid $server_pid), log $slog" >&2
    up() { "${test[@]}" || { proc_running "$server_pid" || return 0; return 1; }; }
    wait_for "${START_TIMEOUT:-30}" up || { echo "$node did not listen on $listen within ${START_TIMEOUT:-30} s"; return 1; }
    proc_running "$server_pid" || { echo "$node exited before listening on $listen: $(tail -n 1 "$slog")"; return 1; }
}

# --- Device runs ---------------------------------------------------------------------------------
# run_device TOPOLOGY NODE PREFIX [OPTIONS]: runs a device (DEVICE_TIMEOUT s at most; in the network
# namespace DEVICE_NS if set), writing PREFIX.json (report), .jsonl (predictions), .out and .err; says why it failed.
run_device() {
    local status=0
    timeout "${DEVICE_TIMEOUT:-900}" ${DEVICE_NS:+ip netns exec "$DEVICE_NS"} "$BRANCHY_BIN/branchy-device" --topology "$1" --node "$2" --report "$3.json" \
        --predictions "$3.jsonl" "${@:4}" > "$3.out" 2> "$3.err" || status=$?
    [ "$status" -eq 0 ] && return
    if [ "$status" -eq 124 ]; then echo "branchy-device did not finish within ${DEVICE_TIMEOUT:-900} s"
    else echo "branchy-device exited $status: $(grep -v '^[[:space:]]*$' "$3.err" | tail -n 1)"; fi
    return 1
}
# same_as_eval TOPOLOGY PREFIX [EVAL OPTIONS]: PREFIX.jsonl equals `branchy eval --topology` (the
# topology's model, data set, thresholds and link codecs, as the cluster applies them).
same_as_eval() {
    echo "branchy eval --topology $1 ${*:3}" >&2
    "$BRANCHY_BIN/branchy" eval --topology "$1" --predictions "$2-eval.jsonl" "${@:3}" > "$2-eval.out" 2>&1 \
        || { echo "branchy eval failed: $(tail -n 1 "$2-eval.out")"; return 1; }
    "${PY[@]}" same-predictions "$2.jsonl" "$2-eval.jsonl" "$2.json" complete
}
# cluster UP|DOWN TOPOLOGY: scripts/cluster.sh, its output on stderr; a failed start says where the logs are.
cluster() {
    [ "$1" = up ] || { "$REPO_ROOT/scripts/cluster.sh" down "$2" >&2; return; }
    "$REPO_ROOT/scripts/cluster.sh" up "$2" >&2 || { echo "the cluster of $2 did not start (logs in run/$(basename "$2" .yaml)/)"; return 1; }
}

# --- Checks --------------------------------------------------------------------------------------
# run_check NAME FUNCTION: runs FUNCTION in this shell; it prints nothing on success or why on its
# last line of standard output; its standard error goes to $log. Lines it appends to $work/figures
# follow the name. Prints `ok - NAME (figures)` or `not ok - NAME: why`, counts in passed/failed.
passed=0
failed=0
run_check() {
    local why status=0 figures
    printf '\n### %s\n' "$1" >> "$log"
    : > "$work/figures"
    "$2" > "$work/why" 2>>"$log" || status=$?
    figures="$(awk 'NF { printf "%s%s", sep, $0; sep = "; " }' "$work/figures")"
    [ -z "$figures" ] || echo "figures: $figures" >> "$log"
    if [ "$status" -eq 0 ]; then
        echo "ok - $1${figures:+ ($figures)}"
        passed=$((passed + 1))
    else
        why="$(awk 'NF { last = $0 } END { print last }' "$work/why")"
        echo "not ok - $1: ${why:-failed, see $log}${figures:+ (figures: $figures)}"
        failed=$((failed + 1))
    fi
}
summary() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; }
figure() { printf '%s\n' "$*" >> "$work/figures"; }
