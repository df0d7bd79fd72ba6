#!/usr/bin/env python3
"""Prints what an ONNX importer has to accept in the files the examples wrote: opset, op-type
counts, inputs and outputs with shapes, file sizes, and how each exporter spelled pooling,
flatten, Linear, ReLU6 and batch norm (the attributes and constant inputs of those nodes).

usage: inspect_onnx.py [FILE.onnx ...]   (default: every *.onnx under /tmp/onnx-examples)
"""

import collections
import glob
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def constant_values(model):
    """name -> numpy value of every initializer and Constant node output (external data not loaded)."""
    values = {}
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            values[t.name] = numpy_helper.to_array(t)
        else:
            values[t.name] = f"<external {list(t.dims)}>"
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    values[n.output[0]] = numpy_helper.to_array(a.t)
                else:
                    values[n.output[0]] = onnx.helper.get_attribute_value(a)
    return values


def where(name, model):
    inits = {t.name for t in model.graph.initializer}
    consts = {n.output[0] for n in model.graph.node if n.op_type == "Constant"}
    if name == "":
        return "absent"
    if name in inits:
        return "initializer"
    if name in consts:
        return "Constant node"
    return "computed"


def short(v):
    if isinstance(v, np.ndarray):
        return f"{v.dtype}{list(v.shape)}={v.tolist()}" if v.size <= 8 else f"{v.dtype}{list(v.shape)}"
    return str(v)


def details(path):
    model = common.describe_onnx(path)
    values = constant_values(model)
    seen = collections.OrderedDict()
    for n in model.graph.node:
        if n.op_type in ("Conv",):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            key = ("Conv", tuple(sorted((k, str(v)) for k, v in attrs.items())), len(n.input))
        else:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            key = (n.op_type, tuple(sorted((k, str(v)) for k, v in attrs.items())),
                   tuple((where(i, model), short(values.get(i, ""))) if k > 0 else "x"
                         for k, i in enumerate(n.input)))
        if n.op_type == "Constant":
            continue
        seen.setdefault(key, []).append(n.name)
    print("  distinct node forms (op, attributes, non-data inputs: where from = value):")
    for (op, attrs, inputs), names in seen.items():
        if op == "Conv":
            print(f"    Conv x{len(names)} {dict(attrs)} inputs {inputs}")
        else:
            print(f"    {op} x{len(names)} {dict(attrs)} inputs {list(inputs)}")
    symbolic = collections.Counter()
    for v in model.graph.value_info:
        for d in v.type.tensor_type.shape.dim:
            if d.HasField("dim_param"):
                symbolic[d.dim_param] += 1
    if model.graph.value_info:
        print(f"  value_info: {len(model.graph.value_info)} entries, symbolic dims {dict(symbolic)}; e.g. "
              + ", ".join(f"{v.name} {common._shape(v)}" for v in model.graph.value_info[:3]))
    print("  metadata_props:", {p.key: p.value[:40] for p in model.metadata_props} or "none")
    onnx.checker.check_model(path)
    print("  onnx.checker: ok")


if __name__ == "__main__":
    files = sys.argv[1:] or sorted(glob.glob("/tmp/onnx-examples/**/*.onnx", recursive=True))
    for f in files:
        details(f)
        print()
