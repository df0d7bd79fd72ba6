"""Branchy models as ONNX graphs, and the numpy twins of Branchy's evaluation arithmetic.

Shared by scripts/export-onnx.py and scripts/lib/ort_bench.py, which import all of it from here.
Reads model.json and weights.safetensors directly (numpy only, no torch) and mirrors, in float32:

  - the operators of Sources/BranchyModel/Operators, one entry each in OPERATORS (in
    onnx_operators.py: how a layer is read and which ONNX nodes it becomes), residual blocks
    included (an Add of the body and the shortcut) and branches blocks (an Add, Mul or Concat
    of the branches), and the batch-norm folding of
    CompiledNetwork (optional: `fold`);
  - in branchy_numpy.py: the pooling geometry, the feature codecs, the binary layers, softmax,
    entropy and argmax, and the IDX reader.

Here: the model (Model, its layers planned by OPERATORS) and the graph assembly (stage_graph,
full_graph, export).
"""

import json
import os

import numpy as np

from branchy_numpy import (  # noqa: F401  (re-exported: the scripts import them from here)
    CODECS, ModelFormatError, binary_scales, codec_round_trip, conv_out, float16_round_trip,
    int4_round_trip, int8_round_trip, load_test_set, parse_codecs, pool_out, read_safetensors,
    sign, sign_round_trip, softmax_entropy, take_exits, uint8_round_trip)
from onnx_operators import OPERATORS, Operator, fold_batchnorm  # noqa: F401

OPSET = 17
IR_VERSION = 8  # the IR of opset 17, so that older runtimes load the graphs too

# --- Model files ---------------------------------------------------------------


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
