#!/usr/bin/env python3
"""Checks `branchy import` (ONNX to a Branchy model directory) against ONNX Runtime, on small
ONNX models, one per supported operator form and opset, and its refusal of bad files (the
cases are built by scripts/lib/onnx_import_cases.py).

usage: import-check.py [--branchy BIN_DIR] [--work DIR] [--only TEXT]
       import-check.py --cases-only DIR [--only TEXT]

For each supported case, in WORK/<case>/: writes case.onnx and input.npy (3 samples) and runs
the graph with ONNX Runtime (expected-<i>.npy, one per output); then
`branchy import case.onnx --output model` and
`branchy infer --model model --input input.npy --output-dir infer`, and compares each
infer/exit-<i>.npy with ONNX Runtime's output i. They agree when the shapes are equal and the
largest absolute difference is within TOLERANCE × max(1, largest |expected| of that exit):
float32 sums in another order, folded batch norms and other activation roundings stay orders
of magnitude below it, a wrong weight, padding or window far above. Then the round trip, both
ways back to ONNX: scripts/export-onnx.py model export, and
`branchy export-onnx --model model --output export/branchy.onnx`; ONNX Runtime on
export/full.onnx and on export/branchy.onnx must give the original graph's outputs within the
same tolerance.

For each bad case: `branchy import` must exit with a non-zero status (not a signal), its
stderr contain every expected fragment (case-insensitively; for an operator the node's name
in quotes, its op type and `opset V`, e.g. `node 'n3' (Erf, opset 17): operator not
supported`), and the output directory must not exist.

Prints one line per case (the largest differences for supported ones) and
`import-check: K of N cases agree`; exits 1 unless all agree.

--cases-only DIR writes only the cases, their inputs and ONNX Runtime's outputs (DIR/<case>/;
the bad ones in DIR/bad/<case>/ with expect.txt, the fragments) and checks that every
supported case, and every bad one that is valid ONNX, runs in ONNX Runtime: no branchy needed.
--only TEXT keeps the cases whose names contain TEXT. The branchy binary is BIN_DIR/branchy,
else $BRANCHY_BIN/branchy, else built with scripts/build.sh. WORK is run/import-check by default.

Needs numpy, onnx and onnxruntime (PyPI); run/venv, as scripts/bench-compare.sh sets it up, is
used when the running Python lacks them.
"""

import os
import sys

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(SCRIPTS)

sys.path.insert(0, os.path.join(SCRIPTS, "lib"))
from branchy_cli import branchy_binary, python_with_modules  # noqa: E402

python_with_modules("import-check", ("numpy", "onnx", "onnxruntime"))

import argparse  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402

import numpy as np  # noqa: E402

import onnx_import_cases as cases  # noqa: E402

TOLERANCE = 1e-4
TIMEOUT = 300  # seconds for one branchy or export run


class Disagree(Exception):
    pass


def die(message):
    sys.exit(f"import-check: {message}")


def run(argv):
    """(exit status, stderr) of a command; a timeout is status None."""
    try:
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, f"no answer within {TIMEOUT} s"
    return done.returncode, done.stderr


def last_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1] if lines else "(nothing on stderr)"


def difference(got, expected, what):
    """The largest |got - expected| over its allowance; raises Disagree when out of tolerance."""
    if got.shape != expected.shape:
        raise Disagree(f"{what}: shape {got.shape}, ONNX Runtime {expected.shape}")
    allowed = TOLERANCE * max(1.0, float(np.abs(expected).max(initial=0)))
    diff = float(np.abs(got.astype(np.float64) - expected).max(initial=0))
    if not diff <= allowed:  # NaN too
        raise Disagree(f"{what}: largest difference {diff:.3g} > {allowed:.3g}")
    return diff


def write_case(case, directory):
    """case.onnx, input.npy and ONNX Runtime's expected-<i>.npy in a fresh `directory`; returns (input, outputs)."""
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    data = case.model.SerializeToString()
    with open(os.path.join(directory, "case.onnx"), "wb") as f:
        f.write(data)
    x = cases.sample(case)
    np.save(os.path.join(directory, "input.npy"), x)
    outputs = cases.ort_session(data).run(None, {"x": x})
    for i, y in enumerate(outputs):
        np.save(os.path.join(directory, f"expected-{i}.npy"), y)
    return x, outputs


def write_bad(bad, directory):
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    path = os.path.join(directory, "case.onnx")
    with open(path, "wb") as f:
        f.write(bad.data)
    with open(os.path.join(directory, "expect.txt"), "w") as f:
        f.write("\n".join(bad.expect) + "\n")
    return path


def check_case(branchy, case, directory):
    """The one-line result of a supported case; raises Disagree."""
    x, expected = write_case(case, directory)
    model, infer, export = (os.path.join(directory, d) for d in ("model", "infer", "export"))
    status, err = run([branchy, "import", os.path.join(directory, "case.onnx"), "--output", model])
    if status != 0:
        raise Disagree(f"branchy import failed (status {status}): {last_line(err)}")
    missing = [f for f in ("model.json", "weights.safetensors", "MODEL_CARD.md") if not os.path.exists(os.path.join(model, f))]
    if missing:
        raise Disagree(f"branchy import wrote no {', '.join(missing)}")
    status, err = run([branchy, "infer", "--model", model, "--input", os.path.join(directory, "input.npy"),
                       "--output-dir", infer])
    if status != 0:
        raise Disagree(f"branchy infer failed (status {status}): {last_line(err)}")
    written = sorted(f for f in os.listdir(infer) if f.startswith("exit-") and f.endswith(".npy"))
    if written != sorted(f"exit-{i}.npy" for i in range(len(expected))):
        raise Disagree(f"branchy infer wrote {written or 'no exit'}, expected exit-0 to exit-{len(expected) - 1}")
    ours = max(difference(np.load(os.path.join(infer, f"exit-{i}.npy")), y, f"exit {i}") for i, y in enumerate(expected))

    status, err = run([sys.executable, os.path.join(SCRIPTS, "export-onnx.py"), model, export])
    if status != 0:
        raise Disagree(f"export-onnx.py of the imported model failed: {last_line(err)}")
    exported = cases.ort_session(os.path.join(export, "full.onnx")).run(None, {"image": x})
    if len(exported) != len(expected):
        raise Disagree(f"the exported graph has {len(exported)} exits, the original {len(expected)}")
    back = max(difference(y, e, f"round trip, exit {i}") for i, (y, e) in enumerate(zip(exported, expected)))

    ours_file = os.path.join(export, "branchy.onnx")
    status, err = run([branchy, "export-onnx", "--model", model, "--output", ours_file])
    if status != 0:
        raise Disagree(f"branchy export-onnx of the imported model failed (status {status}): {last_line(err)}")
    exported = cases.ort_session(ours_file).run(None, {"image": x})
    if len(exported) != len(expected):
        raise Disagree(f"branchy export-onnx's graph has {len(exported)} exits, the original {len(expected)}")
    swift = max(difference(y, e, f"branchy export-onnx, exit {i}") for i, (y, e) in enumerate(zip(exported, expected)))
    return f"infer {ours:.2g}, round trip {back:.2g}, branchy export-onnx {swift:.2g}"


def check_bad(branchy, bad, directory):
    """The one-line result of a bad case; raises Disagree."""
    path = write_bad(bad, directory)
    model = os.path.join(directory, "model")
    status, err = run([branchy, "import", path, "--output", model])
    if status == 0:
        raise Disagree("branchy import accepted it")
    if status is None or status < 0:
        raise Disagree(f"branchy import {'hung' if status is None else f'died of signal {-status}'}: {last_line(err)}")
    absent = [f for f in bad.expect if f.lower() not in err.lower()]
    if absent:
        raise Disagree(f"the error lacks {', '.join(repr(f) for f in absent)}: {last_line(err)}")
    if os.path.exists(model):
        raise Disagree(f"branchy import refused it but left {model}")
    return f"refused: {last_line(err)}"


def cases_only(directory, supported, bad):
    """Writes every case and ONNX Runtime's outputs; returns how many ran (bad cases that are not
    valid ONNX are only written)."""
    ok = 0
    for case in supported:
        try:
            _, outputs = write_case(case, os.path.join(directory, case.name))
            print(f"ok   {case.name}: outputs {', '.join(str(list(y.shape)) for y in outputs)}")
            ok += 1
        except Exception as e:  # noqa: BLE001  (ONNX Runtime's errors have no common type)
            print(f"FAIL {case.name}: ONNX Runtime: {e}")
    for b in bad:
        path = write_bad(b, os.path.join(directory, "bad", b.name))
        if not b.runs:
            print(f"ok   bad {b.name}: written (not valid ONNX: not run)")
            ok += 1
            continue
        try:
            session = cases.ort_session(path)
            shape = [d if isinstance(d, int) else 2 for d in session.get_inputs()[0].shape]
            session.run(None, {"x": np.zeros(shape, np.float32)})
            print(f"ok   bad {b.name}: runs in ONNX Runtime; Branchy must refuse it")
            ok += 1
        except Exception as e:  # noqa: BLE001
            print(f"FAIL bad {b.name}: meant to be valid ONNX, but ONNX Runtime says: {e}")
    return ok


def main():
    parser = argparse.ArgumentParser(prog="import-check.py",
                                     description="Check branchy import against ONNX Runtime on small ONNX models.")
    parser.add_argument("--branchy", metavar="BIN_DIR", help="folder of the branchy executable "
                        "(default: $BRANCHY_BIN, else scripts/build.sh)")
    parser.add_argument("--work", metavar="DIR", default=os.path.join(REPO_ROOT, "run", "import-check"),
                        help="folder for the cases and results (default: run/import-check)")
    parser.add_argument("--cases-only", metavar="DIR", help="only write the cases and ONNX Runtime's outputs to DIR")
    parser.add_argument("--only", metavar="TEXT", default="", help="only the cases whose names contain TEXT")
    args = parser.parse_args()

    supported = [c for c in cases.cases() if args.only in c.name]
    bad = [b for b in cases.bad_cases() if args.only in b.name]
    total = len(supported) + len(bad)
    if not total:
        die(f"no case name contains '{args.only}'")
    if args.cases_only:
        ok = cases_only(os.path.abspath(args.cases_only), supported, bad)
        print(f"import-check: {ok} of {total} cases written and run in ONNX Runtime")
        sys.exit(0 if ok == total else 1)

    branchy = branchy_binary(args.branchy and os.path.abspath(args.branchy), "import-check")
    work = os.path.abspath(args.work)
    ok = 0
    for label, items, check, where in (("", supported, check_case, work), ("bad ", bad, check_bad, os.path.join(work, "bad"))):
        for item in items:
            try:
                line = check(branchy, item, os.path.join(where, item.name))
                print(f"ok   {label}{item.name}: {line}", flush=True)
                ok += 1
            except Exception as e:  # noqa: BLE001  (a bad .npy or graph from branchy is a failure too)
                reason = e if isinstance(e, Disagree) else f"{type(e).__name__}: {e}"
                print(f"FAIL {label}{item.name}: {reason}", flush=True)
    print(f"import-check: {ok} of {total} cases agree")
    sys.exit(0 if ok == total else 1)


if __name__ == "__main__":
    main()
