#!/usr/bin/env bash
# Load check: sixteen device processes at once into one edge and one cloud
# (topology/load.yaml: device-01 ... device-16 -> edge 127.0.0.1:7431 -> cloud
# 127.0.0.1:7432), each classifying the first LIMIT samples of the test set.
#
#   - the cluster starts
#   - every device exits 0 with every sample answered (none degraded or failed)
#   - the peak resident memory (VmHWM) of the edge and of the cloud stays below
#     RSS_LIMIT_MB
#   - the edge and the cloud stop on SIGTERM with exit status 0
#   - the edge and the cloud log their batch sizes when they stop (the summary
#     shows them)
#
# The device processes stand in for sixteen machines but share the machine's
# cores with the edge and the cloud, and their local stage is CPU-bound: the
# throughput measures mostly device compute, and the latency of forwarded
# samples mostly queueing (16 x 16 samples in flight by default; CONCURRENCY
# changes it) and CPU contention, including from other work on the machine (the
# summary gives the load average before the run).
#
# The edge's and cloud's VmRSS is sampled every 0.2 s during the run. A summary
# (aggregate throughput, latency, exits, memory, CPU time) is printed and written
# to run/load-summary.txt. Prints `ok - NAME` or `not ok - NAME: why` per check,
# then `N passed, M failed`; exits 1 if any check failed. Details go to run/load/.
#
# Why 300 MB: edge and cloud hold a small model (about 0.4 MB of weights), two
# event-loop and two worker threads, TLS state for at most 17 connections, and
# at most 16 x 256 requests in flight of under 1 kB each on the wire: a few MB
# even with per-request bookkeeping. Measured on 2 cores: about 31 MB idle,
# 32-47 MB at the peak of this check. 300 MB leaves room for allocator slack
# and other machines, and still catches a queue that grows without bound. It
# would not catch a leak of a few kB per request: with the shipped model and
# thresholds only about 7,600 of the 40,000 samples cross the edge and 5,500
# reach the cloud.
#
# Environment: BRANCHY_BIN (folder of built executables: skips the build);
# TOPOLOGY (another topology file of the same shape); LIMIT (samples per device,
# default 2500); RSS_LIMIT_MB (default 300); DEVICE_TIMEOUT (seconds for the
# whole set of devices, default 300); CONCURRENCY (samples each device keeps in
# flight; default: the device's default, 16, at most the node's maxInFlight);
# DEVICE_NICE (niceness of the device processes, default 0); DEVICE_THREADS (each
# device's sample threads, --threads; default the device's, 2).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() { echo "usage: $(basename "$0")   (builds, runs 16 devices at once against one edge and one cloud, writes run/load-summary.txt)"; }
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

TOPO="$(abs_path "${TOPOLOGY:-$REPO_ROOT/topology/load.yaml}")"
[ -f "$TOPO" ] || die "no topology file $TOPO"
cd "$REPO_ROOT"
LIMIT="${LIMIT:-2500}"
RSS_LIMIT_MB="${RSS_LIMIT_MB:-300}"
DEVICE_TIMEOUT="${DEVICE_TIMEOUT:-300}"
DEVICE_NICE="${DEVICE_NICE:-0}"
START_TIMEOUT=30
STOP_TIMEOUT=15
work=run/load
log="$work/load.log"
summary_file=run/load-summary.txt

ensure_packages openssl:openssl python3:python3
ensure_built
bin="$BRANCHY_BIN"

rm -rf "$work"
mkdir -p "$work"
rm -f "$summary_file"

# --- Processes --------------------------------------------------------------------

started=()
declare -A node_pid=()

cleanup() {
    rm -f "$work/sampling"
    stop_children "$log" "${started[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# start_server NAME: starts an edge or cloud node and waits until it listens.
start_server() {
    local name="$1" role listen host port pid waited=0 log="$work/$1.log"
    role="$(node_field "$TOPO" "$name" 2)"
    listen="$(node_field "$TOPO" "$name" 3)"
    host="$(host_of "$listen")"; port="$(port_of "$listen")"
    if port_listening "$host" "$port"; then
        echo "port $port for $name is taken by another process: $(ss -Hltnp "sport = :$port" 2>/dev/null | head -n 1)"
        return 1
    fi
    "$bin/branchy-$role" --topology "$TOPO" --node "$name" </dev/null >"$log" 2>&1 &
    pid=$!
    started+=("$pid")
    node_pid[$name]=$pid
    echo "started $name (pid $pid), log $log" >&2
    while ! port_listening "$host" "$port"; do
        proc_running "$pid" || { echo "$name exited before listening on $listen: $(tail -n 1 "$log")"; return 1; }
        [ "$waited" -lt $((START_TIMEOUT * 10)) ] || { echo "$name did not listen on $listen within $START_TIMEOUT s"; return 1; }
        sleep 0.1
        waited=$((waited + 1))
    done
}

# status_kb PID FIELD: a memory field of /proc/PID/status in kB (VmRSS, VmHWM), or nothing.
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

# cpu_seconds PID: user + system CPU time so far.
cpu_seconds() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
    stat="${stat##*) }"
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / hz }' <<< "$stat"
}

# sample_rss OUT EDGE_PID CLOUD_PID: while $work/sampling exists, appends
# "seconds edge_kB cloud_kB" to OUT every 0.2 s.
sample_rss() {
    local t0
    t0="$(date +%s.%N)"
    while [ -e "$work/sampling" ]; do
        printf '%s %s %s\n' "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')" \
            "$(status_kb "$2" VmRSS)" "$(status_kb "$3" VmRSS)" >> "$1"
        sleep 0.2
    done
}

# --- Runner ---------------------------------------------------------------------------

passed=0
failed=0

devices="$(topology_nodes "$TOPO" | awk -F'\t' '$2 == "device" { print $1 }')"
device_count="$(grep -c . <<< "$devices" || true)"
declare -A facts=()   # figures for the summary

# --- Checks -------------------------------------------------------------------------

check_up() {
    local model
    model="$(topology_path "$TOPO" model)"
    [ -f "$model/model.json" ] || { echo "no trained model in $model"; return 1; }
    [ "$device_count" -gt 0 ] || { echo "no devices in $TOPO"; return 1; }
    scripts/gen-certs.sh "$TOPO" >&2 || { echo "could not make the certificates"; return 1; }
    start_server cloud || return 1
    start_server edge || return 1
    sleep 0.5
    facts[edge_idle_kb]="$(status_kb "${node_pid[edge]}" VmRSS)"
    facts[cloud_idle_kb]="$(status_kb "${node_pid[cloud]}" VmRSS)"
}

check_devices() {
    [ -n "${node_pid[edge]:-}" ] && proc_running "${node_pid[edge]}" || { echo "the edge is not running"; return 1; }
    [ -n "${node_pid[cloud]:-}" ] && proc_running "${node_pid[cloud]}" || { echo "the cloud is not running"; return 1; }
    local device pid t0 t1 waited=0 status problems="" sampler i=0
    local -a pids=()
    facts[load_before]="$(cut -d' ' -f1 /proc/loadavg)"
    touch "$work/sampling"
    sample_rss "$work/rss.txt" "${node_pid[edge]}" "${node_pid[cloud]}" &
    sampler=$!
    started+=("$sampler")
    t0="$(date +%s.%N)"
    for device in $devices; do
        nice -n "$DEVICE_NICE" "$bin/branchy-device" --topology "$TOPO" --node "$device" --limit "$LIMIT" ${CONCURRENCY:+--concurrency "$CONCURRENCY"} ${DEVICE_THREADS:+--threads "$DEVICE_THREADS"} \
            --report "$work/$device.json" --predictions "$work/$device.jsonl" \
            </dev/null >"$work/$device.out" 2>"$work/$device.err" &
        pids+=("$!")
        started+=("$!")
    done
    echo "started $device_count devices with --limit $LIMIT" >&2
    while :; do
        local running=0
        for pid in "${pids[@]}"; do proc_running "$pid" && running=$((running + 1)); done
        [ "$running" -gt 0 ] || break
        if [ "$waited" -ge $((DEVICE_TIMEOUT * 20)) ]; then
            echo "$running devices still running after $DEVICE_TIMEOUT s; killing them" >&2
            for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
            break
        fi
        sleep 0.05
        waited=$((waited + 1))
    done
    t1="$(date +%s.%N)"
    rm -f "$work/sampling"
    wait "$sampler" 2>/dev/null || true
    facts[wall]="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
    facts[edge_hwm_kb]="$(status_kb "${node_pid[edge]}" VmHWM)"
    facts[cloud_hwm_kb]="$(status_kb "${node_pid[cloud]}" VmHWM)"
    facts[edge_cpu]="$(cpu_seconds "${node_pid[edge]}")"
    facts[cloud_cpu]="$(cpu_seconds "${node_pid[cloud]}")"
    for device in $devices; do
        status=0
        wait "${pids[i]}" || status=$?
        i=$((i + 1))
        [ "$status" -eq 0 ] || problems+="; $device exited $status: $(grep -v '^[[:space:]]*$' "$work/$device.err" | tail -n 1)"
    done
    echo "all devices done after ${facts[wall]} s" >&2
    local why
    why="$(python3 -c "$aggregator" check "$work" "$LIMIT" $devices)" || problems+="; $why"
    [ -z "$problems" ] || { echo "${problems#; }"; return 1; }
}

# rss_below NODE: the node's VmHWM, read right after the run, is below the limit.
rss_below() {
    local kb="${facts[$1_hwm_kb]:-}"
    [ -n "$kb" ] || { echo "no VmHWM for the $1 (not running at the end of the run?)"; return 1; }
    echo "$1 VmHWM $kb kB" >&2
    [ "$kb" -lt $((RSS_LIMIT_MB * 1024)) ] || { echo "$1 peak RSS $((kb / 1024)) MB, not below $RSS_LIMIT_MB MB"; return 1; }
}
check_edge_rss() { rss_below edge; }
check_cloud_rss() { rss_below cloud; }

check_down() {
    local name pid status waited problems=""
    for name in edge cloud; do
        pid="${node_pid[$name]:-}"
        [ -n "$pid" ] && proc_running "$pid" || { problems+="; $name was not running"; continue; }
        kill -TERM "$pid"
        waited=0
        while proc_running "$pid" && [ "$waited" -lt $((STOP_TIMEOUT * 20)) ]; do sleep 0.05; waited=$((waited + 1)); done
        if proc_running "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
            problems+="; $name still running $STOP_TIMEOUT s after SIGTERM"
        fi
        status=0
        wait "$pid" || status=$?
        echo "$name exited with status $status" >&2
        [ "$status" -eq 0 ] || problems+="; $name exited $status"
    done
    [ -z "$problems" ] || { echo "${problems#; }"; return 1; }
}

# check_batches: each server's log holds the batch-size line it writes when it
# stops (e.g. "batches by size: 1: 120, 2-3: 14, ... (137 batches, 160 samples,
# mean 1.17); stage time per sample by batch size: ..."), kept for the summary.
check_batches() {
    local name line problems=""
    for name in edge cloud; do
        line="$(grep -h 'batches by size' "$work/$name.log" 2>/dev/null | tail -n 1 | sed 's/.*batches by size: //' || true)"
        if [ -n "$line" ]; then
            facts[${name}_batches]="${line%%; stage time*}"
            case "$line" in *"; stage time"*) facts[${name}_stage]="${line#*; stage time per sample by batch size: }" ;; esac
            echo "$name batches by size: $line" >&2
        else
            problems+="; no batch sizes in $work/$name.log"
        fi
    done
    [ -z "$problems" ] || { echo "${problems#; }"; return 1; }
}

# python3 -c "$aggregator" check WORK LIMIT DEVICE...: every report complete, every
# sample answered; prints why not.
# python3 -c "$aggregator" summary WORK LIMIT KEY=VALUE... -- DEVICE...: the summary block.
aggregator=$(cat <<'PY'
import json, os, statistics, sys

def load(work, device):
    with open(os.path.join(work, device + ".json")) as f:
        return json.load(f)

def check(work, limit, devices):
    problems = []
    for d in devices:
        try:
            r = load(work, d)
        except (OSError, ValueError) as e:
            problems.append(f"{d}: no report ({e.__class__.__name__})")
            continue
        if r.get("samples") != limit:
            problems.append(f"{d}: samples {r.get('samples')}, expected {limit}")
        if (r.get("answered"), r.get("degraded"), r.get("failed")) != (limit, 0, 0):
            problems.append(f"{d}: answered {r.get('answered')}, degraded {r.get('degraded')}, failed {r.get('failed')} of {limit}")
        try:
            with open(os.path.join(work, d + ".jsonl")) as f:
                ids = {json.loads(line)["sample"] for line in f if line.strip()}
            if ids != set(range(limit)):
                problems.append(f"{d}: the predictions do not hold each of the {limit} samples once")
        except (OSError, ValueError, KeyError) as e:
            problems.append(f"{d}: no readable predictions ({e.__class__.__name__})")
    if problems:
        print(f"{len(problems)} problems: " + "; ".join(problems[:3]))
        sys.exit(1)

def mb(kb):
    return f"{int(kb) / 1024:.1f} MB" if kb not in (None, "") else "n/a"

def summary(work, limit, facts, devices):
    reports = []
    for d in devices:
        try:
            reports.append(load(work, d))
        except (OSError, ValueError):
            pass
    wall = float(facts.get("wall") or 0)
    total = sum(r["samples"] for r in reports)
    lines = [f"load: {len(devices)} devices x {limit} samples -> edge -> cloud ({facts['topology']})",
             f"devices         in flight per device: {facts.get('concurrency') or 'the device default (16)'}; "
             f"niceness {facts.get('device_nice')} (edge and cloud 0)"]
    if reports:
        answered = sum(r["answered"] for r in reports)
        degraded = sum(r["degraded"] for r in reports)
        failed = sum(r["failed"] for r in reports)
        p50s = sorted(r["latencyMs"]["p50"] for r in reports)
        p99s = sorted(r["latencyMs"]["p99"] for r in reports)
        durations = sorted(r["durationSeconds"] for r in reports)
        correct = sum(r["accuracy"] * r["samples"] for r in reports)
        lines += [
            f"reports         {len(reports)} of {len(devices)}",
            f"samples         {total} (answered {answered}, degraded {degraded}, failed {failed}); accuracy {100 * correct / max(1, total):.2f}%",
            f"wall time       {wall:.2f} s, from starting the {len(devices)} device processes together to the last exit",
            f"throughput      {total / wall if wall > 0 else 0:.0f} samples/s (total samples / wall time)",
            f"device runs     {durations[0]:.2f} .. {durations[-1]:.2f} s classifying (median {statistics.median(durations):.2f} s)",
            f"latency p50     {statistics.median(p50s):.2f} ms median over devices (devices {p50s[0]:.2f} .. {p50s[-1]:.2f} ms)",
            f"latency p99     {p99s[-1]:.2f} ms worst device (median device {statistics.median(p99s):.2f} ms); "
            "the p99 over all samples is at most the worst device's",
        ]
        exits = {}
        for r in reports:
            for e in r["exits"]:
                exits[e["name"]] = exits.get(e["name"], 0) + e["count"]
        lines.append("exits           " + ", ".join(f"{k} {v} ({100 * v / max(1, total):.1f}%)" for k, v in exits.items()))
        for name in exits:
            per = [e["latencyMs"] for r in reports for e in r["exits"] if e["name"] == name and e["count"] > 0]
            if per:
                lines.append(f"  {name:<13} latency p50 {statistics.median(p['p50'] for p in per):.2f} ms median over devices, "
                             f"p99 {max(p['p99'] for p in per):.2f} ms worst device")
        links = {}
        for r in reports:
            for l in r.get("links", []):
                source, _, target = l["link"].partition("->")
                key = f"devices->{target}" if source == r.get("device") else l["link"]
                n, b = links.get(key, (0, 0))
                links[key] = (n + l["requests"], b + l["requestTLSBytes"] + l["responseTLSBytes"])
        lines.append("links           " + ", ".join(f"{k} {n} requests, {b / 1e6:.2f} MB on the wire" for k, (n, b) in links.items()))
    else:
        lines.append("no device reports")
    for node in ("edge", "cloud"):
        if facts.get(node + "_batches"):
            lines.append(f"{node + ' batches':<15} by size {facts[node + '_batches']}")
        if facts.get(node + "_stage"):
            lines.append(f"{'':<15} stage time per sample by batch size {facts[node + '_stage']}")
    for node in ("edge", "cloud"):
        lines.append(f"{node + ' memory':<15} idle {mb(facts.get(node + '_idle_kb'))}, peak sampled VmRSS {mb(facts.get(node + '_peak_kb'))}, "
                     f"VmHWM {mb(facts.get(node + '_hwm_kb'))} (limit {facts['rss_limit']} MB); CPU {facts.get(node + '_cpu') or 'n/a'} s")
    lines.append(f"machine         {os.cpu_count()} CPUs, load average {facts.get('load_before', '?')} before the run")
    lines.append(f"command         {facts['command']}")
    print("\n".join(lines))

cmd, work, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
if cmd == "check":
    check(work, limit, sys.argv[4:])
else:
    rest = sys.argv[4:]
    split = rest.index("--")
    facts = dict(a.split("=", 1) for a in rest[:split])
    summary(work, limit, facts, rest[split + 1:])
PY
)

run_check "load cluster starts ($(basename "$TOPO"))" check_up
run_check "$device_count devices at once, $LIMIT samples each: every sample answered" check_devices
run_check "edge peak RSS below $RSS_LIMIT_MB MB" check_edge_rss
run_check "cloud peak RSS below $RSS_LIMIT_MB MB" check_cloud_rss
run_check "edge and cloud stop on SIGTERM with status 0" check_down
run_check "edge and cloud report their batch sizes" check_batches

# Highest sampled VmRSS of each node.
if [ -s "$work/rss.txt" ]; then
    facts[edge_peak_kb]="$(awk '$2 > m { m = $2 } END { print m }' "$work/rss.txt")"
    facts[cloud_peak_kb]="$(awk '$3 > m { m = $3 } END { print m }' "$work/rss.txt")"
fi
command_line="scripts/load.sh"
[ "$LIMIT" = 2500 ] || command_line="LIMIT=$LIMIT $command_line"
[ -z "${CONCURRENCY:-}" ] || command_line="CONCURRENCY=$CONCURRENCY $command_line"
[ "$DEVICE_NICE" = 0 ] || command_line="DEVICE_NICE=$DEVICE_NICE $command_line"
[ -z "${DEVICE_THREADS:-}" ] || command_line="DEVICE_THREADS=$DEVICE_THREADS $command_line"
[ -z "${TOPOLOGY:-}" ] || command_line="TOPOLOGY=$TOPOLOGY $command_line"
args=("topology=${TOPO#"$REPO_ROOT"/}" "rss_limit=$RSS_LIMIT_MB" "command=$command_line"
      "concurrency=${CONCURRENCY:-}" "device_nice=$DEVICE_NICE")
for key in "${!facts[@]}"; do args+=("$key=${facts[$key]}"); done
echo
if python3 -c "$aggregator" summary "$work" "$LIMIT" "${args[@]}" -- $devices > "$summary_file.tmp" 2>>"$log"; then
    mv "$summary_file.tmp" "$summary_file"
    cat "$summary_file"
else
    rm -f "$summary_file.tmp"
    echo "(no summary: see $log)"
fi
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
