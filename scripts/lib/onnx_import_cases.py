"""Small ONNX models for `branchy import`, built with onnx.helper (used by scripts/import-check.py):

  - cases(): the supported forms, one Case per operator form and opset. Each takes `x`
    (batch, C, H, W) with a dynamic batch dimension "batch" and ends in a Flatten to `logits`
    (batch, classes; the width as ONNX Runtime computes it), a one-exit classifier
    (`two-exits` has `logits0` and `logits1`). Weights are random float32 from a seed fixed
    per case, scaled by 1 / sqrt(fan-in); sample() gives a case's input.
  - bad_cases(): files the import must refuse, each with the fragments its error must contain
    (case-insensitively): for an operator, the node's name quoted, its op type and `opset V`.

Nodes are named n1, n2, … in order, their outputs n1_y, …; initializers t1, t2, ….
"""

import zlib
from collections import namedtuple

import numpy as np
from onnx import TensorProto, helper, numpy_helper

SHAPE = (4, 9, 9)    # C, H, W of most cases
OPSETS = (13, 17, 20)

# model: an onnx ModelProto; input_shape: (C, H, W).
Case = namedtuple("Case", "name model input_shape")
# data: the file's bytes; expect: fragments of the error; runs: valid ONNX that ONNX Runtime runs
# (Branchy alone refuses it).
Bad = namedtuple("Bad", "name data expect runs")


class Net:
    """One graph under construction: input `x` of (batch, *shape), nodes and initializers."""

    def __init__(self, opset, shape=SHAPE, seed=0):
        self.opset, self.shape = opset, tuple(shape)
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []

    def tensor(self, array, name=None):
        """An initializer (float32 unless `array` is an int64 array)."""
        name = name or f"t{len(self.inits) + 1}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def array(self, *shape, fan_in=None):
        fan_in = fan_in or int(np.prod(shape[1:]))
        return (self.rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)

    def random(self, *shape, fan_in=None):
        return self.tensor(self.array(*shape, fan_in=fan_in))

    def ints(self, *values):
        return self.tensor(np.array(values, dtype=np.int64))

    def node(self, op, inputs, outputs=1, name=None, **attrs):
        name = name or f"n{len(self.nodes) + 1}"
        outs = [f"{name}_y"] + [f"{name}_y{i}" for i in range(1, outputs)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0]

    def constant(self, array=None, **attrs):
        """A Constant node's value: `array` as a tensor, or attrs such as value_float=6.0."""
        if array is not None:
            attrs["value"] = numpy_helper.from_array(np.asarray(array))
        return self.node("Constant", [], **attrs)

    def conv(self, x, cin, cout, k=3, stride=1, pad=0, group=1, dilation=1, bias=True, attrs=True):
        inputs = [x, self.random(cout, cin // group, k, k)] + ([self.random(cout, fan_in=cin)] if bias else [])
        a = dict(kernel_shape=[k, k], strides=[stride] * 2, pads=[pad] * 4) if attrs else {}
        if group != 1:
            a["group"] = group
        if dilation != 1:
            a["dilations"] = [dilation] * 2
        return self.node("Conv", inputs, **a)

    def batchnorm(self, x, c):
        r = self.rng
        stats = [r.uniform(0.5, 1.5, c), r.standard_normal(c) * 0.2, r.standard_normal(c) * 0.2, r.uniform(0.5, 2, c)]
        return self.node("BatchNormalization", [x] + [self.tensor(s.astype(np.float32)) for s in stats], epsilon=1e-5)

    def gemm(self, x, fin, fout, trans_b=1, bias=True, **attrs):
        w = self.random(fout, fin) if trans_b else self.tensor(self.array(fout, fin).T.copy())
        inputs = [x, w] + ([self.random(fout, fan_in=fin)] if bias else [])
        return self.node("Gemm", inputs, transB=trans_b, **attrs)

    def model(self, exits):
        """The model: each value of `exits` flattened to a graph output, `logits` or logits0, …"""
        names = ["logits"] if len(exits) == 1 else [f"logits{i}" for i in range(len(exits))]
        for v, name in zip(exits, names):
            self.nodes.append(helper.make_node("Flatten", [v], [name], name=f"n{len(self.nodes) + 1}", axis=1))
        info = helper.make_tensor_value_info
        graph = helper.make_graph(self.nodes, "case", [info("x", TensorProto.FLOAT, ["batch", *self.shape])],
                                  [info(n, TensorProto.FLOAT, ["batch", None]) for n in names], initializer=self.inits)
        opset = helper.make_opsetid("", self.opset)
        m = helper.make_model(graph, producer_name="branchy import-check", opset_imports=[opset])
        m.ir_version = helper.find_min_ir_version_for([opset])
        return m


# --- Supported forms: name -> (build(net) -> [exit values], opsets) ----------------------

def _conv(cout=8, **kw):
    return lambda n: [n.conv("x", 4, cout, **kw)]


def _conv_forms():
    """Conv on the input, each form with and without bias; and without any attribute (the
    kernel from the weight's shape, stride 1, no padding)."""
    forms = {"plain": {}, "strided": dict(stride=2), "padded": dict(pad=1), "grouped": dict(pad=1, group=2, cout=6),
             "depthwise": dict(pad=1, group=4, cout=4), "dilated": dict(pad=2, dilation=2)}
    out = {f"conv-{form}-{'bias' if bias else 'nobias'}": (_conv(bias=bias, **kw), OPSETS)
           for form, kw in forms.items() for bias in (True, False)}
    out["conv-no-attributes"] = (_conv(5, attrs=False), OPSETS)
    return out


def _clip(n, lo, hi):
    return n.node("Clip", ["x", lo, hi] if hi else ["x", lo])


def _se_sigmoid(n):
    gate = n.node("Sigmoid", [n.conv(n.node("GlobalAveragePool", ["x"]), 4, 4, k=1)])
    return [n.node("Mul", ["x", gate])]


def _se_hardsigmoid(n):
    y = n.node("Relu", [n.conv("x", 4, 6, pad=1)])
    squeezed = n.node("Relu", [n.conv(n.node("GlobalAveragePool", [y]), 6, 3, k=1)])
    gate = n.node("HardSigmoid", [n.conv(squeezed, 3, 6, k=1)])
    return [n.node("Mul", [gate, y])]


def _reduce_mean(n, keepdims):
    if n.opset >= 18:
        return n.node("ReduceMean", ["x", n.ints(2, 3)], keepdims=keepdims)
    return n.node("ReduceMean", ["x"], axes=[2, 3], keepdims=keepdims)


def _reshape_arithmetic(n):
    y = n.node("Relu", [n.conv("x", 4, 3, stride=2)])
    dim0 = n.node("Gather", [n.node("Shape", [y]), n.tensor(np.array(0, dtype=np.int64))], axis=0)
    shape = n.node("Concat", [n.node("Unsqueeze", [dim0, n.ints(0)]), n.ints(-1)], axis=0)
    return [n.gemm(n.node("Reshape", [y, shape]), 3 * 4 * 4, 10)]


def _two_exits(n):
    y = n.node("Relu", [n.conv("x", 3, 6, pad=1)])
    first = n.gemm(n.node("Flatten", [n.node("GlobalAveragePool", [y])], axis=1), 6, 10)
    z = n.node("Relu", [n.conv(n.node("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2]), 6, 8, pad=1)])
    return [first, n.gemm(n.node("Flatten", [z], axis=1), 8 * 4 * 4, 10)]


FLAT = 4 * 9 * 9
_FORMS = dict(_conv_forms(), **{
    "conv-bn-relu": (lambda n: [n.node("Relu", [n.batchnorm(n.conv("x", 4, 8, pad=1, bias=False), 8)])], (13, 15, 17, 20)),
    "conv-bias-bn": (lambda n: [n.batchnorm(n.conv("x", 4, 8, stride=2), 8)], (13, 15, 17, 20)),
    "relu-bn": (lambda n: [n.batchnorm(n.node("Relu", ["x"]), 4)], (13, 15, 17, 20)),
    "relu": (lambda n: [n.node("Relu", ["x"])], OPSETS),
    "clip-inputs": (lambda n: [_clip(n, n.tensor(np.float32(-0.5)), n.tensor(np.float32(0.8)))], OPSETS),
    "clip-constants-relu6": (lambda n: [n.node("Clip", [n.conv("x", 4, 6, pad=1), n.constant(value_float=0.0),
                                                        n.constant(value_float=6.0)])], OPSETS),
    "clip-max-only": (lambda n: [_clip(n, "", n.constant(np.float32(0.5)))], OPSETS),
    "clip-min-only": (lambda n: [_clip(n, n.constant(np.float32(-0.25)), None)], OPSETS),
    "leakyrelu": (lambda n: [n.node("LeakyRelu", ["x"])], OPSETS),
    "leakyrelu-alpha": (lambda n: [n.node("LeakyRelu", ["x"], alpha=0.2)], OPSETS),
    "sigmoid": (lambda n: [n.node("Sigmoid", ["x"])], OPSETS),
    "hardsigmoid": (lambda n: [n.node("HardSigmoid", ["x"])], OPSETS),
    "hardsigmoid-alpha-beta": (lambda n: [n.node("HardSigmoid", ["x"], alpha=0.25, beta=0.4)], OPSETS),
    "hardswish": (lambda n: [n.node("HardSwish", [n.conv("x", 4, 6, pad=1)])], (14, 17, 20)),
    "se-sigmoid": (_se_sigmoid, OPSETS),
    "se-hardsigmoid-gate-first": (_se_hardsigmoid, OPSETS),
    "maxpool-pads": (lambda n: [n.node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)], OPSETS),
    "maxpool-ceil": (lambda n: [n.node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)], OPSETS),
    # ceil mode whose last window would start in the padding: ONNX Runtime (and PyTorch, and
    # Branchy) drop it, 5 × 5; the ONNX spec's shape inference says 6 × 6.
    "maxpool-ceil-pads": (lambda n: [n.node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2], pads=[1] * 4,
                                            ceil_mode=1)], OPSETS),
    "maxpool-default-stride": (lambda n: [n.node("MaxPool", ["x"], kernel_shape=[2, 2])], OPSETS),
    # Ceil mode as the exports write it: floor mode with the padding at the bottom and right that
    # lets the last window in (9 × 9 to 5 × 5; average: 9 × 9 to 4 × 4).
    "maxpool-end-pads": (lambda n: [n.node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1])],
                         OPSETS),
    "avgpool-end-pads": (lambda n: [n.node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[3, 3], pads=[1, 1, 2, 2],
                                           count_include_pad=0)], (13, 17, 19, 20)),
    "avgpool": (lambda n: [n.node("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2])], (13, 17, 19, 20)),
    "avgpool-pads": (lambda n: [n.node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4,
                                       count_include_pad=0)], (13, 17, 19, 20)),
    "avgpool-ceil": (lambda n: [n.node("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1,
                                       count_include_pad=0)], (13, 17, 19, 20)),
    "avgpool-include-pad-no-pads": (lambda n: [n.node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[3, 3],
                                                      count_include_pad=1)], (13, 17, 19, 20)),
    "globalavgpool": (lambda n: [n.node("GlobalAveragePool", ["x"])], OPSETS),
    "reducemean-keepdims": (lambda n: [_reduce_mean(n, 1)], (13, 17, 18, 20)),
    "reducemean-gemm": (lambda n: [n.gemm(_reduce_mean(n, 0), 4, 10)], (13, 17, 18, 20)),
    "flatten-gemm": (lambda n: [n.gemm(n.node("Flatten", ["x"], axis=1), FLAT, 10)], OPSETS),
    "gemm-transb0": (lambda n: [n.gemm(n.node("Flatten", ["x"], axis=1), FLAT, 10, trans_b=0)], OPSETS),
    "gemm-alpha-beta": (lambda n: [n.gemm(n.node("Flatten", ["x"], axis=1), FLAT, 10, alpha=0.5, beta=2.0)], OPSETS),
    "gemm-no-bias": (lambda n: [n.gemm(n.node("Flatten", ["x"], axis=1), FLAT, 10, bias=False)], OPSETS),
    "matmul-add": (lambda n: [n.node("Add", [n.node("MatMul", [n.node("Flatten", ["x"], axis=1),
                                                                n.tensor(n.array(10, FLAT).T.copy())]),
                                               n.random(10, fan_in=FLAT)])], OPSETS),
    "reshape-arithmetic": (_reshape_arithmetic, (13, 14, 17, 20)),
    "reshape-constant": (lambda n: [n.gemm(n.node("Reshape", ["x", n.ints(0, -1)]), FLAT, 10)], (13, 14, 17, 20)),
    "residual": (lambda n: [n.node("Relu", [n.node("Add", ["x", n.conv("x", 4, 4, pad=1)])])], OPSETS),
    "residual-conv-first": (lambda n: [n.node("Add", [n.conv("x", 4, 4, pad=1), "x"])], OPSETS),
    "concat": (lambda n: [n.node("Relu", [n.node("Concat", [n.conv("x", 4, 3, pad=1), n.conv("x", 4, 5, k=1)],
                                                 axis=1)])], OPSETS),
    "identity": (lambda n: [n.node("Identity", [n.node("Relu", ["x"])])], OPSETS),
    "dropout": (lambda n: [n.node("Dropout", [n.node("Relu", ["x"])])], OPSETS),
    "dropout-ratio-mask": (lambda n: [n.node("Dropout", ["x", n.constant(np.float32(0.3))], outputs=2)], OPSETS),
    "constant-weights": (lambda n: [n.node("Relu", [n.node("Conv", ["x", n.constant(n.array(6, 4, 3, 3)),
                                                                    n.constant(n.array(6, fan_in=4))],
                                                           kernel_shape=[3, 3], pads=[1] * 4)])], OPSETS),
})


def cases():
    """Every supported Case, named FORM-opsetV."""
    out = []
    for form, (build, opsets) in _FORMS.items():
        for opset in opsets:
            out.append(_case(f"{form}-opset{opset}", opset, build, SHAPE))
    out.append(_case("two-exits-opset17", 17, _two_exits, (3, 8, 8)))
    return out


def _case(name, opset, build, shape):
    n = Net(opset, shape, seed=zlib.crc32(name.encode()))
    return _with_widths(Case(name, n.model(build(n)), shape))


def _with_widths(case):
    """The case with its outputs' widths, as ONNX Runtime computes them, declared (as an
    exporter declares them); left unknown where ONNX's shape inference disagrees (a ceil-mode
    pool whose last window would start in the padding)."""
    import onnx
    session = ort_session(case.model.SerializeToString())
    widths = [y.shape[1] for y in session.run(None, {"x": np.zeros((1, *case.input_shape), np.float32)})]
    m = onnx.ModelProto()
    m.CopyFrom(case.model)
    for out, width in zip(m.graph.output, widths):
        out.type.tensor_type.shape.dim[1].dim_value = width
    try:
        onnx.shape_inference.infer_shapes(m, strict_mode=True)
    except onnx.shape_inference.InferenceError:
        return case
    return case._replace(model=m)


def ort_session(model):
    """An ONNX Runtime session (CPU) on a model's bytes or path, its warnings silenced (it warns
    where its own shape inference and its kernels disagree, as on a ceil-mode pool)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def sample(case, n=3):
    """The input of a case: (n, C, H, W) float32, standard normal, seeded by the case's name."""
    rng = np.random.default_rng(zlib.crc32(case.name.encode()) + 1)
    return rng.standard_normal((n, *case.input_shape)).astype(np.float32)


# --- Refused files ---------------------------------------------------------------------

def _bad_node(name, opset, build, *fragments, runs=True):
    """A Bad case whose node `build(net)` returns (then Flattened to logits) is refused: the
    error names the node, its op type and the opset, and contains `fragments`."""
    n = Net(opset, seed=zlib.crc32(name.encode()))
    y = build(n)
    node = next(d for d in n.nodes if y in d.output)
    return Bad(name, n.model([y]).SerializeToString(), [f"'{node.name}'", node.op_type, f"opset {opset}", *fragments], runs)


def _bad_graph(name, build, *fragments, opset=17, outputs=True):
    """A Bad case from a graph `build(net)` makes (its value flattened to logits unless not
    `outputs`), refused with `fragments` in the error; ONNX Runtime does not run it."""
    n = Net(opset, seed=zlib.crc32(name.encode()))
    y = build(n)
    m = n.model([y])
    if not outputs:
        del m.graph.output[:]
    return Bad(name, m.SerializeToString(), list(fragments), False)


def _bad_opset(opset):
    """Relu at an opset outside 13–20: the error names the opset."""
    n = Net(opset)
    return Bad(f"opset{opset}", n.model([n.node("Relu", ["x"])]).SerializeToString(), [f"opset {opset}"], True)


def _huge(n):
    t = TensorProto(name="huge", data_type=TensorProto.FLOAT, dims=[1 << 40], raw_data=bytes(16))
    n.inits.append(t)
    return n.node("Mul", [n.node("Flatten", ["x"], axis=1), "huge"])


def _cycle(n):
    # n1 reads n2's output and n2 reads n1's: neither can run first.
    n.nodes.append(helper.make_node("Add", ["x", "n2_y"], ["n1_y"], name="n1"))
    n.nodes.append(helper.make_node("Relu", ["n1_y"], ["n2_y"], name="n2"))
    return "n2_y"


def bad_cases():
    """Every Bad case."""
    truncated = _case("truncated", 17, _conv(), SHAPE).model.SerializeToString()
    return [
        _bad_node("erf", 17, lambda n: n.node("Erf", [n.conv("x", 4, 4)])),
        # LSTM straight on the input: named before any shape is looked at (ONNX Runtime refuses
        # its rank-4 input too).
        _bad_node("lstm", 17, lambda n: n.node("LSTM", ["x", n.random(1, 32, 9), n.random(1, 32, 8)], outputs=3,
                                               hidden_size=8), runs=False),
        _bad_node("conv-asymmetric-pads", 17, lambda n: n.node("Conv", ["x", n.random(4, 4, 3, 3)], kernel_shape=[3, 3],
                                                               pads=[0, 0, 1, 1]), "pad"),
        _bad_node("conv-nonsquare-kernel", 17, lambda n: n.node("Conv", ["x", n.random(4, 4, 3, 1)], kernel_shape=[3, 1]),
                  "kernel"),
        _bad_node("maxpool-uneven-pads", 17, lambda n: n.node("MaxPool", ["x"], kernel_shape=[3, 3], pads=[1, 0, 1, 0]),
                  "asymmetric pads"),
        _bad_node("avgpool-count-include-pad", 17, lambda n: n.node("AveragePool", ["x"], kernel_shape=[3, 3], pads=[1] * 4,
                                                                    count_include_pad=1), "count_include_pad"),
        _bad_opset(12),
        _bad_opset(21),
        _bad_graph("dangling-input", lambda n: n.node("Add", ["x", "nowhere"]), "nowhere"),
        _bad_graph("cycle", _cycle, "cycle"),
        _bad_graph("huge-initializer", _huge, "huge"),
        _bad_graph("no-outputs", lambda n: n.node("Relu", ["x"]), "no output", outputs=False),
        Bad("truncated", truncated[:len(truncated) // 2], ["truncated"], False),
    ]
