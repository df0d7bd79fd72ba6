#!/usr/bin/env bash
# End-to-end checks: real processes, real TLS, on loopback.
#
#   local cluster (topology/local.yaml):
#     - it starts
#     - 10,000 samples through device -> edge -> cloud, with a complete report
#     - `branchy calibrate` writes the accuracy / bytes frontier from held-out training samples
#     - its HTML report renders in headless Chromium with every chart
#       (scripts/report-check.sh, with that frontier)
#     - the same (sample, exit, class) for every sample as `branchy eval`
#     - a device that asks for protocol version 1 gets the same answers
#   binarised device (topology/b-lenet3-bin.yaml):
#     - 1-bit features from the device, the same answers as `branchy eval`, at least 20x
#       fewer bytes on the wire than the measured raw offload
#   cloud-only baseline (topology/cloud-only.yaml):
#     - every raw image to the cloud, the same answers as `branchy eval`; the local run
#       compares its bytes and latency with this measured run (--baseline)
#     - fewer request bytes per forwarded sample on device->edge than a raw image (784)
#     - the edge refuses: a client without a certificate, a certificate of
#       another name from the same CA (a fresh `intruder` one, and the cloud's),
#       and plain TCP
#     - SIGTERM stops every node in time
#   fan-in cluster (topology/fanin.yaml):
#     - four devices at once, 2,000 samples each, all answered
#   CIFAR-10 path (scripts/cifar-check.sh):
#     - a synthetic set in CIFAR-10's binary format: a 3×32×32 model trained, evaluated
#       and calibrated on it, refused by a 1×28×28 model, and run as a cluster with the
#       same answers as `branchy eval`
#   emulated links (scripts/netem.sh --short, needs root):
#     - device, edge and cloud in network namespaces over shaped links, Branchy and
#       cloud-only: every sample answered in both, and the latency comparison printed
#   several hosts (scripts/netns-cluster.sh --limit 2000 --cloud-replicas 2, needs root):
#     - device, edge and two cloud replicas in their own network namespaces on a bridge
#       (four addresses), each server bound to 0.0.0.0, the edge dialled at its `address:`
#       and the cloud at each replica's: the edge connected to both replicas, both
#       answered requests, and the same answers as `branchy eval`
#   several hosts, replicas found by name (scripts/netns-cluster.sh --limit 2000
#   --cloud-replicas 2 --replicas-by-name, needs root):
#     - the same, with the cloud's replicas as one host name (`replicas:
#       "cloud.branchy.test:7402"`) that resolves, through the /etc/hosts of the edge's
#       namespace, to both replicas' IPs; the replicas started without --replica
#
# Prints `ok - NAME` or `not ok - NAME: why` per check, then `N passed, M failed`;
# exits 1 if any check failed. Details go to run/e2e/ (e2e.log, outputs, reports).
# Environment: DEVICE_TIMEOUT (seconds per device run, default 900); BRANCHY_BIN
# (folder of already built executables: skips the build).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() { echo "usage: $(basename "$0")   (builds, runs every end-to-end check, stops the clusters it started)"; }
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

cd "$REPO_ROOT"
LOCAL=topology/local.yaml
FANIN=topology/fanin.yaml
CLOUD_ONLY=topology/cloud-only.yaml
BIN=topology/b-lenet3-bin.yaml
TRAINING_SET=/usr/share/datasets/fashion-mnist
RAW_IMAGE_BYTES=784   # one 28x28 8-bit image
DEVICE_TIMEOUT="${DEVICE_TIMEOUT:-900}"
work=run/e2e
log="$work/e2e.log"
helper=(python3 scripts/lib/e2e.py)

ensure_packages openssl:openssl python3:python3
ensure_built
bin="$BRANCHY_BIN"

rm -rf "$work"
mkdir -p "$work"

cleanup() {
    scripts/cluster.sh down "$LOCAL" >>"$log" 2>&1 || true
    scripts/cluster.sh down "$FANIN" >>"$log" 2>&1 || true
    scripts/cluster.sh down "$CLOUD_ONLY" >>"$log" 2>&1 || true
    scripts/cluster.sh down "$BIN" >>"$log" 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Facts from the topology and the model -----------------------------------

model="$(topology_path "$LOCAL" model)"
certs="$(topology_certs_dir "$LOCAL")"
edge_address="$(node_dial "$LOCAL" edge)"
device_upstream="$(node_field "$LOCAL" device 4)"
info="$("$bin/branchy" info --model "$model" 2>&1)" || info=""
fingerprint="$(awk '$1 == "fingerprint" { print $2 }' <<< "$info")"

# --- Runner ---------------------------------------------------------------------

passed=0
failed=0


# run_device TOPOLOGY NODE PREFIX [OPTIONS]: runs one device, writing
# PREFIX.json (report), PREFIX.jsonl (predictions), PREFIX.out and PREFIX.err.
run_device() {
    local topology="$1" node="$2" prefix="$3"
    shift 3
    timeout "$DEVICE_TIMEOUT" "$bin/branchy-device" --topology "$topology" --node "$node" \
        --report "$prefix.json" --predictions "$prefix.jsonl" "$@" > "$prefix.out" 2> "$prefix.err"
}

# why_device STATUS PREFIX: a reason line for a failed device run.
why_device() {
    if [ "$1" -eq 124 ]; then
        echo "did not finish within $DEVICE_TIMEOUT s"
    else
        echo "exited $1: $(tail -n 1 "$2.err" 2>/dev/null)"
    fi
}

needs_local() {
    [ -f "$work/local.up" ] || { echo "the local cluster is not up"; return 1; }
}

# needs_edge: the edge is up, so that a refused connection means something.
needs_edge() {
    needs_local || return 1
    port_listening "$(host_of "$edge_address")" "$(port_of "$edge_address")" \
        || { echo "the edge does not listen on $edge_address"; return 1; }
}

# --- Local cluster ----------------------------------------------------------------

# The thresholds' frontier from held-out training samples (the Debian package
# dataset-fashion-mnist holds the training set; installed when missing).
check_calibrate() {
    if [ ! -e "$TRAINING_SET/train-images-idx3-ubyte.gz" ] && [ ! -e "$TRAINING_SET/train-images-idx3-ubyte" ]; then
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >&2 \
            || { echo "the training set is missing and dataset-fashion-mnist could not be installed"; return 1; }
    fi
    "$bin/branchy" calibrate --model "$model" --topology "$LOCAL" --data "$TRAINING_SET" --frontier-out "$work/calibration.json" \
        > "$work/calibrate.out" 2> "$work/calibrate.err" || { echo "branchy calibrate failed: $(tail -n 1 "$work/calibrate.err")"; return 1; }
    python3 - "$work/calibration.json" <<'PY' || return 1
import json, sys
c = json.load(open(sys.argv[1]))
pts = c["points"]
if len(pts) < 3: print(f"only {len(pts)} frontier points"); sys.exit(1)
if not (0 <= c["chosen"] < len(pts)): print(f"chosen index {c['chosen']} outside the {len(pts)} points"); sys.exit(1)
by = [p["bytesPerSample"] for p in pts]; acc = [p["accuracy"] for p in pts]
if by != sorted(by) or acc != sorted(acc): print("the frontier is not increasing in bytes and accuracy"); sys.exit(1)
if acc[c["chosen"]] < c["finalOnlyAccuracy"] - 0.005 - 1e-9: print("the chosen point is below the accuracy floor"); sys.exit(1)
PY
}

# The raw-offload baseline, measured: every raw image to the cloud, which runs the whole model.
check_cloud_only() {
    scripts/cluster.sh down "$CLOUD_ONLY" >&2
    scripts/cluster.sh up "$CLOUD_ONLY" >&2 || { echo "the cloud-only cluster did not start (logs in run/cloud-only/)"; return 1; }
    local status=0
    run_device "$CLOUD_ONLY" device "$work/cloud-only" || status=$?
    scripts/cluster.sh down "$CLOUD_ONLY" >&2
    [ "$status" -eq 0 ] || { echo "branchy-device $(why_device "$status" "$work/cloud-only")"; return 1; }
    "${helper[@]}" report "$work/cloud-only.json" 10000 "$work/cloud-only.jsonl" || return 1
    "$bin/branchy" eval --model "$model" --topology "$CLOUD_ONLY" --predictions "$work/cloud-only-eval.jsonl" > "$work/cloud-only-eval.out" 2>&1 \
        || { echo "branchy eval failed: $(tail -n 1 "$work/cloud-only-eval.out")"; return 1; }
    "${helper[@]}" same-predictions "$work/cloud-only.jsonl" "$work/cloud-only-eval.jsonl" "$work/cloud-only.json"
}

# The binarised-device model over 1-bit and 4-bit links: the same answers as `branchy eval`
# with the topology's codecs, and at least 20 times fewer bytes than the measured raw offload.
check_binarised() {
    scripts/cluster.sh down "$BIN" >&2
    scripts/cluster.sh up "$BIN" >&2 || { echo "the b-lenet3-bin cluster did not start (logs in run/b-lenet3-bin/)"; return 1; }
    local status=0
    local -a extra=()
    [ -f "$work/cloud-only.json" ] && extra+=(--baseline "$work/cloud-only.json")
    run_device "$BIN" device "$work/bin" "${extra[@]}" || status=$?
    scripts/cluster.sh down "$BIN" >&2
    [ "$status" -eq 0 ] || { echo "branchy-device $(why_device "$status" "$work/bin")"; return 1; }
    "${helper[@]}" report "$work/bin.json" 10000 "$work/bin.jsonl" || return 1
    "$bin/branchy" eval --model "$(topology_path "$BIN" model)" --topology "$BIN" --predictions "$work/bin-eval.jsonl" > "$work/bin-eval.out" 2>&1 \
        || { echo "branchy eval failed: $(tail -n 1 "$work/bin-eval.out")"; return 1; }
    "${helper[@]}" same-predictions "$work/bin.jsonl" "$work/bin-eval.jsonl" "$work/bin.json" || return 1
    python3 - "$work/bin.json" <<'PY' || return 1
import json, sys
r = json.load(open(sys.argv[1]))
b = r.get("baseline")
if not b: print("no measured baseline in the report"); sys.exit(1)
if b["savings"] < 20: print(f"only {b['savings']:.1f}x fewer bytes than the measured raw offload"); sys.exit(1)
PY
}

# A device asking for protocol version 1 (a copy of the local topology with
# `protocol: 1` on the device) gets the answers `branchy eval` gives.
check_protocol_v1() {
    needs_local || return 1
    local v1="$work/local-v1.yaml" root
    root="$(cd "$(dirname "$LOCAL")" && pwd)"
    sed -e "s|: \.\./|: $root/../|" -e '/^    upstream: edge$/a\    protocol: 1' "$LOCAL" > "$v1"
    [ "$(topology_query "$v1" '[n["protocolVersion"] for n in t["nodes"] if n["upstream"] == "edge"]')" = 1 ] \
        || { echo "could not write the version 1 topology"; return 1; }
    local status=0
    run_device "$v1" device "$work/local-v1" --limit 2000 || status=$?
    [ "$status" -eq 0 ] || { echo "branchy-device $(why_device "$status" "$work/local-v1")"; return 1; }
    head -n 2000 "$work/eval.jsonl" > "$work/eval-2000.jsonl"
    "${helper[@]}" same-predictions "$work/local-v1.jsonl" "$work/eval-2000.jsonl" "$work/local-v1.json"
}

check_local_up() {
    [ -f "$model/model.json" ] || { echo "no trained model in $model"; return 1; }
    # Restart with the executables just built.
    scripts/cluster.sh down "$LOCAL" >&2
    scripts/cluster.sh up "$LOCAL" >&2 || { echo "the local cluster did not start (logs in run/local/)"; return 1; }
    touch "$work/local.up"
}

# (a) every sample of the test set through the cluster, with a complete report.
check_local_samples() {
    needs_local || return 1
    local status=0
    local -a extra=()
    [ -f "$work/calibration.json" ] && extra+=(--calibration "$work/calibration.json")
    [ -f "$work/cloud-only.json" ] && extra+=(--baseline "$work/cloud-only.json")
    run_device "$LOCAL" device "$work/local" --html "$work/local.html" "${extra[@]}" || status=$?
    [ "$status" -eq 0 ] || { echo "branchy-device $(why_device "$status" "$work/local")"; return 1; }
    "${helper[@]}" report "$work/local.json" 10000 "$work/local.jsonl"
}

# The HTML report of that run, rendered in headless Chromium.
check_html_report() {
    [ -s "$work/local.html" ] || { echo "no HTML report from the local run"; return 1; }
    local out status=0
    out="$(scripts/report-check.sh --frontier "$work/local.html" 2>&1)" || status=$?
    echo "$out" >&2
    [ "$status" -eq 0 ] || { grep -m 1 '^not ok' <<< "$out" || echo "scripts/report-check.sh exited $status"; return 1; }
}

# (b) the cluster decides exactly as the offline evaluator with the same
# thresholds and codec.
check_matches_eval() {
    [ -s "$work/local.jsonl" ] || { echo "no predictions from the local run"; return 1; }
    # The topology's thresholds and each link's codec, as the cluster applies them.
    local -a args=(eval --model "$model" --topology "$LOCAL" --predictions "$work/eval.jsonl")
    echo "branchy ${args[*]}" >&2
    "$bin/branchy" "${args[@]}" > "$work/eval.out" 2> "$work/eval.err" \
        || { echo "branchy eval failed: $(tail -n 1 "$work/eval.err")"; return 1; }
    "${helper[@]}" same-predictions "$work/local.jsonl" "$work/eval.jsonl" "$work/local.json"
}

# (c) the device sends less than a raw image per forwarded sample.
check_device_edge_bytes() {
    [ -s "$work/local.json" ] || { echo "no report from the local run"; return 1; }
    "${helper[@]}" link-bytes "$work/local.json" "device->$device_upstream" "$RAW_IMAGE_BYTES"
}

# (e) TLS refusals against the running edge.

# tls_probe INPUT OUTPUT [CERT KEY]: sends INPUT to the edge over TLS 1.3 and
# writes the application data that comes back to OUTPUT. Exit status 124 means
# the connection was still open after 10 s.
tls_probe() {
    local -a args=(s_client -connect "$edge_address" -tls1_3 -quiet -CAfile "$certs/ca.pem")
    [ "$#" -lt 4 ] || args+=(-cert "$3" -key "$4")
    echo "openssl ${args[*]} < $1" >&2
    timeout 10 openssl "${args[@]}" < "$1" > "$2" 2> "$2.err"
}

# refused_with_cert CERT KEY OUTPUT: a client with this certificate, claiming in
# its hello to be the device, gets no helloAck and is disconnected. An error
# frame before the close is allowed.
refused_with_cert() {
    [ -n "$fingerprint" ] || { echo "no model fingerprint from 'branchy info'"; return 1; }
    "${helper[@]}" hello "$work/hello-device.bin" device device "$fingerprint" || return 1
    local status=0
    tls_probe "$work/hello-device.bin" "$3" "$1" "$2" || status=$?
    [ "$status" -ne 124 ] || { echo "the connection was still open after 10 s"; return 1; }
    "${helper[@]}" only-error-frames "$3"
}

check_tls_no_client_cert() {
    needs_edge || return 1
    "${helper[@]}" hello-header "$work/hello-header.bin" || return 1
    local status=0
    tls_probe "$work/hello-header.bin" "$work/no-cert.out" || status=$?
    [ "$status" -ne 124 ] || { echo "the connection was still open after 10 s"; return 1; }
    [ ! -s "$work/no-cert.out" ] || { echo "got $(wc -c < "$work/no-cert.out") bytes of application data"; return 1; }
}

check_tls_intruder_cert() {
    needs_edge || return 1
    # A certificate for the name `intruder`, signed by the cluster's own CA.
    local dir="$work/intruder"
    mkdir -p "$dir"
    cp "$certs/ca.pem" "$certs/ca-key.pem" "$dir/"
    scripts/gen-certs.sh --nodes intruder "$dir" >&2 || { echo "could not make the intruder certificate"; return 1; }
    openssl verify -CAfile "$certs/ca.pem" "$dir/intruder.pem" >&2 || { echo "the intruder certificate does not verify"; return 1; }
    refused_with_cert "$dir/intruder.pem" "$dir/intruder-key.pem" "$work/intruder.out"
}

check_tls_other_node_cert() {
    needs_edge || return 1
    refused_with_cert "$certs/cloud.pem" "$certs/cloud-key.pem" "$work/cloud-cert.out"
}

# Plain TCP: the bytes of a frame header instead of a TLS ClientHello. The edge
# must close without a Branchy frame; a TLS alert record is all it may send.
check_plaintext_refused() {
    needs_edge || return 1
    "${helper[@]}" hello-header "$work/hello-header.bin" || return 1
    local status=0
    timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 99; cat "$2" >&3; cat <&3' \
        "$(host_of "$edge_address")" "$(port_of "$edge_address")" "$work/hello-header.bin" \
        > "$work/plaintext.out" || status=$?
    case "$status" in
        124) echo "the connection was still open after 5 s"; return 1 ;;
        99) echo "could not connect to $edge_address"; return 1 ;;
    esac
    "${helper[@]}" only-tls-alerts "$work/plaintext.out"
}

check_local_down() {
    needs_local || return 1
    rm -f "$work/local.up"
    local out
    out="$(scripts/cluster.sh down "$LOCAL" 2>&1)"
    echo "$out" >&2
    if grep -q '^killed' <<< "$out"; then
        grep '^killed' <<< "$out" | head -n 1
        return 1
    fi
}

# --- Fan-in cluster ------------------------------------------------------------------

# (d) four devices at once through two edges into one cloud.
check_fanin() {
    scripts/cluster.sh down "$FANIN" >&2
    scripts/cluster.sh up "$FANIN" >&2 || { echo "the fan-in cluster did not start (logs in run/fanin/)"; return 1; }
    local devices device status problems=""
    local -a pids=()
    devices="$(topology_nodes "$FANIN" | awk -F'\t' '$2 == "device" { print $1 }')"
    [ -n "$devices" ] || { echo "no devices in $FANIN"; return 1; }
    for device in $devices; do
        run_device "$FANIN" "$device" "$work/fanin-$device" --limit 2000 &
        pids+=("$!")
    done
    local i=0 why
    for device in $devices; do
        status=0
        wait "${pids[i]}" || status=$?
        i=$((i + 1))
        if [ "$status" -ne 0 ]; then
            problems+="; $device $(why_device "$status" "$work/fanin-$device")"
        elif ! why="$("${helper[@]}" report "$work/fanin-$device.json" 2000 "$work/fanin-$device.jsonl")"; then
            problems+="; $device: $why"
        fi
    done
    scripts/cluster.sh down "$FANIN" >&2
    [ -z "$problems" ] || { echo "${problems#; }"; return 1; }
}

# --- Emulated links -----------------------------------------------------------------

# The CIFAR-10 path on a synthetic set in the real binary format (scripts/cifar-check.sh).
check_cifar() {
    local status=0 out="$work/cifar-check.out"
    scripts/cifar-check.sh > "$out" 2> "$work/cifar-check.err" || status=$?
    cat "$out" >&2
    [ "$status" -eq 0 ] || { echo "scripts/cifar-check.sh exited $status: $(grep -m 1 '^not ok' "$out" || tail -n 1 "$work/cifar-check.err")"; return 1; }
}

# (f) scripts/netem.sh --short: Branchy and the cloud-only baseline over shaped links
# between network namespaces, every sample answered, the comparison printed.
check_netem() {
    [ "$(id -u)" -eq 0 ] || { echo "scripts/netem.sh needs root (network namespaces)"; return 1; }
    local status=0 out="$work/netem.out"
    scripts/netem.sh --short > "$out" 2> "$work/netem.err" || status=$?
    cat "$work/netem.err" >&2
    [ "$status" -eq 0 ] || { echo "scripts/netem.sh --short exited $status: $(tail -n 1 "$work/netem.err")"; return 1; }
    local label
    for label in branchy cloud-only; do
        grep -q "^$label: all [0-9]* samples answered" "$work/netem.err" \
            || { echo "no '$label: all ... samples answered' line"; return 1; }
        grep -qE "^  $label +[0-9]+ +[0-9]+ " "$out" || { echo "no overall '$label' row in the comparison"; return 1; }
    done
    grep -q "latency per exit" "$out" || { echo "no per-exit latency table"; return 1; }
    [ -z "$(ip netns list 2>/dev/null | grep '^bnet-')" ] || { echo "bnet- namespaces left after the run"; return 1; }
}

# (g) scripts/netns-cluster.sh --limit 2000 --cloud-replicas 2: device, edge and two
# cloud replicas on their own hosts (network namespaces on a bridge, four addresses),
# the servers bound to 0.0.0.0, the edge dialled at its `address:` and the cloud at each
# replica's; the edge connected to both replicas, both answered requests, and the
# answers equal branchy eval's.
check_netns_cluster() {
    [ "$(id -u)" -eq 0 ] || { echo "scripts/netns-cluster.sh needs root (network namespaces)"; return 1; }
    local status=0 out="$work/netns-cluster.out" run="scripts/netns-cluster.sh --limit 2000 --cloud-replicas 2"
    $run > "$out" 2> "$work/netns-cluster.err" || status=$?
    cat "$out" "$work/netns-cluster.err" >&2
    [ "$status" -eq 0 ] || { echo "$run exited $status: $(grep -m 1 '^not ok' "$out" || tail -n 1 "$work/netns-cluster.err")"; return 1; }
    grep -q "^ok - namespaces for device, edge, cloud-0, cloud-1 " "$out" || { echo "no 'ok - namespaces for device, edge, cloud-0, cloud-1' line"; return 1; }
    grep -q "^ok - 2000 samples through the device" "$out" || { echo "no 'ok - 2000 samples through the device' line"; return 1; }
    grep -q "^ok - each node dialled its upstream at the upstream's namespace address, every replica's" "$out" \
        || { echo "no 'ok - each node dialled its upstream ..., every replica's' line"; return 1; }
    grep -q "^ok - every replica of 'cloud' answered requests" "$out" || { echo "no 'ok - every replica of 'cloud' answered requests' line"; return 1; }
    grep -q "^ok - predictions identical to branchy eval" "$out" || { echo "no 'ok - predictions identical to branchy eval' line"; return 1; }
    [ -z "$(ip netns list 2>/dev/null | grep '^bhost-')" ] || { echo "bhost- namespaces left after the run"; return 1; }
}

# (h) scripts/netns-cluster.sh --limit 2000 --cloud-replicas 2 --replicas-by-name: as (g),
# but the topology names the cloud's replicas by one host name, `replicas:
# "cloud.branchy.test:7402"`, which resolves in the edge's namespace (its /etc/hosts) to
# both replicas' IPs; the replicas start without --replica, the edge resolves the name and
# connects to both, both answer, the answers equal branchy eval's, and no namespace nor
# /etc/netns/bhost-* file is left.
check_netns_cluster_by_name() {
    [ "$(id -u)" -eq 0 ] || { echo "scripts/netns-cluster.sh needs root (network namespaces)"; return 1; }
    local status=0 out="$work/netns-cluster-by-name.out" err="$work/netns-cluster-by-name.err"
    local run="scripts/netns-cluster.sh --limit 2000 --cloud-replicas 2 --replicas-by-name" line
    $run > "$out" 2> "$err" || status=$?
    cat "$out" "$err" >&2
    [ "$status" -eq 0 ] || { echo "$run exited $status: $(grep -m 1 '^not ok' "$out" || tail -n 1 "$err")"; return 1; }
    for line in "namespaces for device, edge, cloud-0, cloud-1 " \
                "cloud.branchy.test resolves to every replica of 'cloud' in the namespace of edge" \
                "topology with each server bound to 0.0.0.0 and dialled at its namespace's IP, 'cloud' as 2 replicas found by name (replicas: cloud.branchy.test:7402)" \
                "servers bound to 0.0.0.0 in their namespaces, 'cloud' as 2 replicas started without --replica" \
                "2000 samples through the device" \
                "each node dialled its upstream at the upstream's namespace address, every address cloud.branchy.test resolves to" \
                "every replica of 'cloud' found by name answered requests" \
                "predictions identical to branchy eval" \
                "servers stopped, namespaces removed, /etc/netns/bhost-* removed"; do
        grep '^ok - ' "$out" | grep -qF "ok - $line" || { echo "no 'ok - $line' line"; return 1; }
    done
    [ -z "$(ip netns list 2>/dev/null | grep '^bhost-')" ] || { echo "bhost- namespaces left after the run"; return 1; }
    ! compgen -G "/etc/netns/bhost-*" >/dev/null || { echo "files left after the run: $(echo /etc/netns/bhost-*)"; return 1; }
}

check "branchy calibrate writes the frontier from held-out training samples" check_calibrate
check "cloud-only baseline: every raw image to the cloud, same answers as branchy eval" check_cloud_only
check "local cluster starts" check_local_up
check "10,000 samples through device, edge and cloud" check_local_samples
check "HTML report renders with its charts" check_html_report
check "predictions identical to branchy eval" check_matches_eval
check "a device on protocol version 1 gets the same answers" check_protocol_v1
check "b-lenet3-bin over 1-bit links: same answers as branchy eval, 20x below raw offload" check_binarised
check "device->edge request bytes below a raw image" check_device_edge_bytes
check "edge refuses a client without a certificate" check_tls_no_client_cert
check "edge refuses a certificate for another name (intruder)" check_tls_intruder_cert
check "edge refuses the cloud's certificate" check_tls_other_node_cert
check "edge refuses plain TCP" check_plaintext_refused
check "local cluster stops on SIGTERM" check_local_down
check "fan-in: four devices at once" check_fanin
check "CIFAR-10 path on a synthetic set: train, eval, calibrate, shape check, cluster (cifar-check.sh)" check_cifar
check "emulated links: Branchy and cloud-only, every sample answered (netem.sh --short)" check_netem
check "several hosts, two cloud replicas: servers bound to 0.0.0.0, dialled at their addresses, both replicas answered, same answers as branchy eval (netns-cluster.sh --limit 2000 --cloud-replicas 2)" check_netns_cluster
check "several hosts, two cloud replicas found by name: cloud.branchy.test resolves to both in the edge's namespace, the edge dialled both, both answered, same answers as branchy eval (netns-cluster.sh --limit 2000 --cloud-replicas 2 --replicas-by-name)" check_netns_cluster_by_name

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
