# shellcheck shell=bash
# Shared helpers for the scripts in scripts/. Source it; do not run it.
#   . "$(dirname "$0")/lib/common.sh"
# Sets REPO_ROOT. The caller decides when to cd there (after resolving its own
# path arguments against the directory it was started from).

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

say() { printf '%s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2; exit 1; }

# Absolute path of a file given relative to the current directory.
abs_path() { realpath -m "$1"; }

# resolve_topology PATH: the topology file as an absolute path: PATH relative to the
# current directory, or failing that to the repository root; dies when neither exists.
resolve_topology() {
    if [ -f "$1" ]; then
        abs_path "$1"
    elif [ -f "$REPO_ROOT/$1" ]; then
        printf '%s\n' "$REPO_ROOT/$1"
    else
        die "no topology file '$1'"
    fi
}

# --- Debian packages -------------------------------------------------------

# ensure_packages COMMAND:PACKAGE ...
# Installs the Debian package of each command that is missing; runs
# `apt-get update` once, and only when something has to be installed.
ensure_packages() {
    local pair missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    say "installing ${missing[*]}"
    "${sudo[@]}" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# --- Build -----------------------------------------------------------------

# ensure_built: sets and exports BRANCHY_BIN, the folder of the release
# executables. Keeps a BRANCHY_BIN that is already set (a calling script has
# built); otherwise builds once with scripts/build.sh, so that child scripts
# do not build again.
ensure_built() {
    if [ -z "${BRANCHY_BIN:-}" ]; then
        BRANCHY_BIN="$("$REPO_ROOT/scripts/build.sh")" || die "the build failed"
    fi
    export BRANCHY_BIN
}

# --- Topology files ----------------------------------------------------------
# The scripts read topology files only through `branchy topology show`, which
# loads them with the loader the nodes use (BranchyTopology): whatever YAML the
# nodes accept reads the same here, paths come out absolute, and a file the
# loader refuses stops the reader with the loader's error on standard error.
# The TLS files are not checked, so a topology reads before its certificates
# exist. The readers need the `branchy` executable: $BRANCHY_BIN/branchy, or,
# when BRANCHY_BIN is not set, they build first (ensure_built). A script that
# reads topologies inside $(...) calls ensure_built before, so it builds once.

# topology_show FILE [--format json|tsv]: `branchy topology show FILE`.
topology_show() {
    [ -n "${BRANCHY_BIN:-}" ] || ensure_built
    [ -x "$BRANCHY_BIN/branchy" ] || { say "no executable $BRANCHY_BIN/branchy to read $1 with"; return 1; }
    "$BRANCHY_BIN/branchy" topology show "$@"
}

# topology_query FILE EXPR [ARG...]: evaluates the Python expression EXPR with `t`,
# the JSON object `branchy topology show FILE` prints (keys file, model, dataset,
# certs and nodes, each node with name, role, stages, thresholds, listen, address,
# dial, dialAddresses, metrics, replicas, upstream, codec, ...), and `a`, the list
# of ARGs; prints a string or number as is, a list one item a line, nothing for
# None (null), other values as JSON. Example:
#   topology_query topology/local.yaml '[n["name"] for n in t["nodes"] if n["role"] == a[0]]' edge
topology_query() {
    local file="$1" expr="$2" json
    shift 2
    json="$(topology_show "$file")" || return 1
    python3 -c '
import json, sys
t = json.loads(sys.stdin.read())
a = sys.argv[2:]
v = eval(sys.argv[1])
for x in (v if isinstance(v, list) else [v]):
    if x is not None:
        print(json.dumps(x) if isinstance(x, (bool, list, dict)) else x)
' "$expr" "$@" <<< "$json"
}

# topology_value FILE KEY: a top-level value as the loader reads it: `model`,
# `dataset` or `certs` as an absolute path (`certs` as in topology_certs_dir);
# nothing when the value is null (a topology without `dataset:`).
topology_value() { topology_query "$1" 't.get(a[0])' "$2"; }

# topology_path FILE KEY: a top-level path (`model`, `dataset`, `certs`), absolute,
# or nothing when the key is absent (`certs`, absent, is the topology's folder).
topology_path() { topology_value "$1" "$2"; }

# topology_certs_dir FILE: where the node certificates are (`certs:`, else the
# topology's own folder, as the loader does).
topology_certs_dir() { topology_value "$1" certs; }

# topology_nodes FILE: one line per node, tab-separated:
#   name role listen upstream stages thresholds codec address
# Lists are comma-separated without blanks; a missing value is `-`. `listen` is
# the address a node binds, `address` the one its children dial (when absent,
# they dial `listen`; see node_dial). `codec` is the one the node's upstream link
# applies (float32 when the node gives none), `-` for the root, which has no link.
topology_nodes() { topology_show "$1" --format tsv; }

# host_of / port_of ADDRESS: the parts of `host:port` or `[ipv6]:port`.
host_of() { local h="${1%:*}"; h="${h#[}"; printf '%s\n' "${h%]}"; }
port_of() { printf '%s\n' "${1##*:}"; }

# dial_of LISTEN ADDRESS: the address children dial, ADDRESS unless it is `-` or empty,
# else LISTEN (the columns 3 and 8 of topology_nodes).
dial_of() { if [ -n "${2:-}" ] && [ "$2" != - ]; then printf '%s\n' "$2"; else printf '%s\n' "$1"; fi; }

# node_dial TOPOLOGY NODE: the address NODE's children dial (`address:`, else `listen:`;
# `-` for a node with neither).
node_dial() {
    local nodes
    nodes="$(topology_nodes "$1")" || return 1
    awk -F'\t' -v n="$2" '$1 == n { print ($8 != "-") ? $8 : $3 }' <<< "$nodes"
}

# local_host HOST: a host to reach a server bound to HOST on this machine: the loopback
# address for the wildcards 0.0.0.0 and ::, HOST itself otherwise.
local_host() {
    case "$1" in
        0.0.0.0) echo 127.0.0.1 ;;
        ::|0::0|::0) echo ::1 ;;
        *) printf '%s\n' "$1" ;;
    esac
}

# --- Processes and ports -------------------------------------------------------

# port_listening HOST PORT: true when something on this machine listens on PORT.
# HOST is the address the server binds (a wildcard, 0.0.0.0 or ::, is probed on
# the loopback address).
port_listening() {
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Hltn "sport = :$2" 2>/dev/null)" ]
    else
        # Opens and closes a TCP connection; the node sees an aborted handshake.
        timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$(local_host "$1")" "$2" 2>/dev/null
    fi
}

# proc_running PID: true when PID exists and has not exited (a zombie has).
proc_running() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
    [ -r "/proc/$1/stat" ] || return 0
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [ "${stat%% *}" != Z ]
}

# pid_alive PID: true when PID runs one of the Branchy executables (a stale pid
# file whose number was reused by another program does not count).
pid_alive() {
    proc_running "$1" || return 1
    [ -r "/proc/$1/cmdline" ] || return 0
    tr '\0' ' ' < "/proc/$1/cmdline" | grep -q 'branchy-'
}

# is_child PID: PID is still a child of this shell (a number reused by another
# program after the child was reaped is not).
is_child() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    set -- $stat
    [ "${2:-}" = "$$" ]
}

# stop_children LOG PID...: SIGTERM (after SIGCONT, since a stopped process
# cannot act on SIGTERM) to those PIDs still children of this shell, up to 10 s
# for them to exit, then SIGKILL, noting each kill in LOG; reaps them all.
stop_children() {
    local log="$1" pid waited=0 left
    shift
    local -a mine=()
    for pid in "$@"; do is_child "$pid" && mine+=("$pid"); done
    for pid in "${mine[@]}"; do
        if proc_running "$pid"; then
            kill -CONT "$pid" 2>/dev/null || true
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    while :; do
        left=0
        for pid in "${mine[@]}"; do proc_running "$pid" && left=1; done
        [ "$left" -eq 1 ] && [ "$waited" -lt 100 ] || break
        sleep 0.1
        waited=$((waited + 1))
    done
    for pid in "${mine[@]}"; do
        if proc_running "$pid"; then
            echo "cleanup: killing pid $pid, still running 10 s after SIGTERM" >> "$log"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
}

# node_field TOPOLOGY NODE COLUMN: one column of topology_nodes for one node.
node_field() {
    local nodes
    nodes="$(topology_nodes "$1")" || return 1
    awk -F'\t' -v n="$2" -v c="$3" '$1 == n { print $c }' <<< "$nodes"
}

# run_check NAME FUNCTION: runs FUNCTION in this shell (so that the processes it
# starts stay known to it); the function prints nothing on success, or why it
# failed on its last line of standard output; its standard error goes to $log.
# Figures it appends to $work/figures (one per line) are shown after the name.
# Prints `ok - NAME (figures)` or `not ok - NAME: why` and counts into $passed / $failed.
run_check() {
    local name="$1" why status=0 figures=""
    printf '\n### %s\n' "$name" >> "$log"
    : > "$work/figures"
    "$2" > "$work/why" 2>>"$log" || status=$?
    figures="$(awk 'NF { printf "%s%s", sep, $0; sep = "; " }' "$work/figures" 2>/dev/null)"
    [ -z "$figures" ] || echo "figures: $figures" >> "$log"
    if [ "$status" -eq 0 ]; then
        echo "ok - $name${figures:+ ($figures)}"
        passed=$((passed + 1))
    else
        why="$(awk 'NF { last = $0 } END { print last }' "$work/why")"
        echo "not ok - $name: ${why:-failed, see $log}${figures:+ (figures: $figures)}"
        failed=$((failed + 1))
    fi
}

# ensure_venv DIR: makes a Python venv at DIR unless one is there, installing Debian's
# python3-venv when python3 cannot make one.
ensure_venv() {
    local venv="$1"
    [ -x "$venv/bin/python" ] && return 0
    ensure_packages python3:python3
    if ! python3 -m venv "$venv" 2>/dev/null; then
        rm -rf "$venv"
        # Debian's python3 keeps venv (and ensurepip) in a package of its own.
        command -v apt-get >/dev/null 2>&1 || die "python3 cannot make a venv and there is no apt-get to install python3-venv"
        say "installing python3-venv"
        local sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        "${sudo[@]}" apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends python3-venv >&2
        python3 -m venv "$venv" || die "could not create $venv"
    fi
}

# ensure_onnx_venv: makes run/venv with numpy, onnx and onnxruntime from PyPI unless it
# already has them, and sets ONNX_PYTHON to its python.
ensure_onnx_venv() {
    local venv="$REPO_ROOT/run/venv"
    ONNX_PYTHON="$venv/bin/python"
    if [ -x "$ONNX_PYTHON" ] && "$ONNX_PYTHON" -c 'import numpy, onnx, onnxruntime' 2>/dev/null; then
        return 0
    fi
    ensure_venv "$venv"
    say "installing numpy, onnx and onnxruntime into $venv"
    "$ONNX_PYTHON" -m pip install -q --disable-pip-version-check numpy onnx onnxruntime >&2 \
        || die "pip could not install numpy, onnx and onnxruntime"
}

# --- Checks ------------------------------------------------------------------

# check NAME FUNCTION: runs one check of a script that counts them in `passed` and
# `failed` and logs to `$log`. The function prints nothing on success, or why it
# failed on its last line of standard output; its standard error goes to the log.
check() {
    local name="$1" why
    printf '\n### %s\n' "$name" >> "$log"
    if why="$("$2" 2>>"$log")"; then
        echo "ok - $name"
        passed=$((passed + 1))
    else
        why="$(printf '%s\n' "$why" | awk 'NF { last = $0 } END { print last }')"
        echo "not ok - $name: ${why:-failed, see $log}"
        failed=$((failed + 1))
    fi
}
