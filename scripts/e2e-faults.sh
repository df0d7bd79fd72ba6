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

. "$REPO_ROOT/scripts/lib/hardening-checks.sh"

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

. "$REPO_ROOT/scripts/lib/hardening-replays.sh"

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
