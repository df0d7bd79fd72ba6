#!/usr/bin/env bash
# The device's front door with real processes on loopback: the edge and cloud of topology/local.yaml
# over mutual TLS, and `branchy-device serve` in front of them. (a) Triton's own clients
# (`tritonclient.http` and `.grpc`, in run/triton-venv) classify every test sample through the front door, one
# request each, alternating FP32 and UINT8 inputs and JSON and binary tensor data: the exit and class
# equal `branchy eval`'s on every sample, the probabilities fit the class, and only samples answered
# upward spent bytes upward. (b) The device's Prometheus metrics count those requests. (c) Hostile
# requests get their status (400, 404, 405, 413) and error body, a stalled client holds nothing up,
# and `device_only` answers from the device alone. (d) A second front door with --max-queue 1 refuses
# at once with 503 what it cannot take, and answers 408 to a client that stalls past --read-timeout.
# (e) The README's "Serve requests" lines run as written. Details in run/serve-check/.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

no_args "front door checks: tritonclient against branchy eval, metrics, refusals, 503, the README's lines" "$@"
cd "$REPO_ROOT"
ensure_packages openssl:openssl python3:python3 curl:curl
ensure_built
bin="$BRANCHY_BIN"
work=run/serve-check
log="$work/serve-check.log"
LOCAL=topology/local.yaml HTTP=127.0.0.1:8000 GRPC=127.0.0.1:8001 METRICS=127.0.0.1:8400 SMALL=127.0.0.1:8010 SMALL_GRPC=127.0.0.1:8011 TLS_HTTP=127.0.0.1:8020 TLS_GRPC=127.0.0.1:8021 CLOUD_HTTP=127.0.0.1:8060 CLOUD_GRPC=127.0.0.1:8061
IMAGES=data/fashion-mnist/t10k-images-idx3-ubyte.gz
venv="$REPO_ROOT/run/triton-venv"
rm -rf "$work"
mkdir -p "$work"
: > "$log"
started=()
cleanup() {
    [ "${#started[@]}" -eq 0 ] || stop_children "$log" "${started[@]}"
    started=()
    cluster down "$LOCAL" 2>> "$log" || true
}
trap cleanup EXIT

# front_door HTTP GRPC NAME [OPTIONS]: `branchy-device serve` of the local device at HTTP and GRPC, until it is ready.
front_door() {
    "$bin/branchy-device" serve --topology "$LOCAL" --node device --http "$1" --grpc "$2" "${@:4}" </dev/null > "$work/$3.log" 2>&1 &
    started+=("$!")
    wait_for 30 curl -sf -o /dev/null --max-time 1 "http://$1/v2/health/ready" \
        || { echo "the front door at $1 was not ready within 30 s: $(tail -n 1 "$work/$3.log")"; return 1; }
}

check_setup() {
    ensure_venv "$venv"
    "$venv/bin/python" -c 'import tritonclient.http, tritonclient.grpc, numpy' 2>/dev/null || ensure_venv "$venv" 'tritonclient[http,grpc]==2.41.1' numpy
    scripts/gen-certs.sh "$LOCAL" >> "$log" 2>&1
    cluster up "$LOCAL" || return 1
    front_door "$HTTP" "$GRPC" device --metrics "$METRICS" || return 1
    front_door "$SMALL" "$SMALL_GRPC" small --max-queue 1 --read-timeout 1 --threshold-range 0.5:1 || return 1
    "$bin/branchy" eval --topology "$LOCAL" --predictions "$work/eval.jsonl" > "$work/eval.out" 2>&1 \
        || { echo "branchy eval failed: $(tail -n 1 "$work/eval.out")"; return 1; }
    figure "$(grep -m1 'overall accuracy' "$work/eval.out")"
}

# check_tritonclient http|grpc ADDRESS: every test sample through the front door with tritonclient.
check_tritonclient() {
    local names out
    names="$(python3 -c 'import json,sys; print(",".join(s["exit"]["name"] for s in json.load(open(sys.argv[1]))["stages"]))' models/b-resnet3/model.json)"
    out="$("$venv/bin/python" scripts/lib/serve_client.py "$2" b-resnet3 "$IMAGES" "$work/eval.jsonl" "$names" "$work/$1.jsonl" --protocol "$1" 2>&1)" \
        || { echo "$out" | tail -n 1; return 1; }
    figure "$out"
}

check_http() { check_tritonclient http "$HTTP"; }
check_grpc() { check_tritonclient grpc "$GRPC"; }

# Per-request thresholds: the answers equal `branchy eval --thresholds` of the same values (the local
# topology's links are int8), set by position over HTTP and by exit name over gRPC.
check_thresholds() {
    local names out
    "$bin/branchy" eval --model models/b-resnet3 --dataset data/fashion-mnist --codec int8 --thresholds 0.2,1.5 --limit 3000 \
        --predictions "$work/eval-thresholds.jsonl" > "$work/eval-thresholds.out" 2>&1 \
        || { echo "branchy eval --thresholds failed: $(tail -n 1 "$work/eval-thresholds.out")"; return 1; }
    names="$(python3 -c 'import json,sys; print(",".join(s["exit"]["name"] for s in json.load(open(sys.argv[1]))["stages"]))' models/b-resnet3/model.json)"
    out="$("$venv/bin/python" scripts/lib/serve_client.py "$HTTP" b-resnet3 "$IMAGES" "$work/eval-thresholds.jsonl" "$names" \
        "$work/http-thresholds.jsonl" --protocol http --thresholds 0.2,1.5 2>&1)" || { echo "$out" | tail -n 1; return 1; }
    figure "$out"
    out="$("$venv/bin/python" scripts/lib/serve_client.py "$GRPC" b-resnet3 "$IMAGES" "$work/eval-thresholds.jsonl" "$names" \
        "$work/grpc-thresholds.jsonl" --protocol grpc --thresholds "device-exit=0.2, edge-exit=1.5" 2>&1)" || { echo "$out" | tail -n 1; return 1; }
    figure "$out"
}

check_grpc_refusals() {
    "$venv/bin/python" scripts/lib/serve_grpc_refusals.py "$GRPC" "$SMALL_GRPC"
}

check_metrics() {
    curl -sf "http://$METRICS/metrics" > "$work/metrics.txt" || { echo "no metrics at http://$METRICS/metrics"; return 1; }
    python3 - "$work/metrics.txt" "$work/http.jsonl" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read()
def value(pattern):
    return sum(float(m.group(1)) for m in re.finditer(pattern + r'[^\n]* ([0-9.e+]+)\n', text))
answers = [json.loads(l) for l in open(sys.argv[2])]
ok = value(r'branchy_frontdoor_requests_total\{(?=[^}]*code="200")(?=[^}]*method="infer")(?=[^}]*protocol="http")[^}]*\}')
grpc = value(r'branchy_frontdoor_requests_total\{(?=[^}]*code="200")(?=[^}]*method="infer")(?=[^}]*protocol="grpc")[^}]*\}')
samples = value(r'branchy_requests_total\{(?=[^}]*status="answered")[^}]*\}')
timed = value(r'branchy_frontdoor_request_duration_seconds_count\{(?=[^}]*code="200")[^}]*\}')
if ok < len(answers) or grpc < len(answers) or samples < 2 * len(answers) or timed < 2 * len(answers):
    sys.exit(f"metrics count {ok:.0f} HTTP and {grpc:.0f} gRPC infer requests answered 200, {timed:.0f} timed and {samples:.0f} samples answered; "
             f"the clients sent {len(answers)} each")
print(f"{ok:.0f} HTTP and {grpc:.0f} gRPC infer requests answered 200, {samples:.0f} samples counted in the device's metrics")
EOF
}

check_refusals() {
    local out
    out="$(python3 scripts/lib/serve_refusals.py "$HTTP" b-resnet3 "$IMAGES" "$work/eval.jsonl" --device-only 500 2>&1)" \
        || { echo "$out" | head -n 3 | tr '\n' ' '; return 1; }
    figure "$out"
}

check_queue_full() {
    python3 - "$SMALL" <<'EOF'
import http.client, json, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
def post(n):
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    body = {"inputs": [{"name": "input", "datatype": "UINT8", "shape": [n, 1, 28, 28], "data": [0] * (784 * n)}]}
    start = time.time()
    c.request("POST", "/v2/models/b-resnet3/infer", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, r.read(), time.time() - start
status, body, seconds = post(2)
if status != 503 or "queue is full" not in json.loads(body)["error"] or seconds > 1:
    sys.exit(f"2 samples past --max-queue 1: {status} after {seconds:.3f} s: {body[:120]!r}, expected 503 at once")
status, body, _ = post(1)
if status != 200:
    sys.exit(f"1 sample within --max-queue 1: {status}: {body[:120]!r}")
s = socket.create_connection((host, int(port)), timeout=10)
s.sendall(b"POST /v2/models/b-resnet3/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"in")
start = time.time()
reply = s.recv(4096).decode(errors="replace")
waited = time.time() - start
if not reply.startswith("HTTP/1.1 408") or not 0.5 < waited < 5:
    sys.exit(f"a client stalled past --read-timeout 1: {reply[:60]!r} after {waited:.1f} s, expected 408 after about 1 s")
print(f"503 at once ({seconds * 1000:.1f} ms) past --max-queue 1; 408 after {waited:.1f} s to a stalled client")
EOF
}

# A front door over mutual TLS with the cluster's certificates (names, not addresses: the device's
# certificate names "device"): a client with a certificate of the CA is answered over HTTPS and gRPC;
# one without a certificate, or speaking plain HTTP, is not. Serving beyond loopback without TLS is refused.
check_tls() {
    local certs=certs/local out code
    "$bin/branchy-device" serve --topology "$LOCAL" --node device --http "$TLS_HTTP" --grpc "$TLS_GRPC" --tls-cert "$certs/device.pem" \
        --tls-key "$certs/device-key.pem" --tls-client-ca "$certs/ca.pem" </dev/null > "$work/tls.log" 2>&1 &
    started+=("$!")
    wait_for 30 curl -sf -o /dev/null --max-time 1 --resolve "device:${TLS_HTTP#*:}:127.0.0.1" --cacert "$certs/ca.pem" --cert "$certs/edge.pem" \
        --key "$certs/edge-key.pem" "https://device:${TLS_HTTP#*:}/v2/health/ready" \
        || { echo "the TLS front door was not ready within 30 s: $(tail -n 1 "$work/tls.log")"; return 1; }
    code="$(curl -s -o "$work/tls-infer.json" -w '%{http_code}' --resolve "device:${TLS_HTTP#*:}:127.0.0.1" --cacert "$certs/ca.pem" \
        --cert "$certs/edge.pem" --key "$certs/edge-key.pem" "https://device:${TLS_HTTP#*:}/v2/models/b-resnet3/infer" \
        -H 'Content-Type: application/json' -d @examples/serve/request.json)" || true
    [ "$code" = 200 ] && grep -q '"data":\[9\]' "$work/tls-infer.json" || { echo "HTTPS with a client certificate: status $code"; return 1; }
    ! curl -s -o /dev/null --resolve "device:${TLS_HTTP#*:}:127.0.0.1" --cacert "$certs/ca.pem" "https://device:${TLS_HTTP#*:}/v2/health/live" \
        || { echo "HTTPS without a client certificate was answered"; return 1; }
    ! curl -s -o /dev/null "http://$TLS_HTTP/v2/health/live" || { echo "plain HTTP to the TLS front door was answered"; return 1; }
    out="$("$venv/bin/python" - "$TLS_GRPC" "$certs" 2>&1 <<'PY'
import sys
import numpy as np
import tritonclient.grpc as g
address, certs = sys.argv[1], sys.argv[2] + "/"
name = [("grpc.ssl_target_name_override", "device")]
x = g.InferInput("input", [1, 1, 28, 28], "FP32")
x.set_data_from_numpy(np.zeros((1, 1, 28, 28), np.float32))
good = g.InferenceServerClient(address, ssl=True, root_certificates=certs + "ca.pem", private_key=certs + "edge-key.pem",
                               certificate_chain=certs + "edge.pem", channel_args=name)
good.infer("b-resnet3", [x])
try:
    g.InferenceServerClient(address, ssl=True, root_certificates=certs + "ca.pem", channel_args=name).infer("b-resnet3", [x])
    sys.exit("gRPC without a client certificate was answered")
except g.InferenceServerException:
    pass
print("gRPC over mutual TLS answered; without a client certificate refused")
PY
)" || { echo "$out" | tail -n 1; return 1; }
    out="$("$bin/branchy-device" serve --topology "$LOCAL" --node device --http 0.0.0.0:8040 --grpc off 2>&1)" \
        && { echo "serving 0.0.0.0 without TLS was not refused"; return 1; }
    grep -q 'beyond loopback' <<< "$out" || { echo "serving 0.0.0.0 without TLS: $(head -n 1 <<< "$out")"; return 1; }
    figure "HTTPS and gRPC with a client certificate answered, without one refused, plain HTTP refused; 0.0.0.0 without TLS refused"
}

# A cloud-only deployment in one command: the cloud of topology/cloud-only.yaml, hosting every stage,
# serves applications itself (--http, --grpc); its answers equal branchy eval's of that topology. An
# edge that does not host the first stage refuses to serve them, saying why.
check_cloud_front_door() {
    local names out
    scripts/gen-certs.sh topology/cloud-only.yaml >> "$log" 2>&1
    "$bin/branchy-cloud" --topology topology/cloud-only.yaml --node cloud --http "$CLOUD_HTTP" --grpc "$CLOUD_GRPC" </dev/null > "$work/cloud-only.log" 2>&1 &
    started+=("$!")
    wait_for 30 curl -sf -o /dev/null --max-time 1 "http://$CLOUD_HTTP/v2/health/ready" \
        || { echo "the cloud's front door was not ready within 30 s: $(tail -n 1 "$work/cloud-only.log")"; return 1; }
    "$bin/branchy" eval --topology topology/cloud-only.yaml --predictions "$work/cloud-only-eval.jsonl" > "$work/cloud-only-eval.out" 2>&1 \
        || { echo "branchy eval of cloud-only.yaml failed: $(tail -n 1 "$work/cloud-only-eval.out")"; return 1; }
    names="$(python3 -c 'import json,sys; print(",".join(s["exit"]["name"] for s in json.load(open(sys.argv[1]))["stages"]))' models/b-resnet3/model.json)"
    out="$("$venv/bin/python" scripts/lib/serve_client.py "$CLOUD_GRPC" b-resnet3 "$IMAGES" "$work/cloud-only-eval.jsonl" "$names" \
        "$work/cloud-only.jsonl" --protocol grpc --limit 2000 --served-by cloud 2>&1)" || { echo "cloud-only: $(tail -n 1 <<< "$out")"; return 1; }
    figure "cloud-only: $out"
    out="$("$bin/branchy-edge" --topology "$LOCAL" --node edge --http 127.0.0.1:8062 2>&1)" && { echo "an edge not hosting the first stage served applications"; return 1; }
    grep -q "only a node hosting the first stage" <<< "$out" || { echo "the edge's refusal: $(tail -n 1 <<< "$out")"; return 1; }
}

# The Swift library's example (Examples/EmbeddedDevice): the device slice in its own process, over the same cluster.
check_library() {
    local out
    out="$("$bin/branchy-embedded-example" "$LOCAL" device data/fashion-mnist 0 16 25 2>> "$log")" \
        || { echo "branchy-embedded-example failed: $(tail -n 1 "$log")"; return 1; }
    echo "$out" >> "$log"
    grep -q '^image 0: class 9 .* from device-exit on the device, 0 bytes upward' <<< "$out" \
        && grep -q '^image 16: class 2 .* from edge-exit on the edge' <<< "$out" && grep -q '^image 25: class 2 .* from cloud-exit on the cloud' <<< "$out" \
        || { echo "unexpected answers from the embedded device: $(tr '\n' ';' <<< "$out")"; return 1; }
    figure "$(grep -c '^image' <<< "$out") images answered by the device, the edge and the cloud as branchy eval says"
}

# The README's lines start the same cluster and front door: everything above is stopped first.
check_readme() {
    local text i line status
    cleanup
    text="$(awk '$0 == "## Serve requests" { inside = 1; next } inside == 1 && /^## / { exit }
        inside == 1 && /^```/ { inside = 2; next } inside == 2 && /^```/ { exit } inside == 2 { print }' README.md)"
    mapfile -t steps < <(grep -v '^[[:space:]]*\(#\|$\)' <<< "$text" || true)
    [ "${#steps[@]}" -gt 0 ] || { echo "no code block after \"## Serve requests\" in README.md"; return 1; }
    for i in "${!steps[@]}"; do
        line="${steps[$i]}"
        printf '\n### README step %d: %s\n' "$((i + 1))" "$line" >> "$log"
        status=0
        (env -u BRANCHY_BIN PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" PIP_RETRIES=0 PIP_TIMEOUT=15 timeout 600 bash -c "$line") \
            > "$work/readme-$((i + 1)).out" 2>&1 < /dev/null || status=$?
        cat "$work/readme-$((i + 1)).out" >> "$log"
        [ "$status" -eq 0 ] || { pkill -f 'branchy-device serve' || true; echo "README step $((i + 1)) exited $status: $line"; return 1; }
    done
    grep -q '"outputs":\[{"name":"class","datatype":"INT64","shape":\[1\],"data":\[9\]}' "$work"/readme-*.out \
        || { echo "the README's curl did not answer class 9 for test image 0"; return 1; }
    grep -q 'on the device' "$work"/readme-*.out && grep -q 'on the edge' "$work"/readme-*.out && grep -q 'on the cloud' "$work"/readme-*.out \
        || { echo "the README's tritonclient lines did not show answers from the device, the edge and the cloud"; return 1; }
    ! pgrep -f 'branchy-device serve' > /dev/null || { echo "the README's last line left the front door running"; return 1; }
    figure "${#steps[@]} lines; $(grep -h '^image' "$work"/readme-*.out | tr '\n' ';' | sed 's/;$//')"
}

echo "front door checks (logs in $work/)"
run_check "setup: the local cluster, its front door, branchy eval's predictions" check_setup
if [ "$failed" -eq 0 ]; then
    run_check "tritonclient.http: every test sample equals branchy eval" check_http
    run_check "tritonclient.grpc: every test sample equals branchy eval" check_grpc
    run_check "per-request thresholds: answers equal branchy eval --thresholds" check_thresholds
    run_check "metrics count the front door's requests" check_metrics
    run_check "hostile requests refused, device_only answered locally" check_refusals
    run_check "503 past --max-queue, 408 past --read-timeout" check_queue_full
    run_check "gRPC refusals have their status codes, ModelConfig answers" check_grpc_refusals
    run_check "mutual TLS on the front door, plaintext refused beyond loopback" check_tls
    run_check "a cloud-only deployment serving applications from the cloud" check_cloud_front_door
    run_check "the Swift library embedded in an application (Examples/EmbeddedDevice)" check_library
fi
run_check "README 'Serve requests' lines run as written" check_readme
summary
