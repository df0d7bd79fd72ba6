#!/usr/bin/env bash
# Load check: sixteen device processes at once (topology/load.yaml: device-01 ... device-16 -> edge
# 127.0.0.1:7431 -> cloud 127.0.0.1:7432), each classifying the first LIMIT samples: every sample
# answered, the peak resident memory (VmHWM) of edge and cloud below RSS_LIMIT_MB, both stop on
# SIGTERM with status 0 and log their batch sizes. A summary (throughput, latency, exits, memory
# sampled every 0.2 s, CPU) goes to run/load-summary.txt. The devices share the cores with the edge
# and the cloud, so the throughput measures mostly device compute and the latency mostly queueing.
# 300 MB: edge and cloud hold a 0.4 MB model, four threads, TLS state for 17 connections and at most
# 16 x 256 requests in flight (about 31 MB idle, 32-47 MB at the peak on 2 cores): room for allocator
# slack that still catches a queue growing without bound (not a leak of a few kB per request).
# Environment: BRANCHY_BIN; TOPOLOGY; LIMIT (samples per device, 2500); RSS_LIMIT_MB (300);
# DEVICE_TIMEOUT (for all devices, 300 s); CONCURRENCY (samples in flight per device); DEVICE_NICE
# (0); DEVICE_THREADS (each device's --threads).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
no_args "builds, runs 16 devices at once against one edge and one cloud, writes run/load-summary.txt" "$@"

TOPO="$(topology_env TOPOLOGY topology/load.yaml)"
cd "$REPO_ROOT"
LIMIT="${LIMIT:-2500}" RSS_LIMIT_MB="${RSS_LIMIT_MB:-300}" DEVICE_TIMEOUT="${DEVICE_TIMEOUT:-300}" DEVICE_NICE="${DEVICE_NICE:-0}"
work=run/load
log="$work/load.log"
summary_file=run/load-summary.txt
ensure_packages openssl:openssl python3:python3
ensure_built
rm -rf "$work" "$summary_file"
mkdir -p "$work"
trap 'rm -f "$work/sampling"; stop_children "$log" "${started[@]}"' EXIT

devices="$(nodes_of "$TOPO" device)"
device_count="$(grep -c . <<< "$devices" || true)"
declare -A pid=() facts=()   # figures for the summary
kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || true; }   # kb PID VmRSS|VmHWM
running() { [ -n "${pid[$1]:-}" ] && proc_running "${pid[$1]}" || { echo "the $1 is not running"; return 1; }; }

check_up() {
    local model name
    model="$(topology_path "$TOPO" model)"
    [ -f "$model/model.json" ] || { echo "no trained model in $model"; return 1; }
    [ "$device_count" -gt 0 ] || { echo "no devices in $TOPO"; return 1; }
    scripts/gen-certs.sh "$TOPO" >&2 || { echo "could not make the certificates"; return 1; }
    for name in cloud edge; do start_server "$TOPO" "$name" "$work/$name.log" || return 1; pid[$name]=$server_pid; done
    sleep 0.5
    facts[edge_idle_kb]="$(kb "${pid[edge]}" VmRSS)" facts[cloud_idle_kb]="$(kb "${pid[cloud]}" VmRSS)"
}

check_devices() {
    running edge && running cloud || return 1
    local d t0 problems="" why
    local -a pids=()
    facts[load_before]="$(cut -d' ' -f1 /proc/loadavg)"
    touch "$work/sampling"
    (t0="$(date +%s.%N)"; while [ -e "$work/sampling" ]; do
        echo "$(since "$t0") $(kb "${pid[edge]}" VmRSS) $(kb "${pid[cloud]}" VmRSS)" >> "$work/rss.txt"; sleep 0.2; done) &
    started+=("$!")
    t0="$(date +%s.%N)"
    for d in $devices; do
        nice -n "$DEVICE_NICE" "$BRANCHY_BIN/branchy-device" --topology "$TOPO" --node "$d" --limit "$LIMIT" ${CONCURRENCY:+--concurrency "$CONCURRENCY"} \
            ${DEVICE_THREADS:+--threads "$DEVICE_THREADS"} --report "$work/$d.json" --predictions "$work/$d.jsonl" </dev/null >"$work/$d.out" 2>"$work/$d.err" &
        pids+=("$!")
        started+=("$!")
    done
    echo "started $device_count devices with --limit $LIMIT" >&2
    done_all() { for p in "${pids[@]}"; do ! proc_running "$p" || return 1; done; }
    wait_for "$DEVICE_TIMEOUT" done_all || { echo "devices still running after $DEVICE_TIMEOUT s; killing them" >&2; kill -KILL "${pids[@]}" 2>/dev/null; }
    facts[wall]="$(since "$t0")"
    rm -f "$work/sampling"
    facts[edge_hwm_kb]="$(kb "${pid[edge]}" VmHWM)" facts[cloud_hwm_kb]="$(kb "${pid[cloud]}" VmHWM)"
    facts[edge_cpu]="$(awk -v t="$(cpu_ticks "${pid[edge]}")" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')"
    facts[cloud_cpu]="$(awk -v t="$(cpu_ticks "${pid[cloud]}")" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')"
    set -- "${pids[@]}"
    for d in $devices; do
        wait "$1" || problems+="; $d exited $?: $(grep -v '^[[:space:]]*$' "$work/$d.err" | tail -n 1)"
        shift
        why="$("${PY[@]}" all-answered "$work/$d.json" "$LIMIT" "$work/$d.jsonl")" || problems+="; $d: $why"
    done
    echo "all devices done after ${facts[wall]} s" >&2
    [ -z "$problems" ] || { echo "${problems#; }"; return 1; }
}

rss_below() {   # the node's VmHWM, read right after the run, below the limit
    local kb="${facts[$1_hwm_kb]:-}"
    [ -n "$kb" ] || { echo "no VmHWM for the $1 (not running at the end of the run?)"; return 1; }
    echo "$1 VmHWM $kb kB" >&2
    [ "$kb" -lt $((RSS_LIMIT_MB * 1024)) ] || { echo "$1 peak RSS $((kb / 1024)) MB, not below $RSS_LIMIT_MB MB"; return 1; }
}
check_edge_rss() { rss_below edge; }
check_cloud_rss() { rss_below cloud; }

check_down() {
    local name p status problems=""
    for name in edge cloud; do
        running "$name" > /dev/null || { problems+="; $name was not running"; continue; }
        p="${pid[$name]}"
        kill -TERM "$p"
        gone() { ! proc_running "$p"; }
        wait_for 15 gone || { kill -KILL "$p" 2>/dev/null; problems+="; $name still running 15 s after SIGTERM"; }
        status=0
        wait "$p" || status=$?
        echo "$name exited with status $status" >&2
        [ "$status" -eq 0 ] || problems+="; $name exited $status"
    done
    [ -z "$problems" ] || { echo "${problems#; }"; return 1; }
}

check_batches() {   # the batch-size line each server logs when it stops, for the summary
    local name line problems=""
    for name in edge cloud; do
        line="$(grep -h 'batches by size' "$work/$name.log" 2>/dev/null | tail -n 1 | sed 's/.*batches by size: //' || true)"
        [ -n "$line" ] || { problems+="; no batch sizes in $work/$name.log"; continue; }
        facts[${name}_batches]="${line%%; stage time*}"
        case "$line" in *"; stage time"*) facts[${name}_stage]="${line#*; stage time per sample by batch size: }" ;; esac
        echo "$name batches by size: $line" >&2
    done
    [ -z "$problems" ] || { echo "${problems#; }"; return 1; }
}

run_check "load cluster starts ($(basename "$TOPO"))" check_up
run_check "$device_count devices at once, $LIMIT samples each: every sample answered" check_devices
run_check "edge peak RSS below $RSS_LIMIT_MB MB" check_edge_rss
run_check "cloud peak RSS below $RSS_LIMIT_MB MB" check_cloud_rss
run_check "edge and cloud stop on SIGTERM with status 0" check_down
run_check "edge and cloud report their batch sizes" check_batches

if [ -s "$work/rss.txt" ]; then   # the highest sampled VmRSS of each node
    facts[edge_peak_kb]="$(awk '$2 > m { m = $2 } END { print m }' "$work/rss.txt")"
    facts[cloud_peak_kb]="$(awk '$3 > m { m = $3 } END { print m }' "$work/rss.txt")"
fi
command_line="scripts/load.sh"
for v in TOPOLOGY DEVICE_THREADS DEVICE_NICE CONCURRENCY LIMIT; do
    case "$v=${!v:-}" in TOPOLOGY=|DEVICE_THREADS=|DEVICE_NICE=0|CONCURRENCY=|LIMIT=2500) ;; *) command_line="$v=${!v} $command_line" ;; esac
done
facts[topology]="${TOPO#"$REPO_ROOT"/}" facts[rss_limit]="$RSS_LIMIT_MB" facts[command]="$command_line"
facts[concurrency]="${CONCURRENCY:-}" facts[device_nice]="$DEVICE_NICE" facts[devices]="$(echo $devices)" facts[limit]="$LIMIT"
echo
if for k in "${!facts[@]}"; do printf '%s\t%s\n' "$k" "${facts[$k]}"; done | "${PY[@]}" load-summary "$work" > "$summary_file.tmp" 2>>"$log"; then
    mv "$summary_file.tmp" "$summary_file"
    cat "$summary_file"
else
    rm -f "$summary_file.tmp"
    echo "(no summary: see $log)"
fi
echo
summary
