"""Branchy's model files and evaluation arithmetic in numpy, in float32 (no onnx needed); part
of branchy_onnx, which re-exports all of it:

  - the safetensors reader and the conv and pooling geometry (Sources/BranchyTensor/Pooling.swift:
    ceil mode drops a last window that would start in the right/bottom padding, as PyTorch does);
  - the feature codecs of Sources/BranchyTensor/FeatureCodecKind.swift (one per link, as a
    model's `defaults.codec` lists them), applied per sample;
  - the signs and scales of the binary layers of Sources/BranchyTensor/Binary.swift;
  - softmax, entropy and argmax of Sources/BranchyTensor/Softmax.swift;
  - the IDX reader of Sources/BranchyData (pixels = byte / 255 in float32).
"""

import gzip
import json
import os
import struct

import numpy as np

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


def conv_out(size, kernel, stride, pad, dilation=1):
    """A convolution's output size; a dilated kernel spans dilation · (kernel − 1) + 1 inputs."""
    span = size + 2 * pad - (dilation * (kernel - 1) + 1)
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


def take_exits(thresholds, entropies):
    """ExitPolicy: per sample, the first exit whose entropy is below its threshold (compared in
    float32), else the last. `entropies` holds one array (N,) per exit."""
    n, exits = entropies[0].shape[0], len(entropies)
    taken = np.full(n, exits - 1)
    for i in reversed(range(exits - 1)):
        taken = np.where(entropies[i] < np.float32(thresholds[i]), i, taken)
    return taken
