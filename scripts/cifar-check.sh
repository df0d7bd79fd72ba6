#!/usr/bin/env bash
# The CIFAR-10 path end to end, on a small synthetic set in CIFAR-10's binary
# format (the real set is in no Debian package; docs/CIFAR10.md says how to
# train on it):
#   - `branchy make-synthetic-cifar` writes data_batch_1.bin … data_batch_5.bin and
#     test_batch.bin, whole 3,073-byte records
#   - `branchy train --spec scripts/lib/cifar-tiny.json` (three stages on 3×32×32
#     inputs: conv, pool, relu, batchnorm, linear) trains on the directory, told
#     to be CIFAR-10 by its file names, and writes a card with a test section
#   - `branchy eval` on the directory and on test_batch.bin gives the same answers,
#     well above chance
#   - `branchy calibrate` chooses thresholds on the held-out training samples
#   - a model for 1×28×28 images refuses the set, in `branchy eval` and in
#     `branchy-device`, naming both shapes
#   - the trained model as a cluster (device, edge, cloud over TLS on loopback):
#     every test sample answered, some at each exit, the same answers as `branchy eval`
#
# usage: scripts/cifar-check.sh [--train N] [--test M] [--epochs E]
# Prints `ok - NAME` or `not ok - NAME: why` per check, then `N passed, M failed`;
# exits 1 if any check failed. Details go to run/cifar-check/ (cifar-check.log,
# the data set, the model, outputs). Environment: BRANCHY_BIN (folder of already
# built executables: skips the build).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() { echo "usage: $(basename "$0") [--train N] [--test M] [--epochs E]   (defaults 2000, 500, 3)"; }
train=2000
test=500
epochs=3
while [ "$#" -gt 0 ]; do
    case "$1" in
        --train) train="${2:?}"; shift 2 ;;
        --test) test="${2:?}"; shift 2 ;;
        --epochs) epochs="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

cd "$REPO_ROOT"
ensure_packages openssl:openssl python3:python3
ensure_built
bin="$BRANCHY_BIN"

work="$REPO_ROOT/run/cifar-check"
log="$work/cifar-check.log"
data="$work/synthetic"
model="$work/model"
topology="$work/cifar-tiny.yaml"
helper=(python3 scripts/lib/e2e.py)
rm -rf "$work"
mkdir -p "$work"
passed=0
failed=0

cleanup() { scripts/cluster.sh down "$topology" >>"$log" 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The trained model as device, edge and cloud over int8 links. The thresholds send a share of the
# samples to each tier (the model's own defaults let the device answer nearly all of them).
thresholds=0.3,0.5
cat > "$topology" <<YAML
model: model
dataset: synthetic
certs: certs
nodes:
  - name: device
    role: device
    stages: [device]
    thresholds: [0.3]
    upstream: edge
    codec: int8

  - name: edge
    role: edge
    stages: [edge]
    thresholds: [0.5]
    listen: 127.0.0.1:7491
    upstream: cloud
    codec: int8

  - name: cloud
    role: cloud
    stages: [cloud]
    listen: 127.0.0.1:7492
YAML

# accuracy_of FILE: the overall accuracy (percent) of a `branchy eval` table.
accuracy_of() { sed -nE 's/^overall accuracy ([0-9.]+)%.*/\1/p' "$1"; }

check_make() {
    "$bin/branchy" make-synthetic-cifar --out "$data" --train "$train" --test "$test" --seed 7 > "$work/make.out" \
        || { echo "branchy make-synthetic-cifar failed"; return 1; }
    local f total=0 size
    for f in "$data"/data_batch_*.bin "$data/test_batch.bin"; do
        size="$(stat -c %s "$f")"
        [ $((size % 3073)) -eq 0 ] || { echo "$f: $size bytes, not whole 3073-byte records"; return 1; }
        [ "$f" = "$data/test_batch.bin" ] || total=$((total + size / 3073))
    done
    [ "$total" -eq "$train" ] || { echo "the training batches hold $total records, not $train"; return 1; }
    [ "$(stat -c %s "$data/test_batch.bin")" -eq $((test * 3073)) ] || { echo "test_batch.bin does not hold $test records"; return 1; }
}

check_train() {
    [ -f "$data/test_batch.bin" ] || { echo "no data set"; return 1; }
    "$bin/branchy" train --spec scripts/lib/cifar-tiny.json --data "$data" --out "$model" \
        --epochs "$epochs" --batch 32 --lr 0.003 --validation 200 --seed 1 > "$work/train.out" 2> "$work/train.err" \
        || { echo "branchy train failed: $(tail -n 1 "$work/train.err")"; return 1; }
    grep -q "3×32×32 images from $data (CIFAR-10 binary)" "$work/train.err" \
        || { echo "branchy train did not say it read 3×32×32 CIFAR-10 images"; return 1; }
    grep -q "^## Test set (\`$data\`, $test images" "$model/MODEL_CARD.md" \
        || { echo "the model card has no test section on $data"; return 1; }
}

check_eval() {
    [ -f "$model/model.json" ] || { echo "no trained model"; return 1; }
    "$bin/branchy" eval --model "$model" --dataset "$data" --predictions "$work/eval-dir.jsonl" > "$work/eval-dir.out" 2>&1 \
        || { echo "branchy eval failed: $(tail -n 1 "$work/eval-dir.out")"; return 1; }
    "$bin/branchy" eval --model "$model" --dataset "$data/test_batch.bin" --predictions "$work/eval-file.jsonl" > "$work/eval-file.out" 2>&1 \
        || { echo "branchy eval on test_batch.bin failed: $(tail -n 1 "$work/eval-file.out")"; return 1; }
    cmp -s "$work/eval-dir.jsonl" "$work/eval-file.jsonl" || { echo "the directory and test_batch.bin give different answers"; return 1; }
    local accuracy
    accuracy="$(accuracy_of "$work/eval-dir.out")"
    echo "accuracy $accuracy%" >&2
    awk -v a="$accuracy" 'BEGIN { exit !(a >= 80) }' || { echo "accuracy $accuracy% on the synthetic test set, expected at least 80%"; return 1; }
}

check_calibrate() {
    [ -f "$model/model.json" ] || { echo "no trained model"; return 1; }
    "$bin/branchy" calibrate --model "$model" --data "$data" --validation 200 --seed 1 --max-accuracy-drop 1 \
        > "$work/calibrate.out" 2> "$work/calibrate.err" || { echo "branchy calibrate failed: $(tail -n 1 "$work/calibrate.err")"; return 1; }
    grep -q "calibrating on 200 held-out training samples" "$work/calibrate.err" || { echo "calibrate did not use the 200 held-out samples"; return 1; }
    grep -q "^chosen for max accuracy drop 1.0 points" "$work/calibrate.out" || { echo "calibrate chose no thresholds"; return 1; }
}

check_shape_refused() {
    local want="images are 3×32×32 but the model expects [1, 28, 28]" status=0
    "$bin/branchy" eval --model models/b-lenet3 --dataset "$data" > "$work/refuse-eval.out" 2>&1 || status=$?
    [ "$status" -ne 0 ] || { echo "branchy eval ran b-lenet3 on 3×32×32 images"; return 1; }
    grep -qF "$data: $want" "$work/refuse-eval.out" || { echo "branchy eval said: $(tail -n 1 "$work/refuse-eval.out")"; return 1; }
    # The device checks the shape before it dials anyone: a topology of b-lenet3 whose edge does not run.
    sed -e "s|^model: model|model: $REPO_ROOT/models/b-lenet3|" "$topology" > "$work/b-lenet3.yaml"
    scripts/gen-certs.sh "$topology" >&2
    status=0
    timeout 60 "$bin/branchy-device" --topology "$work/b-lenet3.yaml" --node device --dataset "$data" > "$work/refuse-device.out" 2>&1 || status=$?
    [ "$status" -ne 0 ] || { echo "branchy-device ran b-lenet3 on 3×32×32 images"; return 1; }
    grep -qF "$data: $want" "$work/refuse-device.out" || { echo "branchy-device said: $(tail -n 1 "$work/refuse-device.out")"; return 1; }
}

check_cluster() {
    [ -f "$model/model.json" ] || { echo "no trained model"; return 1; }
    scripts/cluster.sh up "$topology" >&2 || { echo "the cluster did not start (logs in run/cifar-tiny/)"; return 1; }
    local status=0
    timeout 300 "$bin/branchy-device" --topology "$topology" --node device --report "$work/device.json" \
        --predictions "$work/device.jsonl" > "$work/device.out" 2> "$work/device.err" || status=$?
    scripts/cluster.sh down "$topology" >&2
    [ "$status" -eq 0 ] || { echo "branchy-device exited $status: $(tail -n 1 "$work/device.err")"; return 1; }
    cat "$work/device.out" >&2
    "${helper[@]}" report "$work/device.json" "$test" "$work/device.jsonl" || return 1
    python3 - "$work/device.json" <<'PY' || return 1
import json, sys
exits = json.load(open(sys.argv[1]))["exits"]
idle = [e["name"] for e in exits if e["count"] == 0]
if idle: print(f"no sample left at {', '.join(idle)}: the links were not exercised"); sys.exit(1)
PY
    "$bin/branchy" eval --model "$model" --dataset "$data" --topology "$topology" --predictions "$work/eval-topology.jsonl" > "$work/eval-topology.out" 2>&1 \
        || { echo "branchy eval --topology failed: $(tail -n 1 "$work/eval-topology.out")"; return 1; }
    "${helper[@]}" same-predictions "$work/device.jsonl" "$work/eval-topology.jsonl" "$work/device.json"
}

# The paper's networks (b-alexnet, b-resnet110): a few training steps on the synthetic set,
# saved and loaded, then run as a three-node cluster on the first $ARCH_SAMPLES test samples,
# whose answers must equal branchy eval's on the same topology.
ARCH_SAMPLES=200
check_arch() {
    local arch="$1" port="$2" dir="$work/$1" topo="$work/$1.yaml" status=0
    [ -f "$data/test_batch.bin" ] || { echo "no data set"; return 1; }
    "$bin/branchy" train --arch "$arch" --data "$data" --out "$dir" --limit 300 --epochs 1 --batch 32 --validation 100 --seed 1 \
        > "$work/$arch-train.out" 2> "$work/$arch-train.err" || { echo "branchy train --arch $arch failed: $(tail -n 1 "$work/$arch-train.err")"; return 1; }
    grep -h "^training time\|s/epoch\|seconds" "$work/$arch-train.err" | tail -n 2 >&2 || true
    sed -e "s|^model: model|model: $arch|" -e "s|^certs: certs|certs: certs-$arch|" -e "/thresholds:/d" \
        -e "s|127.0.0.1:7491|127.0.0.1:$port|" -e "s|127.0.0.1:7492|127.0.0.1:$((port + 1))|" "$topology" > "$topo"
    scripts/gen-certs.sh "$topo" >&2
    scripts/cluster.sh up "$topo" >&2 || { echo "the $arch cluster did not start (logs in run/$arch/)"; return 1; }
    timeout 600 "$bin/branchy-device" --topology "$topo" --node device --limit "$ARCH_SAMPLES" --report "$work/$arch-device.json" \
        --predictions "$work/$arch-device.jsonl" > "$work/$arch-device.out" 2> "$work/$arch-device.err" || status=$?
    scripts/cluster.sh down "$topo" >&2
    [ "$status" -eq 0 ] || { echo "branchy-device exited $status: $(tail -n 1 "$work/$arch-device.err")"; return 1; }
    cat "$work/$arch-device.out" >&2
    "${helper[@]}" report "$work/$arch-device.json" "$ARCH_SAMPLES" "$work/$arch-device.jsonl" || return 1
    "$bin/branchy" eval --model "$dir" --dataset "$data" --topology "$topo" --limit "$ARCH_SAMPLES" \
        --predictions "$work/$arch-eval.jsonl" > "$work/$arch-eval.out" 2>&1 \
        || { echo "branchy eval --topology failed: $(tail -n 1 "$work/$arch-eval.out")"; return 1; }
    "${helper[@]}" same-predictions "$work/$arch-device.jsonl" "$work/$arch-eval.jsonl" "$work/$arch-device.json"
}
check_alexnet() { check_arch b-alexnet 7493; }
check_resnet() { check_arch b-resnet110 7495; }

check "branchy make-synthetic-cifar writes $train training and $test test records" check_make
check "branchy train reads the directory as CIFAR-10 and trains a 3×32×32 model" check_train
check "branchy eval: directory and test_batch.bin agree, accuracy at least 80%" check_eval
check "branchy calibrate on the held-out training samples" check_calibrate
check "a 1×28×28 model refuses the set in branchy eval and branchy-device" check_shape_refused
check "the trained model as a cluster: every test sample answered, some at each exit, same answers as branchy eval" check_cluster
check "b-alexnet: trained a few steps, saved, loaded, as a cluster the same answers as branchy eval" check_alexnet
check "b-resnet110: trained a few steps, saved, loaded, as a cluster the same answers as branchy eval" check_resnet

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
