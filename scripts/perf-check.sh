#!/usr/bin/env bash
# Checks that speed work changed no answer and that inference allocates nothing:
#   - every model in models/ exported to ONNX (scripts/export-onnx.py; models with
#     binary layers, which have no export, are named and skipped) gives, under
#     ONNX Runtime, the same exit and class as `branchy eval` on all 10,000 test
#     samples (early-exit rule, thresholds and int8 codec as branchy applies them)
#   - `branchy bench` runs on every kernel path this CPU supports, and in steady
#     state every model path allocates nothing per sample at one thread (batch 1
#     and 16); the figures it printed follow the check's name
# Timing is not checked here: scripts/bench-compare.sh and `branchy bench` measure.
#
# Prints `ok - NAME` or `not ok - NAME: why` per check, then `N passed, M failed`;
# exits 1 if any check failed. Details in run/perf-check/.
# Environment: BRANCHY_BIN (folder of built executables: skips the build).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() { echo "usage: $(basename "$0")   (ONNX Runtime agreement and allocation checks)"; }
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

cd "$REPO_ROOT"
work=run/perf-check
rm -rf "$work"
mkdir -p "$work"
log="$work/perf-check.log"
: > "$log"
passed=0
failed=0

ensure_built
bin="$BRANCHY_BIN"
ensure_onnx_venv >>"$log" 2>&1

# check_onnx: the model folder is $onnx_model.
check_onnx() {
    local model="$onnx_model" out
    out="$work/onnx-$(basename "$model")"
    if ! "$ONNX_PYTHON" scripts/export-onnx.py "$model" "$out" --check data/fashion-mnist --branchy "$bin" > "$out.txt" 2>&1; then
        echo "$(tail -n 3 "$out.txt" | tr '\n' ' ')"
        return 1
    fi
    grep -iE 'agree|samples' "$out.txt" | tail -n 1 >> "$work/figures"
}

check_allocations() {
    local isa json
    for isa in $("$bin/branchy" bench --json --gemm --m 64 --n 64 --k 64 --threads 1 --seconds 0.03 \
                 | "$ONNX_PYTHON" -c 'import json,sys; print(" ".join(json.load(sys.stdin)["machine"]["supportedISAs"]))'); do
        json="$work/bench-$isa.json"
        "$bin/branchy" bench --json --models --isa "$isa" --batch 1,16 --threads 1 --seconds 0.15 > "$json" 2>>"$log" \
            || { echo "branchy bench --isa $isa failed: $(tail -n 1 "$log")"; return 1; }
        "$ONNX_PYTHON" - "$json" "$isa" >> "$work/figures" <<'PY' || return 1
import json, sys
figures = json.load(open(sys.argv[1]))["models"]
bad = [f for f in figures if f["allocationsPerSample"] is None or f["allocationsPerSample"] != 0]
if not figures:
    print("no figures"); sys.exit(1)
if bad:
    for f in bad:
        print(f"{f['model']} {f['path']} batch {f['batch']}: {f['allocationsPerSample']} allocations per sample")
    sys.exit(1)
worst = max(figures, key=lambda f: f["usPerSample"])
print(f"{sys.argv[2]}: {len(figures)} figures, 0 allocations per sample; slowest {worst['model']} {worst['path']} "
      f"batch {worst['batch']} at {worst['usPerSample']:.1f} µs/sample")
PY
    done
}

for model in models/*/; do
    model="${model%/}"
    [ -f "$model/model.json" ] || continue
    # The binary ops (sign, binlinear) have no export to ONNX: such models are named and skipped.
    binary_ops="$(python3 -c 'import json, sys
ops = set()
def walk(x):
    if isinstance(x, dict):
        if x.get("op") in ("sign", "binlinear"): ops.add(x["op"])
        for v in x.values(): walk(v)
    elif isinstance(x, list):
        for v in x: walk(v)
walk(json.load(open(sys.argv[1])))
print(",".join(sorted(ops)))' "$model/model.json")"
    if [ -n "$binary_ops" ]; then
        echo "skip - ONNX Runtime agreement for $(basename "$model"): its $binary_ops layers have no ONNX export"
        continue
    fi
    onnx_model="$model"
    run_check "ONNX Runtime agrees with branchy eval on every test sample ($(basename "$model"))" check_onnx
done
run_check "steady-state inference allocates nothing per sample, on every kernel path" check_allocations

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
