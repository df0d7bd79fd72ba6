#!/usr/bin/env bash
# Fault checks with real processes over TLS on loopback, on topology/faults.yaml (device -> edge
# 127.0.0.1:7421 -> cloud 127.0.0.1:7422, deadlineMs 2000) and topology/faults-fail.yaml (the same with
# onUpstreamFailure: fail): the edge SIGKILLed mid-run and restarted (every sample accounted for, some
# degraded, the device reconnects and reaches the cloud again); the edge SIGTERMed mid-run (drains,
# exits 0); the cloud SIGSTOPped mid-run, with the device's default window and with four times as many
# requests queued (degraded answers from the edge at its deadline, p99 below deadline + margin); the
# cloud down from the start (all answered or degraded, exit 0); onUpstreamFailure: fail with the edge
# down (failures counted, exit 2).
#
# Hardening checks (the reproductions of the security review), on
# topology/hardening.yaml (16 devices -> edge 127.0.0.1:7441 -> cloud :7442),
# hardening-timeouts.yaml (edge :7443, 1 s handshake and 2 s idle timeouts) and
# hardening-fd.yaml (edge :7445 under a descriptor limit of 256, 3 s handshake
# timeout), with the probes of branchy-probe (Sources/branchy-probe); node executables
# run from / to show that they need no particular working directory:
#   - node certificates (certs/hardening, certs/faults) name only DNS:<node>:
#     no IP address, no localhost
#   - an impostor on the edge's port presenting another node's certificate (the
#     cloud's, a device's) gets no hello: the device answers every sample itself
#   - raw TCP and TLS without hello are closed at the handshake timeout; an
#     authenticated connection left idle gets goodbye and is closed at the idle timeout
#   - 300, then 1,000 idle or half-open TCP connections against an edge limited
#     to 256 descriptors: a device still connects within 1 s and has all 200
#     samples answered, the edge stays under 10% CPU, the held connections close
#   - one peer identity past maxConnectionsPerPeer gets error 17 (limitReached)
#   - 60 connections announcing 4 MiB frames: those beyond the input budgets get
#     error 17 and are closed, the edge stays under 256 MB; a device works after
#   - model.json announcing huge sizes: branchy eval and branchy-edge exit 1
#     with an error naming the field
#   - a gzip IDX file inflating to 1 GiB behind a 10-image header: branchy eval
#     fails within 3 s and under 200 MB
#   - a hello whose node name holds a newline, an ANSI escape and a NUL is refused
#     and logged escaped; 200 TLS closes without close_notify log no warning;
#     refused hellos in a burst log at most the rate limit
# Measured figures follow the name of each hardening check: `ok - NAME (figures)`.
#
# Prints `ok`/`not ok` lines and `N passed, M failed`; details in run/e2e-faults/. Environment:
# BRANCHY_BIN; TOPOLOGY, FAIL_TOPOLOGY (topologies with the same node names); ONLY=hardening or
# ONLY=faults; EDGE_KILL_RATE (device samples/s in the edge-kill check, 800); STALL_RATE (in the
# cloud-stall checks, 2000); DEVICE_TIMEOUT (120 s per device run); STALL_SECONDS (4);
# DEADLINE_MARGIN_MS (1000).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
no_args "builds, runs the fault checks, stops every process it started" "$@"

TOPO="$(topology_env TOPOLOGY topology/faults.yaml)"
FAIL_TOPO="$(topology_env FAIL_TOPOLOGY topology/faults-fail.yaml)"
HARD_TOPO="$REPO_ROOT/topology/hardening.yaml"
TIMEOUTS_TOPO="$REPO_ROOT/topology/hardening-timeouts.yaml"
FD_TOPO="$REPO_ROOT/topology/hardening-fd.yaml"
ONLY="${ONLY:-}"
case "$ONLY" in ""|hardening|faults) ;; *) die "ONLY must be empty, 'hardening' or 'faults', not '$ONLY'" ;; esac
cd "$REPO_ROOT"
SAMPLES=10000 DEVICE_TIMEOUT="${DEVICE_TIMEOUT:-120}" STALL_SECONDS="${STALL_SECONDS:-4}" DEADLINE_MARGIN_MS="${DEADLINE_MARGIN_MS:-1000}"
EDGE_KILL_RATE="${EDGE_KILL_RATE:-800}" STALL_RATE="${STALL_RATE:-2000}"
START_TIMEOUT=30   # seconds for a node to listen
STOP_TIMEOUT=15    # seconds for a node to exit after SIGTERM (its drain grace is 10 s)
work=run/e2e-faults
log="$work/faults.log"
ensure_packages openssl:openssl python3:python3
ensure_built
bin="$(abs_path "$BRANCHY_BIN")"
rm -rf "$work"
mkdir -p "$work"

# Every process started here is a child of this shell (`wait` gives its status); `started` lists them.
declare -A node_pid=() node_log=()
starts=0 dev_pid="" dev_status=0 stop_status=0 stop_seconds=0
trap 'stop_children "$log" "${started[@]}"' EXIT
DEVICE="$(nodes_of "$TOPO" device | head -n 1)"

# connections LOG: how often the node with this log accepted the device; wait_connected LOG BEFORE
# SECONDS: until more than BEFORE, false after SECONDS or once the device has ended.
connections() { local n; n="$(grep -cF "device '$DEVICE' connected" "$1" 2>/dev/null)" || true; echo "${n:-0}"; }
wait_connected() {
    more() { [ "$(connections "$1")" -gt "$2" ] || ! proc_running "$dev_pid"; }
    wait_for "$3" more "$1" "$2"; [ "$(connections "$1")" -gt "$2" ]
}
server_up() { [ -n "${node_pid[$1]:-}" ] && proc_running "${node_pid[$1]}"; }
# up_node NAME: an edge or cloud node of $TOPO, with a fresh log, listening.
up_node() {
    starts=$((starts + 1))
    node_log[$1]="$REPO_ROOT/$work/$1-$starts.log"
    start_server "$TOPO" "$1" "${node_log[$1]}" || return 1
    node_pid[$1]=$server_pid
}
ensure_up() { local name; for name in "$@"; do server_up "$name" || up_node "$name" || return 1; done; }
# stop_server NAME [SIGNAL]: SIGNAL (TERM) and waits; sets stop_status and stop_seconds; fails if the
# node was still running after STOP_TIMEOUT s (it is then killed).
stop_server() {
    local name="$1" pid="${node_pid[$1]:-}" t0
    [ -n "$pid" ] || return 0
    unset 'node_pid[$name]'
    t0="$(date +%s.%N)"
    kill -CONT "$pid" 2>/dev/null || true
    kill "-${2:-TERM}" "$pid" 2>/dev/null || true
    gone() { ! proc_running "$pid"; }
    wait_for "$STOP_TIMEOUT" gone || { kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; stop_status=137 stop_seconds="$STOP_TIMEOUT"; return 1; }
    stop_status=0
    wait "$pid" || stop_status=$?
    stop_seconds="$(since "$t0")"
    echo "stopped $name (pid $pid) with SIG${2:-TERM}: exit status $stop_status after $stop_seconds s" >&2
}
# start_device PREFIX TOPOLOGY [OPTIONS]: the device in the background (dev_pid); finish_device waits
# (killing it after DEVICE_TIMEOUT s) and sets dev_status; why_device PREFIX says why it failed.
start_device() {
    "$bin/branchy-device" --topology "$2" --node "$DEVICE" --report "$1.json" --predictions "$1.jsonl" "${@:3}" </dev/null >"$1.out" 2>"$1.err" &
    dev_pid=$!
    started+=("$dev_pid")
    echo "started $DEVICE (pid $dev_pid) on $2 ${*:3}" >&2
}
finish_device() {
    done_() { ! proc_running "$dev_pid"; }
    wait_for "$DEVICE_TIMEOUT" done_ || { kill -CONT "$dev_pid"; kill -KILL "$dev_pid"; say "killed $DEVICE: still running after $DEVICE_TIMEOUT s"; }
    dev_status=0
    wait "$dev_pid" || dev_status=$?
    echo "$DEVICE exited with status $dev_status" >&2
}
why_device() {
    if [ "$dev_status" -eq 137 ]; then echo "the device did not finish within $DEVICE_TIMEOUT s"
    else echo "the device exited $dev_status: $(grep -v '^[[:space:]]*$' "$1.err" | tail -n 1)"; fi
}
# check_report KIND PREFIX [ARGS]: the device exited 0 and its report and predictions pass `common.py faults KIND`.
check_report() { [ "$dev_status" -eq "${EXPECT_STATUS:-0}" ] || { why_device "$2"; return 1; }; "${PY[@]}" faults "$1" "$2.json" "$2.jsonl" "$SAMPLES" "${@:3}"; }
# mid_run PREFIX PAUSE WHAT [OPTIONS]: starts the device on $TOPO and waits until the edge's log shows
# it connected once more, then PAUSE s; fails when the device has finished by then (before WHAT).
mid_run() {
    local before
    before="$(connections "${node_log[edge]}")"
    start_device "$1" "$TOPO" "${@:4}"
    wait_connected "${node_log[edge]}" "$before" 30 || { finish_device; echo "the device did not connect to the edge"; return 1; }
    sleep "$2"
    proc_running "$dev_pid" || { finish_device; echo "the device finished before $3"; return 1; }
}

check_up() {
    local model name
    model="$(topology_path "$TOPO" model)"
    [ -f "$model/model.json" ] || { echo "no trained model in $model"; return 1; }
    [ -n "$DEVICE" ] || { echo "no device node in $TOPO"; return 1; }
    for name in edge cloud; do [ "$(node_field "$TOPO" "$name" 2)" = "$name" ] || { echo "$TOPO has no node '$name' with role $name"; return 1; }; done
    for name in "$TOPO" "$FAIL_TOPO"; do scripts/gen-certs.sh "$name" >&2 || { echo "could not make the certificates for $name"; return 1; }; done
    ensure_up cloud edge
}
# The device alone classifies the test set faster than an edge restarts, so it runs paced like a camera
# (EDGE_KILL_RATE samples/s): it sees the connection drop, answers degraded, has its reconnects refused
# (backoff capped at 5 s) and finds the new edge by itself.
check_edge_kill() {
    ensure_up cloud edge || return 1
    local prefix="$work/edge-kill" t0 reconnect=""
    mid_run "$prefix" 0.4 "the edge was killed" --concurrency 4 --rate "$EDGE_KILL_RATE" || return 1
    echo "killing the edge (pid ${node_pid[edge]}) mid-run" >&2
    stop_server edge KILL
    sleep 1
    proc_running "$dev_pid" || { finish_device; echo "the device finished during the outage, before the edge was restarted"; return 1; }
    up_node edge > "$work/why-edge" || { finish_device; echo "the edge did not restart: $(tail -n 1 "${node_log[edge]}")"; return 1; }
    t0="$(date +%s.%N)"
    wait_connected "${node_log[edge]}" 0 20 && reconnect="$(since "$t0")" || echo "the device did not reconnect to the new edge" >&2
    finish_device
    [ -n "$reconnect" ] || { echo "the device did not reconnect to the restarted edge within 20 s (device log: $(tail -n 1 "$prefix.err"))"; return 1; }
    figure "device reconnected $reconnect s after the edge listened again"
    check_report edge-restart "$prefix"
}
check_edge_sigterm() {   # paced, so that the run (2.5 s) still goes on when the edge gets SIGTERM
    ensure_up cloud edge || return 1
    local prefix="$work/edge-term" edge_log="${node_log[edge]}" stopped=0
    mid_run "$prefix" 0.3 "the edge got SIGTERM" --rate 4000 || return 1
    stop_server edge TERM || stopped=$?
    finish_device
    [ "$stopped" -eq 0 ] || { echo "the edge was still running $STOP_TIMEOUT s after SIGTERM"; return 1; }
    [ "$stop_status" -eq 0 ] || { echo "the edge exited $stop_status after SIGTERM: $(tail -n 1 "$edge_log")"; return 1; }
    ! grep -q 'still open after' "$edge_log" || { echo "the edge drained only by closing connections at the end of its grace period ($stop_seconds s): $(grep -m 1 'still open after' "$edge_log")"; return 1; }
    check_report drain "$prefix"
}
# stall_run PREFIX [OPTIONS]: the cloud stopped (SIGSTOP) for STALL_SECONDS mid-run, the device paced at
# STALL_RATE so that the run outlasts the stall; its answers checked against its deadline.
stall_run() {
    ensure_up cloud edge || return 1
    local deadline
    deadline="$(node_key "$TOPO" "$DEVICE" deadlineMs)"
    mid_run "$1" 0.1 "the cloud was stopped" --rate "$STALL_RATE" "${@:2}" || return 1
    kill -STOP "${node_pid[cloud]}"
    echo "stopped the cloud (pid ${node_pid[cloud]}) for $STALL_SECONDS s" >&2
    sleep "$STALL_SECONDS"
    proc_running "$dev_pid" || echo "the device finished while the cloud was stopped" >&2
    kill -CONT "${node_pid[cloud]}"
    finish_device
    check_report stall "$1" "$deadline" "$DEADLINE_MARGIN_MS"
}
check_cloud_stall() { stall_run "$work/cloud-stall"; }
# Four times maxInFlight samples in flight: the extra requests wait in the device's link queue behind a
# full window, and the deadline must bound that wait too.
check_cloud_stall_queued() { stall_run "$work/cloud-stall-queued" --concurrency $((4 * $(node_key "$TOPO" "$DEVICE" maxInFlight))); }
check_cloud_down() {   # the edge degrades what it would forward
    stop_server edge TERM || true
    stop_server cloud TERM || true
    ensure_up edge || return 1
    start_device "$work/cloud-down" "$TOPO"
    finish_device
    check_report cloud-down "$work/cloud-down"
}
check_fail_policy() {   # onUpstreamFailure: fail with the edge down
    stop_server edge TERM || true
    stop_server cloud TERM || true
    [ "$(node_key "$FAIL_TOPO" "$DEVICE" onUpstreamFailure)" = fail ] || { echo "$FAIL_TOPO does not give the device onUpstreamFailure: fail"; return 1; }
    start_device "$work/fail-policy" "$FAIL_TOPO" --connect-timeout 1
    finish_device
    [ "$dev_status" -eq 2 ] || { echo "expected exit status 2 (samples failed); $(why_device "$work/fail-policy")"; return 1; }
    EXPECT_STATUS=2 check_report fail-policy "$work/fail-policy"
}

# --- Hardening checks -------------------------------------------------------------------
# Each check function prints its reason on failure and appends its measured figures
# to $work/figures, which run_check shows after the name.

# Every probe ends by itself; `timeout` bounds one that hangs all the same.
hard=(timeout 90 "$bin/branchy-probe")
[ "$ONLY" = faults ] || [ -x "$bin/branchy-probe" ] \
    || die "no executable $bin/branchy-probe for the hardening checks (scripts/build.sh builds it)"
HARD_DEVICE_TIMEOUT=30   # seconds for a device run of the hardening checks (200 samples take 1 or 2)
HARD_CERTS="$(topology_certs_dir "$HARD_TOPO")"

figure() { printf '%s\n' "$*" >> "$work/figures"; }

# probe COMMAND ARGS...: runs a branchy-probe probe; its line of figures goes to
# the check's figures, or its reason to standard output when it fails.
probe() {
    local out
    if out="$("${hard[@]}" "$@")"; then
        [ -z "$out" ] || figure "$out"
    else
        echo "${out:-branchy-probe $1 failed}"
        return 1
    fi
}

seconds_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

# start_node KEY TOPOLOGY NODE [ULIMIT_OPTIONS]: starts an edge or cloud node from /
# (as node_pid[KEY], with a fresh log node_log[KEY]), under `ulimit ULIMIT_OPTIONS`
# if given (e.g. "-n 256"), and waits until it listens. stop_server KEY stops it.
start_node() {
    local key="$1" topology="$2" name="$3" fds="${4:-}" role listen host port nlog pid waited=0
    role="$(node_field "$topology" "$name" 2)"
    listen="$(node_field "$topology" "$name" 3)"
    host="$(host_of "$listen")"; port="$(port_of "$listen")"
    if port_listening "$host" "$port"; then
        echo "port $port for $name is taken by another process: $(ss -Hltnp "sport = :$port" 2>/dev/null | head -n 1)"
        return 1
    fi
    starts=$((starts + 1))
    nlog="$REPO_ROOT/$work/$key-$starts.log"
    (
        # shellcheck disable=SC2086 # options and value
        [ -z "$fds" ] || ulimit $fds || exit 99
        cd / && exec "$bin/branchy-$role" --topology "$topology" --node "$name"
    ) </dev/null >"$nlog" 2>&1 &
    pid=$!
    started+=("$pid")
    node_pid[$key]=$pid
    node_log[$key]=$nlog
    echo "started $name of $(basename "$topology") (pid $pid${fds:+, ulimit $fds}), log $nlog" >&2
    while ! port_listening "$host" "$port"; do
        if ! proc_running "$pid"; then
            echo "$name of $(basename "$topology") exited before listening on $listen: $(tail -n 1 "$nlog")"
            return 1
        fi
        [ "$waited" -lt $((START_TIMEOUT * 10)) ] || { echo "$name did not listen on $listen within $START_TIMEOUT s"; return 1; }
        sleep 0.1
        waited=$((waited + 1))
    done
}

# node_up KEY TOPOLOGY NODE: start_node unless it runs.
node_up() { server_up "$1" || start_node "$@"; }

# start_device_of PREFIX TOPOLOGY NODE [OPTIONS]: starts a device node from / in the
# background (dev_pid), with its data set from the topology; finish_device waits.
start_device_of() {
    local prefix="$REPO_ROOT/$1" topology="$2" node="$3"
    shift 3
    (cd / && exec "$bin/branchy-device" --topology "$topology" --node "$node" \
        --report "$prefix.json" --predictions "$prefix.jsonl" "$@") </dev/null >"$prefix.out" 2>"$prefix.err" &
    dev_pid=$!
    started+=("$dev_pid")
    echo "started $node of $(basename "$topology") (pid $dev_pid) $*" >&2
}

# A device of $HARD_TOPO through its edge and cloud: PREFIX SAMPLES.
device_answers_all() {
    node_up hardening-cloud "$HARD_TOPO" cloud && node_up hardening-edge "$HARD_TOPO" edge || return 1
    start_device_of "$1" "$HARD_TOPO" device-1 --limit "$2"
    DEVICE_TIMEOUT="$HARD_DEVICE_TIMEOUT" finish_device
    [ "$dev_status" -eq 0 ] || { why_device "$1"; return 1; }
    probe device-report "$1.json" "$1.jsonl" "$2" answered
}

model_fingerprint=""
fingerprint() {
    if [ -z "$model_fingerprint" ]; then
        model_fingerprint="$("$bin/branchy" info --model "$(topology_path "$HARD_TOPO" model)" 2>&1 | awk '$1 == "fingerprint" { print $2 }')"
    fi
    [ -n "$model_fingerprint" ] || { echo "no model fingerprint from 'branchy info'"; return 1; }
    echo "$model_fingerprint"
}

# cpu_ticks PID: user + system time of PID so far, in clock ticks.
cpu_ticks() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    set -- $stat
    echo $(( ${12} + ${13} ))
}

# warnings LOG FROM: warning lines of a node log after line FROM.
warnings() { awk -v from="$2" 'NR > from && $2 == "warning"' "$1" | wc -l; }
lines_of() { wc -l < "$1"; }

check_hardening_certs() {
    local topology
    for topology in "$HARD_TOPO" "$TIMEOUTS_TOPO" "$FD_TOPO"; do
        [ "$(topology_certs_dir "$topology")" = "$HARD_CERTS" ] || { echo "$topology does not use $HARD_CERTS"; return 1; }
        scripts/gen-certs.sh "$topology" >&2 || { echo "could not make the certificates for $topology"; return 1; }
    done
    probe sans "$HARD_CERTS" || return 1
    # The fault checks' own certificates, when they were made above.
    [ ! -f "$(topology_certs_dir "$TOPO")/ca.pem" ] || probe sans "$(topology_certs_dir "$TOPO")"
}

# 1. An impostor on the edge's port, with another node's certificate from the same CA.
check_impostor() {
    stop_server hardening-edge TERM || true
    local listen host port dir="$work/impostor" cert ipid waited
    listen="$(node_field "$HARD_TOPO" edge 3)"
    host="$(host_of "$listen")"; port="$(port_of "$listen")"
    mkdir -p "$dir"
    for cert in cloud device-2; do
        : > "$dir/$cert.jsonl"
        if port_listening "$host" "$port"; then echo "port $port is taken by another process"; return 1; fi
        "${hard[@]}" impostor "$host" "$port" "$HARD_CERTS/$cert.pem" "$HARD_CERTS/$cert-key.pem" "$HARD_CERTS/ca.pem" \
            "$dir/$cert.jsonl" 2>>"$log" &
        ipid=$!
        started+=("$ipid")
        waited=0
        until port_listening "$host" "$port"; do
            proc_running "$ipid" || { echo "the impostor did not start"; return 1; }
            [ "$waited" -lt 100 ] || { echo "the impostor did not listen within 10 s"; return 1; }
            sleep 0.1; waited=$((waited + 1))
        done
        start_device_of "$dir/device-vs-$cert" "$HARD_TOPO" device-1 --limit 50 --connect-timeout 2
        DEVICE_TIMEOUT="$HARD_DEVICE_TIMEOUT" finish_device
        sleep 0.2   # the impostor notes the last close
        stop_children "$log" "$ipid"
        [ "$dev_status" -eq 0 ] || { why_device "$REPO_ROOT/$dir/device-vs-$cert"; return 1; }
        local verdict answers
        verdict="$("${hard[@]}" impostor-verdict "$dir/$cert.jsonl" 2>>"$log")" \
            || { echo "impostor with the $cert certificate: $verdict"; return 1; }
        answers="$("${hard[@]}" device-report "$dir/device-vs-$cert.json" "$dir/device-vs-$cert.jsonl" 50 local 2>>"$log")" \
            || { echo "device against the impostor with the $cert certificate: $answers"; return 1; }
        figure "$cert certificate: $verdict, $answers"
        grep -m 1 "presented a certificate" "$dir/device-vs-$cert.err" >&2 || true
    done
}

# 2. Connections that never authenticate, and one that goes idle, are closed in time.
check_timeouts() {
    node_up hardening-timeouts "$TIMEOUTS_TOPO" edge || return 1
    local fp listen handshake idle
    fp="$(fingerprint)" || { echo "$fp"; return 1; }
    listen="$(node_field "$TIMEOUTS_TOPO" edge 3)"
    handshake="$(node_key "$TIMEOUTS_TOPO" edge handshakeTimeoutMs)"
    idle="$(node_key "$TIMEOUTS_TOPO" edge idleTimeoutMs)"
    [ -n "$handshake" ] && [ -n "$idle" ] || { echo "$TIMEOUTS_TOPO gives the edge no handshakeTimeoutMs and idleTimeoutMs"; return 1; }
    probe timeouts "$(host_of "$listen")" "$(port_of "$listen")" "$HARD_CERTS/ca.pem" "$HARD_CERTS" device-1 edge "$fp" \
        "$handshake" "$idle" 750
    local status=$?
    stop_server hardening-timeouts TERM || true
    return "$status"
}

# 3. An edge with 256 descriptors (soft = hard) while hundreds of TCP connections that
# never authenticate are held against it: a device still gets in and is served.
FD_LIMIT=256
check_fd_limit() {
    stop_server hardening-fd-edge TERM || true
    node_up hardening-fd-cloud "$FD_TOPO" cloud || return 1
    local edge limits listen count
    # With room above the soft limit, the node raises it to the hard limit.
    start_node hardening-fd-edge "$FD_TOPO" edge "-Sn $FD_LIMIT" || return 1
    limits="$(awk '/^Max open files/ { print $4 "/" $5 }' "/proc/${node_pid[hardening-fd-edge]}/limits")"
    stop_server hardening-fd-edge TERM || true
    [ "${limits%/*}" = "${limits#*/}" ] && [ "${limits%/*}" != "$FD_LIMIT" ] \
        || { echo "started with a soft descriptor limit of $FD_LIMIT, the edge runs with soft/hard $limits"; return 1; }
    figure "soft descriptor limit raised from $FD_LIMIT to ${limits%/*}"
    # Without: soft = hard = FD_LIMIT.
    start_node hardening-fd-edge "$FD_TOPO" edge "-n $FD_LIMIT" || return 1
    edge="${node_pid[hardening-fd-edge]}"
    limits="$(awk '/^Max open files/ { print $4 "/" $5 }' "/proc/$edge/limits")"
    [ "$limits" = "$FD_LIMIT/$FD_LIMIT" ] || { echo "the edge runs with descriptor limits $limits, not $FD_LIMIT/$FD_LIMIT"; return 1; }
    listen="$(node_field "$FD_TOPO" edge 3)"
    for count in 300 1000; do
        fd_run "$(host_of "$listen")" "$(port_of "$listen")" "$count" "$edge" || return 1
    done
    local accept
    accept="$(grep -c 'accept failed' "${node_log[hardening-fd-edge]}")" || true
    figure "edge log: ${accept:-0} accept-failure lines"
    stop_server hardening-fd-edge TERM || true
    stop_server hardening-fd-cloud TERM || true
}

# fd_run HOST PORT COUNT EDGE_PID: one round of check_fd_limit.
fd_run() {
    local host="$1" port="$2" count="$3" edge="$4" prefix="$work/fd-$count" hpid waited=0 t0 connect="" c0 c1 cpu
    "${hard[@]}" hold "$host" "$port" "$count" 20 "$prefix.status" 2>>"$log" &
    hpid=$!
    started+=("$hpid")
    until [ -s "$prefix.status" ]; do
        proc_running "$hpid" || { echo "the connection holder ended before it opened its connections"; return 1; }
        [ "$waited" -lt 100 ] || { echo "the connection holder did not open its connections within 10 s"; return 1; }
        sleep 0.1; waited=$((waited + 1))
    done
    sleep 0.5   # let the first wave reach the edge
    echo "holding $(tail -n 1 "$prefix.status")" >&2
    t0="$(date +%s.%N)"
    waited=0
    start_device_of "$prefix-device" "$FD_TOPO" device --limit 200
    while [ -z "$connect" ] && proc_running "$dev_pid" && [ "$waited" -lt 1000 ]; do
        grep -q "connected to edge '" "$prefix-device.err" 2>/dev/null && connect="$(seconds_since "$t0")"
        sleep 0.02
        waited=$((waited + 1))
    done
    DEVICE_TIMEOUT="$HARD_DEVICE_TIMEOUT" finish_device
    [ -n "$connect" ] || ! grep -q "connected to edge '" "$prefix-device.err" || connect="$(seconds_since "$t0")"
    echo "$count held: the device connected after ${connect:-never} s; holder $(tail -n 1 "$prefix.status")" >&2
    c0="$(cpu_ticks "$edge")" || { echo "the edge is gone after $count held connections"; return 1; }
    sleep 3
    c1="$(cpu_ticks "$edge")" || { echo "the edge is gone after $count held connections"; return 1; }
    cpu="$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", 100 * (b - a) / hz / 3 }')"
    waited=0
    while proc_running "$hpid" && [ "$waited" -lt 400 ]; do sleep 0.1; waited=$((waited + 1)); done
    stop_children "$log" "$hpid"
    local held answers
    held="$("${hard[@]}" hold-verdict "$prefix.status" "$count" 10 2>>"$log")" || { echo "$count held: $held"; return 1; }
    figure "$count held: device connected in ${connect:-never} s, edge CPU ${cpu}% over 3 s, $held"
    [ "$dev_status" -eq 0 ] || { echo "$count held: $(why_device "$REPO_ROOT/$prefix-device")"; return 1; }
    answers="$("${hard[@]}" device-report "$prefix-device.json" "$prefix-device.jsonl" 200 answered 2>>"$log")" \
        || { echo "$count held: $answers"; return 1; }
    [ -n "$connect" ] || { echo "$count held: the device never logged 'connected to'"; return 1; }
    awk -v c="$connect" 'BEGIN { exit !(c < 1.0) }' || { echo "$count held: the device connected only after $connect s"; return 1; }
    awk -v c="$cpu" 'BEGIN { exit !(c < 10) }' || { echo "$count held: the edge used ${cpu}% CPU over 3 s after the run"; return 1; }
}

# Per-peer connection cap.
check_peer_cap() {
    node_up hardening-edge "$HARD_TOPO" edge || return 1
    local fp listen cap
    fp="$(fingerprint)" || { echo "$fp"; return 1; }
    listen="$(node_field "$HARD_TOPO" edge 3)"
    cap="$(node_key "$HARD_TOPO" edge maxConnectionsPerPeer)"
    probe peer-cap "$(host_of "$listen")" "$(port_of "$listen")" "$HARD_CERTS/ca.pem" "$HARD_CERTS" device-16 edge "$fp" "${cap:-8}"
}

# 4. Many authenticated connections each pinning most of a 4 MiB frame.
check_input_budget() {
    node_up hardening-cloud "$HARD_TOPO" cloud && node_up hardening-edge "$HARD_TOPO" edge || return 1
    local fp listen total per_peer
    fp="$(fingerprint)" || { echo "$fp"; return 1; }
    listen="$(node_field "$HARD_TOPO" edge 3)"
    total="$(node_key "$HARD_TOPO" edge inputBudgetBytes)"
    per_peer="$(node_key "$HARD_TOPO" edge peerInputBudgetBytes)"
    probe budget "$(host_of "$listen")" "$(port_of "$listen")" "$HARD_CERTS/ca.pem" "$HARD_CERTS" edge "$fp" \
        "${node_pid[hardening-edge]}" 60 4 "${total:-67108864}" "${per_peer:-16777216}" 256 || return 1
    device_answers_all "$work/budget-device" 200
}

# 5. model.json sizes that cannot be allocated.
check_model_sizes() {
    local variant dir out status field
    for variant in width input; do
        dir="$REPO_ROOT/$work/model-$variant"
        mkdir -p "$dir"
        "${hard[@]}" model-bomb "$(topology_path "$HARD_TOPO" model)" "$dir/model" "$variant" >/dev/null || { echo "could not make the $variant model"; return 1; }
        case "$variant" in width) field=out ;; input) field=input ;; esac
        "${hard[@]}" measure 20 "$dir/eval.json" "$bin/branchy" eval --model "$dir/model" --dataset "$(topology_path "$HARD_TOPO" dataset)" --limit 10 >"$dir/eval.out" 2>"$dir/eval.err"
        model_refused "$variant" "branchy eval" "$dir/eval" "$field" || return 1
        sed -e "s|^model:.*|model: $dir/model|" -e "s|^certs:.*|certs: $HARD_CERTS|" \
            -e "s|^dataset:.*|dataset: $(topology_path "$HARD_TOPO" dataset)|" \
            -e 's|127.0.0.1:7441|127.0.0.1:7447|' -e 's|127.0.0.1:7442|127.0.0.1:7448|' "$HARD_TOPO" > "$dir/topology.yaml"
        (cd / && exec "${hard[@]}" measure 20 "$dir/edge.json" "$bin/branchy-edge" --topology "$dir/topology.yaml" --node edge) \
            >"$dir/edge.out" 2>"$dir/edge.err"
        model_refused "$variant" "branchy-edge" "$dir/edge" "$field" || return 1
    done
}

# measured FILE: "STATUS SECONDS PEAK_RSS_MB" from the JSON object `branchy-probe measure` wrote.
measured() {
    sed -n 's/^{"status": "\{0,1\}\([^",]*\)"\{0,1\}, "seconds": \([0-9.]*\), "maxRssMB": \([0-9.]*\)}$/\1 \2 \3/p' "$1"
}

# model_refused VARIANT WHAT PREFIX FIELD: the run measured into PREFIX.json exited 1
# with an error naming FIELD.
model_refused() {
    local status seconds rss last
    read -r status seconds rss < <(measured "$3.json") \
        || { echo "$2 ($1): no measurement"; return 1; }
    last="$(grep -v '^[[:space:]]*$' "$3.err" | tail -n 1)"
    echo "$2 ($1): exit $status after $seconds s, peak RSS $rss MB: $last" >&2
    figure "$1: $2 exit $status in $seconds s"
    [ "$status" != timeout ] || { echo "$2 ($1 too large) still ran after 20 s"; return 1; }
    [ "$status" -eq 1 ] || { echo "$2 ($1 too large) exited $status, not 1: ${last:0:200}"; return 1; }
    grep -Eqw -- "$4" <<< "$last" || { echo "$2 ($1 too large): the error does not name '$4': ${last:0:200}"; return 1; }
}

# 6. A gzip IDX file whose header announces 10 images but which inflates to 1 GiB.
check_gzip_bomb() {
    local dir="$work/gzip-bomb" status seconds rss last
    probe gzip-bomb "$dir" $((1 << 30)) || return 1
    "${hard[@]}" measure 30 "$dir/eval.json" "$bin/branchy" eval --model "$(topology_path "$HARD_TOPO" model)" \
        --dataset "$dir" --limit 10 >"$dir/eval.out" 2>"$dir/eval.err"
    read -r status seconds rss < <(measured "$dir/eval.json") \
        || { echo "no measurement of branchy eval"; return 1; }
    last="$(grep -v '^[[:space:]]*$' "$dir/eval.err" | tail -n 1)"
    echo "branchy eval on the gzip bomb: exit $status after $seconds s, peak RSS $rss MB: $last" >&2
    figure "branchy eval exit $status in $seconds s, peak RSS $rss MB"
    [ "$status" != timeout ] || { echo "branchy eval ran for 30 s"; return 1; }
    [ "$status" -ne 0 ] || { echo "branchy eval accepted the file"; return 1; }
    [ "$status" -eq 1 ] || { echo "branchy eval exited $status, not 1: ${last:0:200}"; return 1; }
    awk -v r="$rss" 'BEGIN { exit !(r < 200) }' || { echo "branchy eval peaked at $rss MB RSS, not under 200 MB"; return 1; }
    awk -v s="$seconds" 'BEGIN { exit !(s < 3) }' || { echo "branchy eval took $seconds s to fail, not under 3 s"; return 1; }
    grep -q 't10k-images-idx3-ubyte' <<< "$last" || { echo "the error does not name the images file: ${last:0:200}"; return 1; }
}

# 7. Untrusted text in logs, and warnings that a peer can trigger at will.
FORGED_PREFIX='2026-11-28T00:00:00 critical edge : forged'
check_log_injection() {
    # A fresh edge, so that earlier checks' warnings do not count against the rate limit.
    stop_server hardening-edge TERM || true
    node_up hardening-cloud "$HARD_TOPO" cloud && node_up hardening-edge "$HARD_TOPO" edge || return 1
    local fp listen host port elog mark n_cycles n_refused
    fp="$(fingerprint)" || { echo "$fp"; return 1; }
    listen="$(node_field "$HARD_TOPO" edge 3)"
    host="$(host_of "$listen")"; port="$(port_of "$listen")"
    elog="${node_log[hardening-edge]}"
    sleep 0.5   # the edge's link to the cloud is up

    mark="$(lines_of "$elog")"
    "${hard[@]}" cycles "$host" "$port" "$HARD_CERTS/ca.pem" "$HARD_CERTS" device-1 edge 200 >"$work/cycles.out" 2>>"$log" \
        || { tail -n 1 "$work/cycles.out"; return 1; }
    sleep 0.5
    n_cycles="$(warnings "$elog" "$mark")"
    figure "200 TLS closes without close_notify: $n_cycles warning lines"

    mark="$(lines_of "$elog")"
    probe inject "$host" "$port" "$HARD_CERTS/ca.pem" "$HARD_CERTS" device-1 edge "$fp" \
        "device\\n$FORGED_PREFIX\\x1b[31m\\x00\\\\" || return 1
    sleep 0.3
    probe log-escaped "$elog" "$mark" "device\\n$FORGED_PREFIX\\u{1B}[31m\\u{0}\\\\" "$FORGED_PREFIX" || return 1

    mark="$(lines_of "$elog")"
    "${hard[@]}" refused-hellos "$host" "$port" "$HARD_CERTS/ca.pem" "$HARD_CERTS" device-1 edge "$fp" 30 \
        >"$work/refused.out" 2>>"$log" || { tail -n 1 "$work/refused.out"; return 1; }
    sleep 0.3
    n_refused="$(warnings "$elog" "$mark")"
    figure "30 refused hellos: $n_refused warning lines"
    [ "$n_cycles" -lt 5 ] || { echo "200 closes without close_notify logged $n_cycles warning lines"; return 1; }
    [ "$n_refused" -le 10 ] || { echo "30 refused hellos logged $n_refused warning lines: not rate-limited"; return 1; }
    proc_running "${node_pid[hardening-edge]}" || { echo "the edge is gone"; return 1; }
}

if [ "$ONLY" != hardening ]; then
    run_check "faults cluster starts ($(basename "$TOPO"))" check_up
    run_check "edge killed mid-run and restarted: all 10,000 accounted for, cloud reached again" check_edge_kill
    run_check "edge gets SIGTERM mid-run: exits 0, all accounted for" check_edge_sigterm
    run_check "cloud stalled mid-run: degraded within the deadline, p99 bounded" check_cloud_stall
    run_check "cloud stalled mid-run, requests queued behind a full window: p99 bounded" check_cloud_stall_queued
    run_check "cloud down from the start: all answered or degraded, exit 0" check_cloud_down
    run_check "onUpstreamFailure fail with the edge down: failures counted, exit 2" check_fail_policy
    stop_server edge TERM 2>>"$log" || true
    stop_server cloud TERM 2>>"$log" || true
fi

if [ "$ONLY" != faults ]; then
    hardening_started="$(date +%s.%N)"
    run_check "node certificates name only their node: no IP address, no localhost" check_hardening_certs
    run_check "impostor upstream refused: no hello sent, every sample answered by the device" check_impostor
    run_check "timeouts close idle connections: raw TCP, TLS without hello, idle after hello" check_timeouts
    run_check "fd limit 256: 300 idle connections, then 1,000; a device still served" check_fd_limit
    run_check "per-peer connection cap: one hello too many gets limitReached" check_peer_cap
    run_check "input budget bounds memory: 60 connections announcing 4 MiB frames" check_input_budget
    run_check "oversized model.json refused: exit 1 naming the field" check_model_sizes
    run_check "gzip bomb refused: fast, small, clear error" check_gzip_bomb
    run_check "log injection escaped; closes without close_notify and refusals do not flood the log" check_log_injection
    stop_server hardening-edge TERM 2>>"$log" || true
    stop_server hardening-cloud TERM 2>>"$log" || true
    echo "hardening checks: $(awk -v a="$hardening_started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s" >> "$log"
fi

# --- Replays of the hostile cases of the review -------------------------------------------------
# The reported cases replayed against release processes, with figures: on a copy of
# topology/hardening.yaml with ports of its own (edge 127.0.0.1:7457, metrics :8457; cloud :7458,
# :8458), a 2 s handshake and idle timeout on the edge, the edge under a descriptor limit of 256
# (soft and hard), and device-1 given `thresholds: [0]` so that every one of its samples crosses
# the edge (its latency then shows what an attack on the edge costs a real device):
#   - baseline: device-1 classifies REPLAY_SAMPLES samples at REPLAY_RATE a second
#   (1) one peer identity at its connection cap sends statsRequest frames (protocol 2) and never
#       reads, during a device run: the edge stays up, its VmRSS (every 100 ms) under 200 MB, and
#       every connection stops being read and is closed
#   (2) infer frames whose zstd tensor states [1, 2048, 2048] (~530 bytes, 16 MiB inflated), 100
#       per connection, during a device run: each connection refused with badTensor; device p50
#       and mean latency at most twice the baseline's
#   (3) the metrics port held until the edge runs out of descriptors (accepts fail with EMFILE)
#       during a device run, then again alone after a quiet spell (a second episode): one
#       "accept on" warning per episode, device p50 and mean at most twice the baseline's; and
#       the accepts back off: edge CPU under 10% while exhausted, failed accepts per episode
#       (from its /readyz) within one per 250 ms pause
#   (4) a version 1 frame header dribbled one byte at a time, a statsRequest reusing an id in
#       flight, a client hello with a names table
# Every device run must exit 0, write its report and fail no sample. The figures are also
# printed as `# replay: ...` lines after the checks.
REPLAY_SAMPLES=300
REPLAY_RATE=100
REPLAY_FD_LIMIT=256
REPLAY_MAX_RSS_MB=200
REPLAY_EDGE_STAGE=1          # b-lenet3: stage 0 on the device, 1 on the edge, 2 on the cloud
REPLAY_HANDSHAKE_MS=2000
REPLAY_IDLE_MS=2000
replay_dir="$work/replay"
replay_topo="$REPO_ROOT/$replay_dir/topology.yaml"
replay_lines=()
replay_base_p50=""
replay_base_mean=""
replay_metrics=()            # the two metrics-port episodes' probe lines

replay_figure() { figure "$*"; replay_lines+=("$*"); }

# replay_topology: writes $replay_topo from $HARD_TOPO (absolute paths, own ports, timeouts,
# device-1 forwarding every sample) and checks that the loader reads it so.
replay_topology() {
    mkdir -p "$replay_dir"
    awk -v model="$(topology_path "$HARD_TOPO" model)" -v dataset="$(topology_path "$HARD_TOPO" dataset)" \
        -v certs="$HARD_CERTS" -v hs="$REPLAY_HANDSHAKE_MS" -v idle="$REPLAY_IDLE_MS" '
        /^model:/ { print "model: " model; next }
        /^dataset:/ { print "dataset: " dataset; next }
        /^certs:/ { print "certs: " certs; next }
        /^[ \t]*-[ \t]+name:/ { node = $NF }
        node == "edge" && /^[ \t]+listen:/ { sub(/listen:.*/, "listen: 127.0.0.1:7457") }
        node == "edge" && /^[ \t]+metrics:/ { sub(/metrics:.*/, "metrics: 127.0.0.1:8457") }
        node == "edge" && /^[ \t]+handshakeTimeoutMs:/ { sub(/handshakeTimeoutMs:.*/, "handshakeTimeoutMs: " hs) }
        node == "edge" && /^[ \t]+idleTimeoutMs:/ { sub(/idleTimeoutMs:.*/, "idleTimeoutMs: " idle) }
        node == "cloud" && /^[ \t]+listen:/ { sub(/listen:.*/, "listen: 127.0.0.1:7458") }
        node == "cloud" && /^[ \t]+metrics:/ { sub(/metrics:.*/, "metrics: 127.0.0.1:8458") }
        { print }
        /^[ \t]*-[ \t]+name:[ \t]*device-1[ \t]*$/ { print "    thresholds: [0]" }' "$HARD_TOPO" > "$replay_topo"
    [ "$(node_field "$replay_topo" edge 3)" = 127.0.0.1:7457 ] && [ "$(node_field "$replay_topo" cloud 3)" = 127.0.0.1:7458 ] \
        && [ "$(node_field "$replay_topo" device-1 6)" = 0 ] \
        && [ "$(node_key "$replay_topo" edge handshakeTimeoutMs)" = "$REPLAY_HANDSHAKE_MS" ] \
        && [ "$(node_key "$replay_topo" edge idleTimeoutMs)" = "$REPLAY_IDLE_MS" ] \
        && [ "$(topology_query "$replay_topo" '[n["metrics"] for n in t["nodes"] if n["name"] == "edge"][0]')" = 127.0.0.1:8457 ] \
        || { echo "could not derive $replay_topo from $HARD_TOPO (ports, timeouts, device-1 thresholds)"; return 1; }
}

# replay_up: the replay cluster (cloud, then the edge under the descriptor limit), both running.
replay_up() {
    node_up replay-cloud "$replay_topo" cloud || return 1
    if ! server_up replay-edge; then
        start_node replay-edge "$replay_topo" edge "-n $REPLAY_FD_LIMIT" || return 1
        local waited=0
        until grep -q "connected to cloud" "${node_log[replay-edge]}"; do
            [ "$waited" -lt 100 ] || { echo "the replay edge did not connect to its cloud within 10 s"; return 1; }
            sleep 0.1; waited=$((waited + 1))
        done
    fi
}

# replay_device PREFIX: starts device-1 of the replay topology on REPLAY_SAMPLES samples at REPLAY_RATE.
replay_device() {
    start_device_of "$1" "$replay_topo" device-1 --limit "$REPLAY_SAMPLES" --rate "$REPLAY_RATE"
}

# replay_result PREFIX WHAT: after finish_device, checks the run (exit 0, report written, none
# failed) and sets rp_p50, rp_mean (ms) and rp_summary.
replay_result() {
    local prefix="$1" what="$2" out p99 edge answered degraded failed
    rp_p50=""; rp_mean=""; rp_summary=""
    [ "$dev_status" -eq 0 ] || { echo "$what: $(why_device "$REPO_ROOT/$prefix")"; return 1; }
    [ -s "$prefix.json" ] || { echo "$what: the device wrote no report"; return 1; }
    out="$("${hard[@]}" latency "$prefix.json" 2>>"$log")" || { echo "$what: $out"; return 1; }
    read -r rp_p50 rp_mean p99 edge answered degraded failed <<< "$out"
    rp_summary="p50 $rp_p50 ms, mean $rp_mean ms, p99 $p99 ms (edge exit p50 $edge ms); $answered answered, $degraded degraded, $failed failed"
    [ "$failed" -eq 0 ] || { echo "$what: $failed of $REPLAY_SAMPLES samples failed ($rp_summary)"; return 1; }
    [ $((answered + degraded)) -eq "$REPLAY_SAMPLES" ] \
        || { echo "$what: $answered answered + $degraded degraded, not $REPLAY_SAMPLES ($rp_summary)"; return 1; }
}

# replay_within_twice WHAT: rp_p50 and rp_mean at most twice the baseline's.
replay_within_twice() {
    [ -n "$replay_base_p50" ] || { echo "$1: no baseline to compare with"; return 1; }
    awk -v a="$rp_p50" -v b="$replay_base_p50" 'BEGIN { exit !(a <= 2 * b) }' \
        || { echo "$1: device p50 $rp_p50 ms, more than twice the baseline's $replay_base_p50 ms"; return 1; }
    awk -v a="$rp_mean" -v b="$replay_base_mean" 'BEGIN { exit !(a <= 2 * b) }' \
        || { echo "$1: device mean $rp_mean ms, more than twice the baseline's $replay_base_mean ms"; return 1; }
}

replay_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# replay_attack PREFIX WHAT PROBE ARGS...: runs the hardening probe PROBE in the background (its
# output in PREFIX.probe) while device-1 runs its replay samples (PREFIX-device); sets
# attack_status and attack_out (the probe's last line). Fails when the edge did not survive.
replay_attack() {
    local prefix="$1" what="$2" apid
    shift 2
    attack_status=0
    "${hard[@]}" "$@" >"$prefix.probe" 2>>"$log" &
    apid=$!
    started+=("$apid")
    sleep 0.2
    replay_device "$prefix-device"
    DEVICE_TIMEOUT="$HARD_DEVICE_TIMEOUT" finish_device
    wait "$apid" || attack_status=$?
    attack_out="$(tail -n 1 "$prefix.probe")"
    proc_running "${node_pid[replay-edge]}" || { echo "the edge is gone after the $what: $(tail -n 1 "${node_log[replay-edge]}")"; return 1; }
}

# replay_device_result PREFIX DURING: replay_result for the device run during DURING, and its
# figure line with the ratios to the baseline (written whenever there are figures).
replay_device_result() {
    local status=0
    replay_result "$1" "device run during $2" || status=1
    [ -z "$rp_summary" ] || replay_figure "device during $2: $rp_summary (p50 $(replay_ratio "$rp_p50" "$replay_base_p50")x, mean $(replay_ratio "$rp_mean" "$replay_base_mean")x the baseline's)"
    return "$status"
}

check_replay_baseline() {
    scripts/gen-certs.sh "$HARD_TOPO" >&2 || { echo "could not make the certificates for $HARD_TOPO"; return 1; }
    replay_topology || return 1
    replay_up || return 1
    local prefix="$replay_dir/baseline"
    replay_device "$prefix"
    DEVICE_TIMEOUT="$HARD_DEVICE_TIMEOUT" finish_device
    replay_result "$prefix" "baseline run" || return 1
    replay_base_p50="$rp_p50"; replay_base_mean="$rp_mean"
    replay_figure "baseline, $REPLAY_SAMPLES samples at $REPLAY_RATE/s: $rp_summary"
}

# (1) statsRequest frames whose answers are never read.
check_replay_stats_flood() {
    replay_up || return 1
    local fp edge cap prefix="$replay_dir/stats-flood" mark closing
    fp="$(fingerprint)" || { echo "$fp"; return 1; }
    edge="${node_pid[replay-edge]}"
    cap="$(node_key "$replay_topo" edge maxConnectionsPerPeer)"
    mark="$(lines_of "${node_log[replay-edge]}")"
    replay_attack "$prefix" "stats flood" stats-flood 127.0.0.1 7457 "$HARD_CERTS/ca.pem" "$HARD_CERTS" edge "$fp" "$edge" \
        device-16 "${cap:-8}" 25 "$REPLAY_MAX_RSS_MB" || return 1
    local status="$attack_status" out="$attack_out"
    closing="$(awk -v from="$mark" 'NR > from && /has not read its answers|bytes of answers unread/' "${node_log[replay-edge]}" | wc -l)"
    replay_figure "stats flood, one peer (device-16) with ${cap:-8} connections: ${out:-no figures from the probe}"
    replay_figure "edge log: $closing closing lines for connections that did not read"
    local device_ok=0
    replay_device_result "$prefix-device" "the stats flood" || device_ok=1
    [ "$status" -eq 0 ] || { echo "${out:-stats-flood exited $status}"; return 1; }
    [ "$device_ok" -eq 0 ] || return 1
}

# (2) zstd tensors stating a huge shape.
check_replay_zstd() {
    replay_up || return 1
    local fp edge prefix="$replay_dir/zstd" seconds
    fp="$(fingerprint)" || { echo "$fp"; return 1; }
    edge="${node_pid[replay-edge]}"
    seconds=$((REPLAY_SAMPLES / REPLAY_RATE + 1))
    replay_attack "$prefix" "zstd flood" zstd-flood 127.0.0.1 7457 "$HARD_CERTS/ca.pem" "$HARD_CERTS" edge "$fp" "$edge" \
        "$REPLAY_EDGE_STAGE" 20000 100 "$seconds" || return 1
    replay_figure "zstd flood: ${attack_out:-no figures from the probe}"
    replay_device_result "$prefix-device" "the zstd flood" || return 1
    [ "$attack_status" -eq 0 ] || { echo "${attack_out:-zstd-flood exited $attack_status}"; return 1; }
    replay_within_twice "zstd flood"
}

# (3) the metrics port out of descriptors: two episodes, the first during a device run.
check_replay_metrics() {
    replay_metrics=()
    replay_up || return 1
    local edge prefix="$replay_dir/metrics" out status=0 mark waited=0 hold lines previous
    edge="${node_pid[replay-edge]}"
    mark="$(lines_of "${node_log[replay-edge]}")"
    replay_device "$prefix-device"
    # The device connects first: once the descriptors are gone, nobody new gets in.
    until grep -q "connected to edge '" "$prefix-device.err" 2>/dev/null; do
        proc_running "$dev_pid" && [ "$waited" -lt 500 ] || { finish_device; echo "the device did not connect to the edge"; return 1; }
        sleep 0.02; waited=$((waited + 1))
    done
    hold="$(awk -v n="$REPLAY_SAMPLES" -v r="$REPLAY_RATE" 'BEGIN { printf "%.1f", n / r }')"
    out="$("${hard[@]}" metrics-exhaust 127.0.0.1 8457 "$edge" 400 "$hold" 2>>"$log")" || status=$?
    DEVICE_TIMEOUT="$HARD_DEVICE_TIMEOUT" finish_device
    replay_metrics+=("$out")
    replay_figure "metrics port, episode 1 (device running): $out"
    [ "$status" -eq 0 ] || { echo "episode 1: $out"; return 1; }
    proc_running "$edge" || { echo "the edge is gone after the metrics port ran out of descriptors"; return 1; }
    replay_device_result "$prefix-device" "episode 1" || return 1
    # A quiet spell longer than the 5 s that end an episode, then a second episode.
    sleep 6
    out="$("${hard[@]}" metrics-exhaust 127.0.0.1 8457 "$edge" 400 3 2>>"$log")" || { echo "episode 2: $out"; return 1; }
    replay_metrics+=("$out")
    replay_figure "metrics port, episode 2 (alone): $out"
    proc_running "$edge" || { echo "the edge is gone after the second episode"; return 1; }
    lines="$(awk -v from="$mark" 'NR > from && /accept on /' "${node_log[replay-edge]}" | wc -l)"
    previous="$(awk -v from="$mark" 'NR > from && /accept on / && /previous episode had/' "${node_log[replay-edge]}" | wc -l)"
    replay_figure "edge log: $lines 'accept on' warning lines for 2 episodes, $previous naming the previous episode"
    awk -v from="$mark" 'NR > from && /accept on /' "${node_log[replay-edge]}" | head -n 2 >&2
    [ "$lines" -eq 2 ] && [ "$previous" -eq 1 ] \
        || { echo "2 episodes of failed accepts logged $lines 'accept on' warning lines ($previous naming the previous episode), not one each"; return 1; }
    replay_within_twice "metrics port out of descriptors"
}

# (3') from the two episodes' figures: the accepts paused after each failure.
check_replay_accept_backoff() {
    [ "${#replay_metrics[@]}" -eq 2 ] || { echo "no measurement of the two episodes (see the previous check)"; return 1; }
    local line cpu window failures bound i=0
    for line in "${replay_metrics[@]}"; do
        i=$((i + 1))
        cpu="$(sed -n 's/.*node CPU \([0-9.]*\)% over the \([0-9.]*\) s exhausted.*/\1/p' <<< "$line")"
        window="$(sed -n 's/.*node CPU \([0-9.]*\)% over the \([0-9.]*\) s exhausted.*/\2/p' <<< "$line")"
        failures="$(sed -n 's/.*; \([0-9?]*\) failed accepts in the episode.*/\1/p' <<< "$line")"
        [ -n "$cpu" ] && [ -n "$window" ] || { echo "episode $i: no CPU figure in '$line'"; return 1; }
        # One failed accept per 250 ms pause, a few more at the start and the end of the episode.
        bound="$(awk -v w="$window" 'BEGIN { printf "%d", w / 0.25 + 10 }')"
        replay_figure "episode $i: edge CPU $cpu% over $window s exhausted, ${failures:-?} failed accepts (a 250 ms pause allows about $bound)"
        awk -v c="$cpu" 'BEGIN { exit !(c < 10) }' \
            || { echo "episode $i: the edge used $cpu% CPU over the $window s its descriptors were exhausted (${failures:-?} failed accepts): accepts do not pause"; return 1; }
        [ "$failures" != "?" ] && [ -n "$failures" ] || { echo "episode $i: the edge's /readyz gave no count of failed accepts"; return 1; }
        [ "$failures" -le "$bound" ] || { echo "episode $i: $failures failed accepts in $window s, not at most $bound"; return 1; }
    done
}

# (4) smaller ones.
check_replay_small() {
    replay_up || return 1
    local fp
    fp="$(fingerprint)" || { echo "$fp"; return 1; }
    probe small-cases 127.0.0.1 7457 "$HARD_CERTS/ca.pem" "$HARD_CERTS" edge "$fp" "$REPLAY_HANDSHAKE_MS" 750 || return 1
    proc_running "${node_pid[replay-edge]}" || { echo "the edge is gone"; return 1; }
}

if [ "$ONLY" != faults ]; then
    replay_started="$(date +%s.%N)"
    run_check "replay: cluster up, device baseline ($REPLAY_SAMPLES samples at $REPLAY_RATE/s, all through the edge)" check_replay_baseline
    run_check "replay (1): statsRequest flood never read: edge alive, VmRSS under $REPLAY_MAX_RSS_MB MB, connections closed" check_replay_stats_flood
    run_check "replay (2): zstd tensors stating [1, 2048, 2048]: badTensor, device p50 and mean within 2x" check_replay_zstd
    run_check "replay (3): metrics port out of descriptors: one warning per episode, device p50 and mean within 2x" check_replay_metrics
    run_check "replay (3): accepts back off while out of descriptors: edge CPU under 10%, one failure per pause" check_replay_accept_backoff
    run_check "replay (4): dribbled header cut, duplicate stats id refused, client names table refused" check_replay_small
    stop_server replay-edge TERM 2>>"$log" || true
    stop_server replay-cloud TERM 2>>"$log" || true
    for line in "${replay_lines[@]}"; do printf '# replay: %s\n' "$line"; done
    echo "replay checks: $(awk -v a="$replay_started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s" >> "$log"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
