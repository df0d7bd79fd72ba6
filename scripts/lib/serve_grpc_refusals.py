"""Bad requests against a Branchy front door's gRPC service with Triton's own client: each must get
the gRPC status of the same meaning as the HTTP one, and the server must go on answering.

usage: serve_grpc_refusals.py HOST:PORT SMALL_HOST:PORT   (SMALL: a front door with --max-queue 1 --threshold-range 0.5:1)
"""
import sys

import numpy as np
import tritonclient.grpc as g
from tritonclient.utils import InferenceServerException

client = g.InferenceServerClient(sys.argv[1])
small = g.InferenceServerClient(sys.argv[2])
types = {"FP32": np.float32, "INT64": np.int64, "UINT8": np.uint8}


def status(model, dtype, shape, on=client, params=None):
    x = g.InferInput("input", shape, dtype)
    x.set_data_from_numpy(np.zeros(shape, dtype=types[dtype]))
    try:
        on.infer(model, [x], parameters=params)
        return "OK"
    except InferenceServerException as e:
        return str(e.status())


cases = [
    ("unknown model", status("nope", "FP32", [1, 1, 28, 28]), "StatusCode.NOT_FOUND"),
    ("wrong datatype", status("b-resnet3", "INT64", [1, 1, 28, 28]), "StatusCode.INVALID_ARGUMENT"),
    ("wrong shape", status("b-resnet3", "FP32", [1, 28, 28, 1]), "StatusCode.INVALID_ARGUMENT"),
    ("device_only not a boolean", status("b-resnet3", "FP32", [1, 1, 28, 28], params={"device_only": "yes"}), "StatusCode.INVALID_ARGUMENT"),
    ("2 samples past --max-queue 1", status("b-resnet3", "UINT8", [2, 1, 28, 28], on=small), "StatusCode.UNAVAILABLE"),
    ("a threshold below --threshold-range 0.5:1", status("b-resnet3", "FP32", [1, 1, 28, 28], on=small, params={"thresholds": "0.2,0.8"}),
     "StatusCode.PERMISSION_DENIED"),
    ("thresholds within --threshold-range 0.5:1", status("b-resnet3", "FP32", [1, 1, 28, 28], on=small, params={"thresholds": "edge-exit=0.9"}), "OK"),
    ("thresholds not numbers", status("b-resnet3", "FP32", [1, 1, 28, 28], params={"thresholds": "a,b"}), "StatusCode.INVALID_ARGUMENT"),
    ("a good request after all this", status("b-resnet3", "FP32", [1, 1, 28, 28]), "OK"),
]
bad = [f"{name}: {got}, expected {want}" for name, got, want in cases if got != want]
if bad:
    sys.exit("; ".join(bad))
config = client.get_model_config("b-resnet3").config
if config.max_batch_size != 64 or [list(t.dims) for t in config.input] != [[1, 28, 28]]:
    sys.exit(f"ModelConfig: {config}")
print(f"{len(cases)} gRPC cases with their status codes; ModelConfig answered")
