"""Times Branchy's `branchy bench` against ONNX Runtime on the same graphs; run by
scripts/bench-compare.sh, which sets up the Python environment and exports the graphs.

  ort_bench.py compare --model DIR [--model DIR]... --onnx-root DIR --dataset DIR
                       [--branchy EXE] [--paths LIST] [--batches LIST] [--threads LIST]
                       [--repeats N] [--seconds S] [--gemm-threads T] [--json FILE]
  ort_bench.py numpy-gemm --m M --n N --k K --seconds S   (one numpy timing, as JSON)

For every model, path (`full` or a stage), batch and thread count it runs Branchy and ONNX
Runtime in turn, N times each (Branchy, ORT, Branchy, ORT, ...), and keeps the fastest
µs/sample of each. ORT runs the graphs of ONNX_ROOT/<model folder name>/ with
intra_op_num_threads = threads, inter_op_num_threads = 1, sequential execution and every
graph optimisation, through an I/O binding (input and outputs bound once, so a run costs no
Python-side copies); each measurement is, like a `branchy bench` figure, the best of three
rounds of --seconds / 3 of back-to-back runs. Inputs are the first
`batch` test images, scaled as Branchy scales them (byte / 255); a later stage's input is
what the previous stage graphs make of those images, through that link's feature codec.
Then GEMM M=N=K=1024: `branchy bench --gemm` against numpy's matmul (its BLAS, with the
same thread count), interleaved the same way, keeping the best GFLOP/s of each.

`branchy bench` failing (as before it exists) leaves Branchy's column "not available".
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

GEMM_SIZE = 1024
ROUNDS = 3  # timed rounds per measurement, best kept, as `branchy bench` does
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CALIBRATE_SECONDS = 0.05
WARMUP_RUNS = 5


def log(message):
    print(message, file=sys.stderr, flush=True)


# --- ONNX Runtime ----------------------------------------------------------------


def session(path, threads):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


class OrtCase:
    """One graph with one input batch bound for repeated runs."""

    def __init__(self, path, threads, x):
        import onnxruntime as ort
        self.session = session(path, threads)
        self.batch = x.shape[0]
        name = self.session.get_inputs()[0].name
        x = np.ascontiguousarray(x, dtype=np.float32)
        outputs = self.session.run(None, {name: x})
        self.binding = self.session.io_binding()
        self.keep = [x]  # the bound buffers must outlive the binding
        self.binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(x))
        for info, value in zip(self.session.get_outputs(), outputs):
            buffer = np.empty_like(value)
            self.keep.append(buffer)
            self.binding.bind_ortvalue_output(info.name, ort.OrtValue.ortvalue_from_numpy(buffer))
        for _ in range(WARMUP_RUNS):
            self.session.run_with_iobinding(self.binding)
        _, self.per_run = self._calibrate()

    def _loop(self, runs):
        run, binding = self.session.run_with_iobinding, self.binding
        start = time.perf_counter()
        for _ in range(runs):
            run(binding)
        return time.perf_counter() - start

    def _calibrate(self):
        runs, elapsed = 1, 0.0
        while True:
            elapsed = self._loop(runs)
            if elapsed >= CALIBRATE_SECONDS:
                return runs, elapsed / runs
            runs *= 2

    def measure(self, seconds):
        """µs per sample: the best of ROUNDS rounds, each of enough runs to fill seconds / ROUNDS
        (as `branchy bench` times a figure)."""
        runs = max(1, int(seconds / ROUNDS / self.per_run) + 1)
        return min(self._loop(runs) for _ in range(ROUNDS)) / (runs * self.batch) * 1e6


# --- Branchy ---------------------------------------------------------------------


USAGE_ERRORS = ("unknown option", "unexpected argument", "unknown subcommand", "missing expected argument")


class Branchy:
    """`branchy bench --json`. Until one call has succeeded, a call rejected as a usage error
    (exit status 64 with an argument parser's complaint, as from a build without the command)
    means that the command is not there: `unavailable` gets the reason and no more calls are
    made. Other failures are the configuration's own."""

    def __init__(self, executable):
        self.executable = executable
        self.unavailable = None if executable else "no branchy executable"
        self.worked = False
        self.isa = None  # the kernel path `branchy bench` reports, if it does

    def run(self, args):
        """The parsed JSON object, or raises RuntimeError with the reason."""
        if self.unavailable:
            raise RuntimeError(self.unavailable)
        done = subprocess.run([self.executable, "bench", "--json"] + args, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
        try:
            if done.returncode != 0:
                raise RuntimeError(_first_line(done.stderr) or f"exit status {done.returncode}")
            try:
                out = json.loads(done.stdout)
            except json.JSONDecodeError as e:
                raise RuntimeError(f"output is not JSON ({e})")
        except RuntimeError as e:
            if not self.worked and done.returncode == 64 and any(u in str(e).lower() for u in USAGE_ERRORS):
                self.unavailable = str(e)
                log(f"branchy bench not available: {e}")
            raise
        self.worked = True
        return out

    def model(self, model_dir, path, batch, threads, seconds):
        out = self.run(["--model", model_dir, "--path", path, "--batch", str(batch), "--threads", str(threads),
                        "--seconds", f"{seconds:g}"])
        try:
            self.isa = out["models"][0].get("isa", self.isa)
            return float(out["models"][0]["usPerSample"])
        except (KeyError, IndexError, TypeError, ValueError):
            raise RuntimeError("no models[0].usPerSample in its output")

    def gemm(self, m, n, k, threads, seconds):
        out = self.run(["--gemm", "--m", str(m), "--n", str(n), "--k", str(k), "--threads", str(threads),
                        "--seconds", f"{seconds:g}"])
        try:
            self.isa = out["gemm"][0].get("isa", self.isa)
            return float(out["gemm"][0]["gflops"])
        except (KeyError, IndexError, TypeError, ValueError):
            raise RuntimeError("no gemm[0].gflops in its output")


def _first_line(text):
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


# --- numpy GEMM ------------------------------------------------------------------


def numpy_gemm(m, n, k, seconds):
    """GFLOP/s of float32 matmul (M×K)·(K×N) in this process (threads: the BLAS's environment):
    the best of ROUNDS rounds of seconds / ROUNDS."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), dtype=np.float32)
    def loop(runs):
        start = time.perf_counter()
        for _ in range(runs):
            np.matmul(a, b, out=c)
        return time.perf_counter() - start

    loop(2)
    runs, elapsed = 1, loop(1)
    while elapsed < CALIBRATE_SECONDS:
        runs *= 2
        elapsed = loop(runs)
    runs = max(1, int(seconds / ROUNDS / (elapsed / runs)) + 1)
    best = min(loop(runs) for _ in range(ROUNDS))
    return 2.0 * m * n * k * runs / best / 1e9


def numpy_gemm_subprocess(m, n, k, threads, seconds):
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "numpy-gemm", "--m", str(m), "--n", str(n),
                           "--k", str(k), "--seconds", f"{seconds:g}"], stdout=subprocess.PIPE, env=env, text=True,
                          check=True)
    return json.loads(done.stdout)["gflops"]


def blas_name():
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy: no dict mode
        return "unknown BLAS"


# --- Inputs ----------------------------------------------------------------------


def stage_inputs(model, onnx_dir, images):
    """The input of every path: the images for `full` and the first stage, and for a later
    stage what the previous stage graphs make of them (through each link's codec)."""
    import branchy_onnx as bx
    inputs = {"full": images}
    x = images
    for i, st in enumerate(model.stages):
        if i > 0:
            x = bx.codec_round_trip(x, model.link_codec(i))
        inputs[st["name"]] = x
        x = session(os.path.join(onnx_dir, f"{st['name']}.onnx"), 1).run(["features"], {bx.STAGE_INPUT: x})[0]
    return inputs


# --- The comparison ----------------------------------------------------------------


def fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows, branchy_note):
    head = ["model", "path", "batch", "threads", "Branchy µs/sample", "ORT µs/sample", "Branchy/ORT",
            "throughput Branchy/ORT"]
    lines = []
    for r in rows:
        b = r["branchyUsPerSample"]
        ratio = b / r["ortUsPerSample"] if b is not None else None
        throughput = r["ortUsPerSample"] / b if (b is not None and r["batch"] > 1) else None
        lines.append([r["model"], r["path"], str(r["batch"]), str(r["threads"]),
                      fmt(b) if b is not None else ("failed" if r.get("branchyError") else "not available"), fmt(r["ortUsPerSample"]),
                      f"{ratio:.2f}x" if ratio is not None else "-",
                      f"{throughput:.2f}x" if throughput is not None else "-"])
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(head)]
    out = []
    if branchy_note:
        out.append(branchy_note)
    if any(r.get("branchyError") for r in rows):
        out.append("failed: branchy bench exited with an error for that configuration (see results JSON)")
    for cells in [head] + lines:
        out.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))
    return "\n".join(out)


def compare(args):
    import onnxruntime as ort
    import branchy_onnx as bx

    branchy = Branchy(args.branchy)
    if branchy.unavailable:
        log(f"branchy bench not available: {branchy.unavailable}")
    thread_list = [int(t) for t in args.threads.split(",") if t]
    batch_list = [int(b) for b in args.batches.split(",") if b]
    images, _ = bx.load_test_set(args.dataset)
    images = images[:max(batch_list)]
    load_before = os.getloadavg()

    rows = []
    for model_dir in args.model:
        model = bx.Model(model_dir)
        onnx_dir = os.path.join(args.onnx_root, os.path.basename(os.path.normpath(model_dir)))
        inputs = stage_inputs(model, onnx_dir, images)
        paths = args.paths.split(",") if args.paths else ["full"] + model.stage_names()
        for path in paths:
            if path not in inputs:
                raise SystemExit(f"ort_bench: model {model.name} has no path {path} "
                                 f"(full, {', '.join(model.stage_names())})")
            for batch in batch_list:
                for threads in thread_list:
                    case = OrtCase(os.path.join(onnx_dir, f"{path}.onnx"), threads, inputs[path][:batch])
                    ort_times, branchy_times, branchy_error = [], [], branchy.unavailable
                    for _ in range(args.repeats):
                        if branchy_error is None:
                            try:
                                branchy_times.append(branchy.model(model_dir, path, batch, threads, args.seconds))
                            except RuntimeError as e:
                                branchy_error = str(e)
                        ort_times.append(case.measure(args.seconds))
                    del case
                    row = {"model": model.name, "path": path, "batch": batch, "threads": threads,
                           "ortUsPerSample": min(ort_times), "ortUsPerSampleRuns": ort_times,
                           "branchyUsPerSample": min(branchy_times) if branchy_times and branchy_error is None else None,
                           "branchyUsPerSampleRuns": branchy_times}
                    if row["branchyUsPerSample"] is not None:
                        row["branchyOverOrt"] = row["branchyUsPerSample"] / row["ortUsPerSample"]
                    if branchy_error and not branchy.unavailable:
                        row["branchyError"] = branchy_error
                        log(f"branchy bench failed for {model.name} {path} batch {batch} threads {threads}: "
                            f"{branchy_error}")
                    rows.append(row)
                    log(f"{model.name} {path} batch {batch} threads {threads}: ORT {row['ortUsPerSample']:.2f} µs/sample"
                        + (f", Branchy {row['branchyUsPerSample']:.2f}" if row["branchyUsPerSample"] is not None else ""))

    # GEMM.
    t, size = args.gemm_threads, GEMM_SIZE
    numpy_runs, branchy_runs, gemm_error = [], [], branchy.unavailable
    for _ in range(args.repeats):
        if gemm_error is None:
            try:
                branchy_runs.append(branchy.gemm(size, size, size, t, args.seconds))
            except RuntimeError as e:
                gemm_error = str(e)
        numpy_runs.append(numpy_gemm_subprocess(size, size, size, t, max(args.seconds, 0.3)))
    gemm = {"m": size, "n": size, "k": size, "threads": t, "numpyGflops": max(numpy_runs),
            "numpyGflopsRuns": numpy_runs, "blas": blas_name(),
            "branchyGflops": max(branchy_runs) if branchy_runs and gemm_error is None else None,
            "branchyGflopsRuns": branchy_runs}
    if gemm_error and not branchy.unavailable:
        gemm["branchyError"] = gemm_error
    load_after = os.getloadavg()

    note = f"branchy bench not available: {branchy.unavailable}" if branchy.unavailable else None
    text = [(f"Branchy kernels {branchy.isa}; " if branchy.isa else "")
            + f"ONNX Runtime {ort.__version__}, numpy {np.__version__} ({gemm['blas']}); "
            f"best of {args.repeats} interleaved run(s) of {args.seconds:g} s each; "
            f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after", "",
            table(rows, note), ""]
    g = f"GEMM {size}x{size}x{size}, {t} threads: "
    if gemm["branchyGflops"] is not None:
        g += (f"Branchy {gemm['branchyGflops']:.1f} GFLOP/s, numpy {gemm['numpyGflops']:.1f} GFLOP/s: "
              f"Branchy at {100 * gemm['branchyGflops'] / gemm['numpyGflops']:.0f}% of numpy")
    else:
        g += (f"Branchy {'not available' if branchy.unavailable else 'failed: ' + gemm_error}, "
              f"numpy {gemm['numpyGflops']:.1f} GFLOP/s")
    text.append(g)
    print("\n".join(text))

    if args.json:
        report = {"ortVersion": ort.__version__, "numpyVersion": np.__version__, "blas": gemm["blas"],
                  "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "system": platform.platform(),
                              "loadBefore": load_before, "loadAfter": load_after},
                  "repeats": args.repeats, "seconds": args.seconds,
                  "branchyUnavailable": branchy.unavailable, "branchyIsa": branchy.isa, "rows": rows, "gemm": gemm}
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(prog="ort_bench.py", description="Branchy against ONNX Runtime.")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--model", action="append", required=True, help="model folder (repeatable)")
    c.add_argument("--onnx-root", required=True, help="folder holding <model folder name>/<path>.onnx")
    c.add_argument("--dataset", required=True, help="IDX data set folder (test split)")
    c.add_argument("--branchy", help="the branchy executable")
    c.add_argument("--paths", help="comma-separated paths (default: full and every stage)")
    c.add_argument("--batches", default="1,256")
    c.add_argument("--threads", default="1,2")
    c.add_argument("--repeats", type=int, default=5)
    c.add_argument("--seconds", type=float, default=0.3, help="work per repeat")
    c.add_argument("--gemm-threads", type=int, default=2)
    c.add_argument("--json", help="write the results as JSON to this file")
    g = sub.add_parser("numpy-gemm")
    g.add_argument("--m", type=int, default=GEMM_SIZE)
    g.add_argument("--n", type=int, default=GEMM_SIZE)
    g.add_argument("--k", type=int, default=GEMM_SIZE)
    g.add_argument("--seconds", type=float, default=0.3)
    args = parser.parse_args()
    if args.command == "numpy-gemm":
        print(json.dumps({"gflops": numpy_gemm(args.m, args.n, args.k, args.seconds)}))
    else:
        if args.repeats < 1 or args.seconds <= 0:
            raise SystemExit("ort_bench: --repeats must be >= 1 and --seconds > 0")
        compare(args)


if __name__ == "__main__":
    main()
