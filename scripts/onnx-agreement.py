#!/usr/bin/env python3
"""Checks a model made by `branchy import` against ONNX Runtime on the ONNX file it came from
(or a model against the file `branchy export-onnx` wrote of it): every exit's logits, and the
early exits `branchy eval` takes, per sample.

usage: onnx-agreement.py MODEL.onnx MODEL_DIR [--data DIR] [--branchy BIN_DIR] [--thresholds T1,T2]
                         [--work DIR] [--limit N]

MODEL.onnx's graph outputs are the exits' logits; MODEL_DIR is what `branchy import MODEL.onnx`
wrote, or the model `branchy export-onnx --model MODEL_DIR --output MODEL.onnx` wrote. An exit of
MODEL_DIR/model.json is matched with the output whose name, sanitised as the import does it (every
character not an ASCII letter, digit or '-' becomes '_', then leading and trailing '_' go), is the
exit's name, else `logits_<exit's name>` (the export's outputs).

1. Loads the IDX test set of DIR (data/fashion-mnist by default; pixels / 255, float32, shaped
   (N, C, H, W) as MODEL.onnx's input) and runs MODEL.onnx with ONNX Runtime (one thread,
   batches of BATCH) for every exit's logits.
2. Writes the inputs to WORK/input.npy, runs `branchy infer` on them and prints the largest
   absolute difference between Branchy's and ONNX Runtime's logits, per exit and overall.
3. For the thresholds T1,T2 (default: model.json's defaults.thresholds) and, for every exit k,
   the set that forces all samples out at k (0 at the exits before k: an entropy is never below
   0; FORCE_ACCEPT at k), runs `branchy eval --codec float32 --predictions` and applies the same
   rule to ONNX Runtime's logits, as scripts/export-onnx.py --check does (a sample leaves at the
   first exit whose natural-log softmax entropy, computed as ExitOutput does in float32, is below
   that exit's threshold; the last exit takes the rest). Prints, per set, how many samples agree
   on exit and class; lists the first few disagreements with both sides' entropies.
4. Runs `branchy eval --codec int8` with T1,T2 and prints how many samples agree with ONNX
   Runtime (whose links stay float32) on exit and class, exit alone and class alone; informational.
5. Prints the summary line `onnx-agreement: MODEL.onnx: largest |logit difference| X; ...`.

Exits 1 when a sample's exit or class differs between branchy eval and ONNX Runtime with float32
links, else 0. The branchy binary is BIN_DIR/branchy, else $BRANCHY_BIN/branchy, else built with
scripts/build.sh. WORK is run/onnx-agreement/<MODEL_DIR's name> by default.

Needs numpy and onnxruntime (PyPI); run/venv, as scripts/bench-compare.sh sets it up, is used when
the running Python lacks them.
"""

import os
import sys

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(SCRIPTS)

sys.path.insert(0, os.path.join(SCRIPTS, "lib"))
from branchy_cli import branchy_binary, python_with_modules  # noqa: E402

python_with_modules("onnx-agreement", ("numpy", "onnxruntime"))

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from branchy_numpy import load_test_set, softmax_entropy, take_exits  # noqa: E402

BATCH = 500
SHOW = 5                # disagreements listed per threshold set
FORCE_REFUSE = 0.0      # no entropy is below 0: the exit refuses every sample
FORCE_ACCEPT = 1e9      # every entropy (at most ln(classes)) is below it: the exit takes every sample
NEAR_ENTROPY = 1e-4     # a disagreement this close to a threshold (ONNX Runtime's entropy) is a rounding


def die(message):
    sys.exit(f"onnx-agreement: {message}")


def sanitised(name):
    """An ONNX output name as `branchy import` names the exit made of it."""
    return re.sub(r"[^A-Za-z0-9-]", "_", name).strip("_")


def show(values, digits=6):
    return "[" + ", ".join(f"{v:.{digits}g}" for v in values) + "]"


def read_spec(model_dir):
    """(exit names in order, default thresholds) of MODEL_DIR/model.json."""
    try:
        with open(os.path.join(model_dir, "model.json")) as f:
            spec = json.load(f)
        names = [st["exit"]["name"] for st in spec["stages"]]
        thresholds = (spec.get("defaults") or {}).get("thresholds")
    except (OSError, ValueError, KeyError, TypeError) as e:
        die(f"{model_dir}/model.json: {e}")
    if len(names) < 2:
        die(f"{model_dir}: {len(names)} exit(s); early exits need two or more")
    return names, thresholds


def parse_thresholds(text, default, exits):
    if text is None:
        if default is None:
            die("model.json has no defaults.thresholds; give --thresholds")
        values = [float(t) for t in default]
    else:
        try:
            values = [float(t) for t in text.split(",")]
        except ValueError:
            die(f"--thresholds {text}: not numbers separated by commas")
    if len(values) != exits - 1:
        die(f"need {exits - 1} thresholds (one per exit but the last), got {len(values)}")
    return values


def forced_sets(exits):
    """For each exit k, thresholds that make every sample leave at k."""
    return [[FORCE_REFUSE] * k + [FORCE_ACCEPT] * (exits - 1 - k) for k in range(exits)]


def session(path):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001  (ONNX Runtime's errors have no common type)
        die(f"ONNX Runtime cannot load {path}: {e}")


def load_inputs(data, sess, limit):
    """The test set as MODEL.onnx's input: (N, its dimensions after the batch) float32, and the labels."""
    try:
        images, labels = load_test_set(data)
    except (OSError, ValueError) as e:
        die(f"{data}: {e}")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    dims = sess.get_inputs()[0].shape[1:]
    if all(isinstance(d, int) for d in dims):
        if int(np.prod(dims)) != int(np.prod(images.shape[1:])):
            die(f"MODEL.onnx takes {dims} per sample; the data set's samples are {list(images.shape[1:])}")
        images = images.reshape(images.shape[0], *dims)
    return np.ascontiguousarray(images, dtype=np.float32), labels


def ort_logits(sess, names, images):
    """ONNX Runtime's logits (N, classes) for each exit in `names`, matched by sanitised output name
    (the exit's name, else `logits_<name>` as `branchy export-onnx` names them)."""
    outputs = {}
    for o in sess.get_outputs():
        outputs.setdefault(sanitised(o.name), []).append(o.name)
    wanted = []
    for name in names:
        found = outputs.get(name) or outputs.get(f"logits_{name}", [])
        if len(found) != 1:
            die(f"exit {name}: {'no' if not found else len(found)} ONNX outputs sanitise to it "
                f"(outputs: {', '.join(o.name for o in sess.get_outputs())})")
        wanted.append(found[0])
    feed = sess.get_inputs()[0].name
    parts = [sess.run(wanted, {feed: images[i:i + BATCH]}) for i in range(0, images.shape[0], BATCH)]
    return [np.concatenate([p[k] for p in parts]).astype(np.float32) for k in range(len(names))]


def run(argv, what):
    started = time.monotonic()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        die(f"{what} failed (status {done.returncode}): {lines[-1] if lines else '(nothing on stderr)'}")
    print(f"  ({what}: {time.monotonic() - started:.1f} s)", file=sys.stderr)


def branchy_logits(branchy, model_dir, images, work, exits):
    """`branchy infer`'s logits for each exit, on WORK/input.npy."""
    path, out = os.path.join(work, "input.npy"), os.path.join(work, "infer")
    np.save(path, images)
    run([branchy, "infer", "--model", model_dir, "--input", path, "--output-dir", out], "branchy infer")
    logits = []
    for k in range(exits):
        y = np.load(os.path.join(out, f"exit-{k}.npy"))
        if y.shape[0] != images.shape[0] or y.ndim != 2:
            die(f"branchy infer's exit-{k}.npy has shape {y.shape}, expected ({images.shape[0]}, classes)")
        logits.append(y)
    return logits


def branchy_eval(branchy, model_dir, data, thresholds, codec, n, path):
    """(exit, class) arrays of `branchy eval --predictions` for the first n samples."""
    run([branchy, "eval", "--model", model_dir, "--dataset", data, "--limit", str(n), "--codec", codec,
         "--thresholds", ",".join(repr(float(t)) for t in thresholds), "--predictions", path, "--json"],
        f"branchy eval --codec {codec} --thresholds {show(thresholds)}")
    exits, classes = np.full(n, -1), np.full(n, -1)
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                exits[r["sample"]], classes[r["sample"]] = r["exit"], r["class"]
    if (exits < 0).any():
        die(f"branchy eval wrote no prediction for {int((exits < 0).sum())} of {n} samples ({path})")
    return exits, classes


class Rule:
    """The early-exit rule on one side's logits: entropies and classes of every exit."""

    def __init__(self, logits):
        traced = [softmax_entropy(y) for y in logits]
        self.classes = np.stack([c for c, _, _ in traced])
        self.entropies = [h for _, h, _ in traced]
        self.probabilities = [p for _, _, p in traced]

    def decide(self, thresholds):
        taken = take_exits(thresholds, self.entropies)
        return taken, self.classes[taken, np.arange(taken.size)]


def describe(s, ours, theirs, ort, mine, thresholds, gaps):
    """One line on sample s, where ONNX Runtime takes ours = (exit, class) and branchy eval theirs."""
    (oe, oc), (be, bc) = ours, theirs
    first = min(oe, be)
    if oe != be:
        t = thresholds[first]
        near = abs(float(ort.entropies[first][s]) - t) <= NEAR_ENTROPY * max(1.0, t)
        why = f"exit {first}'s entropy against threshold {t:g}"
    else:
        top = np.sort(ort.probabilities[oe][s])[-2:]
        near = float(top[1] - top[0]) <= NEAR_ENTROPY
        why = f"top two probabilities at exit {oe} {top[1]:.7f}, {top[0]:.7f}"
    inferred = mine.decide(thresholds)
    return (f"  sample {s}: ONNX Runtime exit {oe} class {oc}, branchy eval exit {be} class {bc} "
            f"({'near the boundary: ' if near else ''}{why}); entropies ONNX Runtime "
            f"{show([float(h[s]) for h in ort.entropies], 9)}, branchy infer {show([float(h[s]) for h in mine.entropies], 9)}; "
            f"|logit difference| per exit {show([float(g[s]) for g in gaps], 3)}; branchy infer's logits under the "
            f"rule: exit {int(inferred[0][s])} class {int(inferred[1][s])}")


def compare_float32(sets, ort, mine, gaps, run_eval):
    """Prints the agreement per threshold set; returns how many sets had a disagreement."""
    failed = 0
    for thresholds in sets:
        exits, classes = run_eval(thresholds, "float32")
        taken, chosen = ort.decide(thresholds)
        wrong = np.flatnonzero((taken != exits) | (chosen != classes))
        n = taken.size
        print(f"float32 links, thresholds {show(thresholds)}: {n - wrong.size} of {n} samples agree (exit and class)",
              flush=True)
        i_taken, i_chosen = mine.decide(thresholds)
        own = int(((i_taken == exits) & (i_chosen == classes)).sum())
        if own != n:
            print(f"  note: branchy infer's logits under the same rule agree with branchy eval on only {own} of {n}")
        if wrong.size:
            failed += 1
            print(f"  {wrong.size} disagreement(s){'; the first ' + str(SHOW) if wrong.size > SHOW else ''}:")
            for s in wrong[:SHOW]:
                print(describe(s, (taken[s], chosen[s]), (exits[s], classes[s]), ort, mine, thresholds, gaps))
    return failed


def main():
    parser = argparse.ArgumentParser(prog="onnx-agreement.py",
                                     description="Check an imported model's logits and early exits against ONNX Runtime.")
    parser.add_argument("onnx", metavar="MODEL.onnx", help="the ONNX file (graph outputs: the exits' logits)")
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="what `branchy import MODEL.onnx` wrote")
    parser.add_argument("--data", metavar="DIR", default=os.path.join(REPO_ROOT, "data", "fashion-mnist"),
                        help="IDX data set; its test split is used (default: data/fashion-mnist)")
    parser.add_argument("--branchy", metavar="BIN_DIR", help="folder of the branchy executable "
                        "(default: $BRANCHY_BIN, else scripts/build.sh)")
    parser.add_argument("--thresholds", metavar="T1,T2", help="entropy thresholds (default: model.json's)")
    parser.add_argument("--work", metavar="DIR", help="folder for input.npy, infer/ and the predictions "
                        "(default: run/onnx-agreement/<MODEL_DIR's name>)")
    parser.add_argument("--limit", metavar="N", type=int, help="only the first N samples")
    args = parser.parse_args()

    onnx_path, model_dir, data = (os.path.abspath(p) for p in (args.onnx, args.model_dir, args.data))
    work = os.path.abspath(args.work or os.path.join(REPO_ROOT, "run", "onnx-agreement", os.path.basename(model_dir)))
    os.makedirs(work, exist_ok=True)
    names, default = read_spec(model_dir)
    thresholds = parse_thresholds(args.thresholds, default, len(names))
    branchy = branchy_binary(args.branchy and os.path.abspath(args.branchy), "onnx-agreement")

    sess = session(onnx_path)
    images, _ = load_inputs(data, sess, args.limit)
    n = images.shape[0]
    ort = ort_logits(sess, names, images)
    ours = branchy_logits(branchy, model_dir, images, work, len(names))
    gaps = []
    for k, (a, b) in enumerate(zip(ours, ort)):
        if a.shape != b.shape:
            die(f"exit {names[k]}: branchy infer's logits are {a.shape}, ONNX Runtime's {b.shape}")
        gaps.append(np.abs(a.astype(np.float64) - b).max(axis=1))
    largest = max(float(g.max()) for g in gaps)
    print(f"{args.onnx}: {n} samples, exits {', '.join(names)}")
    print("largest |logit difference|, branchy infer vs ONNX Runtime: "
          + ", ".join(f"{names[k]} {float(g.max()):.3g}" for k, g in enumerate(gaps)) + f"; overall {largest:.3g}",
          flush=True)

    def run_eval(ts, codec):
        path = os.path.join(work, f"predictions-{codec}-{'_'.join(f'{t:g}' for t in ts)}.jsonl")
        return branchy_eval(branchy, model_dir, data, ts, codec, n, path)

    sets = []
    for ts in [thresholds] + forced_sets(len(names)):
        if ts not in sets:
            sets.append(ts)
    ort_rule, infer_rule = Rule(ort), Rule(ours)
    failed = compare_float32(sets, ort_rule, infer_rule, gaps, run_eval)

    exits, classes = run_eval(thresholds, "int8")
    taken, chosen = ort_rule.decide(thresholds)
    same_exit, same_class = taken == exits, chosen == classes
    a, b, both = int(same_exit.sum()), int(same_class.sum()), int((same_exit & same_class).sum())
    print(f"int8 links, thresholds {show(thresholds)} (ONNX Runtime's links float32; informational): "
          f"exit and class agree on {both} of {n}, exit on {a} of {n}, class on {b} of {n}")

    verdict = (f"float32 links agree on all {n} samples under {len(sets)} threshold sets" if not failed else
               f"float32 links DISAGREE under {failed} of {len(sets)} threshold sets")
    print(f"onnx-agreement: {args.onnx}: largest |logit difference| {largest:.3g}; {verdict}; "
          f"int8 links: exits agree on {a} of {n}, classes on {b} of {n}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
