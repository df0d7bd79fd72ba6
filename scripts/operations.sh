#!/usr/bin/env bash
# Operations checks, with real processes over TLS on this machine's loopback:
#   (a) a real Prometheus (Debian's package, installed when missing) scrapes the
#       device, edge and cloud of topology/local.yaml while the test set runs; the
#       link byte counters it scraped, from both ends of every link, and the
#       per-exit request counters equal the device's report, to the byte;
#   (b) topology/replicas.yaml: one of two cloud replicas is killed with SIGKILL in
#       the middle of a 10,000-sample run and restarted: no sample fails or is
#       degraded, and the restarted replica answers requests again within 2 s of
#       coming back; the report's throughput before and after is printed;
#   (c) SIGHUP with a new edge threshold in the middle of a run, then SIGHUP with a
#       broken topology: no sample lost, the edge's exit share changes from the
#       next requests on, the broken one is refused, and the metrics show both;
#   (d) the Grafana dashboard (deploy/prometheus) names only metrics, labels and
#       values that the device, edge and cloud export (their live scrapes).
# With --overhead it also measures what scraping costs a loaded run (samples/s
# with Prometheus scraping every 100 ms, against none), and prints it.
# Details go to run/operations/ (operations.log, reports, node logs).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() { echo "usage: $(basename "$0") [--overhead]   (Prometheus, fail-over and reload checks)"; }
overhead=0
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    --overhead) overhead=1 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

cd "$REPO_ROOT"
ensure_packages openssl:openssl python3:python3 curl:curl prometheus:prometheus
ensure_built
bin="$BRANCHY_BIN"
work=run/operations
log="$work/operations.log"
helper=(python3 scripts/lib/operations.py)
LOCAL=topology/local.yaml
REPLICAS=topology/replicas.yaml
PROMETHEUS=127.0.0.1:9490
DEVICE_METRICS=127.0.0.1:8400
rm -rf "$work"
mkdir -p "$work"

pids=()
cleanup() { [ "${#pids[@]}" -eq 0 ] || stop_children "$log" "${pids[@]}"; pids=(); }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

passed=0
failed=0

# wait_http URL SECONDS: true once URL answers 200.
wait_http() {
    local waited=0
    until curl -sf -o /dev/null --max-time 1 "$1"; do
        [ "$waited" -lt $(( $2 * 10 )) ] || return 1
        sleep 0.1
        waited=$((waited + 1))
    done
}

# start_server TOPOLOGY NODE ROLE METRICS [--replica K]: starts a node, sets $started
# to its pid once its health endpoint answers.
start_server() {
    local topology="$1" node="$2" role="$3" metrics="$4"
    shift 4
    local name="$node${2:+-$2}"
    "$bin/branchy-$role" --topology "$topology" --node "$node" "$@" </dev/null > "$work/$name.log" 2>&1 &
    started=$!
    pids+=("$started")
    wait_http "http://$metrics/healthz" 30 || { echo "$name did not serve http://$metrics/healthz within 30 s: $(tail -n 1 "$work/$name.log")"; return 1; }
}

# metric ADDRESS NAME [label=value ...]: the sum of a node's matching series.
metric() { "${helper[@]}" metric "$@"; }

# device_until_report NAME SECONDS [DEVICE OPTIONS]: starts the local cluster's device serving
# its metrics at DEVICE_METRICS (report run/operations/NAME-run.json, output NAME-device.out and
# .err) and waits up to SECONDS for its report; sets `device` to its pid, which stays running
# for its --linger.
device_until_report() {
    local name="$1" seconds="$2" waited=0
    shift 2
    "$bin/branchy-device" --topology "$LOCAL" --node device --metrics "$DEVICE_METRICS" "$@" \
        --report "$work/$name-run.json" > "$work/$name-device.out" 2> "$work/$name-device.err" &
    device=$!
    pids+=("$device")
    until grep -q "report written" "$work/$name-device.err" 2>/dev/null; do
        proc_running "$device" || { echo "the device exited before its report: $(tail -n 1 "$work/$name-device.err")"; return 1; }
        [ "$waited" -lt $((seconds * 10)) ] || { echo "no report within $seconds s"; return 1; }
        sleep 0.1
        waited=$((waited + 1))
    done
}

check_prometheus() {
    scripts/gen-certs.sh "$LOCAL" >> "$log" 2>&1
    start_server "$LOCAL" cloud cloud 127.0.0.1:8402 || return 1
    start_server "$LOCAL" edge edge 127.0.0.1:8401 || return 1
    edge_pid=$started
    wait_http http://127.0.0.1:8401/readyz 15 || { echo "the edge did not become ready"; return 1; }
    "$bin/branchy" scrape-config --topology "$LOCAL" --interval 1 --device "device=$DEVICE_METRICS" > "$work/prometheus.yml"
    prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus-data" \
        --web.listen-address="$PROMETHEUS" > "$work/prometheus.log" 2>&1 &
    prometheus_pid=$!
    pids+=("$prometheus_pid")
    wait_http "http://$PROMETHEUS/-/ready" 30 || { echo "Prometheus did not start: $(tail -n 1 "$work/prometheus.log")"; return 1; }
    # The device stays connected after its report, so that the last scrapes see the links as
    # the report counted them (closing adds TLS close_notify alerts, which no report counts).
    local device
    device_until_report prometheus 120 --linger 8 || return 1
    "${helper[@]}" prometheus "$PROMETHEUS" "$work/prometheus-run.json" device,edge,cloud > "$work/prometheus-check.out" || {
        tail -n 1 "$work/prometheus-check.out"; return 1; }
    cat "$work/prometheus-check.out" >&2
    grep -c ': report' "$work/prometheus-check.out" | sed 's/$/ link counters equal/' >> "$work/figures"
    wait "$device" || { echo "the device exited $?"; return 1; }
    if [ "$overhead" -eq 1 ]; then measure_overhead || return 1; fi
    cleanup
}

# What scraping costs a loaded run: the device runs the 60,000 training images (Debian's
# dataset-fashion-mnist, installed when missing) through the local cluster at full speed,
# OVERHEAD_RUNS times with Prometheus scraping device, edge and cloud every second and as many
# times with Prometheus stopped (SIGSTOP), interleaved. Prometheus shares the machine's cores
# with the cluster here, so its own work counts against the scraped runs. Prints the medians.
# duration_of REPORT: a device report's run time in seconds.
duration_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["durationSeconds"])' "$1"; }

measure_overhead() {
    local images=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
    if [ ! -f "$images" ]; then
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >&2 \
            || { echo "the training set is missing and dataset-fashion-mnist could not be installed"; return 1; }
    fi
    local runs="${OVERHEAD_RUNS:-5}" k with=() without=()
    for k in $(seq "$runs"); do
        kill -STOP "$prometheus_pid"
        "$bin/branchy-device" --topology "$LOCAL" --node device --dataset "$images" --report "$work/overhead-off-$k.json" > /dev/null 2>>"$log"
        without+=("$(duration_of "$work/overhead-off-$k.json")")
        kill -CONT "$prometheus_pid"
        "$bin/branchy-device" --topology "$LOCAL" --node device --dataset "$images" --metrics "$DEVICE_METRICS" \
            --report "$work/overhead-on-$k.json" > /dev/null 2>>"$log"
        with+=("$(duration_of "$work/overhead-on-$k.json")")
    done
    echo "run seconds without scraping: ${without[*]}; with: ${with[*]}" >&2
    # And what one scrape costs the edge: its CPU time over 2,000 scrapes in a row.
    python3 - "$edge_pid" >> "$work/figures" <<'PY'
import os, sys, urllib.request
pid = sys.argv[1]
def cpu():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
n = 2000
size = len(urllib.request.urlopen("http://127.0.0.1:8401/metrics").read())
before = cpu()
for _ in range(n):
    urllib.request.urlopen("http://127.0.0.1:8401/metrics").read()
print(f"one scrape of the edge's {size} bytes costs it {1e6 * (cpu() - before) / n:.0f} us of CPU")
PY
    python3 - "${without[*]}" "${with[*]}" >> "$work/figures" <<'PY'
import statistics, sys
off = [float(x) for x in sys.argv[1].split()]
on = [float(x) for x in sys.argv[2].split()]
a, b = statistics.median(off), statistics.median(on)
print(f"60,000 samples: median {b:.3f} s scraped every second, {a:.3f} s unscraped ({100 * (b - a) / a:+.1f}% time)")
PY
}

check_failover() {
    scripts/gen-certs.sh "$REPLICAS" >> "$log" 2>&1
    start_server "$REPLICAS" cloud cloud 127.0.0.1:8472 --replica 0 || return 1
    start_server "$REPLICAS" cloud cloud 127.0.0.1:8482 --replica 1 || return 1
    local victim=$started
    start_server "$REPLICAS" edge edge 127.0.0.1:8471 || return 1
    wait_http http://127.0.0.1:8471/readyz 15 || { echo "the edge did not become ready"; return 1; }
    sleep 0.5   # both replicas connected
    "$bin/branchy-device" --topology "$REPLICAS" --node device --rate 2500 \
        --report "$work/failover.json" > "$work/failover-device.out" 2> "$work/failover-device.err" &
    local device=$!
    pids+=("$device")
    sleep 1.5
    local before
    before="$(metric 127.0.0.1:8482 branchy_requests_total)"
    kill -KILL "$victim"
    wait "$victim" 2>/dev/null || true
    echo "killed replica 1 (pid $victim) after it answered $before requests" >&2
    sleep 1
    "$bin/branchy-cloud" --topology "$REPLICAS" --node cloud --replica 1 </dev/null > "$work/cloud-1-restarted.log" 2>&1 &
    pids+=("$!")
    wait_http http://127.0.0.1:8482/healthz 30 || { echo "the restarted replica did not come up"; return 1; }
    local back first
    back="$(date +%s%N)"
    until [ "$(metric 127.0.0.1:8482 branchy_requests_total)" -gt 0 ]; do
        [ $(( $(date +%s%N) - back )) -lt 5000000000 ] || { echo "the restarted replica got no request within 5 s"; return 1; }
        sleep 0.02
    done
    first=$(( ($(date +%s%N) - back) / 1000000 ))
    wait "$device" || { echo "the device exited $?: $(tail -n 1 "$work/failover-device.err")"; return 1; }
    "${helper[@]}" failover "$work/failover.json" 1.5 2.5 > "$work/failover-check.out" || { tail -n 1 "$work/failover-check.out"; return 1; }
    cat "$work/failover-check.out" >&2
    echo "restarted replica answered again $first ms after coming back" >> "$work/figures"
    echo "retried on the survivor: $(metric 127.0.0.1:8471 branchy_upstream_retries_total)" >> "$work/figures"
    sed -n 2p "$work/failover-check.out" >> "$work/figures"
    cleanup
    [ "$first" -le 2000 ] || { echo "the restarted replica took $first ms to get a request; at most 2000 ms expected"; return 1; }
}

check_reload() {
    local topo="$work/reload.yaml" root
    root="$(pwd)"
    # A copy with absolute paths, so that it can live in run/.
    sed -e "s|^model: \.\./|model: $root/|" -e "s|^dataset: \.\./|dataset: $root/|" -e "s|^certs: \.\./|certs: $root/|" "$LOCAL" > "$topo"
    start_server "$topo" cloud cloud 127.0.0.1:8402 || return 1
    start_server "$topo" edge edge 127.0.0.1:8401 || return 1
    local edge=$started
    wait_http http://127.0.0.1:8401/readyz 15 || { echo "the edge did not become ready"; return 1; }
    "$bin/branchy-device" --topology "$topo" --node device --rate 2500 --report "$work/reload.json" \
        --predictions "$work/reload.jsonl" > "$work/reload-device.out" 2> "$work/reload-device.err" &
    local device=$!
    pids+=("$device")
    sleep 2
    # The edge's threshold 0.7 -> 2.0: far more of what reaches the edge leaves there.
    python3 - "$topo" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
s = re.sub(r"(- name: edge\n(?:    .*\n)*?    thresholds: )\[[^]]*\]", r"\1[2.0]", s)
open(p, "w").write(s)
PY
    kill -HUP "$edge"
    sleep 1
    cp "$topo" "$work/reload-good.yaml"
    printf 'nodes: [unclosed\n' > "$topo"
    kill -HUP "$edge"
    sleep 0.5
    cp "$work/reload-good.yaml" "$topo"
    wait "$device" || { echo "the device exited $?: $(tail -n 1 "$work/reload-device.err")"; return 1; }
    "${helper[@]}" reload "$work/reload.json" "$work/reload.jsonl" device-exit edge-exit 0.5 > "$work/reload-check.out" || {
        tail -n 1 "$work/reload-check.out"; return 1; }
    cat "$work/reload-check.out" >&2
    sed -n 2p "$work/reload-check.out" >> "$work/figures"
    local threshold applied refused
    threshold="$(curl -s http://127.0.0.1:8401/metrics | awk -F' ' '/^branchy_exit_threshold\{exit="edge-exit"\}/ { print $2 }')"
    applied="$(metric 127.0.0.1:8401 branchy_config_reloads_total result=applied)"
    refused="$(metric 127.0.0.1:8401 branchy_config_reloads_total result=refused)"
    grep -E "SIGHUP" "$work/edge.log" >&2 || true
    cleanup
    [ "$applied" -eq 1 ] && [ "$refused" -eq 1 ] || { echo "the edge counted $applied applied and $refused refused reloads; expected 1 and 1"; return 1; }
    [ "$threshold" = "2.0" ] || { echo "the edge's threshold gauge shows '$threshold' after the reload, expected 2.0"; return 1; }
    grep -q "SIGHUP: .* not applied, the running configuration stays: .*YAML" "$work/edge.log" || { echo "the edge did not log why the broken topology was refused"; return 1; }
}

check() {
    run_check "$@"
    cleanup
}

check "Prometheus' scraped link bytes and exit counters equal the device's report" check_prometheus
check "kill -9 of one of two cloud replicas mid-run: nothing failed or degraded" check_failover
check "SIGHUP: new thresholds mid-run take effect, a broken topology is refused" check_reload

# --- (d) The Grafana dashboard against live scrapes --------------------------------------
# deploy/prometheus/grafana-dashboard.json may name only what a running cluster exports: the
# local cluster answers 2,000 samples with the device serving metrics, the device's, edge's and
# cloud's /metrics are saved (run/operations/scrape-*.txt), and scripts/lib/dashboard_check.py
# checks every metric, label and label value the dashboard's queries use against them together.
check_dashboard() {
    scripts/gen-certs.sh "$LOCAL" >> "$log" 2>&1
    start_server "$LOCAL" cloud cloud 127.0.0.1:8402 || return 1
    start_server "$LOCAL" edge edge 127.0.0.1:8401 || return 1
    wait_http http://127.0.0.1:8401/readyz 15 || { echo "the edge did not become ready"; return 1; }
    local device
    device_until_report dashboard 60 --limit 2000 --linger 5 || return 1
    local target
    for target in "device=$DEVICE_METRICS" edge=127.0.0.1:8401 cloud=127.0.0.1:8402; do
        curl -sf --max-time 5 "http://${target#*=}/metrics" > "$work/scrape-${target%%=*}.txt" \
            || { echo "could not scrape the ${target%%=*} at ${target#*=}"; return 1; }
    done
    python3 scripts/lib/dashboard_check.py deploy/prometheus/grafana-dashboard.json \
        "$work/scrape-device.txt" "$work/scrape-edge.txt" "$work/scrape-cloud.txt" > "$work/dashboard-check.out" 2>&1 || {
        cat "$work/dashboard-check.out" >&2
        echo "$(grep -c '^not ok' "$work/dashboard-check.out") metric(s) not exported as queried, the first: $(grep -m 1 '^not ok' "$work/dashboard-check.out" | sed 's/^not ok - //')"
        return 1
    }
    cat "$work/dashboard-check.out" >&2
    tail -n 1 "$work/dashboard-check.out" | sed 's/ passed, 0 failed/ metrics found in the scrapes/' >> "$work/figures"
}
check "the Grafana dashboard's queries name only metrics, labels and values that the running nodes export" check_dashboard

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
