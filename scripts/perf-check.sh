#!/usr/bin/env bash
# Speed work changed no answer and inference allocates nothing: every model in models/ exported to ONNX
# (scripts/export-onnx.py; models with binary layers have no export and are named and skipped) gives
# under ONNX Runtime the exit and class of `branchy eval` on all 10,000 test samples; and `branchy
# bench`, on every kernel path this CPU supports, allocates nothing per sample in steady state at one
# thread (batch 1 and 16). Timing is not checked (bench-compare.sh measures). Prints `ok`/`not ok`
# lines and `N passed, M failed`; details in run/perf-check/. Environment: BRANCHY_BIN.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
no_args "ONNX Runtime agreement and allocation checks" "$@"

cd "$REPO_ROOT"
work=run/perf-check
log="$work/perf-check.log"
rm -rf "$work"
mkdir -p "$work"
ensure_built
bin="$BRANCHY_BIN"
ensure_onnx_venv >>"$log" 2>&1

check_onnx() {
    local out="$work/onnx-$(basename "$model")"
    "$ONNX_PYTHON" scripts/export-onnx.py "$model" "$out" --check data/fashion-mnist --branchy "$bin" > "$out.txt" 2>&1 || { tail -n 3 "$out.txt" | paste -sd ' '; return 1; }
    grep -iE 'agree|samples' "$out.txt" | tail -n 1 >> "$work/figures"
}
check_allocations() {
    local isa
    "$bin/branchy" bench --json --gemm --m 64 --n 64 --k 64 --threads 1 --seconds 0.03 > "$work/isas.json"
    for isa in $("${PY[@]}" get "$work/isas.json" 'r["machine"]["supportedISAs"]'); do
        "$bin/branchy" bench --json --models --isa "$isa" --batch 1,16 --threads 1 --seconds 0.15 > "$work/bench-$isa.json" 2>>"$log" \
            || { echo "branchy bench --isa $isa failed: $(tail -n 1 "$log")"; return 1; }
        "${PY[@]}" allocations "$work/bench-$isa.json" "$isa" >> "$work/figures" || { tail -n 1 "$work/figures"; return 1; }
    done
}

for model in models/*/; do
    model="${model%/}"
    [ -f "$model/model.json" ] || continue
    ops="$("${PY[@]}" binary-ops "$model/model.json")"
    [ -z "$ops" ] || { echo "skip - ONNX Runtime agreement for $(basename "$model"): its $ops layers have no ONNX export"; continue; }
    run_check "ONNX Runtime agrees with branchy eval on every test sample ($(basename "$model"))" check_onnx
done
run_check "steady-state inference allocates nothing per sample, on every kernel path" check_allocations
summary
