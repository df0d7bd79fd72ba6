#!/usr/bin/env bash
# ONNX import end to end. Every supported operator form against ONNX Runtime, every refusal and the
# export round trip through scripts/export-onnx.py and `branchy export-onnx` (scripts/import-check.py);
# `branchy export-onnx` writes the graphs of scripts/export-onnx.py byte for byte (every shipped model,
# whole and per stage, batch norms folded and not), and ONNX Runtime on its file of models/mobilenet-exits,
# models/resnet-exits, models/b-resnet3 (folded batch norms) and models/b-lenet3-bin (sign and binary
# layers) decides exit and class as `branchy eval` does on every test sample over float32 links
# (scripts/onnx-agreement.py, the largest logit difference reported); the shipped imported models (models/mobilenet-exits,
# models/resnet-exits, exported from PyTorch by examples/pytorch/): re-importing each model.onnx gives
# the committed model.json and weights byte for byte, and `branchy eval` agrees with ONNX Runtime on the
# same file on every test sample, exits forced or not, over float32 links (scripts/onnx-agreement.py;
# int8 links reported); the default (dynamo) exporter's files of the same networks, weights in an
# external data file, import and agree too; the MobileNet-style model as a device/edge/cloud cluster
# over float32 links gives the answers of `branchy eval` on all 10,000 test samples; exits added to the
# classifier-only export (`--add-exit`, heads trained on the frozen network) and calibrated on held-out
# samples send at least half the test samples out at the first exit; the test set as .npz and .npy arrays
# gives the same predictions as its IDX files, so do 2,000 of its images as PNG files in class folders,
# and as JPEG files nearly the same accuracy; a model imported with a resize, centre crop, BGR order, mean
# and standard deviation prepares PNG files of mixed sizes as ONNX Runtime's Resize and numpy do, to 1e-4 in
# every logit (scripts/preprocess-check.py), and bad inputs are named. Prints `ok`/`not
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
# check_export_same: `branchy export-onnx` (with --stages) writes scripts/export-onnx.py's full.onnx and
# <stage>.onnx byte for byte, for every shipped model, batch norms folded and not.
check_export_same() {
    local d m flag dir f n=0 models=0
    for d in models/*/; do
        m="$(basename "$d")"
        [ -f "models/$m/model.json" ] || continue
        models=$((models + 1))
        for flag in "" --unfolded-batchnorm; do
            dir="$work/export-same/$m${flag:+-unfolded}"
            mkdir -p "$dir"
            "$ONNX_PYTHON" scripts/export-onnx.py "models/$m" "$dir/script" $flag > "$dir.script.out" 2>&1 \
                || { echo "scripts/export-onnx.py models/$m $flag failed: $(tail -n 1 "$dir.script.out")"; return 1; }
            "$bin/branchy" export-onnx --model "models/$m" --output "$dir/full.onnx" --stages "$dir" $flag > "$dir.out" 2>&1 \
                || { echo "branchy export-onnx --model models/$m $flag failed: $(tail -n 1 "$dir.out")"; return 1; }
            for f in "$dir/script"/*.onnx; do
                cmp -s "$f" "$dir/$(basename "$f")" \
                    || { echo "models/$m${flag:+ ($flag)}: branchy export-onnx's $(basename "$f") differs from scripts/export-onnx.py's"; return 1; }
                n=$((n + 1))
            done
        done
    done
    figure "$n graphs of $models models identical"
}
# check_export: ONNX Runtime on `branchy export-onnx`'s file of each model against branchy eval (agree).
check_export() {
    local m file
    for m in mobilenet-exits resnet-exits b-resnet3 b-lenet3-bin; do
        file="${work#"$REPO_ROOT"/}/$m-export.onnx"
        "$bin/branchy" export-onnx --model "models/$m" --output "$file" > "$work/$m-export.out" 2>&1 \
            || { echo "branchy export-onnx --model models/$m failed: $(tail -n 1 "$work/$m-export.out")"; return 1; }
        agree "$file" "models/$m" "$m-export" || return 1
    done
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

check_preprocessing() {   # the card's resize, crop, channel order, mean and std against ONNX Runtime doing the same
    "$ONNX_PYTHON" scripts/preprocess-check.py "$work/preprocess" "$bin" > "$work/preprocess.out" 2>&1 || { tail -n 1 "$work/preprocess.out"; return 1; }
    figure "$(tail -n 1 "$work/preprocess.out")"
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

check_array_formats() {   # the test set as .npz (deflated, bytes), .npz with named keys (floats, NCHW) and a .npy pair
    "$ONNX_PYTHON" - "$work/arrays" <<'PY' >&2 || { echo "could not write the arrays"; return 1; }
import gzip, os, struct, sys
import numpy as np
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = struct.unpack(">I", data[:4])[0] & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data[4 + 4 * dims:], dtype=np.uint8).reshape(shape)
x, y = idx("data/fashion-mnist/t10k-images-idx3-ubyte.gz"), idx("data/fashion-mnist/t10k-labels-idx1-ubyte.gz")
np.savez_compressed(f"{out}/test.npz", x=x, y=y)
np.savez(f"{out}/named.npz", images=(x[:, None].astype(np.float32) / np.float32(255)), labels=y.astype(np.int64))
np.save(f"{out}/x.npy", x[..., None])   # (N, H, W, 1): channels last
np.save(f"{out}/y.npy", y)
PY
    local f reference="$work/arrays/idx.jsonl"
    "$bin/branchy" eval --model models/mobilenet-exits --predictions "$reference" > /dev/null 2>&1 || { echo "branchy eval on IDX failed"; return 1; }
    for f in "$work/arrays/test.npz" "$work/arrays/named.npz:images,labels" "$work/arrays/x.npy,$work/arrays/y.npy"; do
        "$bin/branchy" eval --model models/mobilenet-exits --dataset "$f" --predictions "$work/arrays/this.jsonl" > "$work/arrays/this.out" 2>&1 \
            || { echo "branchy eval --dataset $f failed: $(tail -n 1 "$work/arrays/this.out")"; return 1; }
        cmp -s "$reference" "$work/arrays/this.jsonl" || { echo "--dataset $f gives other predictions than the IDX files"; return 1; }
    done
    figure "10000 samples, identical predictions and entropies from IDX, .npz (deflated bytes; named float keys) and a .npy pair (channels last)"
}

check_image_folder() {   # 2,000 test images as PNG (lossless: the IDX predictions) and as JPEG (lossy: close accuracy)
    [ -e /usr/lib/x86_64-linux-gnu/libturbojpeg.so.0 ] || ldconfig -p | grep -q libturbojpeg.so.0 || apt_install libturbojpeg0
    command -v cjpeg >/dev/null 2>&1 || apt_install libjpeg-turbo-progs
    "$ONNX_PYTHON" - "$work/folders" <<'PY' >&2 || { echo "could not write the image folders"; return 1; }
import gzip, os, struct, subprocess, sys, zlib
import numpy as np
out = sys.argv[1]
def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = struct.unpack(">I", data[:4])[0] & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data[4 + 4 * dims:], dtype=np.uint8).reshape(shape)
def png(path, img):
    raw = b"".join(b"\0" + img[r].tobytes() for r in range(img.shape[0]))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", img.shape[1], img.shape[0], 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
x, y = idx("data/fashion-mnist/t10k-images-idx3-ubyte.gz")[:2000], idx("data/fashion-mnist/t10k-labels-idx1-ubyte.gz")[:2000]
for kind in ("png", "jpeg"):
    for c in range(10):
        os.makedirs(f"{out}/{kind}/{c}", exist_ok=True)
for i, (img, label) in enumerate(zip(x, y)):
    png(f"{out}/png/{label}/{i:05d}.png", img)
    pgm = f"P5 28 28 255\n".encode() + img.tobytes()
    with open(f"{out}/jpeg/{label}/{i:05d}.jpg", "wb") as f:
        f.write(subprocess.run(["cjpeg", "-quality", "95", "-grayscale"], input=pgm, capture_output=True, check=True).stdout)
# The folders' sample order: by class, then by file name.
np.save(f"{out}/order.npy", np.array(sorted(range(len(y)), key=lambda i: (y[i], i)), dtype=np.int64))
PY
    "$bin/branchy" eval --model models/mobilenet-exits --limit 2000 --predictions "$work/folders/idx.jsonl" > /dev/null 2>&1 || { echo "branchy eval on IDX failed"; return 1; }
    local kind
    for kind in png jpeg; do
        "$bin/branchy" eval --model models/mobilenet-exits --dataset "$work/folders/$kind" --json --predictions "$work/folders/$kind.jsonl" \
            > "$work/folders/$kind.json" 2> "$work/folders/$kind.err" || { echo "branchy eval on the $kind folder failed: $(tail -n 1 "$work/folders/$kind.err")"; return 1; }
    done
    "$ONNX_PYTHON" - "$work/folders" <<'PY' > "$work/folders/summary.txt" || { tail -n 1 "$work/folders/summary.txt"; return 1; }
import json, sys
import numpy as np
d = sys.argv[1]
order = np.load(f"{d}/order.npy")
idx = [json.loads(l) for l in open(f"{d}/idx.jsonl")]
png = [json.loads(l) for l in open(f"{d}/png.jsonl")]
same = sum((p["exit"], p["class"]) == (idx[o]["exit"], idx[o]["class"]) for p, o in zip(png, order))
jpeg, png_report = json.load(open(f"{d}/jpeg.json")), json.load(open(f"{d}/png.json"))
print(f"PNG: {same} of {len(png)} samples as from the IDX files; JPEG (quality 95): accuracy {100 * jpeg['accuracy']:.2f}% against {100 * png_report['accuracy']:.2f}%")
sys.exit(same != len(png) or len(png) != 2000 or abs(jpeg["accuracy"] - png_report["accuracy"]) > 0.02)
PY
    figure "$(cat "$work/folders/summary.txt")"
}

run_check "every supported operator form agrees with ONNX Runtime; bad files refused; export round trip" check_operators
run_check "re-importing the shipped ONNX files gives the committed models" check_reimport
run_check "branchy eval agrees with ONNX Runtime on every test sample (TorchScript exports)" check_agreement
run_check "branchy export-onnx writes the graphs of scripts/export-onnx.py byte for byte" check_export_same
run_check "ONNX Runtime on branchy export-onnx's file decides as branchy eval on every test sample" check_export
run_check "the default exporter's files (external data) import and agree" check_dynamo
run_check "the imported model as a three-node cluster gives the answers of branchy eval" check_cluster
run_check "the test set as NumPy arrays gives the predictions of its IDX files" check_array_formats
run_check "image folders of PNG and JPEG files read through libpng and libjpeg-turbo" check_image_folder
run_check "recorded preprocessing (resize, crop, BGR, mean, std) gives ONNX Runtime's logits on PNG files of mixed sizes" check_preprocessing
run_check "exits added to the classifier-only export: at least half the test samples leave at the first" check_add_exit
summary
