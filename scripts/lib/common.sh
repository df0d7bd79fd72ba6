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
# A small reader for the block-style YAML of topology/*.yaml: top-level
# `key: value` lines and a `nodes:` list whose entries start with `- name:`.
# The Swift loader (BranchyTopology) is the real parser and validator; this one
# reads just what the scripts need.

# topology_value FILE KEY: a top-level scalar (`model`, `certs`), or nothing.
topology_value() {
    awk -v key="$2" '
        $0 ~ "^" key ":" {
            v = substr($0, length(key) + 2)
            sub(/[ \t]+#.*$/, "", v); gsub(/^[ \t]+|[ \t]+$/, "", v)
            gsub(/^["\047]|["\047]$/, "", v)
            print v; exit
        }' "$1"
}

# topology_path FILE KEY: a top-level path made absolute against the file's
# folder, or nothing when the key is absent.
topology_path() {
    local v
    v="$(topology_value "$1" "$2")"
    [ -n "$v" ] || return 0
    case "$v" in
        /*) printf '%s\n' "$v" ;;
        *) realpath -m "$(dirname "$1")/$v" ;;
    esac
}

# topology_certs_dir FILE: where the node certificates are (`certs:`, else the
# topology's own folder, as the loader does).
topology_certs_dir() {
    local d
    d="$(topology_path "$1" certs)"
    [ -n "$d" ] || d="$(cd "$(dirname "$1")" && pwd)"
    printf '%s\n' "$d"
}

# topology_nodes FILE: one line per node, tab-separated:
#   name role listen upstream stages thresholds codec address
# Lists are comma-separated without blanks; a missing value is `-`. `listen` is
# the address a node binds, `address` the one its children dial (when absent,
# they dial `listen`; see node_dial).
topology_nodes() {
    awk '
        function clean(v) {
            sub(/[ \t]+#.*$/, "", v); gsub(/^[ \t]+|[ \t]+$/, "", v)
            gsub(/^["\047]|["\047]$/, "", v)
            if (v ~ /^\[.*\]$/) { v = substr(v, 2, length(v) - 2); gsub(/[ \t"\047]/, "", v) }
            return v
        }
        function value(line) { sub(/^[^:]*:/, "", line); return clean(line) }
        function orDash(v) { return v == "" ? "-" : v }
        function flush() {
            if (name != "")
                print name "\t" orDash(f["role"]) "\t" orDash(f["listen"]) "\t" orDash(f["upstream"]) "\t" \
                      orDash(f["stages"]) "\t" orDash(f["thresholds"]) "\t" orDash(f["codec"]) "\t" \
                      orDash(f["address"])
            name = ""; split("", f)
        }
        /^nodes:/ { innodes = 1; next }
        /^[^ \t#-]/ { flush(); innodes = 0; next }   # another top-level key ends the list
        !innodes { next }
        /^[ \t]*-[ \t]+name:/ { flush(); line = $0; sub(/^[ \t]*-[ \t]+/, "", line); name = value(line); next }
        name != "" && /^[ \t]+(role|listen|address|upstream|stages|thresholds|codec):/ {
            key = $0; sub(/^[ \t]+/, "", key); sub(/:.*/, "", key)
            f[key] = value($0)
        }
        END { flush() }
    ' "$1"
}

# host_of / port_of ADDRESS: the parts of `host:port` or `[ipv6]:port`.
host_of() { local h="${1%:*}"; h="${h#[}"; printf '%s\n' "${h%]}"; }
port_of() { printf '%s\n' "${1##*:}"; }

# dial_of LISTEN ADDRESS: the address children dial, ADDRESS unless it is `-` or empty,
# else LISTEN (the columns 3 and 8 of topology_nodes).
dial_of() { if [ -n "${2:-}" ] && [ "$2" != - ]; then printf '%s\n' "$2"; else printf '%s\n' "$1"; fi; }

# node_dial TOPOLOGY NODE: the address NODE's children dial (`address:`, else `listen:`).
node_dial() { topology_nodes "$1" | awk -F'\t' -v n="$2" '$1 == n { print ($8 != "-" && $8 != "") ? $8 : $3 }'; }

# local_host HOST: a host to reach a server bound to HOST on this machine: the loopback
# address for the wildcards 0.0.0.0 and ::, HOST itself otherwise.
local_host() {
    case "$1" in
        0.0.0.0) echo 127.0.0.1 ;;
        ::|0::0|::0) echo ::1 ;;
        *) printf '%s\n' "$1" ;;
    esac
}

# eval_thresholds TOPOLOGY DEVICE [DEFAULTS]: the thresholds the nodes from DEVICE
# up to the root apply, in model order and comma-separated, as `branchy eval
# --thresholds` takes them. A node without `thresholds:` uses the model's
# defaults for its exits: DEFAULTS, comma-separated (as `branchy info` prints
# them), else $default_thresholds. Prints nothing when no node gives any (eval
# then uses the model's defaults itself). On failure prints why and returns 1.
eval_thresholds() {
    local topology="$1" node="$2" line up stages thr
    local out="" given=0 pos=0 hops=0 n i
    local -a defaults
    IFS=, read -ra defaults <<< "${3:-${default_thresholds:-}}"
    while [ "$node" != "-" ] && [ "$hops" -lt 16 ]; do
        line="$(topology_nodes "$topology" | awk -F'\t' -v n="$node" '$1 == n')"
        [ -n "$line" ] || { echo "no node '$node' in $topology"; return 1; }
        IFS=$'\t' read -r _ _ _ up stages thr _ <<< "$line"
        # `-` is a node that hosts no stage (stages: []).
        if [ "$stages" = "-" ]; then n=0; else n="$(awk -F, '{ print NF }' <<< "$stages")"; fi
        [ "$up" != "-" ] || n=$((n - 1))   # the root hosts the model's last exit
        if [ "$thr" != "-" ]; then
            given=1
            out+=",$thr"
        else
            for ((i = pos; i < pos + n; i++)); do
                [ -n "${defaults[i]:-}" ] || { echo "no threshold for exit $i: '$node' gives none and the model has no default"; return 1; }
                out+=",${defaults[i]}"
            done
        fi
        pos=$((pos + n))
        node="$up"
        hops=$((hops + 1))
    done
    [ "$given" -eq 0 ] || echo "${out#,}"
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
node_field() { topology_nodes "$1" | awk -F'\t' -v n="$2" '$1 == n { print $'"$3"' }'; }

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
