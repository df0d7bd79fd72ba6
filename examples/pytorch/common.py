"""Shared code for the PyTorch early-exit examples (mobilenet_exits.py, resnet_exits.py).

- read_idx / load_split: a gzip + struct IDX reader; images become pixel/255 as float32 in
  N x 1 x 28 x 28 (NCHW) with no mean/std normalisation, exactly Branchy's input.
- split_held_out / write_held_out: the last N (default 5,000) samples of the training files,
  in file order, are held out and never trained on; write_held_out copies them (raw uint8,
  the originals' IDX layout) to DIR/heldout-images-idx3-ubyte.gz and
  DIR/heldout-labels-idx1-ubyte.gz.
- train_joint: the BranchyNet joint loss (a weighted sum of every exit's cross-entropy),
  Adam with a cosine learning-rate decay, random horizontal flips, fixed seeds.
- export_all / verify_onnx: the TorchScript (dynamo=False, opset 17) and dynamo (opset 18,
  external data) exports and their check with ONNX Runtime on the whole test set.
- describe_onnx: opset, op types, inputs/outputs with shapes and file sizes of an ONNX file.

Needs torch (CPU build), onnx, onnxscript (for the dynamo exporter) and onnxruntime, except

    python3 common.py --write-held-out DIR [--held-out N] [--dataset DIR]

which writes the held-out files without training and imports only numpy, gzip and struct
(the data section below comes before the torch imports and the script exits there).
"""

import argparse
import collections
import gzip
import os
import random
import struct
import sys
import time

import numpy as np

DATASET_DIR = "/usr/share/datasets/fashion-mnist"
EXIT_NAMES = ("device_exit", "edge_exit", "cloud_exit")
HELD_OUT = 5000  # the last HELD_OUT training samples (file order) are never trained on
HELD_OUT_IMAGES = "heldout-images-idx3-ubyte.gz"
HELD_OUT_LABELS = "heldout-labels-idx1-ubyte.gz"


# ---------------------------------------------------------------- data (numpy, gzip, struct only)

IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Reads an IDX file (optionally gzip-compressed) into a numpy array of its own shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise ValueError(f"{path}: not an IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    array = np.frombuffer(data, dtype=IDX_DTYPES[dtype_code], offset=4 + 4 * ndim)
    return array.reshape(dims)


def write_idx(path, array):
    """Writes a uint8 array as a gzip-compressed IDX file: magic 0x0000 08 ndim, then each
    dimension as a big-endian uint32, then the bytes. The gzip header carries no file name
    and mtime 0, so the same array always gives the same file."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"{path}: write_idx writes uint8 only, got {array.dtype}")
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
        f.write(header)
        f.write(array.tobytes())


def read_raw(split, dataset_dir=DATASET_DIR):
    """split is 'train' or 't10k'. Returns (images uint8 N x 28 x 28, labels uint8 N) as stored."""
    images = read_idx(os.path.join(dataset_dir, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(dataset_dir, f"{split}-labels-idx1-ubyte.gz"))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{dataset_dir}: {images.shape[0]} {split} images but {labels.shape[0]} labels")
    return images, labels


def to_input(images, labels):
    """uint8 N x 28 x 28 -> float32 N x 1 x 28 x 28 in [0, 1] (pixel / 255), labels int64."""
    x = (images.astype(np.float32) / 255.0).reshape(-1, 1, images.shape[1], images.shape[2])
    return x, labels.astype(np.int64)


def load_split(split, dataset_dir=DATASET_DIR):
    """split is 'train' or 't10k'. Returns (images float32 N x 1 x 28 x 28 in [0, 1], labels int64)."""
    return to_input(*read_raw(split, dataset_dir))


def split_held_out(n_total, held_out=HELD_OUT):
    """The rule: of n_total training samples (file order), [0, n_total - held_out) are trained
    on and [n_total - held_out, n_total) are held out. Returns the two index ranges."""
    if not 0 <= held_out < n_total:
        raise ValueError(f"--held-out {held_out}: must be in [0, {n_total})")
    cut = n_total - held_out
    return range(0, cut), range(cut, n_total)


def load_train_and_held_out(dataset_dir=DATASET_DIR, held_out=HELD_OUT):
    """Returns ((x_train, y_train), (x_held, y_held)) as model input (see to_input)."""
    images, labels = read_raw("train", dataset_dir)
    train, held = split_held_out(images.shape[0], held_out)
    return (to_input(images[:train.stop], labels[:train.stop]),
            to_input(images[held.start:held.stop], labels[held.start:held.stop]))


def write_held_out(out_dir, dataset_dir=DATASET_DIR, held_out=HELD_OUT):
    """Writes the held-out training samples (raw uint8, file order) to
    out_dir/heldout-images-idx3-ubyte.gz (IDX magic 0x00000803, dims N, 28, 28) and
    out_dir/heldout-labels-idx1-ubyte.gz (magic 0x00000801, dim N). Returns the two paths."""
    images, labels = read_raw("train", dataset_dir)
    _, held = split_held_out(images.shape[0], held_out)
    os.makedirs(out_dir, exist_ok=True)
    image_path = os.path.join(out_dir, HELD_OUT_IMAGES)
    label_path = os.path.join(out_dir, HELD_OUT_LABELS)
    write_idx(image_path, images[held.start:held.stop])
    write_idx(label_path, labels[held.start:held.stop])
    counts = np.bincount(labels[held.start:held.stop], minlength=10)
    print(f"held out training samples {held.start}..{held.stop - 1} ({len(held):,}): "
          f"{image_path} {os.path.getsize(image_path):,} B, {label_path} {os.path.getsize(label_path):,} B; "
          f"per class {counts.tolist()}", flush=True)
    return image_path, label_path


def _held_out_main(argv=None):
    p = argparse.ArgumentParser(description="Writes the held-out Fashion-MNIST training samples "
                                "(never trained on) as gzip IDX files; no torch needed.")
    p.add_argument("--write-held-out", metavar="DIR", required=True,
                   help="writes DIR/" + HELD_OUT_IMAGES + " and DIR/" + HELD_OUT_LABELS)
    p.add_argument("--held-out", type=int, default=HELD_OUT,
                   help="the last N training samples are held out (default %(default)s)")
    p.add_argument("--dataset", default=DATASET_DIR, help="IDX directory (default %(default)s)")
    args = p.parse_args(argv)
    write_held_out(args.write_held_out, args.dataset, args.held_out)
    return 0


if __name__ == "__main__":  # the torch-free entry point: stop before the torch imports below
    sys.exit(_held_out_main())

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# ---------------------------------------------------------------- model shape

class ThreeExitNet(nn.Module):
    """Three stages (device, edge, cloud), each a trunk and an exit head:

        a = device(x)  -> device_head(a)   first output
        b = edge(a)    -> edge_head(b)     second output
        c = cloud(b)   -> cloud_head(c)    third output

    a and b are the branch points: the last tensors a head shares with the deeper exits,
    so Branchy cuts the stages there and forwards them over the network."""

    def __init__(self, device, device_head, edge, edge_head, cloud, cloud_head):
        super().__init__()
        self.device, self.device_head = device, device_head
        self.edge, self.edge_head = edge, edge_head
        self.cloud, self.cloud_head = cloud, cloud_head

    def forward(self, x):
        a = self.device(x)
        b = self.edge(a)
        c = self.cloud(b)
        return self.device_head(a), self.edge_head(b), self.cloud_head(c)

    @torch.no_grad()
    def branch_point_sizes(self):
        was_training = self.training
        self.eval()
        a = self.device(torch.zeros(1, 1, 28, 28))
        b = self.edge(a)
        self.train(was_training)
        return {"device->edge " + "x".join(map(str, a.shape[1:])): a[0].numel(),
                "edge->cloud " + "x".join(map(str, b.shape[1:])): b[0].numel()}

    def stage_parameters(self):
        return {name: sum(p.numel() for p in getattr(self, name).parameters()) +
                sum(p.numel() for p in getattr(self, name + "_head").parameters())
                for name in ("device", "edge", "cloud")}


# ---------------------------------------------------------------- training

def base_arguments(description, default_epochs):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", default="/tmp/onnx-examples", help="output directory (default %(default)s)")
    p.add_argument("--epochs", type=int, default=default_epochs, help="training epochs (default %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default %(default)s)")
    p.add_argument("--batch", type=int, default=128, help="batch size (default %(default)s)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak Adam learning rate (default %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default %(default)s; see README.md: 2 threads run slower while another job uses a core)")
    p.add_argument("--dataset", default=DATASET_DIR, help="IDX directory (default %(default)s)")
    p.add_argument("--limit", type=int, default=0,
                   help="train on the first N of the non-held-out samples only (smoke tests)")
    p.add_argument("--held-out", type=int, default=HELD_OUT,
                   help="the last N training samples (file order) are held out, never trained on (default %(default)s)")
    p.add_argument("--write-held-out", metavar="DIR",
                   help="also write the held-out samples to DIR/" + HELD_OUT_IMAGES + " and DIR/" + HELD_OUT_LABELS)
    return p


def seed_everything(seed, threads):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def train_joint(model, x_train, y_train, epochs, weights, batch=128, lr=3e-3, seed=1, flips=True):
    """BranchyNet joint training: loss = sum_i weights[i] * CE(exit_i logits, label).
    Adam, learning rate warmed up linearly over the first 200 steps then cosine-decayed to 0,
    random horizontal flips (Fashion-MNIST classes are left/right symmetric). Returns seconds."""
    x = torch.from_numpy(x_train)
    y = torch.from_numpy(y_train)
    n = x.shape[0]
    steps_per_epoch = (n + batch - 1) // batch
    total = epochs * steps_per_epoch
    warmup = min(200, total // 10 + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def schedule(step):
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + np.cos(np.pi * t))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    generator = torch.Generator().manual_seed(seed)
    start = time.time()
    for epoch in range(epochs):
        model.train()
        t0 = time.time()
        order = torch.randperm(n, generator=generator)
        loss_sum, correct, seen = 0.0, [0] * len(weights), 0
        for i in range(steps_per_epoch):
            idx = order[i * batch:(i + 1) * batch]
            xb, yb = x[idx], y[idx]
            if flips:
                flip = torch.rand(xb.shape[0], generator=generator) < 0.5
                xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            outputs = model(xb)
            loss = sum(w * F.cross_entropy(o, yb) for w, o in zip(weights, outputs))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * xb.shape[0]
            seen += xb.shape[0]
            for k, o in enumerate(outputs):
                correct[k] += (o.argmax(1) == yb).sum().item()
        accs = " / ".join(f"{100.0 * c / seen:.2f}%" for c in correct)
        print(f"epoch {epoch + 1}/{epochs}: loss {loss_sum / seen:.4f}, train accuracy per exit {accs}, "
              f"{time.time() - t0:.1f} s", flush=True)
    return time.time() - start


@torch.no_grad()
def predict(model, x, batch=1000):
    """Runs the model in eval mode; returns a list (one per output) of numpy logits."""
    model.eval()
    chunks = None
    for i in range(0, x.shape[0], batch):
        out = model(torch.from_numpy(x[i:i + batch]))
        if isinstance(out, torch.Tensor):
            out = (out,)
        if chunks is None:
            chunks = [[] for _ in out]
        for k, o in enumerate(out):
            chunks[k].append(o.numpy())
    return [np.concatenate(c) for c in chunks]


def accuracy(logits, labels):
    return 100.0 * float((logits.argmax(1) == labels).mean())


# ---------------------------------------------------------------- export

class FinalOnly(nn.Module):
    """Wraps an early-exit model so that it returns only the deepest exit's logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)[-1]


def export_torchscript(model, path, output_names, opset=17):
    """The TorchScript-based exporter (dynamo=False): batch dimension dynamic via dynamic_axes."""
    model.eval()
    example = torch.zeros(2, 1, 28, 28)
    dynamic_axes = {"input": {0: "batch"}}
    dynamic_axes.update({name: {0: "batch"} for name in output_names})
    torch.onnx.export(model, (example,), path, dynamo=False, opset_version=opset,
                      input_names=["input"], output_names=list(output_names), dynamic_axes=dynamic_axes)


def export_dynamo(model, path, output_names, opset=18):
    """The default torch.export-based exporter (dynamo=True), weights in an external data file."""
    model.eval()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for name in os.listdir(os.path.dirname(path)):  # stale external data from an earlier run
        os.remove(os.path.join(os.path.dirname(path), name))
    example = torch.zeros(2, 1, 28, 28)
    batch = torch.export.Dim("batch", min=1, max=65536)
    torch.onnx.export(model, (example,), path, dynamo=True, opset_version=opset, external_data=True,
                      input_names=["input"], output_names=list(output_names),
                      dynamic_shapes={"x": {0: batch}})


def verify_onnx(path, x_test, y_test, reference, output_names, batch=1000):
    """Runs the ONNX file with ONNX Runtime over the whole test set, compares with PyTorch's
    logits (reference: list of numpy arrays) and prints per-output max |difference| and accuracy."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    assert names == list(output_names), f"{path}: outputs {names}, expected {list(output_names)}"
    chunks = [[] for _ in names]
    for i in range(0, x_test.shape[0], batch):
        for k, o in enumerate(session.run(names, {input_name: x_test[i:i + batch]})):
            chunks[k].append(o)
    results = []
    for name, c, ref in zip(names, chunks, reference):
        got = np.concatenate(c)
        diff = float(np.abs(got - ref).max())
        acc = accuracy(got, y_test)
        agree = int((got.argmax(1) == ref.argmax(1)).sum())
        results.append((name, acc, diff, agree))
        print(f"  {name:12s} ORT accuracy {acc:.2f}%  max |ORT - PyTorch| {diff:.3g}  "
              f"argmax agreement {agree}/{len(ref)}")
    return results


def file_size(path):
    total = os.path.getsize(path)
    directory = os.path.dirname(path)
    base = os.path.basename(path)
    extra = [n for n in os.listdir(directory) if n != base and n.startswith(base)] if directory else []
    for n in extra:
        total += os.path.getsize(os.path.join(directory, n))
    return total


def _shape(value_info):
    dims = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else "?"))
    return dims


def describe_onnx(path):
    """Prints opset, op-type counts, inputs/outputs with shapes, initializers and sizes."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    directory = os.path.dirname(path)
    files = sorted(n for n in os.listdir(directory) if n == os.path.basename(path) or
                   n.startswith(os.path.basename(path)))
    print(f"== {path}")
    print("  files: " + ", ".join(f"{n} {os.path.getsize(os.path.join(directory, n)):,} B" for n in files))
    print("  ir_version", model.ir_version, "opset", {o.domain or "ai.onnx": o.version for o in model.opset_import},
          "producer", model.producer_name, model.producer_version)
    counts = collections.Counter(n.op_type for n in model.graph.node)
    print("  nodes", len(model.graph.node), dict(sorted(counts.items())))
    for v in model.graph.input:
        print(f"  input  {v.name} {_shape(v)} elem_type {v.type.tensor_type.elem_type}")
    for v in model.graph.output:
        print(f"  output {v.name} {_shape(v)} elem_type {v.type.tensor_type.elem_type}")
    external = sum(1 for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL)
    print(f"  initializers {len(model.graph.initializer)} ({external} external), "
          f"value_info {len(model.graph.value_info)}, functions {len(model.functions)}")
    return model


def run_exports(model, name, out_dir, x_test, y_test, final_only=False, held=None):
    """(a) TorchScript and (b) dynamo exports of every exit, (c) optionally a final-exit-only
    TorchScript export, each checked with ONNX Runtime on the test set. held: optional
    (x, y) of the held-out training samples, whose PyTorch accuracy is printed too.
    Returns {path: results}."""
    os.makedirs(out_dir, exist_ok=True)
    model.eval()
    reference = predict(model, x_test)
    print("PyTorch test accuracy per exit: " +
          ", ".join(f"{n} {accuracy(r, y_test):.2f}%" for n, r in zip(EXIT_NAMES, reference)), flush=True)
    if held is not None and held[0].shape[0]:
        held_logits = predict(model, held[0])
        print(f"PyTorch held-out accuracy per exit ({held[0].shape[0]:,} training samples never trained on): " +
              ", ".join(f"{n} {accuracy(r, held[1]):.2f}%" for n, r in zip(EXIT_NAMES, held_logits)), flush=True)
    results = {}

    path = os.path.join(out_dir, f"{name}-exits.onnx")
    export_torchscript(model, path, EXIT_NAMES)
    print(f"(a) {path} (TorchScript exporter, opset 17): {file_size(path):,} B")
    results[path] = verify_onnx(path, x_test, y_test, reference, EXIT_NAMES)

    path = os.path.join(out_dir, f"{name}-exits-dynamo", "model.onnx")
    export_dynamo(model, path, EXIT_NAMES)
    print(f"(b) {path} (dynamo exporter, opset 18, external data): {file_size(path):,} B")
    results[path] = verify_onnx(path, x_test, y_test, reference, EXIT_NAMES)

    if not final_only:
        return results
    path = os.path.join(out_dir, f"{name}-final-only.onnx")
    export_torchscript(FinalOnly(model), path, ["logits"])
    print(f"(c) {path} (final exit only, TorchScript exporter, opset 17): {file_size(path):,} B")
    results[path] = verify_onnx(path, x_test, y_test, reference[-1:], ["logits"])
    return results


def main(build_model, name, description, default_epochs, weights, final_only=False):
    args = base_arguments(description, default_epochs).parse_args()
    seed_everything(args.seed, args.threads)
    (x_train, y_train), (x_held, y_held) = load_train_and_held_out(args.dataset, args.held_out)
    x_test, y_test = load_split("t10k", args.dataset)
    print(f"training on samples 0..{x_train.shape[0] - 1} of the training files, "
          f"holding out the last {x_held.shape[0]:,}", flush=True)
    if args.write_held_out:
        write_held_out(args.write_held_out, args.dataset, args.held_out)
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    model = build_model()
    n = count_parameters(model)
    print(f"{name}: {n:,} parameters ({4 * n:,} bytes as float32), exit weights {weights}, "
          f"{args.epochs} epochs, batch {args.batch}, Adam lr {args.lr}, seed {args.seed}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print("branch points (floats per sample): " + ", ".join(
        f"{k} = {v}" for k, v in model.branch_point_sizes().items()))
    print("parameters per stage (trunk + exit head): " + ", ".join(
        f"{k} {v:,}" for k, v in model.stage_parameters().items()))
    seconds = train_joint(model, x_train, y_train, args.epochs, weights, args.batch, args.lr, args.seed)
    print(f"training time {seconds:.1f} s")
    results = run_exports(model, name, args.out, x_test, y_test, final_only, held=(x_held, y_held))
    print()
    for path in results:
        describe_onnx(path)
    return model, results
