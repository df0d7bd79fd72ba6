#!/usr/bin/env bash
# The CIFAR-10 path end to end on a small synthetic set in CIFAR-10's binary format (the real set is
# in no Debian package; docs/CIFAR10.md): `branchy make-synthetic-cifar` writes whole 3,073-byte
# records; `branchy train --spec scripts/lib/cifar-tiny.json` trains a 3×32×32 model on it; `branchy
# eval` on the folder and on test_batch.bin agree, well above chance; `branchy calibrate` uses the
# held-out samples; a 1×28×28 model refuses the set (eval and device) naming both shapes; the model
# runs as a device/edge/cloud cluster with some samples at each exit and the answers of `branchy
# eval`; so do b-alexnet and b-resnet110 after a few training steps. Prints `ok`/`not ok` lines and
# `N passed, M failed`; details in run/cifar-check/. Environment: BRANCHY_BIN.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() { echo "usage: $(basename "$0") [--train N] [--test M] [--epochs E]   (defaults 2000, 500, 3)"; }
train=2000 test=500 epochs=3
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
data="$work/synthetic" model="$work/model" topology="$work/cifar-tiny.yaml"
rm -rf "$work"
mkdir -p "$work"
trap 'scripts/cluster.sh down "$topology" >>"$log" 2>&1 || true' EXIT

# The trained model as device, edge and cloud over int8 links; the thresholds send a share of the
# samples to each tier (the model's own defaults let the device answer nearly all of them).
cat > "$topology" <<YAML
model: model
dataset: synthetic
certs: certs
nodes:
  - {name: device, role: device, stages: [device], thresholds: [0.3], upstream: edge, codec: int8}
  - {name: edge, role: edge, stages: [edge], thresholds: [0.5], listen: "127.0.0.1:7491", upstream: cloud, codec: int8}
  - {name: cloud, role: cloud, stages: [cloud], listen: "127.0.0.1:7492"}
YAML

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
    grep -q "3×32×32 images from $data (CIFAR-10 binary)" "$work/train.err" || { echo "branchy train did not say it read 3×32×32 CIFAR-10 images"; return 1; }
    grep -q "^## Test set (\`$data\`, $test images" "$model/MODEL_CARD.md" || { echo "the model card has no test section on $data"; return 1; }
}
check_eval() {
    [ -f "$model/model.json" ] || { echo "no trained model"; return 1; }
    local f accuracy
    for f in "$data" "$data/test_batch.bin"; do
        "$bin/branchy" eval --model "$model" --dataset "$f" --predictions "$work/eval-${f##*/}.jsonl" > "$work/eval-${f##*/}.out" 2>&1 \
            || { echo "branchy eval on $f failed: $(tail -n 1 "$work/eval-${f##*/}.out")"; return 1; }
    done
    cmp -s "$work/eval-synthetic.jsonl" "$work/eval-test_batch.bin.jsonl" || { echo "the directory and test_batch.bin give different answers"; return 1; }
    accuracy="$(sed -nE 's/^overall accuracy ([0-9.]+)%.*/\1/p' "$work/eval-synthetic.out")"
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
    local want="$data: images have 3 channels but the model takes 1"
    ! "$bin/branchy" eval --model models/b-lenet3 --dataset "$data" > "$work/refuse-eval.out" 2>&1 || { echo "branchy eval ran b-lenet3 on 3×32×32 images"; return 1; }
    grep -qF "$want" "$work/refuse-eval.out" || { echo "branchy eval said: $(tail -n 1 "$work/refuse-eval.out")"; return 1; }
    # The device checks the shape before it dials anyone: a topology of b-lenet3 whose edge does not run.
    topology_with "$topology" "$work/b-lenet3.yaml" "model=$REPO_ROOT/models/b-lenet3" && scripts/gen-certs.sh "$topology" >&2 || return 1
    ! timeout 60 "$bin/branchy-device" --topology "$work/b-lenet3.yaml" --node device --dataset "$data" > "$work/refuse-device.out" 2>&1 \
        || { echo "branchy-device ran b-lenet3 on 3×32×32 images"; return 1; }
    grep -qF "$want" "$work/refuse-device.out" || { echo "branchy-device said: $(tail -n 1 "$work/refuse-device.out")"; return 1; }
}
# on_cluster TOPOLOGY PREFIX SAMPLES [DEVICE OPTIONS]: every sample answered through the cluster, and
# the answers of `branchy eval` on the same topology.
on_cluster() {
    cluster up "$1" || return 1
    local why=""
    why="$(run_device "$1" device "$2" "${@:4}")" || true
    cluster down "$1"
    [ -z "$why" ] || { echo "$why"; return 1; }
    cat "$2.out" >&2
    "${PY[@]}" report "$2.json" "$3" "$2.jsonl" && { [ "$1" != "$topology" ] || "${PY[@]}" every-exit "$2.json" "no sample left at"; } \
        && same_as_eval "$1" "$2" --dataset "$data" "${@:4}"
}
check_cluster() {
    [ -f "$model/model.json" ] || { echo "no trained model"; return 1; }
    DEVICE_TIMEOUT=300 on_cluster "$topology" "$work/device" "$test"
}
# The paper's networks: a few training steps on the synthetic set, saved and loaded, then a cluster
# on the first ARCH_SAMPLES test samples whose answers equal branchy eval's on the same topology.
ARCH_SAMPLES=200
check_arch() {
    local arch="$1" port="$2"
    [ -f "$data/test_batch.bin" ] || { echo "no data set"; return 1; }
    "$bin/branchy" train --arch "$arch" --data "$data" --out "$work/$arch" --limit 300 --epochs 1 --batch 32 --validation 100 --seed 1 \
        > "$work/$arch-train.out" 2> "$work/$arch-train.err" || { echo "branchy train --arch $arch failed: $(tail -n 1 "$work/$arch-train.err")"; return 1; }
    topology_with "$topology" "$work/$arch.yaml" "model=$work/$arch" "certs=$work/certs-$arch" device.thresholds= edge.thresholds= \
        "edge.listen=127.0.0.1:$port" "cloud.listen=127.0.0.1:$((port + 1))" || return 1
    DEVICE_TIMEOUT=600 on_cluster "$work/$arch.yaml" "$work/$arch-device" "$ARCH_SAMPLES" --limit "$ARCH_SAMPLES"
}
check_alexnet() { check_arch b-alexnet 7493; }
check_resnet() { check_arch b-resnet110 7495; }

run_check "branchy make-synthetic-cifar writes $train training and $test test records" check_make
run_check "branchy train reads the directory as CIFAR-10 and trains a 3×32×32 model" check_train
run_check "branchy eval: directory and test_batch.bin agree, accuracy at least 80%" check_eval
run_check "branchy calibrate on the held-out training samples" check_calibrate
run_check "a 1×28×28 model refuses the set in branchy eval and branchy-device" check_shape_refused
run_check "the trained model as a cluster: every test sample answered, some at each exit, same answers as branchy eval" check_cluster
run_check "b-alexnet: trained a few steps, saved, loaded, as a cluster the same answers as branchy eval" check_alexnet
run_check "b-resnet110: trained a few steps, saved, loaded, as a cluster the same answers as branchy eval" check_resnet
summary
