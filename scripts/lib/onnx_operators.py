"""The ONNX form of every Branchy operator: OPERATORS, one entry per operator, which
branchy_onnx uses to read a layer of model.json (Model) and to emit its ONNX nodes (the graph
builder); and the batch-norm folding of CompiledNetwork."""

import numpy as np

from branchy_numpy import ModelFormatError, binary_scales, conv_out, pool_out, sign


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


def _onnx_op(name, *fields):
    """The emit of an operator that is one ONNX node of the same meaning, its attributes the
    layer's `fields` of the same names."""
    return lambda g, group, x, base, out: g.node(name, [x], base, out, **{f: group[0][f] for f in fields})


def _floats(**defaults):
    """The plan of a same-shape operator whose fields are floats with these defaults (rounded to
    float32, as Branchy reads them)."""
    def plan(model, spec, prefix, shape):
        return {k: float(np.float32(spec.get(k, v))) for k, v in defaults.items()}, shape
    return plan


def _image(spec, prefix, shape):
    if len(shape) != 3:
        raise ModelFormatError(f"{prefix}: {spec['op']} needs a (C, H, W) input, got {shape}")
    return shape


def _bias(model, spec, name, out):
    return model._weight(name + ".bias", [out]) if spec.get("bias", True) else None


def _plan_conv(model, spec, prefix, shape):
    c, h, w = _image(spec, prefix, shape)
    k, s, p, out = spec["kernel"], spec.get("stride", 1), spec.get("pad", 0), spec["out"]
    groups, d = int(spec.get("groups", 1)), int(spec.get("dilation", 1))
    name = f"{prefix}.{spec['name']}"
    if groups < 1 or c % groups or out % groups:
        raise ModelFormatError(f"{name}: groups {groups} must divide the input channels {c} and out {out}")
    return (dict(kernel=k, stride=s, pad=p, out=out, groups=groups, dilation=d, name=name,
                 weight=model._weight(name + ".weight", [out, c // groups, k, k]), bias=_bias(model, spec, name, out)),
            [out, conv_out(h, k, s, p, d), conv_out(w, k, s, p, d)])


def _conv_span(g, layers, i):
    """A conv takes the batch norm right after it when the builder folds, as CompiledNetwork does
    (not for a grouped or dilated conv, which it does not fold into)."""
    plain = layers[i]["groups"] == 1 and layers[i]["dilation"] == 1
    return 2 if g.fold and plain and i + 1 < len(layers) and layers[i + 1]["op"] == "batchnorm" else 1


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
    # `group` and `dilations` only when not 1, so that graphs without them stay as they were.
    extra = dict(group=l["groups"]) if l["groups"] != 1 else {}
    if l["dilation"] != 1:
        extra["dilations"] = [l["dilation"]] * 2
    return g.node("Conv", inputs, base, out, kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p], **extra)


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


def _plan_clip(model, spec, prefix, shape):
    """`min` and `max`, each None when absent (no bound)."""
    lo, hi = (None if spec.get(k) is None else float(np.float32(spec[k])) for k in ("min", "max"))
    if lo is not None and hi is not None and not lo <= hi:
        raise ModelFormatError(f"{prefix}: clip min {lo} is above max {hi}")
    return dict(min=lo, max=hi), shape


def _emit_clip(g, group, x, base, out):
    # Opset 11 on, the bounds are inputs (float32 scalars); an absent one is the empty name.
    l = group[0]
    bounds = ["" if l[k] is None else g.const(f"{base}.{k}", np.array(l[k], dtype=np.float32)) for k in ("min", "max")]
    inputs = [x] + bounds
    while inputs[-1] == "":
        inputs.pop()
    return g.node("Clip", inputs, base, out)


def _plan_globalavgpool(model, spec, prefix, shape):
    return {}, [_image(spec, prefix, shape)[0], 1, 1]


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


def _merged_shape(merge, shapes):
    """The output shape of a branches block's merge, or None when the branches do not fit it
    (BranchesLayer.outputShape): add wants one shape; mul the largest shape, or (C, 1, 1) of
    a (C, H, W) one (a squeeze-excitation gate, which ONNX's Mul broadcasts over the plane);
    concat one shape but for the channels (the first dimension)."""
    full = max(shapes, key=lambda s: int(np.prod(s)))
    if merge == "add":
        return full if all(s == full for s in shapes) else None
    if merge == "mul":
        return full if all(s == full or (len(full) == 3 and s == [full[0], 1, 1]) for s in shapes) else None
    if all(s and s[1:] == shapes[0][1:] for s in shapes):
        return [sum(s[0] for s in shapes)] + shapes[0][1:]
    return None


def _plan_branches(model, spec, prefix, shape):
    # Every branch takes the block's input; its layers are named as if they stood in the
    # enclosing list (same prefix), as a residual block's are.
    name, merge = f"{prefix}.{spec['name']}", spec.get("merge")
    if merge not in ("add", "mul", "concat"):
        raise ModelFormatError(f"{name}: merge must be add, mul or concat, not {merge!r}")
    if len(spec.get("branches") or []) < 2:
        raise ModelFormatError(f"{name}: a branches block needs at least two branches")
    planned = [model._plan(b, prefix, shape) for b in spec["branches"]]
    shapes = [s for _, s in planned]
    out_shape = _merged_shape(merge, shapes)
    if out_shape is None:
        raise ModelFormatError(f"{name}: cannot {merge} branches of shapes {shapes}")
    return dict(name=name, merge=merge, branches=[layers for layers, _ in planned]), out_shape


def _emit_branches(g, group, x, base, out):
    # Add and Mul fold left, branch by branch: ((b0 + b1) + b2), as BranchesLayer.forward does.
    l = group[0]
    ys = [g.layers(b, x, f"{base}.{j}") for j, b in enumerate(l["branches"])]
    if l["merge"] == "concat":
        return g.node("Concat", ys, base, out, axis=1)
    y = ys[0]
    for j, z in enumerate(ys[1:], start=2):
        y = g.node("Add" if l["merge"] == "add" else "Mul", [y, z], base, out if j == len(ys) else None)
    return y


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
    # Added for `branchy import`: the activations of common ONNX classifiers, global pooling, and
    # blocks of parallel branches (squeeze-excitation's mul, Inception's concat).
    "clip": Operator(_plan_clip, _emit_clip),
    "leakyrelu": Operator(_floats(alpha=0.01), _onnx_op("LeakyRelu", "alpha")),
    "sigmoid": Operator(_same_shape, _onnx_op("Sigmoid")),
    "hardsigmoid": Operator(_floats(alpha=0.2, beta=0.5), _onnx_op("HardSigmoid", "alpha", "beta")),
    "globalavgpool": Operator(_plan_globalavgpool, _onnx_op("GlobalAveragePool")),
    "branches": Operator(_plan_branches, _emit_branches),
}
