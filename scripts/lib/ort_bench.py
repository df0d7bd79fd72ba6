"""Times `branchy bench` against ONNX Runtime on the same graphs, for scripts/bench-compare.sh (which sets
up the Python environment and exports the graphs to ONNX_ROOT/<model folder>/<path>.onnx).
  ort_bench.py compare --model DIR... --onnx-root DIR --dataset DIR [--branchy EXE] [--paths LIST]
                       [--batches LIST] [--threads LIST] [--repeats N] [--seconds S] [--gemm-threads T] [--json FILE]
                       [--precisions float32,int8] [--training-set DIR]
  ort_bench.py numpy-gemm --m M --n N --k K --seconds S   (one numpy timing, as JSON)
For every model, path (`full` or a stage), batch and thread count, Branchy and ORT run in turn N times
each, the fastest µs/sample of each kept. ORT: intra_op_num_threads = threads, one inter-op thread,
sequential execution, every graph optimisation, an I/O binding (no Python-side copies); each figure is,
like `branchy bench`'s, the best of three rounds of --seconds / 3. Inputs are the first `batch` test
images scaled as Branchy does (byte / 255); a later stage's input is what the previous stage graphs make
of them through that link's codec. int8 (for a model with an int8.json, made by `branchy quantize`): Branchy
runs `--precision int8`; ORT runs its own static quantization of the same graph (onnxruntime.quantization:
QDQ, per-channel int8 weights, uint8 activations, MinMax ranges from the first CALIBRATION_SAMPLES images of
the training set, --training-set). Then GEMM 1024³: `branchy bench --gemm` against numpy's matmul (its
BLAS at the same thread count). `branchy bench` failing as a usage error before any success (a build
without it) leaves Branchy's column "not available".
"""
import argparse, json, os, platform, subprocess, sys, time
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
GEMM_SIZE, ROUNDS, CALIBRATE_SECONDS, CALIBRATION_SAMPLES = 1024, 3, 0.05, 1000
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log(message):
    print(message, file=sys.stderr, flush=True)


def best_per_run(loop, seconds):
    """Seconds per call of loop(runs) (which times `runs` calls): calibrated, then the best of ROUNDS rounds."""
    runs = 1
    while (elapsed := loop(runs)) < CALIBRATE_SECONDS:
        runs *= 2
    runs = max(1, int(seconds / ROUNDS / (elapsed / runs)) + 1)
    return min(loop(runs) for _ in range(ROUNDS)) / runs


def session(path, threads):
    import onnxruntime as ort
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads = threads, 1
    o.execution_mode, o.graph_optimization_level = ort.ExecutionMode.ORT_SEQUENTIAL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def ort_case(path, threads, x, seconds):
    """One graph with one input batch bound once (the buffers outlive the binding): a timing of µs per sample."""
    import onnxruntime as ort
    s = session(path, threads)
    x = np.ascontiguousarray(x, dtype=np.float32)
    name = s.get_inputs()[0].name
    outputs, binding = s.run(None, {name: x}), s.io_binding()
    keep = [x] + [np.empty_like(v) for v in outputs]
    binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(x))
    for info, buffer in zip(s.get_outputs(), keep[1:]):
        binding.bind_ortvalue_output(info.name, ort.OrtValue.ortvalue_from_numpy(buffer))

    def loop(runs):
        start = time.perf_counter()
        for _ in range(runs):
            s.run_with_iobinding(binding)
        return time.perf_counter() - start
    loop(5)   # warm-up
    return lambda: best_per_run(loop, seconds) / x.shape[0] * 1e6


class Branchy:
    """`branchy bench --json`; `unavailable` holds the reason once a call before any success was a usage error."""

    def __init__(self, executable):
        self.executable, self.unavailable, self.worked, self.isa = executable, None if executable else "no branchy executable", False, None

    def run(self, kind, key, args):
        if self.unavailable:
            raise RuntimeError(self.unavailable)
        done = subprocess.run([self.executable, "bench", "--json"] + [str(a) for a in args], capture_output=True, text=True, cwd=REPO_ROOT)
        try:
            if done.returncode != 0:
                raise RuntimeError(next((l.strip() for l in done.stderr.splitlines() if l.strip()), f"exit status {done.returncode}"))
            try:
                out = json.loads(done.stdout)[kind][0]
                self.isa = out.get("isa", self.isa)
                value = float(out[key])
            except json.JSONDecodeError as e:
                raise RuntimeError(f"output is not JSON ({e})")
            except (KeyError, IndexError, TypeError, ValueError):
                raise RuntimeError(f"no {kind}[0].{key} in its output")
        except RuntimeError as e:
            usage = ("unknown option", "unexpected argument", "unknown subcommand", "missing expected argument")
            if not self.worked and done.returncode == 64 and any(u in str(e).lower() for u in usage):
                self.unavailable = str(e)
                log(f"branchy bench not available: {e}")
            raise
        self.worked = True
        return value


def numpy_gemm(m, n, k, seconds):
    """GFLOP/s of float32 matmul (M×K)·(K×N) in this process (threads: the BLAS's environment)."""
    rng = np.random.default_rng(1)
    a, b, c = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32), np.empty((m, n), dtype=np.float32)

    def loop(runs):
        start = time.perf_counter()
        for _ in range(runs):
            np.matmul(a, b, out=c)
        return time.perf_counter() - start
    loop(2)
    return 2.0 * m * n * k / best_per_run(loop, seconds) / 1e9


def numpy_gemm_subprocess(size, threads, seconds):
    env = dict(os.environ, **{v: str(threads) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "numpy-gemm", "--m", str(size), "--n", str(size), "--k", str(size),
                           "--seconds", f"{seconds:g}"], stdout=subprocess.PIPE, env=env, text=True, check=True)
    return json.loads(done.stdout)["gflops"]


def blas_name():
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:   # older numpy: no dict mode
        return "unknown BLAS"


def stage_inputs(model, onnx_dir, images):
    """The input of every path: the images for `full` and the first stage, and for a later stage what
    the previous stage graphs make of them (through each link's codec)."""
    import branchy_onnx as bx
    inputs, x = {"full": images}, images
    for i, st in enumerate(model.stages):
        if i > 0:
            x = bx.codec_round_trip(x, model.link_codec(i))
        inputs[st["name"]] = x
        x = session(os.path.join(onnx_dir, f"{st['name']}.onnx"), 1).run(["features"], {bx.STAGE_INPUT: x})[0]
    return inputs


def load_training_images(directory, count):
    """The first `count` training images, scaled as Branchy does (byte / 255)."""
    import branchy_numpy as bn
    pixels = bn._read_idx(bn._idx_file(directory, "train-images-idx3-ubyte"), 0x00000803)[:count]
    return (pixels.astype(np.float32) / np.float32(255)).reshape(pixels.shape[0], 1, pixels.shape[1], pixels.shape[2])


def quantize_qdq(float_path, int8_path, calibration):
    """ORT's static quantization of one graph: QDQ, per-channel int8 weights, uint8 activations, MinMax."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    import onnx
    name = onnx.load(float_path).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{name: calibration[i:i + 100]} for i in range(0, len(calibration), 100)])

        def get_next(self):
            return next(self.batches, None)
    quantize_static(float_path, int8_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def table(rows, note):
    head = ["model", "path", "precision", "batch", "threads", "Branchy µs/sample", "ORT µs/sample", "Branchy/ORT", "throughput Branchy/ORT"]
    lines = []
    for r in rows:
        b, o = r["branchyUsPerSample"], r["ortUsPerSample"]
        lines.append([r["model"], r["path"], r.get("precision", "float32"), str(r["batch"]), str(r["threads"]),
                      f"{b:.2f}" if b is not None else ("failed" if r.get("branchyError") else "not available"), f"{o:.2f}",
                      f"{b / o:.2f}x" if b is not None else "-", f"{o / b:.2f}x" if b is not None and r["batch"] > 1 else "-"])
    widths = [max([len(h)] + [len(l[i]) for l in lines]) for i, h in enumerate(head)]
    out = [note] if note else []
    if any(r.get("branchyError") for r in rows):
        out.append("failed: branchy bench exited with an error for that configuration (see results JSON)")
    return "\n".join(out + ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) for cells in [head] + lines])


def interleaved(repeats, branchy_call, other_call, error):
    """REPEATS runs of each side in turn; Branchy's runs stop at its first error, returned."""
    mine, other = [], []
    for _ in range(repeats):
        if error is None:
            try:
                mine.append(branchy_call())
            except RuntimeError as e:
                error = str(e)
        other.append(other_call())
    return mine, other, error


def run_row(args, branchy, model, model_dir, path, precision, batch, t, graph, x):
    """One configuration: Branchy and ORT in turn, the best of each kept."""
    mine, ort_times, error = interleaved(
        args.repeats, lambda: branchy.run("models", "usPerSample", ["--model", model_dir, "--path", path, "--batch", batch, "--threads", t,
                                                                   "--precision", precision, "--seconds", f"{args.seconds:g}"]),
        ort_case(graph, t, x, args.seconds), branchy.unavailable)
    row = {"model": model.name, "path": path, "precision": precision, "batch": batch, "threads": t, "ortUsPerSample": min(ort_times),
           "ortUsPerSampleRuns": ort_times, "branchyUsPerSample": min(mine) if mine and error is None else None,
           "branchyUsPerSampleRuns": mine}
    if row["branchyUsPerSample"] is not None:
        row["branchyOverOrt"] = row["branchyUsPerSample"] / row["ortUsPerSample"]
    if error and not branchy.unavailable:
        row["branchyError"] = error
        log(f"branchy bench failed for {model.name} {path} {precision} batch {batch} threads {t}: {error}")
    log(f"{model.name} {path} {precision} batch {batch} threads {t}: ORT {row['ortUsPerSample']:.2f} µs/sample"
        + (f", Branchy {row['branchyUsPerSample']:.2f}" if row["branchyUsPerSample"] is not None else ""))
    return row


def compare(args):
    import onnxruntime as ort
    import branchy_onnx as bx
    branchy = Branchy(args.branchy)
    if branchy.unavailable:
        log(f"branchy bench not available: {branchy.unavailable}")
    threads, batches = [int(t) for t in args.threads.split(",") if t], [int(b) for b in args.batches.split(",") if b]
    images = bx.load_test_set(args.dataset)[0][:max(batches)]
    precisions = [p for p in args.precisions.split(",") if p]
    load_before, rows, notes = os.getloadavg(), [], []
    for model_dir in args.model:
        model = bx.Model(model_dir)
        onnx_dir = os.path.join(args.onnx_root, os.path.basename(os.path.normpath(model_dir)))
        inputs = stage_inputs(model, onnx_dir, images)
        paths = args.paths.split(",") if args.paths else ["full"] + model.stage_names()
        for path in paths:
            if path not in inputs:
                raise SystemExit(f"ort_bench: model {model.name} has no path {path} (full, {', '.join(model.stage_names())})")
        for precision in precisions:
            if precision == "int8":
                if not os.path.exists(os.path.join(model_dir, "int8.json")):
                    notes.append(f"{model.name}: no int8.json (run branchy quantize), so no int8 rows")
                    continue
                if not args.training_set:
                    notes.append(f"{model.name}: no training set to calibrate ONNX Runtime's int8 model on, so no int8 rows")
                    continue
                calibration = stage_inputs(model, onnx_dir, load_training_images(args.training_set, CALIBRATION_SAMPLES))
                for path in paths:
                    log(f"{model.name} {path}: ONNX Runtime static quantization (QDQ, per channel)")
                    quantize_qdq(os.path.join(onnx_dir, f"{path}.onnx"), os.path.join(onnx_dir, f"{path}.int8.onnx"), calibration[path])
            for path in paths:
                for batch in batches:
                    for t in threads:
                        graph = os.path.join(onnx_dir, f"{path}.int8.onnx" if precision == "int8" else f"{path}.onnx")
                        rows.append(run_row(args, branchy, model, model_dir, path, precision, batch, t, graph, inputs[path][:batch]))
    for note in notes:
        log(note)
    t, size = args.gemm_threads, GEMM_SIZE
    mine, numpy_runs, error = interleaved(
        args.repeats, lambda: branchy.run("gemm", "gflops", ["--gemm", "--m", size, "--n", size, "--k", size, "--threads", t, "--seconds", f"{args.seconds:g}"]),
        lambda: numpy_gemm_subprocess(size, t, max(args.seconds, 0.3)), branchy.unavailable)
    gemm = {"m": size, "n": size, "k": size, "threads": t, "numpyGflops": max(numpy_runs), "numpyGflopsRuns": numpy_runs, "blas": blas_name(),
            "branchyGflops": max(mine) if mine and error is None else None, "branchyGflopsRuns": mine}
    if error and not branchy.unavailable:
        gemm["branchyError"] = error
    load_after = os.getloadavg()
    g = f"GEMM {size}x{size}x{size}, {t} threads: "
    if gemm["branchyGflops"] is not None:
        g += (f"Branchy {gemm['branchyGflops']:.1f} GFLOP/s, numpy {gemm['numpyGflops']:.1f} GFLOP/s: "
              f"Branchy at {100 * gemm['branchyGflops'] / gemm['numpyGflops']:.0f}% of numpy")
    else:
        g += f"Branchy {'not available' if branchy.unavailable else 'failed: ' + error}, numpy {gemm['numpyGflops']:.1f} GFLOP/s"
    print("\n".join([(f"Branchy kernels {branchy.isa}; " if branchy.isa else "") + f"ONNX Runtime {ort.__version__}, numpy {np.__version__} "
                     f"({gemm['blas']}); best of {args.repeats} interleaved run(s) of {args.seconds:g} s each; "
                     f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after", "",
                     table(rows, f"branchy bench not available: {branchy.unavailable}" if branchy.unavailable else None)]
                    + notes + ["", g]))
    if args.json:
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor() or "unknown")
        with open(args.json, "w") as f:
            json.dump({"ortVersion": ort.__version__, "numpyVersion": np.__version__, "blas": gemm["blas"],
                       "machine": {"cpu": cpu, "cores": os.cpu_count(), "system": platform.platform(), "loadBefore": load_before, "loadAfter": load_after},
                       "repeats": args.repeats, "seconds": args.seconds, "branchyUnavailable": branchy.unavailable, "branchyIsa": branchy.isa,
                       "rows": rows, "gemm": gemm}, f, indent=2)
            f.write("\n")


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
    c.add_argument("--precisions", default="float32", help="comma-separated: float32, int8")
    c.add_argument("--training-set", help="IDX training set folder (int8: ONNX Runtime's calibration images)")
    g = sub.add_parser("numpy-gemm")
    for k in ("--m", "--n", "--k"):
        g.add_argument(k, type=int, default=GEMM_SIZE)
    g.add_argument("--seconds", type=float, default=0.3)
    args = parser.parse_args()
    if args.command == "numpy-gemm":
        print(json.dumps({"gflops": numpy_gemm(args.m, args.n, args.k, args.seconds)}))
    elif args.repeats < 1 or args.seconds <= 0:
        raise SystemExit("ort_bench: --repeats must be >= 1 and --seconds > 0")
    else:
        compare(args)


if __name__ == "__main__":
    main()
