#!/usr/bin/env bash
# ONNX import end to end. Every supported operator form against ONNX Runtime, every refusal and the
# export round trip (scripts/import-check.py); the shipped imported models (models/mobilenet-exits,
# models/resnet-exits, exported from PyTorch by examples/pytorch/): re-importing each model.onnx gives
# the committed model.json and weights byte for byte, and `branchy eval` agrees with ONNX Runtime on the
# same file on every test sample, exits forced or not, over float32 links (scripts/onnx-agreement.py;
# int8 links reported); the default (dynamo) exporter's files of the same networks, weights in an
# external data file, import and agree too; the MobileNet-style model as a device/edge/cloud cluster
# over float32 links gives the answers of `branchy eval` on all 10,000 test samples; exits added to the
# classifier-only export (`--add-exit`, heads trained on the frozen network) and calibrated on held-out
# samples send at least half the test samples out at the first exit. Prints `ok`/`not
# ok` lines and `N passed, M failed`; details in run/import-check/. Environment: BRANCHY_BIN.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
no_args "checks ONNX import against ONNX Runtime, the shipped imported models and their cluster" "$@"

cd "$REPO_ROOT"
ensure_packages openssl:openssl python3:python3
ensure_built
ensure_onnx_venv
bin="$BRANCHY_BIN"
work="$REPO_ROOT/run/import-check"
log="$work/import-check.log"
TOPOLOGY=topology/mobilenet-exits.yaml
rm -rf "$work"
mkdir -p "$work"
trap 'scripts/cluster.sh down "$work/float32.yaml" >>"$log" 2>&1 || true' EXIT

check_operators() {
    "$ONNX_PYTHON" scripts/import-check.py --branchy "$bin" --work "$work/operators" > "$work/operators.out" 2>&1 \
        || { grep -m 3 '^FAIL' "$work/operators.out" >&2; tail -n 1 "$work/operators.out"; return 1; }
    figure "$(tail -n 1 "$work/operators.out")"
}
# reimport NAME: models/NAME/model.onnx imported again gives the committed weights, byte for byte, and
# description (its defaults aside, which `branchy calibrate --write` chose).
reimport() {
    "$bin/branchy" import "models/$1/model.onnx" --output "$work/$1" > "$work/$1-import.out" 2>&1 \
        || { echo "branchy import models/$1/model.onnx failed: $(tail -n 1 "$work/$1-import.out")"; return 1; }
    cmp -s "$work/$1/weights.safetensors" "models/$1/weights.safetensors" || { echo "re-importing $1 gives other weights"; return 1; }
    python3 - "$work/$1/model.json" "models/$1/model.json" <<'PY' || { echo "re-importing $1 gives another description"; return 1; }
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
a.pop("defaults", None), b.pop("defaults", None)
sys.exit(a != b)
PY
}
check_reimport() { reimport mobilenet-exits && reimport resnet-exits; }
# agree ONNX MODEL_DIR LABEL: onnx-agreement.py on all test samples.
agree() {
    "$ONNX_PYTHON" scripts/onnx-agreement.py "$1" "$2" --branchy "$bin" --work "$work/agree-$3" > "$work/agree-$3.out" 2>&1 \
        || { grep -m 3 -i 'disagree\|error' "$work/agree-$3.out" >&2; echo "$3: $(tail -n 1 "$work/agree-$3.out")"; return 1; }
    figure "$(grep -m 1 '^onnx-agreement:' "$work/agree-$3.out" | sed 's/^onnx-agreement: //')"
}
check_agreement() {
    agree models/mobilenet-exits/model.onnx models/mobilenet-exits mobilenet && agree models/resnet-exits/model.onnx models/resnet-exits resnet
}
check_dynamo() {
    local m
    for m in mobilenet-exits resnet-exits; do
        "$bin/branchy" import "examples/pytorch/onnx/$m-dynamo/model.onnx" --output "$work/$m-dynamo" > "$work/$m-dynamo.out" 2>&1 \
            || { echo "branchy import of the dynamo export of $m failed: $(tail -n 1 "$work/$m-dynamo.out")"; return 1; }
        agree "examples/pytorch/onnx/$m-dynamo/model.onnx" "$work/$m-dynamo" "$m-dynamo" || return 1
    done
}
check_cluster() {   # the imported model over float32 links decides as branchy eval, which agrees with ONNX Runtime
    topology_with "$TOPOLOGY" "$work/float32.yaml" "certs=$work/certs" device.codec=float32 edge.codec=float32 || return 1
    scripts/gen-certs.sh "$work/float32.yaml" >&2 || return 1
    cluster up "$work/float32.yaml" || return 1
    run_device "$work/float32.yaml" device "$work/cluster" || return 1
    cluster down "$work/float32.yaml"
    same_as_eval "$work/float32.yaml" "$work/cluster" || return 1
    figure "$(wc -l < "$work/cluster.jsonl") samples"
}

check_add_exit() {   # heads trained on the frozen classifier, thresholds from held-out samples it never saw
    ensure_training_set
    "$ONNX_PYTHON" examples/pytorch/common.py --write-held-out "$work/held-out" >&2 || { echo "could not write the held-out samples"; return 1; }
    "$bin/branchy" import examples/pytorch/onnx/mobilenet-final-only.onnx --output "$work/added" \
        --add-exit /model/device/device.5/Add_output_0,/model/edge/edge.1/Add_output_0 --train "$TRAINING_SET" --train-limit 55000 \
        > "$work/added.out" 2>&1 || { echo "branchy import --add-exit failed: $(tail -n 1 "$work/added.out")"; return 1; }
    "$bin/branchy" calibrate --model "$work/added" --held-out "$work/held-out/heldout-images-idx3-ubyte.gz" --max-accuracy-drop 1 --write \
        > "$work/added-calibrate.out" 2>&1 || { echo "branchy calibrate failed: $(tail -n 1 "$work/added-calibrate.out")"; return 1; }
    "$bin/branchy" eval --model "$work/added" --json > "$work/added-eval.json" 2>/dev/null || { echo "branchy eval failed"; return 1; }
    python3 - "$work/added-eval.json" <<'PY' > "$work/added-eval.txt" || { echo "fewer than half the test samples left at the first exit"; return 1; }
import json, sys
r = json.load(open(sys.argv[1]))
first = r["exits"][0]["fraction"]
print(f"test set: {100 * first:.1f}% at the first exit, {100 * r['accuracy']:.2f}% accuracy, final exit alone {100 * r['finalOnlyAccuracy']:.2f}%")
sys.exit(first < 0.5)
PY
    figure "$(grep -h '^exit ' "$work/added.out" | paste -sd ';' -)"
    figure "$(grep -m 1 '^chosen' "$work/added-calibrate.out")"
    figure "$(cat "$work/added-eval.txt")"
}

run_check "every supported operator form agrees with ONNX Runtime; bad files refused; export round trip" check_operators
run_check "re-importing the shipped ONNX files gives the committed models" check_reimport
run_check "branchy eval agrees with ONNX Runtime on every test sample (TorchScript exports)" check_agreement
run_check "the default exporter's files (external data) import and agree" check_dynamo
run_check "the imported model as a three-node cluster gives the answers of branchy eval" check_cluster
run_check "exits added to the classifier-only export: at least half the test samples leave at the first" check_add_exit
summary
