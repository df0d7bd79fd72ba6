"""Branchy models as ONNX graphs, and the numpy twins of Branchy's evaluation arithmetic.

Shared by scripts/export-onnx.py and scripts/lib/ort_bench.py. Reads model.json and
weights.safetensors directly (numpy only, no torch) and mirrors, in float32:

  - the operators of Sources/BranchyModel/Operators, one entry each in OPERATORS (how a
    layer is read and which ONNX nodes it becomes), residual blocks included (an Add of the
    body and the shortcut), and the batch-norm folding of CompiledNetwork (optional: `fold`);
  - the pooling geometry of Sources/BranchyTensor/Pooling.swift (ceil mode drops a last
    window that would start in the right/bottom padding, as PyTorch does);
  - the feature codecs of Sources/BranchyTensor/FeatureCodecKind.swift (one per link, as a
    model's `defaults.codec` lists them), applied per sample;
  - the binary layers of Sources/BranchyTensor/Binary.swift (`sign`, `binlinear`);
  - softmax, entropy and argmax of Sources/BranchyTensor/Softmax.swift;
  - the IDX reader of Sources/BranchyData (pixels = byte / 255 in float32).
"""

import gzip
import json
import os
import struct

import numpy as np

OPSET = 17
IR_VERSION = 8  # the IR of opset 17, so that older runtimes load the graphs too

# --- Model files ---------------------------------------------------------------


class ModelFormatError(Exception):
    pass


_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8")}


def read_safetensors(path):
    """name -> float32 array. Accepts F32, F16, BF16 and F64, as SafeTensors.swift does."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ModelFormatError(f"{path}: too short for a safetensors header")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ModelFormatError(f"{path}: header length {n} exceeds the file")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype, shape = entry["dtype"], [int(d) for d in entry["shape"]]
        begin, end = (int(o) for o in entry["data_offsets"])
        raw = data[begin:end]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2", count=count).astype(np.uint32) << 16
            values = bits.view(np.float32)
        elif dtype in _DTYPES:
            values = np.frombuffer(raw, dtype=_DTYPES[dtype], count=count).astype(np.float32)
        else:
            raise ModelFormatError(f"{path}: tensor {name} has unsupported dtype {dtype}")
        tensors[name] = np.ascontiguousarray(values.reshape(shape), dtype=np.float32)
    return tensors


def conv_out(size, kernel, stride, pad):
    span = size + 2 * pad - kernel
    return 0 if span < 0 else span // stride + 1


def pool_out(size, kernel, stride, pad, ceil):
    """Pool2DGeometry.outSize."""
    span = size + 2 * pad - kernel
    numerator = span + stride - 1 if ceil else span
    if numerator < 0:
        return 0
    out = numerator // stride + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


CODECS = ("float32", "float16", "int8", "uint8", "int8-channel", "int4", "sign")


def parse_codecs(text, links):
    """`defaults.codec` as NetworkPlan accepts it: one FeatureCodecKind name (case-insensitive;
    `1bit` is `sign`) for every link, or a comma-separated list with one per link. Returns one
    canonical name per link."""
    names = []
    for part in str(text).split(","):
        name = part.lower()
        name = "sign" if name == "1bit" else name
        if name not in CODECS:
            raise ModelFormatError(f"unknown codec '{part}' in defaults.codec '{text}' "
                                   f"(expected {', '.join(CODECS)})")
        names.append(name)
    if len(names) == 1:
        return names * links
    if len(names) != links:
        raise ModelFormatError(f"defaults.codec '{text}' names {len(names)} codecs; give one, "
                               f"or one per link between stages ({links})")
    return names


def sign(w):
    """Sign.value elementwise: +1 where w >= 0, else -1 (NaN too)."""
    return np.where(w >= 0, np.float32(1), np.float32(-1)).astype(np.float32)


def binary_scales(weight):
    """BinaryLinear.scales: α[o] = mean |W[o, ·]|, summed in index order in float32."""
    inputs = weight.shape[1]
    total = np.cumsum(np.abs(weight).astype(np.float32), axis=1, dtype=np.float32)[:, -1]
    return (total / np.float32(inputs)).astype(np.float32)


class Model:
    """model.json + weights: stages with their layers and every shape inferred."""

    def __init__(self, directory):
        self.directory = directory
        with open(os.path.join(directory, "model.json")) as f:
            self.spec = json.load(f)
        self.weights = read_safetensors(os.path.join(directory, "weights.safetensors"))
        self.name = self.spec["name"]
        self.input_shape = [int(d) for d in self.spec["input"]]
        self.classes = int(self.spec["classes"])
        defaults = self.spec.get("defaults") or {}
        # `defaults.codec`: one codec for every link, or one per link between stages ("sign,int4").
        self.codec = defaults.get("codec") or "float32"
        self.stages = []
        shape = list(self.input_shape)
        for st in self.spec["stages"]:
            stage = {"name": st["name"], "exit_name": st["exit"]["name"], "input_shape": list(shape)}
            stage["trunk"], shape = self._plan(st["trunk"], f"{st['name']}.trunk", shape)
            stage["output_shape"] = list(shape)
            stage["exit"], exit_shape = self._plan(st["exit"]["layers"], f"{st['name']}.exit", shape)
            if exit_shape != [self.classes]:
                raise ModelFormatError(f"exit {stage['exit_name']} produces {exit_shape}, not [{self.classes}]")
            self.stages.append(stage)
        exits = len(self.stages)
        self.codecs = parse_codecs(self.codec, exits - 1)
        self.thresholds = [float(t) for t in defaults.get("thresholds", [0.5] * (exits - 1))]
        if len(self.thresholds) != exits - 1:
            raise ModelFormatError(f"need {exits - 1} thresholds, got {len(self.thresholds)}")

    def stage_names(self):
        return [s["name"] for s in self.stages]

    def link_codec(self, index):
        """The codec of the features entering stage `index` (1 or later) from stage index - 1."""
        return self.codecs[index - 1]

    def _weight(self, name, shape):
        if name not in self.weights:
            raise ModelFormatError(f"weights.safetensors has no tensor {name}")
        w = self.weights[name]
        if list(w.shape) != list(shape):
            raise ModelFormatError(f"{name} has shape {list(w.shape)}, expected {list(shape)}")
        return w

    def _plan(self, specs, prefix, shape):
        """Layers with their parameters, each planned by its entry in OPERATORS; returns
        (layers, output shape)."""
        layers = []
        for l in specs:
            op = l["op"]
            if op not in OPERATORS:
                raise ModelFormatError(f"{prefix}: unknown op {op}")
            fields, out_shape = OPERATORS[op].plan(self, l, prefix, list(shape))
            layer = {"op": op, "input_shape": list(shape), **fields, "output_shape": list(out_shape)}
            layers.append(layer)
            shape = list(out_shape)
        return layers, shape


# --- ONNX graphs ---------------------------------------------------------------


def fold_batchnorm(conv, bn):
    """A conv layer's (weight, bias) with the batch norm after it folded in, in float32 as
    CompiledNetwork does it: scale = gamma / sqrt(var + eps), shift = beta - mean * scale,
    weight * scale per output channel, bias * scale + shift (bias 0 when the conv has none)."""
    f = np.float32
    scale = (bn["gamma"] / np.sqrt(bn["var"] + f(bn["epsilon"]))).astype(f)
    shift = (bn["beta"] - bn["mean"] * scale).astype(f)
    weight = (conv["weight"] * scale[:, None, None, None]).astype(f)
    bias = conv["bias"] if conv["bias"] is not None else np.zeros_like(scale)
    return weight, (bias * scale + shift).astype(f)


class _GraphBuilder:
    def __init__(self, fold=True):
        from onnx import helper, numpy_helper  # noqa: F401  (imported here: the numpy twins need no onnx)
        self.helper, self.numpy_helper = helper, numpy_helper
        # Fold a batch norm that directly follows a conv into it, as Branchy's compiled inference does.
        self.fold = fold
        self.nodes, self.initializers, self.names = [], [], set()
        self.counter = 0

    def fresh(self, base):
        self.counter += 1
        return f"{base}/{self.counter}"

    def const(self, name, array):
        if name not in self.names:
            self.names.add(name)
            self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name=name))
        return name

    def node(self, op, inputs, base, output=None, **attrs):
        out = output or self.fresh(base)
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def sign(self, x, base, output=None):
        """Sign.forward: +1 where x >= 0 (0 and -0 included), else -1 (NaN too); ONNX's Sign
        would give 0 for 0."""
        one, minus_one, zero = (self.const(f"sign.{v}", np.array(float(v), dtype=np.float32)) for v in (1, -1, 0))
        nonnegative = self.node("GreaterOrEqual", [x, zero], base)
        return self.node("Where", [nonnegative, one, minus_one], base, output)

    def layers(self, layers, x, prefix, last_output=None):
        """Appends `layers` to the graph starting at value `x`, each by its entry in OPERATORS
        (an entry may take the layers after it too, as a conv its batch norm); returns the last
        value's name. `last_output` names the last value (an Identity is added when there are
        no layers)."""
        if not layers:
            return self.node("Identity", [x], prefix, output=last_output) if last_output else x
        i = 0
        while i < len(layers):
            l = layers[i]
            entry = OPERATORS[l["op"]]
            n = entry.span(self, layers, i)
            out = last_output if (last_output and i + n == len(layers)) else None
            x = entry.emit(self, layers[i:i + n], x, f"{prefix}.{i}.{l['op']}", out)
            i += n
        return x

    def model(self, name, inputs, outputs, doc):
        from onnx import TensorProto
        h = self.helper

        def info(n, shape):
            return h.make_tensor_value_info(n, TensorProto.FLOAT, ["N"] + list(shape))

        graph = h.make_graph(self.nodes, name, [info(n, s) for n, s in inputs], [info(n, s) for n, s in outputs],
                             initializer=self.initializers, doc_string=doc)
        m = h.make_model(graph, producer_name="branchy export-onnx", opset_imports=[h.make_opsetid("", OPSET)])
        m.ir_version = IR_VERSION
        return m


# --- Operators -----------------------------------------------------------------
#
# One entry per Branchy operator (Sources/BranchyModel/Operators, registered in
# Operators.swift); a new operator is one entry here. `plan(model, spec, prefix, shape)` reads
# one layer of model.json (its tensors through model._weight, named `<prefix>.<name>.…`) on
# its input shape and returns (fields, output shape); the fields join "op", "input_shape" and
# "output_shape" in the layer. `emit(g, group, x, base, out)` appends the ONNX nodes of
# `group` (the layer, and the layers after it that it took) to the graph builder `g` on value
# `x`, naming nodes after `base` and the last value `out` when given; returns the last value.
# `span(g, layers, i)` says how many layers from layers[i] on the entry takes (1 by default).


class Operator:
    def __init__(self, plan, emit, span=None):
        self.plan, self.emit = plan, emit
        self.span = span or (lambda g, layers, i: 1)


def _same_shape(model, spec, prefix, shape):
    """The plan of an operator without fields whose output has the input's shape."""
    return {}, shape


def _onnx_op(name):
    """The emit of an operator that is one ONNX node of the same meaning, without attributes."""
    return lambda g, group, x, base, out: g.node(name, [x], base, out)


def _bias(model, spec, name, out):
    return model._weight(name + ".bias", [out]) if spec.get("bias", True) else None


def _plan_conv(model, spec, prefix, shape):
    c, h, w = shape
    k, s, p, out = spec["kernel"], spec.get("stride", 1), spec.get("pad", 0), spec["out"]
    name = f"{prefix}.{spec['name']}"
    return (dict(kernel=k, stride=s, pad=p, out=out, name=name, weight=model._weight(name + ".weight", [out, c, k, k]),
                 bias=_bias(model, spec, name, out)),
            [out, conv_out(h, k, s, p), conv_out(w, k, s, p)])


def _conv_span(g, layers, i):
    """A conv takes the batch norm right after it when the builder folds (as CompiledNetwork does)."""
    return 2 if g.fold and i + 1 < len(layers) and layers[i + 1]["op"] == "batchnorm" else 1


def _emit_conv(g, group, x, base, out):
    l = group[0]
    if len(group) == 2:
        bn = group[1]
        weight, bias = fold_batchnorm(l, bn)
        inputs = [x, g.const(f"{l['name']}.weight+{bn['name']}", weight), g.const(f"{l['name']}.bias+{bn['name']}", bias)]
    else:
        inputs = [x, g.const(l["name"] + ".weight", l["weight"])]
        if l["bias"] is not None:
            inputs.append(g.const(l["name"] + ".bias", l["bias"]))
    p, k, s = l["pad"], l["kernel"], l["stride"]
    return g.node("Conv", inputs, base, out, kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])


def _plan_pool(model, spec, prefix, shape):
    c, h, w = shape
    k = spec["kernel"]
    s, p, ceil = spec.get("stride", k), spec.get("pad", 0), bool(spec.get("ceil", False))
    return dict(kernel=k, stride=s, pad=p, ceil=ceil), [c, pool_out(h, k, s, p, ceil), pool_out(w, k, s, p, ceil)]


def _pool_emitter(onnx_op, **extra):
    def emit(g, group, x, base, out):
        # Floor mode with the bottom/right padding that gives exactly Branchy's output size
        # (ceil mode included): no reliance on a runtime's ceil_mode rules. Both ONNX pools
        # and Branchy's clip windows to the input, so the padding never enters a result.
        l = group[0]
        _, h, w = l["input_shape"]
        _, oh, ow = l["output_shape"]
        k, s, p = l["kernel"], l["stride"], l["pad"]
        end_h = max(0, (oh - 1) * s + k - h - p)
        end_w = max(0, (ow - 1) * s + k - w - p)
        return g.node(onnx_op, [x], base, out, kernel_shape=[k, k], strides=[s, s], pads=[p, p, end_h, end_w], **extra)
    return emit


def _plan_flatten(model, spec, prefix, shape):
    return {}, [int(np.prod(shape))]


def _plan_dense(model, spec, prefix, shape):
    """`linear` and `binlinear`: name, out and the weight (out, in) on a flat input."""
    if len(shape) != 1:
        raise ModelFormatError(f"{prefix}: {spec['op']} needs a flat input, got {shape}")
    name = f"{prefix}.{spec['name']}"
    out = spec["out"]
    return dict(name=name, out=out, weight=model._weight(name + ".weight", [out, shape[0]]),
                bias=_bias(model, spec, name, out)), [out]


def _emit_linear(g, group, x, base, out):
    l = group[0]
    inputs = [x, g.const(l["name"] + ".weight", l["weight"])]
    if l["bias"] is not None:
        inputs.append(g.const(l["name"] + ".bias", l["bias"]))
    return g.node("Gemm", inputs, base, out, transB=1)


def _plan_binlinear(model, spec, prefix, shape):
    fields, out_shape = _plan_dense(model, spec, prefix, shape)
    weight = fields.pop("weight")
    return dict(fields, weight_sign=sign(weight), alpha=binary_scales(weight)), out_shape


def _emit_binlinear(g, group, x, base, out):
    # α[o] · dot(sign(x), sign(W[o])) + b[o], as BinaryLinear computes it: the dot of two
    # ±1 vectors is an exact integer in float32, then one rounding for α and one for b.
    l = group[0]
    n = l["name"]
    dot = g.node("Gemm", [g.sign(x, base), g.const(n + ".weight.sign", l["weight_sign"])], base, transB=1)
    x = g.node("Mul", [dot, g.const(n + ".alpha", l["alpha"])], base, None if l["bias"] is not None else out)
    if l["bias"] is not None:
        x = g.node("Add", [x, g.const(n + ".bias", l["bias"])], base, out)
    return x


def _plan_batchnorm(model, spec, prefix, shape):
    name = f"{prefix}.{spec['name']}"
    c = shape[0]
    return dict(name=name, epsilon=float(np.float32(spec.get("epsilon", 1e-5))),
                gamma=model._weight(name + ".weight", [c]), beta=model._weight(name + ".bias", [c]),
                mean=model._weight(name + ".running_mean", [c]), var=model._weight(name + ".running_var", [c])), shape


def _emit_batchnorm(g, group, x, base, out):
    l = group[0]
    n = l["name"]
    return g.node("BatchNormalization",
                  [x, g.const(n + ".weight", l["gamma"]), g.const(n + ".bias", l["beta"]),
                   g.const(n + ".running_mean", l["mean"]), g.const(n + ".running_var", l["var"])],
                  base, out, epsilon=l["epsilon"])


def _plan_lrn(model, spec, prefix, shape):
    return dict(size=int(spec.get("size", 5)), alpha=float(np.float32(spec.get("alpha", 1e-4))),
                beta=float(np.float32(spec.get("beta", 0.75))), k=float(np.float32(spec.get("k", 2)))), shape


def _emit_lrn(g, group, x, base, out):
    # ONNX divides alpha by the window size; Branchy's (Chainer's) form does not.
    l = group[0]
    return g.node("LRN", [x], base, out, size=l["size"], alpha=l["alpha"] * l["size"], beta=l["beta"], bias=l["k"])


def _plan_padchannels(model, spec, prefix, shape):
    c, h, w = shape
    out = int(spec["out"])
    front = int(spec.get("pad", out - c))
    return dict(front=front, back=out - c - front), [out, h, w]


def _emit_padchannels(g, group, x, base, out):
    l = group[0]
    pads = g.const(f"{base}.pads", np.array([0, l["front"], 0, 0, 0, l["back"], 0, 0], dtype=np.int64))
    return g.node("Pad", [x, pads], base, out, mode="constant")


def _plan_residual(model, spec, prefix, shape):
    # The block's layers are named as if they stood in the enclosing list (same prefix).
    body, body_shape = model._plan(spec["layers"], prefix, shape)
    shortcut, shortcut_shape = model._plan(spec.get("shortcut") or [], prefix, shape)
    if body_shape != shortcut_shape:
        raise ModelFormatError(f"{prefix}: residual block {spec['name']}: body gives {body_shape}, "
                               f"shortcut {shortcut_shape}")
    return dict(name=f"{prefix}.{spec['name']}", body=body, shortcut=shortcut), body_shape


def _emit_residual(g, group, x, base, out):
    l = group[0]
    body = g.layers(l["body"], x, f"{base}.body")
    shortcut = g.layers(l["shortcut"], x, f"{base}.shortcut") if l["shortcut"] else x
    return g.node("Add", [body, shortcut], base, out)


OPERATORS = {
    "conv": Operator(_plan_conv, _emit_conv, _conv_span),
    "maxpool": Operator(_plan_pool, _pool_emitter("MaxPool")),
    "avgpool": Operator(_plan_pool, _pool_emitter("AveragePool", count_include_pad=0)),
    "relu": Operator(_same_shape, _onnx_op("Relu")),
    "flatten": Operator(_plan_flatten, lambda g, group, x, base, out: g.node("Flatten", [x], base, out, axis=1)),
    "linear": Operator(_plan_dense, _emit_linear),
    "batchnorm": Operator(_plan_batchnorm, _emit_batchnorm),
    "residual": Operator(_plan_residual, _emit_residual),
    "lrn": Operator(_plan_lrn, _emit_lrn),
    "padchannels": Operator(_plan_padchannels, _emit_padchannels),
    "sign": Operator(_same_shape, lambda g, group, x, base, out: g.sign(x, base, out)),
    "binlinear": Operator(_plan_binlinear, _emit_binlinear),
    # ONNX HardSwish (opset 14): x · max(0, min(1, x / 6 + 1 / 2)), Branchy's function with
    # other roundings.
    "hardswish": Operator(_same_shape, _onnx_op("HardSwish")),
}


# Input names: an ONNX value has one name, so a stage graph's input cannot also be called
# `features` like its trunk output.
STAGE_INPUT = "input"
FULL_INPUT = "image"


def stage_graph(model, index, fold=True):
    """Stage `index`: input (N, stage input shape) -> outputs `features` (trunk) and `logits` (exit)."""
    st = model.stages[index]
    g = _GraphBuilder(fold)
    feats = g.layers(st["trunk"], STAGE_INPUT, f"{st['name']}.trunk", last_output="features")
    g.layers(st["exit"], feats, f"{st['name']}.exit", last_output="logits")
    return g.model(f"{model.name}.{st['name']}", [(STAGE_INPUT, st["input_shape"])],
                   [("features", st["output_shape"]), ("logits", [model.classes])],
                   f"Branchy model {model.name}, stage {st['name']} (trunk + exit {st['exit_name']})")


def full_graph(model, fold=True):
    """Every trunk chained, every exit computed: input `image` -> `logits_<exit name>` per exit."""
    g = _GraphBuilder(fold)
    x = FULL_INPUT
    outputs = []
    for st in model.stages:
        x = g.layers(st["trunk"], x, f"{st['name']}.trunk")
        name = f"logits_{st['exit_name']}"
        g.layers(st["exit"], x, f"{st['name']}.exit", last_output=name)
        outputs.append((name, [model.classes]))
    return g.model(f"{model.name}.full", [(FULL_INPUT, model.input_shape)], outputs,
                   f"Branchy model {model.name}: all stages, all exits")


def export(model, out_dir, fold=True):
    """Writes <stage>.onnx for every stage and full.onnx; returns {path name: file}. With `fold`,
    a batch norm right after a conv is folded into the conv's weights (as Branchy's compiled
    inference runs it); without, it is a BatchNormalization node."""
    import onnx
    os.makedirs(out_dir, exist_ok=True)
    files = {}
    graphs = [(st["name"], stage_graph(model, i, fold)) for i, st in enumerate(model.stages)]
    graphs.append(("full", full_graph(model, fold)))
    for name, m in graphs:
        onnx.checker.check_model(m, full_check=True)
        path = os.path.join(out_dir, f"{name}.onnx")
        onnx.save(m, path)
        files[name] = path
    return files


# --- Data ----------------------------------------------------------------------


def _idx_file(directory, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{directory}: neither {name} nor {name}.gz")


def _read_idx(path, magic):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        blob = f.read()
    (m,) = struct.unpack(">I", blob[:4])
    if m != magic:
        raise ModelFormatError(f"{path}: magic {m:#010x}, expected {magic:#010x}")
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, blob[4:4 + 4 * dims])
    payload = np.frombuffer(blob, dtype=np.uint8, offset=4 + 4 * dims)
    if payload.size != int(np.prod(shape)):
        raise ModelFormatError(f"{path}: {payload.size} bytes of data, header says {shape}")
    return payload.reshape(shape)


def load_test_set(path):
    """(images (N, 1, rows, cols) float32 in [0, 1], labels). `path` is a directory (test split)
    or an images file, as IDXDataset.load(path:) takes it."""
    if os.path.isdir(path):
        images = _idx_file(path, "t10k-images-idx3-ubyte")
        labels = _idx_file(path, "t10k-labels-idx1-ubyte")
    else:
        images = path
        labels = os.path.join(os.path.dirname(path), os.path.basename(path).replace("images-idx3", "labels-idx1"))
    pixels = _read_idx(images, 0x00000803)
    y = _read_idx(labels, 0x00000801)
    x = pixels.astype(np.float32) / np.float32(255)  # Float(byte) / 255, one float32 division
    return x.reshape(pixels.shape[0], 1, pixels.shape[1], pixels.shape[2]), y


# --- Branchy's arithmetic in numpy ---------------------------------------------


def _round_away(v):
    """Float.rounded(): to nearest, ties away from zero (numpy's round is ties-to-even)."""
    a = np.abs(v)
    r = np.floor(a)
    r = r + (a - r >= np.float32(0.5)).astype(v.dtype)  # a - floor(a) is exact in float32
    return np.copysign(r, v).astype(v.dtype)


def _affine_round_trip(x, levels, zero_point, lowest, highest):
    """Per-tensor affine quantisation of each row of x (N, ...) and back, in float32, as
    Int8Quantization and Int4Quantization do it: the finite range widened to include zero,
    scale = (max - min) / levels (1 when zero), q = clamp(round(x / scale) + zp, lowest,
    highest), NaN to zp, x' = (q - zp) * scale. `zero_point(lo, scale)` gives zp."""
    n = x.shape[0]
    flat = x.reshape(n, -1).astype(np.float32, copy=False)
    finite = np.isfinite(flat)
    zero = np.float32(0)
    levels = np.float32(levels)
    lo = np.minimum(zero, np.where(finite, flat, zero).min(axis=1, initial=0))
    hi = np.maximum(zero, np.where(finite, flat, zero).max(axis=1, initial=0))
    with np.errstate(over="ignore", invalid="ignore"):
        scale = (hi - lo) / levels
        bad = ~(np.isfinite(scale) & (scale > 0))
        fallback = np.where(scale == 0, np.float32(1), hi / levels - lo / levels)
        scale = np.where(bad, fallback, scale).astype(np.float32)
        zp = zero_point(lo, scale).astype(np.float32)
        r = _round_away(flat / scale[:, None]) + zp[:, None]
        q = np.where(np.isnan(r), zp[:, None], np.clip(r, lowest, highest)).astype(np.float32)
        out = (q - zp[:, None]).astype(np.float32) * scale[:, None]  # Float(Int(q) - Int(zp)) * scale
    return out.astype(np.float32).reshape(x.shape)


def int8_round_trip(x):
    """FeatureCodecKind.int8.roundTrip on each row of x (N, ...) separately, in float32."""
    return _affine_round_trip(x, 255, lambda lo, scale: np.clip(_round_away(np.float32(-128) - lo / scale), -128, 127),
                              -128, 127)


def int4_round_trip(x):
    """FeatureCodecKind.int4 (Int4Quantization) encoded and decoded, each row of x separately."""
    return _affine_round_trip(x, 15, lambda lo, scale: np.clip(_round_away(-lo / scale), 0, 15), 0, 15)


def uint8_round_trip(x):
    """FeatureCodecKind.uint8: q = clamp(round(x · 255), 0, 255) (NaN to 0), x' = q / 255."""
    with np.errstate(invalid="ignore"):
        r = _round_away((x * np.float32(255)).astype(np.float32))
        q = np.where(r > 0, np.minimum(r, np.float32(255)), np.float32(0)).astype(np.float32)
    return (q / np.float32(255)).astype(np.float32)


def sign_round_trip(x):
    """FeatureCodecKind.sign, each row of x separately: s = the mean magnitude of the finite
    values (summed in index order in double, divided by the count of all values), x' = +s where
    x >= 0 or NaN, else -s."""
    n = x.shape[0]
    flat = x.reshape(n, -1).astype(np.float32, copy=False)
    count = flat.shape[1]
    magnitudes = np.where(np.isfinite(flat), np.abs(flat), np.float32(0)).astype(np.float64)
    total = np.cumsum(magnitudes, axis=1)[:, -1] if count else np.zeros(n)  # sequential, as Swift adds
    with np.errstate(over="ignore"):
        s = (total / count if count else total).astype(np.float32)
    s = np.where(np.isfinite(s), s, np.float32(0)).astype(np.float32)
    with np.errstate(invalid="ignore"):
        out = np.where(flat < 0, -s[:, None], s[:, None]).astype(np.float32)
    return out.reshape(x.shape)


def float16_round_trip(x):
    largest = np.float32(65504)
    v = np.where(np.isfinite(x), np.clip(x, -largest, largest), x)
    return v.astype(np.float16).astype(np.float32)


def codec_round_trip(x, codec):
    """FeatureCodecKind.roundTrip of `codec` on each sample (row) of x (N, ...)."""
    if codec == "float32":
        return x
    if codec == "float16":
        return float16_round_trip(x)
    if codec == "int8":
        return int8_round_trip(x)
    if codec == "uint8":
        return uint8_round_trip(x)
    if codec == "int8-channel":
        # One int8 fit per channel, the first dimension of each sample.
        n = x.shape[0]
        channels = x.shape[1] if x.ndim > 1 else 1
        return int8_round_trip(x.reshape(n * channels, -1)).reshape(x.shape)
    if codec == "int4":
        return int4_round_trip(x)
    if codec == "sign":
        return sign_round_trip(x)
    raise ValueError(f"unknown codec {codec}")


def _expf(v):
    # Correctly rounded float32 exp/log (glibc's expf and logf are, to well under an ulp).
    return np.exp(v.astype(np.float64)).astype(np.float32)


def _logf(v):
    return np.log(v.astype(np.float64)).astype(np.float32)


def softmax_entropy(logits):
    """(predicted class, entropy) of each row, as ExitOutput.from(logits:) computes them:
    float32 throughout, sums in column order, natural log."""
    z = np.asarray(logits, dtype=np.float32)
    n, c = z.shape
    m = z.max(axis=1)
    e = _expf(z - m[:, None])
    total = np.zeros(n, dtype=np.float32)
    for j in range(c):
        total = total + e[:, j]
    p = (e / total[:, None]).astype(np.float32)
    h = np.zeros(n, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = _logf(np.where(p > 0, p, np.float32(1)))
    for j in range(c):
        term = (p[:, j] * logs[:, j]).astype(np.float32)
        h = np.where(p[:, j] > 0, (h - term).astype(np.float32), h)
    return p.argmax(axis=1), h, p

