#!/usr/bin/env python3
"""Checks the preprocessing a model's card records against ONNX Runtime doing the same steps.

usage: preprocess-check.py WORK_DIR BRANCHY_BIN_DIR

Writes a small colour classifier as ONNX (convolutions on 3×24×24 inputs, one output), and an
image folder of RGB PNG files of several sizes and aspect ratios (pixels random, in two class
folders). Imports the classifier with `--resize 26 --crop 24 --mean … --std … --channel-order bgr`
and runs `branchy infer` on the folder. The reference does every step with ONNX Runtime and numpy
from the pixels written: ONNX's Resize (linear, half_pixel) to the shorter side 26 (the longer in
proportion, truncated), the centre 24×24 (offsets rounded half to even), BGR order, (x/255 − mean)
/ std, then the classifier. Passes when every logit agrees within 1e-4. Also checks the refusals:
the folder given to the model imported without a resize (sizes named), images of the wrong channel
count, a mean with the wrong number of values. Prints one line of figures; exits 1 on a failure.
"""

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

work, bindir = sys.argv[1], sys.argv[2]
branchy = os.path.join(bindir, "branchy")
os.makedirs(work, exist_ok=True)
rng = np.random.default_rng(7)
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def fail(message):
    print(message)
    sys.exit(1)


def run(*args, expect_ok=True):
    r = subprocess.run([branchy, *args], capture_output=True, text=True)
    if expect_ok and r.returncode != 0:
        fail(f"branchy {' '.join(args)} failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    return r


# The classifier: Conv(3→6, 3×3) Relu Conv(6→8, 3×3, stride 2) Relu GlobalAveragePool Flatten Gemm(8→4).
def init(name, shape, scale=0.5):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


nodes = [
    helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
    helper.make_node("Relu", ["c1"], ["r1"]),
    helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
    helper.make_node("Relu", ["c2"], ["r2"]),
    helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
    helper.make_node("Flatten", ["g"], ["f"]),
    helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], transB=1),
]
graph = helper.make_graph(
    nodes, "colour",
    [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 24, 24])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])],
    [init("w1", (6, 3, 3, 3)), init("b1", (6,), 0.1), init("w2", (8, 6, 3, 3)), init("b2", (8,), 0.1),
     init("w3", (4, 8)), init("b3", (4,), 0.1)])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, f"{work}/colour.onnx")


def png(path, img):
    """An 8-bit RGB PNG (filter 0 on every row)."""
    h, w, _ = img.shape
    raw = b"".join(b"\0" + img[r].tobytes() for r in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# Sizes (H, W): upscaled, downscaled, square, tall, wide; smooth images so that resizing matters.
sizes = [(26, 26), (30, 40), (48, 33), (20, 31), (64, 64), (27, 90), (100, 29), (26, 52)]
images = []   # (class, file name, HxWx3 uint8), in the folder's order: class, then name
for k, (h, w) in enumerate(sizes):
    base = rng.integers(0, 256, size=(h // 4 + 2, w // 4 + 2, 3)).astype(np.float32)
    img = np.kron(base, np.ones((4, 4, 1)))[:h, :w] + rng.integers(-20, 21, size=(h, w, 3))
    images.append((k % 2, f"{k:02d}.png", np.clip(img, 0, 255).astype(np.uint8)))
images.sort(key=lambda t: (t[0], t[1]))
for c, name, img in images:
    os.makedirs(f"{work}/folder/class{c}", exist_ok=True)
    png(f"{work}/folder/class{c}/{name}", img)

# The reference: every step in ONNX Runtime and numpy.
resize_graph = helper.make_graph(
    [helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear", coordinate_transformation_mode="half_pixel")],
    "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, None, None]),
               helper.make_tensor_value_info("sizes", TensorProto.INT64, [4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
resize_model = helper.make_model(resize_graph, opset_imports=[helper.make_opsetid("", 18)])
resize_model.ir_version = 8
resizer = ort.InferenceSession(resize_model.SerializeToString(), providers=["CPUExecutionProvider"])
classifier = ort.InferenceSession(f"{work}/colour.onnx", providers=["CPUExecutionProvider"])
prepared = []
for _, _, img in images:
    h, w, _ = img.shape
    x = (img.astype(np.float32) / np.float32(255)).transpose(2, 0, 1)[None]
    nh, nw = (26, int(26 * w / h)) if h <= w else (int(26 * h / w), 26)
    y = resizer.run(None, {"x": x, "sizes": np.array([1, 3, nh, nw], np.int64)})[0]
    top, left = int(round((nh - 24) / 2.0)), int(round((nw - 24) / 2.0))
    y = y[:, :, top:top + 24, left:left + 24][:, ::-1]            # RGB → BGR
    prepared.append((y - MEAN[:, None, None]) / STD[:, None, None])
reference = classifier.run(None, {"image": np.concatenate(prepared).astype(np.float32)})[0]

mean, std = ",".join(map(str, MEAN)), ",".join(map(str, STD))
run("import", f"{work}/colour.onnx", "--output", f"{work}/model", "--resize", "26", "--crop", "24x24", "--mean", mean, "--std", std,
    "--channel-order", "bgr")
card = open(f"{work}/model/MODEL_CARD.md").read()
if "resize the shorter side to 26" not in card or "centre crop 24×24" not in card or "channels BGR" not in card:
    fail("the model card does not record the preprocessing")
run("infer", "--model", f"{work}/model", "--input", f"{work}/folder", "--output-dir", f"{work}/out")
ours = np.load(f"{work}/out/exit-0.npy")
if ours.shape != reference.shape:
    fail(f"branchy infer wrote {ours.shape}, ONNX Runtime {reference.shape}")
diff = float(np.abs(ours - reference).max())
if diff > 1e-4:
    fail(f"logits differ from ONNX Runtime's by up to {diff:.3g} (allowed 1e-4)")

# Refusals, each naming what is wrong.
run("import", f"{work}/colour.onnx", "--output", f"{work}/plain")
r = run("infer", "--model", f"{work}/plain", "--input", f"{work}/folder", "--output-dir", f"{work}/out-plain", expect_ok=False)
if r.returncode == 0 or "every image must have one size" not in r.stderr:
    fail(f"a folder of mixed sizes for a model without a resize: {r.stderr.strip() or 'accepted'}")
grey = np.zeros((2, 20, 20), np.uint8)
np.save(f"{work}/grey.npy", grey)
r = run("infer", "--model", f"{work}/plain", "--input", f"{work}/grey.npy", "--output-dir", f"{work}/out-grey", expect_ok=False)
if r.returncode == 0 or "20×20" not in r.stderr or "no resize" not in r.stderr:
    fail(f"greyscale 20×20 bytes for a 3×24×24 model without a resize: {r.stderr.strip() or 'accepted'}")
r = run("import", f"{work}/colour.onnx", "--output", f"{work}/bad", "--mean", "0.5,0.5", expect_ok=False)
if r.returncode == 0 or "mean has 2 values" not in r.stderr or os.path.exists(f"{work}/bad"):
    fail(f"--mean with 2 values for 3 channels: {r.stderr.strip() or 'accepted'}")
print(f"{len(images)} PNG images of 8 sizes resized, cropped, BGR, normalised: largest logit difference from ONNX Runtime {diff:.2g}; "
      "3 refusals named")
