#!/usr/bin/env bash
# End-to-end checks with real processes over TLS on loopback: the local cluster (topology/local.yaml:
# calibration frontier, 10,000 samples with a complete report whose HTML renders, the answers of
# `branchy eval`, also over protocol version 1 and with every node at `precision: int8`, request bytes below
# a raw image, TLS refusals, SIGTERM),
# the binarised model (b-lenet3-bin.yaml, 20x below the measured raw offload of cloud-only.yaml), four
# devices at once (fanin.yaml), and the suites cifar-check.sh, netem.sh --short and netns-cluster.sh
# (--cloud-replicas 2, with and without --replicas-by-name; these need root). Prints `ok - NAME` or
# `not ok - NAME: why` per check, then `N passed, M failed`. Details in run/e2e/.
# Environment: DEVICE_TIMEOUT (seconds per device run, default 900), BRANCHY_BIN.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
no_args "builds, runs every end-to-end check, stops the clusters it started" "$@"

cd "$REPO_ROOT"
LOCAL=topology/local.yaml FANIN=topology/fanin.yaml CLOUD_ONLY=topology/cloud-only.yaml BIN=topology/b-lenet3-bin.yaml
RAW_IMAGE_BYTES=784   # one 28x28 8-bit image
work=run/e2e
log="$work/e2e.log"
ensure_packages openssl:openssl python3:python3
ensure_built
bin="$BRANCHY_BIN"
rm -rf "$work"
mkdir -p "$work"
trap 'for t in "$LOCAL" "$FANIN" "$CLOUD_ONLY" "$BIN"; do scripts/cluster.sh down "$t" >>"$log" 2>&1 || true; done' EXIT

model="$(topology_path "$LOCAL" model)"
certs="$(topology_certs_dir "$LOCAL")"
edge_address="$(node_dial "$LOCAL" edge)"
device_upstream="$(node_field "$LOCAL" device 4)"
fingerprint="$("$bin/branchy" info --model "$model" 2>&1 | awk '$1 == "fingerprint" { print $2 }')" || true

needs_local() { [ -f "$work/local.up" ] || { echo "the local cluster is not up"; return 1; }; }
# needs_edge: the edge is up, so that a refused connection means something.
needs_edge() {
    needs_local || return 1
    port_listening "$(host_of "$edge_address")" "$(port_of "$edge_address")" || { echo "the edge does not listen on $edge_address"; return 1; }
}
# through TOPOLOGY PREFIX SAMPLES [DEVICE OPTIONS]: a fresh cluster runs the device, then stops; the report is complete.
through() {
    cluster down "$1"; cluster up "$1" || return 1
    local why=""
    why="$(run_device "$1" device "$2" "${@:4}")" || true
    cluster down "$1"
    [ -z "$why" ] || { echo "$why"; return 1; }
    "${PY[@]}" report "$2.json" "$3" "$2.jsonl"
}
baseline() { [ ! -f "$work/cloud-only.json" ] || echo --baseline "$work/cloud-only.json"; }

check_calibrate() {   # the thresholds' frontier from held-out training samples
    ensure_training_set || { echo "the training set is missing and dataset-fashion-mnist could not be installed"; return 1; }
    "$bin/branchy" calibrate --model "$model" --topology "$LOCAL" --data "$TRAINING_SET" --frontier-out "$work/calibration.json" \
        > "$work/calibrate.out" 2> "$work/calibrate.err" || { echo "branchy calibrate failed: $(tail -n 1 "$work/calibrate.err")"; return 1; }
    "${PY[@]}" calibration "$work/calibration.json"
}
check_cloud_only() {   # the raw-offload baseline, measured: every raw image to the cloud
    through "$CLOUD_ONLY" "$work/cloud-only" 10000 && same_as_eval "$CLOUD_ONLY" "$work/cloud-only" --model "$model"
}
check_binarised() {   # 1-bit and 4-bit links, at least 20x fewer bytes than the raw offload
    through "$BIN" "$work/bin" 10000 $(baseline) && same_as_eval "$BIN" "$work/bin" && "${PY[@]}" savings "$work/bin.json" 20
}
check_local_up() {
    [ -f "$model/model.json" ] || { echo "no trained model in $model"; return 1; }
    cluster down "$LOCAL"; cluster up "$LOCAL" && touch "$work/local.up"
}
check_local_samples() {
    needs_local || return 1
    run_device "$LOCAL" device "$work/local" --html "$work/local.html" $(baseline) \
        $([ ! -f "$work/calibration.json" ] || echo --calibration "$work/calibration.json") || return 1
    "${PY[@]}" report "$work/local.json" 10000 "$work/local.jsonl"
}
check_html_report() {
    [ -s "$work/local.html" ] || { echo "no HTML report from the local run"; return 1; }
    local out status=0
    out="$(scripts/report-check.sh --frontier "$work/local.html" 2>&1)" || status=$?
    echo "$out" >&2
    [ "$status" -eq 0 ] || { grep -m 1 '^not ok' <<< "$out" || echo "scripts/report-check.sh exited $status"; return 1; }
}
check_matches_eval() {   # the cluster decides as the offline evaluator with the topology's thresholds and codecs
    [ -s "$work/local.jsonl" ] || { echo "no predictions from the local run"; return 1; }
    same_as_eval "$LOCAL" "$work/local" --model "$model"
}
check_protocol_v1() {   # a copy of the local topology with `protocol: 1` on the device
    needs_local || return 1
    topology_with "$LOCAL" "$work/local-v1.yaml" device.protocol=1 \
        && [ "$(topology_query "$work/local-v1.yaml" '[n["protocolVersion"] for n in t["nodes"] if n["upstream"] == "edge"]')" = 1 ] \
        || { echo "could not write the version 1 topology"; return 1; }
    run_device "$work/local-v1.yaml" device "$work/local-v1" --limit 2000 || return 1
    head -n 2000 "$work/local-eval.jsonl" > "$work/local-v1-eval.jsonl"
    "${PY[@]}" same-predictions "$work/local-v1.jsonl" "$work/local-v1-eval.jsonl" "$work/local-v1.json"
}
check_device_edge_bytes() {
    [ -s "$work/local.json" ] || { echo "no report from the local run"; return 1; }
    "${PY[@]}" link-bytes "$work/local.json" "device->$device_upstream" "$RAW_IMAGE_BYTES"
}

# tls_probe INPUT OUTPUT [CERT KEY]: INPUT to the edge over TLS 1.3, the application data back to
# OUTPUT; fails when the connection was still open after 10 s.
tls_probe() {
    local -a args=(s_client -connect "$edge_address" -tls1_3 -quiet -CAfile "$certs/ca.pem")
    [ "$#" -lt 4 ] || args+=(-cert "$3" -key "$4")
    echo "openssl ${args[*]} < $1" >&2
    timeout 10 openssl "${args[@]}" < "$1" > "$2" 2> "$2.err" || [ "$?" -ne 124 ] || { echo "the connection was still open after 10 s"; return 1; }
}
# refused_with_cert CERT KEY OUTPUT: a client with this certificate, saying it is the device, gets no
# helloAck and is disconnected (an error frame before the close is allowed).
refused_with_cert() {
    needs_edge || return 1
    [ -n "$fingerprint" ] || { echo "no model fingerprint from 'branchy info'"; return 1; }
    "${PY[@]}" hello "$work/hello-device.bin" device device "$fingerprint" && tls_probe "$work/hello-device.bin" "$3" "$1" "$2" \
        && "${PY[@]}" only-error-frames "$3"
}
check_tls_no_client_cert() {
    needs_edge && "${PY[@]}" hello-header "$work/hello-header.bin" && tls_probe "$work/hello-header.bin" "$work/no-cert.out" || return 1
    [ ! -s "$work/no-cert.out" ] || { echo "got $(wc -c < "$work/no-cert.out") bytes of application data"; return 1; }
}
check_tls_intruder_cert() {   # a certificate for the name `intruder`, signed by the cluster's own CA
    needs_edge || return 1
    mkdir -p "$work/intruder" && cp "$certs/ca.pem" "$certs/ca-key.pem" "$work/intruder/"
    scripts/gen-certs.sh --nodes intruder "$work/intruder" >&2 || { echo "could not make the intruder certificate"; return 1; }
    openssl verify -CAfile "$certs/ca.pem" "$work/intruder/intruder.pem" >&2 || { echo "the intruder certificate does not verify"; return 1; }
    refused_with_cert "$work/intruder/intruder.pem" "$work/intruder/intruder-key.pem" "$work/intruder.out"
}
check_tls_other_node_cert() { refused_with_cert "$certs/cloud.pem" "$certs/cloud-key.pem" "$work/cloud-cert.out"; }
check_plaintext_refused() {   # a frame header instead of a ClientHello: at most TLS alerts come back
    needs_edge && "${PY[@]}" hello-header "$work/hello-header.bin" || return 1
    local status=0
    timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 99; cat "$2" >&3; cat <&3' \
        "$(host_of "$edge_address")" "$(port_of "$edge_address")" "$work/hello-header.bin" > "$work/plaintext.out" || status=$?
    case "$status" in
        124) echo "the connection was still open after 5 s"; return 1 ;;
        99) echo "could not connect to $edge_address"; return 1 ;;
    esac
    "${PY[@]}" only-tls-alerts "$work/plaintext.out"
}
check_local_down() {
    needs_local || return 1
    rm -f "$work/local.up"
    local out
    out="$(scripts/cluster.sh down "$LOCAL" 2>&1)"
    echo "$out" >&2
    ! grep -m 1 '^killed' <<< "$out"
}
check_int8() {   # every node with `precision: int8`: the answers of branchy eval, which runs the same stages in int8
    topology_with "$LOCAL" "$work/local-int8.yaml" device.precision=int8 edge.precision=int8 cloud.precision=int8 \
        && [ "$(topology_query "$work/local-int8.yaml" '[n["precision"] for n in t["nodes"]]' | sort -u)" = int8 ] \
        || { echo "could not write the int8 topology"; return 1; }
    through "$work/local-int8.yaml" "$work/local-int8" 2000 --limit 2000 || return 1
    same_as_eval "$work/local-int8.yaml" "$work/local-int8" --limit 2000 || return 1
    grep -q "convolutions in int8" "$work/local-int8-eval.out" || { echo "branchy eval did not run int8: $(head -n 1 "$work/local-int8-eval.out")"; return 1; }
}
check_fanin() {   # four devices at once through two edges into one cloud
    cluster down "$FANIN"; cluster up "$FANIN" || return 1
    local d problems="" devices
    devices="$(nodes_of "$FANIN" device)"
    [ -n "$devices" ] || { echo "no devices in $FANIN"; return 1; }
    for d in $devices; do
        { run_device "$FANIN" "$d" "$work/fanin-$d" --limit 2000 && "${PY[@]}" report "$work/fanin-$d.json" 2000 "$work/fanin-$d.jsonl"; } \
            > "$work/fanin-$d.why" &
    done
    wait
    cluster down "$FANIN"
    for d in $devices; do [ ! -s "$work/fanin-$d.why" ] || problems+="; $d: $(tail -n 1 "$work/fanin-$d.why")"; done
    [ -z "$problems" ] || { echo "${problems#; }"; return 1; }
}

# suite SCRIPT [ARGS]: runs another suite (root for the namespaced ones); its output in $work/SCRIPT.out.
suite() {
    local out="$work/$(echo "$*" | tr -dc 'a-z0-9-').out" status=0
    [ "$1" = cifar-check ] || [ "$(id -u)" -eq 0 ] || { echo "scripts/$1.sh needs root (network namespaces)"; return 1; }
    scripts/$1.sh "${@:2}" > "$out" 2> "$out.err" || status=$?
    cat "$out" "$out.err" >&2
    [ "$status" -eq 0 ] || { echo "scripts/$1.sh ${*:2} exited $status: $(grep -m 1 '^not ok' "$out" || tail -n 1 "$out.err")"; return 1; }
    suite_out="$out"
}
check_cifar() { suite cifar-check; }
check_netem() {
    suite netem --short || return 1
    local label
    for label in branchy cloud-only; do
        grep -q "^$label: all [0-9]* samples answered" "$suite_out.err" || { echo "no '$label: all ... samples answered' line"; return 1; }
        grep -qE "^  $label +[0-9]+ +[0-9]+ " "$suite_out" || { echo "no overall '$label' row in the comparison"; return 1; }
    done
    grep -q "latency per exit" "$suite_out" || { echo "no per-exit latency table"; return 1; }
    [ -z "$(ip netns list 2>/dev/null | grep '^bnet-')" ] || { echo "bnet- namespaces left after the run"; return 1; }
}
# netns_suite LINE... -- ARGS: netns-cluster.sh ARGS printed each `ok - LINE`, and left nothing behind.
netns_suite() {
    local -a lines=()
    while [ "$1" != -- ]; do lines+=("$1"); shift; done
    suite netns-cluster "${@:2}" || return 1
    for line in "${lines[@]}"; do grep -qF "ok - $line" <(grep '^ok - ' "$suite_out") || { echo "no 'ok - $line' line"; return 1; }; done
    [ -z "$(ip netns list 2>/dev/null | grep '^bhost-')" ] || { echo "bhost- namespaces left after the run"; return 1; }
    ! compgen -G "/etc/netns/bhost-*" >/dev/null || { echo "files left after the run: $(echo /etc/netns/bhost-*)"; return 1; }
}
check_netns_cluster() {
    netns_suite "namespaces for device, edge, cloud-0, cloud-1 " "2000 samples through the device" \
        "each node dialled its upstream at the upstream's namespace address, every replica's" \
        "every replica of 'cloud' answered requests" "predictions identical to branchy eval" -- --limit 2000 --cloud-replicas 2
}
check_netns_cluster_by_name() {
    netns_suite "namespaces for device, edge, cloud-0, cloud-1 " \
        "cloud.branchy.test resolves to every replica of 'cloud' in the namespace of edge" \
        "topology with each server bound to 0.0.0.0 and dialled at its namespace's IP, 'cloud' as 2 replicas found by name (replicas: cloud.branchy.test:7402)" \
        "servers bound to 0.0.0.0 in their namespaces, 'cloud' as 2 replicas started without --replica" \
        "2000 samples through the device" \
        "each node dialled its upstream at the upstream's namespace address, every address cloud.branchy.test resolves to" \
        "every replica of 'cloud' found by name answered requests" "predictions identical to branchy eval" \
        "servers stopped, namespaces removed, /etc/netns/bhost-* removed" -- --limit 2000 --cloud-replicas 2 --replicas-by-name
}

run_check "branchy calibrate writes the frontier from held-out training samples" check_calibrate
run_check "cloud-only baseline: every raw image to the cloud, same answers as branchy eval" check_cloud_only
run_check "local cluster starts" check_local_up
run_check "10,000 samples through device, edge and cloud" check_local_samples
run_check "HTML report renders with its charts" check_html_report
run_check "predictions identical to branchy eval" check_matches_eval
run_check "a device on protocol version 1 gets the same answers" check_protocol_v1
run_check "b-lenet3-bin over 1-bit links: same answers as branchy eval, 20x below raw offload" check_binarised
run_check "device->edge request bytes below a raw image" check_device_edge_bytes
run_check "edge refuses a client without a certificate" check_tls_no_client_cert
run_check "edge refuses a certificate for another name (intruder)" check_tls_intruder_cert
run_check "edge refuses the cloud's certificate" check_tls_other_node_cert
run_check "edge refuses plain TCP" check_plaintext_refused
run_check "local cluster stops on SIGTERM" check_local_down
run_check "every node at precision: int8, 2,000 samples: same answers as branchy eval in int8" check_int8
run_check "fan-in: four devices at once" check_fanin
run_check "CIFAR-10 path on a synthetic set: train, eval, calibrate, shape check, cluster (cifar-check.sh)" check_cifar
run_check "emulated links: Branchy and cloud-only, every sample answered (netem.sh --short)" check_netem
run_check "several hosts, two cloud replicas: servers bound to 0.0.0.0, dialled at their addresses, both replicas answered, same answers as branchy eval (netns-cluster.sh --limit 2000 --cloud-replicas 2)" check_netns_cluster
run_check "several hosts, two cloud replicas found by name: cloud.branchy.test resolves to both in the edge's namespace, the edge dialled both, both answered, same answers as branchy eval (netns-cluster.sh --limit 2000 --cloud-replicas 2 --replicas-by-name)" check_netns_cluster_by_name
summary
