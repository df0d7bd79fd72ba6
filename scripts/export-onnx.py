#!/usr/bin/env python3
"""Exports a Branchy model to ONNX, one graph per stage plus one for the whole network,
and optionally checks ONNX Runtime's early-exit decisions against `branchy eval`.

usage: export-onnx.py MODEL_DIR OUT_DIR [--check DATASET_DIR] [--branchy BIN_DIR] [--unfolded-batchnorm]

Writes OUT_DIR/<stage>.onnx for every stage (input `input`: (N, stage input shape);
outputs `features`: the trunk's output, and `logits`: the stage exit's logits) and
OUT_DIR/full.onnx (input `image`: (N, the model's input shape); every trunk chained, outputs
`logits_<exit name>` for every exit). N is a dynamic batch dimension; opset 17.
Each operator's ONNX form is its entry in OPERATORS in scripts/lib/onnx_operators.py
(docs/operators.md lists them; `hardswish` becomes HardSwish, `relu` Relu and so on).
Residual blocks become an Add of their body and shortcut; a `branches` block an Add, Mul
(left to right) or Concat (channels) of its branches. A `sign` layer becomes
Where(x >= 0, 1, -1); a `binlinear` layer a Gemm of those signs with the weights' signs (an
exact integer), then a Mul by α (each output row's mean |weight|) and an Add of the bias,
the roundings BinaryLinear makes. A batch norm that directly
follows a convolution is folded into it, as Branchy's compiled inference does;
--unfolded-batchnorm exports it as a BatchNormalization node instead.

--check DATASET_DIR runs the stage graphs with ONNX Runtime over the IDX test set of
DATASET_DIR with the model's default thresholds and codecs, applies the early-exit rule
exactly as `branchy eval` does (a sample leaves at exit i when the natural-log entropy of
its softmax is below thresholds[i]; the last exit takes the rest; features crossing to the
next stage go through that link's codec, per sample), and compares exit and class for every sample
with `branchy eval --predictions`. Prints the number of agreements; exits 1 on any
disagreement, listing the first few with their ONNX Runtime entropies. The branchy binary
is BIN_DIR/branchy, else $BRANCHY_BIN/branchy, else built with scripts/build.sh.
Check files go to OUT_DIR/check/.

Needs numpy, onnx and onnxruntime (PyPI); run/venv, as scripts/bench-compare.sh sets it
up, is used when the running Python lacks them.
"""

import os
import sys

SCRIPTS = os.path.dirname(os.path.abspath(__file__))

sys.path.insert(0, os.path.join(SCRIPTS, "lib"))
from branchy_cli import branchy_binary, python_with_modules  # noqa: E402

python_with_modules("export-onnx", ("numpy", "onnx"))

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402

import numpy as np  # noqa: E402

import branchy_onnx as bx  # noqa: E402

BATCH = 256  # Evaluator.trace's batch size (the results do not depend on it)
SHOW = 10    # disagreements listed
# A disagreement is put down to float rounding when the quantity deciding it is this close
# to its boundary in ONNX Runtime's figures: the entropy to the threshold at the first exit
# where the two differ, or the two largest probabilities to each other.
NEAR_ENTROPY = 1e-4
NEAR_PROBABILITY = 1e-4


def die(message):
    sys.exit(f"export-onnx: {message}")


def ort_trace(model, files, images):
    """Every exit's (class, entropy, probabilities) on every image, features through the codec."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sessions = [ort.InferenceSession(files[st["name"]], options, providers=["CPUExecutionProvider"])
                for st in model.stages]
    exits = len(model.stages)
    classes = [[] for _ in range(exits)]
    entropies = [[] for _ in range(exits)]
    probabilities = [[] for _ in range(exits)]
    for start in range(0, images.shape[0], BATCH):
        features = images[start:start + BATCH]
        for i, session in enumerate(sessions):
            if i > 0:
                features = bx.codec_round_trip(features, model.link_codec(i))
            features, logits = session.run(["features", "logits"], {bx.STAGE_INPUT: features})
            cls, h, p = bx.softmax_entropy(logits)
            classes[i].append(cls)
            entropies[i].append(h)
            probabilities[i].append(p)
    return ([np.concatenate(c) for c in classes], [np.concatenate(h) for h in entropies],
            [np.concatenate(p) for p in probabilities])


def check(model, files, dataset, bin_dir, out_dir):
    work = os.path.join(out_dir, "check")
    os.makedirs(work, exist_ok=True)
    branchy = branchy_binary(bin_dir, "export-onnx")
    predictions = os.path.join(work, "branchy-predictions.jsonl")
    print(f"branchy eval --model {model.directory} --dataset {dataset}", file=sys.stderr)
    done = subprocess.run([branchy, "eval", "--model", model.directory, "--dataset", dataset,
                           "--predictions", predictions, "--json"], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        die(f"branchy eval failed (exit status {done.returncode})")
    report = json.loads(done.stdout)
    theirs = {}
    with open(predictions) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                theirs[r["sample"]] = (r["exit"], r["class"])

    images, labels = bx.load_test_set(dataset)
    classes, entropies, probabilities = ort_trace(model, files, images)
    taken = bx.take_exits(model.thresholds, entropies)
    n, exits = images.shape[0], len(model.stages)
    ours = [(int(taken[s]), int(classes[taken[s]][s])) for s in range(n)]
    with open(os.path.join(work, "ort-predictions.jsonl"), "w") as f:
        for s, (e, c) in enumerate(ours):
            f.write(json.dumps({"sample": s, "exit": e, "class": c,
                                "entropies": [float(entropies[i][s]) for i in range(exits)]}) + "\n")

    if len(theirs) != n:
        die(f"branchy eval wrote {len(theirs)} predictions for {n} samples")
    agree = sum(1 for s in range(n) if ours[s] == theirs[s])
    counts = np.bincount(taken, minlength=exits)
    right = sum(1 for s in range(n) if ours[s][1] == labels[s])
    names = [st["exit_name"] for st in model.stages]
    print(f"model {model.name}: codec {model.codec}, thresholds {model.thresholds}")
    print("ONNX Runtime exits: " + ", ".join(f"{names[i]} {counts[i]}" for i in range(exits))
          + f"; accuracy {100 * right / n:.2f}% (branchy eval: {100 * report['accuracy']:.2f}%)")
    # The entropy nearest its threshold among all those compared with one (a sample is compared
    # at every exit up to the one that takes it), in ONNX Runtime's figures.
    closest = None
    for i in range(exits - 1):
        compared = np.flatnonzero(taken >= i)
        if compared.size:
            gaps = np.abs(entropies[i][compared].astype(np.float64) - np.float32(model.thresholds[i]))
            j = int(gaps.argmin())
            if closest is None or gaps[j] < closest[0]:
                closest = (float(gaps[j]), int(compared[j]), i)
    if closest:
        _, s, i = closest
        print(f"closest call: sample {s}, entropy {entropies[i][s]:.7f} at {names[i]} against threshold "
              f"{model.thresholds[i]:g}")
    print(f"agreement with branchy eval (exit and class): {agree} of {n}")
    if agree == n:
        return True

    rounding, other = [], []
    for s in range(n):
        if ours[s] == theirs[s]:
            continue
        (oe, oc), (be, bc) = ours[s], theirs[s]
        first = min(oe, be)
        if oe != be:
            t = model.thresholds[first]
            margin = abs(float(entropies[first][s]) - t)
            why = f"entropy at {names[first]} {entropies[first][s]:.7f} vs threshold {t:g}"
            near = margin <= NEAR_ENTROPY * max(1.0, t)
        else:
            top = np.sort(probabilities[oe][s])[-2:]
            margin = float(top[1] - top[0])
            why = f"top two probabilities at {names[oe]} {top[1]:.7f} and {top[0]:.7f}"
            near = margin <= NEAR_PROBABILITY
        line = f"  sample {s}: ONNX Runtime exit {oe} class {oc}, branchy exit {be} class {bc} ({why})"
        (rounding if near else other).append(line)
    if rounding:
        print(f"{len(rounding)} disagreement(s) on a boundary (within rounding of the decision):")
        print("\n".join(rounding[:SHOW]))
    if other:
        print(f"{len(other)} disagreement(s) not explained by rounding:")
        print("\n".join(other[:SHOW]))
    return False


def main():
    parser = argparse.ArgumentParser(
        prog="export-onnx.py",
        description="Export a Branchy model to ONNX (one graph per stage and full.onnx); "
                    "optionally check ONNX Runtime's early exits against branchy eval.")
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="model folder (model.json + weights.safetensors)")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder for <stage>.onnx and full.onnx")
    parser.add_argument("--check", metavar="DATASET_DIR",
                        help="compare ONNX Runtime's exit and class on the IDX test set with branchy eval")
    parser.add_argument("--branchy", metavar="BIN_DIR",
                        help="folder of the branchy executable for --check (default: $BRANCHY_BIN, else scripts/build.sh)")
    parser.add_argument("--unfolded-batchnorm", action="store_true",
                        help="export every batch norm as a BatchNormalization node (default: fold those right after a conv)")
    args = parser.parse_args()

    model_dir, out_dir = os.path.abspath(args.model_dir), os.path.abspath(args.out_dir)
    try:
        model = bx.Model(model_dir)
    except (OSError, ValueError, KeyError, bx.ModelFormatError) as e:
        die(f"{model_dir}: {e}")
    files = bx.export(model, out_dir, fold=not args.unfolded_batchnorm)
    for name, path in files.items():
        print(f"wrote {path}", file=sys.stderr)
    if args.check:
        dataset = os.path.abspath(args.check)
        if not os.path.exists(dataset):
            die(f"no data set {dataset}")
        ok = check(model, files, dataset, args.branchy and os.path.abspath(args.branchy), out_dir)
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
