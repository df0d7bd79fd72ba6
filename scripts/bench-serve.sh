#!/usr/bin/env bash
# Open Inference Protocol (KServe v2) servers measured with Triton's perf_analyzer, side by side, with
# one and the same perf_analyzer command: (a) KServe's Python model server (PyPI `kserve`) serving the
# full models/b-resnet3 with ONNX Runtime (scripts/lib/kserve_onnx.py on scripts/export-onnx.py's
# full.onnx, the last exit's logits), started here on free local ports and stopped after its runs;
# (b) Branchy's device front door: at the address(es) given, or, given none, started here (release build)
# in front of topology/local.yaml's edge and cloud (mutual TLS on loopback, int8 links) and stopped
# after its runs: `branchy-device serve` on 127.0.0.1:8000 (HTTP) and 8001 (gRPC). Both serve model
# `b-resnet3`: input `input` FP32 [-1,1,28,28], outputs `class` INT64 [-1] and `probabilities` FP32
# [-1,10], and Triton's model configuration (GET /v2/models/b-resnet3/config, gRPC ModelConfig:
# perf_analyzer asks for it before it measures; max_batch_size 64). Each target is first sent one
# batch of 8 test images over HTTP (shapes and types checked, their accuracy shown), then for every
# protocol and concurrency perf_analyzer measures batch 1 (`--concurrency-range C:C`, windows of
# --seconds, stabilised on the average latency) on the first 256 Fashion-MNIST test images (or
# zeros, or random data): throughput, p50 and p99 latency. perf_analyzer asks for the model without a
# version (no -x: KServe refuses versioned paths). The client runs on this machine, so it
# shares its cores with the server; the summary line gives the load average.
# Sets up run/serve-venv (kserve, onnxruntime, numpy, onnx, tritonclient 2.41.1, whose wheel carries
# the perf_analyzer binary, and nvidia-cuda-runtime-cu12 for the libcudart.so.12 it links; no GPU is
# used) and Debian's libb64-0d. Output in run/bench-serve/ (summary.txt, results.json or --json FILE,
# logs/). Exits 1 when a run failed (its row says why).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() {
    cat <<EOU
usage: $(basename "$0") [--target kserve|branchy|both] [--branchy-http HOST:PORT] [--branchy-grpc HOST:PORT]
                      [--concurrency LIST] [--protocols LIST] [--seconds S] [--input-data test|zero|random]
                      [--stability PCT] [--threads N] [--kserve-quiet] [--json FILE]
  --target T           what to measure (default kserve)
  --branchy-http A     Branchy's front door over HTTP, host:port (default: start one here)
  --branchy-grpc A     Branchy's front door over gRPC, host:port (default: start one here)
  --concurrency LIST   comma-separated concurrencies (default 1,4,16)
  --protocols LIST     http, grpc or both (default http,grpc); a protocol without an address is
                       skipped for Branchy
  --seconds S          perf_analyzer's measurement window (default 5; it takes 3 or more)
  --input-data D       test (the first 256 test images, default), zero or random
  --stability PCT      perf_analyzer's -s: the latency and throughput spread allowed over its last
                       3 windows (default 10); a run that does not settle within 10 windows is
                       tried once more at 3 x PCT (at most 50), its row marked so
  --threads N          ONNX Runtime intra-op threads of the KServe model (default 1)
  --kserve-quiet       KServe without its per-request logging (access, gRPC method and latency
                       lines, on by default), as a server that logs none
  --json FILE          write the figures as JSON to FILE (default run/bench-serve/results.json)
EOU
}
target=kserve branchy_http="" branchy_grpc="" concurrency=1,4,16 protocols=http,grpc seconds=5 input_data=test stability=10 threads=1 json="" kserve_quiet=""
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --kserve-quiet) kserve_quiet=--quiet; shift ;;
        --target|--branchy-http|--branchy-grpc|--concurrency|--protocols|--seconds|--input-data|--stability|--threads|--json)
            [ $# -ge 2 ] || die "$1 needs a value"
            case "$1" in --json) json="$(abs_path "$2")" ;; *) v="${1#--}"; printf -v "${v//-/_}" %s "$2" ;; esac
            shift 2 ;;
        *) usage >&2; exit 2 ;;
    esac
done
case "$target" in kserve|branchy|both) ;; *) die "--target must be kserve, branchy or both, got '$target'" ;; esac
[[ "$concurrency" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--concurrency must be like 1,4,16, got '$concurrency'"
[[ "$protocols" =~ ^(http|grpc)(,(http|grpc))?$ ]] || die "--protocols must be http, grpc or http,grpc, got '$protocols'"
[[ "$seconds" =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] || die "--seconds must be a number, got '$seconds'"
case "$input_data" in test|zero|random) ;; *) die "--input-data must be test, zero or random, got '$input_data'" ;; esac
[[ "$stability" =~ ^[1-9][0-9]?$ ]] || die "--stability must be a whole number from 1 to 99, got '$stability'"
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive whole number, got '$threads'"
for a in "$branchy_http" "$branchy_grpc"; do [ -z "$a" ] || [[ "$a" =~ ^.+:[0-9]+$ ]] || die "a Branchy address must be host:port, got '$a'"; done
start_branchy=""
if [ "$target" != kserve ] && [ -z "$branchy_http$branchy_grpc" ]; then start_branchy=1 branchy_http=127.0.0.1:8000 branchy_grpc=127.0.0.1:8001; fi
interval_ms="$(awk -v s="$seconds" 'BEGIN { printf "%d", s * 1000 }')"
[ "$interval_ms" -ge 100 ] || die "--seconds must be at least 0.1"

MODEL=b-resnet3
cd "$REPO_ROOT"
[ -f "models/$MODEL/model.json" ] || die "no model folder models/$MODEL"
[ -d data/fashion-mnist ] || die "no data set at $REPO_ROOT/data/fashion-mnist"
work=run/bench-serve
venv="$REPO_ROOT/run/serve-venv"
rm -rf "$work/logs"
mkdir -p "$work/logs"
json="${json:-$REPO_ROOT/$work/results.json}"

# --- Set-up: libb64 (Debian), the venv, perf_analyzer and its libcudart -----------------------------
setup_start="$(date +%s.%N)"
ldconfig -p | grep -q 'libb64\.so\.0d' || apt_install libb64-0d
KSERVE_VERSION=0.21.0   # scripts/lib/kserve_onnx.py adds the model configuration to its servers
SERVE_PACKAGES=("kserve==$KSERVE_VERSION" onnxruntime numpy onnx "tritonclient==2.41.1" nvidia-cuda-runtime-cu12)
# tritonclient's [all] extra wants protobuf < 5 and kserve 0.21 protobuf >= 6.33: only the plain wheel
# (which carries perf_analyzer) goes in; no Python client of it is used.
pa_in_venv() {
    local f
    for f in "$venv"/bin/perf_analyzer "$venv"/lib/python3*/site-packages/tritonclient/bin/perf_analyzer; do [ ! -x "$f" ] || { echo "$f"; return; }; done
}
if ! "$venv/bin/python" -c "import kserve, onnxruntime, numpy, onnx, tritonclient; from importlib.metadata import version; assert version('kserve') == '$KSERVE_VERSION'" 2>/dev/null || [ -z "$(pa_in_venv)" ] \
    || ! ls "$venv"/lib/python3*/site-packages/nvidia/cuda_runtime/lib/libcudart.so.12 >/dev/null 2>&1; then
    PIP_RETRIES="${PIP_RETRIES:-5}" PIP_TIMEOUT="${PIP_TIMEOUT:-60}" ensure_venv "$venv" "${SERVE_PACKAGES[@]}"
fi
setup_seconds="$(since "$setup_start")"
PYTHON="$venv/bin/python"
PERF_ANALYZER="$(pa_in_venv)"
[ -n "$PERF_ANALYZER" ] || die "no perf_analyzer in $venv (the tritonclient 2.41.1 wheel carries it)"
cudart="$(echo "$venv"/lib/python3*/site-packages/nvidia/cuda_runtime/lib/libcudart.so.12)"
[ -f "$cudart" ] || die "no libcudart.so.12 in $venv (nvidia-cuda-runtime-cu12)"
cudart_dir="$(dirname "$cudart")"
export LD_LIBRARY_PATH="$cudart_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
missing="$(ldd "$PERF_ANALYZER" | awk '/not found/ { print $1 }' | tr '\n' ' ')"
[ -z "$missing" ] || die "perf_analyzer lacks ${missing% }"
say "perf_analyzer: $PERF_ANALYZER (libcudart from $cudart_dir); set-up took ${setup_seconds} s"

# --- Input data --------------------------------------------------------------------------------
# test-data.json: perf_analyzer's --input-data file, one entry per image (batch 1: shape without the
# batch dimension); check.json: one request of 8 images with their labels, for the HTTP check.
"$PYTHON" - "$work" <<'PY'
import json, os, sys
sys.path.insert(0, "scripts/lib")
from branchy_numpy import load_test_set
work = sys.argv[1]
x, y = load_test_set("data/fashion-mnist")
with open(os.path.join(work, "test-data.json"), "w") as f:
    json.dump({"data": [{"input": {"content": [float(v) for v in img.ravel()], "shape": [1, 28, 28]}} for img in x[:256]]}, f)
with open(os.path.join(work, "check.json"), "w") as f:
    json.dump({"labels": [int(v) for v in y[:8]],
               "request": {"inputs": [{"name": "input", "datatype": "FP32", "shape": [8, 1, 28, 28],
                                       "data": [float(v) for v in x[:8].ravel()]}]}}, f)
PY
case "$input_data" in test) pa_data="$REPO_ROOT/$work/test-data.json" ;; *) pa_data="$input_data" ;; esac

# check_http HOST:PORT: one v2 request of 8 test images; prints the accuracy or why it failed.
check_http() {
    "$PYTHON" - "$1" "$MODEL" "$work/check.json" <<'PY'
import json, sys, urllib.request
address, model, check = sys.argv[1:]
c = json.load(open(check))
req = urllib.request.Request(f"http://{address}/v2/models/{model}/infer", json.dumps(c["request"]).encode(),
                             {"Content-Type": "application/json"})
try:
    body = json.load(urllib.request.urlopen(req, timeout=30))
except Exception as e:
    sys.exit(f"the check request failed: {e}")
outs = {o["name"]: o for o in body.get("outputs", [])}
want = {"class": ("INT64", [8]), "probabilities": ("FP32", [8, 10])}
for name, (dtype, shape) in want.items():
    o = outs.get(name)
    if o is None or o.get("datatype") != dtype or o.get("shape") != shape or len(o.get("data", [])) != 8 * (shape[1] if len(shape) > 1 else 1):
        sys.exit(f"output {name}: expected {dtype} {shape}, got {o and {k: o.get(k) for k in ('datatype', 'shape')}}")
sums = [sum(outs["probabilities"]["data"][i * 10:(i + 1) * 10]) for i in range(8)]
if any(abs(s - 1) > 1e-3 for s in sums):
    sys.exit(f"probabilities do not sum to 1: {sums}")
right = sum(int(a == b) for a, b in zip(outs["class"]["data"], c["labels"]))
print(f"{right}/8 of the first test images right")
PY
}

# --- Runs ----------------------------------------------------------------------------------------
: > "$work/runs.tsv"
# perf_analyzer_run PROTOCOL HOST:PORT CONCURRENCY STABILITY NAME: one measurement, NAME.csv and NAME.log in logs/.
perf_analyzer_run() {
    (cd "$work/logs" && "$PERF_ANALYZER" -m "$MODEL" -u "$2" -i "$1" -b 1 --concurrency-range "$3:$3" \
        --measurement-interval "$interval_ms" -s "$4" --input-data "$pa_data" -f "$5.csv") > "$work/logs/$5.log" 2>&1
}
# measure TARGET PROTOCOL HOST:PORT: perf_analyzer at every concurrency; a line per run in runs.tsv.
measure() {
    local c name status s
    for c in ${concurrency//,/ }; do
        name="$1-$2-c$c" s="$stability" status=0
        say "perf_analyzer: $1 over $2 at $3, concurrency $c"
        perf_analyzer_run "$2" "$3" "$c" "$s" "$name" || status=$?
        if [ "$status" -ne 0 ] && grep -q 'Failed to obtain stable measurement' "$work/logs/$name.log"; then
            s=$((stability * 3 > 50 ? 50 : stability * 3)) status=0
            mv "$work/logs/$name.log" "$work/logs/$name-unstable.log"
            say "  not stable within ${stability}%: again at ${s}%"
            perf_analyzer_run "$2" "$3" "$c" "$s" "$name" || status=$?
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$c" "$3" "$status" "$work/logs/$name" "$s" >> "$work/runs.tsv"
    done
}
protocol_wanted() { [[ ",$protocols," == *",$1,"* ]]; }
checks=()
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

if [ "$target" != branchy ]; then
    say "exporting models/$MODEL to $work/onnx"
    "$PYTHON" scripts/export-onnx.py "models/$MODEL" "$work/onnx" > "$work/logs/export.log" 2>&1 \
        || die "the export failed: $(tail -n 1 "$work/logs/export.log")"
    http_port=8100
    while port_listening 127.0.0.1 "$http_port" || port_listening 127.0.0.1 $((http_port + 1)); do
        http_port=$((http_port + 2))
        [ "$http_port" -lt 8200 ] || die "no two free ports between 8100 and 8200"
    done
    grpc_port=$((http_port + 1))
    "$PYTHON" scripts/lib/kserve_onnx.py --onnx "$work/onnx/full.onnx" --name "$MODEL" --http-port "$http_port" \
        --grpc-port "$grpc_port" --threads "$threads" $kserve_quiet </dev/null > "$work/logs/kserve.log" 2>&1 &
    kserve_pid=$!
    trap 'stop_children "$work/logs/kserve.log" "$kserve_pid"' EXIT
    ready() { curl -fsS "http://127.0.0.1:$http_port/v2/health/ready" >/dev/null 2>&1 || { proc_running "$kserve_pid" || return 0; return 1; }; }
    wait_for 120 ready || die "KServe was not ready on port $http_port within 120 s (log: $work/logs/kserve.log)"
    proc_running "$kserve_pid" || die "KServe exited: $(tail -n 1 "$work/logs/kserve.log")"
    say "KServe $KSERVE_VERSION ready (pid $kserve_pid), http $http_port, grpc $grpc_port"
    why="$(check_http "127.0.0.1:$http_port" 2>&1)" || die "KServe: $why"
    checks+=("kserve: $why")
    ! protocol_wanted http || measure kserve http "127.0.0.1:$http_port"
    ! protocol_wanted grpc || measure kserve grpc "127.0.0.1:$grpc_port"
    stop_children "$work/logs/kserve.log" "$kserve_pid"
    trap - EXIT
fi

if [ "$target" != kserve ]; then
    if [ -n "$start_branchy" ]; then
        ensure_built
        for p in 8000 8001; do ! port_listening 127.0.0.1 "$p" || die "port $p is in use: stop what listens there, or give --branchy-http and --branchy-grpc"; done
        scripts/gen-certs.sh topology/local.yaml > "$work/logs/certs.log" 2>&1
        cluster up topology/local.yaml || die "the cluster of topology/local.yaml did not start"
        "$BRANCHY_BIN/branchy-device" serve --topology topology/local.yaml --node device --http "$branchy_http" --grpc "$branchy_grpc" \
            </dev/null > "$work/logs/branchy-device.log" 2>&1 &
        device_pid=$!
        trap 'stop_children "$work/logs/branchy-device.log" "$device_pid"; cluster down topology/local.yaml' EXIT
        wait_for 30 curl -fsS "http://$branchy_http/v2/health/ready" -o /dev/null 2>/dev/null \
            || die "branchy-device serve was not ready within 30 s (log: $work/logs/branchy-device.log)"
        say "Branchy's front door ready (pid $device_pid), http $branchy_http, grpc $branchy_grpc, before topology/local.yaml's edge and cloud"
    fi
    if [ -n "$branchy_http" ]; then
        wait_for 10 curl -fsS "http://$branchy_http/v2/health/ready" -o /dev/null 2>/dev/null \
            || die "Branchy's front door is not ready at http://$branchy_http/v2/health/ready"
        why="$(check_http "$branchy_http" 2>&1)" || die "Branchy: $why"
        checks+=("branchy: $why")
    fi
    for p in http grpc; do
        protocol_wanted "$p" || continue
        a="branchy_$p"
        if [ -n "${!a}" ]; then measure branchy "$p" "${!a}"; else say "no --branchy-$p: Branchy over $p skipped"; fi
    done
    if [ -n "$start_branchy" ]; then
        stop_children "$work/logs/branchy-device.log" "$device_pid"
        cluster down topology/local.yaml
        trap - EXIT
    fi
fi
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- Table and JSON ------------------------------------------------------------------------------
status=0
"$PYTHON" - "$work/runs.tsv" "$json" "$setup_seconds" "$load_before" "$load_after" "$seconds" "$stability" "$input_data" "$target" "$threads" \
    "$PERF_ANALYZER" "$cudart_dir" "${kserve_quiet:+quiet}" "${checks[@]}" <<'PY' | tee "$work/summary.txt" || status=$?
import csv, json, os, sys
from importlib import metadata
runs, out, setup, load_before, load_after, seconds, stability, data, target, threads, pa, cudart, quiet, *checks = sys.argv[1:]
rows = []
for line in open(runs):
    target, protocol, conc, address, status, prefix, stab = line.rstrip("\n").split("\t")
    row = {"target": target, "protocol": protocol, "concurrency": int(conc), "address": address, "stabilityPct": int(stab)}
    try:
        with open(prefix + ".csv") as f:
            r = next(csv.DictReader(f))
        row.update(throughput=float(r["Inferences/Second"]), p50Us=int(r["p50 latency"]), p99Us=int(r["p99 latency"]))
    except (OSError, StopIteration, KeyError, ValueError):
        log = [l.strip() for l in open(prefix + ".log", errors="replace") if l.strip()]
        err = next((l for l in log if "rror" in l or "Failed" in l), log[-1] if log else f"perf_analyzer exited {status}")
        row["error"] = err
    rows.append(row)
versions = {}
for p in ("kserve", "onnxruntime", "tritonclient"):
    try:
        versions[p] = metadata.version(p)
    except metadata.PackageNotFoundError:
        versions[p] = None
doc = {"model": "b-resnet3", "target": target, "batch": 1, "seconds": float(seconds), "stabilityPct": int(stability), "inputData": data, "kserveOrtThreads": int(threads),
       "kserveLogging": quiet or "default",
       "versions": versions, "perfAnalyzer": pa, "ldLibraryPath": cudart, "setupSeconds": float(setup),
       "machine": {"cores": os.cpu_count(), "loadBefore": [float(v) for v in load_before.split()],
                   "loadAfter": [float(v) for v in load_after.split()]},
       "checks": checks, "rows": rows}
with open(out, "w") as f:
    json.dump(doc, f, indent=2)
print(f"{'target':<9}{'protocol':<10}{'concurrency':>12}{'infer/s':>12}{'p50 µs':>10}{'p99 µs':>10}")
for r in rows:
    if "error" in r:
        print(f"{r['target']:<9}{r['protocol']:<10}{r['concurrency']:>12}  failed (stability {r['stabilityPct']}%): {r['error']}")
    else:
        wide = f"  (stable within {r['stabilityPct']}% only)" if r["stabilityPct"] != int(stability) else ""
        print(f"{r['target']:<9}{r['protocol']:<10}{r['concurrency']:>12}{r['throughput']:>12.1f}{r['p50Us']:>10}{r['p99Us']:>10}{wide}")
print()
for c in checks:
    print(f"check {c}")
kserve = "" if target == "branchy" else (f"kserve {versions['kserve']}, onnxruntime {versions['onnxruntime']} "
                                          f"({threads} thread{'s' if threads != '1' else ''}, {quiet or 'default'} logging), ")
print(f"batch 1, {seconds} s windows stable within {stability}%, {data} input; {kserve}perf_analyzer of tritonclient "
      f"{versions['tritonclient']}; {os.cpu_count()} cores, load average {load_before.split()[0]} before, {load_after.split()[0]} after")
sys.exit(1 if any("error" in r for r in rows) else 0)
PY
say "table in $work/summary.txt, figures in $json, logs in $work/logs/"
exit "$status"
