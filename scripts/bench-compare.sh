#!/usr/bin/env bash
# Branchy's inference kernels against ONNX Runtime on the same models, and Branchy's GEMM against numpy's
# BLAS. Sets up run/venv (numpy, onnx, onnxruntime), exports every model with scripts/export-onnx.py (one
# that does not export is skipped, with the exporter's last message after the table), then for each
# model, path (`full` and every stage), batch and thread count runs `branchy bench --json` and ONNX
# Runtime in turn (for an imported model, holding the model.onnx it was imported from, ONNX Runtime's
# `full` path runs that file), REPEATS times each, keeping the fastest µs/sample of each (scripts/lib/ort_bench.py
# times and prints the table); with int8 among --precisions, a model with an int8.json (branchy quantize) also
# runs in int8 against ONNX Runtime's own static QDQ quantization of the same graph, calibrated on training
# images (Debian's dataset-fashion-mnist); then GEMM 1024³ at 2 threads against numpy. Where `branchy bench` fails,
# Branchy's column reads "not available". The machine's load shows in the figures (the summary gives
# the load average). Output in run/bench-compare/ (onnx/, summary.txt, results.json or --json FILE).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() {
    cat <<EOU
usage: $(basename "$0") [--model DIR]... [--repeats N] [--threads LIST] [--json FILE]
                        [--batches LIST] [--paths LIST] [--seconds S] [--precisions LIST]
  --model DIR     model folder (repeatable; default: every folder in models/)
  --repeats N     interleaved runs of each side per configuration, best kept (default 5)
  --threads LIST  comma-separated thread counts (default 1,2)
  --batches LIST  comma-separated batch sizes (default 1,256)
  --paths LIST    comma-separated paths, full or stage names (default: full and every stage)
  --seconds S     work per run and side (default 0.3)
  --precisions L  comma-separated float32, int8 (default float32,int8; int8 for models with an int8.json)
  --json FILE     write the figures as JSON to FILE (default run/bench-compare/results.json)
EOU
}
models=() repeats=5 threads=1,2 batches=1,256 paths="" seconds=0.3 json="" precisions=float32,int8
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --model|--repeats|--threads|--batches|--paths|--seconds|--json|--precisions)
            [ $# -ge 2 ] || die "$1 needs a value"
            case "$1" in --model) models+=("$(abs_path "$2")") ;; --json) json="$(abs_path "$2")" ;; *) printf -v "${1#--}" %s "$2" ;; esac
            shift 2 ;;
        *) usage >&2; exit 2 ;;
    esac
done
[[ "$repeats" =~ ^[1-9][0-9]*$ ]] || die "--repeats must be a positive whole number, got '$repeats'"
[[ "$threads" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--threads must be like 1,2, got '$threads'"
[[ "$batches" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--batches must be like 1,256, got '$batches'"
[[ "$precisions" =~ ^(float32|int8)(,(float32|int8))*$ ]] || die "--precisions must be like float32,int8, got '$precisions'"
[[ "$seconds" =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] || die "--seconds must be a number, got '$seconds'"

cd "$REPO_ROOT"
[ "${#models[@]}" -gt 0 ] || for d in models/*/; do [ ! -f "$d/model.json" ] || models+=("$(abs_path "$d")"); done
[ "${#models[@]}" -gt 0 ] || die "no model folders"
for m in "${models[@]}"; do [ -f "$m/model.json" ] && [ -f "$m/weights.safetensors" ] || die "$m is not a model folder (model.json + weights.safetensors)"; done
[ -d data/fashion-mnist ] || die "no data set at $REPO_ROOT/data/fashion-mnist"
work=run/bench-compare
mkdir -p "$work"
json="${json:-$REPO_ROOT/$work/results.json}"
ensure_onnx_venv
ensure_built
training=()
if [[ ",$precisions," == *,int8,* ]]; then ensure_training_set; training=(--training-set "$TRAINING_SET"); fi

: > "$work/export.log"
args=() skipped=()
for m in "${models[@]}"; do
    printf '\n### %s\n' "$m" >> "$work/export.log"
    if "$ONNX_PYTHON" scripts/export-onnx.py "$m" "$work/onnx/$(basename "$m")" >> "$work/export.log" 2> "$work/export.err"; then
        args+=(--model "$m")
        # An imported model: ONNX Runtime runs the very file it was imported from as the full network.
        [ ! -f "$m/model.onnx" ] || cp "$m/model.onnx" "$work/onnx/$(basename "$m")/full.onnx"
    else
        skipped+=("$(basename "$m"): $(awk 'NF { l = $0 } END { print (l == "" ? "the export failed" : l) }' "$work/export.err")")
    fi
    cat "$work/export.err" >> "$work/export.log"
done
rm -f "$work/export.err"
say "exported $(( ${#args[@]} / 2 )) of ${#models[@]} model(s) to $work/onnx"
for s in "${skipped[@]}"; do say "skipped $s (details in $work/export.log)"; done
[ "${#args[@]}" -gt 0 ] || die "no model could be exported (details in $work/export.log)"
"$ONNX_PYTHON" scripts/lib/ort_bench.py compare "${args[@]}" ${paths:+--paths "$paths"} --onnx-root "$work/onnx" --dataset data/fashion-mnist \
    --branchy "$BRANCHY_BIN/branchy" --batches "$batches" --threads "$threads" --repeats "$repeats" --seconds "$seconds" --json "$json" \
    --precisions "$precisions" "${training[@]}" | tee "$work/summary.txt"
for s in "${skipped[@]}"; do echo "skipped $s"; done | tee -a "$work/summary.txt"
say "table in $work/summary.txt, figures in $json"
