#!/usr/bin/env bash
# Fault checks: real processes, real TLS, on loopback, with topology/faults.yaml
# (device -> edge 127.0.0.1:7421 -> cloud 127.0.0.1:7422, deadlineMs 2000) and
# topology/faults-fail.yaml (the same with onUpstreamFailure: fail on the device).
#
#   - the cluster starts
#   - edge killed (SIGKILL) in the middle of a 10,000-sample run and restarted:
#     every sample accounted for, some degraded, and after the restart the device
#     reconnects and samples reach the cloud again
#   - edge stopped with SIGTERM during a run: it drains and exits 0, every sample
#     accounted for
#   - cloud stalled (SIGSTOP) during a run: forwarded samples get degraded answers
#     from the edge at its deadline, the run completes, p99 latency below the
#     deadline plus a margin; once as the device runs by default (at most
#     maxInFlight requests in flight), once with four times as many, so that
#     requests also wait in the device's link queue behind a full window
#   - cloud down from the start: every sample answered or degraded, none failed,
#     exit status 0
#   - onUpstreamFailure: fail with the edge down: some samples failed, every one
#     accounted for, the device exits 2
#
# Prints `ok - NAME` or `not ok - NAME: why` per check, then `N passed, M failed`;
# exits 1 if any check failed. Details go to run/e2e-faults/ (faults.log, node
# logs, device outputs, reports, predictions).
# Environment: BRANCHY_BIN (folder of built executables: skips the build);
# TOPOLOGY, FAIL_TOPOLOGY (other topology files with the same node names);
# DEVICE_TIMEOUT (seconds per device run, default 120); STALL_SECONDS (how long
# the cloud stays stopped, default 4); DEADLINE_MARGIN_MS (default 1000).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() { echo "usage: $(basename "$0")   (builds, runs the fault checks, stops every process it started)"; }
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

# Topology paths given in the environment are relative to the starting directory.
TOPO="$(abs_path "${TOPOLOGY:-$REPO_ROOT/topology/faults.yaml}")"
FAIL_TOPO="$(abs_path "${FAIL_TOPOLOGY:-$REPO_ROOT/topology/faults-fail.yaml}")"
[ -f "$TOPO" ] || die "no topology file $TOPO"
[ -f "$FAIL_TOPO" ] || die "no topology file $FAIL_TOPO"
cd "$REPO_ROOT"
SAMPLES=10000
DEVICE_TIMEOUT="${DEVICE_TIMEOUT:-120}"
STALL_SECONDS="${STALL_SECONDS:-4}"
DEADLINE_MARGIN_MS="${DEADLINE_MARGIN_MS:-1000}"
START_TIMEOUT=30   # seconds for a node to listen
STOP_TIMEOUT=15    # seconds for a node to exit after SIGTERM (its drain grace is 10 s)
work=run/e2e-faults
log="$work/faults.log"

ensure_packages openssl:openssl python3:python3
ensure_built
bin="$BRANCHY_BIN"

rm -rf "$work"
mkdir -p "$work"

# --- Processes -------------------------------------------------------------------
# Every process started here is a child of this shell, so that `wait` gives its
# exit status; `started` lists them all for the cleanup.

started=()
declare -A node_pid=() node_log=()
starts=0
dev_pid=""
dev_status=0

cleanup() {
    stop_children "$log" "${started[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# node_key TOPOLOGY NODE KEY: a scalar key of one node entry (block style), or nothing.
node_key() {
    awk -v node="$2" -v key="$3" '
        /^[ \t]*-[ \t]+name:/ { v = $0; sub(/^[^:]*:[ \t]*/, "", v); sub(/[ \t]+#.*$/, "", v); cur = v; next }
        cur == node && $0 ~ "^[ \t]+" key ":" {
            v = $0; sub(/^[^:]*:[ \t]*/, "", v); sub(/[ \t]+#.*$/, "", v); gsub(/[ \t"\047]/, "", v); print v; exit
        }' "$1"
}

# connections LOG: how many times the node with this log accepted the device.
connections() {
    local n
    n="$(grep -cF "device '$DEVICE' connected" "$1" 2>/dev/null)" || true
    echo "${n:-0}"
}

# wait_connected LOG BEFORE SECONDS: true once the node with this log has accepted
# the device more than BEFORE times; false after SECONDS or when the device has ended.
wait_connected() {
    local i=0
    while [ "$(connections "$1")" -le "$2" ]; do
        proc_running "$dev_pid" || return 1
        [ "$i" -lt $(($3 * 20)) ] || return 1
        sleep 0.05
        i=$((i + 1))
    done
}

# start_server NAME: starts an edge or cloud node of $TOPO with a fresh log and
# waits until it listens.
start_server() {
    local name="$1" role listen host port log pid waited=0
    role="$(node_field "$TOPO" "$name" 2)"
    listen="$(node_field "$TOPO" "$name" 3)"
    host="$(host_of "$listen")"; port="$(port_of "$listen")"
    if port_listening "$host" "$port"; then
        echo "port $port for $name is taken by another process: $(ss -Hltnp "sport = :$port" 2>/dev/null | head -n 1)"
        return 1
    fi
    starts=$((starts + 1))
    log="$work/$name-$starts.log"
    "$bin/branchy-$role" --topology "$TOPO" --node "$name" </dev/null >"$log" 2>&1 &
    pid=$!
    started+=("$pid")
    node_pid[$name]=$pid
    node_log[$name]=$log
    echo "started $name (pid $pid), log $log" >&2
    while ! port_listening "$host" "$port"; do
        if ! proc_running "$pid"; then
            echo "$name exited before listening on $listen: $(tail -n 1 "$log")"
            return 1
        fi
        [ "$waited" -lt $((START_TIMEOUT * 10)) ] || { echo "$name did not listen on $listen within $START_TIMEOUT s"; return 1; }
        sleep 0.1
        waited=$((waited + 1))
    done
}

server_up() { [ -n "${node_pid[$1]:-}" ] && proc_running "${node_pid[$1]}"; }

# ensure_up NAME...: starts the named nodes that are not running.
ensure_up() {
    local name
    for name in "$@"; do server_up "$name" || start_server "$name" || return 1; done
}

# stop_server NAME [SIGNAL]: sends SIGNAL (default TERM), waits for the exit;
# sets stop_status (its exit status) and stop_seconds. Returns 1 if the node
# was still running after STOP_TIMEOUT seconds (it is then killed).
stop_status=0
stop_seconds=0
stop_server() {
    local name="$1" sig="${2:-TERM}" pid t0 waited=0
    pid="${node_pid[$name]:-}"
    [ -n "$pid" ] || return 0
    unset 'node_pid[$name]'
    t0="$(date +%s.%N)"
    kill -CONT "$pid" 2>/dev/null || true
    kill "-$sig" "$pid" 2>/dev/null || true
    while proc_running "$pid"; do
        if [ "$waited" -ge $((STOP_TIMEOUT * 20)) ]; then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            stop_status=137
            stop_seconds="$STOP_TIMEOUT"
            return 1
        fi
        sleep 0.05
        waited=$((waited + 1))
    done
    stop_status=0
    wait "$pid" || stop_status=$?
    stop_seconds="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')"
    echo "stopped $name (pid $pid) with SIG$sig: exit status $stop_status after $stop_seconds s" >&2
}

DEVICE="$(topology_nodes "$TOPO" | awk -F'\t' '$2 == "device" { print $1; exit }')"

# start_device PREFIX TOPOLOGY [OPTIONS]: starts the device in the background
# (dev_pid), writing PREFIX.json (report), .jsonl (predictions), .out and .err.
start_device() {
    local prefix="$1" topology="$2"
    shift 2
    "$bin/branchy-device" --topology "$topology" --node "$DEVICE" \
        --report "$prefix.json" --predictions "$prefix.jsonl" "$@" </dev/null >"$prefix.out" 2>"$prefix.err" &
    dev_pid=$!
    started+=("$dev_pid")
    echo "started $DEVICE (pid $dev_pid) on $topology $*" >&2
}

# finish_device: waits for the device (killing it after DEVICE_TIMEOUT s) and
# sets dev_status.
finish_device() {
    local waited=0
    while proc_running "$dev_pid"; do
        if [ "$waited" -ge $((DEVICE_TIMEOUT * 10)) ]; then
            kill -CONT "$dev_pid" 2>/dev/null || true
            kill -KILL "$dev_pid" 2>/dev/null || true
            echo "killed $DEVICE: still running after $DEVICE_TIMEOUT s" >&2
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    dev_status=0
    wait "$dev_pid" || dev_status=$?
    echo "$DEVICE exited with status $dev_status" >&2
}

# why_device PREFIX: a reason line for a device run that did not exit as expected.
why_device() {
    if [ "$dev_status" -eq 137 ]; then
        echo "the device did not finish within $DEVICE_TIMEOUT s"
    else
        echo "the device exited $dev_status: $(grep -v '^[[:space:]]*$' "$1.err" | tail -n 1)"
    fi
}

# throttle PID FLAG: while the file FLAG exists, lets PID run 10 ms in every 100 ms.
throttle() {
    trap 'kill -CONT "$1" 2>/dev/null; exit 0' EXIT TERM
    while [ -e "$2" ] && proc_running "$1"; do
        kill -STOP "$1" 2>/dev/null || break
        sleep 0.09
        kill -CONT "$1" 2>/dev/null || break
        sleep 0.01
    done
}

# --- Report checks ------------------------------------------------------------------
# python3 -c "$checker" COMMAND REPORT PREDICTIONS SAMPLES [ARGS]: prints nothing
# (details to stderr) and exits 0 when the check holds; otherwise prints why.
checker=$(cat <<'PY'
import json, sys

class Failed(Exception):
    pass

def require(cond, why):
    if not cond:
        raise Failed(why)

def load(report, predictions, samples):
    try:
        with open(report) as f:
            r = json.load(f)
    except (OSError, ValueError) as e:
        raise Failed(f"no readable report {report}: {e}")
    rows = []
    try:
        with open(predictions) as f:
            for line in f:
                if line.strip():
                    p = json.loads(line)
                    rows.append((int(p["sample"]), int(p["exit"]), int(p["class"]), p["status"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise Failed(f"no readable predictions {predictions}: {e}")
    for k in ("samples", "answered", "degraded", "failed", "exits", "latencyMs"):
        require(k in r, f"the report lacks '{k}'")
    require(r["samples"] == samples, f"report: samples = {r['samples']}, expected {samples}")
    total = r["answered"] + r["degraded"] + r["failed"]
    require(total == samples,
            f"answered {r['answered']} + degraded {r['degraded']} + failed {r['failed']} = {total}, not {samples}")
    require(len(rows) == samples, f"{len(rows)} prediction lines, expected {samples}")
    require(sorted(s for s, _, _, _ in rows) == list(range(samples)), "the predictions do not hold each sample exactly once")
    for status in ("answered", "degraded", "failed"):
        n = sum(1 for row in rows if row[3] == status)
        require(n == r[status], f"{n} predictions {status}, the report says {r[status]}")
    last = max(e["index"] for e in r["exits"])
    summary = (f"samples {r['samples']}: answered {r['answered']}, degraded {r['degraded']}, failed {r['failed']}; "
               f"exits {[(e['name'], e['count'], e['degraded']) for e in r['exits']]}; "
               f"latency p50 {r['latencyMs']['p50']:.1f} ms, p99 {r['latencyMs']['p99']:.1f} ms; "
               f"connections {r.get('deviceLinkConnections')}; {r.get('durationSeconds', 0):.2f} s")
    print(summary, file=sys.stderr)
    return r, rows, last

def edge_restart(r, rows, last, args):
    require(r["failed"] == 0, f"{r['failed']} samples failed under onUpstreamFailure: degrade")
    require(r["degraded"] > 0, "no sample was degraded: the edge's death went unnoticed")
    require(r.get("deviceLinkConnections", 0) >= 2,
            f"deviceLinkConnections = {r.get('deviceLinkConnections')}: the device did not reconnect to the restarted edge")
    degraded = [s for s, _, _, st in rows if st == "degraded"]
    cloud = [s for s, e, _, st in rows if e == last and st == "answered"]
    before = [s for s in cloud if s < min(degraded)]
    after = [s for s in cloud if s > max(degraded)]
    print(f"degraded samples {min(degraded)}..{max(degraded)}; cloud answers before them {len(before)}, "
          f"after them {len(after)} (exit {last})", file=sys.stderr)
    require(before, f"no cloud answer (exit {last}) before the first degraded sample {min(degraded)}: the kill was not mid-run")
    require(after, f"no cloud answer (exit {last}) after the last degraded sample {max(degraded)}: "
                   "requests did not reach the cloud after the restart")

def cloud_down(r, rows, last, args):
    require(r["failed"] == 0, f"{r['failed']} samples failed under onUpstreamFailure: degrade")
    require(r["degraded"] > 0, "no sample was degraded, though the cloud is down")
    reached = sum(1 for _, e, _, _ in rows if e == last)
    require(reached == 0, f"{reached} samples have the cloud's exit {last}, though the cloud is down")

def fail_policy(r, rows, last, args):
    require(r["failed"] > 0, "no sample failed with the edge down and onUpstreamFailure: fail")
    require(r["degraded"] == 0, f"{r['degraded']} samples degraded under onUpstreamFailure: fail")
    bad = [s for s, e, c, st in rows if st == "failed" and (e != -1 or c != -1)]
    require(not bad, f"failed sample {bad[:1]} has an exit or class")

def drain(r, rows, last, args):
    require(r["failed"] == 0, f"{r['failed']} samples failed under onUpstreamFailure: degrade")

def stall(r, rows, last, args):
    deadline, margin = float(args[0]), float(args[1])
    bound = deadline + margin
    require(r["failed"] == 0, f"{r['failed']} samples failed under onUpstreamFailure: degrade")
    require(r["degraded"] > 0, "no sample was degraded while the cloud was stopped")
    p99 = r["latencyMs"]["p99"]
    require(p99 < bound, f"p99 latency {p99:.0f} ms, not below deadline {deadline:.0f} + {margin:.0f} ms")
    # The whole run's p99 may fall among the fast samples; the exits that hold the
    # degraded answers must keep their p99 under the bound as well.
    for e in r["exits"]:
        if e["degraded"] > 0:
            q = e["latencyMs"]["p99"]
            require(q < bound, f"exit {e['name']}: p99 latency {q:.0f} ms over {e['count']} samples "
                               f"({e['degraded']} degraded), not below {bound:.0f} ms")
    by_edge = sum(1 for _, e, _, st in rows if st == "degraded" and 0 < e < last)
    print(f"degraded by the edge at its own deadline: {by_edge} of {r['degraded']}", file=sys.stderr)
    require(by_edge > 0, "no degraded answer came from the edge: the edge did not answer before the device's deadline")

COMMANDS = {"edge-restart": edge_restart, "cloud-down": cloud_down, "fail-policy": fail_policy,
            "drain": drain, "stall": stall}

try:
    cmd, report, predictions, samples = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    r, rows, last = load(report, predictions, samples)
    COMMANDS[cmd](r, rows, last, sys.argv[5:])
except Failed as e:
    print(e)
    sys.exit(1)
PY
)
check_report() { python3 -c "$checker" "$@"; }

# --- Runner ---------------------------------------------------------------------

passed=0
failed=0

# --- Checks -----------------------------------------------------------------------

check_up() {
    local model
    model="$(topology_path "$TOPO" model)"
    [ -f "$model/model.json" ] || { echo "no trained model in $model"; return 1; }
    [ -n "$DEVICE" ] || { echo "no device node in $TOPO"; return 1; }
    local name
    for name in edge cloud; do
        [ "$(node_field "$TOPO" "$name" 2)" = "$name" ] || { echo "$TOPO has no node '$name' with role $name"; return 1; }
    done
    scripts/gen-certs.sh "$TOPO" >&2 || { echo "could not make the certificates for $TOPO"; return 1; }
    scripts/gen-certs.sh "$FAIL_TOPO" >&2 || { echo "could not make the certificates for $FAIL_TOPO"; return 1; }
    ensure_up cloud edge
}

# (a) SIGKILL to the edge mid-run, restart, reconnect.
# Alone, the device classifies the test set in a few seconds, faster than an edge
# restarts, so while the edge is down the device is throttled to a tenth of its
# CPU time (SIGSTOP/SIGCONT); it stays live: it sees the connection drop, answers
# degraded, has its reconnects refused and finds the new edge by itself.
check_edge_kill() {
    ensure_up cloud edge || return 1
    local prefix="$work/edge-kill" flag="$work/throttle.on" thr edge_pid before
    before="$(connections "${node_log[edge]}")"
    start_device "$prefix" "$TOPO" --concurrency 4
    wait_connected "${node_log[edge]}" "$before" 30 || { finish_device; echo "the device did not connect to the edge"; return 1; }
    sleep 0.4
    proc_running "$dev_pid" || { finish_device; echo "the device finished before the edge was killed"; return 1; }
    edge_pid="${node_pid[edge]}"
    stop_server edge KILL
    echo "killed the edge (pid $edge_pid) mid-run" >&2
    touch "$flag"
    throttle "$dev_pid" "$flag" &
    thr=$!
    started+=("$thr")
    sleep 1
    local restarted=no
    if proc_running "$dev_pid"; then
        if start_server edge; then
            restarted=yes
            wait_connected "${node_log[edge]}" 0 20 || echo "the device did not reconnect to the new edge" >&2
        else
            restarted=failed
        fi
    fi
    rm -f "$flag"
    wait "$thr" 2>/dev/null || true
    kill -CONT "$dev_pid" 2>/dev/null || true
    finish_device
    case "$restarted" in
        no) echo "the device finished during the outage, before the edge was restarted"; return 1 ;;
        failed) echo "the edge did not restart: $(tail -n 1 "${node_log[edge]}")"; return 1 ;;
    esac
    [ "$dev_status" -eq 0 ] || { why_device "$prefix"; return 1; }
    check_report edge-restart "$prefix.json" "$prefix.jsonl" "$SAMPLES"
}

# (d) SIGTERM to the edge mid-run: it drains and exits 0.
check_edge_sigterm() {
    ensure_up cloud edge || return 1
    local prefix="$work/edge-term" edge_log="${node_log[edge]}" before
    before="$(connections "$edge_log")"
    start_device "$prefix" "$TOPO"
    wait_connected "$edge_log" "$before" 30 || { finish_device; echo "the device did not connect to the edge"; return 1; }
    sleep 0.15
    proc_running "$dev_pid" || { finish_device; echo "the device finished before the edge got SIGTERM"; return 1; }
    local stopped=0
    stop_server edge TERM || stopped=$?
    finish_device
    [ "$stopped" -eq 0 ] || { echo "the edge was still running $STOP_TIMEOUT s after SIGTERM"; return 1; }
    [ "$stop_status" -eq 0 ] || { echo "the edge exited $stop_status after SIGTERM: $(tail -n 1 "$edge_log")"; return 1; }
    if grep -q 'still open after' "$edge_log"; then
        echo "the edge drained only by closing connections at the end of its grace period ($stop_seconds s): $(grep 'still open after' "$edge_log" | head -n 1)"
        return 1
    fi
    [ "$dev_status" -eq 0 ] || { why_device "$prefix"; return 1; }
    check_report drain "$prefix.json" "$prefix.jsonl" "$SAMPLES"
}

# stall_run PREFIX [DEVICE OPTIONS]: stops the cloud (SIGSTOP) for STALL_SECONDS
# in the middle of a run, then checks the device's answers against its deadline.
stall_run() {
    ensure_up cloud edge || return 1
    local prefix="$1" deadline cloud_pid before
    shift
    deadline="$(node_key "$TOPO" "$DEVICE" deadlineMs)"
    [ -n "$deadline" ] || { echo "$TOPO gives the device no deadlineMs"; return 1; }
    before="$(connections "${node_log[edge]}")"
    start_device "$prefix" "$TOPO" "$@"
    wait_connected "${node_log[edge]}" "$before" 30 || { finish_device; echo "the device did not connect to the edge"; return 1; }
    sleep 0.1
    proc_running "$dev_pid" || { finish_device; echo "the device finished before the cloud was stopped"; return 1; }
    cloud_pid="${node_pid[cloud]}"
    kill -STOP "$cloud_pid"
    echo "stopped the cloud (pid $cloud_pid) for $STALL_SECONDS s" >&2
    sleep "$STALL_SECONDS"
    proc_running "$dev_pid" || echo "the device finished while the cloud was stopped" >&2
    kill -CONT "$cloud_pid"
    finish_device
    [ "$dev_status" -eq 0 ] || { why_device "$prefix"; return 1; }
    check_report stall "$prefix.json" "$prefix.jsonl" "$SAMPLES" "$deadline" "$DEADLINE_MARGIN_MS"
}

# (e) the cloud stalls mid-run: degraded answers within about the deadline.
check_cloud_stall() { stall_run "$work/cloud-stall"; }

# (e') the same with the device keeping four times its maxInFlight samples in
# flight: the extra requests wait in the device's link queue behind a full
# window, and the deadline must bound that wait too.
check_cloud_stall_queued() {
    local window
    window="$(node_key "$TOPO" "$DEVICE" maxInFlight)"
    stall_run "$work/cloud-stall-queued" --concurrency $((4 * ${window:-256}))
}

# (b) the cloud down from the start: the edge degrades what it would forward.
check_cloud_down() {
    stop_server edge TERM || true
    stop_server cloud TERM || true
    ensure_up edge || return 1
    local prefix="$work/cloud-down"
    start_device "$prefix" "$TOPO"
    finish_device
    [ "$dev_status" -eq 0 ] || { why_device "$prefix"; return 1; }
    check_report cloud-down "$prefix.json" "$prefix.jsonl" "$SAMPLES"
}

# (c) onUpstreamFailure: fail with the edge down.
check_fail_policy() {
    stop_server edge TERM || true
    stop_server cloud TERM || true
    [ "$(node_key "$FAIL_TOPO" "$DEVICE" onUpstreamFailure)" = fail ] \
        || { echo "$FAIL_TOPO does not give the device onUpstreamFailure: fail"; return 1; }
    local prefix="$work/fail-policy"
    start_device "$prefix" "$FAIL_TOPO" --connect-timeout 1
    finish_device
    [ "$dev_status" -eq 2 ] || { echo "expected exit status 2 (samples failed); $(why_device "$prefix")"; return 1; }
    check_report fail-policy "$prefix.json" "$prefix.jsonl" "$SAMPLES"
}

run_check "faults cluster starts ($(basename "$TOPO"))" check_up
run_check "edge killed mid-run and restarted: all 10,000 accounted for, cloud reached again" check_edge_kill
run_check "edge gets SIGTERM mid-run: exits 0, all accounted for" check_edge_sigterm
run_check "cloud stalled mid-run: degraded within the deadline, p99 bounded" check_cloud_stall
run_check "cloud stalled mid-run, requests queued behind a full window: p99 bounded" check_cloud_stall_queued
run_check "cloud down from the start: all answered or degraded, exit 0" check_cloud_down
run_check "onUpstreamFailure fail with the edge down: failures counted, exit 2" check_fail_policy

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
