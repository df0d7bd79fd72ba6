#!/usr/bin/env bash
# Branchy's inference kernels against ONNX Runtime on the same models, and
# Branchy's GEMM against numpy's BLAS.
#
# Sets up run/venv (numpy, onnx, onnxruntime from PyPI; reused when present),
# exports every model to ONNX with scripts/export-onnx.py (a model that does not
# export is skipped: the table is followed by a `skipped MODEL: reason` line for
# it, the exporter's last message), then for each exported model,
# path (`full` and every stage), batch (1, 256) and thread count (1, 2) runs
# `branchy bench --json` and ONNX Runtime in turn, REPEATS times each, keeping
# the fastest µs/sample of each (scripts/lib/ort_bench.py does the timing; see
# there for the ORT settings). Prints a table: model, path, batch, threads,
# Branchy µs/sample, ORT µs/sample, Branchy/ORT (above 1: Branchy is slower),
# and for batches above 1 the throughput ratio Branchy/ORT (above 1: Branchy is
# faster); then GEMM 1024x1024x1024 at 2 threads, Branchy's GFLOP/s against
# numpy's. Where `branchy bench` fails (a build without it) Branchy's column
# reads "not available" and the ORT side still runs.
#
# The machine's other load shows in the figures: the summary gives the load
# average before and after the run.
#
# Output: run/bench-compare/ (the ONNX graphs under onnx/<model folder>/, the
# table in summary.txt, the figures in results.json unless --json names
# another file).
#
# Environment: BRANCHY_BIN (folder of built executables: skips the build).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() {
    cat <<EOF
usage: $(basename "$0") [--model DIR]... [--repeats N] [--threads LIST] [--json FILE]
                        [--batches LIST] [--paths LIST] [--seconds S]
  --model DIR     model folder (repeatable; default: every folder in models/)
  --repeats N     interleaved runs of each side per configuration, best kept (default 5)
  --threads LIST  comma-separated thread counts (default 1,2)
  --batches LIST  comma-separated batch sizes (default 1,256)
  --paths LIST    comma-separated paths, full or stage names (default: full and every stage)
  --seconds S     work per run and side (default 0.3)
  --json FILE     write the figures as JSON to FILE (default run/bench-compare/results.json)
EOF
}

models=()
repeats=5
threads=1,2
batches=1,256
paths=""
seconds=0.3
json=""
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --model) [ $# -ge 2 ] || die "--model needs a folder"; models+=("$(abs_path "$2")"); shift 2 ;;
        --repeats) [ $# -ge 2 ] || die "--repeats needs a number"; repeats="$2"; shift 2 ;;
        --threads) [ $# -ge 2 ] || die "--threads needs a list"; threads="$2"; shift 2 ;;
        --batches) [ $# -ge 2 ] || die "--batches needs a list"; batches="$2"; shift 2 ;;
        --paths) [ $# -ge 2 ] || die "--paths needs a list"; paths="$2"; shift 2 ;;
        --seconds) [ $# -ge 2 ] || die "--seconds needs a number"; seconds="$2"; shift 2 ;;
        --json) [ $# -ge 2 ] || die "--json needs a file"; json="$(abs_path "$2")"; shift 2 ;;
        *) usage >&2; exit 2 ;;
    esac
done
[[ "$repeats" =~ ^[1-9][0-9]*$ ]] || die "--repeats must be a positive whole number, got '$repeats'"
[[ "$threads" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--threads must be like 1,2, got '$threads'"
[[ "$batches" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--batches must be like 1,256, got '$batches'"
[[ "$seconds" =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] || die "--seconds must be a number, got '$seconds'"

cd "$REPO_ROOT"
if [ "${#models[@]}" -eq 0 ]; then
    for d in models/*/; do
        [ -f "$d/model.json" ] && models+=("$(abs_path "$d")")
    done
fi
[ "${#models[@]}" -gt 0 ] || die "no model folders"
for m in "${models[@]}"; do
    [ -f "$m/model.json" ] && [ -f "$m/weights.safetensors" ] || die "$m is not a model folder (model.json + weights.safetensors)"
done
dataset="$REPO_ROOT/data/fashion-mnist"
[ -d "$dataset" ] || die "no data set at $dataset"

work=run/bench-compare
mkdir -p "$work"
[ -n "$json" ] || json="$REPO_ROOT/$work/results.json"

# --- Python environment ------------------------------------------------------

ensure_onnx_venv
py="$ONNX_PYTHON"

# --- Branchy -----------------------------------------------------------------

ensure_built
branchy="$BRANCHY_BIN/branchy"
[ -x "$branchy" ] || die "no executable $branchy"

# --- Export ------------------------------------------------------------------

# A model that does not export is skipped, with the exporter's reason; the others run.
: > "$work/export.log"
exported=()
skipped=()
for m in "${models[@]}"; do
    printf '\n### %s\n' "$m" >> "$work/export.log"
    if "$py" scripts/export-onnx.py "$m" "$work/onnx/$(basename "$m")" >> "$work/export.log" 2> "$work/export.err"; then
        exported+=("$m")
    else
        why="$(awk 'NF { last = $0 } END { print last }' "$work/export.err")"
        skipped+=("$(basename "$m"): ${why:-the export failed}")
    fi
    cat "$work/export.err" >> "$work/export.log"
done
rm -f "$work/export.err"
say "exported ${#exported[@]} of ${#models[@]} model(s) to $work/onnx"
for s in "${skipped[@]}"; do say "skipped $s (details in $work/export.log)"; done
[ "${#exported[@]}" -gt 0 ] || die "no model could be exported (details in $work/export.log)"

# --- Timing ------------------------------------------------------------------

model_args=()
for m in "${exported[@]}"; do model_args+=(--model "$m"); done
path_args=()
[ -z "$paths" ] || path_args=(--paths "$paths")
"$py" scripts/lib/ort_bench.py compare "${model_args[@]}" "${path_args[@]}" \
    --onnx-root "$work/onnx" --dataset "$dataset" --branchy "$branchy" \
    --batches "$batches" --threads "$threads" --repeats "$repeats" --seconds "$seconds" \
    --json "$json" | tee "$work/summary.txt"
if [ "${#skipped[@]}" -gt 0 ]; then
    for s in "${skipped[@]}"; do echo "skipped $s"; done | tee -a "$work/summary.txt"
fi
say "table in $work/summary.txt, figures in $json"
