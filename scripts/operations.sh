#!/usr/bin/env bash
# Operations checks with real processes over TLS on loopback: (a) a real Prometheus (Debian's, installed
# when missing) scrapes the device, edge and cloud of topology/local.yaml during a run, and the link
# byte counters from both ends and the per-exit request counters equal the device's report to the
# byte; (b) topology/replicas.yaml: one of two cloud replicas SIGKILLed mid-run and restarted: nothing
# fails or degrades, and the replica answers again within 2 s of coming back; (c) SIGHUP with a new
# edge threshold mid-run, then with a broken topology: no sample lost, the exit share changes, the
# broken one is refused, the metrics show both; (d) the Grafana dashboard names only what the nodes
# export (their live scrapes). --overhead also measures what scraping costs a loaded run. Details in
# run/operations/.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

overhead=0
[ "${1:-}" != --overhead ] || { overhead=1; shift; }
no_args "Prometheus, fail-over and reload checks" "$@"
cd "$REPO_ROOT"
ensure_packages openssl:openssl python3:python3 curl:curl prometheus:prometheus
ensure_built
bin="$BRANCHY_BIN"
work=run/operations
log="$work/operations.log"
LOCAL=topology/local.yaml REPLICAS=topology/replicas.yaml PROMETHEUS=127.0.0.1:9490 DEVICE_METRICS=127.0.0.1:8400
rm -rf "$work"
mkdir -p "$work"
cleanup() { [ "${#started[@]}" -eq 0 ] || stop_children "$log" "${started[@]}"; started=(); }
trap cleanup EXIT

# serve TOPOLOGY NODE METRICS [--replica K]: starts a node; sets server_pid once /healthz answers.
serve() {
    local name="$2${5:+-$5}"
    "$bin/branchy-$(node_field "$1" "$2" 2)" --topology "$1" --node "$2" "${@:4}" </dev/null > "$work/$name.log" 2>&1 &
    server_pid=$!
    started+=("$server_pid")
    wait_for 30 curl -sf -o /dev/null --max-time 1 "http://$3/healthz" || { echo "$name did not serve http://$3/healthz within 30 s: $(tail -n 1 "$work/$name.log")"; return 1; }
}
# local_cluster TOPOLOGY: its cloud and edge (metrics 8402, 8401) up and the edge ready; edge_pid.
local_cluster() {
    scripts/gen-certs.sh "$1" >> "$log" 2>&1
    serve "$1" cloud 127.0.0.1:8402 && serve "$1" edge 127.0.0.1:8401 || return 1
    edge_pid=$server_pid
    wait_for 15 curl -sf -o /dev/null --max-time 1 http://127.0.0.1:8401/readyz || { echo "the edge did not become ready"; return 1; }
}
metric() { "${PY[@]}" metric "$@"; }
# device_until_report NAME SECONDS [OPTIONS]: the local device, serving its metrics, until its report
# (NAME-run.json) is written; it stays up for its --linger. Sets device.
device_until_report() {
    "$bin/branchy-device" --topology "$LOCAL" --node device --metrics "$DEVICE_METRICS" "${@:3}" \
        --report "$work/$1-run.json" > "$work/$1-device.out" 2> "$work/$1-device.err" &
    device=$!
    started+=("$device")
    written() { grep -q "report written" "$work/$1-device.err" 2>/dev/null || ! proc_running "$device"; }
    wait_for "$2" written "$1"
    ! grep -q "report written" "$work/$1-device.err" || return 0
    proc_running "$device" && echo "no report within $2 s" || echo "the device exited before its report: $(tail -n 1 "$work/$1-device.err")"
    return 1
}

check_prometheus() {
    local device
    local_cluster "$LOCAL" || return 1
    "$bin/branchy" scrape-config --topology "$LOCAL" --interval 1 --device "device=$DEVICE_METRICS" > "$work/prometheus.yml"
    prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus-data" --web.listen-address="$PROMETHEUS" \
        > "$work/prometheus.log" 2>&1 &
    prometheus_pid=$!
    started+=("$prometheus_pid")
    wait_for 30 curl -sf -o /dev/null --max-time 1 "http://$PROMETHEUS/-/ready" || { echo "Prometheus did not start: $(tail -n 1 "$work/prometheus.log")"; return 1; }
    # The device stays connected after its report, so that the last scrapes see the links as the report
    # counted them (closing adds TLS close_notify alerts, which no report counts).
    device_until_report prometheus 120 --linger 8 || return 1
    "${PY[@]}" prometheus "$PROMETHEUS" "$work/prometheus-run.json" device,edge,cloud > "$work/prometheus-check.out" \
        || { tail -n 1 "$work/prometheus-check.out"; return 1; }
    cat "$work/prometheus-check.out" >&2
    figure "$(grep -c ': report' "$work/prometheus-check.out") link counters equal"
    wait "$device" || { echo "the device exited $?"; return 1; }
    [ "$overhead" -eq 0 ] || measure_overhead
}

# What scraping costs a loaded run: the 60,000 training images through the local cluster at full
# speed, OVERHEAD_RUNS (5) times with Prometheus scraping every second and as often with it stopped
# (SIGSTOP), interleaved (Prometheus shares the cores, so its own work counts); and what one scrape
# costs the edge (its CPU time over 2,000 scrapes).
measure_overhead() {
    ensure_training_set || { echo "the training set is missing and dataset-fashion-mnist could not be installed"; return 1; }
    local k with=() without=() c0 size
    for k in $(seq "${OVERHEAD_RUNS:-5}"); do
        kill -STOP "$prometheus_pid"
        "$bin/branchy-device" --topology "$LOCAL" --node device --dataset "$TRAINING_SET/train-images-idx3-ubyte.gz" --report "$work/off-$k.json" > /dev/null 2>>"$log"
        kill -CONT "$prometheus_pid"
        "$bin/branchy-device" --topology "$LOCAL" --node device --dataset "$TRAINING_SET/train-images-idx3-ubyte.gz" --metrics "$DEVICE_METRICS" \
            --report "$work/on-$k.json" > /dev/null 2>>"$log"
        without+=("$("${PY[@]}" get "$work/off-$k.json" 'r["durationSeconds"]')") with+=("$("${PY[@]}" get "$work/on-$k.json" 'r["durationSeconds"]')")
    done
    echo "run seconds without scraping: ${without[*]}; with: ${with[*]}" >&2
    size="$(curl -s http://127.0.0.1:8401/metrics | wc -c)" c0="$(cpu_ticks "$edge_pid")"
    for k in $(seq 2000); do curl -s -o /dev/null http://127.0.0.1:8401/metrics; done
    figure "$(awk -v a="$c0" -v b="$(cpu_ticks "$edge_pid")" -v hz="$(getconf CLK_TCK)" -v s="$size" \
        'BEGIN { printf "one scrape of the edge'\''s %d bytes costs it %.0f us of CPU", s, 1e6 * (b - a) / hz / 2000 }')"
    python3 -c 'import statistics as s, sys
a, b = (s.median(map(float, x.split())) for x in sys.argv[1:])
print(f"60,000 samples: median {b:.3f} s scraped every second, {a:.3f} s unscraped ({100 * (b - a) / a:+.1f}% time)")' "${without[*]}" "${with[*]}" >> "$work/figures"
}

check_failover() {
    scripts/gen-certs.sh "$REPLICAS" >> "$log" 2>&1
    serve "$REPLICAS" cloud 127.0.0.1:8472 --replica 0 && serve "$REPLICAS" cloud 127.0.0.1:8482 --replica 1 || return 1
    local victim=$server_pid before back first device
    serve "$REPLICAS" edge 127.0.0.1:8471 || return 1
    wait_for 15 curl -sf -o /dev/null --max-time 1 http://127.0.0.1:8471/readyz || { echo "the edge did not become ready"; return 1; }
    sleep 0.5   # both replicas connected
    "$bin/branchy-device" --topology "$REPLICAS" --node device --rate 2500 --report "$work/failover.json" \
        > "$work/failover-device.out" 2> "$work/failover-device.err" &
    device=$!
    started+=("$device")
    sleep 1.5
    before="$(metric 127.0.0.1:8482 branchy_requests_total)"
    kill -KILL "$victim"
    wait "$victim" 2>/dev/null || true
    echo "killed replica 1 (pid $victim) after it answered $before requests" >&2
    sleep 1
    mv "$work/cloud-1.log" "$work/cloud-1-killed.log"
    serve "$REPLICAS" cloud 127.0.0.1:8482 --replica 1 || { echo "the restarted replica did not come up"; return 1; }
    back="$(date +%s%N)"
    answering() { [ "$(metric 127.0.0.1:8482 branchy_requests_total)" -gt 0 ]; }
    wait_for 5 answering || { echo "the restarted replica got no request within 5 s"; return 1; }
    first=$(( ($(date +%s%N) - back) / 1000000 ))
    wait "$device" || { echo "the device exited $?: $(tail -n 1 "$work/failover-device.err")"; return 1; }
    "${PY[@]}" failover "$work/failover.json" 1.5 2.5 > "$work/failover-check.out" || { tail -n 1 "$work/failover-check.out"; return 1; }
    cat "$work/failover-check.out" >&2
    figure "restarted replica answered again $first ms after coming back"
    figure "retried on the survivor: $(metric 127.0.0.1:8471 branchy_upstream_retries_total)"
    sed -n 2p "$work/failover-check.out" >> "$work/figures"
    [ "$first" -le 2000 ] || { echo "the restarted replica took $first ms to get a request; at most 2000 ms expected"; return 1; }
}

check_reload() {
    local topo="$work/reload.yaml" device threshold applied refused
    topology_with "$LOCAL" "$topo" || return 1   # absolute paths, so that it can live in run/
    local_cluster "$topo" || return 1
    "$bin/branchy-device" --topology "$topo" --node device --rate 2500 --report "$work/reload.json" \
        --predictions "$work/reload.jsonl" > "$work/reload-device.out" 2> "$work/reload-device.err" &
    device=$!
    started+=("$device")
    sleep 2
    topology_with "$topo" "$topo" "edge.thresholds=[2.0]"   # far more of what reaches the edge leaves there
    kill -HUP "$edge_pid"
    sleep 1
    cp "$topo" "$work/reload-good.yaml"
    printf 'nodes: [unclosed\n' > "$topo"
    kill -HUP "$edge_pid"
    sleep 0.5
    cp "$work/reload-good.yaml" "$topo"
    wait "$device" || { echo "the device exited $?: $(tail -n 1 "$work/reload-device.err")"; return 1; }
    "${PY[@]}" reload "$work/reload.json" "$work/reload.jsonl" 0.5 > "$work/reload-check.out" || { tail -n 1 "$work/reload-check.out"; return 1; }
    cat "$work/reload-check.out" >&2
    sed -n 2p "$work/reload-check.out" >> "$work/figures"
    threshold="$(curl -s http://127.0.0.1:8401/metrics | awk '/^branchy_exit_threshold\{exit="edge-exit"\}/ { print $2 }')"
    applied="$(metric 127.0.0.1:8401 branchy_config_reloads_total result=applied)"
    refused="$(metric 127.0.0.1:8401 branchy_config_reloads_total result=refused)"
    grep -E "SIGHUP" "$work/edge.log" >&2 || true
    [ "$applied" -eq 1 ] && [ "$refused" -eq 1 ] || { echo "the edge counted $applied applied and $refused refused reloads; expected 1 and 1"; return 1; }
    [ "$threshold" = "2.0" ] || { echo "the edge's threshold gauge shows '$threshold' after the reload, expected 2.0"; return 1; }
    grep -q "SIGHUP: .* not applied, the running configuration stays: .*YAML" "$work/edge.log" || { echo "the edge did not log why the broken topology was refused"; return 1; }
}

# The dashboard against live scrapes: 2,000 samples through the local cluster with the device serving
# metrics; the device's, edge's and cloud's /metrics (run/operations/scrape-*.txt) together must have
# every metric, label and value the dashboard's queries use (scripts/lib/dashboard_check.py).
check_dashboard() {
    local device target
    local_cluster "$LOCAL" && device_until_report dashboard 60 --limit 2000 --linger 5 || return 1
    for target in "device=$DEVICE_METRICS" edge=127.0.0.1:8401 cloud=127.0.0.1:8402; do
        curl -sf --max-time 5 "http://${target#*=}/metrics" > "$work/scrape-${target%%=*}.txt" || { echo "could not scrape the ${target%%=*} at ${target#*=}"; return 1; }
    done
    python3 scripts/lib/dashboard_check.py deploy/prometheus/grafana-dashboard.json \
        "$work/scrape-device.txt" "$work/scrape-edge.txt" "$work/scrape-cloud.txt" > "$work/dashboard-check.out" 2>&1 || { cat "$work/dashboard-check.out" >&2
        echo "$(grep -c '^not ok' "$work/dashboard-check.out") metric(s) not exported as queried, the first: $(grep -m 1 '^not ok' "$work/dashboard-check.out" | sed 's/^not ok - //')"; return 1; }
    cat "$work/dashboard-check.out" >&2
    tail -n 1 "$work/dashboard-check.out" | sed 's/ passed, 0 failed/ metrics found in the scrapes/' >> "$work/figures"
}

for c in "Prometheus' scraped link bytes and exit counters equal the device's report:check_prometheus" \
         "kill -9 of one of two cloud replicas mid-run: nothing failed or degraded:check_failover" \
         "SIGHUP: new thresholds mid-run take effect, a broken topology is refused:check_reload" \
         "the Grafana dashboard's queries name only metrics, labels and values that the running nodes export:check_dashboard"; do
    run_check "${c%:*}" "${c##*:}"
    cleanup
done
summary
